"""Fixtures for the training/codec/adapter tests: tiny config, synthetic latents, reference media files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest single-threaded (and do not thrash when other jobs share the 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_cfg():
    from model.config import IAPConfig

    return IAPConfig.tiny()


def synthetic_latent_records(cfg, n: int = 4, seed: int = 0) -> list[dict]:
    """Structured unit-scale latents (smooth video blobs, sinusoid audio) with refs, as LatentDataset records."""
    g = torch.Generator().manual_seed(seed)
    recs = []
    tv, hv, wv = cfg.video.max_latent_frames, 8, 8
    ta, L = cfg.audio.max_latent_len, cfg.identity.audio_ref_len
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, hv), torch.linspace(-1, 1, wv), indexing="ij")
    for i in range(n):
        cx, cy = float(torch.rand(1, generator=g) - 0.5), float(torch.rand(1, generator=g) - 0.5)
        blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 4)
        video = torch.stack([blob * (c + 1) * 0.5 * (-1) ** c for c in range(cfg.video.in_dim)])[:, None]
        video = video.expand(-1, tv, -1, -1).contiguous()
        tt = torch.arange(ta, dtype=torch.float32)[:, None]
        audio = torch.sin(tt * (0.3 + 0.1 * i) + torch.arange(cfg.audio.in_dim)[None]).contiguous()
        k = 1 + i % 2
        recs.append({
            "id": f"s{i}", "video": video, "audio": audio,
            "text": torch.randn(cfg.text_len, cfg.text_dim, generator=g) * 0.5,
            "ref_video": video[:, 0][None].repeat(k, 1, 1, 1),
            "ref_audio": audio[:L][None].repeat(k, 1, 1),
            "ref_audio_lens": torch.full((k,), L, dtype=torch.long),
        })
    return recs


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, recs, empty_text=None):
        self.recs, self.empty_text = recs, empty_text

    def __len__(self):
        return len(self.recs)

    def __getitem__(self, i):
        return self.recs[i]


@pytest.fixture
def latent_data(tiny_cfg):
    recs = synthetic_latent_records(tiny_cfg)
    return ListDataset(recs, empty_text=torch.zeros(tiny_cfg.text_len, tiny_cfg.text_dim))


def write_face(path: Path, color: tuple[int, int, int], size: int = 96) -> Path:
    from model.toy_data import draw_face

    Image.fromarray(draw_face(size, color, (30, 20, 10), (40, 90, 160))).save(path)
    return path


def write_voice(path: Path, pitch: float, seconds: float = 1.0) -> Path:
    from model.toy_data import synth_voice

    sf.write(str(path), synth_voice(pitch, 900.0, seconds, seed=1), 16000)
    return path


@pytest.fixture
def ref_media(tmp_path):
    """Two identities: two face views each and a voice clip."""
    out = {}
    for i, (col, pitch) in enumerate([((224, 172, 140), 120.0), ((170, 120, 90), 220.0)], 1):
        faces = (write_face(tmp_path / f"f{i}a.png", col), write_face(tmp_path / f"f{i}b.png", col, 80))
        out[i] = (faces, write_voice(tmp_path / f"v{i}.wav", pitch))
    return out


def np_seed() -> np.random.Generator:
    return np.random.default_rng(0)
