"""Classical offline TTS for the cascade baseline: catalogue of installed flite/festival voices, synthesis
through their command-line tools, and a voice bank that picks the installed voice nearest to a reference
voice by speaker-embedding cosine."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import soundfile as sf

from iap_bench.errors import MediaError
from iap_bench.media.audio import resample

if TYPE_CHECKING:
    from iap_bench.backends.speaker import SpeakerEncoder

Engine = Literal["flite", "festival"]

APT_PACKAGE: dict[str, str] = {"flite": "flite", "festival": "festival", "text2wave": "festival"}

# flite voices compiled into the Debian `flite` binary (awb_time is a talking clock, not a general voice).
FLITE_VOICES: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")
# festival voices from Debian festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts (dir name -> apt package).
FESTIVAL_VOICES: dict[str, str] = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")

# Read once per voice to place it in speaker-embedding space (phonetically varied, ~6 s of speech).
CALIBRATION_TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)
DEFAULT_CACHE_DIR = Path("~/.cache/iap-bench/voices").expanduser()


@dataclass(frozen=True)
class Voice:
    """One installed TTS voice: catalogue name (``engine:voice``), engine and the engine's voice id."""

    engine: Engine
    voice_id: str
    language: str = "en"

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice_id}"


def _require_binary(binary: str) -> str:
    """Path of a TTS binary, or a clear error naming the apt package that provides it."""
    path = shutil.which(binary)
    if path is None:
        raise FileNotFoundError(
            f"TTS binary {binary!r} not found on PATH; install it with `apt-get install {APT_PACKAGE[binary]}`"
        )
    return path


def _run(cmd: list[str], timeout_s: float, check: bool = True) -> str:
    """Run a TTS command, returning stdout + stderr; raise a RuntimeError on failure (if check) or timeout."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"TTS command timed out after {timeout_s:.0f}s: {' '.join(cmd)}") from e
    if check and out.returncode != 0:
        raise RuntimeError(f"TTS command failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr.strip()}")
    return out.stdout + out.stderr


@lru_cache(maxsize=1)
def engine_versions() -> dict[str, str]:
    """Version strings of the installed TTS engines (recorded in sidecars); missing engines are omitted."""
    versions: dict[str, str] = {}
    if shutil.which("flite"):
        text = _run(["flite", "--version"], 10, check=False)  # flite exits 1 after printing it
        versions["flite"] = next((ln.strip() for ln in text.splitlines() if "version" in ln), text.strip())
    if shutil.which("festival"):
        versions["festival"] = _run(["festival", "--version"], 10, check=False).strip()
    return versions


def _flite_listed_voices() -> set[str]:
    """Voices the flite binary reports with ``flite -lv``."""
    text = _run([_require_binary("flite"), "-lv"], 10)
    return set(text.split(":", 1)[-1].split())


def installed_voices() -> list[Voice]:
    """Catalogue of the usable installed voices (flite built-ins, festival voices whose data dir exists)."""
    voices: list[Voice] = []
    if shutil.which("flite"):
        listed = _flite_listed_voices()
        voices += [Voice("flite", v) for v in FLITE_VOICES if v in listed]
    if shutil.which("text2wave"):
        for vid in FESTIVAL_VOICES:
            if any(FESTIVAL_VOICE_ROOT.glob(f"*/{vid}")):
                voices.append(Voice("festival", vid))
    return voices


def voice_by_name(name: str) -> Voice:
    """Look up an installed voice by catalogue name (``flite:slt``) or bare id (``slt``)."""
    voices = installed_voices()
    for v in voices:
        if name in (v.name, v.voice_id, f"voice_{v.voice_id}"):
            return v
    raise KeyError(f"TTS voice {name!r} not installed; installed: {[v.name for v in voices]}")


_ASCII_PUNCT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                               "\u2014": ", ", "\u2026": "..."})


def has_cjk(text: str) -> bool:
    """True when the text holds CJK ideographs/kana/hangul or full-width punctuation (no installed voice reads them)."""
    return any("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uff00" <= ch <= "\uffef" for ch in text)


def to_ascii(text: str) -> str:
    """Typographic punctuation to ASCII and accents stripped (flite/festival read ASCII only)."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_PUNCT))
    return folded.encode("ascii", "ignore").decode("ascii")


