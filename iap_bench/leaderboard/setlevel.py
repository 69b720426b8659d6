"""Set-level metrics (FD): one value per (row, split) computed from the current takes' stored extras.

A set-level metric stores, per sample, what its ``Metric.aggregate`` needs (embeddings) with value None.
The value of a cell is recomputed from exactly the samples the leaderboard counts (the newest take of
each (row, item, seed)), so reused scores, merged stores and re-runs aggregate like fresh ones; a result is
cached in the store's ``aggregates`` table under the set's hash and reused while that set is unchanged.
Several seeds: the metric is computed per seed over that seed's samples, and the cell is their mean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from iap_bench.leaderboard.stats import KEY_COLUMNS, newest_success

if TYPE_CHECKING:
    from iap_bench.metrics.base import Metric

ALL_SPLIT = "all"


def metric_for(metric: str, backend: str, params_json: Mapping[str, Any] | None) -> Metric | None:
    """The registered set-level metric class with this (name, backend), built with its stored parameters.

    Only the modules registered for ``<metric>/...`` are imported (light: metric modules import their
    models lazily). None if no registered class is set-level under that name.
    """
    from iap_bench.metrics.base import METRICS

    for name in METRICS.names():
        if not name.startswith(f"{metric}/"):
            continue
        cls = METRICS.get(name)
        if cls is None or getattr(cls, "name", None) != metric or getattr(cls, "backend", None) != backend:
            continue
        if not getattr(cls, "set_level", False) or params_json is None:
            return None  # unknown parameters: no value rather than one computed with other parameters
        try:
            return cls(**dict(params_json.get("params", {})))
        except TypeError:  # parameters of another version of the metric
            return None
    return None


def set_key(df: pd.DataFrame) -> str:
    """Order-independent hash of the (sample, inputs) pairs a set-level value is computed over."""
    from iap_bench.store.core import set_hash

    return set_hash(f"{a}:{b}" for a, b in zip(df["sample_hash"], df["inputs_hash"]))


def _values(rows: pd.DataFrame) -> list:
    from iap_bench.metrics.base import MetricValue

    out = []
    for v, f, x in zip(rows["value"], rows["failure"], rows["extras_json"]):
        extras = json.loads(x) if isinstance(x, str) and x else {}
        out.append(MetricValue(None if pd.isna(v) else float(v), None if pd.isna(f) else str(f), extras))
    return out


def set_level_aggregates(df: pd.DataFrame, *, label: str = "model", cached: pd.DataFrame | None = None,
                         params_info: Mapping[str, Any] | None = None,
                         put: Any = None) -> pd.DataFrame:
    """Aggregates frame (the store's ``aggregates`` columns) for every set-level identity in ``df``.

    ``df`` is a scores frame (``ResultStore.scores_frame()``, extras included). ``cached`` is the store's
    aggregates frame: a value already computed for the same (row, split, identity, sample set) is reused.
    ``put`` (e.g. ``store.put_aggregate``) receives each newly computed ``AggregateRecord``.
    """
    from iap_bench.store.core import AggregateRecord

    cols = ["model" if label == "model" else label, "benchmark", "split", "pack_hash", *KEY_COLUMNS, "set_hash",
            "value", "extras_json", "created"]
    if df.empty or "extras_json" not in df.columns:
        return pd.DataFrame(columns=cols)
    df = newest_success(df, label)
    metrics: dict[tuple[str, ...], Metric | None] = {}
    cache: dict[tuple[str, ...], tuple[Any, str]] = {}
    if cached is not None and len(cached):
        for r in cached.itertuples(index=False):
            cache[(str(r.model), r.benchmark, r.split, r.pack_hash, r.metric, r.backend, r.checkpoint,
                   str(r.params), str(r.version), r.set_hash)] = (r.value, r.extras_json)
    out: list[dict[str, Any]] = []
    ident_cols = list(KEY_COLUMNS)
    for ident, g in df.groupby(ident_cols, sort=False):
        ident = tuple(str(x) for x in ident)
        if pd.to_numeric(g["value"], errors="coerce").notna().any():
            continue  # per-sample values: not a set-level metric (its module is not even imported)
        if ident not in metrics:
            info = (params_info or {}).get(ident[3])
            metrics[ident] = metric_for(ident[0], ident[1], info)
        m = metrics[ident]
        if m is None:
            continue
        for (row, bench, pack), gr in g.groupby([label, "benchmark", "pack_hash"], sort=False):
            for split in (ALL_SPLIT, *sorted(gr["split"].unique())):
                part = gr if split == ALL_SPLIT else gr[gr["split"] == split]
                key = set_key(part)
                ck = (str(row), bench, split, pack, *ident, key)
                if ck in cache:
                    value, extras_json = cache[ck]
                else:
                    value, extras = _per_seed(m, part)
                    extras = {**extras, "n_items": int(part.loc[part["failure"].isna(), "item_id"].nunique())}
                    extras_json = json.dumps(extras, sort_keys=True, default=str)
                    if put is not None:
                        put(AggregateRecord(str(row), bench, split, pack, *ident, key, value, extras))
                out.append({cols[0]: row, "benchmark": bench, "split": split, "pack_hash": pack,
                            **dict(zip(ident_cols, ident)), "set_hash": key, "value": value,
                            "extras_json": extras_json, "created": time.time()})
    return pd.DataFrame(out, columns=cols)


def _per_seed(m: Metric, part: pd.DataFrame) -> tuple[float | None, dict[str, Any]]:
    """The metric over each seed's samples; the mean over seeds (one seed: that value and its extras)."""
    seeds = sorted(part["seed"].fillna(0).astype(int).unique()) if "seed" in part.columns else [0]
    results = []
    for s in seeds:
        rows = part if len(seeds) == 1 else part[part["seed"].fillna(0).astype(int) == s]
        results.append(m.aggregate(_values(rows)))
    if len(results) == 1:
        return results[0]
    vals = [v for v, _ in results if v is not None]
    extras = {"per_seed": {str(s): {"value": v, **x} for s, (v, x) in zip(seeds, results)},
              "n_seeds": len(seeds), "n_clips": sum(int(x.get("n_clips", 0)) for _, x in results)}
    return (sum(vals) / len(vals) if vals else None), extras
