"""vid_sim/reference and vid_sim/antelopev2 (insightface ArcFace) on seeded random ONNX packs.

Parity: the metric's batched path (detect per frame, one recognition batch per chunk) against insightface's
own ``FaceAnalysis.get`` per image (``iap_bench.testing.arcface.package_embeddings``) on real photos and on an
mp4 of them: the same boxes and embeddings to 1e-5 and the same VID-SIM. The random models say nothing about
identity; they prove the two paths compute the same thing. Also: the batched chunk equals the protocol's
frame-by-frame path for multi-subject items, the identity, the loader's errors and the no-face policy.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from metric_media import make_item, write_sample

from iap_bench.errors import MissingCheckpointError
from iap_bench.media.faces import largest_face
from iap_bench.media.refs import load_image
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample, build_metric
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.metrics.vid_sim import VIDSimProtocol
from iap_bench.metrics.vid_sim_arcface import (
    PACKS,
    ArcFaceModelError,
    ArcFaceVIDSim,
    arcface_weight_specs,
)
from iap_bench.testing.arcface import (
    export_detector,
    export_recogniser,
    package_embeddings,
    write_random_weights,
)

IDS = ("id_001", "id_002", "id_003", "id_004", "id_005", "id_006")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("arcface_weights"), seed=0)


def _metric(root: Path, pack: str, **kw) -> ArcFaceVIDSim:
    name = "vid_sim/reference" if pack == "buffalo_l" else "vid_sim/antelopev2"
    return build_metric(name, weights=str(root / "vid_sim" / pack), **kw)


def _item(item_id: str, *refs: tuple[Path, ...]):
    return make_item(item_id, list(refs), [None] * len(refs), [f"line {i}" for i in range(len(refs))])


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_batched_embeddings_equal_faceanalysis_on_real_photos(root, pack_faces, pack) -> None:
    paths = [pack_faces[i][0] for i in IDS]
    t0 = time.perf_counter()
    official = package_embeddings(root, [cv2.imread(str(p)) for p in paths], pack=pack)
    t_official = time.perf_counter() - t0
    metric = _metric(root, pack)
    metric.load()
    t0 = time.perf_counter()
    images = [load_image(p) for p in paths]  # RGB, as the harness reads references
    faces = [largest_face(metric._detect(im)) for im in images]
    crops = [c for im, f in zip(images, faces) for c in metric._crops(im, [f])]
    ours = metric._embed_crops(crops)  # one recognition batch for all six
    t_ours = time.perf_counter() - t0
    print(f"\n{pack}: FaceAnalysis.get x6 {t_official:.3f}s | detect x6 + one batch {t_ours:.3f}s")
    assert all(o is not None for o in official)
    for (bbox, emb), face, mine in zip(official, faces, ours):
        np.testing.assert_allclose(face.bbox, bbox, atol=1e-4)  # same SCRFD code, same input
        np.testing.assert_allclose(mine, emb, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # the protocol's per-image path (references) gives the same embedding
    np.testing.assert_allclose(metric.embed_image(images[4]), official[4][1], atol=1e-5)


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_vid_sim_on_a_video_equals_faceanalysis(root, pack_faces, pack, tmp_path: Path) -> None:
    clip = SampleMedia(write_sample(tmp_path / "astro.mp4", load_image(pack_faces["id_005"][0]), None,
                                   seconds=2.0, fps=4))
    refs = {i: pack_faces[i][1] for i in ("id_005", "id_001", "id_006")}
    metric = _metric(root, pack)
    samples = [EvalSample(_item(i, (p,)), clip) for i, p in refs.items()]
    t0 = time.perf_counter()
    values = metric.score(samples)
    t_ours = time.perf_counter() - t0
    # insightface's path: FaceAnalysis.get on each sampled frame (BGR) and on each reference image
    idx = clip.frame_indices(32)
    frames = clip.frames()
    t0 = time.perf_counter()
    per_frame = package_embeddings(root, [np.ascontiguousarray(frames[int(i)][:, :, ::-1]) for i in idx], pack=pack)
    ref_embs = package_embeddings(root, [cv2.imread(str(p)) for p in refs.values()], pack=pack)
    t_official = time.perf_counter() - t0
    assert all(f is not None for f in per_frame) and all(r is not None for r in ref_embs)
    for v, (_, ref) in zip(values, ref_embs):
        expected = float(np.mean([max(0.0, float(emb @ ref)) for _, emb in per_frame]))
        assert v.failure is None and v.extras["n_frames"] == 32
        assert v.value == pytest.approx(expected, abs=1e-5)
    print(f"\n{pack}: VID-SIM {[round(v.value, 4) for v in values]} | batched 3 items x 32 frames {t_ours:.2f}s, "
          f"FaceAnalysis {t_official:.2f}s")


def test_multi_subject_batched_chunk_equals_frame_by_frame_protocol(root, pack_faces, tmp_path: Path) -> None:
    two = np.concatenate([load_image(pack_faces["id_005"][0]), load_image(pack_faces["id_001"][0])], axis=1)
    clip = SampleMedia(write_sample(tmp_path / "two.mp4", two, None, seconds=2.0, fps=4))
    single = SampleMedia(write_sample(tmp_path / "one.mp4", load_image(pack_faces["id_006"][0]), None,
                                      seconds=1.0, fps=4))
    items = [_item("m", (pack_faces["id_005"][1],), (pack_faces["id_001"][1],)),
             _item("mv", (pack_faces["id_005"][1], pack_faces["id_005"][2]), (pack_faces["id_006"][1],)),
             _item("s", (pack_faces["id_006"][1],))]
    samples = [EvalSample(items[0], clip), EvalSample(items[1], clip), EvalSample(items[2], single)]
    metric = _metric(root, "buffalo_l")
    batched = metric.score(samples)
    plain = VIDSimProtocol.score(metric, samples)  # the protocol's frame-by-frame path, no chunk batch
    for a, b in zip(batched, plain):
        assert a.failure is None and b.failure is None
        assert a.value == pytest.approx(b.value, abs=1e-5)
        assert a.extras["presence_rate"] == b.extras["presence_rate"]
        for k, v in a.extras.get("per_subject", {}).items():
            assert v == pytest.approx(b.extras["per_subject"][k], abs=1e-5)
    assert set(batched[0].extras["per_subject"]) == {"<S1>", "<S2>"}


def test_identity_backends_and_parameters(root) -> None:
    ref, ante = _metric(root, "buffalo_l"), _metric(root, "antelopev2")
    ident = ref.identity()
    assert ident["metric"] == "vid_sim" and ident["backend"] == "arcface-buffalo_l"
    assert ante.identity()["backend"] == "arcface-antelopev2" and ante.identity() != ident
    assert ref.worst == 0.0 and ref.direction == "higher" and ref.path_params == ("weights",)
    assert _metric(root, "buffalo_l", det_size=640).identity()["params"] != ident["params"]
    assert _metric(root, "buffalo_l", n_frames=16).identity() != ident
    ckpt = ident["checkpoint"]
    assert len(ckpt) == 64 and ckpt == ref.checkpoint_id()
    ref.load()
    assert ref.checkpoint_id() == ckpt  # the same before and after loading
    specs = arcface_weight_specs("buffalo_l")
    assert [s.root_subpath for s in specs] == ["vid_sim/buffalo_l/det_10g.onnx", "vid_sim/buffalo_l/w600k_r50.onnx"]
    assert [s.root_subpath for s in arcface_weight_specs("antelopev2")] == [
        "vid_sim/antelopev2/scrfd_10g_bnkps.onnx", "vid_sim/antelopev2/glintr100.onnx"]
    assert "buffalo_l.zip" in specs[0].how_to_get


def test_weights_root_layout_is_found(root, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.weights import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(root))
    assert build_metric("vid_sim/reference").checkpoint_id() == _metric(root, "buffalo_l").checkpoint_id()


def test_missing_file_names_it_and_how_to_get_it(root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.weights import ROOT_ENV

    only_det = tmp_path / "half"
    only_det.mkdir()
    (only_det / "det_10g.onnx").write_bytes((root / "vid_sim" / "buffalo_l" / "det_10g.onnx").read_bytes())
    with pytest.raises(MissingCheckpointError) as e:
        build_metric("vid_sim/reference", weights=str(only_det)).load()
    assert "w600k_r50.onnx" in str(e.value) and str(only_det / "w600k_r50.onnx") in str(e.value)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv("IAP_INSIGHTFACE_ANTELOPEV2", raising=False)
    monkeypatch.setenv("IAP_WEIGHTS", str(tmp_path / "none"))
    with pytest.raises(MissingCheckpointError) as e:
        build_metric("vid_sim/antelopev2").load()
    msg = str(e.value)
    assert "scrfd_10g_bnkps.onnx" in msg and "antelopev2.zip" in msg
    assert str(tmp_path / "empty" / "vid_sim" / "antelopev2" / "scrfd_10g_bnkps.onnx") in msg


def test_wrong_onnx_signature_is_refused_naming_the_file(root, tmp_path: Path) -> None:
    src = root / "vid_sim" / "buffalo_l"
    cases = {
        "no_kps": (export_detector(tmp_path / "no_kps" / "det_10g.onnx", n_outputs=6), src / "w600k_r50.onnx"),
        "rec_224": (src / "det_10g.onnx", export_recogniser(tmp_path / "rec_224" / "w600k_r50.onnx", side=224)),
        "swapped": (src / "w600k_r50.onnx", src / "det_10g.onnx"),
    }
    garbage = tmp_path / "garbage" / "w600k_r50.onnx"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not an onnx model")
    cases["garbage"] = (src / "det_10g.onnx", garbage)
    for case, (det, rec) in cases.items():
        d = tmp_path / f"pack_{case}"
        d.mkdir()
        (d / "det_10g.onnx").write_bytes(det.read_bytes())
        (d / "w600k_r50.onnx").write_bytes(rec.read_bytes())
        bad = d / ("det_10g.onnx" if case in ("no_kps", "swapped") else "w600k_r50.onnx")
        with pytest.raises(ArcFaceModelError) as e:
            build_metric("vid_sim/reference", weights=str(d)).load()
        print(f"\n{case}: {e.value}")
        assert str(bad) in str(e.value), case


def test_faceless_clip_counts_at_worst_value(root, pack_faces, tmp_path: Path, monkeypatch) -> None:
    metric = _metric(root, "buffalo_l", pad_retry=False)
    clip = SampleMedia(write_sample(tmp_path / "c.mp4", load_image(pack_faces["id_005"][0]), None,
                                    seconds=1.0, fps=4))
    metric.load()
    monkeypatch.setattr(metric, "_frame_faces", lambda s: (s.media.frame_indices(32), [[] for _ in range(32)]))
    (v,) = metric.score([EvalSample(_item("i", (pack_faces["id_005"][1],)), clip)])
    assert v.failure == "no_face" and apply_metric_policy(metric, v).value == 0.0


def test_recogniser_with_real_detections_equals_arcfaceonnx_get(root, pack_faces) -> None:
    """Real 5-point landmarks (OpenCV YuNet on the real photos) given to both paths: the batched crops + one
    ``get_feat`` equal insightface's ``ArcFaceONNX.get(img, face)`` per face (the random detector's boxes
    aside, the alignment on real faces is what this checks)."""
    from insightface.app.common import Face

    from iap_bench.backends.face_sface import YuNetDetector
    from iap_bench.metrics.vid_sim_arcface import InsightFace

    yunet = YuNetDetector()
    metric = _metric(root, "buffalo_l")
    metric.load()
    images, faces = [], []
    for ident in IDS:
        image = load_image(pack_faces[ident][0])
        found = yunet.detect(image)
        assert found, ident
        f = max(found, key=lambda x: (x.bbox[2] - x.bbox[0]) * (x.bbox[3] - x.bbox[1]))
        images.append(image)
        faces.append(InsightFace(tuple(f.bbox), np.asarray(f.landmarks, np.float32), float(f.score)))
    ours = metric._embed_crops([c for im, f in zip(images, faces) for c in metric._crops(im, [f])])
    for image, f, mine in zip(images, faces, ours):
        emb = metric._rec.get(np.ascontiguousarray(image[:, :, ::-1]), Face(bbox=np.array(f.bbox), kps=f.kps))
        np.testing.assert_allclose(mine, emb / np.linalg.norm(emb), atol=1e-5)
