"""Runner-level guarantees: scores keyed by the item's inputs, verified reuse, failure policy, transient errors.

Each test pins a defect of the earlier harness (issue "Numbers a researcher can trust", items 1, 3, 6, 7).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from iap_bench.generators.precomputed import PrecomputedGenerator
from iap_bench.leaderboard import build_leaderboard
from iap_bench.runner import Runner
from iap_bench.store import ResultStore
from tests.trust.trust_helpers import CountingMetric, mini, with_transcript, write_sample

QUIET = Console(quiet=True)


def _run(bench, store, tmp: Path, samples: Path, label: str, metrics, items=None, run: str = "r"):
    runner = Runner(bench, store, tmp / run, console=QUIET)
    gen = PrecomputedGenerator(samples, label=label)
    refs = runner.generate(gen, label, list(items or bench.items[:2]), run)
    runner.evaluate(refs, metrics, run)
    return runner.summary, refs


@pytest.fixture
def setup(tmp_path: Path):
    bench = mini()
    items = [i for i in bench.items if i.split == "single"][:2]
    samples = tmp_path / "samples"
    for it in items:
        write_sample(samples / f"{it.id}.mp4", it)
    return bench, items, samples, ResultStore(tmp_path / "s.sqlite")


def test_corrected_transcript_recomputes_and_restoring_reuses(setup, tmp_path: Path) -> None:
    """Item 1: a score depends on the item's text and references, not only on the sample's bytes."""
    bench, items, samples, store = setup
    m = CountingMetric()
    _run(bench, store, tmp_path, samples, "x", [m], items)
    assert len(m.calls) == 2
    fixed = with_transcript(bench, items[0].id, "a corrected first line")
    s2, _ = _run(fixed, store, tmp_path, samples, "x", [m], [fixed.item(items[0].id), items[1]], run="r2")
    assert m.calls[2:] == [items[0].id] and s2.skipped_scores == 1  # only the changed item is rescored
    s3, _ = _run(bench, store, tmp_path, samples, "x", [m], items, run="r3")
    assert len(m.calls) == 3 and s3.skipped_scores == 2  # the original text's scores are still there
    assert store.count("scores") == 3


def test_two_items_with_identical_content_are_both_scored(setup, tmp_path: Path) -> None:
    """Item 1: two items whose samples have the same bytes never overwrite each other."""
    bench, items, samples, store = setup
    (samples / f"{items[1].id}.mp4").write_bytes((samples / f"{items[0].id}.mp4").read_bytes())
    _run(bench, store, tmp_path, samples, "x", [CountingMetric()], items)
    df = store.scores_frame()
    assert sorted(df["item_id"]) == sorted(i.id for i in items)
    board = build_leaderboard(df, bench.name, bench.pack_hash)
    assert board.stat("x", 0, "all").n == 2


def test_replaced_precomputed_file_is_rescored_and_never_hard_linked(setup, tmp_path: Path) -> None:
    """Item 3: a sample replaced in place is a new sample; the user's file is copied, not linked."""
    bench, items, samples, store = setup
    m = CountingMetric()
    _, refs = _run(bench, store, tmp_path, samples, "x", [m], items)
    src = samples / f"{items[0].id}.mp4"
    assert all(os.stat(r.path).st_ino != os.stat(samples / r.path.name).st_ino for r in refs)
    old_hash = refs[0].sample_hash
    write_sample(src, items[0], tweak=200)  # same name, new bytes
    s2, refs2 = _run(bench, store, tmp_path, samples, "x", [m], items, run="r2")
    assert refs2[0].sample_hash != old_hash and s2.generated == 1 and s2.reused == 1
    assert m.calls[2:] == [items[0].id]
    board = build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash)
    assert board.stat("x", 0, "all").n == 2  # the new content replaced the old one: no double count


def test_changed_run_dir_sample_is_not_trusted(setup, tmp_path: Path) -> None:
    """Item 3: a generated sample edited on disk is regenerated before it is scored again."""
    bench, items, samples, store = setup
    _, refs = _run(bench, store, tmp_path, samples, "x", [CountingMetric()], items)
    with open(refs[0].path, "ab") as f:
        f.write(b"tampered")
    s2, refs2 = _run(bench, store, tmp_path, samples, "x", [CountingMetric()], items, run="r2")
    assert s2.changed_on_disk == 1 and s2.generated == 1 and refs2[0].sample_hash == refs[0].sample_hash


