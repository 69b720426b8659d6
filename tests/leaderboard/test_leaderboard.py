"""Leaderboard: Table-2 layout, x/y and '-' cells, arrows, exclusions, backend/pack separation, writers."""

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
    paired_test,
)
from iap_bench.store import AggregateRecord, ResultStore, SampleRecord, ScoreRecord, set_hash

ROOT = Path(__file__).resolve().parents[2]
CK_A = "a1b2c3d4" + "0" * 56
CK_B = "ffee9988" + "1" * 56


class Rows:
    """Builds a synthetic scores frame with the columns ResultStore.scores_frame() returns."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, model: str, item: str, split: str, metric: str, value: float | None, failure: str | None = None,
            backend: str = "reference", checkpoint: str = CK_A, version: str = "1", pack: str = "P1",
            bench: str = "iap-mini") -> None:
        self.rows.append({"sample_hash": f"{model}|{item}|{pack}", "metric": metric, "backend": backend,
                          "checkpoint": checkpoint, "version": version, "value": value, "failure": failure,
                          "model": model, "item_id": item, "split": split, "pack_hash": pack,
                          "benchmark": bench})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _split_values(rng: np.random.Generator, n_single: int = 7, n_multi: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0.3, 0.8, n_single), rng.uniform(0.2, 0.7, n_multi)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


@pytest.fixture
def board_data() -> tuple[Rows, dict]:
    """ours: every metric; uni: audio+video, AID-SIM single only; phantom: video only; some failures."""
    rng = np.random.default_rng(7)
    r, truth = Rows(), {}
    for model in ("ours", "uni", "phantom"):
        s_vals, m_vals = _split_values(rng)
        for split, vals in (("single", s_vals), ("multi", m_vals)):
            for j, v in enumerate(vals):
                item = f"{split}{j}"
                r.add(model, item, split, "vid_sim", float(v))
                if model != "phantom":
                    r.add(model, item, split, "pq", float(v * 10))
                    r.add(model, item, split, "wer", float(v / 3))
                if model == "ours" or (model == "uni" and split == "single"):
                    r.add(model, item, split, "aid_sim", float(v))
                if model == "uni" and split == "multi":
                    r.add(model, item, split, "aid_sim", None, "not_applicable")
        truth[model] = (s_vals, m_vals)
    # two failures on ours' multi VID-SIM (recorded with reasons, excluded from the mean)
    r.add("ours", "multiX", "multi", "vid_sim", None, "no_face")
    r.add("ours", "multiY", "multi", "vid_sim", None, "no_face")
    return r, truth


def test_cells_xy_dash_and_means(board_data: tuple[Rows, dict]) -> None:
    r, truth = board_data
    lb = build_leaderboard(r.frame())
    disp = lb.display_frame(show_excluded=False)
    s, m = truth["ours"]
    assert disp.loc["ours", "VID-SIM↑"] == f"{_fmt(s.mean())}/{_fmt(m.mean())}"
    assert disp.loc["ours", "AID-SIM↑"] == f"{_fmt(s.mean())}/{_fmt(m.mean())}"
    # non-split metric: plain mean over all the model's items
    assert disp.loc["ours", "PQ↑"] == _fmt(np.concatenate([s, m]).mean() * 10)
    us, _ = truth["uni"]
    assert disp.loc["uni", "AID-SIM↑"] == f"{_fmt(us.mean())}/-"  # no multi values: '-' half
    assert disp.loc["phantom", "PQ↑"] == "-"
    assert disp.loc["phantom", "AID-SIM↑"] == "-"
    assert all(re.fullmatch(r"-|\d+\.\d{3}(/(\d+\.\d{3}|-))?", v) for v in disp.to_numpy().ravel())


def test_excluded_counts(board_data: tuple[Rows, dict]) -> None:
    r, _ = board_data
    lb = build_leaderboard(r.frame())
    col = [c.header for c in lb.columns].index("VID-SIM↑")
    assert lb.excluded("ours", col) == (0, 2)
    assert lb.cell_text("ours", col).endswith("(0/2 excl.)")
    aid = [c.header for c in lb.columns].index("AID-SIM↑")
    assert lb.excluded("uni", aid) == (0, 0)  # "not_applicable" is not an exclusion
    assert lb.stat("ours", col, "multi").n == 3


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


def test_writers_round_trip(board_data: tuple[Rows, dict], tmp_path: Path) -> None:
    r, truth = board_data
    lb = build_leaderboard(r.frame(), ci=True, title="Table 2: synthetic")
    paths = lb.write_all(tmp_path / "out")
    assert set(paths) == {"csv", "long_csv", "markdown", "latex"} and all(p.exists() for p in paths.values())

    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False).set_index("Models")
    assert csv.equals(lb.display_frame())
    assert csv.loc["ours", "VID-SIM↑"].endswith("(0/2 excl.)")

    long = pd.read_csv(paths["long_csv"])
    sel = long[(long.Models == "ours") & (long.metric == "vid_sim") & (long.split == "multi")].iloc[0]
    assert sel.value == pytest.approx(truth["ours"][1].mean()) and sel.n == 3 and sel.n_excluded == 2
    assert sel.ci_low <= sel.value <= sel.ci_high
    assert sel.backend == "reference" and sel.checkpoint == CK_A

    md = paths["markdown"].read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + len(lb.rows)
    assert all(ln.count("|") == len(lb.columns) + 2 for ln in table)
    cells = [c.strip() for c in table[2 + lb.rows.index("ours")].strip("|").split("|")]
    assert cells[0] == "ours" and cells[1:] == [lb.cell_text("ours", i) for i in range(len(lb.columns))]
    assert "Groups: Audio: PQ↑, WER↓, AID-SIM↑ | Video: VID-SIM↑" in md

    tex = paths["latex"].read_text()
    assert r"\multicolumn{3}{c}{Audio}" in tex and r"\multicolumn{1}{c}{Video}" in tex
    assert r"WER$\downarrow$" in tex and r"PQ$\uparrow$" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(lb.rows)
    assert all(ln.count("&") == len(lb.columns) for ln in body)
    assert r"\textsuperscript{0/2}" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1


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
    for token in ("Audio", "Video", "PQ↑", "WER↓", "AID-SIM↑", "ours", "phantom", "(0/2 excl.)",
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


def test_from_store_with_fd_aggregate(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.db")
    for model, fd in (("cascade", 1.131), ("iap:ckpt_a", 0.729)):
        hashes = []
        for j in range(4):
            h = f"{model}-{j}"
            hashes.append(h)
            st.add_sample(SampleRecord(h, f"i{j}", "single" if j < 3 else "multi", model, pack_hash="P",
                                       benchmark="iap-mini"))
            st.put_score(ScoreRecord(h, "pq", "audiobox", CK_A, "1", 5.0 + j))
        # FD: a per-sample failure (no audio) plus one dataset-level value
        st.put_score(ScoreRecord(hashes[0], "fd", "vgg", CK_B, "1", None, "no_audio"))
        st.put_aggregate(AggregateRecord(model, "iap-mini", "all", "P", "fd", "vgg", CK_B, "1",
                                         set_hash(hashes[1:]), fd))
    lb = leaderboard_from_store(st)
    disp = lb.display_frame()
    assert disp.loc["cascade", "FD↓"] == "1.131 (1 excl.)"
    assert disp.loc["iap:ckpt_a", "FD↓"] == "0.729 (1 excl.)"
    assert disp.loc["cascade", "PQ↑"] == "6.500"
    assert any("dataset-level" in n and n.startswith("FD↓") for n in lb.footnotes())


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
    assert res.p_value < 0.01
    same = paired_test(r.frame(), "b", "c", "vid_sim")
    assert same.mean_diff == pytest.approx(0.0) and same.p_value == pytest.approx(1.0)


def test_config_layout_matches_table2() -> None:
    cfg = OmegaConf.load(ROOT / "conf" / "leaderboard" / "default.yaml")
    layout = layout_from_config(OmegaConf.to_container(cfg.layout))
    assert layout == TABLE2_LAYOUT


def test_missing_columns_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        build_leaderboard(pd.DataFrame({"metric": ["pq"], "value": [1.0]}))


def test_cli_writes_one_board_per_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from iap_bench.leaderboard import main

    st = ResultStore(tmp_path / "s.db")
    for pack in ("PA", "PB"):
        for j in range(3):
            h = f"{pack}-{j}"
            st.add_sample(SampleRecord(h, f"i{j}", "single", "cascade", pack_hash=pack, benchmark="b"))
            st.put_score(ScoreRecord(h, "wer", "sensevoice", CK_A, "1", 0.1 * (j + 1)))
    assert main([str(tmp_path / "s.db"), "--out", str(tmp_path / "out"), "--ci"]) == 0
    out = capsys.readouterr().out
    assert "pack PA" in out and "pack PB" in out
    for stem in ("leaderboard", "leaderboard_1"):
        csv = pd.read_csv(tmp_path / "out" / f"{stem}.csv", dtype=str)
        assert list(csv.columns) == ["Models", "WER↓"] and csv.iloc[0, 1] == "0.200"
