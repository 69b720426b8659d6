"""Item 6 with the real offline metrics: a silent sample raises the model's WER and lowers its AID-SIM."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from iap_bench.generators.precomputed import PrecomputedGenerator
from iap_bench.leaderboard import build_leaderboard
from iap_bench.metrics.base import build_metric
from iap_bench.runner import Runner
from iap_bench.store import ResultStore
from tests.trust.trust_helpers import mini, write_sample


def test_silent_sample_lowers_wer_and_aid_sim(tmp_path: Path) -> None:
    bench = mini()
    items = [i for i in bench.items if i.split == "single"][:2]
    store = ResultStore(tmp_path / "s.sqlite")
    metrics = [build_metric("wer/offline"), build_metric("aid_sim/offline")]
    for label, silent_ids in (("speaks", ()), ("mute_one", (items[1].id,))):
        d = tmp_path / label
        for it in items:
            write_sample(d / f"{it.id}.mp4", it, silent=it.id in silent_ids, seconds=3.0)
        runner = Runner(bench, store, tmp_path / f"run_{label}", console=Console(quiet=True))
        refs = runner.generate(PrecomputedGenerator(d, label=label), label, items, label)
        runner.evaluate(refs, metrics, label)
    board = build_leaderboard(store.scores_frame(), bench.name, bench.pack_hash)
    col = {c.key.metric: i for i, c in enumerate(board.columns)}
    wer_ok, wer_mute = board.stat("speaks", col["wer"], "all"), board.stat("mute_one", col["wer"], "all")
    sim_ok = board.stat("speaks", col["aid_sim"], "single")
    sim_mute = board.stat("mute_one", col["aid_sim"], "single")
    assert wer_mute.n == wer_ok.n == 2 and sim_mute.n == sim_ok.n == 2  # counted, not excluded
    assert wer_mute.mean > wer_ok.mean and sim_mute.mean < sim_ok.mean
    assert wer_mute.n_penalised == 1 and sim_mute.n_penalised == 1
    # the silent item scores exactly the worst values: WER 1.0 (all deletions), similarity 0
    df = store.scores_frame()
    mute = df[(df.model == "mute_one") & (df.item_id == items[1].id)].set_index("metric")
    assert mute.loc["wer", "value"] == 1.0 and mute.loc["aid_sim", "value"] == 0.0
    assert mute.loc["wer", "failure"] == "silent"
