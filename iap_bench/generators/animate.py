"""Classical talking-head animation for the cascade baseline: one reference photo, mouth opened by the speech
envelope through a piecewise-affine landmark warp, inner mouth darkened, plus a slight head motion.

All functions are pure (arrays in, arrays out); shapes are in names or comments.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from iap_bench.errors import MediaError

# 68-point (iBUG) landmark indices used by the warp.
INNER_LIP = np.arange(60, 68)  # inner lip contour, clockwise from the left corner
# Downward displacement of each moving landmark, as a fraction of the mouth opening (lower lip = 1).
OPEN_WEIGHTS: dict[int, float] = {
    **{i: 1.0 for i in (56, 57, 58, 65, 66, 67)},  # lower lip, outer and inner middle
    **{i: 0.75 for i in (55, 59)},  # lower lip, outer sides
    **{i: 0.3 for i in (48, 54, 60, 64)},  # mouth corners
    **{i: -0.08 for i in (61, 62, 63)},  # upper inner lip lifts slightly
    8: 0.8, 7: 0.7, 9: 0.7, 6: 0.5, 10: 0.5, 5: 0.3, 11: 0.3, 4: 0.12, 12: 0.12,  # jaw follows the lip
}
INNER_MOUTH_RGB = np.array([38, 16, 18], dtype=np.float32)


@dataclass(frozen=True)
class AnimateConfig:
    """Mouth and head-motion amplitudes of the classical animator."""

    max_open_frac: float = 0.34  # lower-lip drop at full loudness, as a fraction of mouth width
    darken_max: float = 0.8  # inner-mouth darkening at full loudness
    levels: int = 24  # envelope quantisation: warps are computed once per level and reused
    face_frac: float = 0.42  # face box side as a fraction of the panel's short side
    motion_px_frac: float = 0.012  # head translation amplitude, fraction of the panel's short side
    motion_scale: float = 0.012  # head zoom amplitude (relative)
    motion_rot_deg: float = 1.2  # head roll amplitude


# ---- speech envelope ----------------------------------------------------------------------------------
def speech_envelope(audio_n: np.ndarray, sample_rate: int, fps: float, n_frames: int,
                    smooth_frames: int = 2, floor_db: float = -32.0) -> np.ndarray:
    """RMS envelope at the video frame rate, smoothed and normalised to [0, 1]: env_t [T] float32.

    Frames quieter than ``floor_db`` below the loud level are 0 so pauses keep the mouth closed.
    """
    hop = sample_rate / fps
    rms_t = np.zeros(n_frames, dtype=np.float32)
    for t in range(n_frames):
        a, b = int(round(t * hop)), int(round((t + 1) * hop))
        seg = audio_n[a:b]
        rms_t[t] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0
    if smooth_frames > 0:
        k = np.hanning(2 * smooth_frames + 3)[1:-1]
        rms_t = np.convolve(rms_t, k / k.sum(), mode="same").astype(np.float32)
    loud = float(rms_t.max()) if n_frames else 0.0  # max, not a percentile: a subject may speak only briefly
    if loud <= 1e-6:
        return np.zeros(n_frames, dtype=np.float32)
    db_t = 20 * np.log10(np.maximum(rms_t, 1e-9) / loud)
    env_t = np.clip((db_t - floor_db) / -floor_db, 0.0, 1.0)
    return env_t.astype(np.float32)


# ---- portrait framing ---------------------------------------------------------------------------------
def portrait_transform(bbox: tuple[float, float, float, float], size_wh: tuple[int, int], face_frac: float,
                       image_wh: tuple[int, int] | None = None) -> np.ndarray:
    """2x3 similarity mapping the source photo into a panel with the face centred at ``face_frac`` scale.

    With ``image_wh``, a tight photo is zoomed in (and the window shifted) so the panel never leaves the
    photo: no smeared border pixels.
    """
    x0, y0, x1, y1 = bbox
    w, h = size_wh
    side = max(x1 - x0, y1 - y0)
    s = face_frac * min(w, h) / max(side, 1.0)
    left, top = (x0 + x1) / 2 - (w / 2) / s, (y0 + y1) / 2 - (h * 0.48) / s  # window corner in the photo
    if image_wh is not None:
        iw, ih = image_wh
        s_cover = max(w / iw, h / ih)
        if s < s_cover:  # zoom about the face centre until the window fits inside the photo
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            left, top = cx - (cx - left) * s / s_cover, cy - (cy - top) * s / s_cover
            s = s_cover
        left = min(max(left, 0.0), iw - w / s)
        top = min(max(top, 0.0), ih - h / s)
    return np.array([[s, 0, -s * left], [0, s, -s * top]], dtype=np.float64)


def frame_portrait(image_hw3: np.ndarray, bbox: tuple[float, float, float, float], landmarks_68x2: np.ndarray,
                   size_wh: tuple[int, int], face_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop/scale the photo into a [H, W, 3] panel around the face; returns (panel, landmarks [68, 2])."""
    m = portrait_transform(bbox, size_wh, face_frac, (image_hw3.shape[1], image_hw3.shape[0]))
    panel = cv2.warpAffine(np.ascontiguousarray(image_hw3), m, size_wh, flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE)
    lm = landmarks_68x2.astype(np.float64) @ m[:, :2].T + m[:, 2]
    return panel, lm.astype(np.float32)


