"""Checks of a composed config before any work starts: bad use gets one line and exit code 2.

Nothing is written (no store, no run directory content) by a job that fails these checks.
"""

from __future__ import annotations

from typing import Any

from iap_bench.errors import UsageError  # noqa: F401


def check_config(cfg: Any) -> None:
    """Raise UsageError for the first bad value of ``cfg`` (a Hydra DictConfig of the `iap-bench` app)."""
