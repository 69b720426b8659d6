"""WER, reference backend: SenseVoiceSmall through funasr + Seed-TTS-eval normalisation (METRICS.md §1 WER).

Hypothesis = the whole generated track, 16 kHz mono, transcribed by funasr ``AutoModel`` built from a LOCAL
SenseVoiceSmall folder (no hub, no VAD: clips are short), ``language`` = the item's (``en``/``zh``, never
``auto``), ``use_itn=True``, greedy CTC as funasr decodes it. The rich-transcription tags are removed with
funasr's ``rich_transcription_postprocess``; the emotion/event emoji that function renders some tags as are
removed too (they are labels, not words). Reference = ``item.speech_text()`` (all lines in script order).
Then Seed-TTS-eval normalisation and ``jiwer.process_words`` (``text_norm.wer``): word error rate for EN,
character error rate for ZH. Silent output (peak < 1e-4) = ``silent``, no audio stream = ``no_audio``, less
than one 25 ms frame = ``empty``: each scores 1.0 after the failure policy (every reference word deleted).

Dither: funasr's fbank front end dithers by default (Gaussian noise of std 1 on the 16-bit-scaled samples,
drawn from torch's global RNG), so the package's numbers change from run to run and with batch composition.
Here the front end's own dither is off and the same noise (``dither`` x N(0, 1) / 32768 per sample, the
per-frame statistics Kaldi dithering gives) is added to each clip from a generator seeded by the clip's
content hash: numbers are reproducible and independent of batching. ``dither=0`` turns it off.

Clips of one language are batched, longest first, into ``generate`` calls of at most ``batch_seconds`` of
padded audio (clips x longest clip): funasr pads them and masks the padding, and the transcripts equal
funasr's one-file-at-a-time ones (parity test). Without a VAD model funasr ignores ``batch_size_s``;
``batch_size`` is the number of clips per forward pass, passed per call.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Item
from iap_bench.errors import MediaError, MissingCheckpointError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.weights import WeightSpec

BPE_FILE = "chn_jpn_yue_eng_ko_spectok.bpe.model"
# Every file funasr reads from the released folder (configuration.json maps the tokenizer and CMVN to it).
MODEL_FILES = ("config.yaml", "configuration.json", "model.pt", "am.mvn", BPE_FILE)
ROOT_SUBPATH = "sensevoice/SenseVoiceSmall"
HOW_TO_GET = ("a snapshot of ModelScope iic/SenseVoiceSmall (`modelscope download --model iic/SenseVoiceSmall "
              "--local_dir DIR`) or HF FunAudioLLM/SenseVoiceSmall (`huggingface-cli download "
              "FunAudioLLM/SenseVoiceSmall --local-dir DIR`); the folder must hold " + ", ".join(MODEL_FILES))
LANGUAGES = ("en", "zh")
SAMPLE_RATE = 16000
MIN_SAMPLES = 400  # one 25 ms fbank frame: shorter audio is "empty" (funasr's fbank fails on a single sample)
# Glyphs rich_transcription_postprocess renders emotion/event tags as (funasr postprocess_utils emo/event sets).
TAG_GLYPHS = ("😊", "😔", "😡", "😰", "🤢", "😮", "🎼", "👏", "😀", "😭", "🤧", "😷", "❓")
_DROP_GLYPHS = str.maketrans("", "", "".join(TAG_GLYPHS))


def sensevoice_weight_specs() -> list[WeightSpec]:
    """One spec per file of the SenseVoiceSmall folder: an explicit ``model_dir`` is that folder; otherwise
    ``weights.root``/sensevoice/SenseVoiceSmall, then ModelScope's cache."""
    return [WeightSpec(name="SenseVoiceSmall (funasr)", filename=f, how_to_get=HOW_TO_GET,
                       search_paths=("~/.cache/modelscope/hub/models/iic/SenseVoiceSmall",
                                     "~/.cache/modelscope/hub/iic/SenseVoiceSmall"),
                       config_key="params.model_dir", root_subpath=f"{ROOT_SUBPATH}/{f}") for f in MODEL_FILES]


def missing_model_files(model_dir: Path) -> list[str]:
    """The released files absent from ``model_dir`` (in MODEL_FILES order)."""
    return [f for f in MODEL_FILES if not (Path(model_dir) / f).is_file()]


