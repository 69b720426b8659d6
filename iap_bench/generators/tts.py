"""Classical offline TTS for the cascade baseline: catalogue of installed flite/festival voices, synthesis
through their command-line tools, and a voice bank that picks the installed voice nearest to a reference
voice by a classical statistic (MFCC and log-F0 statistics over voiced frames, standardised distance).

The matcher deliberately uses no learned speaker model: the offline AID-SIM metric scores voices with
resemblyzer's GE2E encoder, and choosing the voice with that same encoder would make the cascade's AID-SIM
partly a copy of the metric's own choice instead of a baseline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from iap_bench.errors import MediaError
from iap_bench.media.audio import resample

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

# Read once per voice to measure its features (phonetically varied, ~10 s of speech).
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


# ---- classical voice features ----------------------------------------------------------------------------
FEATURE_SR = 16000
FEATURE_METHOD = "mfcc-logf0-zscore-euclidean"  # recorded in describe() and in every sample's info
FEATURE_VERSION = "1"  # bump when anything below changes: it keys the on-disk voice-feature cache
N_MFCC = 20  # c1..c20; c0 (frame energy) is dropped, recordings differ in level
MFCC_N_FFT, MFCC_N_MELS = 512, 40  # 32 ms windows, 40 mel bands up to 8 kHz
HOP = 160  # 10 ms frames, shared by the MFCCs and pYIN so the voicing decision applies to both
F0_RANGE_HZ = (55.0, 440.0)  # pYIN search range (A1..A4): covers adult male and female speech
F0_FRAME = 1024  # 64 ms pYIN window (two periods of the lowest F0)
MIN_VOICED_FRAMES = 20  # fewer voiced 10 ms frames than this: no usable voice
# Feature layout [D=42]: MFCC means [20], MFCC standard deviations [20], log-F0 median and IQR [2]. Each block is
# scaled by 1/sqrt(its size) after z-scoring so the three blocks weigh the same in the distance (otherwise the
# 40 spectral dimensions would drown the 2 pitch ones).
FEATURE_BLOCKS: tuple[tuple[str, int], ...] = (("mfcc_mean", N_MFCC), ("mfcc_std", N_MFCC), ("log_f0", 2))
FEATURE_DIM = sum(n for _, n in FEATURE_BLOCKS)


def matcher_description() -> dict[str, Any]:
    """Identity of the voice-matching method (goes into generation keys via the generator's describe())."""
    import librosa

    return {
        "method": FEATURE_METHOD,
        "version": FEATURE_VERSION,
        "features": "mean+std of MFCC c1..c20 over pYIN-voiced frames; median+IQR of log F0 over voiced frames",
        "distance": "z-score per feature over catalogue voices + reference, equal weight per block, Euclidean",
        "librosa": librosa.__version__,
    }


def voice_features(wav16k: np.ndarray) -> np.ndarray:
    """Classical voice statistics of a 16 kHz recording [N]: [FEATURE_DIM] float64 (layout: FEATURE_BLOCKS).

    Voiced frames come from pYIN; the MFCCs and F0 are summarised over those frames only, so pauses and silence
    do not count. Raises MediaError("no_speech") when fewer than MIN_VOICED_FRAMES frames are voiced.
    """
    import librosa

    wav = np.asarray(wav16k, dtype=np.float32).reshape(-1)
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if wav.size else 0.0
    if wav.size < F0_FRAME or rms < 1e-6:
        raise MediaError("no_speech", "voice features: recording is empty or silent")
    wav = wav * np.float32(0.1 / rms)  # fixed level: only the log floor of the mel spectrum ever saw the gain
    f0, voiced, _ = librosa.pyin(wav, fmin=F0_RANGE_HZ[0], fmax=F0_RANGE_HZ[1], sr=FEATURE_SR,
                                 frame_length=F0_FRAME, hop_length=HOP)  # [T], [T]
    mfcc = librosa.feature.mfcc(y=wav, sr=FEATURE_SR, n_mfcc=N_MFCC + 1, n_fft=MFCC_N_FFT, hop_length=HOP,
                                n_mels=MFCC_N_MELS)[1:]  # [20, T'] without c0
    n = min(mfcc.shape[1], len(voiced))  # both centred at t*HOP; lengths agree up to a frame
    mask = voiced[:n] & np.isfinite(f0[:n])
    if int(mask.sum()) < MIN_VOICED_FRAMES:
        raise MediaError("no_speech", f"voice features: only {int(mask.sum())} voiced frames "
                                      f"(need {MIN_VOICED_FRAMES})")
    mv = mfcc[:, :n][:, mask].astype(np.float64)  # [20, V]
    log_f0 = np.log(f0[:n][mask].astype(np.float64))  # [V]
    q25, q50, q75 = np.percentile(log_f0, [25, 50, 75])
    return np.concatenate([mv.mean(axis=1), mv.std(axis=1), [q50, q75 - q25]])


def _block_weights(dim: int) -> np.ndarray:
    """Per-feature weight [D]: 1/sqrt(block size), so every block of FEATURE_BLOCKS counts the same."""
    if dim != FEATURE_DIM:
        return np.ones(dim)
    return np.concatenate([np.full(n, 1.0 / np.sqrt(n)) for _, n in FEATURE_BLOCKS])


def match_distances(ref_d: np.ndarray, voices_vd: np.ndarray) -> np.ndarray:
    """Standardised distance of a reference [D] to every catalogue voice [V, D]: [V] float64, lower is nearer.

    Pure function of the arrays: each feature is z-scored over the V voices plus the reference (features with no
    spread contribute nothing), the FEATURE_BLOCKS are weighted equally (when D == FEATURE_DIM), and the result is
    the Euclidean distance in that space. Invariant to any affine rescaling (a*x + b, a != 0) of a feature column.
    """
    ref = np.asarray(ref_d, dtype=np.float64)
    bank = np.asarray(voices_vd, dtype=np.float64)
    if ref.ndim != 1 or bank.ndim != 2 or bank.shape[1] != ref.shape[0] or bank.shape[0] == 0:
        raise ValueError(f"match_distances: need ref [D] and voices [V>=1, D], got {ref.shape} and {bank.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(bank).all()):
        raise ValueError("match_distances: features must be finite")
    x = np.vstack([bank, ref[None]])  # [V+1, D]
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 1e-12 * (1 + np.abs(x).max(axis=0)), sd, np.inf)
    z = z * _block_weights(x.shape[1])
    return np.linalg.norm(z[:-1] - z[-1], axis=1)


def _cached_features(path: Path | None, compute: Any) -> np.ndarray:
    """Features [FEATURE_DIM] from an .npy cache file when valid, else ``compute()`` written atomically."""
    if path is not None and path.exists():
        feats = np.load(path)
        if feats.shape == (FEATURE_DIM,) and np.isfinite(feats).all():
            return feats
    feats = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, feats)
        tmp.replace(path)
    return feats


