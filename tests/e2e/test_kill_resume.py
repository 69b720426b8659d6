"""A run SIGKILLed mid-way loses nothing already written: the restart reuses those samples and scores."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def test_sigkilled_run_resumes_without_redoing_work(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = tmp_path / "store.sqlite"
    args = [sys.executable, "-m", "iap_bench", "limit=4", f"store={store}", "metrics.metrics=[vid_sim/offline]"]
    proc = subprocess.Popen([*args, "hydra.run.dir=killed"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _count(store, "samples") < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _count(store, "samples")
    assert kept >= 2

    subprocess.run([*args, "hydra.run.dir=resumed"], cwd=tmp_path, env=env, check=True, capture_output=True,
                   timeout=900)
    s = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert s["reused"] >= kept and s["generated"] + s["reused"] == 4
    con = sqlite3.connect(store)
    (n_scores,) = con.execute("SELECT COUNT(*) FROM scores").fetchone()
    (n_distinct,) = con.execute("SELECT COUNT(DISTINCT sample_hash) FROM scores").fetchone()
    assert n_scores == n_distinct == 4  # one vid_sim score per sample, none duplicated
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
