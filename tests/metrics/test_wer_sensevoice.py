"""wer/reference (SenseVoiceSmall through funasr): parity with funasr's own per-file path, loader, protocol.

The model is a seeded random SenseVoiceSmall in the released folder layout (``iap_bench.testing.sensevoice``:
the released config.yaml with 3 + 2 encoder blocks instead of 50 + 20, a sentencepiece BPE tokenizer trained
here). Random weights still decode deterministically (greedy CTC), so parity is exact: the same raw text,
the same hypothesis, the same WER. The real-media control of METRICS.md §5 (own transcript <= 0.05, another
item's >= 0.8) needs the real weights; with random weights the protocol parts (tag removal, normalisation,
language, dither, batching, failures) are tested directly instead.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from asset_policy import missing_asset
from metric_media import LIBRIVOX, PACK, librivox_clips, make_item, write_sample

from iap_bench.errors import MissingCheckpointError
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics._ckpt import CheckpointKeyError
from iap_bench.metrics.base import EvalSample
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.metrics.wer_sensevoice import (
    MODEL_FILES,
    SenseVoiceWER,
    batches,
    check_checkpoint,
    dithered,
    hypothesis_text,
    missing_model_files,
    model_dir_sha256,
    resolve_model_dir,
    unwrap_state,
)
from iap_bench.testing import sensevoice as tsv
from iap_bench.weights import ROOT_ENV

ZH_LINES = ("今天天气很好，我们一起去公园散步吧。", "请问去火车站怎么走？")


# ---- fixtures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights_root(tmp_path_factory: pytest.TempPathFactory):
    """A seeded random SenseVoiceSmall folder under a ``weights.root``, set for the whole module."""
    root = tmp_path_factory.mktemp("weights")
    t = time.perf_counter()
    tsv.write_random_weights(root, seed=0)
    print(f"\nwrite_random_weights: {time.perf_counter() - t:.1f} s (incl. funasr import)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ROOT_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def metric(weights_root: Path) -> SenseVoiceWER:
    m = SenseVoiceWER()  # found through weights.root alone
    t = time.perf_counter()
    m.load()
    print(f"SenseVoiceWER.load: {time.perf_counter() - t:.2f} s")
    m.transcribe([np.full(16000, 0.01, np.float32)], "en")  # first forward pass (allocator warm-up) off the clock
    return m


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    """Real read speech muxed into generated-sample mp4s (AAC): 5 LibriVox clips + 6 iap-mini voices."""
    pairs = []
    if (LIBRIVOX / "transcription").is_file():
        pairs += librivox_clips()
    pairs += [(p / "voice.wav", (p / "voice.txt").read_text().strip()) for p in sorted(PACK.glob("id_*"))
              if (p / "voice.wav").is_file()]
    if len(pairs) < 11:
        missing_asset(f"real speech for wer/reference: found {len(pairs)} of 11 clips (LibriVox + iap-mini)")
    d = tmp_path_factory.mktemp("speech")
    return [(write_sample(d / f"{i:02d}.mp4", None, sf.read(p, dtype="float32")[0]), text)
            for i, (p, text) in enumerate(pairs)]


def _items(speech: list[tuple[Path, str]]) -> list[EvalSample]:
    """Each clip with its own English transcript, and the first two again as ZH items (CER path)."""
    out = [EvalSample(make_item(f"en{i}", [()], [None], [text]), SampleMedia(mp4))
           for i, (mp4, text) in enumerate(speech)]
    out += [EvalSample(make_item(f"zh{i}", [()], [None], [ZH_LINES[i]], lang="zh"), SampleMedia(speech[i][0]))
            for i in range(2)]
    return out


def _package_inputs(samples: list[EvalSample], d: Path, dither: float) -> list[Path]:
    """The exact 16 kHz samples the harness transcribes (decoded once, + its seeded dither), as float32 wavs
    that funasr reads itself."""
    paths = []
    for i, s in enumerate(samples):
        p = d / f"{i:02d}.wav"
        sf.write(p, dithered(s.media.audio(16000), dither, s.media.content_hash), 16000, subtype="FLOAT")
        paths.append(p)
    return paths


# ---- parity ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dither", [1.0, 0.0])
def test_parity_with_funasr_per_file(metric: SenseVoiceWER, weights_root: Path, speech, tmp_path: Path,
                                     dither: float) -> None:
    """score() (one batched generate per language, padded) vs funasr's own path as a user runs it
    (``AutoModel(model=folder)``, ``generate(input=<wav path>)`` one file at a time, funasr reading the file):
    raw text, hypothesis and WER must be IDENTICAL (tolerance 0). Both see the same samples: the harness's
    decoded 16 kHz track (+ its seeded dither), written as float32 wav, so no resampler or codec difference
    enters; funasr's own fbank dither is off on both sides (its default draws from torch's global RNG, so
    the package's own default is not reproducible run to run). The harness pads clips of different lengths
    into one batch, funasr runs each alone: equal transcripts also prove the batching changes nothing.
    Default metric (seeded dither 1.0): 11 EN clips (word WER) + 2 ZH items (CER); dither=0: 3 EN + 2 ZH."""
    m = metric if dither == metric.dither else SenseVoiceWER(dither=dither)
    m.load()
    samples = _items(speech) if dither == metric.dither else _items(speech)[:3] + _items(speech)[-2:]
    for s in samples:  # decode first: the timing compares transcription only
        s.media.audio(16000)
    t = time.perf_counter()
    ours = m.score(samples)
    t_ours = time.perf_counter() - t
    wavs = _package_inputs(samples, tmp_path, dither)
    package = tsv.package_model(weights_root, dither=0.0)
    t = time.perf_counter()
    pkg = tsv.package_transcripts(weights_root, wavs, [s.item for s in samples], model=package)
    t_pkg = time.perf_counter() - t
    print(f"\ndither={dither}: harness {t_ours / len(samples) * 1000:.0f} ms/sample (batched), "
          f"funasr per file {t_pkg / len(samples) * 1000:.0f} ms/sample")
    assert all(v.failure is None for v in ours)
    for v, (raw, hyp, w) in zip(ours, pkg, strict=True):
        assert v.extras["hyp_raw"] == raw
        assert v.extras["hyp"] == hyp
        assert v.value == w
    diffs = [abs(v.value - w) for v, (_, _, w) in zip(ours, pkg, strict=True)]
    print("max |WER harness - WER funasr| =", max(diffs), "; WERs:", [round(v.value, 3) for v in ours])
    zh = ours[-2:]
    assert all(v.extras["language"] == "zh" for v in zh)
    assert zh[0].extras["ref_norm"] == " ".join("今天天气很好我们一起去公园散步吧")  # characters, no punctuation
    # CER denominators: 16 + 9 characters (punctuation deleted), not 1 + 1 "words"
    assert [v.extras["hits"] + v.extras["substitutions"] + v.extras["deletions"] for v in zh] == [16, 9]


def test_language_is_the_items_never_auto(metric: SenseVoiceWER, speech, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's own inference receives language='en' / 'zh' from the item (never 'auto'), use_itn=True."""
    seen: list[tuple[str, bool, int]] = []
    inner = metric._auto.model.inference

    def spy(*args, **kwargs):
        seen.append((kwargs.get("language"), kwargs.get("use_itn"), len(kwargs["data_in"])))
        return inner(*args, **kwargs)

    monkeypatch.setattr(metric._auto.model, "inference", spy)
    metric.score(_items(speech)[:2] + _items(speech)[-1:])
    assert sorted(seen) == [("en", True, 2), ("zh", True, 1)]  # one batched call per language
    with pytest.raises(ValueError, match="auto"):
        metric.transcribe([np.zeros(16000, np.float32)], "auto")
    ja = make_item("ja", [()], [None], ["こんにちは"], lang="ja")
    assert metric.item_failure(ja) == "unsupported_language:ja"