def _synth_cmd(voice: Voice, text_path: Path, wav_path: Path) -> list[str]:
    """Command line that reads text from ``text_path`` and writes a wav to ``wav_path``."""
    if voice.engine == "flite":
        return [_require_binary("flite"), "-voice", voice.voice_id, "-f", str(text_path), "-o", str(wav_path)]
    return [_require_binary("text2wave"), "-eval", f"(voice_{voice.voice_id})", str(text_path), "-o", str(wav_path)]


def synthesize(text: str, voice: Voice, timeout_s: float = 60.0) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``: returns (wav [N] float32 mono, native sample rate)."""
    if voice.language != "en" or has_cjk(text):
        raise MediaError("tts_language_unsupported", f"voice {voice.name} speaks only English: {text!r}")
    text = to_ascii(text)
    if not text.strip():
        raise MediaError("bad_input", "empty text for TTS")
    with tempfile.TemporaryDirectory(prefix="iap-tts-") as tmp:
        text_path, wav_path = Path(tmp) / "line.txt", Path(tmp) / "line.wav"
        text_path.write_text(text.strip() + "\n", encoding="ascii")
        _run(_synth_cmd(voice, text_path, wav_path), timeout_s)
        if not wav_path.exists() or wav_path.stat().st_size == 0:
            raise RuntimeError(f"TTS voice {voice.name} wrote no audio for {text!r}")
        wav, sr = sf.read(wav_path, dtype="float32", always_2d=True)  # [N, C]
    return wav.mean(axis=1).astype(np.float32), int(sr)


def synthesize_at(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """Speak ``text`` and resample to ``sample_rate``: wav [N] float32."""
    wav, sr = synthesize(text, voice)
    return resample(wav, sr, sample_rate)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class VoiceBank:
    """Speaker embeddings of every installed voice reading CALIBRATION_TEXT (cached on disk per voice)."""

    def __init__(
        self,
        encoder: SpeakerEncoder | None = None,
        voices: list[Voice] | None = None,
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
    ):
        if encoder is None:
            from iap_bench.backends.speaker import SpeakerEncoder

            encoder = SpeakerEncoder()
        self.encoder = encoder
        self.voices = list(voices) if voices is not None else installed_voices()
        if not self.voices:
            raise FileNotFoundError("no TTS voice installed; `apt-get install flite festival festvox-us-slt-hts`")
        self.cache_dir = cache_dir
        self.embeddings: dict[str, np.ndarray] = {v.name: self._embedding(v) for v in self.voices}  # name -> [256]

    def _cache_key(self, voice: Voice) -> str:
        parts = [voice.name, CALIBRATION_TEXT, engine_versions().get(voice.engine, ""), self.encoder.checkpoint_sha256]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

    def _embedding(self, voice: Voice) -> np.ndarray:
        """Embedding [256] of ``voice`` reading the calibration text, from the cache when present."""
        path = self.cache_dir / f"{self._cache_key(voice)}.npy" if self.cache_dir else None
        if path is not None and path.exists():
            return np.load(path)
        emb = self.encoder.embed(synthesize_at(CALIBRATION_TEXT, voice, 16000)).astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(path)
        return emb

    def scores(self, ref_wav16k: np.ndarray) -> dict[str, float]:
        """Cosine of the reference voice [N] (16 kHz) to every installed voice, by voice name."""
        ref = self.encoder.embed(ref_wav16k)
        return {name: cosine(ref, emb) for name, emb in self.embeddings.items()}

    def nearest_voice(self, ref_wav16k: np.ndarray) -> tuple[Voice, float]:
        """The installed voice nearest to the reference voice [N] (16 kHz), with its cosine."""
        scores = self.scores(ref_wav16k)
        best = max(scores, key=scores.__getitem__)
        return next(v for v in self.voices if v.name == best), scores[best]

    def voice(self, name: str) -> Voice:
        """A voice of this bank by catalogue name."""
        for v in self.voices:
            if name in (v.name, v.voice_id):
                return v
        raise KeyError(f"voice {name!r} not in bank: {[v.name for v in self.voices]}")