class VoiceBank:
    """Classical features of every installed voice reading CALIBRATION_TEXT (cached on disk per voice and
    feature-method version); picks the voice nearest to a reference voice with ``match_distances``."""

    def __init__(self, voices: list[Voice] | None = None, cache_dir: Path | None = DEFAULT_CACHE_DIR,
                 load_features: bool = True):
        self.voices = list(voices) if voices is not None else installed_voices()
        if not self.voices:
            raise FileNotFoundError("no TTS voice installed; `apt-get install flite festival festvox-us-slt-hts`")
        self.cache_dir = cache_dir
        self._features: dict[str, np.ndarray] | None = None  # name -> [FEATURE_DIM]
        if load_features:
            self.load_features()

    @property
    def features(self) -> dict[str, np.ndarray]:
        """Voice name -> features [FEATURE_DIM], computed (or read from the cache) on first use."""
        return self.load_features()

    def load_features(self) -> dict[str, np.ndarray]:
        """Compute or read every voice's features once; idempotent."""
        if self._features is None:
            self._features = {v.name: self._voice_features(v) for v in self.voices}
        return self._features

    def _cache_key(self, voice: Voice) -> str:
        import librosa

        parts = [voice.name, CALIBRATION_TEXT, engine_versions().get(voice.engine, ""), FEATURE_METHOD,
                 FEATURE_VERSION, librosa.__version__]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

    def cache_path(self, voice: Voice) -> Path | None:
        """Where ``voice``'s features are cached (None without a cache dir)."""
        return self.cache_dir / f"feat-{self._cache_key(voice)}.npy" if self.cache_dir else None

    def _voice_features(self, voice: Voice) -> np.ndarray:
        """Features [FEATURE_DIM] of ``voice`` reading the calibration text, from the cache when present."""
        return _cached_features(self.cache_path(voice),
                                lambda: voice_features(synthesize_at(CALIBRATION_TEXT, voice, FEATURE_SR)))

    def distances_to(self, ref_features: np.ndarray) -> dict[str, float]:
        """Distance of reference features [FEATURE_DIM] to every voice of the bank, by voice name."""
        names = [v.name for v in self.voices]
        dist = match_distances(ref_features, np.stack([self.features[n] for n in names]))
        return {n: float(d) for n, d in zip(names, dist)}

    def reference_features(self, path: Path, load_wav16k: Any) -> np.ndarray:
        """Features of a reference voice file, cached on disk by its content hash (pyin is slow)."""
        import librosa

        from iap_bench.hashing import file_sha256

        key = hashlib.sha256("\n".join(["ref", file_sha256(path), FEATURE_METHOD, FEATURE_VERSION,
                                         librosa.__version__]).encode()).hexdigest()[:24]
        cached = self.cache_dir / f"ref-{key}.npy" if self.cache_dir else None
        return _cached_features(cached, lambda: voice_features(load_wav16k()))

    def distances(self, ref_wav16k: np.ndarray) -> dict[str, float]:
        """Distance of the reference voice [N] (16 kHz) to every installed voice, by voice name."""
        return self.distances_to(voice_features(ref_wav16k))

    def nearest_voice(self, ref_wav16k: np.ndarray) -> tuple[Voice, float]:
        """The installed voice nearest to the reference voice [N] (16 kHz), with its distance."""
        dist = self.distances(ref_wav16k)
        best = min(sorted(dist), key=dist.__getitem__)
        return next(v for v in self.voices if v.name == best), dist[best]

    def voice(self, name: str) -> Voice:
        """A voice of this bank by catalogue name."""
        for v in self.voices:
            if name in (v.name, v.voice_id):
                return v
        raise KeyError(f"voice {name!r} not in bank: {[v.name for v in self.voices]}")
