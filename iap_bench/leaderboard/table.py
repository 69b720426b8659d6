"""A built leaderboard and its renderers (terminal, CSV, Markdown, LaTeX); layouts of Tables 2 and 3.

A cell is the mean over items of per-item values (seeds averaged first; FD: the stored dataset-level
value). Split metrics are shown as ``single/multi``; ``-`` marks a half or cell without values; ``[n/N]``
gives the coverage (items scored / items) where it is below 100 %. A column is one metric *identity*
(metric, backend, checkpoint, params, version): identities are never pooled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from iap_bench.leaderboard.stats import CellStat

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Direction = Literal["higher", "lower"]
SPLITS = ("single", "multi")
ALL = "all"
ARROWS = {"higher": "↑", "lower": "↓", None: ""}
LATEX_ARROWS = {"higher": r"$\uparrow$", "lower": r"$\downarrow$", None: ""}


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
    "fd_passt": MetricColumn("fd_passt", "FD-PaSST", EXTRA_GROUP, "lower"),
    "sync_offline": MetricColumn("sync_offline", "Sync-offline", EXTRA_GROUP, "higher"),
    "fd_pann": MetricColumn("fd_pann", "FD-PANN", EXTRA_GROUP, "lower"),
    "bind": MetricColumn("bind", "BIND-ACC", EXTRA_GROUP, "higher", split_cells=True),
    "turn_acc": MetricColumn("turn_acc", "TURN-ACC", EXTRA_GROUP, "higher", split_cells=True),
    "spurious_lip": MetricColumn("spurious_lip", "SPURIOUS-LIP", EXTRA_GROUP, "lower", split_cells=True),
}


@dataclass(frozen=True)
class ColumnKey:
    """A metric identity: the unit that is never mixed within one column."""

    metric: str
    backend: str
    checkpoint: str
    params: str
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
    incomplete: frozenset[str] = frozenset()  # rows whose newest run is unfinished (still writing or killed)
    params_info: dict[str, dict[str, Any]] = field(default_factory=dict)  # params hash -> what it stands for

    def row_name(self, row: str) -> str:
        """Row title as displayed: '*' marks a row whose run is still writing or was interrupted."""
        return f"{row} *" if row in self.incomplete else row

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

    def coverage(self, row: str, col: int) -> tuple[tuple[int, int], ...]:
        """(items scored, items) behind a cell, one pair per displayed split (splits without items skipped)."""
        column = self.columns[col]
        out = []
        for sp in self._cell_splits(column):
            s = self.stat(row, col, sp)
            if s is not None and s.source == "mean" and s.n_items:
                out.append((s.n, s.n_items))
        return tuple(out)

    def excluded(self, row: str, col: int) -> tuple[int, ...]:
        """Excluded-item counts behind a cell, one per displayed split."""
        column = self.columns[col]
        return tuple((s.n_excluded if (s := self.stat(row, col, sp)) else 0) for sp in self._cell_splits(column))

    def coverage_text(self, row: str, col: int) -> str:
        """'[n/N]' (or '[n/N|m/M]' for split cells) when any split has coverage below 100 %, else ''."""
        cov = self.coverage(row, col)
        if not cov or all(n >= total for n, total in cov):
            return ""
        return "[" + "|".join(f"{n}/{total}" for n, total in cov) + "]"

    def cell_text(self, row: str, col: int, show_coverage: bool = True) -> str:
        text = self.cell_value(row, col)
        cov = self.coverage_text(row, col) if show_coverage else ""
        return f"{text} {cov}" if cov else text

    # -- frames -----------------------------------------------------------------------------------
    def display_frame(self, show_coverage: bool = True, grouped: bool = False) -> pd.DataFrame:
        """Strings as shown; columns are headers, or (group, header) pairs when ``grouped``."""
        data = {(c.spec.group, c.header) if grouped else c.header:
                [self.cell_text(r, i, show_coverage) for r in self.rows] for i, c in enumerate(self.columns)}
        df = pd.DataFrame(data, index=pd.Index([self.row_name(r) for r in self.rows], name=self.label_name))
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
                                 "checkpoint": c.key.checkpoint, "params": c.key.params,
                                 "version": c.key.version, "direction": c.spec.direction, "split": sp,
                                 "value": s.mean, "n": s.n, "n_items": s.n_items, "coverage": s.coverage,
                                 "n_excluded": s.n_excluded, "n_penalised": s.n_penalised,
                                 "ci_low": s.ci_low, "ci_high": s.ci_high, "source": s.source,
                                 "incomplete": r in self.incomplete, "benchmark": self.benchmark,
                                 "pack_hash": self.pack_hash})
        return pd.DataFrame(recs)

    # -- notes ------------------------------------------------------------------------------------
    def footnotes(self) -> list[str]:
        """Provenance of every column, cell conventions and build notes."""
        out = [f"benchmark {self.benchmark or '?'}; media pack {self.pack_hash[:12] or 'unbound'}",
               "x/y = single-subject / multi-subject items (never pooled); other cells = mean over items "
               "(seeds averaged per item first); '-' = no value",
               "[n/N] = coverage: items scored / items, shown when below 100 %; a fault of the generated sample "
               "(silence, no speech, no face, undecodable, failed generation) scores the metric's worst value; "
               "faults outside the model are excluded"]
        pen = sum(s.n_penalised for (r, i, sp), s in self.stats.items() if sp == ALL)
        if pen:
            out.append(f"{pen} sample fault(s) counted at the metric's worst value (see the long CSV)")
        if self.incomplete:
            out.append("* = the row's newest run has not finished (still writing, or interrupted): "
                       "numbers may change")
        for c in self.columns:
            agg = any(s.source == "aggregate" for (r, i, sp), s in self.stats.items() if self.columns[i] is c)
            extra = ""
            info = self.params_info.get(c.key.params)
            if info:
                extra = f" {_short_params(info)}"
            out.append(f"{c.header}: backend {c.key.backend}, checkpoint {c.key.checkpoint[:12]}, "
                       f"params {c.key.params[:8]}{extra}, version {c.key.version}"
                       + (" (dataset-level value)" if agg else ""))
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
                 _md_escape(self.display_frame()).to_markdown(disable_numparse=True), ""]
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
                cov = self.coverage_text(r, i)
                if cov:
                    cell += r"\textsuperscript{" + latex_escape(cov.strip("[]")) + "}"
                cells.append(cell)
            lines.append(latex_escape(self.row_name(r)) + " & " + " & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize"]
        notes = [n.replace("[n/N] =", "Superscript n/N =") for n in self.footnotes()]
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
            cells: list[Text] = [Text(self.row_name(r))]
            for i in range(len(self.columns)):
                t = Text(self.cell_value(r, i))
                cov = self.coverage_text(r, i)
                if cov:
                    t.append(" " + cov, style="yellow")
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
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "|": r"\textbar{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))




def _short_params(info: Mapping[str, Any]) -> str:
    """Compact 'k=v' list of a metric's parameters for a footnote (auxiliary identities left to the CSV)."""
    params = info.get("params", {}) if isinstance(info, Mapping) else {}
    return "(" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + ")" if params else ""


def _md_escape(df: pd.DataFrame) -> pd.DataFrame:
    """Escape '|' (used in split coverage) so a Markdown cell stays one cell."""
    out = df.map(lambda v: str(v).replace("|", r"\|"))
    out.index = out.index.map(lambda v: str(v).replace("|", r"\|"))
    return out
