"""Face identity embeddings with dlib's ResNet (shipped in face_recognition_models), 128-d, L2-normalised.

Used by the ``vid_sim/dlib`` backend. dlib's raw descriptors are NOT unit length: on 133 real face images
their L2 norm is 1.35-1.59, mean 1.45 (``benchmarks/bench_face_backends.py`` prints it). dlib thresholds the
raw L2 distance at 0.6; for two descriptors of norm r that is cosine 1 - 0.18 / r**2, about 0.91 at r = 1.45
(not 0.82, which would hold only for unit vectors). We compare the L2-normalised descriptors
by cosine: on real photos the same person scores ~0.96 across genuinely different photos (0.97-1.0 for
augmented copies) and different people 0.83 +- 0.11 (up to 0.93), against ~0.1 for SFace or ArcFace, so
these numbers are comparable only with other dlib-backend numbers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iap_bench.errors import MediaError
from iap_bench.hashing import file_sha256
from iap_bench.media.faces import PAD_FRACTION, PAD_VALUE, embed_largest, face_area, largest_face, pad_gray
from iap_bench.weights import WeightSpec

if TYPE_CHECKING:
    from iap_bench.media.faces import Face

__all__ = ["PAD_FRACTION", "PAD_VALUE", "DLIB_RESNET_SHA256", "FaceEmbedder", "dlib_resnet_weight_spec",
           "face_area", "largest_face", "pad_gray"]

DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"  # face_recognition_models 0.3.0


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
        sha256=DLIB_RESNET_SHA256,
    )


def _check_image(image_rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise MediaError("bad_input", f"expected [H,W,3] uint8 RGB, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)


class FaceEmbedder:
    """dlib ``face_recognition_model_v1``: 68-landmark-aligned 150x150 chip -> 128-d descriptor."""

    dim = 128

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
        d = self.descriptor(image_rgb, face)
        return d / max(float(np.linalg.norm(d)), 1e-12)

    def descriptor(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """dlib's raw descriptor [128] (norm ~1.4-1.5, not 1) of one detected face."""
        import dlib

        img = _check_image(image_rgb)
        lm = np.asarray(face.landmarks, dtype=np.float64)
        if lm.shape != (68, 2):
            raise MediaError("bad_input", f"need 68 landmarks, got {lm.shape}")
        x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
        rect = dlib.rectangle(x0, y0, x1, y1)
        parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        shape = dlib.full_object_detection(rect, parts)
        return np.asarray(self._model.compute_face_descriptor(img, shape, self.num_jitters), dtype=np.float32)

    def embed_image(self, image_rgb: np.ndarray, pad_retry: bool = True) -> np.ndarray | None:
        """Descriptor of the largest face in an image; retries on a 25 % gray-padded copy; None if no face."""
        from iap_bench.media.faces import detect_faces

        return embed_largest(_check_image(image_rgb), detect_faces, self.embed_all, pad_retry)

    def embed_all(self, image_rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        """Descriptors [F,128] for every face of one image (empty [0,128] if none)."""
        if not faces:
            return np.zeros((0, 128), dtype=np.float32)
        return np.stack([self.embed(image_rgb, f) for f in faces])
