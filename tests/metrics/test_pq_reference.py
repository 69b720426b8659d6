"""pq/reference (Audiobox Aesthetics): parity with the package's own predictor, strict loading, windowing.

PARITY. ``iap_bench.testing.pq.write_random_weights`` writes a seeded random checkpoint in the released
``checkpoint.pt`` format; the package's ``initialize_predictor(ckpt).forward`` (``package_scores``) and this
project's batched ``score`` then score the same real wav files: an iap-mini voice (< 10 s, one window, 59 %
padding) and three iap-mini voices concatenated (13.9 s: two windows, the second 39 % valid, so the
valid-fraction weighting is exercised). The package's file-path reading needs FFmpeg and the removed
``torchaudio.info``, so ``package_scores`` reads each wav with soundfile and passes the tensor (PACKAGES.md).
Both read the same 16-bit PCM samples (PyAV and soundfile both scale by 1/32768), at 16 kHz, mono, so the
package's torchaudio resampling is the identity and its per-channel resample-then-average (METRICS.md §0; the
harness mixes to mono first, then resamples with soxr) makes no difference for these files. What remains is
float rounding: the harness batches windows of several clips and takes the weighted mean in float64, the
package in float32. Tolerance: 1e-4 on the 1-10 scale (measured: about 1e-6).

A second check quantifies the one protocol difference (METRICS.md §0) on a 48 kHz stereo file: the package
resamples each channel with torchaudio and averages; the harness mixes first and resamples with soxr HQ.
Tolerance 0.02 (measured: about 1e-3 with these random weights).

The METRICS.md §5 control (clean speech vs degraded speech, a drop of 2 points) needs the real weights: with
random weights it means nothing, so the protocol pieces (windows, padding mask, weights, de-normalisation)
are tested as pure functions instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asset_policy import missing_asset
from metric_media import PACK, write_sample

from iap_bench.errors import IAPBenchError, MissingCheckpointError
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics import pq
from iap_bench.metrics._ckpt import CheckpointKeyError, load_strict
from iap_bench.metrics.base import EvalSample
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.testing import pq as tpq
from iap_bench.weights import ROOT_ENV

PARITY_TOL = 1e-4


@pytest.fixture(scope="module")
def weights_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pq_weights")
    tpq.write_random_weights(root, seed=0)
    return root


@pytest.fixture(scope="module")
def metric(weights_root: Path) -> pq.AudioboxPQ:
    m = pq.AudioboxPQ(checkpoint=str(weights_root / tpq.ROOT_SUBPATH))
    m.load()
    return m


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real speech (committed iap-mini voices) as 16 kHz PCM wavs: 'short' 4.1 s, 'long' 13.9 s."""
    import soundfile as sf

    voices = [PACK / f"id_00{i}" / "voice.wav" for i in (1, 3, 4, 5)]
    for v in voices:
        if not v.is_file():
            missing_asset(f"committed iap-mini voice {v}")
    d = tmp_path_factory.mktemp("pq_clips")
    long = np.concatenate([sf.read(str(v), dtype="int16")[0] for v in voices[1:]])
    sf.write(str(d / "long.wav"), long, 16000, subtype="PCM_16")
    return {"short": voices[0], "long": d / "long.wav"}


# ---- parity ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_score_matches_the_package_predictor(metric: pq.AudioboxPQ, weights_root: Path,
                                             clips: dict[str, Path]) -> None:
    names = ["short", "long"]
    wavs = [clips[n] for n in names]
    ours = metric.score([EvalSample(None, SampleMedia(w)) for w in wavs])  # one batch, windows of all clips
    theirs = tpq.package_scores(weights_root, wavs, [None] * len(wavs))
    diff = np.abs(np.array([v.value for v in ours]) - np.array(theirs))
    print("\nPQ harness:", [round(v.value, 6) for v in ours], "package:", np.round(theirs, 6),
          "max |diff|:", float(diff.max()))
    assert all(v.failure is None for v in ours)
    assert diff.max() < PARITY_TOL
    assert [v.extras["n_windows"] for v in ours] == [1, 2]
    for v in ours:
        assert set(v.extras) >= set(pq.AXES) and v.extras["PQ"] == v.value
        assert all(np.isfinite(v.extras[a]) for a in pq.AXES)
    # not trivially equal: the two clips score differently by far more than the tolerance
    assert abs(ours[0].value - ours[1].value) > 10 * PARITY_TOL


