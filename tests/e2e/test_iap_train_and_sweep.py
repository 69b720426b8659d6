"""Issue 3 end to end: train the tiny model on the shipped toy data, then sample two checkpoints through
the harness in one Hydra sweep; both land in one store and one leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_train_tiny_then_sweep_checkpoints_through_harness(tmp_path: Path) -> None:
    run = tmp_path / "train"
    proc = _run(tmp_path, "-m", "model.train", "train=toy", "model=tiny", "train.steps=40", "train.save_every=20",
                "train.progress=false", f"hydra.run.dir={run}")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["loss_end"] < 0.8 * summary["loss_start"], proc.stdout[-2000:]
    ck20, ck40 = run / "checkpoints" / "step_0000020", run / "checkpoints" / "step_0000040"
    assert (ck20 / "model.safetensors").exists() and (ck40 / "model.safetensors").exists()

    store = tmp_path / "store.sqlite"
    _run(tmp_path, "-m", "iap_bench", "-m", "generator=iap", f"generator.params.ckpt={ck20},{ck40}",
         "generator.params.codecs=tiny", "generator.params.steps=2", "limit=2", f"store={store}",
         "metrics.metrics=[vid_sim/offline]", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    for job in ("0", "1"):
        s = json.loads((tmp_path / "sweep" / job / "summary.json").read_text())
        assert s["generated"] == 2 and s["generation_failures"] == 0
    board = pd.read_csv(tmp_path / "sweep" / "1" / "leaderboard" / "leaderboard.csv")
    labels = sorted(board.iloc[:, 0].astype(str))
    assert len(labels) == 2  # one row per checkpoint: named by run/step plus a content hash
    assert labels[0].startswith("iap:train/step_0000020@") and labels[1].startswith("iap:train/step_0000040@")
    side = next((tmp_path / "sweep" / "0" / "samples").rglob("*.json"))
    info = json.loads(side.read_text())
    assert info["config"]["checkpoint_sha256"] and info["generator"] == "iap"
