"""Test support for ``vid_sim/reference`` (insightface ArcFace): seeded random ONNX packs and insightface's own path.

``write_random_weights(root, seed)`` writes, under ``root/vid_sim/<pack>/``, the two files of each insightface
pack the metric loads (buffalo_l: ``det_10g.onnx`` + ``w600k_r50.onnx``; antelopev2: ``scrfd_10g_bnkps.onnx`` +
``glintr100.onnx``) as small random torch modules exported with the legacy ONNX exporter, with the signatures
insightface routes on:

- detector, SCRFD layout: input ``1x3x?x?`` (dynamic height/width), 9 outputs = scores [N,1], box distances
  [N,4], keypoint offsets [N,10] for strides 8, 16, 32 with 2 anchors per cell (``model_zoo`` routes >= 5
  outputs to ``SCRFD``; 9 outputs mean fmc=3, 2 anchors, keypoints). Scores are a sigmoid of a standardised random
  conv, so a few % of the anchors pass the 0.5 threshold and every image has a few "faces" (random boxes,
  random keypoints).
- recogniser, ArcFace layout: input ``Nx3x112x112`` (dynamic batch) -> ``Nx512`` (routed to ``ArcFaceONNX``).

These numbers mean nothing about identity; they prove that the batched metric path computes exactly what
insightface's own ``FaceAnalysis`` computes. ``package_embeddings`` is that reference path, as a user of
insightface writes it: ``FaceAnalysis(name=<pack dir>)``, ``prepare(ctx_id=-1, det_size=(320, 320))``,
``get(bgr)`` per frame, the largest face's ``normed_embedding``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

PACK_FILES = {"buffalo_l": ("det_10g.onnx", "w600k_r50.onnx"),
              "antelopev2": ("scrfd_10g_bnkps.onnx", "glintr100.onnx")}
STRIDES = (8, 16, 32)
N_ANCHORS = 2
EMB_DIM = 512


def _detector(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class RandomSCRFD(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
            self.down = nn.ModuleList([nn.Identity(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                       nn.Conv2d(8, 8, 3, stride=4, padding=1)])
            self.cls = nn.ModuleList([nn.Conv2d(8, N_ANCHORS, 3, padding=1) for _ in STRIDES])
            self.box = nn.ModuleList([nn.Conv2d(8, 4 * N_ANCHORS, 3, padding=1) for _ in STRIDES])
            self.kps = nn.ModuleList([nn.Conv2d(8, 10 * N_ANCHORS, 3, padding=1) for _ in STRIDES])

        def forward(self, x):
            f = self.stem(x)
            scores, boxes, kpss = [], [], []
            for i in range(len(STRIDES)):
                g = self.down[i](f)
                c = self.cls[i](g)
                z = (c - c.mean()) / (c.std() + 1e-6)  # standardised: the top few % of anchors pass 0.5
                scores.append(torch.sigmoid(4.0 * (z - 1.45)).permute(0, 2, 3, 1).reshape(-1, 1))
                # box distances in stride units, positive: boxes 1-4 strides from the anchor centre
                boxes.append((1.0 + 3.0 * torch.sigmoid(8.0 * self.box[i](g))).permute(0, 2, 3, 1).reshape(-1, 4))
                kpss.append(torch.tanh(self.kps[i](g)).permute(0, 2, 3, 1).reshape(-1, 10))
            return (*scores, *boxes, *kpss)

    return RandomSCRFD().eval()


def _recogniser(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed + 1)

    class RandomArcFace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.PReLU(16),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.PReLU(32),
                                      nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.PReLU(32),
                                      nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(32 * 49, EMB_DIM))

        def forward(self, x):
            return self.body(x)

    return RandomArcFace().eval()


def export_detector(path: Path, seed: int = 0, n_outputs: int = 9) -> Path:
    """A random SCRFD-shaped detector; ``n_outputs`` < 9 drops the keypoint heads (a wrong signature)."""
    import torch

    model = _detector(seed)
    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in STRIDES][:n_outputs]

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m(x)[:n_outputs]

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Head().eval(), torch.zeros(1, 3, 320, 320), str(path), input_names=["input.1"],
                      output_names=names, dynamic_axes={"input.1": {2: "height", 3: "width"}},
                      opset_version=17, dynamo=False)
    return path


def export_recogniser(path: Path, seed: int = 0, side: int = 112) -> Path:
    """A random ArcFace-shaped recogniser (``side`` other than 112 gives a wrong signature)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(_recogniser(seed), torch.zeros(1, 3, side, side), str(path), input_names=["input.1"],
                      output_names=["embedding"], dynamic_axes={"input.1": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return path


def write_random_weights(root: Path, seed: int = 0, packs: Sequence[str] = tuple(PACK_FILES)) -> Path:
    """Write each pack's detector + recogniser under ``root/vid_sim/<pack>/`` (the ``weights.root`` layout)."""
    root = Path(root)
    for i, pack in enumerate(packs):
        det, rec = PACK_FILES[pack]
        d = root / "vid_sim" / pack
        export_detector(d / det, seed=seed + 10 * i)
        export_recogniser(d / rec, seed=seed + 10 * i)
    return root


def face_analysis(pack_dir: Path, det_size: int = 320, det_thresh: float = 0.5):
    """insightface's own ``FaceAnalysis`` on a pack directory (never downloads: ``name`` is a directory)."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(pack_dir), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_thresh=det_thresh, det_size=(det_size, det_size))
    return app


def package_embeddings(root: Path | str, frames: Sequence[np.ndarray], pack: str = "buffalo_l",
                       det_size: int = 320) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """insightface's path: per BGR frame, ``FaceAnalysis.get`` -> (bbox [4], normed_embedding [512]) of the
    largest face by bbox area, or None when no face is found. ``root`` is the ``weights.root`` folder."""
    app = face_analysis(Path(root) / "vid_sim" / pack, det_size)
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for frame in frames:
        faces = app.get(np.ascontiguousarray(frame))
        if not faces:
            out.append(None)
            continue
        face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        out.append((np.asarray(face.bbox, np.float64), np.asarray(face.normed_embedding, np.float64)))
    return out
