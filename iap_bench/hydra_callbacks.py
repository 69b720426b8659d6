"""Hydra callback: at the end of a multirun, merge every job's own store into one for the sweep.

Each job of ``iap-bench -m ...`` writes ``<sweep dir>/<job>/iap-bench.sqlite`` (SQLite WAL must not be
shared across nodes). This runs in the launching process after all jobs finished (local joblib and SLURM
launchers alike) and writes ``<sweep dir>/iap-bench.sqlite``, which ``iap-bench leaderboard store=...``
reads; the leaderboard can also read the jobs' stores directly with a glob.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from iap_bench.paths import STORE_NAME


class MergeSweepStores(Callback):
    """Merge ``<sweep>/*/iap-bench.sqlite`` into ``<sweep>/iap-bench.sqlite`` and say how to read it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("store"):  # the user chose one store for every job: nothing to merge
            return
        sweep = Path(config.hydra.sweep.dir)
        if not sweep.is_absolute():
            sweep = Path(config.hydra.runtime.cwd) / sweep
        sources = sorted(p for p in sweep.glob(f"*/{STORE_NAME}"))
        if not sources:
            return
        from iap_bench.store import ResultStore

        dest = ResultStore(sweep / STORE_NAME)
        conflicts = 0
        for src in sources:
            conflicts += len(dest.merge_from(src).conflicts)
        dest.close()
        note = f", {conflicts} conflicting values (first kept)" if conflicts else ""
        print(f"[iap-bench] merged {len(sources)} job stores into {sweep / STORE_NAME}{note}\n"
              f"[iap-bench] leaderboard of the sweep: iap-bench leaderboard store={sweep / STORE_NAME}")