# ---- failures and policy ---------------------------------------------------------------------------------
def test_silent_and_mute_samples_score_worst(metric: SenseVoiceWER, tmp_path: Path) -> None:
    silent = write_sample(tmp_path / "silent.mp4", None, np.zeros(16000 * 2, np.float32))
    mute = write_sample(tmp_path / "mute.mp4", None, None, seconds=2.0)
    item = make_item("x", [()], [None], ["hello there"])
    bad_ref = make_item("y", [()], [None], ["... !"])
    out = metric.score([EvalSample(item, SampleMedia(silent)), EvalSample(item, SampleMedia(mute)),
                        EvalSample(bad_ref, SampleMedia(silent))])
    assert [v.failure for v in out] == ["silent", "no_audio", "bad_reference"]
    final = [apply_metric_policy(metric, v) for v in out]
    assert [v.value for v in final] == [1.0, 1.0, None]  # all deletions; a bad reference is excluded
    assert metric.worst == 1.0 and metric.direction == "lower"


class _Media:
    """A decoded track as SampleMedia serves it (for audio no mp4 can carry: 20 samples, NaN)."""

    def __init__(self, wav: np.ndarray, key: str):
        self._wav, self.content_hash = wav, key

    def audio(self, sr: int) -> np.ndarray:
        from iap_bench.media.audio import check_audio

        check_audio(self._wav, self.content_hash)  # the faults SampleMedia raises (NaN/inf, silence)
        return self._wav


