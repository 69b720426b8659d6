"""Leaderboard: Table-2 layout, x/y and '-' cells, arrows, coverage, counting rules, pack separation, writers."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from rich.console import Console

from iap_bench.leaderboard import (
    METRIC_LAYOUT,
    TABLE2_LAYOUT,
    bootstrap_ci,
    build_ablation_table,
    build_leaderboard,
    build_leaderboards,
    layout_from_config,
    leaderboard_from_store,
    newest_success,
    paired_test,
    per_item,
)
from iap_bench.leaderboard.__main__ import main as leaderboard_main
from iap_bench.store import AggregateRecord, ResultStore, SampleRecord, ScoreRecord, open_stores, set_hash

ROOT = Path(__file__).resolve().parents[2]
CK_A = "a1b2c3d4" + "0" * 56
CK_B = "ffee9988" + "1" * 56
PARAMS = "9a8b7c6d5e4f3a2b"
FAILED = "generation_failed: boom"


class Rows:
    """Builds a synthetic scores frame with the columns ResultStore.scores_frame() returns."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, model: str, item: str, split: str, metric: str, value: float | None, failure: str | None = None,
            backend: str = "reference", checkpoint: str = CK_A, version: str = "1", pack: str = "P1",
            bench: str = "iap-mini", seed: int = 0, params: str = PARAMS, sample: str | None = None,
            sample_failure: str | None = None, created: float = 0.0) -> None:
        self.rows.append({"sample_hash": sample or f"{model}|{item}|{pack}|{seed}", "inputs_hash": f"in|{item}",
                          "metric": metric, "backend": backend, "checkpoint": checkpoint, "params": params,
                          "version": version, "value": value, "failure": failure, "model": model,
                          "item_id": item, "split": split, "seed": seed, "pack_hash": pack, "benchmark": bench,
                          "sample_failure": sample_failure, "sample_created": created})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _put(st: ResultStore, model: str, item: str, value: float | None, failure: str | None = None, *,
         seed: int = 0, split: str = "single", metric: str = "wer", sample: str | None = None,
         inputs: str | None = None, created: float | None = None, sample_failure: str | None = None,
         params: str = PARAMS, pack: str = "P", bench: str = "iap-mini") -> str:
    """Register one sample (or failed generation) of (model, item, seed) and one score of it."""
    h = sample or f"{model}:{item}:{seed}"
    inputs = inputs or f"in:{item}"
    st.add_sample(SampleRecord(h, item, split, model, generator="g", seed=seed,
                               path=None if sample_failure else f"/x/{h}.mp4", pack_hash=pack, benchmark=bench,
                               inputs_hash=inputs, failure=sample_failure, created=created))
    st.put_score(ScoreRecord(h, inputs, metric, "sensevoice", CK_A, params, "1", value, failure))
    return h


def _split_values(rng: np.random.Generator, n_single: int = 7, n_multi: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.3, 0.8, n_single), rng.uniform(0.2, 0.7, n_multi)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _col(lb, header: str) -> int:  # noqa: ANN001 - Leaderboard
    return [c.header for c in lb.columns].index(header)


@pytest.fixture
def board_data() -> tuple[Rows, dict]:
    """ours: every metric; uni: audio+video, AID-SIM single only; phantom: video only.

    ours' multi VID-SIM has two items excluded (a reference fault outside the model): coverage 1/3 there.
    """
    rng = np.random.default_rng(7)
    r, truth = Rows(), {}
    for model in ("ours", "uni", "phantom"):
        s_vals, m_vals = _split_values(rng)
        for split, vals in (("single", s_vals), ("multi", m_vals)):
            for j, v in enumerate(vals):
                item = f"{split}{j}"
                if model == "ours" and split == "multi" and j > 0:
                    r.add(model, item, split, "vid_sim", None, "bad_reference: unreadable")
                else:
                    r.add(model, item, split, "vid_sim", float(v))
                if model != "phantom":
                    r.add(model, item, split, "pq", float(v * 10))
                    r.add(model, item, split, "wer", float(v / 3))
                if model == "ours" or (model == "uni" and split == "single"):
                    r.add(model, item, split, "aid_sim", float(v))
                if model == "uni" and split == "multi":
                    r.add(model, item, split, "aid_sim", None, "not_applicable")
        truth[model] = (s_vals, m_vals)
    return r, truth


