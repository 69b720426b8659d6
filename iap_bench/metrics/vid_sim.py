"""VID-SIM, offline backend: dlib ResNet 128-d face descriptors (not ArcFace), cosine similarity.

Protocol as METRICS.md §3 (OpenS2V/ConsisID style): 32 uniformly sampled native frames, largest face
per frame (25 % gray-padded retry when none is found), per-frame max(0, cos(ref, face)), faceless
frames skipped, video score 0 if no frame had a face. Multi-view references: mean of the views'
normalised embeddings, re-normalised. Multi-subject (proposal): per frame, Hungarian matching between
detected faces and the K prototypes; VID-SIM_k = mean of k's matched clamped cosines (0 if never
matched); item = mean over k.

Scale: dlib descriptors are trained for L2 distance (same person < 0.6). On L2-normalised descriptors
cosine = 1 - L2^2/2, so dlib's 0.6 threshold is cosine 0.82 and *different* people typically score
0.7-0.9 here, against ~0-0.2 for ArcFace. Compare these numbers only with other dlib-backend numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


@register_metric("vid_sim/offline")
class OfflineVIDSim(Metric):
    """Face identity similarity (dlib-cosine, higher is better) of generated frames to reference faces."""

    name = "vid_sim"
    direction = "higher"
    backend = "offline-dlib-resnet"
    version = "1"
    views = ("frames", "faces")

    def __init__(self, weights: str | None = None, n_frames: int = 32, pad_retry: bool = True) -> None:
        self.weights = weights
        self.n_frames = n_frames
        self.pad_retry = pad_retry
        self._emb = None
        self._ref_cache: dict[tuple[str, ...], np.ndarray] = {}

    def load(self) -> None:
        if self._emb is None:
            from iap_bench.backends.face_embed import FaceEmbedder

            self._emb = FaceEmbedder(self.weights)

    def checkpoint_id(self) -> str:
        if self._emb is not None:
            return self._emb.checkpoint_sha256
        from iap_bench.backends.face_embed import dlib_resnet_weight_spec
        from iap_bench.hashing import file_sha256

        return file_sha256(dlib_resnet_weight_spec().resolve(self.weights))

    def _reference(self, subject: Subject) -> np.ndarray:
        """Prototype [128] of a subject's reference view(s) (cached); MediaError if a view has no face."""
        from iap_bench.media.refs import load_image

        if not subject.faces:
            raise MediaError("unbound_reference", f"{subject.anchor} has no reference face")
        key = tuple(str(Path(p)) for p in subject.faces)
        if key not in self._ref_cache:
            embs = []
            for p in subject.faces:
                e = self._emb.embed_image(load_image(p))
                if e is None:
                    raise MediaError("no_face_in_reference", str(p))
                embs.append(e)
            self._ref_cache[key] = prototype(np.stack(embs))
        return self._ref_cache[key]

    def _frame_embeddings(self, frame: np.ndarray, faces: list, largest_only: bool) -> np.ndarray:
        """Embeddings [F,128] of one frame's faces (or its largest); gray-padded re-detection if none found."""
        from iap_bench.backends.face_embed import largest_face, pad_gray
        from iap_bench.media.faces import detect_faces

        image = frame
        if not faces and self.pad_retry:
            image, _, _ = pad_gray(np.ascontiguousarray(frame))
            faces = detect_faces(image)
        if largest_only and faces:
            faces = [largest_face(faces)]
        return self._emb.embed_all(image, faces)

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[tuple[str, bool], list[np.ndarray]] = {}  # same clip scored for several items: embed once
        return [self._score_one(s, cache) for s in samples]

    def _sample_embeddings(self, sample: EvalSample, largest_only: bool,
                           cache: dict[tuple[str, bool], list[np.ndarray]]) -> list[np.ndarray]:
        """Per sampled frame, the face embeddings [F,128] of the clip (cached by content hash)."""
        key = (sample.media.content_hash, largest_only)
        if key not in cache:
            det = sample.media.faces(self.n_frames)
            frames = sample.media.frames()
            cache[key] = [self._frame_embeddings(frames[int(idx)], det.faces[pos], largest_only)
                          for pos, idx in enumerate(det.frame_indices)]
        return cache[key]

    def _score_one(self, sample: EvalSample, cache: dict[tuple[str, bool], list[np.ndarray]]) -> MetricValue:
        try:
            protos = np.stack([self._reference(s) for s in sample.item.subjects])  # [K,128]
            frame_embs = self._sample_embeddings(sample, len(protos) == 1, cache)
            per_frame = [match_frame(embs, protos) for embs in frame_embs]
        except MediaError as e:
            return MetricValue.fail(e.reason, detail=e.detail)
        values, presence = subject_scores(per_frame, len(protos))
        anchors = [s.anchor for s in sample.item.subjects]
        extras = {"presence_rate": dict(zip(anchors, presence)), "n_frames": len(per_frame)}
        if len(protos) > 1:
            extras["per_subject"] = dict(zip(anchors, values))
        return MetricValue(float(np.mean(values)), extras=extras)
