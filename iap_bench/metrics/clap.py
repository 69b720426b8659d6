"""CLAP, reference backend: LAION-CLAP (laion-clap 1.1.7) text-audio cosine, as hkchengrex/av-benchmark scores it.

Protocol (METRICS.md §1 CLAP; av-benchmark @050a5cd ``av_bench/extraction_models.py``,
``av_bench/data/audio_dataset.py:AudioDataset.read_from_file``, ``av_bench/extract.py``, ``extract_text.py``,
``av_bench/evaluate.py``):
- model ``CLAP_Module(enable_fusion=False, amodel='HTSAT-base')`` with ``music_speech_audioset_epoch_15_esc_89.98.pt``;
- audio: mono, mean-subtracted (over the whole clip), at 48 kHz, truncated to the first ``audio_length``
  seconds, then ``get_audio_embedding_from_data(wav, use_tensor=True)``: no int16 round trip, and laion_clap's
  ``get_audio_features`` repeat-pads a clip shorter than 10 s (tile ``int(480000 / n)`` times, zero-pad the
  rest) and would randomly crop a longer one;
- text: ``get_text_embedding([caption])``: RoBERTa tokens padded/truncated to 77;
- score: cosine(text embedding, audio embedding) per item (both are L2-normalised by the model).

Harness choices:
- ``audio_length_s`` = 10 s (the model's 480000-sample clip): a longer clip is cut to its first 10 s, as
  av-benchmark truncates, so laion_clap's random crop never runs (``extras['truncated']`` records it);
  values above 10 s are refused;
- text = ``item.text_prompt()``, the item's full structured prompt (the 77-token truncation is the model's;
  ``extras['prompt_truncated']``);
- the audio is the shared decode (``media.audio(48000)``: channels mixed, soxr HQ from the native rate); the
  mean is subtracted from that 48 kHz signal (av-benchmark subtracts it at the native rate, then resamples
  with torchaudio: the same up to the resampler);
- no audio stream (``no_audio``), digital silence (``silent``: the shared media layer's rule, peak < 1e-4),
  no samples or non-finite samples are faults of the generated sample and score ``worst`` = 0.0 (no relation
  to the text); anything audible gets the model's cosine.

Loading, offline and strict: the model is built by laion_clap's own ``create_model('HTSAT-base', 'roberta')``
with its ``RobertaModel.from_pretrained('roberta-base')`` redirected to a RoBERTa built from the LOCAL
roberta-base ``config.json`` (its weights are all in the CLAP checkpoint, which is loaded strictly: every
checkpoint key must be consumed, none may be missing or differently shaped). The one exception is
``text_branch.embeddings.position_ids``: transformers >= 4.31 keeps it as a non-persistent buffer (the installed
5.x has no such state-dict key) and the model recreates it (``arange(514)``), so it is dropped only when the
model does not expect it (laion_clap's ``load_state_dict`` drops it too). The tokenizer is read from the same
local folder and checked to be a real byte-level BPE vocabulary: offline, transformers silently returns a
5-token tokenizer for the name 'roberta-base', which would make every text embedding garbage.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.errors import IAPBenchError, MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric
from iap_bench.weights import WeightSpec

SR = 48000
CLIP_SAMPLES = 480000  # HTSAT-base audio_cfg clip_samples: 10 s at 48 kHz
MAX_TOKENS = 77
AMODEL = "HTSAT-base"
CKPT_FILE = "music_speech_audioset_epoch_15_esc_89.98.pt"
CKPT_SUBPATH = f"clap/{CKPT_FILE}"
ROBERTA_SUBPATH = "clap/roberta-base"
POSITION_IDS_KEY = "text_branch.embeddings.position_ids"
ROBERTA_REQUIRED = ("config.json", "vocab.json", "merges.txt")  # what RobertaConfig/RobertaTokenizer need
# files of a roberta-base folder the tokenizer and config are read from (the identity hashes these only)
ROBERTA_FILES = ("config.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "added_tokens.json")
BYTE_LEVEL_SYMBOLS = 256  # a byte-level BPE vocabulary holds at least one token per byte
PROBE_TEXT = "A dog barks twice while a woman speaks softly in a quiet kitchen."
BATCH_CLIPS = 4  # clips per audio forward pass (memory only)
BATCH_TEXTS = 16
CKPT_NAME = "LAION-CLAP music_speech_audioset_epoch_15 (HTSAT-base)"
ROBERTA_NAME = "roberta-base tokenizer + config (CLAP text branch)"


def clap_weight_spec() -> WeightSpec:
    """Where the CLAP checkpoint is looked for."""
    return WeightSpec(
        name=CKPT_NAME, filename=CKPT_FILE, env_var="IAP_BENCH_CLAP_CHECKPOINT", config_key="params.checkpoint",
        root_subpath=CKPT_SUBPATH,
        how_to_get=(f"download https://huggingface.co/lukewys/laion_clap/resolve/main/{CKPT_FILE} (about 2 GB) "
                    f"and put it at <weights.root>/{CKPT_SUBPATH}"))


def roberta_weight_specs() -> list[WeightSpec]:
    """One spec per file the text branch needs from the local roberta-base folder: an explicit ``roberta`` (or
    $IAP_BENCH_CLAP_ROBERTA) is that folder; otherwise ``<weights.root>/clap/roberta-base``."""
    how = ("on a connected machine: huggingface-cli download roberta-base config.json vocab.json merges.txt "
           f"tokenizer.json --local-dir <weights.root>/{ROBERTA_SUBPATH} (the RoBERTa weights are not needed: "
           "the CLAP checkpoint holds the text branch's weights)")
    return [WeightSpec(name=ROBERTA_NAME, filename=f, how_to_get=how, env_var="IAP_BENCH_CLAP_ROBERTA",
                       config_key="params.roberta", root_subpath=f"{ROBERTA_SUBPATH}/{f}")
            for f in ROBERTA_REQUIRED]


# ---- pure protocol helpers ---------------------------------------------------------------------------
def mean_subtract(wav: np.ndarray) -> np.ndarray:
    """Pure: the clip minus its mean (av-benchmark ``waveform - waveform.mean()``), float32."""
    x = np.asarray(wav, dtype=np.float32)
    return (x - np.float32(x.mean(dtype=np.float64))).astype(np.float32) if x.size else x.copy()


def truncate(wav: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """Pure: the first ``n`` samples (av-benchmark ``audio[:sr * audio_length]``) and whether any were cut."""
    return wav[:n], wav.shape[-1] > n


def repeat_pad(wav: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Pure: laion_clap's ``repeatpad`` for a clip of at most ``n`` samples: tile it ``int(n / len)`` times,
    then zero-pad to ``n`` (a clip of exactly ``n`` samples is unchanged)."""
    x = np.asarray(wav, dtype=np.float32)
    if x.size == 0 or x.size > n:
        raise ValueError(f"repeat_pad takes 1..{n} samples, got {x.size}")
    out = np.zeros(n, np.float32)
    tiled = np.tile(x, int(n / x.size))
    out[:tiled.size] = tiled
    return out


