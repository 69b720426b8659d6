"""A problem found in a manifest or media pack (a leaf module: manifest, pack and validate all use it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One issue in a manifest or media pack: where (item id, field), what, and how bad."""

    item_id: str
    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.item_id}.{self.field}" if self.field else self.item_id
        return f"{self.severity}: {where}: {self.message}"  # no [brackets]: safe to print through rich


def errors_of(problems: list[Problem]) -> list[Problem]:
    """Only the error-level problems (warnings do not block loading)."""
    return [p for p in problems if p.severity == "error"]
