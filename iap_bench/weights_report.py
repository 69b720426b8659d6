"""`iap-bench weights`: every checkpoint the selected metrics need, where it is looked for, and its state.

The same check runs before any generation in `run`/`evaluate`: all missing files are listed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iap_bench.errors import IAPBenchError
from iap_bench.weights import WeightSpec


@dataclass
class WeightRow:
    """One checkpoint file of one metric: found where, its size, and whether it matches its pin."""

    metric: str
    name: str
    filename: str
    path: Path | None  # where it was found (None: missing)
    searched: list[Path]
    size: int | None
    pin: str  # "match", "MISMATCH <found>", "not pinned", "-"
    how_to_get: str
    config_key: str

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.pin.startswith("MISMATCH")


def check_spec(metric: str, spec: WeightSpec, explicit: str | None) -> WeightRow:
    """Resolve one spec without raising: found/missing, size, pin state."""
    from iap_bench.hashing import tree_sha256

    searched = spec.candidates(explicit)
    found = next((p for p in searched if p.exists()), None)
    pin = "-"
    size = None
    if found is not None:
        size = (found.stat().st_size if found.is_file()
                else sum(f.stat().st_size for f in found.rglob("*") if f.is_file()))
        if spec.sha256:
            h = tree_sha256(found)
            pin = "match" if h == spec.sha256 else f"MISMATCH {h[:12]}"
        else:
            pin = "not pinned"
    return WeightRow(metric, spec.name, spec.filename, found, searched, size, pin, spec.how_to_get,
                     spec.config_key)


def weight_rows(metrics: Sequence[Any]) -> list[WeightRow]:
    """Rows for every file of every metric (a file two metrics share is listed once per metric)."""
    return [check_spec(f"{m.name}/{m.backend}", spec, explicit) for m in metrics
            for spec, explicit in m.weight_files()]


class MissingWeightsError(IAPBenchError):
    """One or more checkpoints are missing or not the pinned file: every one is named at once."""


def require_weights(metrics: Sequence[Any], allow_mismatch: bool = False) -> None:
    """Raise MissingWeightsError listing every missing (or mismatching) file before any work starts."""
    bad = [r for r in weight_rows(metrics)
           if r.path is None or (r.pin.startswith("MISMATCH") and not allow_mismatch)]
    if not bad:
        return
    lines = [f"{len(bad)} checkpoint file(s) missing or not the pinned file (`iap-bench weights` shows all):"]
    for r in bad:
        where = ", ".join(str(p) for p in r.searched) or "(no search path)"
        state = "missing" if r.path is None else f"{r.path}: sha256 {r.pin}"
        lines.append(f"  {r.metric}: {r.filename} ({r.name}) {state}; looked in {where}; get it: {r.how_to_get}")
    raise MissingWeightsError("\n".join(lines))


def print_table(rows: Sequence[WeightRow], console: Any) -> None:
    """The `iap-bench weights` table."""
    from rich.table import Table

    table = Table(title="checkpoints of the selected metrics")
    for col in ("metric", "file", "status", "sha256 pin", "size", "where (found, or first place looked)",
                "how to get it"):
        table.add_column(col, overflow="fold", no_wrap=col in ("metric", "file", "status", "size"))
    for r in rows:
        status = "[green]found[/]" if r.path is not None else "[red]missing[/]"
        size = f"{r.size / 1e6:.1f} MB" if r.size is not None else "-"
        where = str(r.path) if r.path is not None else (str(r.searched[0]) if r.searched else "-")
        table.add_row(r.metric, r.filename, status, r.pin, size, where, r.how_to_get if r.path is None else "")
    console.print(table)
    missing = sum(not r.ok for r in rows)
    console.print(f"{len(rows)} file(s), {missing} missing or mismatching; put checkpoints under "
                  "`weights.root=DIR` (sub-layout: each spec's root_subpath) or point each metric's "
                  "weights parameter at its file")
