"""Face detection (dlib HOG + landmarks, OpenCV YuNet), IoU tracks and the VID-SIM face helpers, on real photos.

The photos are the committed iap-mini pack's (real people; no download): a missing pack is a failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_helpers import tone

from iap_bench.media.faces import (
    PAD_VALUE,
    Face,
    box_iou,
    detect_faces,
    embed_largest,
    faces_with_pad_retry,
    largest_face,
    link_tracks,
    pad_gray,
)
from iap_bench.media.refs import load_image
from iap_bench.media.sample import DECODE_COUNTS, SampleMedia
from iap_bench.media.writer import write_mp4

PACK = Path(__file__).resolve().parents[2] / "benchmark_data" / "iap-mini" / "pack"


@pytest.fixture(scope="module")
def face_photo() -> Path:
    """A committed iap-mini reference photo with exactly one frontal face (overrides the downloading fixture)."""
    for p in sorted(PACK.glob("*/faces/face_1.jpg")):
        if len(detect_faces(load_image(p))) == 1:
            return p
    pytest.fail(f"no one-face photo under {PACK}: the committed iap-mini pack is missing or broken")


def _face_crop(photo: np.ndarray, side: int = 150) -> np.ndarray:
    """Square crop around the photo's face (box grown 2x), resized to side x side so the face is ~75 px."""
    import cv2

    x0, y0, x1, y1 = detect_faces(photo)[0].bbox
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0)
    h, w = photo.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    crop = photo[b:int(min(h, cy + half)), a:int(min(w, cx + half))]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def _canvas_with_face(face: np.ndarray, dx: int, size: tuple[int, int] = (224, 288)) -> np.ndarray:
    """Paste the face crop on a gray canvas, shifted right by dx."""
    h, w = size
    canvas = np.full((h, w, 3), 90, np.uint8)
    fh, fw = face.shape[:2]
    canvas[30:30 + fh, 8 + dx:8 + dx + fw] = face
    return canvas


def test_detects_one_face_with_landmarks(face_photo):
    img = load_image(face_photo)
    faces = detect_faces(img)
    assert len(faces) == 1
    f = faces[0]
    x0, y0, x1, y1 = f.bbox
    assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
    assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
    inside = (f.landmarks[:, 0] > x0 - 0.2 * (x1 - x0)) & (f.landmarks[:, 0] < x1 + 0.2 * (x1 - x0))
    assert inside.mean() > 0.9
    nose, chin = f.landmarks[30], f.landmarks[8]
    assert chin[1] > nose[1]  # chin below the nose tip
    # a large (upscaled) copy is found on the downscaled detector input and mapped back to full resolution
    big = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)
    fb = detect_faces(big)
    assert len(fb) == 1 and box_iou(tuple(v / 3 for v in fb[0].bbox), f.bbox) > 0.6


def test_no_face_on_blank_frame():
    assert detect_faces(np.full((120, 160, 3), 128, np.uint8)) == []


def test_faces_tracked_across_video(tmp_path, face_photo):
    face = _face_crop(load_image(face_photo))
    video = np.stack([_canvas_with_face(face, dx=4 * i) for i in range(25)])
    path = write_mp4(tmp_path / "face.mp4", video, 25, tone(1.0, 16000), 16000).path
    m = SampleMedia(path)
    det = m.faces(6)
    assert list(det.frame_indices) == list(m.frame_indices(6))
    assert det.n_with_face == 6
    assert len(det.tracks) == 1 and len(det.longest_track()) == 6
    xs = [det.faces[p][i].bbox[0] for p, i in det.tracks[0]]
    assert xs[-1] > xs[0] + 60  # the box follows the face moving right
    assert m.faces(6) is det and DECODE_COUNTS[str(path)] == 1


def _face(x: float) -> Face:
    return Face((x, 0.0, x + 10.0, 10.0), np.zeros((68, 2), np.float32), 1.0)


