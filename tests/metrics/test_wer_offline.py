"""wer/offline on real speech (LibriVox clips) muxed into generated-sample mp4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import librivox_clips, make_item, write_sample

from iap_bench.media.refs import load_audio
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample


@pytest.fixture(scope="module")
def librivox_samples(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    d = tmp_path_factory.mktemp("librivox")
    clips = librivox_clips()
    assert len(clips) == 5
    return [(write_sample(d / f"{p.stem}.mp4", None, load_audio(p, 16000)), text) for p, text in clips]


def _samples(pairs: list[tuple[Path, str]], shift: int) -> list[EvalSample]:
    n = len(pairs)
    return [EvalSample(make_item(f"lv{i}", [()], [None], [pairs[(i + shift) % n][1]]), SampleMedia(pairs[i][0]))
            for i in range(n)]


def test_own_transcript_low_other_transcript_high(wer_metric, librivox_samples) -> None:
    out = wer_metric.score(_samples(librivox_samples, 0) + _samples(librivox_samples, 1))  # one batch
    own, other = out[:5], out[5:]
    own_w = [v.value for v in own]
    other_w = [v.value for v in other]
    print("\nWER own transcript:", np.round(own_w, 3), "mean", round(float(np.mean(own_w)), 3))
    print("WER other transcript:", np.round(other_w, 3), "mean", round(float(np.mean(other_w)), 3))
    for v in own:
        print("  hyp:", v.extras["hyp"])
    assert all(v.failure is None for v in own + other)
    assert np.mean(own_w) <= 0.15
    assert min(other_w) >= 0.8
    assert all(v.extras["over_0.5"] for v in other) and not any(v.extras["over_0.5"] for v in own)
    assert wer_metric.direction == "lower" and wer_metric.backend == "offline-whisper-tiny.en"


def test_bad_samples_are_recorded_failures(wer_metric, tmp_path: Path) -> None:
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(16000 * 2, np.float32))
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=2.0)
    missing = tmp_path / "missing.mp4"
    good_item = make_item("x", [()], [None], ["hello there"])
    zh_item = make_item("z", [()], [None], ["你好"], lang="zh")
    out = wer_metric.score([EvalSample(good_item, SampleMedia(silent)), EvalSample(good_item, SampleMedia(mute)),
                            EvalSample(good_item, SampleMedia(missing)), EvalSample(zh_item, SampleMedia(silent))])
    assert [v.failure for v in out] == ["silent", "no_audio", "decode_error", "unsupported_language:zh"]
    assert all(v.value is None for v in out)


def test_checkpoint_id_is_model_dir_hash(wer_metric) -> None:
    cid = wer_metric.checkpoint_id()
    assert len(cid) == 64 and cid == wer_metric._asr.checkpoint_sha256
    assert wer_metric.identity()["backend"] == "offline-whisper-tiny.en"
