"""dlib face detection, landmarks and IoU tracks on a real face photo."""

from __future__ import annotations

import numpy as np
from media_helpers import tone

from iap_bench.media.faces import Face, box_iou, detect_faces, link_tracks
from iap_bench.media.refs import load_image
from iap_bench.media.sample import DECODE_COUNTS, SampleMedia
from iap_bench.media.writer import write_mp4


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