def test_too_short_and_nonfinite_audio_are_sample_faults(metric: SenseVoiceWER) -> None:
    item = make_item("x", [()], [None], ["hello there"])
    nan = np.full(16000, np.nan, np.float32)
    out = metric.score([EvalSample(item, _Media(np.full(20, 0.1, np.float32), "short")),
                        EvalSample(item, _Media(nan, "nan"))])
    assert [v.failure for v in out] == ["empty", "nonfinite_audio"]
    assert [apply_metric_policy(metric, v).value for v in out] == [1.0, 1.0]


def test_metric_identity(metric: SenseVoiceWER, weights_root: Path) -> None:
    assert (metric.name, metric.backend, metric.views) == ("wer", "sensevoice-small", ("audio16k",))
    d = weights_root / tsv.ROOT_SUBPATH
    assert metric.checkpoint_id() == model_dir_sha256(d) and len(metric.checkpoint_id()) == 64
    ident = metric.identity()
    assert ident["backend"] == "sensevoice-small" and "model_dir" not in metric.params()
    assert SenseVoiceWER(dither=0.0).identity()["params"] != ident["params"]
    from iap_bench.weights_report import weight_rows

    rows = weight_rows([metric])  # what `iap-bench weights` lists: the five files under weights.root
    assert [r.path for r in rows] == [d / f for f in MODEL_FILES]


