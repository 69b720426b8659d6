"""``sync/offline``: audio-visual lip sync with no SyncNet checkpoint (backend ``offline-landmarks``).

Its own backend and its own column (metric ``sync_offline``), never mixed with SyncNet's Sync-C/Sync-D: the
numbers live on a different scale.

Protocol (SyncNet's pipeline shape, METRICS.md §3, with hand-made features instead of the two CNN streams):

1. Video at 25 fps (``SampleMedia.frames(fps=25)``, nearest native frame); audio mono 16 kHz.
2. Faces: dlib HOG (``iap_bench.media.faces.detect_faces``, downscaled to ``det_max_side``) on every
   ``det_every``-th frame, greedy IoU tracks (``link_tracks``), boxes linearly interpolated to every frame of
   a track's span, 68 landmarks fitted on every frame from the interpolated box. Tracks shorter than
   ``min_track`` frames (LatentSync's 50; the clip's length if that is shorter) are dropped.
3. Video feature per frame: mouth aperture = inner-lip gap (61-63 vs 67-65) / mouth width (48-54), z-scored
   per track (a track whose aperture std is below ``min_aperture_std`` = 0.01 mouth widths is a still mouth:
   confidence 0, since z-scoring would only amplify landmark jitter). Audio feature per frame: log-RMS of the 40 ms (640-sample) window of that frame, clipped 40 dB
   below the loudest frame, z-scored.
4. Offset search as ``SyncNetInstance.evaluate`` (±``vshift`` = 15 frames = ±0.6 s): for each offset the
   distance d_o = 1 - Pearson r between the aperture and the envelope shifted by o (overlapping frames only).
   **Confidence = median_o d_o - min_o d_o** (the LSE-C definition on this distance; d is half the mean
   squared distance of the z-scored series, so it is also "peak correlation minus median correlation").
   Chosen over the bare correlation peak because, like LSE-C, it discounts a series that correlates
   equally at every lag (slow drifts, a mouth that is always open): only a *peaked* alignment scores. Range
   [0, 2]; a still face or an unrelated soundtrack scores near 0. The best offset is SyncNet's AV offset
   (vshift - argmin): audio delayed by d frames gives -d.
5. Per clip: the mean confidence over face tracks (LatentSync's per-video mean; silent listeners in a
   multi-subject clip lower it, as for Sync-C). ``extras``: ``offset`` (frames, longest track; None for a
   still mouth), ``min_dist``
   (mean over tracks, LSE-D analogue), ``dist_curve`` (d_o of the longest track for o = -15..+15),
   ``per_track``.

Failures (sample faults, scored ``worst`` = 0.0 = no evidence of sync): ``no_audio``, ``silent`` (from the
media layer), ``no_video``/``decode_error``, ``no_face`` (no track of ``min_track`` frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iap_bench.backends.mouth_sync import (
    OffsetSearch,
    interpolate_boxes,
    mouth_aperture,
    offset_search,
    speech_envelope,
    znorm,
)
from iap_bench.errors import MediaError
from iap_bench.metrics.base import EvalSample, Metric, MetricValue, register_metric

FPS = 25.0
SR = 16000


def track_landmarks(frames: np.ndarray, det_every: int = 5, det_max_side: int = 640,
                    min_track: int = 50) -> list[tuple[np.ndarray, np.ndarray]]:
    """Face tracks over every frame of ``frames`` [T, H, W, 3]: a list of (frame indices [n], landmarks [n, 68, 2]).

    Detection on every ``det_every``-th frame (and the last), IoU-linked, boxes interpolated in between,
    landmarks fitted per frame. Longest first.
    """
    import dlib

    from iap_bench.media.faces import _as_rgb_uint8, detect_faces, link_tracks, load_dlib_models

    t = int(frames.shape[0])
    det_idx = sorted(set(range(0, t, max(1, int(det_every)))) | {t - 1}) if t else []
    faces = [detect_faces(frames[i], max_side=det_max_side) for i in det_idx]
    need = min(int(min_track), t)
    models = load_dlib_models()
    h, w = frames.shape[1:3]
    out = []
    for track in link_tracks(faces):
        seen = np.array([det_idx[p] for p, _ in track])
        span, boxes = interpolate_boxes(seen, np.array([faces[p][f].bbox for p, f in track]))
        if span.size < need:
            continue
        lms = np.empty((span.size, 68, 2), np.float32)
        for j, (i, (x0, y0, x1, y1)) in enumerate(zip(span, boxes)):
            image = _as_rgb_uint8(frames[i])
            rect = dlib.rectangle(int(round(max(0.0, x0))), int(round(max(0.0, y0))),
                                  int(round(min(float(w), x1))) - 1, int(round(min(float(h), y1))) - 1)
            with models.lock:
                shape = models.predictor(image, rect)
            lms[j] = [(p.x, p.y) for p in shape.parts()]
        out.append((span, lms))
    return sorted(out, key=lambda s: -s[0].size)


def score_tracks(tracks: list[tuple[np.ndarray, np.ndarray]], audio: np.ndarray, n_frames: int,
                 vshift: int = 15, min_aperture_std: float = 0.01) -> MetricValue:
    """Pure: a clip's value from its face tracks (frame indices, landmarks) and 16 kHz audio.

    A track whose aperture barely moves (std < ``min_aperture_std`` of the mouth width: a still or closed
    mouth, where z-scoring would only amplify landmark jitter) carries no evidence: distance 1 at every
    offset, confidence 0.
    """
    if not tracks:
        return MetricValue.fail("no_face", detail=f"no face track on {n_frames} frames at 25 fps")
    env = znorm(speech_envelope(audio, SR, FPS, n_frames))
    results: list[OffsetSearch] = []
    stds: list[float] = []
    for span, lms in tracks:
        ap = np.full(n_frames, np.nan)
        ap[span] = mouth_aperture(lms)
        stds.append(float(np.nanstd(ap)))
        if stds[-1] < min_aperture_std:
            ap[span] = 0.0  # still mouth: znorm -> zeros -> r = 0 at every offset
        results.append(offset_search(znorm(ap), env, vshift))
    best = results[0]  # longest track
    offsets = [r.offset if sd >= min_aperture_std else None for r, sd in zip(results, stds)]  # None: still
    per_track = [{"conf": round(r.conf, 4), "offset": o, "min_dist": round(r.min_dist, 4),
                  "n_frames": r.n_frames, "first_frame": int(s[0]), "aperture_std": round(sd, 4)}
                 for r, o, (s, _), sd in zip(results, offsets, tracks, stds)]
    extras: dict[str, Any] = {
        "offset": offsets[0], "min_dist": float(np.mean([r.min_dist for r in results])),
        "dist_curve": [round(float(d), 4) for d in best.dists[::-1]],  # offsets -vshift..+vshift
        "n_tracks": len(results), "per_track": per_track}
    return MetricValue(float(np.mean([r.conf for r in results])), extras=extras)


@register_metric("sync/offline")
class OfflineSync(Metric):
    """Lip sync from 68-point mouth aperture vs the speech envelope, SyncNet offset search, no checkpoint."""

    name = "sync_offline"
    direction = "higher"
    backend = "offline-landmarks"
    version = "1"
    views = ("frames", "audio16k")
    worst = 0.0  # no audio / silent / no face: no evidence of sync (the confidence's floor)

    def __init__(self, vshift: int = 15, det_every: int = 5, det_max_side: int = 640, min_track: int = 50,
                 min_aperture_std: float = 0.01) -> None:
        self.vshift = int(vshift)
        self.min_aperture_std = float(min_aperture_std)
        self.det_every = int(det_every)
        self.det_max_side = int(det_max_side)
        self.min_track = int(min_track)

    def load(self) -> None:
        from iap_bench.media.faces import load_dlib_models

        load_dlib_models()

    def checkpoint_id(self) -> str:
        """No sync model: the only weights are dlib's 68-point landmark predictor (its sha256)."""
        from iap_bench.hashing import file_sha256
        from iap_bench.media.faces import SHAPE_PREDICTOR_SPEC

        return file_sha256(SHAPE_PREDICTOR_SPEC.resolve())

    def weight_files(self) -> list:
        from iap_bench.media.faces import SHAPE_PREDICTOR_SPEC

        return [(SHAPE_PREDICTOR_SPEC, None)]

    def aux_identity(self) -> dict[str, str]:
        from iap_bench.media.faces import TRACK_IOU, TRACK_MAX_GAP, dlib_detector_identity
        return {**dlib_detector_identity(),
                "tracking": f"greedy IoU>{TRACK_IOU}, max_gap={TRACK_MAX_GAP} detections, linear box interpolation",
                "features": "aperture=mean|61-63 - 67-65|/|48-54|; envelope=log-RMS 640 samples, 40 dB floor",
                "search": "1-Pearson over overlap, conf=median-min, offset=vshift-argmin",
                "media": "SampleMedia.frames(fps=25) nearest frame, audio(16000)"}

    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[str, MetricValue] = {}  # one clip scored for several items: compute once
        out = []
        for s in samples:
            try:
                key = s.media.content_hash
            except MediaError as e:
                out.append(MetricValue.fail(e.reason, detail=e.detail))
                continue
            if key not in cache:
                cache[key] = self._score_one(s)
            out.append(cache[key])
        return out

    def _score_one(self, sample: EvalSample) -> MetricValue:
        try:
            audio = sample.media.audio(SR)
            frames = sample.media.frames(fps=FPS)
        except MediaError as e:
            return MetricValue.fail(e.reason, detail=e.detail)
        tracks = track_landmarks(frames, self.det_every, self.det_max_side, self.min_track)
        return score_tracks(tracks, audio, int(frames.shape[0]), self.vshift, self.min_aperture_std)
