"""Real test media for metric tests: flite voices, LibriVox clips, real face photos, and sample/item builders.

Face photos come from the committed iap-mini pack wherever it serves (no download); photos only a package
ships (t1.jpg's six people, the three photos of one person in face_recognition's sdist) are fetched with
``pip download``. A missing asset skips the test on a developer's offline machine but FAILS it under
``CI=true``: CI must never pass by skipping the real-media checks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from iap_bench.assets import TEST_MEDIA_CACHE, try_real_photo
from iap_bench.benchmark.schema import Item, StructuredPrompt, Subject, SubjectPrompt, Turn

MEDIA_CACHE = TEST_MEDIA_CACHE
ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "benchmark_data" / "iap-mini" / "pack"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
# iap-mini identities (committed): id_001..id_004 = four people of insightface's t1.jpg, id_005 = skimage's
# astronaut, id_006 = Messi (opencv-doc). Views: face_1 crop, face_2 tighter mirrored crop, face_3 rotated.
PACK_IDS = ("id_001", "id_002", "id_003", "id_004", "id_005", "id_006")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def need(path: Path | None, what: str) -> Path:
    """``path`` if it is a file; else skip (developer machine) or fail (``CI=true``) naming the asset."""
    if path is not None and Path(path).is_file():
        return Path(path)
    msg = f"real test asset unavailable: {what}"
    if in_ci():
        pytest.fail(f"{msg} (CI=true: a missing asset is a failure, not a skip)", pytrace=False)
    pytest.skip(msg)


def fetch_photo(name: str) -> Path:
    """A photo of ``iap_bench.assets.REAL_PHOTOS`` (extracted once from its package; see ``need``)."""
    from iap_bench.assets import REAL_PHOTOS

    return need(try_real_photo(name, MEDIA_CACHE), f"{name} (pip download {REAL_PHOTOS[name].requirement})")


def pack_face(identity: str, view: int = 1) -> Path:
    """A committed iap-mini reference view (``benchmark_data/iap-mini/pack/<identity>/faces/face_<view>.jpg``)."""
    return need(PACK / identity / "faces" / f"face_{view}.jpg", f"committed iap-mini face {identity}/face_{view}")


def librivox_clips() -> list[tuple[Path, str]]:
    """The 5 real LibriVox clips (one reader, 16 kHz) with their transcripts, in file order."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, fid = line.rpartition("(")
        text = text.replace("<s>", "").replace("</s>", "").strip()
        out.append((LIBRIVOX / f"{fid.strip(') ')}.wav", text))
    return out


def flite(voice: str, text: str, out: Path) -> Path:
    """Synthesise one sentence with a flite voice (real-speaker diphone/cluster voices)."""
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
    return out


def face_crop(image: np.ndarray, bbox: tuple[float, float, float, float], side: int = 200,
              margin: float = 0.6) -> np.ndarray:
    """Square crop around a face box with `margin` of its size on each side, resized to side x side."""
    x0, y0, x1, y1 = bbox
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (1 + 2 * margin) * max(x1 - x0, y1 - y0) / 2
    h, w = image.shape[:2]
    a, b = int(max(0, cx - half)), int(min(w, cx + half))
    c, d = int(max(0, cy - half)), int(min(h, cy + half))
    return cv2.resize(np.ascontiguousarray(image[c:d, a:b]), (side, side), interpolation=cv2.INTER_AREA)


def augment(image: np.ndarray, angle: float = 8.0, zoom: float = 1.15) -> np.ndarray:
    """A second 'view' of one photo: horizontal flip, small rotation, zoom (stand-in for multi-view)."""
    h, w = image.shape[:2]
    flipped = np.ascontiguousarray(image[:, ::-1])
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, zoom)
    return cv2.warpAffine(flipped, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def save_rgb(image: np.ndarray, path: Path) -> Path:
    """Write an RGB array as an image file (a reference face for an Item)."""
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def write_sample(path: Path, image: np.ndarray | None, audio16k: np.ndarray | None, seconds: float | None = None,
                 fps: int = 8) -> Path:
    """A 'generated sample': a still image repeated at `fps` for the audio's duration (+ the audio) as mp4."""
    from iap_bench.media.writer import write_mp4

    dur = seconds if seconds is not None else len(audio16k) / 16000
    img = image if image is not None else np.full((128, 128, 3), 90, np.uint8)
    video = np.repeat(img[None], max(2, int(round(dur * fps))), axis=0)
    write_mp4(path, video, fps, audio16k, 16000 if audio16k is not None else None)
    return path


def make_item(item_id: str, faces: list[tuple[Path, ...]], voices: list[Path | None], lines: list[str],
              lang: str = "en") -> Item:
    """An Item with K subjects bound to the given reference faces/voices; line i is spoken by subject i % K."""
    k = len(faces)
    subjects = tuple(
        Subject(anchor=f"<S{i + 1}>", slot=f"slot{i + 1}", prompt=SubjectPrompt("a person", "talks", "calm"),
                language=lang, views=len(faces[i]), faces=faces[i], voice=voices[i])
        for i in range(k))
    script = tuple(Turn(f"<S{i % k + 1}>", t) for i, t in enumerate(lines))
    return Item(id=item_id, split="multi" if k > 1 else "single", subjects=subjects,
                prompt=StructuredPrompt("a room", "static", "quiet"), script=script)