@pytest.mark.slow
def test_stereo_48k_differs_only_by_the_resampler(metric: pq.AudioboxPQ, weights_root: Path,
                                                  clips: dict[str, Path], tmp_path: Path) -> None:
    import soundfile as sf
    import soxr

    x, _ = sf.read(str(clips["short"]), dtype="float32")
    up = soxr.resample(x, 16000, 48000, quality="HQ").astype(np.float32)
    stereo = tmp_path / "stereo48k.wav"
    sf.write(str(stereo), np.stack([up, 0.5 * up], axis=1), 48000, subtype="FLOAT")
    (ours,) = metric.score([EvalSample(None, SampleMedia(stereo))])
    (theirs,) = tpq.package_scores(weights_root, [stereo], [None])
    print(f"\nstereo 48 kHz: harness {ours.value:.6f} package {theirs:.6f} diff {ours.value - theirs:.2e}")
    assert abs(ours.value - theirs) < 0.02


# ---- protocol pieces (pure) -------------------------------------------------------------------------------
def test_windows_hop_10s_and_zero_pad_the_last() -> None:
    sr = 100  # small rate: 10 s windows of 1000 samples
    x = np.arange(1, 2501, dtype=np.float32)  # 25 s
    w, lengths = pq.make_windows(x, 10 * sr, 10 * sr)
    assert w.shape == (3, 1000) and lengths.tolist() == [1000, 1000, 500]
    assert np.array_equal(w[2, :500], x[2000:]) and not w[2, 500:].any()
    assert pq.window_weights(lengths, 10 * sr).tolist() == [1.0, 1.0, 0.5]
    w, lengths = pq.make_windows(np.ones(2000, np.float32), 1000, 1000)  # exact multiple: no empty window
    assert lengths.tolist() == [1000, 1000]
    w, lengths = pq.make_windows(np.ones(2001, np.float32), 1000, 1000)  # one sample over: a tiny window
    assert lengths.tolist() == [1000, 1000, 1] and pq.window_weights(lengths, 1000)[-1] == 0.001
    w, lengths = pq.make_windows(np.ones(300, np.float32), 1000, 1000)  # a short clip: one padded window
    assert w.shape == (1, 1000) and lengths.tolist() == [300] and not w[0, 300:].any()


def test_clip_score_is_the_valid_fraction_weighted_mean() -> None:
    preds = np.array([2.0, 4.0, 7.0, 5.0])
    weights = np.array([1.0, 0.5, 1.0, 0.3])
    owner = np.array([0, 0, 1, 2])
    out = pq.weighted_clip_means(preds, weights, owner, 3)
    assert np.allclose(out, [(2 + 4 * 0.5) / 1.5, 7.0, 5.0])
    assert np.allclose(pq.denormalise(np.array([0.0, 1.0, -2.0]), 6.5, 1.5), [6.5, 8.0, 3.5])


def test_package_autocast_is_never_enabled(metric: pq.AudioboxPQ) -> None:
    """The random checkpoint asks for bf16 (``model_cfg['precision']``), yet the package's own module disables
    autocast: it tests the mapped dtype's name against {'16', 'bf16'} (pq.py's docstring relies on this)."""
    import torch

    assert tpq.MODEL_CFG["precision"] == "bf16"
    assert metric._model.precision == torch.bfloat16 and metric._model.enable_autocast is False


# ---- loading ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def released(weights_root: Path) -> dict:
    import torch

    return torch.load(str(weights_root / tpq.ROOT_SUBPATH), map_location="cpu", weights_only=True, mmap=True)


def test_checkpoint_format_is_read_like_the_package(released: dict) -> None:
    assert set(released) == {"state_dict", "model_cfg", "target_transform"}
    assert all(k.startswith("model.") for k in released["state_dict"])
    kwargs, tt, state = pq.state_from_checkpoint(released, "released")
    assert kwargs == {k: tpq.MODEL_CFG[k] for k in pq.MODEL_CFG_KEYS} and tt == tpq.TARGET_TRANSFORM
    assert not any(k.startswith("model.") for k in state) and len(state) == len(released["state_dict"])
    with pytest.raises(IAPBenchError, match="target_transform"):
        pq.state_from_checkpoint({"state_dict": {}, "model_cfg": {}}, "x.pt")
    with pytest.raises(IAPBenchError, match="lacks \\['nth_layer'\\]"):
        pq.state_from_checkpoint({**released, "model_cfg": {k: v for k, v in tpq.MODEL_CFG.items()
                                                            if k != "nth_layer"}}, "x.pt")
    with pytest.raises(IAPBenchError, match="'PQ'"):
        tt = {a: v for a, v in tpq.TARGET_TRANSFORM.items() if a != "PQ"}
        pq.state_from_checkpoint({**released, "target_transform": tt}, "x.pt")


