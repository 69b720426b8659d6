"""clap/reference (LAION-CLAP, av-benchmark protocol): parity with laion_clap's own path, strict offline loading.

PARITY. ``iap_bench.testing.clap.write_random_weights`` writes a seeded random checkpoint in the released
format (HTSAT-base + roberta-base text branch, ``module.`` prefixes, the ``position_ids`` key) and a
roberta-base-format folder (a trained byte-level BPE + roberta-base's config.json). On real iap-mini items
(their ground-truth speech, < 10 s, and their full text prompts):

1. ``package_scores`` (laion_clap as a user runs it: ``CLAP_Module(enable_fusion=False, amodel='HTSAT-base')``,
   ``load_ckpt``, ``get_audio_embedding_from_filelist`` reading the wav with librosa at 48 kHz, and
   ``get_text_embedding``) vs this project's batched ``score`` on the same wav files. Both resample 16 -> 48 kHz
   with soxr HQ (librosa's default ``soxr_hq``; the harness's shared decode), so the inputs differ only by
   the two steps that separate the filelist path from av-benchmark's call: the filelist path rounds the
   audio to int16 (error <= 1/32767 per sample) and does not subtract the mean (av-benchmark does, and so
   does the harness). Tolerance: 1e-3 on the cosine (measured: about 2e-4).
2. av-benchmark's exact call (``get_audio_embedding_from_data([mean-subtracted 48 kHz audio], use_tensor=True)``
   and ``get_text_embedding([prompt])``) vs the harness's embeddings of the same clip; and the filelist path's
   embedding vs the harness's model run on the filelist path's own input (int16 round trip, no mean
   removal). Same inputs, so only float rounding remains. Tolerance: 1e-5 per embedding component
   (measured: about 1e-7), which accounts for the whole gap of check 1.

The METRICS.md §5 control (own prompt vs a shuffled prompt) needs the real weights: with random weights it
means nothing, so repeat-padding, truncation beyond 10 s, mean subtraction and the tokenizer check are tested
as pure functions instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from asset_policy import missing_asset
from metric_media import make_item, write_sample

from iap_bench.errors import IAPBenchError, MissingCheckpointError
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics import clap
from iap_bench.metrics._ckpt import CheckpointKeyError, load_strict
from iap_bench.metrics.base import EvalSample
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.testing import clap as tclap
from iap_bench.weights import ROOT_ENV

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "benchmark_data" / "iap-mini"
FILELIST_TOL = 1e-3
EMBED_TOL = 1e-5


@pytest.fixture(scope="module")
def weights_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clap_weights")
    tclap.write_random_weights(root, seed=0)
    return root


@pytest.fixture(scope="module")
def metric(weights_root: Path) -> clap.LaionCLAP:
    m = clap.LaionCLAP(checkpoint=str(weights_root / clap.CKPT_SUBPATH), roberta=str(weights_root / clap.ROBERTA_SUBPATH))
    m.load()
    return m


@pytest.fixture(scope="module")
def package(weights_root: Path):
    return tclap.package_module(weights_root)


@pytest.fixture(scope="module")
def real_items() -> tuple[list, list[Path]]:
    """Two iap-mini items (one single-, one multi-subject: different prompts) and their real speech wavs."""
    from iap_bench.benchmark.loader import load_benchmark

    if not (DATA / "manifest.yaml").is_file():
        missing_asset("committed iap-mini manifest")
    bench = load_benchmark(DATA / "manifest.yaml", DATA / "pack")
    chosen = [next(i for i in bench.items if i.split == s and i.ground_truth_audio) for s in ("single", "multi")]
    for i in chosen:
        if not Path(i.ground_truth_audio).is_file():
            missing_asset(f"committed iap-mini ground truth {i.ground_truth_audio}")
    return chosen, [Path(i.ground_truth_audio) for i in chosen]


# ---- parity ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_score_matches_laion_clap_filelist_path(metric, package, real_items) -> None:
    items, wavs = real_items
    ours = metric.score([EvalSample(i, SampleMedia(w)) for i, w in zip(items, wavs)])  # one batch
    theirs = tclap.scores_with(package, wavs, items)
    diff = np.abs(np.array([v.value for v in ours]) - np.array(theirs))
    print("\nCLAP harness:", [round(v.value, 6) for v in ours], "package:", np.round(theirs, 6),
          "max |diff|:", float(diff.max()))
    assert all(v.failure is None for v in ours)
    assert diff.max() < FILELIST_TOL
    assert abs(ours[0].value - ours[1].value) > FILELIST_TOL  # the two items are told apart beyond the tolerance
    for v in ours:
        assert v.extras["truncated"] is False and v.extras["prompt_truncated"] is True  # long structured prompts
        assert v.extras["prompt_tokens"] > clap.MAX_TOKENS


def _int16_round_trip(x: np.ndarray) -> np.ndarray:
    """What ``get_audio_embedding_from_filelist`` does to the loaded audio (laion_clap's float32_to_int16 and back)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / np.float32(32767.0)


@pytest.mark.slow
def test_embeddings_equal_av_benchmark_call_and_explain_the_filelist_gap(metric, package, real_items) -> None:
    """Same clip, three ways: (a) av-benchmark's call on the mean-subtracted 48 kHz audio equals the harness's
    embedding; (b) the filelist path equals the harness's model run on the filelist path's own input (int16
    round trip, no mean subtraction): the filelist gap of test 1 is those two steps and nothing else."""
    import torch

    items, wavs = real_items
    wav48 = SampleMedia(wavs[0]).audio(clap.SR)
    with torch.inference_mode():
        av_bench = package.get_audio_embedding_from_data([torch.from_numpy(wav48 - wav48.mean())],
                                                         use_tensor=True).numpy()
        theirs_t = package.get_text_embedding([items[0].text_prompt()], use_tensor=True).numpy()
    filelist = package.get_audio_embedding_from_filelist([str(wavs[0])])
    ours = metric.audio_embeddings([clap.prepare_audio(wav48)[0], clap.repeat_pad(_int16_round_trip(wav48))])
    ours_t = metric.text_embeddings([items[0].text_prompt()])
    d_av = float(np.abs(ours[0] - av_bench[0]).max())
    d_file = float(np.abs(ours[1] - filelist[0]).max())
    d_text = float(np.abs(ours_t - theirs_t).max())
    gap = float(np.abs(ours[0] - ours[1]).max())
    print(f"\nmax |diff| av-benchmark call {d_av:.2e}, filelist on its own input {d_file:.2e}, text {d_text:.2e}; "
          f"harness vs filelist input (int16 + no mean removal) {gap:.2e}")
    assert d_av < EMBED_TOL and d_file < EMBED_TOL and d_text < EMBED_TOL
    assert gap > 10 * EMBED_TOL  # the two inputs differ measurably: the checks above can tell them apart


# ---- protocol pieces (pure) -------------------------------------------------------------------------------
def test_repeat_pad_tiles_then_zero_pads_like_laion_clap() -> None:
    x = np.array([1, 2, 3], np.float32)
    assert clap.repeat_pad(x, 10).tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 0]
    assert clap.repeat_pad(np.arange(10, dtype=np.float32), 10).tolist() == list(range(10))
    assert clap.repeat_pad(np.ones(6, np.float32), 10).tolist() == [1] * 6 + [0] * 4  # int(10 / 6) = 1 copy
    with pytest.raises(ValueError):
        clap.repeat_pad(np.ones(11, np.float32), 10)
    with pytest.raises(ValueError):
        clap.repeat_pad(np.zeros(0, np.float32), 10)


