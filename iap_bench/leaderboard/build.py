"""Build leaderboards from a scores frame (ResultStore.scores_frame()): one column per metric identity.

Rows of different media packs or benchmarks are never compared in one table. Rows scored on different
item sets are flagged (or restricted to the common items with ``common_items=True``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iap_bench.leaderboard.stats import (
    KEY_COLUMNS,
    CellStat,
    bootstrap_ci,
    cell_stat,
    newest_success,
    per_item,
)
from iap_bench.leaderboard.table import (
    ALL,
    EXTRA_COLUMNS,
    EXTRA_GROUP,
    METRIC_LAYOUT,
    SPLITS,
    TABLE3_LAYOUT,
    Column,
    ColumnKey,
    Direction,
    Leaderboard,
    MetricColumn,
)

if TYPE_CHECKING:
    from iap_bench.store import ResultStore

REQUIRED_COLUMNS = ("sample_hash", "metric", "backend", "checkpoint", "version", "value", "failure", "split",
                    "pack_hash", "benchmark", "item_id")


def layout_from_config(entries: Sequence[Mapping[str, Any]]) -> tuple[MetricColumn, ...]:
    """Layout from config dicts (metric, label, group, direction, split_cells), e.g. a Hydra list."""
    return tuple(MetricColumn(str(e["metric"]), str(e.get("label", e["metric"])), str(e.get("group", "")),
                              e.get("direction", "higher"), bool(e.get("split_cells", False))) for e in entries)


def _extra_column(metric: str, backend: str) -> MetricColumn:
    """Layout for a metric outside the layout: known extras, then the metric registry, else no arrow."""
    if metric in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[metric]
    from iap_bench.metrics.base import METRICS

    direction: Direction | None = None
    cls = METRICS.registered(f"{metric}/{backend}")  # only if already imported: loads no model code
    if cls is not None:
        direction = cls.direction
    elif metric.startswith(("fd", "wer", "cer", "sync_d")):
        direction = "lower"
    return MetricColumn(metric, metric.upper().replace("_", "-"), EXTRA_GROUP, direction)


def _normalise(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Check columns and fill identity/label fields so grouping never drops NaN keys."""
    need = [c for c in (*REQUIRED_COLUMNS, label) if c not in df.columns]
    if need:
        raise ValueError(f"scores frame lacks columns {need} (use ResultStore.scores_frame())")
    df = df.copy()
    if "params" not in df.columns:
        df["params"] = ""
    if "seed" not in df.columns:
        df["seed"] = 0
    for c in ("pack_hash", "benchmark", "backend", "checkpoint", "params", "version"):
        df[c] = df[c].fillna("").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def _identities(df: pd.DataFrame, aggregates: pd.DataFrame | None) -> list[ColumnKey]:
    keys = {ColumnKey(*map(str, k)) for k in df[list(KEY_COLUMNS)].itertuples(index=False)}
    if aggregates is not None and len(aggregates):
        agg = aggregates if "params" in aggregates.columns else aggregates.assign(params="")
        keys |= {ColumnKey(*map(str, k)) for k in agg[list(KEY_COLUMNS)].itertuples(index=False)}
    return sorted(keys, key=lambda k: (k.metric, k.backend, k.checkpoint, k.params, k.version))


def _suffix(key: ColumnKey, siblings: list[ColumnKey]) -> str:
    """The parts of an identity that tell it apart from the same metric's other identities."""
    if len(siblings) < 2:
        return ""
    parts = []
    if len({k.backend for k in siblings}) > 1:
        parts.append(key.backend)
    if len({k.checkpoint for k in siblings}) > 1:
        parts.append(key.checkpoint[:8])
    if len({k.params for k in siblings}) > 1:
        parts.append(f"p:{key.params[:6]}")
    if len({k.version for k in siblings}) > 1:
        parts.append(f"v{key.version}")
    return " ".join(parts)


def _columns(keys: list[ColumnKey], layout: Sequence[MetricColumn], include_extra: bool) -> list[Column]:
    by_metric: dict[str, list[ColumnKey]] = {}
    for k in keys:
        by_metric.setdefault(k.metric, []).append(k)
    cols: list[Column] = []
    for spec in layout:
        for k in by_metric.get(spec.metric, []):
            cols.append(Column(spec, k, _suffix(k, by_metric[spec.metric])))
    if include_extra:
        laid_out = {s.metric for s in layout}
        for metric in sorted(set(by_metric) - laid_out):
            for k in by_metric[metric]:
                cols.append(Column(_extra_column(metric, k.backend), k, _suffix(k, by_metric[metric])))
    return cols