# -- cells, coverage, layout ----------------------------------------------------------------------------


def test_cells_xy_dash_and_means(board_data: tuple[Rows, dict]) -> None:
    r, truth = board_data
    lb = build_leaderboard(r.frame())
    assert lb.notes == []  # every row has the same items, one seed each
    disp = lb.display_frame(show_coverage=False)
    s, m = truth["ours"]
    assert disp.loc["ours", "VID-SIM↑"] == f"{_fmt(s.mean())}/{_fmt(m[0])}"  # excluded items left out
    assert disp.loc["ours", "AID-SIM↑"] == f"{_fmt(s.mean())}/{_fmt(m.mean())}"
    # non-split metric: plain mean over all the model's items
    assert disp.loc["ours", "PQ↑"] == _fmt(np.concatenate([s, m]).mean() * 10)
    us, _ = truth["uni"]
    assert disp.loc["uni", "AID-SIM↑"] == f"{_fmt(us.mean())}/-"  # no multi values: '-' half
    assert disp.loc["phantom", "PQ↑"] == "-"
    assert disp.loc["phantom", "AID-SIM↑"] == "-"
    assert all(re.fullmatch(r"-|\d+\.\d{3}(/(\d+\.\d{3}|-))?", v) for v in disp.to_numpy().ravel())


def test_coverage_display(board_data: tuple[Rows, dict]) -> None:
    r, _ = board_data
    lb = build_leaderboard(r.frame())
    col = _col(lb, "VID-SIM↑")
    assert lb.excluded("ours", col) == (0, 2)
    assert lb.coverage("ours", col) == ((7, 7), (1, 3))
    assert lb.cell_text("ours", col).endswith(" [7/7|1/3]")
    assert lb.cell_text("ours", col, show_coverage=False) == lb.cell_value("ours", col)
    multi = lb.stat("ours", col, "multi")
    assert (multi.n, multi.n_items, multi.n_excluded, multi.coverage) == (1, 3, 2, pytest.approx(1 / 3))
    assert lb.stat("ours", col, "all").n == 8 and lb.stat("ours", col, "all").n_items == 10
    assert lb.coverage_text("uni", col) == ""  # full coverage: nothing shown
    aid = _col(lb, "AID-SIM↑")
    assert lb.excluded("uni", aid) == (0, 0)  # "not_applicable" is not an exclusion
    assert lb.coverage_text("uni", aid) == ""  # ... nor an item
    assert lb.stat("uni", aid, "multi") is None
    assert lb.coverage_text("phantom", _col(lb, "PQ↑")) == ""  # no cell, no coverage
    assert not any("excl." in v for v in lb.display_frame().to_numpy().ravel())
    assert any("[n/N] = coverage" in n for n in lb.footnotes())


def test_layout_order_arrows_and_extras() -> None:
    r = Rows()
    metrics = [c.metric for c in TABLE2_LAYOUT]
    for metric in [*reversed(metrics), "bind", "zz_custom"]:
        r.add("ours", "i0", "single", metric, 0.5)
    lb = build_leaderboard(r.frame())
    assert [c.key.metric for c in lb.columns] == [*metrics, "bind", "zz_custom"]
    headers = [c.header for c in lb.columns]
    assert headers[:12] == ["PQ↑", "CLAP↑", "FD↓", "WER↓", "AID-SIM↑", "AES↑", "DD↑", "OC↑", "VID-SIM↑",
                            "Sync-C↑", "Sync-D↓", "ImageBind↑"]
    assert headers[12] == "BIND-ACC↑" and headers[13] == "ZZ-CUSTOM"  # unknown direction: no arrow
    assert [g for g, _ in lb._groups()] == ["Audio", "Video", "Audio-Video", "Extra"]
    assert METRIC_LAYOUT == TABLE2_LAYOUT
    assert [c.header for c in build_leaderboard(r.frame(), include_extra=False).columns] == headers[:12]


