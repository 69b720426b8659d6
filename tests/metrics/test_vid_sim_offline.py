"""The shared VID-SIM protocol (both offline backends) and vid_sim/dlib, on the committed iap-mini face photos.

Generated samples are real reference photos muxed into still mp4s. Multi-view references are the pack's
augmented views of one photo (crop, tighter mirrored crop, rotated wider crop): no package ships several
photos of one person except face_recognition's sdist (used in test_vid_sim_sface.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import make_item, save_rgb, write_sample

from iap_bench.media.refs import load_image
from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample, build_metric
from iap_bench.metrics.policy import apply_metric_policy
from iap_bench.metrics.vid_sim import item_score, match_frame, prototype, subject_scores

FPS = 4  # 32 sampled frames of a 2 s still clip at 4 fps: frames repeat, detection stays cheap
OTHERS = ("id_001", "id_002", "id_003", "id_004", "id_006")  # five people other than id_005 (astronaut)


@pytest.fixture(scope="module", params=["dlib", "sface"])
def vid8(request):
    """Each backend sampling 8 frames: enough for the protocol tests on still clips, 4x cheaper."""
    import iap_bench.metrics.vid_sim  # noqa: F401  (registers vid_sim/dlib and vid_sim/sface)

    m = build_metric(f"vid_sim/{request.param}", n_frames=8)
    m.load()
    return m


def _video(tmp: Path, name: str, image: np.ndarray) -> SampleMedia:
    return SampleMedia(write_sample(tmp / f"{name}.mp4", image, None, seconds=2.0, fps=FPS))


def _item(item_id: str, *refs: tuple[Path, ...]) -> object:
    return make_item(item_id, list(refs), [None] * len(refs), [f"line {i}" for i in range(len(refs))])


def test_dlib_same_person_scores_high_and_above_other_people(vid_metric, pack_faces, tmp_path: Path) -> None:
    gen = _video(tmp_path, "astro", load_image(pack_faces["id_005"][0]))
    same = _item("same", (pack_faces["id_005"][1],))  # tighter mirrored crop of the same photo
    multi_view = _item("mv", tuple(pack_faces["id_005"][1:]))
    others = [_item(f"o{i}", (pack_faces[i][0],)) for i in OTHERS]
    out = vid_metric.score([EvalSample(it, gen) for it in [same, multi_view, *others]])
    vals = [v.value for v in out]
    print("\nVID-SIM (dlib-cosine) same person (augmented ref):", round(vals[0], 3),
          "| 2-view ref:", round(vals[1], 3), "| five other people:", [round(x, 3) for x in vals[2:]])
    assert all(v.failure is None for v in out)
    assert out[0].extras["presence_rate"]["<S1>"] == 1.0 and out[0].extras["n_frames"] == 32
    assert min(vals[:2]) >= 0.9
    assert min(vals[:2]) - max(vals[2:]) >= 0.05  # dlib-cosine: different people still score ~0.8-0.9
    assert vid_metric.backend == "offline-dlib-resnet" and len(vid_metric.checkpoint_id()) == 64


def test_multi_subject_matching_follows_the_references(vid8, pack_faces, tmp_path: Path) -> None:
    a, b = load_image(pack_faces["id_005"][0]), load_image(pack_faces["id_002"][0])
    gen = _video(tmp_path, "pair", np.concatenate([a, b], axis=1))  # two people side by side
    ra, rb = (pack_faces["id_005"][1],), (pack_faces["id_002"][1],)
    out_r, out_s = vid8.score([EvalSample(_item("r", ra, rb), gen), EvalSample(_item("s", rb, ra), gen)])
    print(f"\nVID-SIM multi ({vid8.backend}):", out_r.extras, "| swapped refs:", out_s.extras["per_subject"])
    pr, ps = out_r.extras["per_subject"], out_s.extras["per_subject"]
    assert ps["<S1>"] == pytest.approx(pr["<S2>"]) and ps["<S2>"] == pytest.approx(pr["<S1>"])
    assert min(pr.values()) >= (0.9 if vid8.backend == "offline-dlib-resnet" else 0.5)  # each its own face
    assert out_r.extras["presence_rate"] == {"<S1>": 1.0, "<S2>": 1.0}
    assert out_r.value == pytest.approx(np.mean(list(pr.values())))


def test_absent_subject_scores_zero_with_zero_presence(vid8, pack_faces, tmp_path: Path) -> None:
    gen = _video(tmp_path, "solo", load_image(pack_faces["id_005"][0]))
    (out,) = vid8.score([EvalSample(_item("abs", (pack_faces["id_005"][1],), (pack_faces["id_004"][0],)), gen)])
    assert out.extras["presence_rate"] == {"<S1>": 1.0, "<S2>": 0.0}
    assert out.extras["per_subject"]["<S2>"] == 0.0
    assert out.value == pytest.approx(out.extras["per_subject"]["<S1>"] / 2)


def test_faceless_video_is_a_sample_fault_and_reference_faults_are_excluded(vid8, pack_faces,
                                                                             tmp_path: Path) -> None:
    blank = _video(tmp_path, "blank", np.full((120, 160, 3), 90, np.uint8))
    item = _item("i", (pack_faces["id_005"][0],))
    wall = save_rgb(np.full((120, 160, 3), 90, np.uint8), tmp_path / "wall.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    audio_only = tmp_path / "audio_only.wav"
    import soundfile as sf

    sf.write(audio_only, np.zeros(16000, np.float32), 16000)
    samples = [EvalSample(item, blank), EvalSample(_item("n", (wall,)), blank),
               EvalSample(_item("u", ()), blank), EvalSample(_item("b", (broken,)), blank),
               EvalSample(item, SampleMedia(tmp_path / "missing.mp4")), EvalSample(item, SampleMedia(audio_only))]
    out = vid8.score(samples)
    assert [v.failure.split(":")[0] for v in out] == [
        "no_face", "no_face_in_reference", "unbound_reference", "reference_decode_error", "decode_error",
        "no_video"]
    assert out[0].value is None and out[0].extras["presence_rate"]["<S1>"] == 0.0
    scored = [apply_metric_policy(vid8, v).value for v in out]
    # the sample's faults count at the worst value; a reference's are excluded (None)
    assert scored == [0.0, None, None, None, 0.0, 0.0]


def test_dlib_identity_records_params_and_auxiliary_models(vid_metric) -> None:
    import iap_bench.metrics.vid_sim  # noqa: F401

    ident = vid_metric.identity()
    assert ident["backend"] == "offline-dlib-resnet" and ident["checkpoint"] == vid_metric._emb.checkpoint_sha256
    assert vid_metric.worst == 0.0 and vid_metric.path_params == ("weights",)
    aux = vid_metric.aux_identity()
    assert "HOG" in aux["detector"] and "sha256=" in aux["landmarks"]
    assert build_metric("vid_sim/dlib", n_frames=16).identity()["params"] != ident["params"]
    assert build_metric("vid_sim/dlib", weights=str(vid_metric._emb.checkpoint_path)).identity() == ident


def test_pure_matching_helpers() -> None:
    protos = np.eye(2, 3, dtype=np.float32)
    faces_ = np.array([[0.2, 0.98, 0.0], [0.99, 0.1, 0.0]], np.float32)
    assert match_frame(faces_, protos) == {0: pytest.approx(0.99), 1: pytest.approx(0.98)}
    assert match_frame(np.array([[-1.0, 0, 0]], np.float32), protos)[1] == 0.0  # clamped at 0
    vals, pres = subject_scores([{0: 0.5}, {0: 0.7, 1: 0.2}, {}], 2)
    assert vals == pytest.approx([0.6, 0.2]) and pres == pytest.approx([2 / 3, 1 / 3])
    p = prototype(np.array([[2.0, 0, 0], [0, 3.0, 0]]))
    assert np.allclose(p, [2 ** -0.5, 2 ** -0.5, 0])


def test_pure_item_score() -> None:
    v = item_score([{0: 0.5}, {0: 0.7, 1: 0.2}, {}], 2, ["<S1>", "<S2>"])
    assert v.value == pytest.approx(0.4) and v.extras["per_subject"] == pytest.approx({"<S1>": 0.6, "<S2>": 0.2})
    assert v.extras["n_frames"] == 3 and "per_subject" not in item_score([{0: 0.3}], 1, ["<S1>"]).extras
    none = item_score([{}, {}], 0, ["<S1>"])
    assert none.value is None and none.failure == "no_face" and none.extras["presence_rate"] == {"<S1>": 0.0}


def test_missing_real_asset_skips_locally_and_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metric_media import need

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        need(tmp_path / "absent.jpg", "absent.jpg")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        need(None, "absent.jpg")
    present = save_rgb(np.zeros((4, 4, 3), np.uint8), tmp_path / "present.png")
    assert need(present, "present.png") == present
