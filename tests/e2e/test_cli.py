"""End to end through the console entry, as a user runs it from the README (iap-mini, cascade, offline metrics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def iap_bench(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "iap_bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"iap-bench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess, dict]:
    cwd = tmp_path_factory.mktemp("e2e")
    proc = iap_bench(cwd, "hydra.run.dir=run1")
    return cwd, proc, json.loads((cwd / "run1" / "summary.json").read_text())


def test_main_job_generates_scores_and_writes_leaderboard(first_run) -> None:
    cwd, proc, summary = first_run
    n_items = summary["generated"] + summary["reused"] + summary["generation_failures"]
    assert n_items >= 6 and summary["generated"] == n_items - summary["generation_failures"]
    assert summary["scored"] > 0
    # each sample decoded exactly once however many metrics read it
    assert summary["decodes"] == summary["decoded_samples"] == summary["generated"]
    board = cwd / "run1" / "leaderboard"
    files = {p.suffix for p in board.iterdir()}
    assert {".csv", ".md", ".tex"} <= files
    csv = pd.read_csv(next(board.glob("*.csv")))
    assert csv.shape[0] >= 1
    assert "WER" in proc.stdout and "VID-SIM" in proc.stdout and "cascade" in proc.stdout
    assert "tables written" in proc.stdout
    sidecars = list((cwd / "run1" / "samples").glob("cascade_*/*.json"))  # row cascade@<config hash>
    assert sidecars
    side = json.loads(sidecars[0].read_text())
    assert side["pack_hash"] and side["generator"] == "cascade" and "generate_s" in side["timings"]


def test_unchanged_rerun_reuses_everything(first_run) -> None:
    cwd, _, first = first_run
    iap_bench(cwd, "hydra.run.dir=run2")
    s = json.loads((cwd / "run2" / "summary.json").read_text())
    assert s["generated"] == 0 and s["reused"] == first["generated"]
    assert s["scored"] == 0 and s["decodes"] == 0 and s["skipped_scores"] >= first["scored"]


def test_leaderboard_job_rebuilds_from_store(first_run) -> None:
    cwd, _, _ = first_run
    proc = iap_bench(cwd, "leaderboard", "hydra.run.dir=lb")
    assert "cascade" in proc.stdout
    assert list((cwd / "lb" / "leaderboard").glob("*.md"))


def test_evaluate_folder_with_bad_files_records_failures(first_run, tmp_path: Path) -> None:
    cwd, _, _ = first_run
    samples = sorted((cwd / "run1" / "samples").glob("cascade_*/*.mp4"))
    folder = tmp_path / "rival"
    folder.mkdir()
    (folder / samples[0].name).write_bytes(samples[0].read_bytes())
    (folder / samples[1].name).write_bytes(b"this is not an mp4")  # corrupt; other items are missing
    proc = iap_bench(cwd, "evaluate", f"samples_dir={folder}", "label=rival", "hydra.run.dir=ev")
    s = json.loads((cwd / "ev" / "summary.json").read_text())
    n_items = s["generated"] + s["reused"] + s["generation_failures"]
    assert s["generated"] == 1 and s["generation_failures"] == n_items - 1  # corrupt + missing are recorded
    # the intact file has the same content as a cascade sample: its scores are reused, not recomputed
    assert s["decodes"] == 0 and s["skipped_scores"] == 3
    # a corrupt or missing output is the model's fault: every metric records it at its worst value
    assert s["penalised"] == s["score_failures"] == s["scored"] == 3 * (n_items - 1)
    assert "rival" in proc.stdout and "counted at the metric's worst value" in proc.stdout
    assert "decode_error" in proc.stdout + proc.stderr and "missing_sample" in proc.stdout + proc.stderr


def test_validate_iap100_lists_unbound_slots(tmp_path: Path) -> None:
    proc = iap_bench(tmp_path, "validate", "benchmark=iap100", check=False)
    assert proc.returncode == 1
    out = proc.stdout
    assert "unbound" in out.lower() and "id_001" in out and "benchmark.pack=" in out
    assert "70 single / 30 multi" in out


def test_print_config_and_missing_pack_error(tmp_path: Path) -> None:
    proc = iap_bench(tmp_path, "--cfg", "job")
    assert "generator:" in proc.stdout and "benchmark:" in proc.stdout
    proc = iap_bench(tmp_path, "benchmark=iap100", check=False)
    assert proc.returncode != 0 and "unbound" in (proc.stdout + proc.stderr).lower()


def test_unimplemented_metric_gives_one_clear_error(tmp_path: Path) -> None:
    proc = iap_bench(tmp_path, "metrics.metrics=[wer/offline,aes/reference]", "limit=1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "not implemented" in out and "aes/reference" in out
    assert "Traceback" not in out