def test_backends_and_checkpoints_never_mixed() -> None:
    r = Rows()
    ref = [0.6, 0.7, 0.8]
    off = [0.1, 0.2, 0.3]
    for j in range(3):
        r.add("ours", f"s{j}", "single", "vid_sim", ref[j], backend="reference", checkpoint=CK_A)
        r.add("ours", f"s{j}", "single", "vid_sim", off[j], backend="offline", checkpoint=CK_B)
        r.add("ours", f"s{j}", "single", "wer", 0.1, checkpoint=CK_A)
        r.add("ours", f"s{j}", "single", "wer", 0.3, checkpoint=CK_B)  # same backend, other weights
    lb = build_leaderboard(r.frame())
    headers = [c.header for c in lb.columns]
    assert headers == ["WER↓ [a1b2c3d4]", "WER↓ [ffee9988]", "VID-SIM↑ [offline ffee9988]",
                       "VID-SIM↑ [reference a1b2c3d4]"]
    disp = lb.display_frame()
    assert disp.loc["ours", "VID-SIM↑ [offline ffee9988]"] == f"{_fmt(np.mean(off))}/-"
    assert disp.loc["ours", "VID-SIM↑ [reference a1b2c3d4]"] == f"{_fmt(np.mean(ref))}/-"
    assert disp.loc["ours", "WER↓ [a1b2c3d4]"] == "0.100"
    notes = "\n".join(lb.footnotes())
    assert "backend offline, checkpoint ffee99881111" in notes
    assert "backend reference, checkpoint a1b2c3d40000" in notes
    # a version bump also splits the column
    r.add("ours", "s0", "single", "pq", 5.0, version="1")
    r.add("ours", "s0", "single", "pq", 6.0, version="2")
    heads = [c.header for c in build_leaderboard(r.frame()).columns]
    assert "PQ↑ [v1]" in heads and "PQ↑ [v2]" in heads


