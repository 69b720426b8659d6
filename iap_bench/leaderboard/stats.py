"""Statistics behind a leaderboard cell: one value per (row, item, seed), seeds averaged per item, CIs.

Rules (the README's "How a number is counted"):
1. One value per (row, item, seed) and metric identity: the newest successful generation wins; a failed
   generation counts only while no success exists for it.
2. Seeds are averaged per item first; the cell is the mean over items (items are the independent units),
   and its bootstrap CI resamples items.
3. A value (including a penalised sample fault at the metric's worst value) counts; a failure without a
   value (a fault outside the model, or a sample fault of an unbounded metric) is excluded and lowers the
   coverage n scored / n items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY_COLUMNS = ("metric", "backend", "checkpoint", "params", "version")
NOT_APPLICABLE = frozenset({"not_applicable"})  # failure reasons meaning "metric does not apply": not items


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of the mean; None for fewer than two values."""
    v = np.asarray(values, dtype=np.float64)  # [n]
    if v.size < 2:
        return None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))  # [B, n]
    means = v[idx].mean(axis=1)  # [B]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def newest_success(df: pd.DataFrame, label: str = "model") -> pd.DataFrame:
    """Pure: keep one row per (label, benchmark, pack, item, seed, metric identity).

    Preference: a row whose generation succeeded over a failed generation, then the newest sample.
    """
    if df.empty:
        return df
    df = df.copy()
    if "seed" not in df.columns:
        df["seed"] = 0
    df["seed"] = df["seed"].fillna(0).astype(int)
    ok = df["sample_failure"].isna() if "sample_failure" in df.columns else pd.Series(True, index=df.index)
    created = df["sample_created"] if "sample_created" in df.columns else df.get("created", 0.0)
    df["_ok"] = ok.astype(int)
    df["_created"] = pd.to_numeric(created, errors="coerce").fillna(0.0) if created is not None else 0.0
    take = [label, "benchmark", "pack_hash", "item_id", "seed"]
    df = df.sort_values(["_ok", "_created"], kind="stable")
    # one take per (row, item, seed) for every metric: never a newer take's WER beside an older take's SIM
    current = df.drop_duplicates(take, keep="last")[[*take, "sample_hash"]]
    df = df.reset_index().merge(current, on=[*take, "sample_hash"]).set_index("index")
    out = df.drop_duplicates([*take, *KEY_COLUMNS], keep="last")
    return out.drop(columns=["_ok", "_created"]).sort_index()


def per_item(df: pd.DataFrame, label: str = "model") -> pd.DataFrame:
    """Pure: one row per (label, item, split, identity): seed-mean of counted values, excluded flag, seeds.

    Columns: value (NaN when no seed has a value), n_seeds, penalised (seeds at the worst value),
    excluded (True when no seed has a value and the reason is not 'not applicable').
    """
    cols = [label, "item_id", "split", *KEY_COLUMNS]
    if df.empty:
        return pd.DataFrame(columns=[*cols, "value", "n_seeds", "penalised", "excluded"])
    d = df.copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d["_counted"] = d["value"].notna()
    d["_pen"] = d["_counted"] & d["failure"].notna()
    d["_na"] = d["failure"].isin(NOT_APPLICABLE) & ~d["_counted"]
    d["_failed"] = d["failure"].notna()  # no value and no failure: a set-level metric's per-sample record
    g = d.groupby(cols, dropna=False, sort=False)
    out = g.agg(value=("value", "mean"), n_seeds=("seed", "nunique"), counted=("_counted", "sum"),
                penalised=("_pen", "sum"), na=("_na", "all"), failed=("_failed", "any")).reset_index()
    out["excluded"] = (out["counted"] == 0) & ~out["na"] & out["failed"]
    out = out.drop(columns=["failed"])
    out = out[~((out["counted"] == 0) & out["na"])]
    return out.drop(columns=["counted", "na"])


@dataclass
class CellStat:
    """Statistics of one (row, column, split): mean over items, coverage, exclusions, optional CI."""

    mean: float | None
    n: int  # items with a counted value
    n_excluded: int  # items with a failure and no value (outside the model, or unbounded metric)
    ci_low: float | None = None
    ci_high: float | None = None
    source: str = "mean"  # "mean" of per-item values, or "aggregate" (dataset-level, e.g. FD)
    n_items: int = 0  # items this cell should cover (coverage denominator)
    n_penalised: int = 0  # sample faults counted at the metric's worst value

    @property
    def coverage(self) -> float:
        return 1.0 if self.n_items == 0 else self.n / self.n_items


def cell_stat(items: pd.DataFrame, n_items: int, ci: bool, n_boot: int, seed: int) -> CellStat:
    """Pure: a cell from its per-item rows (see ``per_item``)."""
    v = items["value"].dropna().to_numpy(dtype=np.float64)
    lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed) if ci else (None, None)
    return CellStat(float(v.mean()) if v.size else None, int(v.size), int(items["excluded"].sum()), lo, hi,
                    n_items=max(n_items, int(v.size)), n_penalised=int(items["penalised"].sum()))
