"""The `iap` harness adapter: a tiny random checkpoint + tiny codecs generate a GeneratedSample of the
right shapes from a synthetic Item with real reference files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn
from iap_bench.errors import MediaError, MissingCheckpointError
from iap_bench.generators.base import GeneratedSample, build_generator
from iap_bench.generators.iap import IAPGenerator
from iap_bench.hashing import file_sha256


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from model.checkpoint import save_checkpoint
    from model.config import IAPConfig
    from model.fusion_model import IAPFusionModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(IAPFusionModel(IAPConfig.tiny()), path, {"step": 0})
    return path


def _item(ref_media, n_subjects: int, views: int) -> Item:
    subs = []
    for i in range(1, n_subjects + 1):
        faces, voice = ref_media[i]
        subs.append(Subject(f"<S{i}>", f"slot{i}", SubjectPrompt(f"person {i}", "talks", "calm"), views=views,
                            faces=tuple(faces[:views]), voice=voice, voice_transcript="hi"))
    script = tuple(Turn(f"<S{i}>", f"line {i}") for i in range(1, n_subjects + 1))
    return Item("it1", "multi" if n_subjects > 1 else "single", tuple(subs),
                StructuredPrompt("a room", "static", "quiet"), script, duration_s=0.5)


@pytest.mark.parametrize("n_subjects, views", [(1, 1), (2, 2)])
def test_generates_sample_with_right_shapes(tiny_ckpt, ref_media, n_subjects, views):
    gen = build_generator("iap", ckpt=str(tiny_ckpt), codecs="tiny", steps=2, height=128, width=128,
                          max_views=views)
    assert isinstance(gen, IAPGenerator) and gen.capabilities.multi_view and gen.capabilities.voice_reference
    gen.load()
    item = _item(ref_media, n_subjects, views)
    s = gen.generate(item, seed=3)
    assert isinstance(s, GeneratedSample)
    assert s.video.shape == (9, 128, 128, 3) and s.video.dtype == np.uint8  # T_v,max = 3 latents -> 9 frames
    assert s.audio.shape == (16 * 512,) and s.audio.dtype == np.float32 and np.abs(s.audio).max() <= 1
    assert s.sample_rate == 16000 and s.fps == pytest.approx(9 / 0.512)  # video spans the audio
    assert s.info["identities"] == n_subjects and s.info["checkpoint_sha256"] == file_sha256(tiny_ckpt)
    assert "[Subject 1]" in s.info["caption"] and "<S>line 1<E>" in s.info["caption"]
    assert s.info["model_config"]["name"] == "tiny"
    d = gen.describe()
    assert d["checkpoint_sha256"] == file_sha256(tiny_ckpt)
    # describe() keys generations in the store: it must not change when the model is loaded
    fresh = build_generator("iap", ckpt=str(tiny_ckpt), codecs="tiny", steps=2, height=128, width=128,
                            max_views=views)
    assert fresh.describe() == d
    other = build_generator("iap", ckpt=str(tiny_ckpt), codecs="tiny", steps=3, height=128, width=128,
                            max_views=views)
    assert other.describe() != d and fresh.label == gen.label and gen.label.startswith("iap:")
    again = gen.generate(item, seed=3)
    assert np.array_equal(again.video, s.video) and np.array_equal(again.audio, s.audio)


def test_refs_follow_anchor_slots(tiny_ckpt, ref_media):
    gen = IAPGenerator(ckpt=str(tiny_ckpt), codecs="tiny", steps=1, height=128, width=128)
    gen.load()
    item = _item(ref_media, 2, 1)
    only_s2 = item.with_subjects((item.subjects[1],))
    refs = gen.build_refs(only_s2, 128, 128)
    assert refs.id_mask.tolist() == [[False, True]]  # <S2> sits in slot 2, slot 1 stays empty
    assert refs.video[0, 0].abs().sum() == 0 and refs.video[0, 1].abs().sum() > 0
    assert refs.audio_lens.tolist() == [[0, 8]]  # 1 s voice cropped to L = 8 latents


def test_missing_checkpoint_and_unbound_subject(tmp_path, ref_media, tiny_ckpt):
    with pytest.raises(MissingCheckpointError) as e:
        IAPGenerator(ckpt=str(tmp_path / "nope"), codecs="tiny").load()
    assert "model.safetensors" in str(e.value) and "iap-train" in str(e.value)
    gen = IAPGenerator(ckpt=str(tiny_ckpt), codecs="tiny", steps=1, height=128, width=128)
    gen.load()
    item = _item(ref_media, 1, 1)
    unbound = item.with_subjects((Subject("<S1>", "slot1", item.subjects[0].prompt),))
    with pytest.raises(MediaError) as me:
        gen.generate(unbound, 0)
    assert me.value.reason == "bad_reference"
