"""aid_sim/reference (WavLM-Large + ECAPA-TDNN, UniSpeech SV): parity with the official code, loader, protocol.

Parity chain, on seeded random weights in the release's format (``write_random_weights``: WavLM-Large widths,
2 transformer layers) and real speech (iap-mini voices and ground truth, Debian's LibriVox clips):

1. OFFICIAL -> this model. ``scripts/golden/make_ecapa_wavlm_golden.py`` ran the official code (seed-tts-eval's
   UniSpeech ``verification.py`` + s3prl's WavLM upstream) on exactly these weights and files and stored
   per-file embeddings and per-pair cosines in tests/fixtures/golden/ecapa_wavlm.json. This project's model,
   reading files as verification.py does (``load_like_verification``, ``package_scores``), must reproduce them:
   cosines within 1e-5, embedding values within 1e-5 of the embedding's largest |value| (CPU float32 with the
   same torch ops; measured when the fixture was made: bit-identical embeddings, cosine differences < 1e-7,
   which are float32-vs-float64 cosine arithmetic). With random weights all cosines are ~0.997-0.999, so the
   per-value embedding check is the sharper one (clips differ by ~0.6 in embedding distance; 1e-4 is allowed).
2. package -> harness. Batched ``score()`` on the same 16 kHz mono wav files equals ``package_scores`` (one clip
   at a time) within 1e-5: no resampling is involved (soxr vs torchaudio ``Resample`` is the only reading
   difference, and it only acts on files that are not 16 kHz mono), so only batching could differ.

Random weights cannot separate speakers, so METRICS.md §5's same/other-speaker control is not meaningful here;
instead: a clip against itself scores 1, and the multi-subject windows are cut, embedded, assigned and averaged
exactly as an independent one-window-at-a-time recomputation gives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from metric_media import make_item, write_sample

from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "ecapa_wavlm.json"
COS_TOL = 1e-5
EMB_REL_TOL = 1e-5
# a subset of the golden pairs for package_scores (each generated file once, each reference once)
PACKAGE_PAIRS = [("gt_s01", "voice_1"), ("gt_m01", "voice_5"), ("lv_0880", "lv_0930_48k_stereo")]


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def audio(golden: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Golden name -> real file (the derived 48 kHz stereo one rebuilt); each must be the file the golden used."""
    from asset_policy import missing_asset

    from iap_bench.testing.aid_sim_wavlm import write_stereo_48k

    out, tmp = {}, tmp_path_factory.mktemp("aid_audio")
    for name, info in golden["audio"].items():
        src = Path(info.get("path") or info["derived_from"])
        src = src if src.is_absolute() else ROOT / src
        if not src.is_file():
            missing_asset(f"real speech for the AID-SIM golden test: {src}")
        assert _sha(src) == info.get("sha256", info.get("sha256_of_source")), f"{src} changed: remake the golden"
        out[name] = write_stereo_48k(src, tmp / f"{name}.wav") if "derived_from" in info else src
    return out


