"""VID-SIM, reference backend: insightface ArcFace (``vid_sim/reference`` = buffalo_l; ``vid_sim/antelopev2``).

The protocol is ``VIDSimProtocol``'s (METRICS.md §3, OpenS2V/ConsisID style): 32 uniform native frames, the
largest face per frame (25 % gray-padded retry when none is found), max(0, cos), faceless frames skipped,
multi-view prototypes, one-to-one Hungarian matching for K subjects; ``no_face`` when no sampled frame has a
face (scored ``worst`` = 0.0 by the failure policy). Only the face models differ from the offline backends:

- ``vid_sim/reference`` (backend ``arcface-buffalo_l``): insightface's ``buffalo_l`` pack, SCRFD
  ``det_10g.onnx`` + ArcFace ``w600k_r50.onnx`` (what ``FaceAnalysis(root=...)`` loads by default).
- ``vid_sim/antelopev2`` (backend ``arcface-antelopev2``): ``scrfd_10g_bnkps.onnx`` + ``glintr100.onnx``, the
  variant some ID papers use; its numbers differ from buffalo_l's and are stored under its own backend.

insightface's own classes do the work (``model_zoo.get_model`` routes each file by its ONNX signature to
``SCRFD`` / ``ArcFaceONNX``; detection at ``det_size`` 320 with ``det_thresh`` 0.5 as ``FaceAnalysis.prepare``
sets them; ``face_align.norm_crop`` to 112x112 from the 5 keypoints). Batched: the frames of a chunk of
samples are detected one by one, then every aligned crop of the chunk is embedded in one ``get_feat`` call.
Nothing is ever downloaded: each file is resolved through its ``WeightSpec`` (``weights.root/vid_sim/<pack>/``)
and a file insightface would not route as the expected model is refused with one error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iap_bench.errors import IAPBenchError, MediaError
from iap_bench.metrics.base import EvalSample, MetricValue, register_metric
from iap_bench.metrics.vid_sim import VIDSimProtocol, l2n
from iap_bench.weights import WeightSpec

PACKS: dict[str, tuple[str, str]] = {"buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
                                     "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx")}
RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7/{pack}.zip"
REC_BATCH = 256  # crops per recognition call (bounds memory only; rows are independent)


class ArcFaceModelError(IAPBenchError):
    """An insightface pack file that insightface would not load as the model it must be."""

    def __init__(self, path: Path, role: str, why: str):
        self.path, self.role = Path(path), role
        super().__init__(f"{role} model {path} is not usable: {why}")


def arcface_weight_specs(pack: str) -> tuple[WeightSpec, WeightSpec]:
    """(detector, recogniser) specs of an insightface pack: ``weights.root/vid_sim/<pack>/<file>``."""
    if pack not in PACKS:
        raise ValueError(f"unknown insightface pack {pack!r}; known: {sorted(PACKS)}")
    how = (f"download {RELEASE.format(pack=pack)} (insightface GitHub release) and unzip it under "
           f"<weights.root>/vid_sim/ so that <weights.root>/vid_sim/{pack}/ holds {' and '.join(PACKS[pack])}; "
           f"or pass weights=<folder holding them>")
    env = f"IAP_INSIGHTFACE_{pack.upper()}"
    return tuple(WeightSpec(name=f"insightface-{pack}-{f.removesuffix('.onnx')}", filename=f, how_to_get=how,
                            search_paths=(f"$IAP_WEIGHTS/vid_sim/{pack}",), env_var=env, config_key="weights",
                            root_subpath=f"vid_sim/{pack}/{f}")
                 for f in PACKS[pack])  # type: ignore[return-value]


def _providers(device: str) -> list[str]:
    import onnxruntime

    if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_pack(det_path: Path, rec_path: Path, providers: Sequence[str] = ("CPUExecutionProvider",)
              ) -> tuple[Any, Any]:
    """insightface's SCRFD and ArcFaceONNX for two files; ArcFaceModelError naming a file of the wrong kind."""
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    def load(path: Path, role: str) -> Any:
        try:
            return get_model(str(path), providers=list(providers))
        except Exception as e:  # onnxruntime / protobuf errors: not an ONNX model at all
            raise ArcFaceModelError(path, role, f"{type(e).__name__}: {e}") from None

    det = load(det_path, "detector")
    if not isinstance(det, SCRFD) or not det.use_kps:
        n = len(det.session.get_outputs()) if hasattr(det, "session") else "?"
        raise ArcFaceModelError(det_path, "detector", f"insightface routes it as {type(det).__name__}, not an SCRFD "
                                "detector with 5 keypoints (needs 9 or 15 outputs: score/bbox/kps per stride; "
                                f"found {n})")
    rec = load(rec_path, "recogniser")
    if not isinstance(rec, ArcFaceONNX) or tuple(rec.input_size) != (112, 112):
        shape = rec.input_shape if hasattr(rec, "input_shape") else "?"
        raise ArcFaceModelError(rec_path, "recogniser", f"insightface routes it as {type(rec).__name__}, not an "
                                f"ArcFace recogniser with a 3x112x112 input (input shape {shape})")
    return det, rec