def resolve_model_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The first candidate folder holding every model file; else one MissingCheckpointError naming each
    missing file where it was looked for (in the first existing candidate folder, or in all of them)."""
    spec = sensevoice_weight_specs()[0]
    dirs = [Path(explicit).expanduser()] if explicit else [p.parent for p in spec.candidates(None)]
    complete = [d for d in dirs if not missing_model_files(d)]
    if complete:
        return complete[0]
    partial = next((d for d in dirs if d.is_dir()), None)
    missing = missing_model_files(partial) if partial is not None else list(MODEL_FILES)
    searched = [d / f for d in ([partial] if partial is not None else dirs) for f in missing]
    raise MissingCheckpointError(spec.name, ", ".join(missing), searched, HOW_TO_GET, spec.config_key)


def model_dir_sha256(model_dir: Path) -> str:
    """sha256 over (name, file sha256) of the files funasr loads: the checkpoint's identity (a README or an
    example clip in the snapshot does not change it)."""
    from iap_bench.hashing import file_sha256

    h = hashlib.sha256()
    for name in MODEL_FILES:
        h.update(f"{name}\0{file_sha256(Path(model_dir) / name)}\n".encode())
    return h.hexdigest()


def unwrap_state(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Pure: the state dict inside a funasr checkpoint, unwrapped as funasr's loader does
    (``state_dict``, then ``model_state_dict``, then ``model``)."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    return obj


def hypothesis_text(raw: str) -> str:
    """funasr's raw output -> transcript: tags removed (``rich_transcription_postprocess``) and the emoji it
    renders emotion/event tags as deleted."""
    from funasr.utils.postprocess_utils import rich_transcription_postprocess

    return rich_transcription_postprocess(raw).translate(_DROP_GLYPHS).strip()


def dithered(wav: np.ndarray, amount: float, key: str) -> np.ndarray:
    """Pure: ``wav`` + ``amount`` x N(0, 1) / 32768 per sample from a generator seeded by ``key`` (a fresh,
    writable float32 array; no noise when ``amount`` is 0)."""
    out = np.array(wav, dtype=np.float32, copy=True)
    if amount:
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
        out += (np.random.default_rng(seed).standard_normal(out.shape) * (amount / 32768.0)).astype(np.float32)
    return out


def batches(seconds: Sequence[float], max_padded_s: float) -> list[list[int]]:
    """Pure: clip indices grouped longest first so that each group's padded length (count x longest clip)
    stays within ``max_padded_s`` (a longer clip goes alone)."""
    order = sorted(range(len(seconds)), key=lambda i: (-seconds[i], i))
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * seconds[out[-1][0]] <= max_padded_s:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@contextlib.contextmanager
def _quiet_funasr() -> Iterator[None]:
    """Keep funasr's import notice off stdout and its ``logging.basicConfig(level=INFO)`` from configuring an
    unconfigured root logger (a placeholder handler makes it a no-op; the harness's logging is untouched)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    placeholder = logging.NullHandler()
    if not handlers:
        root.addHandler(placeholder)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


@register_metric("wer/reference")
class SenseVoiceWER(Metric):
    """Per-item WER (EN words) / CER (ZH characters) as a fraction; extras hold hypothesis and counts."""

    name = "wer"
    direction = "lower"
    backend = "sensevoice-small"
    version = "1"
    views = ("audio16k",)
    worst = 1.0  # silent / empty output: every reference word deleted
    path_params = ("model_dir",)

    def __init__(self, model_dir: str | None = None, dither: float = 1.0, batch_seconds: float = 60.0) -> None:
        self.model_dir = model_dir
        self.dither = float(dither)
        self.batch_seconds = float(batch_seconds)
        self._auto: Any = None
        self._dir: Path | None = None

    # ---- weights -------------------------------------------------------------------------------------
    def weight_files(self) -> list[tuple[WeightSpec, str | None]]:
        return [(spec, self.model_dir) for spec in sensevoice_weight_specs()]

    def checkpoint_id(self) -> str:
        return model_dir_sha256(self._dir or resolve_model_dir(self.model_dir))

    def aux_identity(self) -> dict[str, str]:
        from importlib.metadata import version

        from iap_bench.media.audio import resampler_identity
        from iap_bench.metrics.text_norm import NORMALISER

        return {"resampler": resampler_identity(), "normaliser": NORMALISER, "funasr": version("funasr"),
                "decoding": "funasr greedy CTC, use_itn=True, no VAD, fbank dither off (seeded noise added)",
                "postprocess": "rich_transcription_postprocess, emotion/event emoji removed"}

    def load(self) -> None:
        """Build funasr's AutoModel from the local folder once; refuse a checkpoint whose keys do not match."""
        if self._auto is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        d = resolve_model_dir(self.model_dir)
        with _quiet_funasr():
            from funasr import AutoModel

            # the files hashed and key-checked are the ones loaded, whatever configuration.json maps
            auto = AutoModel(model=str(d), device=self.device, disable_update=True, disable_pbar=True,
                             ncpu=torch.get_num_threads(), config=str(d / "config.yaml"),
                             init_param=str(d / "model.pt"), tokenizer_conf={"bpemodel": str(d / BPE_FILE)},
                             frontend_conf={"cmvn_file": str(d / "am.mvn"), "dither": 0.0})
        check_checkpoint(auto.model, d / "model.pt")
        self._auto, self._dir = auto, d

    # ---- scoring -------------------------------------------------------------------------------------
    def item_failure(self, item: Item) -> str | None:
        return None if item.language in LANGUAGES else f"unsupported_language:{item.language}"

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        from iap_bench.metrics.text_norm import normalize

        self.load()
        out: list[MetricValue | None] = [None] * len(samples)
        clips: dict[tuple[str, str], np.ndarray] = {}  # (content hash, language) -> audio: transcribe once
        for i, s in enumerate(samples):
            pre = self.item_failure(s.item)
            if pre is None and not normalize(s.item.speech_text(), s.item.language).split():
                pre = "bad_reference"
            if pre is not None:
                out[i] = MetricValue.fail(pre)
                continue
            try:
                wav = s.media.audio(SAMPLE_RATE)
            except MediaError as e:
                out[i] = MetricValue.fail(e.reason, detail=e.detail)
                continue
            if wav.size < MIN_SAMPLES:
                out[i] = MetricValue.fail("empty", detail=f"{wav.size} samples at 16 kHz")
                continue
            clips[(s.media.content_hash, s.item.language)] = wav
        texts = self._transcribe_all(clips)
        for i, s in enumerate(samples):
            if out[i] is None:
                out[i] = self._value(s, texts[(s.media.content_hash, s.item.language)])
        return [v for v in out if v is not None]

    def _transcribe_all(self, clips: Mapping[tuple[str, str], np.ndarray]) -> dict[tuple[str, str], str]:
        """Raw funasr text per (content hash, language): one ``generate`` call per language and batch."""
        texts: dict[tuple[str, str], str] = {}
        for lang in LANGUAGES:
            keys = [k for k in clips if k[1] == lang]
            for group in batches([len(clips[k]) / SAMPLE_RATE for k in keys], self.batch_seconds):
                chosen = [keys[j] for j in group]
                wavs = [dithered(clips[k], self.dither, k[0]) for k in chosen]
                texts.update(zip(chosen, self.transcribe(wavs, lang), strict=True))
        return texts

    def transcribe(self, wavs: Sequence[np.ndarray], language: str) -> list[str]:
        """funasr's raw text (tags included) for 16 kHz clips of one language, in one ``generate`` call."""
        if language not in LANGUAGES:
            raise ValueError(f"SenseVoice language must be one of {LANGUAGES}, got {language!r}")
        if not wavs:
            return []
        res = self._auto.generate(input=list(wavs), language=language, use_itn=True, batch_size=len(wavs))
        if len(res) != len(wavs):
            raise RuntimeError(f"funasr returned {len(res)} results for {len(wavs)} clips")
        return [str(r["text"]) for r in res]

    def _value(self, sample: EvalSample, raw: str) -> MetricValue:
        from iap_bench.metrics.text_norm import wer

        ref, lang = sample.item.speech_text(), sample.item.language
        hyp = hypothesis_text(raw)
        r = wer(ref, hyp, lang)
        return MetricValue(r.wer, extras={
            "hyp": hyp, "hyp_raw": raw, "ref": ref, "hyp_norm": r.hyp_norm, "ref_norm": r.ref_norm,
            "over_0.5": r.wer > 0.5, "substitutions": r.substitutions, "deletions": r.deletions,
            "insertions": r.insertions, "hits": r.hits, "language": lang})


def check_checkpoint(model: Any, path: Path) -> None:
    """Refuse ``model.pt`` unless its state dict has exactly the built model's keys and shapes (funasr's own
    loader skips missing or mis-shaped keys silently, leaving them randomly initialised)."""
    import torch

    from iap_bench.metrics._ckpt import check_state_dict

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    check_state_dict(model, unwrap_state(state), f"SenseVoiceSmall model.pt ({path})")