@pytest.fixture(scope="module")
def weights_root(golden: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iap_bench.testing.aid_sim_wavlm import write_random_weights

    root = tmp_path_factory.mktemp("aid_weights")
    write_random_weights(root, seed=golden["seed"])
    return root


@pytest.fixture(scope="module")
def state(weights_root: Path) -> dict:
    from iap_bench.backends.ecapa_wavlm import read_model_state
    from iap_bench.testing.aid_sim_wavlm import ROOT_SUBPATH

    return read_model_state(weights_root / ROOT_SUBPATH)


@pytest.fixture(scope="module")
def verifier(state: dict):
    from iap_bench.backends.ecapa_wavlm import verifier_from_state

    return verifier_from_state(state)


@pytest.fixture(scope="module")
def metric(weights_root: Path):
    """aid_sim/reference found through ``weights.root`` (its documented sub-layout), loaded once."""
    from iap_bench.metrics.base import build_metric

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IAP_BENCH_WEIGHTS_ROOT", str(weights_root))
        m = build_metric("aid_sim/reference")
        m.load()
        yield m


@pytest.fixture(scope="module")
def package(weights_root: Path, audio: dict[str, Path]) -> dict[tuple[str, str], float]:
    """package_scores (verification.py's reading, one clip at a time) on PACKAGE_PAIRS."""
    from iap_bench.testing.aid_sim_wavlm import package_scores

    items = [make_item(f"{g}-{r}", [()], [audio[r]], ["x"]) for g, r in PACKAGE_PAIRS]
    scores = package_scores(weights_root, [audio[g] for g, _ in PACKAGE_PAIRS], items)
    return dict(zip(PACKAGE_PAIRS, scores))


def _embed_one(verifier, wav) -> np.ndarray:  # noqa: ANN001 - the model, a [1, N] tensor
    import torch

    with torch.inference_mode():
        return verifier(wav)[0].double().numpy()


@pytest.fixture(scope="module")
def embeddings(verifier, audio: dict[str, Path]) -> dict[str, np.ndarray]:  # noqa: ANN001
    """This model's embedding of every golden file, read as verification.py reads it, one clip at a time."""
    from iap_bench.testing.aid_sim_wavlm import load_like_verification

    return {name: _embed_one(verifier, load_like_verification(path)) for name, path in audio.items()}


# ---- 1. official code (golden) -> this model ---------------------------------------------------------------
def test_random_weights_are_the_golden_ones(golden: dict, state: dict) -> None:
    from iap_bench.backends.ecapa_wavlm import layer_count
    from iap_bench.testing.aid_sim_wavlm import weights_digest

    assert weights_digest(state) == golden["weights_digest"]
    assert layer_count(state) == golden["n_layers"] == 2 and tuple(state["feature_weight"].shape) == (3,)
    # the official strict=False load consumed every key but the training head, and missed none
    assert golden["official_load"] == {"missing_keys": [], "unexpected_keys": ["loss_calculator.projection.weight"]}


def test_embeddings_equal_the_official_code(golden: dict, embeddings: dict[str, np.ndarray]) -> None:
    worst = 0.0
    emb = embeddings
    for name in golden["embeddings"]:
        ref = np.array(golden["embeddings"][name]["values"])
        worst = max(worst, float(np.abs(emb[name] - ref).max() / np.abs(ref).max()))
        assert np.linalg.norm(emb[name]) == pytest.approx(golden["embeddings"][name]["norm"], rel=EMB_REL_TOL)
    cos = [abs(float(emb[p["wav1"]] @ emb[p["wav2"]] / np.linalg.norm(emb[p["wav1"]]) / np.linalg.norm(emb[p["wav2"]]))
               - p["cosine"]) for p in golden["pairs"]]
    print(f"\nAID-SIM golden: max |embedding diff| / max|e| = {worst:.2e}, max |cosine diff| = {max(cos):.2e}")
    assert worst <= EMB_REL_TOL and max(cos) <= COS_TOL


def test_package_scores_equal_the_official_cosines(golden: dict, package: dict) -> None:
    official = {(p["wav1"], p["wav2"]): p["cosine"] for p in golden["pairs"]}
    diffs = {pair: abs(v - official[pair]) for pair, v in package.items()}
    print("\nAID-SIM package vs official:", {f"{g}|{r}": f"{d:.1e}" for (g, r), d in diffs.items()})
    assert max(diffs.values()) <= COS_TOL


# ---- 2. package path -> batched harness ------------------------------------------------------------------
def test_batched_harness_equals_package_path(metric, package: dict, audio: dict[str, Path]) -> None:  # noqa: ANN001
    pairs = [(g, r) for g, r in PACKAGE_PAIRS if sf.info(str(audio[r])).samplerate == 16000]
    assert len(pairs) == 2
    samples = [EvalSample(make_item(f"{g}-{r}", [()], [audio[r]], ["x"]), SampleMedia(audio[g])) for g, r in pairs]
    out = metric.score(samples)
    assert all(v.failure is None for v in out)
    diffs = [abs(v.value - package[p]) for v, p in zip(out, pairs)]
    print("\nAID-SIM harness (batched) vs package:", [f"{d:.1e}" for d in diffs])
    assert max(diffs) <= COS_TOL


def test_clip_against_itself_scores_one_and_shared_clips_embed_once(metric, audio: dict[str, Path]) -> None:  # noqa: ANN001
    same = make_item("same", [()], [audio["voice_1"]], ["x"])
    other = make_item("other", [()], [audio["voice_5"]], ["x"])
    media = SampleMedia(audio["voice_1"])
    out = metric.score([EvalSample(same, media), EvalSample(other, media)])
    assert out[0].value == pytest.approx(1.0, abs=1e-6)
    assert out[1].value is not None and out[1].value < 1.0 - 1e-4


def test_multi_subject_harness_equals_the_package_window_path(metric, verifier, audio, tmp_path: Path) -> None:  # noqa: ANN001
    """Harness (windows batched by length, references cached) vs ``package_windows`` (each window and reference
    embedded alone, as the official code embeds clips): same windows, assignment and per-subject means."""
    from iap_bench.media.refs import load_audio
    from iap_bench.testing.aid_sim_wavlm import package_windows

    a, b = load_audio(audio["voice_1"], 16000), load_audio(audio["voice_5"], 16000)
    dialogue = np.concatenate([a[:40000], np.zeros(6400, np.float32), b[:40000]])  # 2.5 s of each voice
    path = tmp_path / "dialogue.wav"
    sf.write(path, dialogue, 16000, subtype="FLOAT")
    value, values, counts, spans = package_windows(verifier, dialogue, [audio["voice_1"], audio["voice_5"]])
    assert len(spans) >= 4 and any(e < 2.6 for _, e in spans) and any(s > 2.9 for s, _ in spans)
    lengths = [round(e * 16000) - round(s * 16000) for s, e in spans]
    assert len(set(lengths)) < len(lengths)  # equal-length windows: the harness embeds them as one batch
    # a third reference that IS the first window: that window must go to it with cosine 1
    first = tmp_path / "first_window.wav"
    sf.write(first, dialogue[round(spans[0][0] * 16000):round(spans[0][1] * 16000)], 16000, subtype="FLOAT")
    items = [make_item("m", [(), ()], [audio["voice_1"], audio["voice_5"]], ["x", "y"]),
             make_item("m_swapped", [(), ()], [audio["voice_5"], audio["voice_1"]], ["x", "y"]),
             make_item("m_first", [(), ()], [first, audio["voice_5"]], ["x", "y"])]
    right, swapped, firstw = metric.score([EvalSample(i, SampleMedia(path)) for i in items])
    diff = np.abs(np.array(list(right.extras["per_subject"].values())) - values).max()
    print("\nAID-SIM multi (random weights):", right.value, right.extras["windows_per_subject"],
          f"| harness vs package per-subject: max diff {diff:.1e}")
    assert [w[:2] for w in right.extras["windows"]] == [[round(s, 3), round(e, 3)] for s, e in spans]
    assert right.extras["n_windows"] == len(spans) and right.extras["vad"].startswith("silero")
    assert list(right.extras["windows_per_subject"].values()) == counts
    assert diff <= COS_TOL and right.value == pytest.approx(value, abs=COS_TOL)
    assert list(swapped.extras["windows_per_subject"].values()) == counts[::-1]
    assert list(swapped.extras["per_subject"].values()) == pytest.approx(
        list(right.extras["per_subject"].values())[::-1], abs=1e-12)
    assert firstw.extras["windows"][0][2:] == [0, pytest.approx(1.0, abs=1e-5)]


def test_multi_subject_assignment_pure() -> None:
    from iap_bench.metrics.aid_sim_wavlm import window_owners

    refs = np.eye(3, 4)[:2]
    w = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.7, 0.3, 0, 0]])
    owner, cos = window_owners(w, refs)
    assert owner.tolist() == [0, 1, 0] and cos.tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_sample_and_reference_faults_are_recorded(metric, audio: dict[str, Path], tmp_path: Path) -> None:  # noqa: ANN001
    from iap_bench.metrics.policy import apply_metric_policy

    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(32000, np.float32))
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=2.0)
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 1600).astype(np.float32), 16000)  # 0.1 s
    hum = tmp_path / "hum.wav"
    sf.write(hum, np.full(32000, 0.01, np.float32), 16000)  # constant: no VAD speech
    nan = tmp_path / "nan.wav"
    x = sf.read(str(audio["voice_1"]), dtype="float32")[0].copy()
    x[1000] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000, np.float32), 16000)
    good = make_item("g", [()], [audio["voice_1"]], ["x"])
    cases = [(good, silent, "silent"), (good, mute, "no_audio"), (good, short, "no_speech"),
             (good, nan, "nonfinite_audio"),
             (make_item("m", [(), ()], [audio["voice_1"], audio["voice_5"]], ["x", "y"]), hum, "no_speech"),
             (make_item("q", [()], [quiet], ["x"]), audio["voice_2"], "bad_reference"),
             (make_item("u", [()], [None], ["x"]), audio["voice_2"], "unbound_reference"),
             (make_item("n", [()], [tmp_path / "absent.wav"], ["x"]), audio["voice_2"], "bad_reference"),
             (good, audio["voice_2"], None)]
    out = metric.score([EvalSample(i, SampleMedia(p)) for i, p, _ in cases])
    assert [v.failure for v in out] == [r for _, _, r in cases]
    assert out[-1].value is not None
    penalised = [apply_metric_policy(metric, v).value for v in out]
    assert penalised[:5] == [0.0] * 5 and penalised[5:8] == [None] * 3  # reference faults are excluded


