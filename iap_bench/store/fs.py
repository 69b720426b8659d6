"""Which filesystem a path lives on: SQLite's WAL mode needs every writer on one host, on a local disk."""

from __future__ import annotations

import os
from pathlib import Path

from iap_bench.errors import UsageError

NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph",
    "fuse.sshfs", "sshfs", "9p", "glusterfs", "fuse.glusterfs", "afs", "panfs", "wekafs", "fuse.s3fs",
    "fuse.gcsfuse", "fuse.juicefs", "virtiofs",
})


def filesystem_type(path: str | os.PathLike, mounts_file: str = "/proc/mounts") -> str:
    """Type of the filesystem holding ``path`` (longest matching mount point); '' when unknown."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    target = str(p.resolve())
    best, best_type = "", ""
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, best_type = mnt, parts[2]
    return best_type


def check_local(path: str | os.PathLike) -> None:
    """UsageError when ``path`` is on a network filesystem (SQLite WAL would corrupt across hosts)."""
    fs = filesystem_type(path)
    if fs in NETWORK_FS:
        raise UsageError(
            f"store {path} is on a network filesystem ({fs}); SQLite's WAL mode is not safe there. Give each "
            "job a store on a local disk (the default under -m) and combine them: "
            "`python -m iap_bench.store merge ALL.sqlite JOB*.sqlite`, or `iap-bench leaderboard store='GLOB'`")