@pytest.mark.slow
def test_repeat_pad_equals_the_package_function(package) -> None:
    """laion_clap's own ``get_audio_features(..., 'rand_trunc', 'repeatpad')`` on a 1.3 s and a 10 s clip
    (``package``: laion_clap's import, with its import-time tokenizer loads, is paid once per module)."""
    import torch
    from laion_clap.training.data import get_audio_features

    rng = np.random.default_rng(0)
    for n in (62400, clap.CLIP_SAMPLES):
        x = rng.normal(0, 0.1, n).astype(np.float32)
        theirs = get_audio_features({}, torch.from_numpy(x), clap.CLIP_SAMPLES, "rand_trunc", "repeatpad",
                                    {})["waveform"].numpy()
        assert np.array_equal(clap.repeat_pad(x), theirs)


def test_longer_than_10s_is_cut_to_its_first_10s_after_whole_clip_mean_removal() -> None:
    n = clap.CLIP_SAMPLES
    x = np.zeros(n + 2 * clap.SR, np.float32)  # 12 s: silence, then a 2 s DC step after the cut
    x[n:] = 1.0
    out, cut = clap.prepare_audio(x)
    assert cut and out.shape == (n,)
    assert np.allclose(out, -x.mean())  # the mean of the whole 12 s clip, as av-benchmark subtracts it first
    short = np.full(clap.SR, 0.5, np.float32)
    out, cut = clap.prepare_audio(short)
    assert not cut and out.shape == (n,) and not out.any()  # constant -> mean-removed to zeros, then padded
    y, cut = clap.truncate(np.arange(5), 5)
    assert not cut and y.tolist() == [0, 1, 2, 3, 4]
    assert abs(float(clap.mean_subtract(np.array([1, 2, 3, 6], np.float32)).mean())) < 1e-7


