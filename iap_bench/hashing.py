"""File content hashes: the identity of samples, media packs and checkpoints recorded with every score."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}  # (resolved path, mtime_ns, size) -> sha256


def file_sha256(path: str | os.PathLike, fresh: bool = False) -> str:
    """sha256 of a file's bytes, streamed in 1 MiB chunks; cached while the file's mtime and size hold.

    ``fresh=True`` always re-reads the bytes (verifying a sample before it is scored).
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if fresh or key not in _CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _CACHE[key] = h.hexdigest()
    return _CACHE[key]