# ---- loader ----------------------------------------------------------------------------------------------
def _linked_copy(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """A model folder whose files are symlinks to ``src``'s (except ``skip``)."""
    dst.mkdir(parents=True)
    for f in MODEL_FILES:
        if f not in skip:
            (dst / f).symlink_to(src / f)
    return dst


def test_missing_folder_names_places_and_how_to_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "empty_root"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ModelScope cache either
    with pytest.raises(MissingCheckpointError) as e:
        SenseVoiceWER().load()
    msg = str(e.value)
    for f in MODEL_FILES:  # every file, at every place looked (weights.root, ModelScope's cache)
        assert str(tmp_path / "empty_root" / "sensevoice" / "SenseVoiceSmall" / f) in msg
        assert str(tmp_path / "home" / ".cache" / "modelscope" / "hub" / "models" / "iic" / "SenseVoiceSmall" / f) in msg
    assert "iic/SenseVoiceSmall" in msg and "FunAudioLLM/SenseVoiceSmall" in msg and "params.model_dir" in msg
    with pytest.raises(MissingCheckpointError) as e:
        resolve_model_dir(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "model.pt") in str(e.value)


def test_missing_files_are_all_named(weights_root: Path, tmp_path: Path) -> None:
    d = _linked_copy(weights_root / tsv.ROOT_SUBPATH, tmp_path / "SenseVoiceSmall",
                     skip=("am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model"))
    assert missing_model_files(d) == ["am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model"]
    m = SenseVoiceWER(model_dir=str(d))
    with pytest.raises(MissingCheckpointError) as e:
        m.load()
    assert "not found: am.mvn, chn_jpn_yue_eng_ko_spectok.bpe.model" in str(e.value)
    assert str(d / "am.mvn") in str(e.value) and str(d / "model.pt") not in str(e.value)
    # `iap-bench weights` / the pre-run check see the same folder and the same two missing files
    from iap_bench.weights_report import weight_rows

    rows = weight_rows([m])
    assert sorted(r.filename for r in rows if r.path is None) == ["am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model"]
    assert all(r.path == d / r.filename for r in rows if r.path is not None)


def test_checkpoint_id_covers_model_files_only(weights_root: Path, tmp_path: Path) -> None:
    src = weights_root / tsv.ROOT_SUBPATH
    d = _linked_copy(src, tmp_path / "m")
    assert model_dir_sha256(d) == model_dir_sha256(src)
    (d / "README.md").write_text("snapshot readme")
    assert model_dir_sha256(d) == model_dir_sha256(src)
    (d / "am.mvn").unlink()
    (d / "am.mvn").write_text((src / "am.mvn").read_text().replace("<Nnet>", "<Nnet> "))
    assert model_dir_sha256(d) != model_dir_sha256(src)


@pytest.fixture(scope="module")
def state(weights_root: Path) -> dict:
    import torch

    return dict(unwrap_state(torch.load(weights_root / tsv.ROOT_SUBPATH / "model.pt", weights_only=True)))


@pytest.mark.parametrize("case", ["prefix", "missing", "shape", "extra"])
def test_key_mismatch_is_refused_naming_keys(metric: SenseVoiceWER, state: dict, tmp_path: Path, case: str) -> None:
    import torch

    bad = dict(state)
    if case == "prefix":
        bad = {f"model.{k}": v for k, v in state.items()}
        expect = ["missing key", "unexpected key", "model.ctc.ctc_lo.bias"]
    elif case == "missing":
        bad.pop("encoder.tp_encoders.1.feed_forward.w_2.weight")
        expect = ["1 missing key", "encoder.tp_encoders.1.feed_forward.w_2.weight"]
    elif case == "shape":
        bad["ctc.ctc_lo.weight"] = torch.zeros(25055, 512)
        expect = ["1 shape mismatch", "ctc.ctc_lo.weight", "25055"]
    else:
        bad["decoder.embed.weight"] = torch.zeros(3, 3)
        expect = ["1 unexpected key", "decoder.embed.weight"]
    path = tmp_path / "model.pt"
    torch.save({"state_dict": bad}, path)
    with pytest.raises(CheckpointKeyError) as e:
        check_checkpoint(metric._auto.model, path)
    for text in expect:
        assert text in str(e.value)
    torch.save(state, path)  # the bare state dict (funasr accepts both containers) passes
    check_checkpoint(metric._auto.model, path)


def test_load_refuses_what_funasr_loads_silently(weights_root: Path, state: dict, tmp_path: Path) -> None:
    """funasr's loader keeps a missing key's random init with only a printed warning; load() refuses it."""
    import torch

    d = _linked_copy(weights_root / tsv.ROOT_SUBPATH, tmp_path / "SenseVoiceSmall", skip=("model.pt",))
    torch.save({"state_dict": {k: v for k, v in state.items() if k != "embed.weight"}}, d / "model.pt")
    m = SenseVoiceWER(model_dir=str(d))
    with pytest.raises(CheckpointKeyError, match="embed.weight"):
        m.load()
    assert m._auto is None


# ---- the random checkpoint's format ----------------------------------------------------------------------
def test_random_folder_has_the_released_format(weights_root: Path) -> None:
    import sentencepiece as spm
    import yaml

    h = tsv.released_hashes()
    assert hashlib.sha256(tsv.config_yaml(50, 20).encode()).hexdigest() == h["config.yaml"]
    assert hashlib.sha256(tsv.configuration_json().encode()).hexdigest() == h["configuration.json"]
    d = weights_root / tsv.ROOT_SUBPATH
    assert missing_model_files(d) == []
    assert (d / "configuration.json").read_text() == tsv.configuration_json()
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert (cfg["encoder_conf"]["num_blocks"], cfg["encoder_conf"]["tp_blocks"]) == (3, 2)
    sp = spm.SentencePieceProcessor(model_file=str(d / "chn_jpn_yue_eng_ko_spectok.bpe.model"))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert all(sp.piece_to_id(t) > 2 for t in tsv.TAGS)
    mvn = (d / "am.mvn").read_text().split("\n")
    assert mvn[0] == "<Nnet>" and mvn[3] == "<AddShift> 560 560" and mvn[5] == "<Rescale> 560 560"


# ---- pure protocol pieces --------------------------------------------------------------------------------
def test_hypothesis_text_removes_tags_and_their_emoji() -> None:
    assert hypothesis_text("<|en|><|NEUTRAL|><|Speech|><|withitn|>Hello there.") == "Hello there."
    assert hypothesis_text("<|en|><|HAPPY|><|Laughter|><|withitn|>Great news!") == "Great news!"
    assert hypothesis_text("<|zh|><|SAD|><|BGM|><|woitn|>今天下雨") == "今天下雨"
    assert hypothesis_text("<|nospeech|><|Event_UNK|>") == ""


def test_unwrap_state_follows_funasr_containers() -> None:
    sd = {"a.weight": 1}
    assert unwrap_state(sd) is sd
    assert unwrap_state({"state_dict": sd}) is sd
    assert unwrap_state({"model": sd}) is sd
    assert unwrap_state({"state_dict": {"model_state_dict": sd}}) is sd


def test_dither_is_seeded_per_clip_with_kaldi_scale() -> None:
    wav = np.zeros(160000, np.float32)
    a, b, c = dithered(wav, 1.0, "h1"), dithered(wav, 1.0, "h1"), dithered(wav, 1.0, "h2")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(float(a.std()) * 32768 - 1.0) < 0.01  # std 1 in 16-bit units, as funasr's dither=1.0
    assert np.array_equal(dithered(wav, 0.0, "h1"), wav)
    ro = np.ones(10, np.float32)
    ro.setflags(write=False)
    assert dithered(ro, 0.0, "k").flags.writeable


def test_batches_bound_padded_length() -> None:
    assert batches([], 10) == []
    assert batches([3.0, 5.0, 2.0], 100) == [[1, 0, 2]]  # longest first
    assert batches([3.0, 5.0, 2.0, 40.0], 12) == [[3], [1, 0], [2]]
    assert batches([30.0], 10) == [[0]]