class InsightFace:
    """One detected face: bbox (x0, y0, x1, y1), the 5 SCRFD keypoints [5, 2] (x, y) and the score."""

    __slots__ = ("bbox", "kps", "score")

    def __init__(self, bbox: tuple[float, float, float, float], kps: np.ndarray, score: float) -> None:
        self.bbox, self.kps, self.score = bbox, kps, score

    def __repr__(self) -> str:
        return f"InsightFace(bbox={tuple(round(v, 1) for v in self.bbox)}, score={self.score:.3f})"


class ArcFaceVIDSim(VIDSimProtocol):
    """VID-SIM with an insightface pack (SCRFD + ArcFace); subclasses set ``pack`` and ``backend``."""

    pack = "buffalo_l"
    backend = "arcface-buffalo_l"
    version = "1"
    path_params = ("weights",)

    def __init__(self, weights: str | None = None, n_frames: int = 32, pad_retry: bool = True,
                 det_size: int = 320, det_thresh: float = 0.5) -> None:
        super().__init__(n_frames=n_frames, pad_retry=pad_retry)
        self.weights = weights  # a folder holding the pack's two .onnx files (default: the WeightSpecs)
        self.det_size, self.det_thresh = int(det_size), float(det_thresh)
        self._det = None
        self._rec = None
        self._ckpt: str | None = None

    # ---- models ------------------------------------------------------------------------------------
    def _paths(self) -> tuple[Path, Path]:
        det_spec, rec_spec = arcface_weight_specs(self.pack)
        return det_spec.resolve(self.weights), rec_spec.resolve(self.weights)

    def _models_loaded(self) -> bool:
        return self._rec is not None

    def _load_models(self) -> None:
        det_path, rec_path = self._paths()
        det, rec = load_pack(det_path, rec_path, _providers(self.device))
        ctx = 0 if self.device.startswith("cuda") else -1
        det.prepare(ctx, input_size=(self.det_size, self.det_size), det_thresh=self.det_thresh)
        rec.prepare(ctx)
        self._ckpt = _pack_sha256(det_path, rec_path)
        self._det, self._rec = det, rec

    def checkpoint_id(self) -> str:
        if self._ckpt is not None:
            return self._ckpt
        return _pack_sha256(*self._paths())

    def weight_files(self) -> list:
        return [(spec, self.weights) for spec in arcface_weight_specs(self.pack)]

    def aux_identity(self) -> dict[str, str]:
        import insightface
        import onnxruntime

        return {"insightface": insightface.__version__, "onnxruntime": onnxruntime.__version__,
                "detector_config": f"SCRFD det_size={self.det_size},det_thresh={self.det_thresh},nms=0.4",
                "aligner": "insightface face_align.norm_crop 5-point arcface template -> 112x112, BGR"}

    # ---- backend hooks -----------------------------------------------------------------------------
    def _detect(self, image_rgb: np.ndarray) -> list[InsightFace]:
        bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
        bboxes, kpss = self._det.detect(bgr, max_num=0, metric="default")
        return [InsightFace(tuple(float(v) for v in bboxes[i, :4]), np.asarray(kpss[i], np.float32),
                            float(bboxes[i, 4])) for i in range(bboxes.shape[0])]

    def _crops(self, image_rgb: np.ndarray, faces: list[InsightFace]) -> list[np.ndarray]:
        from insightface.utils import face_align

        bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
        side = int(self._rec.input_size[0])
        return [face_align.norm_crop(bgr, landmark=f.kps, image_size=side) for f in faces]

    def _embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings [N, D] of aligned BGR crops, ``REC_BATCH`` crops per ONNX call."""
        if not crops:
            return np.zeros((0, 0), np.float32)
        out = [np.asarray(self._rec.get_feat(crops[i:i + REC_BATCH]), np.float32)
               for i in range(0, len(crops), REC_BATCH)]
        return l2n(np.concatenate(out))

    def _embed_all(self, image_rgb: np.ndarray, faces: list[Any]) -> np.ndarray:
        return self._embed_crops(self._crops(image_rgb, faces))

    # ---- batched scoring ---------------------------------------------------------------------------
    def score(self, samples: Sequence[EvalSample]) -> list[MetricValue]:
        self.load()
        cache: dict[tuple[str, bool], list[np.ndarray]] = {}
        self._embed_chunk(samples, cache)
        return [self._score_one(s, cache) for s in samples]

    def _embed_chunk(self, samples: Sequence[EvalSample], cache: dict[tuple[str, bool], list[np.ndarray]]
                     ) -> None:
        """Detect every sampled frame of the chunk, then embed all aligned crops in one recognition batch;
        fills ``cache`` as ``_sample_embeddings`` would. A sample whose references or media fail is left out
        (``_score_one`` then reports its failure)."""
        from iap_bench.media.faces import faces_with_pad_retry, largest_face

        crops: list[np.ndarray] = []
        plan: dict[tuple[str, bool], list[int]] = {}  # key -> number of faces per frame
        for sample in samples:
            try:
                k = len([self._reference(s) for s in sample.item.subjects])
                key = (sample.media.content_hash, k == 1)
                if key in plan:
                    continue
                idx, faces = self._frame_faces(sample)
                frames = sample.media.frames()
            except MediaError:
                continue
            counts = []
            for i, found in zip(idx, faces):
                image, found = faces_with_pad_retry(frames[int(i)], found, self._detect, self.pad_retry)
                if key[1] and found:
                    found = [largest_face(found)]
                crops.extend(self._crops(image, found))
                counts.append(len(found))
            plan[key] = counts
        embs = self._embed_crops(crops)
        pos = 0
        for key, counts in plan.items():
            per_frame = []
            for n in counts:
                per_frame.append(embs[pos:pos + n] if n else np.zeros((0, embs.shape[1] if embs.size else 0),
                                                                        np.float32))
                pos += n
            cache[key] = per_frame


def _pack_sha256(det_path: Path, rec_path: Path) -> str:
    """sha256 of the two files' sha256 joined (detector first): the checkpoint identity of the pack."""
    import hashlib

    from iap_bench.hashing import file_sha256

    return hashlib.sha256(f"{file_sha256(det_path)}\n{file_sha256(rec_path)}".encode()).hexdigest()


@register_metric("vid_sim/reference")
class BuffaloVIDSim(ArcFaceVIDSim):
    """VID-SIM with insightface buffalo_l (SCRFD det_10g + ArcFace w600k_r50), the peers' default pack."""

    pack = "buffalo_l"
    backend = "arcface-buffalo_l"


@register_metric("vid_sim/antelopev2")
class AntelopeVIDSim(ArcFaceVIDSim):
    """VID-SIM with insightface antelopev2 (SCRFD 10g bnkps + ArcFace glintr100): a labelled variant."""

    pack = "antelopev2"
    backend = "arcface-antelopev2"
