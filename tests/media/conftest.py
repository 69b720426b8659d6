"""Fixtures for media tests: small synthetic clips written with our own writer, and a real face photo."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from media_helpers import moving_square, tone

from iap_bench.assets import TEST_MEDIA_CACHE, try_wheel_member
from tests.asset_policy import missing_asset

FACE_CACHE = TEST_MEDIA_CACHE


def _candidate_faces() -> list[Path]:
    root = Path(__file__).resolve().parents[2]
    pack = sorted(glob.glob(str(root / "benchmark_data/iap-mini/pack/*/faces/*.jpg")))[:3]
    return [Path(p) for p in pack] + [FACE_CACHE / "astronaut.png"]


@pytest.fixture(scope="session")
def face_photo() -> Path:
    """A real photo with one frontal face: the iap-mini pack if present, else skimage's astronaut."""
    from iap_bench.errors import MediaError
    from iap_bench.media.faces import detect_faces
    from iap_bench.media.refs import load_image

    candidates = _candidate_faces()
    if not candidates[-1].is_file():
        try_wheel_member("scikit-image", "skimage/data/astronaut.png", FACE_CACHE)
    for p in candidates:
        try:
            if p.is_file() and len(detect_faces(load_image(p))) == 1:
                return p
        except MediaError:  # e.g. a pack image still being written by another process
            continue
    missing_asset("no real one-face photo: iap-mini pack absent and `pip download scikit-image` failed (offline?)")


@pytest.fixture()
def av_clip(tmp_path: Path) -> Path:
    """2 s, 25 fps, 96x64 moving square + 440 Hz tone at 16 kHz, written by write_mp4."""
    from iap_bench.media.writer import write_mp4

    path = tmp_path / "clip.mp4"
    write_mp4(path, moving_square(), 25, tone(2.0, 16000), 16000)
    return path
