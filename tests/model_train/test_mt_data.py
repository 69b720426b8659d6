"""Training-data format: toy set round trip, clip decoding/collate shapes, latent cache and padding."""

from __future__ import annotations

import json

import pytest
import torch

from model import data as D
from model.toy_data import make_toy_set

SHAPE = D.ClipShape(height=64, width=64, frames=5, fps=12.0, audio_samples=4096, ref_audio_samples=2048,
                    max_views=2)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_set(root, n_clips=3, shape=SHAPE, n_identities=3, views=2, pack=root / "no-pack")
    return root


def test_index_round_trip_and_determinism(toy_root, tmp_path):
    recs = D.read_index(toy_root)
    assert [r.id for r in recs] == ["clip000", "clip001", "clip002"]
    assert {len(r.subjects) for r in recs} == {1, 2}
    assert all(len(s.faces) == 2 and s.voice for r in recs for s in r.subjects)
    assert recs[0].caption["script"][0]["text"] == "toy line number 0"
    again = tmp_path / "again"
    make_toy_set(again, n_clips=3, shape=SHAPE, n_identities=3, views=2, pack=again / "no-pack")
    assert (again / "index.jsonl").read_bytes() == (toy_root / "index.jsonl").read_bytes()
    assert (again / "clips/clip001.wav").read_bytes() == (toy_root / "clips/clip001.wav").read_bytes()


def test_index_validation_names_missing_files(toy_root, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    rec = D.read_index(toy_root)[0]
    D.write_index(bad, [rec, rec])
    with pytest.raises(ValueError) as e:
        D.read_index(bad)
    assert "missing file clips/clip000.mp4" in str(e.value) and "duplicate id clip000" in str(e.value)
    assert json.loads((bad / "index.jsonl").read_text().splitlines()[0])["id"] == "clip000"


def test_clip_dataset_and_collate_shapes(toy_root):
    ds = D.ClipDataset(toy_root, SHAPE)
    s = ds[0]
    assert s.video.shape == (3, 5, 64, 64) and -1 <= s.video.min() and s.video.max() <= 1
    assert s.video.std() > 0.1  # real decoded content, not zeros
    assert s.audio.shape == (4096,) and s.audio.abs().max() > 0.05
    assert all(v.shape == (2048,) for v in s.voices) and all(len(f) == 2 for f in s.faces)
    b = D.collate_clips([ds[0], ds[1], ds[2]])
    assert b.video.shape == (3, 3, 5, 64, 64) and b.audio.shape == (3, 4096)
    assert [len(f) for f in b.faces] == [len(r.subjects) for r in ds.records]


def test_latent_cache_and_padded_collate(toy_root):
    from model.codecs import build_codecs
    from model.identity import pack_multiview

    codecs = build_codecs("tiny", 4, 4, 32, 16)
    out = D.precompute_latents(toy_root, codecs, SHAPE, lambda d: d["scene"], pack_multiview, audio_ref_len=8,
                               subdir="lat", progress=False)
    ds = D.LatentDataset(toy_root, "lat")
    assert len(ds) == 3 and (out / "meta.safetensors").exists() and ds.empty_text.shape == (16, 32)
    r = ds[0]
    assert r["video"].shape == (4, 2, 4, 4) and r["audio"].shape == (8, 4) and r["text"].shape == (16, 32)
    k0 = r["ref_video"].shape[0]
    assert r["ref_video"].shape == (k0, 4, 4, 4) and r["ref_audio"].shape == (k0, 8, 4)
    assert r["ref_audio_lens"].tolist() == [4] * k0  # 2048 samples -> 4 latents, padded to L = 8
    b = D.collate_latents([ds[i] for i in range(3)], k_max=4)
    assert b.video.shape == (3, 4, 2, 4, 4) and b.ref_video.shape == (3, 4, 4, 4, 4)
    assert b.ref_audio.shape == (3, 4, 8, 4) and b.id_mask.dtype == torch.bool
    assert b.id_mask.sum(1).tolist() == [ds[i]["ref_video"].shape[0] for i in range(3)]
    assert b.ref_video[~b.id_mask].abs().sum() == 0


def test_batch_indices_deterministic_and_cover_epoch():
    from model.train import batch_indices

    seen = [i for step in range(4) for i in batch_indices(8, 2, step, seed=0)]
    assert sorted(seen) == list(range(8))
    assert batch_indices(8, 2, 5, 0) == batch_indices(8, 2, 5, 0)
    ranks = [batch_indices(8, 2, 1, 0, rank=r, world=2) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert len(batch_indices(3, 4, 0, 0)) == 4  # small sets wrap around
