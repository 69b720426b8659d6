"""Metric identity, reference inputs, pinned weights, explicit fallbacks and launch-dir paths (items 2, 9, 10)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from iap_bench.benchmark.inputs import item_inputs_hash
from iap_bench.errors import IAPBenchError, MissingCheckpointError
from iap_bench.metrics.base import MetricValue, build_metric, params_key
from iap_bench.metrics.policy import apply_policy, is_sample_fault
from iap_bench.weights import ChecksumMismatchError, WeightSpec
from tests.trust.trust_helpers import mini, with_transcript


@pytest.mark.parametrize("name, change", [
    ("wer/offline", {"beam_size": 1}),
    ("aid_sim/offline", {"win_s": 2.0}),
    ("aid_sim/offline", {"vad": "webrtc"}),
])
def test_every_parameter_changes_the_identity(name: str, change: dict) -> None:
    base, other = build_metric(name).identity(), build_metric(name, **change).identity()
    assert base["params"] != other["params"]
    assert {k: v for k, v in base.items() if k != "params"} == {k: v for k, v in other.items() if k != "params"}
    assert build_metric(name).identity() == base  # and nothing else does


def test_weight_paths_do_not_change_the_identity(tmp_path: Path) -> None:
    """Where a file lies is not what it is: the checkpoint hash covers it."""
    from iap_bench.backends.speaker import resemblyzer_weight_spec

    src = resemblyzer_weight_spec().resolve()
    copy = tmp_path / "pretrained.pt"
    copy.write_bytes(src.read_bytes())
    assert build_metric("aid_sim/offline", weights=str(copy)).identity() == build_metric("aid_sim/offline").identity()


def test_auxiliary_models_are_in_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    import iap_bench.media.audio as audio

    m = build_metric("aid_sim/offline")
    before = m.identity()["params"]
    assert "vad" in m.identity_params()["aux"] and "resampler" in m.identity_params()["aux"]
    monkeypatch.setattr(audio, "resampler_identity", lambda: "soxr 0.0 LQ")
    assert m.identity()["params"] != before


def test_params_key_is_order_independent() -> None:
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": [1, 2], "a": 1})
    assert params_key({"a": 1}) != params_key({"a": 2})


def test_inputs_hash_follows_text_and_reference_content(tmp_path: Path) -> None:
    bench = mini()
    item = bench.items[0]
    h = item_inputs_hash(item)
    assert item_inputs_hash(with_transcript(bench, item.id, "other words").item(item.id)) != h
    # the same reference bytes at another path: same inputs; other bytes: other inputs
    s = item.subjects[0]
    moved = tmp_path / "voice.wav"
    moved.write_bytes(Path(s.voice).read_bytes())
    same = dataclasses.replace(item, subjects=(dataclasses.replace(s, voice=moved), *item.subjects[1:]))
    assert item_inputs_hash(same) == h
    moved.write_bytes(Path(s.voice).read_bytes()[:-100])
    from iap_bench.hashing import _CACHE

    _CACHE.clear()
    assert item_inputs_hash(same) != h
    multi = next(i for i in bench.items if len(i.subjects) > 1)  # subject order is part of the inputs
    swapped = dataclasses.replace(multi, subjects=tuple(reversed(multi.subjects)))
    assert item_inputs_hash(swapped) != item_inputs_hash(multi)


def test_policy_penalises_sample_faults_only() -> None:
    assert apply_policy(1.0, MetricValue.fail("silent")).value == 1.0
    assert apply_policy(0.0, MetricValue.fail("generation_failed: no output")).value == 0.0
    assert apply_policy(None, MetricValue.fail("no_face")).value is None  # unbounded: excluded
    assert apply_policy(1.0, MetricValue.fail("unsupported_language:zh")).value is None
    assert apply_policy(0.0, MetricValue.fail("no_face_in_reference")).value is None
    assert not is_sample_fault("unbound_reference") and is_sample_fault("no_speech: 0.1 s")
    kept = apply_policy(1.0, MetricValue.fail("silent"))
    assert kept.failure == "silent" and kept.extras["penalised"]


def test_pinned_weights_mismatch_names_both_hashes(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    spec = WeightSpec("toy", "w.bin", "make it", search_paths=(str(tmp_path),), sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError) as e:
        spec.resolve()
    from iap_bench.hashing import file_sha256

    assert "0" * 64 in str(e.value) and file_sha256(f) in str(e.value)  # both hashes named
    assert spec.resolve(allow_mismatch=True) == f
    with pytest.raises(MissingCheckpointError, match="w2.bin"):
        WeightSpec("toy", "w2.bin", "make it", search_paths=(str(tmp_path),)).resolve()


def test_silero_failure_is_an_error_not_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import iap_bench.backends.speaker as speaker

    class Broken:
        def __init__(self) -> None:
            raise OSError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(speaker, "SileroRegions", Broken)
    enc = speaker.SpeakerEncoder()
    with pytest.raises(IAPBenchError, match="vad: webrtc"):
        enc.speech_regions(np.zeros(16000, np.float32))
    assert speaker.SpeakerEncoder(vad="webrtc").vad_name.startswith("webrtcvad")


def test_missing_resampler_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import iap_bench.media.audio as audio

    monkeypatch.setattr(audio, "HAVE_SOXR", False)
    with pytest.raises(IAPBenchError, match="soxr"):
        audio.resample(np.zeros(100, np.float32), 48000, 16000)


def test_relative_paths_are_relative_to_the_launch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 9: a relative store path never resolves into the checkout, even when the checkout has one."""
    import iap_bench.cli as cli

    monkeypatch.chdir(tmp_path)
    assert cli.resolve_path("README.md") == tmp_path / "README.md"  # exists in the repo, not here
    assert cli.resolve_path("outputs/iap-bench.sqlite") == tmp_path / "outputs" / "iap-bench.sqlite"
    assert Path(cli.data_path("iap-mini/manifest.yaml")).is_file()


def test_shipped_speaker_weights_are_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A different file at the expected place is refused unless the override is set (then recorded)."""
    from iap_bench.backends.speaker import resemblyzer_weight_spec
    from iap_bench.weights import ALLOW_ENV

    spec = resemblyzer_weight_spec()
    assert spec.sha256 and spec.resolve()  # the packaged file matches its pin
    fake = tmp_path / "pretrained.pt"
    fake.write_bytes(b"not the GE2E weights")
    with pytest.raises(ChecksumMismatchError, match=spec.sha256):
        spec.resolve(str(fake))
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert spec.resolve(str(fake)) == fake
