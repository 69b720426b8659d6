"""sync/offline (mouth aperture vs speech envelope, SyncNet offset search, no checkpoint): pure pieces, failure
reasons, and the METRICS.md §5 Sync controls on real talking clips (cascade generator on iap-mini items)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from iap_bench.backends.mouth_sync import (
    interpolate_boxes,
    mouth_aperture,
    offset_search,
    speech_envelope,
    znorm,
)
from iap_bench.metrics.base import EvalSample, build_metric
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.metrics.sync_offline import OfflineSync, score_tracks
from tests.asset_policy import missing_asset

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "benchmark_data" / "iap-mini"
SR, FPS = 16000, 25


# ---- pure pieces ----------------------------------------------------------------------------------------
def _smooth_noise(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n + 8)
    return np.convolve(x, np.hanning(7) / np.hanning(7).sum(), mode="same")[4:n + 4]


def test_speech_envelope_frames_floor_and_end() -> None:
    t = np.arange(SR) / SR
    audio = np.concatenate([0.5 * np.sin(2 * np.pi * 250 * t), np.zeros(SR)]).astype(np.float32)
    env = speech_envelope(audio, SR, FPS, 52)  # 2 s of audio = 50 frames; 2 more frames have no audio
    assert env.shape == (52,) and np.isnan(env[50:]).all()
    assert np.allclose(env[:25], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.05)  # 250 Hz: 10 whole cycles per 40 ms frame
    assert np.allclose(env[25:50], env[:25].max() - 40.0)  # silence sits on the 40 dB floor


def test_mouth_aperture_is_scale_free() -> None:
    lm = np.zeros((68, 2))
    lm[48], lm[54] = (0, 0), (40, 0)
    lm[[61, 62, 63], 1], lm[[67, 66, 65], 1] = -5, 5  # inner lips 10 px apart
    assert mouth_aperture(lm) == pytest.approx(0.25)
    assert mouth_aperture(np.stack([lm, 3 * lm + 7])) == pytest.approx([0.25, 0.25])


def test_znorm_and_constant_series() -> None:
    z = znorm(np.array([1.0, 2.0, np.nan, 3.0]))
    assert np.isnan(z[2]) and np.nanmean(z) == pytest.approx(0) and np.nanstd(z) == pytest.approx(1)
    assert (znorm(np.full(5, 3.0)) == 0).all()


@pytest.mark.parametrize("delay", [-9, -3, 0, 4, 12])
def test_offset_search_recovers_a_known_delay(delay: int) -> None:
    """Audio delayed by d frames (audio[i + d] = video[i]) gives SyncNet's offset -d and a clear confidence."""
    n = 150
    s = _smooth_noise(n + 40, 0)
    video = s[20:20 + n]
    audio = s[20 - delay:20 - delay + n]
    r = offset_search(video, audio, vshift=15)
    assert r.offset == -delay and r.min_dist < 1e-9
    assert r.offsets[0] == 15 and r.offsets[-1] == -15 and r.dists.shape == (31,)
    assert r.conf > 0.8


def test_offset_search_unrelated_and_flat() -> None:
    a, b = _smooth_noise(150, 1), _smooth_noise(150, 2)
    assert offset_search(a, b).conf < 0.4
    flat = offset_search(np.zeros(150), b)
    assert flat.conf == 0.0 and (flat.dists == 1.0).all()
    partial = np.full(150, np.nan)
    partial[40:100] = a[40:100]  # a track on part of the clip: only its frames count
    r = offset_search(partial, a)
    assert r.offset == 0 and r.n_frames == 60


def test_interpolate_boxes() -> None:
    span, boxes = interpolate_boxes(np.array([10, 15]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]]))
    assert span.tolist() == list(range(10, 16))
    assert boxes[:, 0].tolist() == [0, 1, 2, 3, 4, 5] and (boxes[:, 3] == 10).all()


def test_no_track_is_no_face_and_scores_worst() -> None:
    v = score_tracks([], np.ones(SR, np.float32), 25)
    assert v.failure == "no_face"
    assert apply_metric_policy(OfflineSync(), v).value == 0.0


# ---- the metric on files -----------------------------------------------------------------------------------
def _sample(path: Path, item) -> EvalSample:  # noqa: ANN001
    from iap_bench.media.sample import SampleMedia

    return EvalSample(item, SampleMedia(path))


@pytest.fixture(scope="module")
def mini_items():  # noqa: ANN201
    from iap_bench.benchmark.loader import load_benchmark

    if not (MINI / "pack" / "id_001" / "voice.wav").exists():
        missing_asset("iap-mini pack not built")
    return {i.id: i for i in load_benchmark(MINI / "manifest.yaml", MINI / "pack").items}


@pytest.fixture(scope="module")
def metric() -> OfflineSync:
    m = build_metric("sync/offline")
    m.load()
    return m


