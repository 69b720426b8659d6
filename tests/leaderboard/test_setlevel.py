"""Set-level metrics (FD): computed over exactly the takes the leaderboard counts, cached by sample set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from iap_bench.leaderboard import build_leaderboard
from iap_bench.leaderboard.setlevel import set_level_aggregates
from iap_bench.metrics.base import METRICS, Metric, MetricValue, register_metric


class ToySet(Metric):
    """Set-level toy: the sum of the samples' ``x`` extras (so which samples were used is visible)."""

    name = "toyset"
    backend = "toy"
    set_level = True
    direction = "lower"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def aggregate(self, values: Sequence[MetricValue]) -> tuple[float | None, dict[str, Any]]:
        xs = [v.extras["x"] for v in values if v.failure is None and "x" in v.extras]
        return (sum(xs) + self.offset if xs else None), {"n_clips": len(xs), "ci_low": 0.0, "ci_high": 99.0}


if METRICS.registered("toyset/toy") is None:
    register_metric("toyset/toy")(ToySet)


def row(model: str, item: str, sh: str, x: float | None, *, split: str = "single", seed: int = 0,
        created: float = 1.0, failure: str | None = None, sample_failure: str | None = None) -> dict:
    return {"model": model, "benchmark": "b", "pack_hash": "p", "item_id": item, "seed": seed, "split": split,
            "sample_hash": sh, "inputs_hash": f"in-{item}", "metric": "toyset", "backend": "toy",
            "checkpoint": "c", "params": "P", "version": "1", "value": None, "failure": failure,
            "extras_json": json.dumps({} if x is None else {"x": x}), "sample_failure": sample_failure,
            "sample_created": created, "created": created}


PARAMS = {"P": {"params": {"offset": 0.0}, "aux": {}}}


def test_only_current_takes_count_and_splits_are_separate() -> None:
    df = pd.DataFrame([row("m", "i1", "old", 100.0, created=1.0), row("m", "i1", "new", 1.0, created=2.0),
                       row("m", "i2", "s2", 2.0), row("m", "i3", "s3", 4.0, split="multi")])
    agg = set_level_aggregates(df, params_info=PARAMS)
    got = {r.split: r.value for r in agg.itertuples()}
    assert got == {"all": 7.0, "single": 3.0, "multi": 4.0}  # the replaced take (100) is not counted


def test_stored_parameters_rebuild_the_metric() -> None:
    df = pd.DataFrame([row("m", "i1", "a", 1.0)])
    agg = set_level_aggregates(df, params_info={"P": {"params": {"offset": 10.0}, "aux": {}}})
    assert agg.loc[agg.split == "all", "value"].item() == 11.0


def test_cached_value_reused_for_the_same_set_and_recomputed_for_another() -> None:
    df = pd.DataFrame([row("m", "i1", "a", 1.0), row("m", "i2", "b", 2.0)])
    stored: list = []
    first = set_level_aggregates(df, params_info=PARAMS, put=stored.append)
    assert len(stored) == 2  # all + single
    cached = first.assign(value=42.0)  # pretend the store holds 42 for this very set
    again = set_level_aggregates(df, params_info=PARAMS, cached=cached, put=stored.append)
    assert (again.value == 42.0).all() and len(stored) == 2
    changed = pd.DataFrame([row("m", "i1", "a", 1.0), row("m", "i2", "c", 5.0, created=3.0)])
    third = set_level_aggregates(changed, params_info=PARAMS, cached=cached, put=stored.append)
    assert third.loc[third.split == "all", "value"].item() == 6.0 and len(stored) == 4


def test_several_seeds_average_per_seed_values() -> None:
    df = pd.DataFrame([row("m", "i1", "a", 1.0, seed=0), row("m", "i2", "b", 2.0, seed=0),
                       row("m", "i1", "c", 10.0, seed=1), row("m", "i2", "d", 20.0, seed=1)])
    agg = set_level_aggregates(df, params_info=PARAMS)
    assert agg.loc[agg.split == "all", "value"].item() == pytest.approx((3.0 + 30.0) / 2)


def test_leaderboard_cell_shows_set_value_ci_and_coverage() -> None:
    df = pd.DataFrame([row("m", "i1", "a", 1.0), row("m", "i2", "b", 2.0),
                       row("m", "i3", "c", None, failure="no_audio")])
    agg = set_level_aggregates(df, params_info=PARAMS)
    board = build_leaderboard(df, aggregates=agg, items={"single": 3, "multi": 0})
    (col,) = [i for i, c in enumerate(board.columns) if c.key.metric == "toyset"]
    cell = board.stats[("m", col, "all")]
    assert cell.source == "aggregate" and cell.mean == 3.0 and (cell.ci_low, cell.ci_high) == (0.0, 99.0)
    assert cell.n == 2 and cell.n_excluded == 1 and cell.n_items == 3  # the failed sample lowers coverage


def test_per_sample_metrics_are_left_alone() -> None:
    df = pd.DataFrame([{**row("m", "i1", "a", 1.0), "metric": "wer", "backend": "offline-whisper",
                        "value": 0.1}])
    assert set_level_aggregates(df, params_info=PARAMS).empty
