"""Pure pieces of the checkpoint-free lip-sync measure (``sync/offline``): speech envelope, mouth aperture,
SyncNet-style offset search, and box interpolation for per-frame landmarks.

Everything here is numpy only (no model, no I/O) so each piece is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# 68-point (iBUG/dlib) indices: inner upper lip 61-63 over inner lower lip 67-65; mouth corners 48 and 54.
INNER_UPPER = (61, 62, 63)
INNER_LOWER = (67, 66, 65)
MOUTH_CORNERS = (48, 54)


def speech_envelope(audio: np.ndarray, sr: int, fps: float, n_frames: int, floor_db: float = 40.0) -> np.ndarray:
    """Log-RMS speech envelope at the video rate: one value per frame t from samples [t*hop, (t+1)*hop).

    hop = sr / fps (640 samples = 40 ms at 16 kHz / 25 fps). Values are dB relative to the loudest frame,
    clipped ``floor_db`` below it (pauses and room tone all sit on the floor). Frames past the audio's end
    are NaN. Not normalised (see ``znorm``).
    """
    a = np.asarray(audio, dtype=np.float64).ravel()
    hop = sr / float(fps)
    out = np.full(int(n_frames), np.nan)
    for t in range(int(n_frames)):
        lo, hi = int(round(t * hop)), int(round((t + 1) * hop))
        if hi > a.size or hi <= lo:
            break
        out[t] = np.sqrt(np.mean(a[lo:hi] ** 2))
    ok = ~np.isnan(out)
    if not ok.any():
        return out
    db = 20.0 * np.log10(np.maximum(out[ok], 1e-10))
    out[ok] = np.maximum(db, db.max() - float(floor_db))
    return out


def mouth_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening over mouth width from 68-point landmarks: [..., 68, 2] -> [...] (scale-free)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    gap = np.linalg.norm(lm[..., INNER_UPPER, :] - lm[..., INNER_LOWER, :], axis=-1).mean(axis=-1)
    width = np.linalg.norm(lm[..., MOUTH_CORNERS[1], :] - lm[..., MOUTH_CORNERS[0], :], axis=-1)
    return gap / np.maximum(width, 1e-6)


def znorm(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the finite values (NaN kept); a constant series becomes all zeros."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    out = np.full_like(x, np.nan)
    if not ok.any():
        return out
    v = x[ok] - x[ok].mean()
    sd = v.std()
    out[ok] = v / sd if sd > 1e-9 else 0.0
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length series over positions where both are finite; 0 if undefined."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return 0.0
    a, b = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


@dataclass(frozen=True)
class OffsetSearch:
    """Result of ``offset_search``: per-offset distances, SyncNet-style confidence and best offset."""

    offsets: np.ndarray  # [2*vshift+1] int, SyncNet sign: offset = vshift - index
    dists: np.ndarray  # [2*vshift+1] float, 1 - Pearson r of video frame i vs audio frame i - offset
    conf: float  # median(dists) - min(dists)  (LSE-C analogue), in [0, 2]
    min_dist: float  # min(dists)  (LSE-D analogue), in [0, 2]
    offset: int  # offsets[argmin(dists)]
    n_frames: int  # video frames with a finite aperture


def offset_search(video: np.ndarray, audio: np.ndarray, vshift: int = 15, min_overlap: int = 10) -> OffsetSearch:
    """SyncNet's offset search on two per-frame series of one clip (same rate, same frame 0).

    For index k in 0..2*vshift the video frame i is paired with audio frame i - vshift + k (as in
    syncnet_python ``calc_pdist``); the distance is 1 - Pearson r over the pairs where both exist (no zero
    padding), i.e. half the mean squared distance of the z-scored series. offset = vshift - argmin (SyncNet's
    AV offset): audio delayed by d frames gives offset -d. An offset with fewer than ``min_overlap`` pairs
    gets distance 1 (no evidence).
    """
    v = np.asarray(video, dtype=np.float64)
    a = np.asarray(audio, dtype=np.float64)
    n = max(v.size, a.size)
    v = np.pad(v, (0, n - v.size), constant_values=np.nan)
    a = np.pad(a, (0, n - a.size), constant_values=np.nan)
    ks = np.arange(2 * vshift + 1)
    dists = np.ones(ks.size)
    for k in ks:
        lag = int(k) - vshift  # audio index = video index + lag
        if lag >= 0:
            vv, aa = v[:n - lag], a[lag:]
        else:
            vv, aa = v[-lag:], a[:n + lag]
        if (np.isfinite(vv) & np.isfinite(aa)).sum() >= min_overlap:
            dists[k] = 1.0 - pearson(vv, aa)
    best = int(np.argmin(dists))
    return OffsetSearch(offsets=vshift - ks, dists=dists, conf=float(np.median(dists) - dists[best]),
                        min_dist=float(dists[best]), offset=int(vshift - best),
                        n_frames=int(np.isfinite(np.asarray(video, dtype=np.float64)).sum()))


def interpolate_boxes(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of (x0, y0, x1, y1) boxes seen on sorted ``frames`` to every frame of their span.

    Returns (all frame indices first..last, boxes [n, 4]).
    """
    f = np.asarray(frames, dtype=np.int64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    span = np.arange(f[0], f[-1] + 1)
    return span, np.stack([np.interp(span, f, b[:, j]) for j in range(4)], axis=1)