def test_identity_and_registration(metric: OfflineSync) -> None:
    ident = metric.identity()
    assert ident["metric"] == "sync_offline" and ident["backend"] == "offline-landmarks"
    assert len(ident["checkpoint"]) == 64  # dlib's landmark predictor, the only weights
    assert metric.params()["vshift"] == 15 and metric.worst == 0.0 and metric.direction == "higher"


def test_failure_reasons(metric: OfflineSync, mini_items, tmp_path: Path) -> None:  # noqa: ANN001
    from iap_bench.media.writer import write_mp4

    item = mini_items["mini_s01"]
    gray = np.full((50, 128, 128, 3), 90, np.uint8)
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(2 * SR) / SR)).astype(np.float32)
    write_mp4(tmp_path / "mute.mp4", gray, FPS)
    write_mp4(tmp_path / "silent.mp4", gray, FPS, np.zeros(2 * SR, np.float32), SR)
    write_mp4(tmp_path / "faceless.mp4", gray, FPS, tone, SR)
    got = metric.score([_sample(tmp_path / f"{n}.mp4", item) for n in ("mute", "silent", "faceless", "absent")])
    assert [v.failure.split(":")[0] for v in got] == ["no_audio", "silent", "no_face", "decode_error"]
    assert [apply_metric_policy(metric, v).value for v in got] == [0.0, 0.0, 0.0, 0.0]


# ---- METRICS.md §5 controls on real talking clips ----------------------------------------------------------
def _shift(audio: np.ndarray, seconds: float) -> np.ndarray:
    """Delay (seconds > 0) or advance the audio, same length, zero fill."""
    n = int(round(abs(seconds) * SR))
    z = np.zeros(n, np.float32)
    return np.concatenate([z, audio[:len(audio) - n]]) if seconds > 0 else np.concatenate([audio[n:], z])


@pytest.fixture(scope="module")
def controls(mini_items, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: ANN001
    """Cascade clips of mini_s01 in sync, audio delayed 1.0 s / 0.3 s / advanced 0.3 s, mini_s02's audio, and a
    still frame with s01's audio; all re-muxed from the generator's frames with ``write_mp4``."""
    if shutil.which("flite") is None or shutil.which("text2wave") is None:
        missing_asset("the cascade generator needs apt packages flite and festival")
    from iap_bench.generators.base import build_generator
    from iap_bench.media.writer import write_mp4

    gen = build_generator("cascade")
    gen.load()
    a, b = (gen.generate(mini_items[k], seed=0) for k in ("mini_s01", "mini_s02"))
    assert a.fps == FPS and a.sample_rate == SR
    other = np.pad(b.audio[:len(a.audio)], (0, max(0, len(a.audio) - len(b.audio))))
    d = tmp_path_factory.mktemp("sync")
    variants = {"sync": (a.video, a.audio), "late_1.0": (a.video, _shift(a.audio, 1.0)),
                "late_0.3": (a.video, _shift(a.audio, 0.3)), "early_0.3": (a.video, _shift(a.audio, -0.3)),
                "other": (a.video, other), "still": (np.repeat(a.video[:1], len(a.video), 0), a.audio)}
    for name, (video, audio) in variants.items():
        write_mp4(d / f"{name}.mp4", video, FPS, audio, SR)
    return {name: d / f"{name}.mp4" for name in variants}


def test_sync_controls_order_and_offset(metric: OfflineSync, mini_items, controls: dict[str, Path]) -> None:  # noqa: ANN001
    item = mini_items["mini_s01"]
    t0 = time.perf_counter()
    got = dict(zip(controls, metric.score([_sample(p, item) for p in controls.values()])))
    per_clip = (time.perf_counter() - t0) / len(controls)
    conf = {k: v.value for k, v in got.items()}
    off = {k: v.extras["offset"] for k, v in got.items()}
    print(f"\nsync/offline controls: conf={conf} offset={off} {per_clip:.2f} s/clip")
    assert all(v.failure is None and v.extras["n_tracks"] == 1 for v in got.values())
    # positive control: a clear peak at offset 0 (measured 0.57)
    assert conf["sync"] > 0.4 and off["sync"] == 0
    # negatives: 1.0 s shift (outside ±0.6 s) and another item's audio drop by a wide margin (measured 0.12, 0.21)
    assert conf["sync"] - conf["late_1.0"] > 0.25 and conf["sync"] - conf["other"] > 0.25
    assert conf["still"] == 0.0 and off["still"] is None  # a still mouth carries no evidence
    # a 0.3 s shift (7.5 frames) stays inside the search: the offset moves, SyncNet sign (delay d -> -d)
    assert abs(off["late_0.3"] + 7.5) <= 2 and abs(off["early_0.3"] - 7.5) <= 2
    assert conf["late_0.3"] > 0.4 and conf["early_0.3"] > 0.4
    assert len(got["sync"].extras["dist_curve"]) == 31 and min(got["sync"].extras["dist_curve"]) == \
        got["sync"].extras["dist_curve"][15]  # the curve runs -15..+15: offset 0 in the middle