def prepare_audio(wav48: np.ndarray, max_samples: int = CLIP_SAMPLES) -> tuple[np.ndarray, bool]:
    """Pure: 48 kHz mono clip -> (the model's 10 s input, truncated?): mean-subtract, truncate, repeat-pad."""
    x, cut = truncate(mean_subtract(wav48), max_samples)
    return repeat_pad(x, CLIP_SAMPLES), cut


def clap_state_dict(ckpt: Any, model_keys: set[str]) -> dict[str, Any]:
    """Pure: the model's state dict from a CLAP checkpoint: ``ckpt['state_dict']`` (or the mapping itself),
    the DDP ``module.`` prefix removed when every key carries it, and the stale ``position_ids`` buffer dropped
    only when the model has no such key (see the module doc). Anything else is left for the strict check."""
    state = ckpt["state_dict"] if isinstance(ckpt, Mapping) and "state_dict" in ckpt else ckpt
    if not isinstance(state, Mapping):
        raise IAPBenchError(f"not a CLAP checkpoint: found {type(state).__name__}, expected a state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    state = dict(state)
    if POSITION_IDS_KEY in state and POSITION_IDS_KEY not in model_keys:
        del state[POSITION_IDS_KEY]
    return state


def tokenizer_problems(tok: Any, vocab_limit: int, probe: str = PROBE_TEXT) -> list[str]:
    """Pure: why ``tok`` is not a usable RoBERTa byte-level BPE tokenizer (empty list = usable).

    Catches the silent offline fallback (a 5-token vocabulary that maps a sentence to one unknown token):
    the vocabulary must hold at least the 256 byte symbols plus merges, fit the embedding (``vocab_limit``),
    and the probe sentence must split into several known tokens that decode back to it.
    """
    problems = []
    n = len(tok)
    if n <= BYTE_LEVEL_SYMBOLS:
        problems.append(f"vocabulary has {n} tokens (a byte-level BPE has > {BYTE_LEVEL_SYMBOLS})")
    if n > vocab_limit:
        problems.append(f"vocabulary has {n} tokens but the text branch embeds only {vocab_limit}")
    ids = tok(probe, add_special_tokens=False)["input_ids"]
    if len(ids) < 5:
        problems.append(f"{probe!r} tokenises to {len(ids)} id(s)")
    if tok.unk_token_id is not None and tok.unk_token_id in ids:
        problems.append(f"{probe!r} contains the unknown token")
    if tok.decode(ids) != probe:
        problems.append(f"{probe!r} does not decode back ({tok.decode(ids)!r})")
    return problems


def check_tokenizer(tok: Any, vocab_limit: int, where: str) -> None:
    """Raise IAPBenchError naming the folder unless ``tokenizer_problems`` is empty."""
    problems = tokenizer_problems(tok, vocab_limit)
    if problems:
        raise IAPBenchError(f"the RoBERTa tokenizer read from {where} is not usable: " + "; ".join(problems))


def combined_sha256(parts: Sequence[str]) -> str:
    """Pure: one identity for several files' hashes (order matters)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def roberta_files_sha256(folder: Path) -> str:
    """sha256 of the roberta-base files the tokenizer and config are read from (not any weights there)."""
    from iap_bench.hashing import file_sha256

    present = [f for f in ROBERTA_FILES if (Path(folder) / f).is_file()]
    return combined_sha256([f"{f}\0{file_sha256(Path(folder) / f)}" for f in present])


# ---- the package, offline ------------------------------------------------------------------------------
def set_offline() -> None:
    """No hub call may hang or substitute anything: the caller passes every file explicitly."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def import_clap_module() -> Any:
    """laion_clap's ``clap_module`` (the top-level module its hook imports, from the laion_clap folder it puts on
    sys.path), without running ``laion_clap/__init__``, whose training import fetches three tokenizers."""
    set_offline()
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or spec.origin is None:
        raise IAPBenchError("laion_clap is not installed (pip install laion-clap==1.1.7)")
    folder = os.path.dirname(spec.origin)
    if folder not in sys.path:
        sys.path.append(folder)  # what laion_clap/__init__.py does
    import clap_module

    return clap_module


def resolve_roberta(explicit: str | os.PathLike | None) -> Path:
    """The local roberta-base folder holding every required file (MissingCheckpointError naming the first
    file absent from every place looked at)."""
    paths = [spec.resolve(explicit) for spec in roberta_weight_specs()]
    folders = sorted({str(p.parent) for p in paths})
    if len(folders) != 1:
        raise IAPBenchError(f"the roberta-base files were found in different folders ({', '.join(folders)}): "
                            "put config.json, vocab.json and merges.txt in one folder")
    return paths[0].parent


def load_roberta(folder: Path) -> tuple[Any, Any]:
    """(RobertaConfig, RobertaTokenizer) from the local folder only; the tokenizer is checked non-empty."""
    set_offline()
    from transformers import RobertaConfig, RobertaTokenizer

    if not (Path(folder) / "config.json").is_file():
        raise IAPBenchError(f"{folder}: no config.json (the roberta-base folder needs config.json, vocab.json, "
                            "merges.txt)")
    config = RobertaConfig.from_pretrained(str(folder), local_files_only=True)
    tok = RobertaTokenizer.from_pretrained(str(folder), local_files_only=True)
    check_tokenizer(tok, int(config.vocab_size), str(folder))
    return config, tok


@contextmanager
def local_roberta(config: Any) -> Iterator[None]:
    """While active, laion_clap's ``RobertaModel.from_pretrained('roberta-base')`` builds a RoBERTa from ``config``
    (random weights, all replaced by the CLAP checkpoint); any other name is refused, never fetched."""
    cm = import_clap_module().model
    original = cm.RobertaModel

    class _LocalRoberta:
        @staticmethod
        def from_pretrained(name: str, *args: Any, **kwargs: Any) -> Any:
            if name != "roberta-base" or args or kwargs:
                raise IAPBenchError(f"laion_clap asked for RobertaModel.from_pretrained({name!r}): only "
                                    "'roberta-base' is served, from the local folder")
            return original(config)

    cm.RobertaModel = _LocalRoberta
    try:
        yield
    finally:
        cm.RobertaModel = original


def build_model(ckpt_path: Path, roberta_dir: Path, device: str = "cpu") -> tuple[Any, Any]:
    """(CLAP model in eval mode on ``device`` with the checkpoint loaded strictly, checked tokenizer)."""
    import torch

    from iap_bench.metrics._ckpt import load_strict

    config, tok = load_roberta(roberta_dir)
    clap_module = import_clap_module()
    with local_roberta(config):
        model, _ = clap_module.create_model(AMODEL, "roberta", precision="fp32", device=torch.device("cpu"),
                                            enable_fusion=False)
    # laion_clap loads with weights_only=False (its checkpoints are training dicts); the file is the user's own
    ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=False)
    load_strict(model, clap_state_dict(ckpt, set(model.state_dict())), f"{CKPT_NAME} ({ckpt_path})")
    return model.to(device).eval(), tok


