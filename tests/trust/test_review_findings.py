"""Regression tests for a skeptical review: one take per (row, item, seed), order-free merges, exclusions
that do not depend on whether generation failed, input faults excluded, per-pack failures, sweep markers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rich.console import Console

from iap_bench.generators.base import default_label
from iap_bench.generators.precomputed import PrecomputedGenerator
from iap_bench.leaderboard import build_leaderboard
from iap_bench.metrics.base import build_metric
from iap_bench.metrics.policy import INPUT_FAULTS, is_sample_fault
from iap_bench.runner import Runner
from iap_bench.store import ResultStore, SampleRecord, ScoreRecord, open_stores
from tests.trust.trust_helpers import CountingMetric, mini, write_sample

QUIET = Console(quiet=True)
IDENT = dict(metric="wer", backend="b", checkpoint="c", params="p", version="1")


def _sample(h: str, created: float, inputs: str = "in", **kw) -> SampleRecord:
    return SampleRecord(h, "i0", "single", "m", seed=0, path=f"/x/{h}.mp4", pack_hash="P", benchmark="B",
                        inputs_hash=inputs, created=created, **kw)


def test_one_take_serves_every_metric(tmp_path: Path) -> None:
    """A newer take without an AID-SIM score lowers coverage; it never borrows the older take's value."""
    st = ResultStore(tmp_path / "s.sqlite")
    st.add_sample(_sample("old", 1.0))
    st.put_scores([ScoreRecord("old", "in", **IDENT, value=0.5),
                   ScoreRecord("old", "in", **{**IDENT, "metric": "aid_sim"}, value=0.9)])
    st.add_sample(_sample("new", 2.0))
    st.put_scores([ScoreRecord("new", "in", **IDENT, value=0.1)])
    df = st.scores_frame()
    assert set(df.sample_hash) == {"new"} and list(df.metric) == ["wer"]


def test_merge_order_does_not_decide_the_inputs(tmp_path: Path) -> None:
    """The later confirmation of a take (a corrected transcript) wins whichever store is merged first."""
    a, b = ResultStore(tmp_path / "a.sqlite"), ResultStore(tmp_path / "b.sqlite")
    a.add_sample(_sample("h1", 1.0, inputs="I1"))
    a.put_scores([ScoreRecord("h1", "I1", **IDENT, value=0.5)])
    b.add_sample(_sample("h1", 2.0, inputs="I2"))
    b.put_scores([ScoreRecord("h1", "I2", **IDENT, value=0.9)])
    a.close()
    b.close()
    for order in ([a.path, b.path], [b.path, a.path]):
        st, _ = open_stores(order)
        assert list(st.scores_frame().value) == [0.9]


def test_failed_generation_of_an_unscorable_item_is_excluded(tmp_path: Path) -> None:
    """Offline WER cannot score Chinese: a model that failed on a ZH item is not charged WER 1.0 for it."""
    bench = mini()
    item = next(i for i in bench.items if i.split == "single")
    zh = dataclasses.replace(item, id="zh_item", subjects=tuple(dataclasses.replace(s, language="zh")
                                                                for s in item.subjects))
    bench = dataclasses.replace(bench, items=(zh,))
    st = ResultStore(tmp_path / "s.sqlite")
    runner = Runner(bench, st, tmp_path / "r", console=QUIET)
    (tmp_path / "empty").mkdir()
    refs = runner.generate(PrecomputedGenerator(tmp_path / "empty", label="x"), "x", [zh], "r")  # no file
    runner.evaluate(refs, [build_metric("wer/offline")], "r")
    row = st.scores_frame().iloc[0]
    assert row.value is None or row.value != row.value  # NaN/None: excluded
    assert row.failure.startswith("unsupported_language")


def test_reference_faults_are_excluded_not_penalised() -> None:
    assert "bad_reference" in INPUT_FAULTS and not is_sample_fault("bad_reference: no face in reference")
    assert is_sample_fault("generation_failed: missing_sample: /x.mp4")


def test_a_success_in_one_pack_keeps_another_packs_failure(tmp_path: Path) -> None:
    bench = mini()
    item = next(i for i in bench.items if i.split == "single")
    st = ResultStore(tmp_path / "s.sqlite")
    missing = tmp_path / "none"
    missing.mkdir()
    for pack in ("PA", "PB"):
        b = dataclasses.replace(bench, pack_hash=pack)
        r = Runner(b, st, tmp_path / pack, console=QUIET)
        r.evaluate(r.generate(PrecomputedGenerator(missing, label="x"), "x", [item], pack), [CountingMetric()], pack)
    write_sample(missing / f"{item.id}.mp4", item)
    b = dataclasses.replace(bench, pack_hash="PA")
    r = Runner(b, st, tmp_path / "PA2", console=QUIET)
    r.evaluate(r.generate(PrecomputedGenerator(missing, label="x"), "x", [item], "PA2"), [CountingMetric()], "PA2")
    df = st.scores_frame()
    pb = df[df.pack_hash == "PB"]
    assert len(pb) == 1 and pb.iloc[0].value == 0.0  # PB's failure still counts at the worst value


def test_a_killed_sweep_job_marks_the_row(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    st.add_run("job0", {"seed": 0, "shard": {"index": 0, "count": 1}}, {}, label="m", benchmark="B")
    st.add_run("job1", {"seed": 1, "shard": {"index": 0, "count": 1}}, {}, label="m", benchmark="B")
    st.finish_run("job1")  # job0 (seed 0) was killed
    assert st.unfinished_labels("B") == {"m"}
    st.add_run("job0b", {"seed": 0, "shard": {"index": 0, "count": 1}}, {}, label="m", benchmark="B")
    st.finish_run("job0b")
    assert st.unfinished_labels("B") == set()


def test_generator_configs_never_share_a_row() -> None:
    a = default_label("cascade", {"voice_match": "nearest"})
    assert a.startswith("cascade@") and a != default_label("cascade", {"voice_match": "flite:kal"})
    assert a == default_label("cascade", json.loads(json.dumps({"voice_match": "nearest"})))


def test_leaderboard_shows_only_the_current_take(tmp_path: Path) -> None:
    st = ResultStore(tmp_path / "s.sqlite")
    st.add_sample(_sample("a", 1.0))
    st.put_scores([ScoreRecord("a", "in", **IDENT, value=1.0)])
    st.add_sample(_sample("b", 2.0))
    st.put_scores([ScoreRecord("b", "in", **IDENT, value=0.0)])
    st.add_sample(_sample("a", 3.0))  # a re-run reused (and re-verified) take a
    board = build_leaderboard(st.scores_frame(), "B", "P")
    assert board.stat("m", 0, "all").mean == 1.0 and board.stat("m", 0, "all").n == 1