def test_wrong_prefix_missing_key_and_wrong_shape_are_refused(metric: pq.AudioboxPQ, released: dict) -> None:
    import torch

    model = metric._model  # the check runs before anything is loaded: the shared model is left intact
    sd = released["state_dict"]
    wrong_prefix = {"module." + k[len("model."):]: v for k, v in sd.items()}
    with pytest.raises(CheckpointKeyError) as e:
        load_strict(model, pq.state_from_checkpoint({**released, "state_dict": wrong_prefix}, "x")[2], "x")
    msg = str(e.value)
    assert "module.layer_weights.CE" in msg and f"{len(sd)} missing" in msg and f"{len(sd)} unexpected" in msg
    missing = {k: v for k, v in sd.items() if k != "model.proj_layer.PQ.0.weight"}
    with pytest.raises(CheckpointKeyError, match=r"1 missing key\(s\): proj_layer\.PQ\.0\.weight"):
        load_strict(model, pq.strip_model_prefix(missing), "x")
    reshaped = {**sd, "model.layer_weights.PQ": torch.ones(12)}  # a 12-layer sum instead of 13
    with pytest.raises(CheckpointKeyError, match=r"layer_weights\.PQ \(model \[13\], checkpoint \[12\]\)"):
        load_strict(model, pq.strip_model_prefix(reshaped), "x")
    load_strict(model, pq.strip_model_prefix(sd), "x")  # the intact file loads


def test_hugging_face_folder_format_is_accepted(metric: pq.AudioboxPQ, released: dict, tmp_path: Path) -> None:
    """The package's own ``save_pretrained`` folder reads back to the same config and weights."""
    from iap_bench.metrics._ckpt import check_state_dict

    metric._model.save_pretrained(str(tmp_path / "hf"))
    kwargs, tt, state = pq.read_checkpoint(tmp_path / "hf")
    print("\nHF config entries read:", kwargs)
    assert tt == tpq.TARGET_TRANSFORM
    check_state_dict(metric._model, state, "hf")
    m = pq.AudioboxPQ(checkpoint=str(tmp_path / "hf"))  # given as params.checkpoint=<folder>
    assert pq.resolve_checkpoint(m.checkpoint) == tmp_path / "hf"
    spec, explicit = m.weight_files()[0]
    assert spec.resolve(explicit) == tmp_path / "hf" / "model.safetensors" and len(m.checkpoint_id()) == 64
    ref = pq.strip_model_prefix(released["state_dict"])
    assert all(np.array_equal(state[k].numpy(), ref[k].numpy()) for k in ("layer_weights.PQ", "proj_layer.PQ.0.bias"))


def test_missing_checkpoint_names_file_places_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    monkeypatch.delenv("IAP_BENCH_PQ_CHECKPOINT", raising=False)
    with pytest.raises(MissingCheckpointError) as e:
        pq.AudioboxPQ().load()
    msg = str(e.value)
    assert "checkpoint.pt" in msg and str(tmp_path / "pq" / "checkpoint.pt") in msg
    assert "dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt" in msg and "params.checkpoint" in msg


def test_weights_root_layout(weights_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(weights_root))
    m = pq.AudioboxPQ()
    assert m.weight_files()[0][0].resolve() == weights_root / "pq" / "checkpoint.pt"
    assert len(m.checkpoint_id()) == 64 and "checkpoint" not in m.params()


# ---- failures ------------------------------------------------------------------------------------------------
def test_no_audio_and_silence_are_sample_faults_scored_worst(metric: pq.AudioboxPQ, tmp_path: Path) -> None:
    """No audio stream, and digital silence (the shared media layer's ``silent``: peak < 1e-4), are faults of
    the generated sample: the bottom of the rating scale, without running the model."""
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=1.0)
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(16000, np.float32))
    out = metric.score([EvalSample(None, SampleMedia(mute)), EvalSample(None, SampleMedia(silent))])
    assert [v.failure for v in out] == ["no_audio", "silent"] and all(v.value is None for v in out)
    assert [apply_metric_policy(metric, v).value for v in out] == [1.0, 1.0] == [metric.worst] * 2