def test_link_tracks_separates_people_and_bridges_gaps():
    frames = [[_face(0), _face(100)], [_face(101), _face(1)], [], [_face(2)], [_face(60)]]
    tracks = link_tracks(frames)
    assert [(0, 0), (1, 1), (3, 0)] in tracks  # survives one empty sampled frame
    assert [(0, 1), (1, 0)] in tracks
    assert [(4, 0)] in tracks and len(tracks) == 3


def test_yunet_finds_the_face_with_five_landmarks(face_photo):
    from iap_bench.backends.face_sface import YuNetDetector

    img = load_image(face_photo)
    faces = YuNetDetector().detect(img)
    assert len(faces) == 1
    f = faces[0]
    assert box_iou(f.bbox, detect_faces(img)[0].bbox) > 0.4  # the same face dlib finds
    x0, y0, x1, y1 = f.bbox
    assert f.landmarks.shape == (5, 2) and f.row.shape == (15,) and 0.6 <= f.score <= 1.0
    assert ((f.landmarks[:, 0] >= x0) & (f.landmarks[:, 0] <= x1)).all()
    right_eye, left_eye, nose, mouth_r, mouth_l = f.landmarks
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_r[1], mouth_l[1])  # eyes above nose above mouth
    # a 3x copy is detected on the shrunk detector input and mapped back to full resolution
    big = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)
    (fb,) = YuNetDetector().detect(big)
    assert box_iou(tuple(v / 3 for v in fb.bbox), f.bbox) > 0.8
    np.testing.assert_allclose(fb.landmarks / 3, f.landmarks, atol=0.1 * (x1 - x0))  # other scale
    assert YuNetDetector().detect(np.full((120, 160, 3), 128, np.uint8)) == []


def test_yunet_rows_map_back_to_full_resolution():
    from iap_bench.backends.face_sface import rows_to_faces

    rows = np.array([[10, 20, 30, 40, *range(10), 0.9], [0, 0, 60, 60, *range(10), 0.8],
                     [5, 5, 0.5, 0.5, *range(10), 0.99]], np.float32)
    faces = rows_to_faces(rows, 0.5, 100, 100)
    assert [f.score for f in faces] == pytest.approx([0.8, 0.9])  # largest first; a degenerate box dropped
    assert faces[0].bbox == (0.0, 0.0, 100.0, 100.0)  # clipped to the image
    assert faces[1].bbox == (20.0, 40.0, 80.0, 100.0) and faces[1].landmarks[1].tolist() == [4.0, 6.0]
    assert faces[1].row[:4].tolist() == [20, 40, 60, 80]  # alignCrop's layout, at full resolution
    assert rows_to_faces(None, 1.0, 10, 10) == []


def test_largest_face_and_gray_padding_helpers():
    small, big = _face(0), Face((0.0, 0.0, 30.0, 30.0), np.zeros((68, 2), np.float32), 1.0)
    assert largest_face([small, big]) is big and largest_face([]) is None
    img = np.zeros((40, 80, 3), np.uint8)
    padded, dx, dy = pad_gray(img)
    assert (dx, dy) == (20, 10) and padded.shape == (60, 120, 3)
    assert padded[0, 0, 0] == PAD_VALUE and padded[dy:-dy, dx:-dx].max() == 0
    calls = []

    def detect(image):  # finds a face only on the padded image
        calls.append(image.shape)
        return [big] if image.shape[0] == 60 else []

    image, faces = faces_with_pad_retry(img, None, detect)
    assert image.shape == (60, 120, 3) and faces == [big] and calls == [(40, 80, 3), (60, 120, 3)]
    assert faces_with_pad_retry(img, [small], detect)[1] == [small]  # given faces: no detection
    assert faces_with_pad_retry(img, [], detect, pad_retry=False)[1] == []
    emb = embed_largest(img, detect, lambda im, fs: np.full((len(fs), 4), float(im.shape[0])))
    assert emb.tolist() == [60.0] * 4  # embedded on the padded image
    assert embed_largest(img, lambda im: [], lambda im, fs: None) is None