def test_silence_counts_against_the_model(setup, tmp_path: Path) -> None:
    """Item 6: a silent sample scores the metric's worst value; an unbounded metric excludes it."""
    bench, items, samples, store = setup
    write_sample(samples / f"{items[1].id}.mp4", items[1], silent=True)
    bounded, unbounded = CountingMetric(), CountingMetric(worst=None)
    unbounded.backend = "test-unbounded"
    _run(bench, store, tmp_path, samples, "x", [bounded, unbounded], items)
    board = build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash)
    cols = {c.key.backend: i for i, c in enumerate(board.columns)}
    b = board.stat("x", cols["test"], "all")
    u = board.stat("x", cols["test-unbounded"], "all")
    assert b.n == 2 and b.n_penalised == 1 and b.mean == pytest.approx(u.mean / 2, rel=1e-6)
    assert u.n == 1 and u.n_items == 2 and "[1/2]" in board.cell_text("x", cols["test-unbounded"])


def test_missing_precomputed_sample_counts_against_the_model(setup, tmp_path: Path) -> None:
    """Item 6: no output at all is the model's fault (worst value), not an exclusion."""
    bench, items, samples, store = setup
    (samples / f"{items[1].id}.mp4").unlink()
    s, _ = _run(bench, store, tmp_path, samples, "x", [CountingMetric()], items)
    assert s.gen_failed == 1
    board = build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash)
    st = board.stat("x", 0, "all")
    assert st.n == 2 and st.n_penalised == 1
    write_sample(samples / f"{items[1].id}.mp4", items[1])  # the retry succeeds: the failure disappears
    _run(bench, store, tmp_path, samples, "x", [CountingMetric()], items, run="r2")
    assert store.samples_frame()["failure"].isna().all()
    assert build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash).stat("x", 0, "all").n_penalised == 0


def test_transient_errors_are_not_stored_and_retried(setup, tmp_path: Path) -> None:
    """Item 7: an exception that is not a media fault is reported, never persisted, retried next run."""
    bench, items, samples, store = setup
    m = CountingMetric(raise_on=[items[0].id])
    s, _ = _run(bench, store, tmp_path, samples, "x", [m], items)
    assert len(s.transient) == 1 and store.count("scores") == 1
    m.raise_on, m.calls = (), []  # the out-of-memory condition is gone; same metric identity
    s2, _ = _run(bench, store, tmp_path, samples, "x", [m], items, run="r2")
    assert m.calls == [items[0].id] and not s2.transient and store.count("scores") == 2


def test_metric_params_are_part_of_the_key(setup, tmp_path: Path) -> None:
    """Item 2: the same metric with another parameter value is recomputed, not reused."""
    bench, items, samples, store = setup
    _run(bench, store, tmp_path, samples, "x", [CountingMetric(scale=1.0)], items)
    m2 = CountingMetric(scale=2.0)
    _run(bench, store, tmp_path, samples, "x", [m2], items, run="r2")
    assert len(m2.calls) == 2 and store.count("scores") == 4


def test_device_and_threads_reach_every_metric(setup, tmp_path: Path) -> None:
    """eval.device / eval.threads are handed to each metric before it loads."""
    bench, items, samples, store = setup
    m = CountingMetric()
    runner = Runner(bench, store, tmp_path / "r", console=QUIET, device="cuda:1", threads=3)
    refs = runner.generate(PrecomputedGenerator(samples, label="x"), "x", items, "r")
    runner.evaluate(refs, [m], "r")
    assert (m.device, m.threads) == ("cuda:1", 3)
    assert m.identity() == CountingMetric().identity()  # placement never changes what a number is


def test_run_dirs_are_unique_per_microsecond() -> None:
    """Item 13: two jobs started in the same second never share a run directory."""
    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf" / "config.yaml").read_text())
    assert "%f" in cfg["hydra"]["run"]["dir"] and "%f" in cfg["hydra"]["sweep"]["dir"]


def test_reverted_precomputed_file_is_the_one_shown(setup, tmp_path: Path) -> None:
    """Item 3/4: A, then B replacing it, then A restored: the leaderboard shows A's value, not B's."""
    bench, items, samples, store = setup
    m = CountingMetric()
    src = samples / f"{items[0].id}.mp4"
    original = src.read_bytes()
    _run(bench, store, tmp_path, samples, "x", [m], items[:1])
    write_sample(src, items[0], silent=True)  # B: a silent take (scores the worst value, 0)
    _run(bench, store, tmp_path, samples, "x", [m], items[:1], run="r2")
    src.write_bytes(original)  # A again: reused from the store, not rescored
    s3, _ = _run(bench, store, tmp_path, samples, "x", [m], items[:1], run="r3")
    assert s3.reused == 1 and s3.scored == 0
    st = build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash).stat("x", 0, "all")
    assert st.n == 1 and st.mean > 0 and st.n_penalised == 0