def _apply_aggregates(stats: dict[tuple[str, int, str], CellStat], rows: list[str], cols: list[Column],
                      aggregates: pd.DataFrame, label: str, notes: list[str]) -> None:
    """Dataset-level values (FD) replace means; the newest per (row, identity, split) wins."""
    agg = aggregates.copy()
    if "params" not in agg.columns:
        agg["params"] = ""
    for c in ("backend", "checkpoint", "params", "version"):
        agg[c] = agg[c].astype(str)
    for i, c in enumerate(cols):
        k = c.key
        sel = agg[(agg.metric == k.metric) & (agg.backend == k.backend) & (agg.checkpoint == k.checkpoint)
                  & (agg.params == k.params) & (agg.version == k.version)]
        for (row, split), g in sel.groupby([label, "split"]):
            if row not in rows:
                continue
            g = g.sort_values("created")
            if g["set_hash"].nunique() > 1:
                notes.append(f"{c.header} for {row} ({split}): {g['set_hash'].nunique()} sample sets stored; "
                             "the newest is shown")
            value = g["value"].iloc[-1]
            extras = _extras(g["extras_json"].iloc[-1]) if "extras_json" in g.columns else {}
            old = stats.get((row, i, split))
            n = int(extras.get("n_items", extras.get("n_clips", old.n if old else 0)))
            stats[(row, i, split)] = CellStat(
                None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value),
                n, old.n_excluded if old else 0, _num(extras.get("ci_low")), _num(extras.get("ci_high")),
                source="aggregate", n_items=max(old.n_items if old else 0, n),
                n_penalised=old.n_penalised if old else 0)


def _extras(raw: Any) -> dict[str, Any]:
    import json

    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _item_sets(df: pd.DataFrame, label: str) -> dict[str, set[str]]:
    return {str(r): set(g["item_id"].astype(str)) for r, g in df.groupby(label)}


def build_leaderboard(df: pd.DataFrame, benchmark: str | None = None, pack_hash: str | None = None, *,
                      aggregates: pd.DataFrame | None = None, layout: Sequence[MetricColumn] = METRIC_LAYOUT,
                      label: str = "model", label_name: str = "Models", rows: Sequence[str] | None = None,
                      include_extra: bool = True, ci: bool = False, n_boot: int = 1000, seed: int = 0,
                      decimals: int = 3, title: str = "", items: Mapping[str, int] | None = None,
                      common_items: bool = False, incomplete: Sequence[str] = (),
                      params_info: Mapping[str, dict[str, Any]] | None = None) -> Leaderboard:
    """Per ``label`` x metric identity x split statistics from a scores frame (see module docstring).

    ``items`` gives the number of benchmark items per split (the coverage denominator); by default it is
    the number of distinct items any row has. Raises ValueError when the rows span several media packs.
    """
    df = _normalise(df, label)
    notes: list[str] = []
    unlabelled = df[label].isna()
    if unlabelled.any():
        notes.append(f"{int(unlabelled.sum())} score rows belong to unregistered samples and are left out")
        df = df[~unlabelled]
    if benchmark is not None:
        df = df[df["benchmark"] == benchmark]
    if pack_hash is not None:
        df = df[df["pack_hash"] == pack_hash]
    packs = sorted(set(zip(df["benchmark"], df["pack_hash"])))
    if len(packs) > 1:
        raise ValueError(f"scores span {len(packs)} (benchmark, media pack) pairs {packs}: numbers from "
                         "different packs are not comparable; pass pack_hash= or use build_leaderboards()")
    bench, pack = packs[0] if packs else (benchmark or "", pack_hash or "")
    df = newest_success(df, label)
    if aggregates is not None and len(aggregates) and label not in aggregates.columns:
        notes.append(f"dataset-level values are keyed by model, not {label!r}: left out")
        aggregates = None
    if aggregates is not None and len(aggregates):
        aggregates = aggregates[(aggregates["benchmark"].fillna("") == bench)
                                & (aggregates["pack_hash"].fillna("") == pack)]
    row_names = list(rows) if rows is not None else sorted(df[label].astype(str).unique())
    sets = {r: s for r, s in _item_sets(df, label).items() if r in row_names}
    if len(sets) > 1 and len({frozenset(s) for s in sets.values()}) > 1:
        shared = set.intersection(*sets.values())
        if common_items:
            df = df[df["item_id"].astype(str).isin(shared)]
            notes.append(f"restricted to the {len(shared)} items every row has (common_items)")
        else:
            sizes = ", ".join(f"{r}: {len(s)}" for r, s in sorted(sets.items()))
            notes.append(f"rows were scored on different item sets ({sizes}; {len(shared)} shared): compare "
                         "on common items with leaderboard.common_items=true")
    split_items = {sp: int(df.loc[df["split"] == sp, "item_id"].nunique()) for sp in SPLITS}
    if items is not None and not common_items:
        split_items.update({sp: int(n) for sp, n in items.items() if sp in SPLITS})
    split_items[ALL] = sum(split_items[sp] for sp in SPLITS)
    seeds = df.groupby([label, "item_id"])["seed"].nunique() if len(df) else pd.Series(dtype=int)
    if len(seeds) and seeds.max() > 1:
        notes.append(f"up to {int(seeds.max())} seeds per item: averaged per item first, then over items")
    cols = _columns(_identities(df, aggregates), layout, include_extra)
    if rows is None and aggregates is not None and len(aggregates):
        row_names += sorted(set(aggregates[label].astype(str)) - set(row_names))

    stats: dict[tuple[str, int, str], CellStat] = {}
    items_df = per_item(df, label)
    for i, c in enumerate(cols):
        k = c.key
        sub = items_df[(items_df.metric == k.metric) & (items_df.backend == k.backend)
                       & (items_df.checkpoint == k.checkpoint) & (items_df.params == k.params)
                       & (items_df.version == k.version)]
        for row, g in sub.groupby(label):
            if str(row) not in row_names:
                continue
            present = [sp for sp in SPLITS if (g["split"] == sp).any()]
            n_all = sum(split_items[sp] for sp in present)
            stats[(str(row), i, ALL)] = cell_stat(g, n_all, ci, n_boot, seed)
            for sp in present:
                stats[(str(row), i, sp)] = cell_stat(g[g["split"] == sp], split_items[sp], ci, n_boot, seed)
    if aggregates is not None and len(aggregates):
        _apply_aggregates(stats, row_names, cols, aggregates, label, notes)
    return Leaderboard(row_names, cols, stats, bench, pack, label_name, decimals, title, notes,
                       frozenset(r for r in incomplete if r in row_names), dict(params_info or {}))