# ---- loader ---------------------------------------------------------------------------------------------
def test_loader_refuses_wrong_prefix_missing_keys_and_wrong_shapes(state: dict) -> None:
    import torch

    from iap_bench.backends.ecapa_wavlm import verifier_from_state
    from iap_bench.metrics._ckpt import CheckpointKeyError

    prefixed = {f"module.{k}": v for k, v in state.items()}
    with pytest.raises(CheckpointKeyError) as e:
        verifier_from_state(prefixed)
    msg = str(e.value)
    assert "missing key(s): bn.bias" in msg and "unexpected key(s): module.bn.bias" in msg
    assert "wavlm_large_finetune.pth" in msg

    missing = {k: v for k, v in state.items() if k != "layer1.conv.weight"}
    with pytest.raises(CheckpointKeyError, match=r"1 missing key\(s\): layer1\.conv\.weight"):
        verifier_from_state(missing)

    wrong = {**state, "linear.weight": torch.zeros(255, 3072)}
    with pytest.raises(CheckpointKeyError, match=r"linear\.weight \(model \[256, 3072\], checkpoint \[255, 3072\]\)"):
        verifier_from_state(wrong)

    layers = {**state, "feature_weight": torch.zeros(25)}  # a 24-layer weighting on a 2-layer front end
    with pytest.raises(CheckpointKeyError, match=r"feature_weight \(model \[3\], checkpoint \[25\]\)"):
        verifier_from_state(layers)

    head_only = {k: v for k, v in state.items() if not k.startswith("feature_extract.")}
    with pytest.raises(CheckpointKeyError, match=r"missing key\(s\): feature_extract\.model\."):
        verifier_from_state(head_only)  # a head without its front end is never run on random WavLM weights

    extra = {**state, "feature_extract.model.encoder.layers.0.self_attn.fp32_scale": torch.zeros(1)}
    with pytest.raises(CheckpointKeyError, match="fp32_scale"):
        verifier_from_state(extra)


