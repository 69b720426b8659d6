"""vid_sim/offline on real face photos (skimage astronaut, insightface t1.jpg) muxed into sample mp4s.

Multi-view references are approximated by augmenting one photo (flip, rotation, zoom): no package ships
several photos of one person.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import augment, make_item, save_rgb, write_sample

from iap_bench.media.sample import SampleMedia
from iap_bench.metrics.base import EvalSample
from iap_bench.metrics.vid_sim import match_frame, prototype, subject_scores

FPS = 4  # 32 sampled frames of a 2 s still clip at 4 fps: frames repeat, detection stays cheap


@pytest.fixture(scope="module")
def vid8():
    """The same metric sampling 8 frames: enough for matching tests on still clips, 4x cheaper."""
    from iap_bench.metrics.vid_sim import OfflineVIDSim

    m = OfflineVIDSim(n_frames=8)
    m.load()
    return m


def _video(tmp: Path, name: str, image: np.ndarray) -> SampleMedia:
    return SampleMedia(write_sample(tmp / f"{name}.mp4", image, None, seconds=2.0, fps=FPS))


def _ref(tmp: Path, name: str, image: np.ndarray, **aug: float) -> Path:
    return save_rgb(augment(image, **aug), tmp / f"ref_{name}.png")


def test_same_person_scores_high_and_above_other_people(vid_metric, faces, tmp_path: Path) -> None:
    gen = _video(tmp_path, "astro", faces["astro"])
    same = make_item("same", [(_ref(tmp_path, "astro", faces["astro"]),)], [None], ["x"])
    multi_view = make_item("mv", [(_ref(tmp_path, "astro_l", faces["astro"], angle=8.0),
                                   _ref(tmp_path, "astro_r", faces["astro"], angle=-8.0, zoom=0.9))], [None], ["x"])
    others = [make_item(f"o{i}", [(_ref(tmp_path, f"t1_{i}", faces[f"t1_{i}"]),)], [None], ["x"]) for i in range(6)]
    out = vid_metric.score([EvalSample(it, gen) for it in [same, multi_view, *others]])
    vals = [v.value for v in out]
    print("\nVID-SIM (dlib-cosine) same person (augmented ref):", round(vals[0], 3),
          "| 2-view ref:", round(vals[1], 3), "| six other people:", [round(x, 3) for x in vals[2:]])
    assert all(v.failure is None for v in out)
    assert out[0].extras["presence_rate"]["<S1>"] == 1.0 and out[0].extras["n_frames"] == 32
    assert min(vals[:2]) >= 0.9
    assert min(vals[:2]) - max(vals[2:]) >= 0.05
    assert vid_metric.backend == "offline-dlib-resnet" and len(vid_metric.checkpoint_id()) == 64


def test_multi_subject_matching_follows_the_references(vid8, faces, tmp_path: Path) -> None:
    frame = np.concatenate([faces["astro"], faces["t1_2"]], axis=1)  # two people side by side
    gen = _video(tmp_path, "pair", frame)
    ra, rb = _ref(tmp_path, "a", faces["astro"]), _ref(tmp_path, "b", faces["t1_2"])
    right = make_item("r", [(ra,), (rb,)], [None, None], ["x", "y"])
    swapped = make_item("s", [(rb,), (ra,)], [None, None], ["x", "y"])
    out_r, out_s = vid8.score([EvalSample(right, gen), EvalSample(swapped, gen)])
    print("\nVID-SIM multi:", out_r.extras, "| swapped refs:", out_s.extras["per_subject"])
    pr, ps = out_r.extras["per_subject"], out_s.extras["per_subject"]
    assert ps["<S1>"] == pytest.approx(pr["<S2>"]) and ps["<S2>"] == pytest.approx(pr["<S1>"])
    assert min(pr.values()) >= 0.9  # each subject matched to its own face, not the other one
    assert out_r.extras["presence_rate"] == {"<S1>": 1.0, "<S2>": 1.0}
    assert out_r.value == pytest.approx(np.mean(list(pr.values())))


def test_absent_subject_scores_zero_with_zero_presence(vid8, faces, tmp_path: Path) -> None:
    gen = _video(tmp_path, "solo", faces["astro"])
    item = make_item("abs", [(_ref(tmp_path, "a", faces["astro"]),), (_ref(tmp_path, "b", faces["t1_4"]),)],
                     [None, None], ["x", "y"])
    (out,) = vid8.score([EvalSample(item, gen)])
    assert out.extras["presence_rate"] == {"<S1>": 1.0, "<S2>": 0.0}
    assert out.extras["per_subject"]["<S2>"] == 0.0
    assert out.value == pytest.approx(out.extras["per_subject"]["<S1>"] / 2)


def test_faceless_video_is_zero_and_bad_inputs_fail(vid8, faces, tmp_path: Path) -> None:
    blank = _video(tmp_path, "blank", np.full((120, 160, 3), 90, np.uint8))
    item = make_item("i", [(_ref(tmp_path, "a", faces["astro"]),)], [None], ["x"])
    no_face_ref = make_item("n", [(save_rgb(np.full((120, 160, 3), 90, np.uint8), tmp_path / "wall.png"),)],
                            [None], ["x"])
    unbound = make_item("u", [()], [None], ["x"])
    audio_only = tmp_path / "audio_only.wav"
    import soundfile as sf

    sf.write(audio_only, np.zeros(16000, np.float32), 16000)
    out = vid8.score([EvalSample(item, blank), EvalSample(no_face_ref, blank), EvalSample(unbound, blank),
                            EvalSample(item, SampleMedia(tmp_path / "missing.mp4")),
                            EvalSample(item, SampleMedia(audio_only))])
    assert out[0].value == 0.0 and out[0].failure is None and out[0].extras["presence_rate"]["<S1>"] == 0.0
    assert [v.failure for v in out[1:]] == ["no_face_in_reference", "unbound_reference", "decode_error", "no_video"]


def test_pure_matching_helpers() -> None:
    protos = np.eye(2, 3, dtype=np.float32)
    faces_ = np.array([[0.2, 0.98, 0.0], [0.99, 0.1, 0.0]], np.float32)
    assert match_frame(faces_, protos) == {0: pytest.approx(0.99), 1: pytest.approx(0.98)}
    assert match_frame(np.array([[-1.0, 0, 0]], np.float32), protos)[1] == 0.0  # clamped at 0
    vals, pres = subject_scores([{0: 0.5}, {0: 0.7, 1: 0.2}, {}], 2)
    assert vals == pytest.approx([0.6, 0.2]) and pres == pytest.approx([2 / 3, 1 / 3])
    p = prototype(np.array([[2.0, 0, 0], [0, 3.0, 0]]))
    assert np.allclose(p, [2 ** -0.5, 2 ** -0.5, 0])