def test_audio_length_over_10s_is_refused() -> None:
    with pytest.raises(ValueError, match="randomly cropped"):
        clap.LaionCLAP(audio_length_s=12.0)
    assert clap.LaionCLAP(audio_length_s=5.0).params()["audio_length_s"] == 5.0


# ---- tokenizer and RoBERTa, offline -------------------------------------------------------------------
def _tokenizer(folder: Path):
    from transformers import RobertaTokenizer

    return RobertaTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_test_tokenizer_is_a_real_byte_level_bpe(weights_root: Path) -> None:
    folder = weights_root / clap.ROBERTA_SUBPATH
    tok = _tokenizer(folder)
    assert clap.tokenizer_problems(tok, 50265) == []
    assert len(tok) > clap.BYTE_LEVEL_SYMBOLS + 5 and (folder / "merges.txt").read_text().count("\n") > 50
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]  # as roberta
    assert json.loads((folder / "config.json").read_text()) == tclap.ROBERTA_BASE_CONFIG


def test_empty_offline_tokenizer_is_refused(tmp_path: Path) -> None:
    """The 5-token vocabulary transformers returns offline for 'roberta-base' (specials only, no merges)."""
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tclap.SPECIAL_TOKENS)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    (tmp_path / "config.json").write_text(json.dumps(tclap.ROBERTA_BASE_CONFIG))
    tok = _tokenizer(tmp_path)
    problems = clap.tokenizer_problems(tok, 50265)
    print("\nproblems of the 5-token tokenizer:", problems)
    assert len(tok) == 5 and any("5 tokens" in p for p in problems) and len(problems) >= 2
    with pytest.raises(IAPBenchError, match=f"read from {tmp_path}.*5 tokens"):
        clap.load_roberta(tmp_path)
    from transformers import RobertaTokenizer

    if os.environ.get("HF_HUB_OFFLINE") != "1":
        return  # the by-name fallback below is only observable offline
    try:
        by_name = RobertaTokenizer.from_pretrained("roberta-base")  # offline, no HF cache: the empty one
    except OSError:
        return
    if len(by_name) <= clap.BYTE_LEVEL_SYMBOLS:
        assert clap.tokenizer_problems(by_name, 50265)


def test_vocabulary_must_fit_the_embedding(weights_root: Path, tmp_path: Path) -> None:
    tok = _tokenizer(weights_root / clap.ROBERTA_SUBPATH)
    assert any("embeds only 300" in p for p in clap.tokenizer_problems(tok, 300))
    with pytest.raises(IAPBenchError, match="no config.json"):
        clap.load_roberta(tmp_path)


def test_roberta_by_name_is_served_only_from_the_local_config(weights_root: Path) -> None:
    config, _ = clap.load_roberta(weights_root / clap.ROBERTA_SUBPATH)
    cm = clap.import_clap_module().model
    original = cm.RobertaModel
    with clap.local_roberta(config):
        with pytest.raises(IAPBenchError, match="bert-base-uncased"):
            cm.RobertaModel.from_pretrained("bert-base-uncased")
    assert cm.RobertaModel is original


# ---- loading ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def released(weights_root: Path) -> dict:
    import torch

    return torch.load(str(weights_root / clap.CKPT_SUBPATH), map_location="cpu", weights_only=False, mmap=True)


def test_checkpoint_format_is_the_released_one(released: dict, metric) -> None:
    sd = released["state_dict"]
    assert {"state_dict", "epoch"} <= set(released) and all(k.startswith("module.") for k in sd)
    assert f"module.{clap.POSITION_IDS_KEY}" in sd  # laion_clap deletes it unconditionally: it must be there
    model_keys = set(metric._model.state_dict())
    state = clap.clap_state_dict(released, model_keys)
    assert clap.POSITION_IDS_KEY not in model_keys and set(state) == model_keys  # every other key consumed
    # a transformers that kept position_ids as a state-dict buffer would get it loaded, not dropped
    assert clap.POSITION_IDS_KEY in clap.clap_state_dict(released, model_keys | {clap.POSITION_IDS_KEY})


