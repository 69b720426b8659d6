"""Leaderboards from the result store: Table 2 (per model) and Table 3 (per checkpoint/ablation) layouts.

A cell is the plain mean of a model's non-failed per-sample values (FD: the stored dataset-level value).
Split metrics are shown as ``single/multi``; ``-`` marks a half or cell without values. A column is one
metric *identity* (metric, backend, checkpoint, version): identities are never pooled, so a metric scored
with two backends or checkpoints becomes two columns. Samples bound to different media packs are never
compared in one table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from iap_bench.store import ResultStore

Direction = Literal["higher", "lower"]
SPLITS = ("single", "multi")
ALL = "all"
NOT_APPLICABLE = frozenset({"not_applicable"})  # failure reasons that mean "metric does not apply", not excluded
ARROWS = {"higher": "↑", "lower": "↓", None: ""}
LATEX_ARROWS = {"higher": r"$\uparrow$", "lower": r"$\downarrow$", None: ""}
REQUIRED_COLUMNS = ("sample_hash", "metric", "backend", "checkpoint", "version", "value", "failure", "split",
                    "pack_hash", "benchmark")


@dataclass(frozen=True)
class MetricColumn:
    """Layout entry: how one metric is titled, grouped, oriented and split in the table."""

    metric: str
    label: str
    group: str
    direction: Direction | None = "higher"
    split_cells: bool = False  # True: "single/multi" cell; False: one mean over all the model's samples


TABLE2_LAYOUT: tuple[MetricColumn, ...] = (
    MetricColumn("pq", "PQ", "Audio", "higher"),
    MetricColumn("clap", "CLAP", "Audio", "higher"),
    MetricColumn("fd", "FD", "Audio", "lower"),
    MetricColumn("wer", "WER", "Audio", "lower"),
    MetricColumn("aid_sim", "AID-SIM", "Audio", "higher", split_cells=True),
    MetricColumn("aes", "AES", "Video", "higher"),
    MetricColumn("dd", "DD", "Video", "higher"),
    MetricColumn("oc", "OC", "Video", "higher"),
    MetricColumn("vid_sim", "VID-SIM", "Video", "higher", split_cells=True),
    MetricColumn("sync_c", "Sync-C", "Audio-Video", "higher"),
    MetricColumn("sync_d", "Sync-D", "Audio-Video", "lower"),
    MetricColumn("imagebind", "ImageBind", "Audio-Video", "higher"),
)
METRIC_LAYOUT = TABLE2_LAYOUT

TABLE3_LAYOUT: tuple[MetricColumn, ...] = (
    MetricColumn("wer", "WER", "Audio", "lower"),
    MetricColumn("aid_sim", "AID-SIM", "Audio", "higher", split_cells=True),
    MetricColumn("vid_sim", "VID-SIM", "Video", "higher", split_cells=True),
    MetricColumn("sync_c", "Sync-C", "Audio-Video", "higher"),
    MetricColumn("sync_d", "Sync-D", "Audio-Video", "lower"),
)

EXTRA_GROUP = "Extra"
EXTRA_COLUMNS: dict[str, MetricColumn] = {
    "bind": MetricColumn("bind", "BIND-ACC", EXTRA_GROUP, "higher", split_cells=True),
    "turn_acc": MetricColumn("turn_acc", "TURN-ACC", EXTRA_GROUP, "higher", split_cells=True),
    "spurious_lip": MetricColumn("spurious_lip", "SPURIOUS-LIP", EXTRA_GROUP, "lower", split_cells=True),
}


def layout_from_config(entries: Sequence[Mapping[str, Any]]) -> tuple[MetricColumn, ...]:
    """Layout from config dicts (metric, label, group, direction, split_cells), e.g. a Hydra list."""
    return tuple(MetricColumn(str(e["metric"]), str(e.get("label", e["metric"])), str(e.get("group", "")),
                              e.get("direction", "higher"), bool(e.get("split_cells", False))) for e in entries)


def _extra_column(metric: str, backend: str) -> MetricColumn:
    """Layout for a metric outside the layout: known extras, then the metric registry, else no arrow."""
    if metric in EXTRA_COLUMNS:
        return EXTRA_COLUMNS[metric]
    from iap_bench.metrics.base import METRICS  # registry as already populated; importing it loads nothing

    direction: Direction | None = None
    cls = METRICS.get(f"{metric}/{backend}")
    if cls is not None:
        direction = cls.direction
    elif metric.startswith(("fd", "wer", "cer", "sync_d")):
        direction = "lower"
    return MetricColumn(metric, metric.upper().replace("_", "-"), EXTRA_GROUP, direction)


@dataclass(frozen=True)
class ColumnKey:
    """A metric identity: the unit that is never mixed within one column."""

    metric: str
    backend: str
    checkpoint: str
    version: str


@dataclass(frozen=True)
class Column:
    """One table column: a layout entry bound to one metric identity."""

    spec: MetricColumn
    key: ColumnKey
    suffix: str = ""  # tells apart several identities of one metric, e.g. "offline" or "ab12cd34"

    @property
    def header(self) -> str:
        base = f"{self.spec.label}{ARROWS[self.spec.direction]}"
        return f"{base} [{self.suffix}]" if self.suffix else base

    @property
    def latex_header(self) -> str:
        base = f"{latex_escape(self.spec.label)}{LATEX_ARROWS[self.spec.direction]}"
        return f"{base} [{latex_escape(self.suffix)}]" if self.suffix else base


@dataclass
class CellStat:
    """Statistics of one (row, column, split): mean over n values, failures excluded, optional CI."""

    mean: float | None
    n: int
    n_excluded: int
    ci_low: float | None = None
    ci_high: float | None = None
    source: str = "mean"  # "mean" of per-sample values, or "aggregate" (dataset-level, e.g. FD)


@dataclass
class Leaderboard:
    """A built table: rows (models/checkpoints) x columns (metric identities) with per-split statistics."""

    rows: list[str]
    columns: list[Column]
    stats: dict[tuple[str, int, str], CellStat]
    benchmark: str = ""
    pack_hash: str = ""
    label_name: str = "Models"
    decimals: int = 3
    title: str = ""
    notes: list[str] = field(default_factory=list)

    # -- cells ------------------------------------------------------------------------------------
    def stat(self, row: str, col: int, split: str) -> CellStat | None:
        return self.stats.get((row, col, split))

    def _fmt(self, s: CellStat | None) -> str:
        if s is None or s.mean is None:
            return "-"
        return f"{s.mean:.{self.decimals}f}"

    def _cell_splits(self, col: Column) -> tuple[str, ...]:
        return SPLITS if col.spec.split_cells else (ALL,)

    def cell_value(self, row: str, col: int) -> str:
        """Display value: "x", "x/y" (single/multi) or "-"."""
        column = self.columns[col]
        parts = [self._fmt(self.stat(row, col, sp)) for sp in self._cell_splits(column)]
        return "-" if all(p == "-" for p in parts) else "/".join(parts)

    def excluded(self, row: str, col: int) -> tuple[int, ...]:
        """Failed-sample counts behind a cell, one per displayed split."""
        column = self.columns[col]
        return tuple((s.n_excluded if (s := self.stat(row, col, sp)) else 0) for sp in self._cell_splits(column))

    def excluded_text(self, row: str, col: int) -> str:
        counts = self.excluded(row, col)
        return "" if not any(counts) else f"({'/'.join(str(c) for c in counts)} excl.)"

    def cell_text(self, row: str, col: int, show_excluded: bool = True) -> str:
        text = self.cell_value(row, col)
        exc = self.excluded_text(row, col) if show_excluded else ""
        return f"{text} {exc}" if exc else text

    # -- frames -----------------------------------------------------------------------------------
    def display_frame(self, show_excluded: bool = True, grouped: bool = False) -> pd.DataFrame:
        """Strings as shown; columns are headers, or (group, header) pairs when ``grouped``."""
        data = {(c.spec.group, c.header) if grouped else c.header:
                [self.cell_text(r, i, show_excluded) for r in self.rows] for i, c in enumerate(self.columns)}
        df = pd.DataFrame(data, index=pd.Index(self.rows, name=self.label_name))
        if grouped:
            df.columns = pd.MultiIndex.from_tuples(list(data), names=["group", "metric"])
        return df

    def long_frame(self) -> pd.DataFrame:
        """Tidy numbers: one row per (row, column, split) with n, excluded count, CI and provenance."""
        recs = []
        for r in self.rows:
            for i, c in enumerate(self.columns):
                for sp in (*SPLITS, ALL):
                    s = self.stat(r, i, sp)
                    if s is None:
                        continue
                    recs.append({self.label_name: r, "group": c.spec.group, "column": c.header,
                                 "metric": c.key.metric, "backend": c.key.backend,
                                 "checkpoint": c.key.checkpoint, "version": c.key.version,
                                 "direction": c.spec.direction, "split": sp, "value": s.mean, "n": s.n,
                                 "n_excluded": s.n_excluded, "ci_low": s.ci_low, "ci_high": s.ci_high,
                                 "source": s.source, "benchmark": self.benchmark, "pack_hash": self.pack_hash})
        return pd.DataFrame(recs)

    # -- notes ------------------------------------------------------------------------------------
    def footnotes(self) -> list[str]:
        """Provenance of every column, cell conventions and build notes."""
        out = [f"benchmark {self.benchmark or '?'}; media pack {self.pack_hash[:12] or 'unbound'}",
               "x/y = single-subject / multi-subject items (never pooled); other cells = mean over all items; "
               "'-' = no value",
               "(n excl.) = samples with a recorded failure, excluded from the mean"]
        for c in self.columns:
            agg = any(s.source == "aggregate" for (r, i, sp), s in self.stats.items() if self.columns[i] is c)
            out.append(f"{c.header}: backend {c.key.backend}, checkpoint {c.key.checkpoint[:12]}, "
                       f"version {c.key.version}" + (" (dataset-level value)" if agg else ""))
        return out + list(self.notes)

    def _groups(self) -> list[tuple[str, int]]:
        """Consecutive (group, span) runs of the columns."""
        spans: list[tuple[str, int]] = []
        for c in self.columns:
            if spans and spans[-1][0] == c.spec.group:
                spans[-1] = (c.spec.group, spans[-1][1] + 1)
            else:
                spans.append((c.spec.group, 1))
        return spans

    # -- writers ----------------------------------------------------------------------------------
    def to_csv(self, path: str | Path, long_path: str | Path | None = None) -> Path:
        """Display table as CSV (strings); ``long_path`` also writes the tidy numbers (with CIs)."""
        path = Path(path)
        self.display_frame().to_csv(path)
        if long_path is not None:
            self.long_frame().to_csv(long_path, index=False)
        return path

    def to_markdown(self, path: str | Path | None = None) -> str:
        """Markdown table with a caption, group line and footnotes."""
        groups = " | ".join(
            f"{g}: " + ", ".join(c.header for c in self.columns if c.spec.group == g) for g, _ in self._groups())
        lines = [f"**{self.title}**" if self.title else "", "", f"Groups: {groups}", "",
                 self.display_frame().to_markdown(disable_numparse=True), ""]
        lines += [f"- {n}" for n in self.footnotes()]
        text = "\n".join(lines).lstrip("\n") + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_latex(self, path: str | Path | None = None) -> str:
        """booktabs tabular with a grouped header; failure counts as superscripts, notes below."""
        ncol = len(self.columns)
        head_groups = " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" for g, n in self._groups())
        rules, start = [], 2
        for _, n in self._groups():
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        lines = [r"\begin{table}[t]", r"\centering"]
        if self.title:
            lines.append(rf"\caption{{{latex_escape(self.title)}}}")
        lines += [r"\begin{tabular}{l" + "c" * ncol + "}", r"\toprule",
                  f" & {head_groups} \\\\", " ".join(rules),
                  latex_escape(self.label_name) + " & " + " & ".join(c.latex_header for c in self.columns)
                  + r" \\", r"\midrule"]
        for r in self.rows:
            cells = []
            for i in range(ncol):
                cell = self.cell_value(r, i)
                counts = self.excluded(r, i)
                if any(counts):
                    cell += r"\textsuperscript{" + "/".join(str(c) for c in counts) + "}"
                cells.append(cell)
            lines.append(latex_escape(r) + " & " + " & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize"]
        notes = [n.replace("(n excl.)", "Superscripts") for n in self.footnotes()]
        lines += [latex_escape(n) + r"\\" for n in notes]
        lines += ["}", r"\end{table}"]
        text = "\n".join(lines) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def rich_table(self, caption: bool = True) -> Table:
        """Terminal table: group titles above headers, excluded counts dimmed, provenance as caption."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(self.title) if self.title else None,
                      caption=Text("\n".join(self.footnotes())) if caption else None, caption_justify="left")
        table.add_column(Text(f"\n{self.label_name}"), style="bold")
        seen: set[str] = set()
        for c in self.columns:
            top = c.spec.group if c.spec.group not in seen else ""
            seen.add(c.spec.group)
            table.add_column(Text(f"{top}\n{c.header}", justify="right"), justify="right", min_width=len(c.header))
        for r in self.rows:
            cells: list[Text] = [Text(r)]
            for i in range(len(self.columns)):
                t = Text(self.cell_value(r, i))
                exc = self.excluded_text(r, i)
                if exc:
                    t.append(" " + exc, style="dim")
                cells.append(t)
            table.add_row(*cells)
        return table

    def print_rich(self, console: Console | None = None) -> None:
        """Print the table to a rich console (stdout by default)."""
        from rich.console import Console
        from rich.text import Text

        console = console or Console()
        console.print(self.rich_table(caption=False))  # footnotes below, unwrapped by the table's width
        for line in self.footnotes():
            console.print(Text(line, style="dim"))

    def write_all(self, out_dir: str | Path, stem: str = "leaderboard") -> dict[str, Path]:
        """CSV (display + long), Markdown and LaTeX files under ``out_dir``; returns their paths by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / f"{stem}.csv", "long_csv": out / f"{stem}_long.csv",
                 "markdown": out / f"{stem}.md", "latex": out / f"{stem}.tex"}
        self.to_csv(paths["csv"], paths["long_csv"])
        self.to_markdown(paths["markdown"])
        self.to_latex(paths["latex"])
        return paths


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


# -- building -----------------------------------------------------------------------------------------

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


def _normalise(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Check columns and fill identity/label fields so grouping never drops NaN keys."""
    need = [c for c in (*REQUIRED_COLUMNS, label) if c not in df.columns]
    if need:
        raise ValueError(f"scores frame lacks columns {need} (use ResultStore.scores_frame())")
    df = df.copy()
    for c in ("pack_hash", "benchmark", "backend", "checkpoint", "version"):
        df[c] = df[c].fillna("").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def _identities(df: pd.DataFrame, aggregates: pd.DataFrame | None) -> list[ColumnKey]:
    keys = {ColumnKey(*k) for k in df[["metric", "backend", "checkpoint", "version"]].itertuples(index=False)}
    if aggregates is not None and len(aggregates):
        keys |= {ColumnKey(*map(str, k)) for k in
                 aggregates[["metric", "backend", "checkpoint", "version"]].itertuples(index=False)}
    return sorted(keys, key=lambda k: (k.metric, k.backend, k.checkpoint, k.version))


