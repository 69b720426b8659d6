"""Item 8: under -m each job writes its own store (no SQLite WAL shared across nodes); one leaderboard reads all."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("IAP_BENCH_STORE", None)
    return subprocess.run([sys.executable, "-m", "iap_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_joblib_sweep_writes_one_store_per_job_and_one_leaderboard_reads_them(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _cli(tmp_path, "-m", "hydra/launcher=local_joblib", "hydra.launcher.n_jobs=2", "label=alpha,beta",
                "limit=1", "metrics.metrics=[wer/offline]", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stores = sorted(sweep.glob("*/iap-bench.sqlite"))
    assert [p.parent.name for p in stores] == ["0", "1"]
    for p in stores:  # WAL checkpointed at the end: the .sqlite file alone is complete
        wal = p.with_name(p.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as con:
            assert con.execute("SELECT COUNT(DISTINCT model) FROM samples").fetchone()[0] == 1
    assert not (tmp_path / "outputs" / "iap-bench.sqlite").exists()  # nothing in a shared default store
    merged = sweep / "iap-bench.sqlite"
    assert merged.is_file() and "merged 2 job stores" in proc.stdout

    board = _cli(tmp_path, "leaderboard", f"store={sweep}/*/iap-bench.sqlite", f"hydra.run.dir={tmp_path}/lb")
    assert board.returncode == 0, board.stdout + board.stderr
    assert "read 2 stores as one" in board.stdout
    rows = [line for line in board.stdout.splitlines() if line.startswith(("│ alpha", "│ beta"))]
    assert len(rows) == 2, board.stdout
    assert not (tmp_path / "outputs").exists()  # reading stores writes none


def test_leaderboard_on_a_mistyped_store_creates_nothing(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "leaderboard", "store=nope/missing.sqlite", f"hydra.run.dir={tmp_path}/lb")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "missing.sqlite" in proc.stderr and not (tmp_path / "nope").exists()


def test_unknown_job_exits_non_zero(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "job=bogus", f"hydra.run.dir={tmp_path}/r")
    assert proc.returncode == 2 and "unknown job 'bogus'" in proc.stderr and "Traceback" not in proc.stderr