def test_loader_pure_helpers(state: dict) -> None:
    from iap_bench.backends.ecapa_wavlm import TRAINING_ONLY_PREFIXES, inference_state, layer_count

    assert layer_count(state) == 2 and layer_count({"x.layers.3.a": 0}) == 24
    assert layer_count({"feature_extract.model.encoder.layers.23.fc1.weight": 0}) == 24
    kept = inference_state(state)
    assert "loss_calculator.projection.weight" in state and not any(k.startswith(TRAINING_ONLY_PREFIXES) for k in kept)


def test_loader_refuses_a_file_that_is_not_a_unispeech_checkpoint(tmp_path: Path) -> None:
    import torch

    from iap_bench.backends.ecapa_wavlm import load_verifier
    from iap_bench.errors import IAPBenchError

    p = tmp_path / "wavlm_large_finetune.pth"
    torch.save({"state_dict": {}}, p)
    with pytest.raises(IAPBenchError, match="'model'"):
        load_verifier(p)
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(IAPBenchError, match="cannot read"):
        load_verifier(p)


def test_missing_checkpoint_names_file_places_and_how_to_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.errors import MissingCheckpointError
    from iap_bench.metrics.aid_sim_wavlm import ReferenceAIDSim

    monkeypatch.setenv("IAP_BENCH_WEIGHTS_ROOT", str(tmp_path))
    monkeypatch.delenv("IAP_AID_SIM_CHECKPOINT", raising=False)
    m = ReferenceAIDSim()
    with pytest.raises(MissingCheckpointError) as e:
        m.load()
    msg = str(e.value)
    assert "wavlm_large_finetune.pth" in msg and str(tmp_path / "aid_sim" / "wavlm_large_finetune.pth") in msg
    assert "drive.google.com" in msg and "seed-tts-eval" in msg and "params.checkpoint" in msg
    with pytest.raises(MissingCheckpointError):
        m.checkpoint_id()
    explicit = ReferenceAIDSim(checkpoint=str(tmp_path / "elsewhere.pth"))
    with pytest.raises(MissingCheckpointError, match="elsewhere.pth"):
        explicit.load()


