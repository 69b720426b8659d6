"""Cascade baseline on real faces and voices: lip motion follows speech, turn-taking, shapes, determinism, and a
voice choice made by the classical matcher (never by the resemblyzer model that AID-SIM scores with)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from iap_bench.assets import TEST_MEDIA_CACHE, try_wheel_member
from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn
from iap_bench.errors import MediaError
from iap_bench.generators import animate, tts
from iap_bench.generators.base import Generator, build_generator
from iap_bench.generators.cascade import (
    CascadeGenerator,
    assign_voices,
    clip_frames,
    mix_track,
    place_turns,
)
from iap_bench.media.faces import detect_faces
from iap_bench.media.refs import load_audio, load_image
from tests.asset_policy import in_ci, missing_asset

pytestmark = pytest.mark.skipif(not in_ci() and (shutil.which("flite") is None or shutil.which("text2wave") is None),
                                reason="needs apt packages flite and festival")

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "benchmark_data" / "iap-mini" / "pack"
MEDIA_CACHE = TEST_MEDIA_CACHE
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
PROMPT = SubjectPrompt("a person", "talks to the camera", "calm")
SCENE = StructuredPrompt("a quiet room", "static close-up", "room tone")


# ---- real media fixtures ------------------------------------------------------------------------------
def _pack_faces() -> list[Path]:
    """First face image of each identity slot of the built iap-mini pack (empty if not built)."""
    out = []
    for slot in sorted(PACK.glob("*/faces")):
        imgs = sorted(p for p in slot.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if imgs:
            out.append(imgs[0])
    return out


@pytest.fixture(scope="module")
def face_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real photos of two different people, each with one detectable face."""
    pack = [p for p in _pack_faces() if len(detect_faces(load_image(p))) >= 1]
    if len(pack) >= 2:
        return pack[:2]
    astronaut = try_wheel_member("scikit-image", "skimage/data/astronaut.png")
    group = try_wheel_member("insightface", "insightface/data/images/t1.jpg")
    if astronaut is None or group is None:
        missing_asset("no real face photos: build the iap-mini pack or allow `pip download` of scikit-image")
    img = load_image(group)
    face = detect_faces(img)[0]  # crop one person out of the group photo
    x0, y0, x1, y1 = face.bbox
    m = int(1.2 * (x1 - x0))
    crop = img[max(0, int(y0) - m):int(y1) + m, max(0, int(x0) - m):int(x1) + m]
    second = tmp_path_factory.mktemp("faces") / "t1_person.png"
    cv2.imwrite(str(second), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return [astronaut, second]


@pytest.fixture(scope="module")
def voice_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real LibriVox reader and an slt voice reading a sentence the cascade never says."""
    out = tmp_path_factory.mktemp("voices") / "slt_ref.wav"
    wav, sr = tts.synthesize("Two people sat quietly by the window, watching the rain fall.",
                             tts.voice_by_name("flite:slt"))
    sf.write(out, wav, sr)
    return [LIBRIVOX, out]


@pytest.fixture(scope="module")
def gen() -> CascadeGenerator:
    g = CascadeGenerator()
    g.load()
    return g


def _subject(anchor: str, face: Path, voice: Path | None, language: str = "en") -> Subject:
    return Subject(anchor, anchor.strip("<>"), PROMPT, language=language, faces=(face,), voice=voice)


@pytest.fixture(scope="module")
def single_item(face_paths, voice_paths) -> Item:
    return Item("t_single", "single", (_subject("<S1>", face_paths[0], voice_paths[0]),), SCENE,
                (Turn("<S1>", "Deal me in. I have a good feeling about tonight."),), duration_s=4.0)


@pytest.fixture(scope="module")
def multi_item(face_paths, voice_paths) -> Item:
    subjects = (_subject("<S1>", face_paths[0], voice_paths[0]), _subject("<S2>", face_paths[1], voice_paths[1]))
    script = (Turn("<S1>", "Did you remember to bring the old map?"),
              Turn("<S2>", "Of course I did, it is right here in my bag."))
    return Item("t_multi", "multi", subjects, SCENE, script, duration_s=5.0)


def _aperture(face) -> float:
    """Inner-lip opening normalised by mouth width, from 68 landmarks."""
    lm = face.landmarks
    return float(np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1).mean()
                 / np.linalg.norm(lm[54] - lm[48]))


# ---- pure pieces ----------------------------------------------------------------------------------------
def test_speech_envelope_tracks_loudness() -> None:
    sr, fps = 16000, 25.0
    audio = np.zeros(sr * 2, np.float32)
    audio[sr // 2:sr] = 0.3 * np.sin(np.arange(sr // 2) * 2 * np.pi * 220 / sr)
    env = animate.speech_envelope(audio, sr, fps, 50)
    assert env.shape == (50,) and env.min() >= 0 and env.max() <= 1
    assert env[15:22].min() > 0.9 and env[:8].max() == 0 and env[30:].max() == 0
    assert not animate.speech_envelope(np.zeros(sr, np.float32), sr, fps, 25).any()


def test_piecewise_affine_identity_and_translation() -> None:
    src = np.array([[0, 0], [63, 0], [0, 47], [63, 47], [30, 20]], np.float32)
    tris = animate.triangulate(src)
    mx, my = animate.piecewise_affine_maps(src, src, tris, (64, 48))
    gx, gy = np.meshgrid(np.arange(64), np.arange(48))
    np.testing.assert_array_equal(mx, gx)
    np.testing.assert_array_equal(my, gy)
    dst = src.copy()
    dst[4] += (0, 5)  # centre point moves down 5 px: the pixel there samples from 5 px above
    mx, my = animate.piecewise_affine_maps(src, dst, tris, (64, 48))
    assert abs(my[25, 30] - 20) < 1e-3 and abs(mx[25, 30] - 30) < 1e-3


def test_turn_layout_and_voice_assignment() -> None:
    sr = 1000
    placed = place_turns([("<S1>", np.ones(500, np.float32)), ("<S2>", np.ones(300, np.float32))], sr, 0.2, 0.5)
    assert [(p.start, p.end) for p in placed] == [(200, 700), (1200, 1500)]
    assert clip_frames(placed, sr, 10, 1.0, 0.3) == 18  # speech ends at 1.5 s + 0.3 s tail
    assert clip_frames(placed, sr, 10, 3.0, 0.3) == 30  # at least the item's duration
    s2 = mix_track(placed, 2000, "<S2>")
    assert s2[:1200].sum() == 0 and s2[1200:1500].min() == 1
    dist = {"<S1>": {"a": 1.0, "b": 1.2}, "<S2>": {"a": 0.5, "b": 3.0}}  # lower is nearer
    assert assign_voices(dist, distinct=False) == {"<S1>": ("a", 1.0), "<S2>": ("a", 0.5)}
    assert assign_voices(dist, distinct=True) == {"<S1>": ("b", 1.2), "<S2>": ("a", 0.5)}
    assert assign_voices({"<S1>": {"b": 1.0, "a": 1.0}}, distinct=True) == {"<S1>": ("a", 1.0)}  # ties: by name
    # more subjects than voices: each subject its nearest, repeats allowed
    assert assign_voices({"x": {"a": 1.0}, "y": {"a": 2.0}}, distinct=True) == {"x": ("a", 1.0), "y": ("a", 2.0)}


def test_hungarian_assignment_is_the_best_distinct_total() -> None:
    rng = np.random.default_rng(0)
    voices = [f"v{i}" for i in range(6)]
    for trial in range(20):
        anchors = [f"<S{k}>" for k in range(1 + trial % 3 + 1)]  # 2..4 subjects
        dist = {a: {v: float(rng.uniform(0, 5)) for v in voices} for a in anchors}
        got = assign_voices(dist, distinct=True)
        assert len({v for v, _ in got.values()}) == len(anchors)
        assert all(dist[a][v] == d for a, (v, d) in got.items())
        brute = min(sum(dist[a][v] for a, v in zip(anchors, perm))
                    for perm in itertools.permutations(voices, len(anchors)))
        assert abs(sum(d for _, d in got.values()) - brute) < 1e-9


# ---- animation on a real face -----------------------------------------------------------------------------
def test_mouth_aperture_follows_speech_envelope(face_paths) -> None:
    img = load_image(face_paths[0])
    face = detect_faces(img)[0]
    cfg = animate.AnimateConfig()
    panel, lm = animate.frame_portrait(img, face.bbox, face.landmarks, (320, 320), cfg.face_frac)
    sr, fps = 16000, 25.0
    speech = tts.synthesize_at("Hello there, how are you today?", tts.voice_by_name("awb"), sr)
    audio = np.concatenate([np.zeros(sr // 2, np.float32), speech, np.zeros(sr // 2, np.float32)])
    n = int(len(audio) / sr * fps)
    env = animate.speech_envelope(audio, sr, fps, n)
    video = animate.animate_panel(panel, lm, env, animate.head_motion(n, fps, np.random.default_rng(0)), cfg)
    assert video.shape == (n, 320, 320, 3) and video.dtype == np.uint8
    idx = np.arange(0, n, 2)
    faces = [detect_faces(video[i]) for i in idx]
    assert sum(bool(f) for f in faces) >= 0.9 * len(idx)
    ap = np.array([_aperture(f[0]) if f else np.nan for f in faces])
    ok = ~np.isnan(ap)
    corr = np.corrcoef(ap[ok], env[idx][ok])[0, 1]
    assert corr > 0.5, corr
    loud, silent = env[idx] > 0.6, env[idx] == 0
    assert np.nanmean(ap[loud]) > np.nanmean(ap[silent]) + 0.05


# ---- the generator end to end -------------------------------------------------------------------------------
def test_single_subject_sample(gen: CascadeGenerator, single_item: Item) -> None:
    assert isinstance(gen, Generator)
    out = gen.generate(single_item, seed=0)
    t, h, w, c = out.video.shape
    assert (h, w, c) == (384, 384, 3) and out.video.dtype == np.uint8
    assert out.fps == 25.0 and out.sample_rate == 16000
    assert out.audio.dtype == np.float32 and out.audio.ndim == 1
    assert len(out.audio) / out.sample_rate >= single_item.duration_s
    assert abs(t / out.fps - len(out.audio) / out.sample_rate) < 1 / out.fps
    assert np.abs(out.audio).max() > 0.1 and np.abs(out.audio).max() <= 1.0
    v = out.info["voices"]["<S1>"]
    assert v["voice"] in {x.name for x in gen.bank.voices} and v["distance"] >= 0
    assert v["distance"] == min(v["distances"].values()) == v["distances"][v["voice"]]
    assert v["match"] == "nearest" and v["method"] == f"{tts.FEATURE_METHOD}/v{tts.FEATURE_VERSION}"
    json.dumps(out.info)  # the sidecar records it as is
    assert len(detect_faces(out.video[t // 2])) == 1
    desc = gen.describe()
    assert desc["name"] == "cascade" and "speaker_encoder" not in desc
    assert desc["voice_matcher"]["method"] == tts.FEATURE_METHOD
    assert desc["voice_matcher"]["version"] == tts.FEATURE_VERSION and desc["voice_matcher"]["librosa"]
    assert set(desc["tts_voices"]) >= {"flite:slt", "festival:cmu_us_slt_arctic_hts"}


def test_long_script_is_never_cut(gen: CascadeGenerator, single_item: Item) -> None:
    long = Item("t_long", "single", single_item.subjects, SCENE,
                (Turn("<S1>", "This line is much longer than the two seconds the item asks for, so the "
                              "audio must define the length of the clip."),), duration_s=2.0)
    out = gen.generate(long, seed=0)
    total_s = len(out.audio) / out.sample_rate
    assert total_s > 4.0 and out.info["turns"][-1]["end_s"] < total_s
    assert out.video.shape[0] == round(total_s * out.fps)


def test_multi_subject_turn_taking(gen: CascadeGenerator, multi_item: Item) -> None:
    out = gen.generate(multi_item, seed=0)
    t, h, w, _ = out.video.shape
    assert (h, w) == (384, 768)
    voices = out.info["voices"]
    assert voices["<S1>"]["voice"] != voices["<S2>"]["voice"]  # distinct voices per subject
    assert voices["<S2>"]["voice"] in ("flite:slt", "festival:cmu_us_slt_arctic_hts")
    turns = out.info["turns"]
    assert turns[0]["end_s"] <= turns[1]["start_s"]  # no overlap
    windows = [(int(x["start_s"] * out.fps) + 3, int(x["end_s"] * out.fps) - 3) for x in turns]
    ap = np.zeros((2, 2))  # [turn, panel] mean aperture
    for k, (a, b) in enumerate(windows):
        for panel in range(2):
            frames = [out.video[i, :, panel * 384:(panel + 1) * 384] for i in range(a, b, 3)]
            vals = [_aperture(f[0]) for f in map(detect_faces, frames) if f]
            assert len(vals) >= 0.8 * len(frames)
            ap[k, panel] = np.mean(vals)
    assert ap[0, 0] > ap[1, 0] and ap[1, 1] > ap[0, 1]  # each mouth opens during its own turn only
    assert len(detect_faces(out.video[t // 3])) == 2  # all faces in one frame


def test_deterministic_for_a_seed(gen: CascadeGenerator, single_item: Item) -> None:
    a, b, c = (gen.generate(single_item, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.video, c.video)  # the seed drives head motion
    np.testing.assert_array_equal(a.audio, c.audio)  # and nothing else


def test_chinese_item_is_a_clear_per_item_failure(gen: CascadeGenerator, face_paths, voice_paths) -> None:
    zh = Item("t_zh", "single", (_subject("<S1>", face_paths[0], voice_paths[0], language="zh"),), SCENE,
              (Turn("<S1>", "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002"),))
    with pytest.raises(MediaError, match="no installed TTS voice speaks zh") as e:
        gen.generate(zh, seed=0)
    assert e.value.reason == "tts_language_unsupported"


def test_unbound_voice_and_fixed_voice(face_paths, single_item: Item) -> None:
    unbound = single_item.with_subjects((_subject("<S1>", face_paths[0], None),))
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "generator" / "cascade.yaml"), resolve=True)
    assert cfg["name"] == "cascade" and "label" not in cfg  # rows: cascade@<config hash>
    assert "speaker_weights" not in cfg["params"]
    fixed = build_generator("cascade", **{**cfg["params"], "voice_match": "flite:awb", "size": [256, 256]})
    fixed.load()
    assert fixed.bank._features is None  # a fixed voice measures no voice features
    assert fixed.describe()["voice_matcher"] == {"method": "fixed"}
    out = fixed.generate(unbound, seed=0)  # a fixed voice needs no reference voice
    assert out.info["voices"]["<S1>"] == {"voice": "flite:awb", "distance": None, "match": "fixed"}
    assert out.video.shape[1:] == (256, 256, 3)
    nearest = build_generator("cascade", **cfg["params"])
    with pytest.raises(MediaError, match="no bound reference voice"):
        nearest.generate(unbound, seed=0)


# ---- the voice choice on the iap-mini pack: stable, and independent of the AID-SIM model --------------------------
# Slots voiced by an installed TTS voice must get that voice back; the two real speakers (a LibriVox reader and the
# ALSA test-clip speaker) are pinned to the current choice, so a change of features or distance shows up here.
PACK_CHOICE = {
    "id_001": "flite:awb",
    "id_002": "flite:slt",
    "id_003": "flite:rms",  # real: male LibriVox reader
    "id_004": "festival:ked_diphone",
    "id_005": "festival:cmu_us_slt_arctic_hts",  # real: female ALSA speaker
    "id_006": "flite:rms",
}


@pytest.mark.skipif(not in_ci() and not (PACK / "id_001" / "voice.wav").exists(), reason="iap-mini pack not built")
def test_pack_reference_voices_choose_stably(gen: CascadeGenerator) -> None:
    chosen = {}
    for slot in PACK_CHOICE:
        subject = _subject("<S1>", PACK / slot / "faces" / "face_1.jpg", PACK / slot / "voice.wav")
        first = gen._match_voices(Item(f"t_{slot}", "single", (subject,), SCENE, (Turn("<S1>", "Hi."),)))["<S1>"]
        chosen[slot] = first["voice"]
        wav = load_audio(PACK / slot / "voice.wav", tts.FEATURE_SR)
        again = tts.VoiceBank(gen.bank.voices, gen.voice_cache_dir).distances(wav)  # fresh bank, from the cache
        assert min(again, key=again.__getitem__) == first["voice"]
        np.testing.assert_allclose([again[k] for k in sorted(again)],
                                   [first["distances"][k] for k in sorted(again)], atol=1e-4)
    assert chosen == PACK_CHOICE
    # multi-subject item m02 (slots 004, 006, 002): three distinct voices, here each subject's own nearest
    subjects = tuple(_subject(f"<S{k + 1}>", PACK / s / "faces" / "face_1.jpg", PACK / s / "voice.wav")
                     for k, s in enumerate(("id_004", "id_006", "id_002")))
    item = Item("t_m02", "multi", subjects, SCENE, tuple(Turn(s.anchor, "Hi.") for s in subjects))
    assert [v["voice"] for v in gen._match_voices(item).values()] == [PACK_CHOICE[s] for s in
                                                                      ("id_004", "id_006", "id_002")]


def test_generation_never_imports_the_aid_sim_speaker_model(gen: CascadeGenerator, tmp_path) -> None:
    """A fresh process loads the cascade, matches voices for an iap-mini item and generates it: resemblyzer (and
    the speaker backend that wraps it for AID-SIM) must never be imported."""
    face = _pack_faces()[0] if _pack_faces() else None
    voice = PACK / "id_003" / "voice.wav"
    if face is None or not voice.exists():
        missing_asset("iap-mini pack not built")
    code = f"""
import json, sys
from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn
from iap_bench.generators.base import build_generator
subject = Subject("<S1>", "S1", SubjectPrompt("a", "b", "c"), language="en", faces=({str(face)!r},),
                  voice={str(voice)!r})
item = Item("t", "single", (subject,), StructuredPrompt("a", "b", "c"),
            (Turn("<S1>", "He was not an ill disposed young man."),), duration_s=1.0)
gen = build_generator("cascade", voice_cache_dir={str(gen.voice_cache_dir)!r}, size=[128, 128])
out = gen.generate(item, seed=0)
desc = gen.describe()
print(json.dumps({{"voice": out.info["voices"]["<S1>"]["voice"], "matcher": desc["voice_matcher"]["method"],
                  "modules": sorted(m for m in sys.modules if "resemblyzer" in m or m == "iap_bench.backends.speaker"
                                    or m == "iap_bench.metrics.aid_sim")}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["modules"] == []
    assert res["matcher"] == tts.FEATURE_METHOD and res["voice"] == PACK_CHOICE["id_003"]