def _suffix(key: ColumnKey, siblings: list[ColumnKey]) -> str:
    """The parts of an identity that tell it apart from the same metric's other identities."""
    if len(siblings) < 2:
        return ""
    parts = []
    if len({k.backend for k in siblings}) > 1:
        parts.append(key.backend)
    if len({k.checkpoint for k in siblings}) > 1:
        parts.append(key.checkpoint[:8])
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


def _stat(values: pd.Series, failures: pd.Series, ci: bool, n_boot: int, seed: int) -> CellStat:
    ok = failures.isna() & values.notna()
    failed = ~ok & ~failures.isin(NOT_APPLICABLE)
    v = values[ok].to_numpy(dtype=np.float64)
    lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed) if ci else (None, None)
    return CellStat(float(v.mean()) if v.size else None, int(v.size), int(failed.sum()), lo, hi)


def _apply_aggregates(stats: dict[tuple[str, int, str], CellStat], rows: list[str], cols: list[Column],
                      aggregates: pd.DataFrame, label: str, notes: list[str]) -> None:
    """Dataset-level values (FD) replace means; the newest per (row, identity, split) wins."""
    agg = aggregates.copy()
    for c in ("backend", "checkpoint", "version"):
        agg[c] = agg[c].astype(str)
    for i, c in enumerate(cols):
        k = c.key
        sel = agg[(agg.metric == k.metric) & (agg.backend == k.backend) & (agg.checkpoint == k.checkpoint)
                  & (agg.version == k.version)]
        for (row, split), g in sel.groupby([label, "split"]):
            if row not in rows:
                continue
            g = g.sort_values("created")
            if g["set_hash"].nunique() > 1:
                notes.append(f"{c.header} for {row} ({split}): {g['set_hash'].nunique()} sample sets stored; "
                             "the newest is shown")
            value = g["value"].iloc[-1]
            old = stats.get((row, i, split))
            stats[(row, i, split)] = CellStat(
                None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value),
                old.n if old else 0, old.n_excluded if old else 0, source="aggregate")


