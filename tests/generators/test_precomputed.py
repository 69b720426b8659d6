"""The precomputed adapter finds existing sample files, reports missing ones, and muxes video + wav layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

import iap_bench.generators.precomputed  # noqa: F401  (registers the adapter)
from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn
from iap_bench.errors import MediaError
from iap_bench.generators.base import Generator, build_generator
from iap_bench.media.sample import SampleMedia
from iap_bench.media.writer import mux_mp4, write_mp4

ROOT = Path(__file__).resolve().parents[2]


def _item(item_id: str) -> Item:
    subject = Subject("<S1>", "id_01", SubjectPrompt("a person", "talks", "calm"))
    return Item(item_id, "single", (subject,), StructuredPrompt("a room", "static", "quiet"),
                (Turn("<S1>", "hello there"),), duration_s=1.0)


def _video(n: int = 10) -> np.ndarray:
    v = np.zeros((n, 32, 48, 3), np.uint8)
    for i in range(n):
        v[i, 8:16, i:i + 8] = 255
    return v


def _tone(sr: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 300 * np.arange(int(0.4 * sr)) / sr)).astype(np.float32)


def test_finds_mp4_and_reports_missing(tmp_path):
    write_mp4(tmp_path / "it_001.mp4", _video(), 25, _tone(24000), 24000)
    gen = build_generator("precomputed", samples_dir=str(tmp_path), label="ModelX")
    assert isinstance(gen, Generator)
    gen.load()
    caps = gen.capabilities
    assert caps.multi_subject and caps.multi_view and caps.voice_reference
    s = gen.generate(_item("it_001"), seed=0)
    assert s.source == tmp_path / "it_001.mp4" and s.source_audio is None
    assert (s.fps, s.sample_rate) == (25.0, 24000)
    with pytest.raises(MediaError) as e:
        gen.generate(_item("it_002"), seed=0)
    assert e.value.reason == "missing_sample" and "it_002.mp4" in e.value.detail
    d = gen.describe()
    assert d["samples_dir"] == str(tmp_path) and d["label"] == "ModelX"


def test_video_plus_wav_layout(tmp_path):
    (tmp_path / "video").mkdir()
    (tmp_path / "audio").mkdir()
    write_mp4(tmp_path / "video" / "a.mp4", _video(), 25)
    sf.write(tmp_path / "audio" / "a.wav", _tone(16000), 16000)
    gen = build_generator("precomputed", samples_dir=tmp_path, pattern="video/{item_id}.mp4",
                          audio_pattern="audio/{item_id}.wav")
    s = gen.generate(_item("a"), seed=3)
    assert s.source_audio == tmp_path / "audio" / "a.wav" and s.sample_rate == 16000
    out = mux_mp4(s.source, s.source_audio, tmp_path / "muxed.mp4").path  # what the runner does with it
    m = SampleMedia(out)
    assert m.n_frames == 10 and len(m.audio(16000)) == pytest.approx(0.4 * 16000, abs=0.05 * 16000)
    (tmp_path / "audio" / "a.wav").unlink()
    with pytest.raises(MediaError) as e:
        gen.generate(_item("a"), seed=3)
    assert e.value.reason == "missing_sample"


def test_config_and_bad_dir(tmp_path):
    cfg = OmegaConf.load(ROOT / "conf" / "generator" / "precomputed.yaml")
    assert cfg.name == "precomputed"
    assert OmegaConf.is_missing(cfg.params, "samples_dir")
    assert cfg.params.pattern == "{item_id}.mp4" and cfg.params.audio_pattern is None
    with pytest.raises(ValueError):
        build_generator("precomputed", samples_dir="???")
    with pytest.raises(FileNotFoundError):
        build_generator("precomputed", samples_dir=tmp_path / "nope").load()
