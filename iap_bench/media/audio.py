"""Pure audio helpers: mono mixdown, resampling (soxr HQ, no silent fallback), silence check.

The resampler is part of every audio metric's identity (``resampler_identity``): a number computed with
another resampler is another number.
"""

from __future__ import annotations

import importlib.util

import numpy as np

SILENCE_PEAK = 1e-4
HAVE_SOXR = importlib.util.find_spec("soxr") is not None
SOXR_QUALITY = "HQ"


def resampler_identity() -> str:
    """Name, version and quality of the resampler every audio view goes through."""
    import importlib.metadata

    if not HAVE_SOXR:
        return "soxr missing"
    return f"soxr {importlib.metadata.version('soxr')} {SOXR_QUALITY}"


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[N] or [C, N] -> [N] float32 (channel mean, as in METRICS.md §0)."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        return a
    if a.ndim != 2:
        raise ValueError(f"audio must be [N] or [C, N], got shape {a.shape}")
    return a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0]


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono [N] float32 from sr_in to sr_out (identity when equal); length = round(N * out / in)."""
    x = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out or x.size == 0:
        return x.copy()
    if not HAVE_SOXR:  # no silent fallback: another resampler would change every audio number
        from iap_bench.errors import IAPBenchError

        raise IAPBenchError("the soxr resampler is not installed (pip install soxr); it is what every audio "
                            "metric's identity records, so no other resampler is substituted")
    import soxr

    y = soxr.resample(x, sr_in, sr_out, quality=SOXR_QUALITY)
    n = int(round(x.size * sr_out / sr_in))
    if y.size > n:
        y = y[:n]
    elif y.size < n:
        y = np.pad(y, (0, n - y.size))
    return np.ascontiguousarray(y, dtype=np.float32)


def check_audio(mono: np.ndarray, where: str) -> None:
    """Raise the sample fault a decoded track has, if any: NaN/inf samples, then silence (or no samples)."""
    from iap_bench.errors import MediaError

    if not np.isfinite(mono).all():
        raise MediaError("nonfinite_audio", f"{where}: NaN or inf samples")
    if is_silent(mono):
        raise MediaError("silent", f"{where}: audio peak below {SILENCE_PEAK:g}")


def is_silent(audio: np.ndarray, peak: float = SILENCE_PEAK) -> bool:
    """True when the absolute peak is below ``peak`` (or the clip is empty)."""
    return audio.size == 0 or float(np.max(np.abs(audio))) < peak