# ---- the metric ----------------------------------------------------------------------------------------
@register_metric("clap/reference")
class LaionCLAP(Metric):
    """Cosine between CLAP's embeddings of the generated audio and of the item's text prompt (higher is better)."""

    name = "clap"
    direction = "higher"
    backend = "laion-clap-music-speech"
    version = "1"
    views = ("audio48k",)
    worst = 0.0  # no audio / silent / no samples: no relation to the prompt
    path_params = ("checkpoint", "roberta")

    def __init__(self, checkpoint: str | None = None, roberta: str | None = None,
                 audio_length_s: float = 10.0) -> None:
        if not 0 < audio_length_s <= CLIP_SAMPLES / SR:
            raise ValueError(f"audio_length_s must be in (0, {CLIP_SAMPLES / SR:g}] (longer clips would be "
                             f"randomly cropped by laion_clap), got {audio_length_s}")
        self.checkpoint, self.roberta = checkpoint, roberta
        self.audio_length_s = float(audio_length_s)
        self._model = None
        self._tok = None
        self._text_cache: dict[str, np.ndarray] = {}

    def weight_files(self) -> list[tuple[WeightSpec, str | None]]:
        return [(clap_weight_spec(), self.checkpoint)] + [(spec, self.roberta) for spec in roberta_weight_specs()]

    def checkpoint_id(self) -> str:
        from iap_bench.hashing import file_sha256

        return combined_sha256([file_sha256(clap_weight_spec().resolve(self.checkpoint)),
                                roberta_files_sha256(resolve_roberta(self.roberta))])

    def aux_identity(self) -> dict[str, str]:
        import importlib.metadata

        from iap_bench.media.audio import resampler_identity

        return {"resampler": resampler_identity(),
                "package": f"laion-clap {importlib.metadata.version('laion-clap')}, "
                           f"transformers {importlib.metadata.version('transformers')}",
                "audio": "mono, mean-subtracted, first audio_length_s, repeat-pad to 10 s",
                "text": f"item.text_prompt(), RoBERTa {MAX_TOKENS} tokens"}

    def load(self) -> None:
        if self._model is None:
            ckpt = clap_weight_spec().resolve(self.checkpoint)
            roberta = resolve_roberta(self.roberta)
            self._model, self._tok = build_model(ckpt, roberta, self.device)

    # ---- embeddings ------------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> Any:
        """RoBERTa ids as ``CLAP_Module.tokenizer`` makes them: padded and truncated to 77."""
        return self._tok(list(texts), padding="max_length", truncation=True, max_length=MAX_TOKENS,
                         return_tensors="pt")

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings [n, 512], cached per prompt."""
        import torch

        self.load()
        todo = sorted({t for t in texts if t not in self._text_cache})
        with torch.inference_mode():
            for i in range(0, len(todo), BATCH_TEXTS):
                chunk = todo[i:i + BATCH_TEXTS]
                emb = self._model.get_text_embedding(self.tokenize(chunk)).float().cpu().numpy()
                self._text_cache.update(zip(chunk, emb))
        return np.stack([self._text_cache[t] for t in texts]) if texts else np.zeros((0, 512), np.float32)

    def audio_embeddings(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised audio embeddings [n, 512] of prepared 10 s inputs (``prepare_audio``), batched."""
        import torch

        self.load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(inputs), BATCH_CLIPS):
                batch = [{"waveform": torch.from_numpy(np.ascontiguousarray(x)), "longer": torch.tensor([False])}
                         for x in inputs[i:i + BATCH_CLIPS]]
                out.append(self._model.get_audio_embedding(batch).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)

    # ---- scoring -------------------------------------------------------------------------------------
    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        n_max = int(round(self.audio_length_s * SR))
        inputs: dict[str, tuple[np.ndarray, bool, float]] = {}  # content hash -> (input, truncated, seconds)
        failures: dict[str, MetricValue] = {}
        for s in samples:
            key = s.media.content_hash
            if key in inputs or key in failures:
                continue
            try:
                wav = s.media.audio(SR)
            except MediaError as e:
                failures[key] = MetricValue.fail(e.reason, detail=e.detail)
                continue
            x, cut = prepare_audio(wav, n_max)
            inputs[key] = (x, cut, wav.size / SR)
        keys = list(inputs)
        audio = dict(zip(keys, self.audio_embeddings([inputs[k][0] for k in keys])))
        scored = [s for s in samples if s.media.content_hash in audio]
        prompts = [s.item.text_prompt() for s in scored]
        text = dict(zip(prompts, self.text_embeddings(prompts))) if prompts else {}
        out = []
        for s in samples:
            key = s.media.content_hash
            if key in failures:
                out.append(failures[key])
                continue
            prompt = s.item.text_prompt()
            n_tokens = len(self._tok(prompt)["input_ids"])
            _, cut, seconds = inputs[key]
            out.append(MetricValue(float(np.dot(audio[key], text[prompt])), extras={
                "truncated": bool(cut), "duration_s": round(seconds, 3), "prompt_tokens": n_tokens,
                "prompt_truncated": n_tokens > MAX_TOKENS}))
        return out
