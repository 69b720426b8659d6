"""Where config paths point: relative to the launch directory, always; which store a job writes or reads.

Shared by the CLI and its preflight checks so that both resolve every path the same way (imports Hydra lazily).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from iap_bench.errors import UsageError

STORE_NAME = "iap-bench.sqlite"
DATA_ROOT = Path(__file__).resolve().parents[1] / "benchmark_data"


def data_path(rel: str) -> str:
    """``${iap_data:iap-mini/manifest.yaml}``: a file shipped with the package, as an absolute path."""
    return str(DATA_ROOT / rel)


def _hydra_config() -> Any | None:
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    return HydraConfig.get() if HydraConfig.initialized() else None


def launch_dir() -> Path:
    """The directory the user launched from (Hydra may change the working directory)."""
    hc = _hydra_config()
    return Path(hc.runtime.cwd) if hc is not None else Path.cwd()


def resolve_path(p: str | os.PathLike | None) -> Path | None:
    """A config path: absolute as given (``~`` expanded), relative ones against the launch directory."""
    if p is None:
        return None
    path = Path(os.path.expanduser(str(p)))
    return path if path.is_absolute() else launch_dir() / path


def is_multirun() -> bool:
    hc = _hydra_config()
    return hc is not None and hc.mode.name == "MULTIRUN"


def store_path(raw: Any) -> Path:
    """The one store a run/evaluate job writes: ``store=`` if given; under -m each job's own file in its
    sweep subdir (SQLite WAL must not be shared across nodes); else ``outputs/iap-bench.sqlite``."""
    if raw in (None, ""):
        hc = _hydra_config()
        if hc is not None and hc.mode.name == "MULTIRUN":
            return Path(hc.runtime.output_dir) / STORE_NAME
        return launch_dir() / "outputs" / STORE_NAME
    if not isinstance(raw, str | os.PathLike) or glob.has_magic(str(raw)):
        raise UsageError(f"store={raw!r}: a `run`/`evaluate` job writes one store file; a glob or a list of "
                         "stores is only for the leaderboard job")
    return resolve_path(raw)  # type: ignore[return-value]


def store_entries(raw: Any) -> list[str]:
    """``store=`` of the leaderboard job as resolved path strings (a path, a glob, or a list of them)."""
    if raw in (None, ""):
        return [str(launch_dir() / "outputs" / STORE_NAME)]
    entries = [raw] if isinstance(raw, str | os.PathLike) else list(raw)
    return [str(resolve_path(str(e))) for e in entries]


def store_sources(raw: Any) -> list[Path]:
    """The store files the leaderboard job reads (globs expanded, sorted)."""
    out: list[Path] = []
    for p in store_entries(raw):
        out += [Path(x) for x in sorted(glob.glob(p))] if glob.has_magic(p) else [Path(p)]
    return out
