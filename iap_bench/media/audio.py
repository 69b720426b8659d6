"""Pure audio helpers: mono mixdown, resampling (soxr if installed, else scipy polyphase), silence check."""

from __future__ import annotations

import importlib.util
from math import gcd

import numpy as np

SILENCE_PEAK = 1e-4
HAVE_SOXR = importlib.util.find_spec("soxr") is not None


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
    if HAVE_SOXR:
        import soxr

        y = soxr.resample(x, sr_in, sr_out, quality="HQ")
    else:
        from scipy.signal import resample_poly

        g = gcd(int(sr_in), int(sr_out))
        y = resample_poly(x, sr_out // g, sr_in // g)
    n = int(round(x.size * sr_out / sr_in))
    if y.size > n:
        y = y[:n]
    elif y.size < n:
        y = np.pad(y, (0, n - y.size))
    return np.ascontiguousarray(y, dtype=np.float32)


def is_silent(audio: np.ndarray, peak: float = SILENCE_PEAK) -> bool:
    """True when the absolute peak is below ``peak`` (or the clip is empty)."""
    return audio.size == 0 or float(np.max(np.abs(audio))) < peak