# ---- mouth warp ---------------------------------------------------------------------------------------
def mouth_width(landmarks_68x2: np.ndarray) -> float:
    """Distance between the outer mouth corners (points 48 and 54)."""
    return float(np.linalg.norm(landmarks_68x2[54] - landmarks_68x2[48]))


def open_mouth_landmarks(landmarks_68x2: np.ndarray, open_px: float) -> np.ndarray:
    """Target landmarks [68, 2] with the lower lip and jaw dropped by ``open_px`` along the face's down axis."""
    lm = landmarks_68x2.astype(np.float32).copy()
    up = lm[27] - lm[8]  # nose bridge minus chin: the face's up direction (handles head roll)
    down = -up / max(float(np.linalg.norm(up)), 1e-6)
    for i, w in OPEN_WEIGHTS.items():
        lm[i] += down * (w * open_px)
    return lm


def control_points(landmarks_68x2: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Warp control points [68 + 17 + 8, 2]: landmarks, a fixed ring around the jaw, and the panel border."""
    w, h = size_wh
    center = landmarks_68x2[:17].mean(axis=0)
    ring = center + 1.45 * (landmarks_68x2[:17] - center)  # [17, 2] fixed: confines the warp to the face
    ring = np.clip(ring, 1.0, [w - 2.0, h - 2.0])
    border = np.array([[0, 0], [w / 2, 0], [w - 1, 0], [w - 1, h / 2], [w - 1, h - 1], [w / 2, h - 1],
                       [0, h - 1], [0, h / 2]], dtype=np.float32)
    return np.concatenate([landmarks_68x2, ring, border]).astype(np.float32)


def triangulate(points_kx2: np.ndarray) -> np.ndarray:
    """Delaunay triangles [M, 3] (indices into the points)."""
    from scipy.spatial import Delaunay  # lazy: a re-run that reuses every sample never triangulates

    return Delaunay(points_kx2.astype(np.float64)).simplices.astype(np.int64)


def piecewise_affine_maps(src_kx2: np.ndarray, dst_kx2: np.ndarray, tris_mx3: np.ndarray,
                          size_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps (map_x, map_y) [H, W] float32 for cv2.remap: each dst triangle samples its src triangle.

    Triangles whose vertices do not move keep the identity map.
    """
    w, h = size_wh
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = np.abs(dst_kx2 - src_kx2).max(axis=1) > 1e-3  # [K]
    for tri in tris_mx3[moved[tris_mx3].any(axis=1)]:
        d, s = dst_kx2[tri].astype(np.float32), src_kx2[tri].astype(np.float32)
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x1 < x0 or y1 < y0:
            continue
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
        cv2.fillConvexPoly(mask, np.round(d - [x0, y0]).astype(np.int32), 1)
        a = cv2.getAffineTransform(d, s)  # [2, 3] dst -> src
        ys, xs = np.nonzero(mask)
        xs, ys = xs + x0, ys + y0
        map_x[ys, xs] = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
        map_y[ys, xs] = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    return map_x, map_y


def darken_inner_mouth(image_hw3: np.ndarray, inner_lip_8x2: np.ndarray, strength: float) -> np.ndarray:
    """Blend the inner-mouth polygon toward a dark mouth colour with a soft edge (strength in [0, 1])."""
    if strength <= 0:
        return image_hw3
    h, w = image_hw3.shape[:2]
    mask = np.zeros((h, w), dtype=np.float32)
    cv2.fillPoly(mask, [np.round(inner_lip_8x2).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=1.2)[..., None] * strength  # [H, W, 1]
    out = image_hw3.astype(np.float32) * (1 - mask) + INNER_MOUTH_RGB * mask
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def open_mouth(panel_hw3: np.ndarray, landmarks_68x2: np.ndarray, level: float, cfg: AnimateConfig,
               tris_mx3: np.ndarray | None = None) -> np.ndarray:
    """The panel with the mouth opened to ``level`` in [0, 1] (0 returns the panel unchanged)."""
    if level <= 0:
        return panel_hw3
    h, w = panel_hw3.shape[:2]
    src = control_points(landmarks_68x2, (w, h))
    dst_lm = open_mouth_landmarks(landmarks_68x2, level * cfg.max_open_frac * mouth_width(landmarks_68x2))
    dst = control_points(dst_lm, (w, h))
    dst[68:] = src[68:]  # ring and border stay put
    tris = triangulate(src) if tris_mx3 is None else tris_mx3
    map_x, map_y = piecewise_affine_maps(src, dst, tris, (w, h))
    warped = cv2.remap(panel_hw3, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return darken_inner_mouth(warped, dst_lm[INNER_LIP], min(1.0, 1.6 * level) * cfg.darken_max)


# ---- head motion --------------------------------------------------------------------------------------
def head_motion(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth unit-amplitude motion curves [T, 4] (dx, dy, zoom, roll), each a sum of slow random sinusoids."""
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 4), dtype=np.float32)
    for c in range(4):
        freqs = rng.uniform(0.12, 0.55, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        amps = rng.uniform(0.4, 1.0, size=3)
        out[:, c] = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0) / amps.sum()
    return out


def motion_matrix(motion_4: np.ndarray, center_xy: tuple[float, float], size_wh: tuple[int, int],
                  cfg: AnimateConfig) -> np.ndarray:
    """2x3 affine for one frame's (dx, dy, zoom, roll) unit motion about the face centre."""
    short = min(size_wh)
    dx, dy, zoom, roll = (float(v) for v in motion_4)
    m = cv2.getRotationMatrix2D(center_xy, roll * cfg.motion_rot_deg, 1.0 + zoom * cfg.motion_scale)
    m[:, 2] += (dx * cfg.motion_px_frac * short, dy * cfg.motion_px_frac * short)
    return m


def animate_panel(panel_hw3: np.ndarray, landmarks_68x2: np.ndarray, env_t: np.ndarray, motion_t4: np.ndarray,
                  cfg: AnimateConfig = AnimateConfig()) -> np.ndarray:
    """Talking-head clip [T, H, W, 3] uint8: mouth opening follows env_t [T]; head follows motion_t4 [T, 4]."""
    if panel_hw3.ndim != 3 or panel_hw3.shape[2] != 3:
        raise MediaError("bad_input", f"panel must be [H, W, 3], got {panel_hw3.shape}")
    h, w = panel_hw3.shape[:2]
    tris = triangulate(control_points(landmarks_68x2, (w, h)))
    q_t = np.round(np.clip(env_t, 0, 1) * cfg.levels).astype(int)  # [T] quantised levels
    mouths = {q: open_mouth(panel_hw3, landmarks_68x2, q / cfg.levels, cfg, tris) for q in np.unique(q_t)}
    cx, cy = (float(v) for v in landmarks_68x2[27:36].mean(axis=0))
    video = np.empty((len(env_t), h, w, 3), dtype=np.uint8)
    for t, q in enumerate(q_t):
        m = motion_matrix(motion_t4[t], (cx, cy), (w, h), cfg)
        video[t] = cv2.warpAffine(mouths[q], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return video