def test_identities_differing_only_in_params_are_two_columns(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    p1, p2 = "aaaaaa" + "1" * 10, "bbbbbb" + "2" * 10
    for j, (v1, v2) in enumerate(((0.1, 0.5), (0.3, 0.7))):
        h = _put(st, "m", f"i{j}", v1, params=p1)
        st.put_score(ScoreRecord(h, f"in:i{j}", "wer", "sensevoice", CK_A, p2, "1", v2))
    st.put_metric_params(p1, "wer", "sensevoice", {"params": {"beam": 1}, "aux": {}})
    st.put_metric_params(p2, "wer", "sensevoice", {"params": {"beam": 5}, "aux": {}})
    lb = leaderboard_from_store(st)
    assert [c.header for c in lb.columns] == ["WER↓ [p:aaaaaa]", "WER↓ [p:bbbbbb]"]
    disp = lb.display_frame()
    assert disp.loc["m", "WER↓ [p:aaaaaa]"] == "0.200" and disp.loc["m", "WER↓ [p:bbbbbb]"] == "0.600"
    notes = "\n".join(lb.footnotes())
    assert "params aaaaaa11 (beam=1)" in notes and "params bbbbbb22 (beam=5)" in notes
    long = lb.long_frame()
    assert set(long.params) == {p1, p2}


def test_pack_hashes_never_compared() -> None:
    r = Rows()
    r.add("ours", "s0", "single", "pq", 6.0, pack="PACK_A")
    r.add("ovi", "s0", "single", "pq", 5.0, pack="PACK_B")
    df = r.frame()
    with pytest.raises(ValueError, match="not comparable"):
        build_leaderboard(df)
    only_a = build_leaderboard(df, pack_hash="PACK_A")
    assert only_a.rows == ["ours"] and only_a.pack_hash == "PACK_A"
    boards = build_leaderboards(df)
    assert [(b.pack_hash, b.rows) for b in boards] == [("PACK_A", ["ours"]), ("PACK_B", ["ovi"])]
    assert "PACK_A" in boards[0].title and "media pack PACK_A" in boards[0].footnotes()[0]


# -- counting rules -------------------------------------------------------------------------------------


def test_failed_generation_retried_successfully_counts_once(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    # first run: i0's generation failed (penalised at WER's worst value); second run: it succeeded
    _put(st, "m", "i0", 1.0, FAILED, sample="failed:i0", sample_failure=FAILED)
    _put(st, "m", "i1", 0.4)
    _put(st, "m", "i0", 0.2)
    sf = st.samples_frame()
    assert len(sf[(sf.item_id == "i0")]) == 1 and sf.failure.isna().all()
    assert "failed:i0" not in set(st.scores_frame().sample_hash)
    lb = leaderboard_from_store(st)
    cell = lb.stat("m", 0, "all")
    assert (cell.n, cell.n_items, cell.n_penalised) == (2, 2, 0)
    assert lb.display_frame().loc["m", "WER↓"] == "0.300"
    assert not any("sample fault" in n and n[0].isdigit() for n in lb.footnotes())


def test_newest_success_rule_on_a_frame() -> None:
    """Pure rule (merged frames may still hold a failure): a success beats a newer failure; newest success wins."""
    r = Rows()
    r.add("m", "i0", "single", "wer", 0.3, sample="ok-old", created=10.0)
    r.add("m", "i0", "single", "wer", 1.0, FAILED, sample="failed", sample_failure=FAILED, created=30.0)
    r.add("m", "i0", "single", "wer", 0.1, sample="ok-new", created=20.0)
    r.add("m", "i1", "single", "wer", 1.0, FAILED, sample="failed1", sample_failure=FAILED, created=5.0)
    r.add("m", "i0", "single", "wer", 0.2, sample="seed1", seed=1, created=1.0)  # another seed: kept
    out = newest_success(r.frame())
    assert sorted(out.sample_hash) == ["failed1", "ok-new", "seed1"]
    items = per_item(out).set_index("item_id")
    assert items.loc["i0", "value"] == pytest.approx(0.15) and items.loc["i0", "n_seeds"] == 2
    assert items.loc["i1", "value"] == 1.0 and items.loc["i1", "penalised"] == 1  # failure counts while alone
    lb = build_leaderboard(r.frame())
    assert lb.display_frame().loc["m", "WER↓"] == _fmt((0.15 + 1.0) / 2)


def test_nondeterministic_regeneration_newest_sample_wins(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    _put(st, "m", "i0", 0.1, sample="regen-new", created=2000.0)  # stored first, generated later
    _put(st, "m", "i0", 0.9, sample="regen-old", created=1000.0)
    _put(st, "m", "i1", 0.5, created=1500.0)
    assert st.count("samples") == 3  # both generations of i0 are kept in the store ...
    lb = leaderboard_from_store(st)
    cell = lb.stat("m", 0, "all")
    assert cell.n == 2 and cell.n_items == 2  # ... but i0 counts once, with its newest sample
    assert cell.mean == pytest.approx(0.3)


def test_merged_overlapping_shards_count_each_item_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = ResultStore(tmp_path / "a.db"), ResultStore(tmp_path / "b.db")
    _put(a, "m", "i0", 0.0)
    _put(a, "m", "i1", 0.4, sample="same-i1", created=100.0)  # both shards produced the same content
    _put(a, "m", "i2", 0.9, sample="a-i2", created=100.0)  # regenerated differently in shard b
    _put(b, "m", "i1", 0.4, sample="same-i1", created=200.0)
    _put(b, "m", "i2", 0.3, sample="b-i2", created=200.0)
    _put(b, "m", "i3", 0.5)
    for st in (a, b):
        st.close()
    merged, report = open_stores([tmp_path / "a.db", tmp_path / "b.db"])
    assert report.conflicts == []
    lb = leaderboard_from_store(merged)
    cell = lb.stat("m", 0, "all")
    assert (cell.n, cell.n_items) == (4, 4)
    assert cell.mean == pytest.approx((0.0 + 0.4 + 0.3 + 0.5) / 4)
    # the CLI reads several stores as one
    assert leaderboard_main([str(tmp_path / "a.db"), str(tmp_path / "b.db"), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    csv = pd.read_csv(tmp_path / "o" / "leaderboard.csv", dtype=str)
    assert csv.iloc[0].tolist() == ["m", _fmt(1.2 / 4)]


def test_same_content_under_two_inputs_and_two_items(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    # one clip for two items with different references: two scores, neither overwrites the other
    _put(st, "m", "i0", 0.9, sample="clip", inputs="inA")
    _put(st, "m", "i1", 0.1, sample="clip", inputs="inB")
    # one clip for two items with the same inputs: one score, both items counted
    _put(st, "m", "i2", 0.6, sample="clip2", inputs="inC")
    _put(st, "m", "i3", 0.6, sample="clip2", inputs="inC")
    assert st.count("scores") == 3
    lb = leaderboard_from_store(st)
    cell = lb.stat("m", 0, "all")
    assert (cell.n, cell.n_items) == (4, 4) and cell.mean == pytest.approx((0.9 + 0.1 + 0.6 + 0.6) / 4)


def test_seeds_averaged_per_item_then_over_items() -> None:
    r = Rows()
    for seed in range(3):
        r.add("m", "A", "single", "wer", 1.0, seed=seed)
    r.add("m", "B", "single", "wer", 0.0)
    lb = build_leaderboard(r.frame(), ci=True, n_boot=1000, seed=0)
    cell = lb.stat("m", 0, "all")
    assert cell.mean == pytest.approx(0.5) and cell.n == 2 and cell.n_items == 2  # not 0.75 over 4 rows
    assert lb.display_frame().loc["m", "WER↓"] == "0.500"
    # the CI resamples the 2 items, not the 4 rows
    assert (cell.ci_low, cell.ci_high) == bootstrap_ci(np.array([1.0, 0.0]), n_boot=1000, seed=0) == (0.0, 1.0)
    assert any("up to 3 seeds per item" in n for n in lb.notes)
    res = paired_test(r.frame().assign(model="m"), "m", "m", "wer")
    assert res.n_items == 2  # paired test also pairs items, not seeds


def test_excluded_and_penalised_failures(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    for model, last in (("excl", (None, "unsupported_language: xx")), ("pen", (1.0, "silent"))):
        for j, v in enumerate((0.2, 0.4, 0.0)):
            _put(st, model, f"i{j}", v)
        _put(st, model, "i3", *last)
    lb = leaderboard_from_store(st)
    disp = lb.display_frame()
    assert disp.loc["excl", "WER↓"] == "0.200 [3/4]"  # a fault outside the model: excluded, coverage shown
    assert disp.loc["pen", "WER↓"] == "0.400"  # a sample fault at the worst value counts in n and the mean
    ex, pen = lb.stat("excl", 0, "all"), lb.stat("pen", 0, "all")
    assert (ex.n, ex.n_items, ex.n_excluded, ex.n_penalised) == (3, 4, 1, 0)
    assert (pen.n, pen.n_items, pen.n_excluded, pen.n_penalised) == (4, 4, 0, 1)
    assert "1 sample fault(s) counted at the metric's worst value (see the long CSV)" in lb.footnotes()
    assert not any("item sets" in n for n in lb.notes)  # same items: an excluded item is still an item
    # the benchmark's item count can be given: coverage against it
    lb = leaderboard_from_store(st, items={"single": 5})
    assert lb.display_frame().loc["pen", "WER↓"] == "0.400 [4/5]"


def test_rows_on_different_item_sets_are_flagged_or_restricted() -> None:
    r = Rows()
    for j, v in enumerate((0.1, 0.2, 0.6, 0.7)):
        r.add("a", f"i{j}", "single", "wer", v)
    for j, v in enumerate((0.3, 0.5)):
        r.add("b", f"i{j}", "single", "wer", v)
    lb = build_leaderboard(r.frame())
    assert any("different item sets (a: 4, b: 2; 2 shared)" in n for n in lb.notes)
    assert any("common_items" in n for n in lb.footnotes())
    disp = lb.display_frame()
    assert disp.loc["a", "WER↓"] == "0.400" and disp.loc["b", "WER↓"] == "0.400 [2/4]"
    common = build_leaderboard(r.frame(), common_items=True)
    disp = common.display_frame()
    assert disp.loc["a", "WER↓"] == "0.150" and disp.loc["b", "WER↓"] == "0.400"
    assert any("restricted to the 2 items every row has" in n for n in common.notes)
    assert not any("different item sets" in n for n in common.notes)


def test_unfinished_run_marks_its_row(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    st.add_run("r1", {}, {}, label="m", benchmark="iap-mini")
    st.add_run("r0", {}, {}, label="done", benchmark="iap-mini")
    st.finish_run("r0")
    _put(st, "m", "i0", 0.2)
    _put(st, "done", "i0", 0.3)
    lb = leaderboard_from_store(st)
    assert list(lb.display_frame().index) == ["done", "m *"]
    star = [n for n in lb.footnotes() if n.startswith("* =")]
    assert len(star) == 1 and "has not finished" in star[0]
    assert "| m *" in lb.to_markdown() and r"m * &" in lb.to_latex()
    long = lb.long_frame().set_index("Models")
    assert long.loc[["m"], "incomplete"].all() and not long.loc[["done"], "incomplete"].any()
    st.finish_run("r1")
    lb = leaderboard_from_store(st)
    assert list(lb.display_frame().index) == ["done", "m"]
    assert not any(n.startswith("* =") for n in lb.footnotes())


# -- writers and rendering ------------------------------------------------------------------------------


def test_writers_round_trip(board_data: tuple[Rows, dict], tmp_path: Path) -> None:
    r, truth = board_data
    lb = build_leaderboard(r.frame(), ci=True, title="Table 2: synthetic")
    paths = lb.write_all(tmp_path / "out")
    assert set(paths) == {"csv", "long_csv", "markdown", "latex"} and all(p.exists() for p in paths.values())

    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False).set_index("Models")
    assert csv.equals(lb.display_frame())
    assert csv.loc["ours", "VID-SIM↑"].endswith("[7/7|1/3]")

    long = pd.read_csv(paths["long_csv"])
    sel = long[(long.Models == "ours") & (long.metric == "vid_sim") & (long.split == "multi")].iloc[0]
    assert sel.value == pytest.approx(truth["ours"][1][0]) and sel.n == 1 and sel.n_excluded == 2
    assert sel.n_items == 3 and sel.coverage == pytest.approx(1 / 3)
    assert np.isnan(sel.ci_low)  # one item: no CI
    single = long[(long.Models == "ours") & (long.metric == "vid_sim") & (long.split == "single")].iloc[0]
    assert single.value == pytest.approx(truth["ours"][0].mean()) and single.n == 7
    assert single.ci_low <= single.value <= single.ci_high
    assert sel.backend == "reference" and sel.checkpoint == CK_A and sel.params == PARAMS

    md = paths["markdown"].read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + len(lb.rows)
    others = [ln for i, ln in enumerate(table) if i < 2 or lb.rows[i - 2] != "ours"]
    assert all(ln.count("|") == len(lb.columns) + 2 for ln in others)
    cells = [c.strip() for c in table[2 + lb.rows.index("uni")].strip("|").split("|")]
    assert cells[0] == "uni" and cells[1:] == [lb.cell_text("uni", i) for i in range(len(lb.columns))]
    assert "Groups: Audio: PQ↑, WER↓, AID-SIM↑ | Video: VID-SIM↑" in md

    tex = paths["latex"].read_text()
    assert r"\multicolumn{3}{c}{Audio}" in tex and r"\multicolumn{1}{c}{Video}" in tex
    assert r"WER$\downarrow$" in tex and r"PQ$\uparrow$" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(lb.rows)
    assert all(ln.count("&") == len(lb.columns) for ln in body)
    assert r"\textsuperscript{7/7" in tex and "Superscript n/N = coverage" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1


def test_markdown_cells_with_split_coverage_keep_the_table_shape(board_data: tuple[Rows, dict]) -> None:
    r, _ = board_data
    lb = build_leaderboard(r.frame())
    table = [ln for ln in lb.to_markdown().splitlines() if ln.startswith("|")]
    unescaped = [len(re.findall(r"(?<!\\)\|", ln)) for ln in table]
    assert unescaped == [len(lb.columns) + 2] * len(table)


def test_latex_escapes_labels() -> None:
    r = Rows()
    r.add("iap:ckpt_a & b", "s0", "single", "pq", 6.0)
    tex = build_leaderboard(r.frame()).to_latex()
    assert r"iap:ckpt\_a \& b &" in tex


def test_rich_rendering(board_data: tuple[Rows, dict]) -> None:
    r, _ = board_data
    lb = build_leaderboard(r.frame(), title="Table 2")
    console = Console(record=True, width=250, file=io.StringIO())
    lb.print_rich(console)
    text = console.export_text()
    for token in ("Audio", "Video", "PQ↑", "WER↓", "AID-SIM↑", "ours", "phantom", "[7/7|1/3]",
                  lb.cell_value("ours", 0), "checkpoint a1b2c3d40000", "Table 2"):
        assert token in text, token


def test_rich_keeps_bracketed_suffixes() -> None:
    r = Rows()
    r.add("ours", "s0", "single", "vid_sim", 0.5, backend="offline")
    r.add("ours", "s0", "single", "vid_sim", 0.6, backend="reference")
    console = Console(record=True, width=250, file=io.StringIO())
    build_leaderboard(r.frame()).print_rich(console)
    text = console.export_text()
    assert "[offline]" in text and "[reference]" in text  # not swallowed as rich markup


# -- statistics, ablation, aggregates, paired test --------------------------------------------------------


def test_bootstrap_ci_properties() -> None:
    v = np.random.default_rng(0).normal(1.0, 0.1, 200)
    lo, hi = bootstrap_ci(v, n_boot=500)
    assert lo < v.mean() < hi and hi - lo < 0.1
    assert bootstrap_ci(np.array([1.0])) == (None, None)
    assert bootstrap_ci(np.full(10, 2.0)) == (2.0, 2.0)


def test_ablation_table_rows_and_columns() -> None:
    r = Rows()
    for model, base in (("w/o SA", 0.4), ("Two-stage", 0.6), ("Multi-view", 0.65)):
        for split, off in (("single", 0.0), ("multi", -0.1)):
            for metric in ("wer", "aid_sim", "vid_sim", "sync_c", "sync_d", "pq", "bind"):
                r.add(model, f"{split}0", split, metric, base + off)
    order = ["w/o SA", "Two-stage", "Multi-view"]
    lb = build_ablation_table(r.frame(), rows=order, label_name="Checkpoint")
    assert lb.rows == order
    assert [c.header for c in lb.columns] == ["WER↓", "AID-SIM↑", "VID-SIM↑", "Sync-C↑", "Sync-D↓"]
    disp = lb.display_frame()
    assert disp.index.name == "Checkpoint"
    assert disp.loc["Two-stage", "AID-SIM↑"] == "0.600/0.500"
    assert disp.loc["Two-stage", "WER↓"] == "0.550"


def test_from_store_with_set_level_value(tmp_path: Path) -> None:
    """A set-level column is computed from the current takes' stored extras; a stored value for another
    sample set is never shown (it is only a cache for its own set)."""
    import test_setlevel  # noqa: F401  registers the toy set-level metric toyset/toy

    st = ResultStore(tmp_path / "s.db")
    st.put_metric_params("P", "toyset", "toy", {"params": {"offset": 0.0}, "aux": {}})
    for model, base in (("cascade", 1.0), ("iap:ckpt_a", 0.25)):
        hashes = []
        for j in range(4):
            h = f"{model}-{j}"
            hashes.append(h)
            st.add_sample(SampleRecord(h, f"i{j}", "single" if j < 3 else "multi", model, pack_hash="P",
                                       benchmark="iap-mini", inputs_hash=f"in{j}"))
            st.put_score(ScoreRecord(h, f"in{j}", "pq", "audiobox", CK_A, "pp", "1", 5.0 + j))
            if j == 0:  # no audio: an unbounded metric has no worst value, so the sample is excluded
                st.put_score(ScoreRecord(h, f"in{j}", "toyset", "toy", CK_B, "P", "1", None, "no_audio"))
            else:
                st.put_score(ScoreRecord(h, f"in{j}", "toyset", "toy", CK_B, "P", "1", None, None,
                                         extras={"x": base}))
        st.put_aggregate(AggregateRecord(model, "iap-mini", "all", "P", "toyset", "toy", CK_B, "P", "1",
                                         set_hash(["stale"]), 99.0, created=9e9))
    lb = leaderboard_from_store(st)
    disp = lb.display_frame()
    col = next(c for c in disp.columns if c.startswith("TOYSET"))
    assert disp.loc["cascade", col].startswith("3.000")  # 3 counted samples x 1.0, not the stale 99
    assert disp.loc["iap:ckpt_a", col].startswith("0.750")
    assert disp.loc["cascade", "PQ↑"] == "6.500"
    long = lb.long_frame()
    cell = long[(long.metric == "toyset") & (long.Models == "cascade") & (long.split == "all")].iloc[0]
    assert cell.source == "aggregate" and cell.n_excluded == 1


def test_paired_test() -> None:
    r = Rows()
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 30)
    for j, v in enumerate(base):
        r.add("a", f"s{j}", "single", "vid_sim", float(v) + 0.1)
        r.add("b", f"s{j}", "single", "vid_sim", float(v))
        r.add("c", f"s{j}", "single", "vid_sim", float(v))
    r.add("a", "only_a", "single", "vid_sim", 5.0)  # not shared: ignored by the paired test
    res = paired_test(r.frame(), "a", "b", "vid_sim", "single", n_resamples=2000)
    assert res.n_items == 30 and res.mean_diff == pytest.approx(0.1)
    assert res.p_value < 0.01 and res.ci_low <= 0.1 <= res.ci_high
    same = paired_test(r.frame(), "b", "c", "vid_sim")
    assert same.mean_diff == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)
    none = paired_test(r.frame(), "a", "zz", "vid_sim")
    assert none.n_items == 0 and none.mean_diff is None
    r.add("a", "s0", "single", "vid_sim", 0.5, backend="offline")
    with pytest.raises(ValueError, match="identities"):
        paired_test(r.frame(), "a", "b", "vid_sim")
    assert paired_test(r.frame(), "a", "b", "vid_sim", backend="reference").n_items == 30


def test_config_layout_matches_table2() -> None:
    cfg = OmegaConf.load(ROOT / "conf" / "leaderboard" / "default.yaml")
    layout = layout_from_config(OmegaConf.to_container(cfg.layout))
    assert layout == TABLE2_LAYOUT


def test_missing_columns_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        build_leaderboard(pd.DataFrame({"metric": ["pq"], "value": [1.0]}))


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_writes_one_board_per_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = ResultStore(tmp_path / "s.db")
    for pack in ("PA", "PB"):
        for j in range(3):
            h = f"{pack}-{j}"
            st.add_sample(SampleRecord(h, f"i{j}", "single", "cascade", pack_hash=pack, benchmark="b",
                                       inputs_hash=f"in{j}"))
            st.put_score(ScoreRecord(h, f"in{j}", "wer", "sensevoice", CK_A, "pp", "1", 0.1 * (j + 1)))
    st.close()
    assert leaderboard_main([str(tmp_path / "s.db"), "--out", str(tmp_path / "out"), "--ci"]) == 0
    out = capsys.readouterr().out
    assert "pack PA" in out and "pack PB" in out
    for stem in ("leaderboard", "leaderboard_1"):
        csv = pd.read_csv(tmp_path / "out" / f"{stem}.csv", dtype=str)
        assert list(csv.columns) == ["Models", "WER↓"] and csv.iloc[0, 1] == "0.200"
        assert (tmp_path / "out" / f"{stem}_long.csv").exists()
    assert leaderboard_main([str(tmp_path / "s.db"), "--pack", "PB"]) == 0
    out = capsys.readouterr().out
    assert "pack PB" in out and "pack PA" not in out


def test_cli_bad_store_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert leaderboard_main([str(tmp_path / "absent.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no result store")
    assert not (tmp_path / "absent.db").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a store\n")
    assert leaderboard_main([str(notes)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an IAP-Bench result store" in err[0]


def test_cli_prints_merge_conflicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in (("a.db", 0.25), ("b.db", 0.75)):
        st = ResultStore(tmp_path / name)
        _put(st, "m", "i0", value, sample="abcdef0123456789")
        st.close()
    assert leaderboard_main([str(tmp_path / "a.db"), str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert "conflict: wer/sensevoice sample abcdef012345: 0.25 vs 0.75" in out
    assert "0.250" in out  # the first store's value is shown
