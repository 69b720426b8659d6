"""Small synthetic media for the media tests (imported by conftest and the test modules)."""

from __future__ import annotations

import numpy as np


def moving_square(n: int = 50, h: int = 64, w: int = 96) -> np.ndarray:
    """[n, h, w, 3] uint8: a white square moving right 1 px per frame over a dark gradient."""
    base = np.tile(np.linspace(20, 80, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
    video = np.repeat(base[None], n, axis=0).copy()
    for i in range(n):
        x = i % (w - 16)
        video[i, h // 4:h // 4 + 16, x:x + 16] = 255
    return video


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """[N] float32 sine."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_freq(x: np.ndarray, sr: int) -> float:
    """Frequency of the largest FFT bin (Hann window)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))
