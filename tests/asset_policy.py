"""A test's missing real-media asset: a skip on a developer machine, a failure under ``CI=true``."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_asset(reason: str) -> NoReturn:
    """Skip here, fail in CI: CI must never pass by skipping the real-media checks."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing asset is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)