def build_leaderboard(df: pd.DataFrame, benchmark: str | None = None, pack_hash: str | None = None, *,
                      aggregates: pd.DataFrame | None = None, layout: Sequence[MetricColumn] = METRIC_LAYOUT,
                      label: str = "model", label_name: str = "Models", rows: Sequence[str] | None = None,
                      include_extra: bool = True, ci: bool = False, n_boot: int = 1000, seed: int = 0,
                      decimals: int = 3, title: str = "") -> Leaderboard:
    """Per ``label`` x metric identity x split means from a scores frame (ResultStore.scores_frame()).

    Raises ValueError when the rows span several media packs or benchmarks (use build_leaderboards).
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
    if aggregates is not None and len(aggregates) and label not in aggregates.columns:
        notes.append(f"dataset-level values are keyed by model, not {label!r}: left out")
        aggregates = None
    if aggregates is not None and len(aggregates):
        aggregates = aggregates[(aggregates["benchmark"].fillna("") == bench)
                                & (aggregates["pack_hash"].fillna("") == pack)]
    row_names = list(rows) if rows is not None else sorted(df[label].astype(str).unique())
    cols = _columns(_identities(df, aggregates), layout, include_extra)
    if rows is None and aggregates is not None and len(aggregates):
        row_names += sorted(set(aggregates[label].astype(str)) - set(row_names))

    stats: dict[tuple[str, int, str], CellStat] = {}
    for i, c in enumerate(cols):
        k = c.key
        sub = df[(df.metric == k.metric) & (df.backend == k.backend) & (df.checkpoint == k.checkpoint)
                 & (df.version == k.version)]
        for row, g in sub.groupby(label):
            if str(row) not in row_names:
                continue
            stats[(str(row), i, ALL)] = _stat(g["value"], g["failure"], ci, n_boot, seed)
            for sp in SPLITS:
                gs = g[g["split"] == sp]
                if len(gs):
                    stats[(str(row), i, sp)] = _stat(gs["value"], gs["failure"], ci, n_boot, seed)
    if aggregates is not None and len(aggregates):
        _apply_aggregates(stats, row_names, cols, aggregates, label, notes)
    return Leaderboard(row_names, cols, stats, bench, pack, label_name, decimals, title, notes)


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
    """Table 2 straight from a store (scores + dataset-level aggregates)."""
    return build_leaderboard(store.scores_frame(), benchmark, pack_hash, aggregates=store.aggregates_frame(),
                             **kwargs)


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
    df = _normalise(df, label)
    sub = df[(df.metric == metric) & df.failure.isna() & df.value.notna()]
    if backend is not None:
        sub = sub[sub.backend == backend]
    if checkpoint is not None:
        sub = sub[sub.checkpoint == checkpoint]
    if split is not None:
        sub = sub[sub.split == split]
    idents = sub[["backend", "checkpoint", "version"]].drop_duplicates()
    if len(idents) > 1:
        raise ValueError(f"{metric} has {len(idents)} identities; pass backend=/checkpoint= to pick one")
    per_item = sub.groupby([label, "item_id"])["value"].mean()
    a = per_item.get(model_a, pd.Series(dtype=float))
    b = per_item.get(model_b, pd.Series(dtype=float))
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


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print and write the leaderboard(s) of a store, one per media pack."""
    import argparse

    from iap_bench.store import ResultStore

    ap = argparse.ArgumentParser(prog="python -m iap_bench.leaderboard", description=main.__doc__)
    ap.add_argument("store", help="path of the SQLite result store")
    ap.add_argument("--out", default=None, help="folder for CSV/Markdown/LaTeX files")
    ap.add_argument("--pack", default=None, help="only this media pack hash")
    ap.add_argument("--ablation", action="store_true", help="Table-3 layout instead of Table 2")
    ap.add_argument("--ci", action="store_true", help="bootstrap 95%% CIs in the long CSV")
    args = ap.parse_args(argv)

    store = ResultStore(args.store)
    df, agg = store.scores_frame(), store.aggregates_frame()
    if args.pack is not None:
        df = df[df["pack_hash"] == args.pack]
    kw: dict[str, Any] = {"aggregates": agg, "ci": args.ci}
    if args.ablation:
        kw.update(layout=TABLE3_LAYOUT, include_extra=False)
    for n, board in enumerate(build_leaderboards(df, **kw)):
        board.print_rich()
        if args.out:
            for kind, path in board.write_all(args.out, stem=f"leaderboard_{n}" if n else "leaderboard").items():
                print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
