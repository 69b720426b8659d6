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


def tree_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder as the sorted (relative path, file sha256) list of its files.

    A checkpoint that is a folder (SenseVoice, a tokenizer) is identified by every file in it: rename,
    add or change one and the identity changes. Hidden files and ``__pycache__`` are ignored.
    """
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        rel = f.relative_to(p)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()
