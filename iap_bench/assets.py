"""Real media that ships inside PyPI wheels (e.g. skimage's astronaut.png, insightface's t1.jpg).

Used by the iap-mini builder and by tests that need real photos: the wheel is fetched with
``pip download --no-deps`` (never installed) and one member is extracted into a cache folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

TEST_MEDIA_CACHE = Path(os.environ.get("IAP_TEST_MEDIA", "~/.cache/iap-bench/test-media")).expanduser()


def wheel_member(requirement: str, member: str, cache_dir: Path = TEST_MEDIA_CACHE,
                 timeout_s: float = 240) -> Path:
    """Path of ``member`` extracted from the wheel of ``requirement`` (cached); raises on failure."""
    dest = cache_dir / Path(member).name
    if dest.is_file():
        return dest
    wheels_dir = cache_dir / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    stem = requirement.split("==")[0].replace("-", "_").lower()

    def wheels() -> list[Path]:
        return sorted(w for w in wheels_dir.glob("*.whl") if w.name.lower().startswith(stem + "-"))

    if not wheels():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                        requirement, "-d", str(wheels_dir)], check=True, capture_output=True, timeout=timeout_s)
    for wheel in wheels():
        with zipfile.ZipFile(wheel) as z:
            if member in z.namelist():
                tmp = dest.with_suffix(dest.suffix + ".part")
                tmp.write_bytes(z.read(member))
                tmp.replace(dest)  # atomic: concurrent test processes never read a half-written file
                return dest
    raise FileNotFoundError(f"{member} not found in the wheel(s) of {requirement} under {wheels_dir}")


def try_wheel_member(requirement: str, member: str, cache_dir: Path = TEST_MEDIA_CACHE) -> Path | None:
    """``wheel_member`` that returns None when the wheel cannot be fetched (offline machines)."""
    try:
        return wheel_member(requirement, member, cache_dir)
    except (subprocess.SubprocessError, OSError):
        return None