def test_identity_excludes_the_checkpoint_path_and_records_vad_and_resampler(weights_root: Path) -> None:
    from iap_bench.metrics.base import build_metric

    a = build_metric("aid_sim/reference", checkpoint=str(weights_root / "aid_sim" / "wavlm_large_finetune.pth"))
    b = build_metric("aid_sim/reference")
    assert a.params() == b.params() and "checkpoint" not in a.params()
    assert (a.name, a.backend, a.direction, a.worst, a.views) == ("aid_sim", "wavlm-ecapa", "higher", 0.0, ("audio16k",))
    aux = a.aux_identity()
    assert aux["vad"].startswith("silero") and aux["resampler"].startswith("soxr")
    assert build_metric("aid_sim/reference", vad="webrtc").identity_params() != b.identity_params()
    with pytest.raises(ValueError):
        build_metric("aid_sim/reference", vad="none")


# ---- pure protocol parts ------------------------------------------------------------------------------------
def test_length_batches_groups_equal_lengths_only() -> None:
    from iap_bench.backends.ecapa_wavlm import length_batches

    assert length_batches([5, 7, 5, 5, 7, 3], max_batch=2) == [[1, 4], [0, 2], [3], [5]]
    assert length_batches([10, 10, 10], max_batch=8, max_samples=20) == [[0, 1], [2]]
    assert length_batches([100], max_batch=8, max_samples=20) == [[0]]  # never an empty batch
    assert length_batches([]) == []


def test_relative_position_buckets() -> None:
    from iap_bench.backends.ecapa_wavlm import relative_position_buckets

    b = relative_position_buckets(1, 2000, 320, 800)[0]  # offsets 0..1999 from query 0
    assert b[0] == 0 and b[1] == 161 and b[79] == 160 + 79  # exact below 80, positive offsets in the upper half
    # log-spaced above: 80 + floor(log(d / 80) / log(10) * 80), saturating at the half's last bucket
    assert b[80] == 240 and b[160] == 160 + 80 + 24 and b[799] == 319 and b[1999] == 319
    neg = relative_position_buckets(2000, 1, 320, 800)[:, 0]  # offsets 0..-1999
    assert neg[1] == 1 and neg[79] == 79 and neg[1999] == 159
    assert bool((b[1:].diff() >= 0).all())
