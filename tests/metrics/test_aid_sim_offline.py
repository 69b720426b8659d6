"""aid_sim/offline on real voices (flite slt/kal/awb/rms) muxed into generated-sample mp4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import make_item, write_sample

from iap_bench.media.refs import load_audio
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.aid_sim import assign_windows
from iap_bench.metrics.base import EvalSample

OTHER_VOICES = ("kal", "awb", "rms")


def _single(tmp: Path, voices: dict[str, Path], gen: str, ref: str) -> EvalSample:
    path = write_sample(tmp / f"{gen}.mp4", None, load_audio(voices[gen], 16000))
    return EvalSample(make_item(f"{gen}-vs-{ref}", [()], [voices[ref]], ["x"]), SampleMedia(path))


def test_same_voice_beats_other_voices_by_a_clear_margin(aid_metric, voices, tmp_path: Path) -> None:
    # generated speech: sentence "a"; references: sentence "b" (same voice, different words) or other voices
    samples = [_single(tmp_path, voices, "slt_a", "slt_b")]
    samples += [_single(tmp_path, voices, "slt_a", f"{v}_b") for v in OTHER_VOICES]
    samples += [_single(tmp_path, voices, "kal_a", "kal_b"), _single(tmp_path, voices, "kal_a", "slt_b")]
    out = aid_metric.score(samples)
    vals = [v.value for v in out]
    print("\nAID-SIM slt_a vs slt_b (same):", round(vals[0], 3),
          "| vs kal/awb/rms:", [round(x, 3) for x in vals[1:4]],
          "| kal_a vs kal_b (same):", round(vals[4], 3), "| kal_a vs slt_b:", round(vals[5], 3))
    assert all(v.failure is None for v in out)
    assert vals[0] - max(vals[1:4]) >= 0.25 and vals[0] - float(np.mean(vals[1:4])) >= 0.3
    assert vals[4] - vals[5] >= 0.3
    assert min(vals[0], vals[4]) >= 0.75


def test_multi_subject_windows_go_to_the_right_speaker(aid_metric, voices, tmp_path: Path) -> None:
    # dialogue: slt says "a", pause, kal says "a", pause, slt says "c"; references are other sentences
    gap = np.zeros(8000, np.float32)
    dialogue = np.concatenate([load_audio(voices["slt_a"], 16000), gap, load_audio(voices["kal_a"], 16000), gap,
                               load_audio(voices["slt_c"], 16000)])
    path = write_sample(tmp_path / "dialogue.mp4", None, dialogue)
    both = make_item("d", [(), ()], [voices["slt_b"], voices["kal_b"]], ["x", "y"])
    swapped = make_item("d2", [(), ()], [voices["kal_b"], voices["slt_b"]], ["x", "y"])
    wrong = make_item("d3", [(), ()], [voices["awb_b"], voices["rms_b"]], ["x", "y"])
    out = aid_metric.score([EvalSample(i, SampleMedia(path)) for i in (both, swapped, wrong)])
    right, swap, bad = out
    print("\nAID-SIM multi right:", right.value, right.extras)
    print("AID-SIM multi swapped refs:", swap.extras["per_subject"], swap.extras["windows_per_subject"])
    print("AID-SIM multi wrong voices:", bad.value, bad.extras["per_subject"])
    n1, n2 = right.extras["windows_per_subject"]["<S1>"], right.extras["windows_per_subject"]["<S2>"]
    assert n1 > n2 > 0  # slt speaks about twice as long as kal
    assert swap.extras["windows_per_subject"] == {"<S1>": n2, "<S2>": n1}  # assignment follows the voice
    assert swap.extras["per_subject"]["<S1>"] == pytest.approx(right.extras["per_subject"]["<S2>"], abs=1e-6)
    assert min(right.extras["per_subject"].values()) >= 0.7
    assert right.value - bad.value >= 0.2
    assert right.extras["vad"].startswith(("silero", "webrtcvad"))


def test_assign_windows_pure() -> None:
    refs = np.eye(3, 4, dtype=np.float32)[:2]  # [2,4]
    w = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.7, 0.3, 0, 0]], np.float32)
    vals, counts = assign_windows(w, refs)
    assert counts == [2, 1] and vals == pytest.approx([0.8, 0.8])
    assert assign_windows(np.zeros((0, 4), np.float32), refs) == ([0.0, 0.0], [0, 0])


def test_bad_samples_and_references_are_recorded_failures(aid_metric, voices, tmp_path: Path) -> None:
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(32000, np.float32))
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=2.0)
    hum = write_sample(tmp_path / "hum.mp4", None, np.full(4000, 0.01, np.float32))  # 0.25 s: too short
    quiet_ref = tmp_path / "quiet.wav"
    import soundfile as sf

    sf.write(quiet_ref, np.zeros(16000, np.float32), 16000)
    good = make_item("g", [()], [voices["slt_b"]], ["x"])
    bad_ref = make_item("b", [()], [quiet_ref], ["x"])
    unbound = make_item("u", [()], [None], ["x"])
    speech = write_sample(tmp_path / "speech.mp4", None, load_audio(voices["slt_a"], 16000))
    multi_silent = make_item("m", [(), ()], [voices["slt_b"], voices["kal_b"]], ["x", "y"])
    out = aid_metric.score([EvalSample(good, SampleMedia(silent)), EvalSample(good, SampleMedia(mute)),
                            EvalSample(good, SampleMedia(hum)), EvalSample(bad_ref, SampleMedia(speech)),
                            EvalSample(unbound, SampleMedia(speech)), EvalSample(good, SampleMedia(speech)),
                            EvalSample(multi_silent, SampleMedia(hum))])
    assert [v.failure for v in out] == ["silent", "no_audio", "no_speech", "no_speech_in_reference",
                                        "unbound_reference", None, "no_speech"]
    assert out[5].value is not None and out[5].value > 0.7
