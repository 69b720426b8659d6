"""Where a model file is looked for, how to get it, and its pinned hash (a leaf module: imports nothing heavy).

Every model the harness or ``model/`` loads is resolved through a ``WeightSpec``: a missing file raises one
``MissingCheckpointError`` naming the file, every place it was looked for and how to get it; a file whose
sha256 differs from the pinned one raises ``ChecksumMismatchError`` naming both hashes, unless the caller
passes ``allow_mismatch=True`` (recorded by the caller, e.g. in the metric's identity).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from iap_bench.errors import IAPBenchError, MissingCheckpointError

__all__ = ["ALLOW_ENV", "ROOT_ENV", "ChecksumMismatchError", "MissingCheckpointError", "WeightSpec"]

ALLOW_ENV = "IAP_BENCH_ALLOW_CHECKSUM_MISMATCH"  # set by `eval.allow_checksum_mismatch=true` (recorded per run)
ROOT_ENV = "IAP_BENCH_WEIGHTS_ROOT"  # set by `weights.root=DIR`: one folder holding every checkpoint


class ChecksumMismatchError(IAPBenchError):
    """A model file exists but is not the pinned one (a different release, a partial download)."""

    def __init__(self, name: str, path: Path, expected: str, found: str, override_key: str = ""):
        self.name, self.path, self.expected, self.found = name, Path(path), expected, found
        how = (f"\n  if this file is intended, set `{override_key}=true` (recorded with every score)"
               if override_key else "")
        super().__init__(f"checkpoint for {name!r} at {path} has sha256 {found}, expected {expected}{how}")


@dataclass(frozen=True)
class WeightSpec:
    """Where a model file is looked for and how to get it; ``resolve()`` gives one clear error if absent."""

    name: str
    filename: str
    how_to_get: str
    search_paths: tuple[str, ...] = ()
    env_var: str | None = None
    config_key: str = ""
    sha256: str | None = None  # pinned content hash of the standard file; None = any file accepted
    root_subpath: str = ""  # where it lies under `weights.root` (default: its filename at the top)

    def candidates(self, explicit: str | os.PathLike | None = None) -> list[Path]:
        """Places looked at: an explicit path alone (never a silent substitute for it); otherwise
        ``weights.root``, $env_var, then each search path, in that order."""
        paths: list[Path] = []
        if explicit:
            p = Path(explicit).expanduser()
            return [p / self.filename if p.is_dir() else p]
        if os.environ.get(ROOT_ENV):
            paths.append(Path(os.environ[ROOT_ENV]).expanduser() / (self.root_subpath or self.filename))
        if self.env_var and os.environ.get(self.env_var):
            p = Path(os.environ[self.env_var]).expanduser()
            paths.append(p / self.filename if p.is_dir() else p)
        for d in self.search_paths:
            paths.append(Path(os.path.expandvars(d)).expanduser() / self.filename)
        return paths

    def resolve(self, explicit: str | os.PathLike | None = None, *, verify: bool = True,
                allow_mismatch: bool = False) -> Path:
        """First existing candidate; its sha256 is checked against the pin when ``verify`` and one is set."""
        searched = self.candidates(explicit)
        for p in searched:
            if p.exists():
                allow_mismatch = allow_mismatch or os.environ.get(ALLOW_ENV) == "1"
                if verify and self.sha256 and not allow_mismatch:
                    self.check(p)
                return p
        raise MissingCheckpointError(self.name, self.filename, searched, self.how_to_get, self.config_key)

    def check(self, path: Path) -> None:
        """Raise ChecksumMismatchError if ``path`` is not the pinned file (or folder, ``tree_sha256``)."""
        from iap_bench.hashing import tree_sha256

        found = tree_sha256(path)
        if self.sha256 and found != self.sha256:
            raise ChecksumMismatchError(self.name, path, self.sha256, found, "eval.allow_checksum_mismatch")