def test_wrong_prefix_missing_key_wrong_shape_and_extra_key_are_refused(metric, released: dict) -> None:
    import torch

    model = metric._model  # the check runs before anything is loaded: the shared model is left intact
    sd = released["state_dict"]
    keys = set(model.state_dict())
    n = len(keys)
    wrong_prefix = {"model." + k[len("module."):]: v for k, v in sd.items()}
    with pytest.raises(CheckpointKeyError) as e:
        load_strict(model, clap.clap_state_dict({"state_dict": wrong_prefix}, keys), "x")
    msg = str(e.value)
    assert f"{n} missing" in msg and "model.audio_branch.bn0.bias" in msg
    missing = {k: v for k, v in sd.items() if k != "module.text_projection.0.weight"}
    with pytest.raises(CheckpointKeyError, match=r"1 missing key\(s\): text_projection\.0\.weight"):
        load_strict(model, clap.clap_state_dict({"state_dict": missing}, keys), "x")
    tiny = {**sd, "module.audio_projection.0.weight": torch.zeros(512, 768)}  # an HTSAT-tiny (768-d) checkpoint
    with pytest.raises(CheckpointKeyError, match=r"audio_projection\.0\.weight \(model \[512, 1024\], "
                                                 r"checkpoint \[512, 768\]\)"):
        load_strict(model, clap.clap_state_dict({"state_dict": tiny}, keys), "x")
    extra = {**sd, "module.text_branch.embeddings.token_type_ids": torch.zeros(1, 514, dtype=torch.long)}
    with pytest.raises(CheckpointKeyError, match=r"1 unexpected key\(s\): text_branch\.embeddings\.token_type_ids"):
        load_strict(model, clap.clap_state_dict({"state_dict": extra}, keys), "x")
    load_strict(model, clap.clap_state_dict(released, keys), "x")  # the intact file loads


def test_missing_files_name_file_places_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                weights_root: Path) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    for var in ("IAP_BENCH_CLAP_CHECKPOINT", "IAP_BENCH_CLAP_ROBERTA"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingCheckpointError) as e:
        clap.LaionCLAP().load()
    msg = str(e.value)
    assert clap.CKPT_FILE in msg and str(tmp_path / clap.CKPT_SUBPATH) in msg
    assert f"huggingface.co/lukewys/laion_clap/resolve/main/{clap.CKPT_FILE}" in msg and "params.checkpoint" in msg
    with pytest.raises(MissingCheckpointError) as e:
        clap.LaionCLAP(checkpoint=str(weights_root / clap.CKPT_SUBPATH)).load()
    msg = str(e.value)
    assert "roberta-base" in msg and str(tmp_path / clap.ROBERTA_SUBPATH / "config.json") in msg
    assert "huggingface-cli download roberta-base" in msg and "params.roberta" in msg


def test_weights_root_layout_and_identity(weights_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(weights_root))
    m = clap.LaionCLAP()
    assert [s.resolve(p) for s, p in m.weight_files()] == [weights_root / clap.CKPT_SUBPATH] + [
        weights_root / clap.ROBERTA_SUBPATH / f for f in clap.ROBERTA_REQUIRED]
    assert clap.resolve_roberta(None) == weights_root / clap.ROBERTA_SUBPATH
    cid = m.checkpoint_id()
    assert len(cid) == 64 and "checkpoint" not in m.params() and "roberta" not in m.params()
    assert cid == clap.LaionCLAP(roberta=str(weights_root / clap.ROBERTA_SUBPATH)).checkpoint_id()


# ---- failures ------------------------------------------------------------------------------------------------
def test_no_audio_and_silence_are_sample_faults_scored_worst(metric, tmp_path: Path) -> None:
    item = make_item("c", [()], [None], ["hello there"])
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=1.0)
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(16000, np.float32))
    out = metric.score([EvalSample(item, SampleMedia(mute)), EvalSample(item, SampleMedia(silent))])
    assert [v.failure for v in out] == ["no_audio", "silent"] and all(v.value is None for v in out)
    assert [apply_metric_policy(metric, v).value for v in out] == [0.0, 0.0] == [metric.worst] * 2