def build_leaderboards(df: pd.DataFrame, **kwargs: Any) -> list[Leaderboard]:
    """One leaderboard per (benchmark, media pack) found in the frame, each titled with its pack."""
    df = _normalise(df, kwargs.get("label", "model"))
    boards = []
    for bench, pack in sorted(set(zip(df["benchmark"], df["pack_hash"]))):
        kw = dict(kwargs)
        kw.setdefault("title", f"{bench or 'benchmark'} (pack {pack[:12] or 'unbound'})")
        boards.append(build_leaderboard(df, bench, pack, **kw))
    return boards


def build_ablation_table(df: pd.DataFrame, benchmark: str | None = None, pack_hash: str | None = None, *,
                         label: str = "model", label_name: str = "Models",
                         layout: Sequence[MetricColumn] = TABLE3_LAYOUT, **kwargs: Any) -> Leaderboard:
    """Table-3 layout: rows are checkpoints/ablations (any label column), extras left out by default."""
    kwargs.setdefault("include_extra", False)
    return build_leaderboard(df, benchmark, pack_hash, layout=layout, label=label, label_name=label_name,
                             **kwargs)


def leaderboard_from_store(store: ResultStore, benchmark: str | None = None, pack_hash: str | None = None,
                           **kwargs: Any) -> Leaderboard:
    """Table 2 straight from a store (scores + dataset-level aggregates, unfinished runs marked)."""
    from iap_bench.leaderboard.setlevel import set_level_aggregates

    kwargs.setdefault("incomplete", sorted(store.unfinished_labels(benchmark)))
    kwargs.setdefault("params_info", store.metric_params())
    df = store.scores_frame()
    agg = set_level_aggregates(df, label=kwargs.get("label", "model"), cached=store.aggregates_frame(),
                               params_info=kwargs["params_info"])
    return build_leaderboard(df, benchmark, pack_hash, aggregates=agg, **kwargs)


@dataclass
class PairedResult:
    """Mean difference a - b over shared items, its bootstrap CI and a sign-flip permutation p-value."""

    n_items: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def paired_test(df: pd.DataFrame, model_a: str, model_b: str, metric: str, split: str | None = None, *,
                backend: str | None = None, checkpoint: str | None = None, label: str = "model",
                n_resamples: int = 5000, seed: int = 0) -> PairedResult:
    """Compare two rows on the items both scored (seeds averaged per item) under one metric identity."""
    df = newest_success(_normalise(df, label), label)
    sub = df[(df.metric == metric) & df.value.notna()]
    if backend is not None:
        sub = sub[sub.backend == backend]
    if checkpoint is not None:
        sub = sub[sub.checkpoint == checkpoint]
    if split is not None:
        sub = sub[sub.split == split]
    idents = sub[["backend", "checkpoint", "params", "version"]].drop_duplicates()
    if len(idents) > 1:
        raise ValueError(f"{metric} has {len(idents)} identities; pass backend=/checkpoint= to pick one")
    per = sub.groupby([label, "item_id"])["value"].mean()
    a = per.get(model_a, pd.Series(dtype=float))
    b = per.get(model_b, pd.Series(dtype=float))
    shared = a.index.intersection(b.index)
    d = (a[shared] - b[shared]).to_numpy(dtype=np.float64)  # [n_items]
    if d.size == 0:
        return PairedResult(0, None, None, None, None)
    lo, hi = bootstrap_ci(d, n_boot=n_resamples, seed=seed)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, d.size))  # [R, n]
    null = np.abs((signs * d).mean(axis=1))
    p = float((1 + np.sum(null >= abs(d.mean()) - 1e-12)) / (n_resamples + 1))
    return PairedResult(int(d.size), float(d.mean()), lo, hi, p)
