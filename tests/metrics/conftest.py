"""Session fixtures for metric tests: real voices/photos, and each offline model loaded once.

Missing real media skips a test on an offline developer machine and fails it under ``CI=true``
(``metric_media.need``); the committed iap-mini pack is used wherever it serves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import PACK_IDS, face_crop, fetch_photo, flite, pack_face

SENTENCES = {
    "a": "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "b": "Please call Stella and ask her to bring these things with her from the store.",
    "c": "We will meet again tomorrow morning at the old station before the train leaves.",
}


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """flite voices slt (female), kal, awb, rms (male), each saying sentences a/b/c: keys like 'slt_a'."""
    d = tmp_path_factory.mktemp("voices")
    return {f"{v}_{k}": flite(v, s, d / f"{v}_{k}.wav") for v in ("slt", "kal", "awb", "rms")
            for k, s in SENTENCES.items()}


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Real photos: 'astronaut' (one face, skimage) and 't1' (six different people, insightface)."""
    return {"astronaut": fetch_photo("astronaut.png"), "t1": fetch_photo("t1.jpg")}


@pytest.fixture(scope="session")
def pack_faces() -> dict[str, list[Path]]:
    """The committed iap-mini reference views: {'id_001': [face_1, face_2, face_3], ...}, six real people."""
    return {i: [pack_face(i, v) for v in (1, 2, 3)] for i in PACK_IDS}


@pytest.fixture(scope="session")
def same_person_photos() -> dict[str, Path]:
    """Three genuinely different photos of one person (obama, obama2, obama3) and one of another (biden),
    from face_recognition 1.3.0's sdist (its test images)."""
    return {n.split(".")[0]: fetch_photo(n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")}


@pytest.fixture(scope="session")
def faces(photos: dict[str, Path]) -> dict[str, np.ndarray]:
    """200x200 face crops of real people: 'astro' and 't1_0'..'t1_5' (distinct identities)."""
    from iap_bench.media.faces import detect_faces
    from iap_bench.media.refs import load_image

    astro = load_image(photos["astronaut"])
    t1 = load_image(photos["t1"])
    out = {"astro": face_crop(astro, detect_faces(astro)[0].bbox)}
    t1_faces = sorted(detect_faces(t1, max_side=max(t1.shape[:2])), key=lambda f: f.bbox[0])
    assert len(t1_faces) == 6, "t1.jpg should show six detectable people"
    for i, f in enumerate(t1_faces):
        out[f"t1_{i}"] = face_crop(t1, f.bbox)
    return out


@pytest.fixture(scope="session")
def wer_metric():
    from iap_bench.metrics.wer import OfflineWER

    m = OfflineWER()
    m.load()
    return m


@pytest.fixture(scope="session")
def aid_metric():
    from iap_bench.metrics.aid_sim import OfflineAIDSim

    m = OfflineAIDSim()
    m.load()
    return m


@pytest.fixture(scope="session")
def vid_metric():
    """vid_sim/dlib (dlib HOG + ResNet descriptors): its ``_emb`` is the dlib FaceEmbedder."""
    from iap_bench.metrics.vid_sim import DlibVIDSim

    m = DlibVIDSim()
    m.load()
    return m


@pytest.fixture(scope="session")
def sface_metric():
    """vid_sim/sface (OpenCV YuNet + SFace)."""
    from iap_bench.metrics.vid_sim import SFaceVIDSim

    m = SFaceVIDSim()
    m.load()
    return m
