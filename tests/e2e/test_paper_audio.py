"""`metrics=paper weights.root=DIR`: the five audio columns of Table 2 from checkpoints in one folder.

The real checkpoints cannot be downloaded here, so DIR is filled with seeded random checkpoints written in
the real file formats (``iap_bench.testing.*.write_random_weights``): the run must load every one of them
through the same paths a user's real files take, fill PQ, CLAP, FD, WER, AID-SIM and VID-SIM, and with an empty DIR
stop before any generation naming every missing file at once.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTING = ("pq", "clap", "fd", "sensevoice", "aid_sim_wavlm", "arcface")  # iap_bench.testing modules
PAPER_FILES = ("checkpoint.pt", "music_speech_audioset_epoch_15_esc_89.98.pt", "roberta-base",
               "vggish-10086976.pth", "SenseVoiceSmall", "wavlm_large_finetune.pth", "det_10g.onnx",
               "w600k_r50.onnx")


def cli(cwd: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    env.pop("IAP_BENCH_WEIGHTS_ROOT", None)
    return subprocess.run([sys.executable, "-m", "iap_bench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def weights_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    for name in TESTING:
        importlib.import_module(f"iap_bench.testing.{name}").write_random_weights(root, seed=0)
    return root


def test_missing_weights_are_all_named_before_any_work(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli(tmp_path, "metrics=paper", f"weights.root={empty}", f"store={tmp_path}/s.sqlite",
               f"hydra.run.dir={tmp_path}/r")
    err = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in err, err
    for name in PAPER_FILES:
        assert name in err, f"{name} not named:\n{err}"
    assert str(empty) in err  # where it was looked for
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "r" / "samples").exists()


def test_weights_job_table_finds_every_file(tmp_path: Path, weights_root: Path) -> None:
    proc = cli(tmp_path, "weights", "metrics=paper", f"weights.root={weights_root}", f"hydra.run.dir={tmp_path}/w")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 missing" in proc.stdout, proc.stdout
    for name in ("checkpoint.pt", "music_speech_audioset_epoch_15_esc_89.98.pt", "vocab.json",
                 "vggish-10086976.pth", "chn_jpn_yue_eng_ko_spectok.bpe.model", "wavlm_large_finetune.pth",
                 "det_10g.onnx", "w600k_r50.onnx"):
        assert name in proc.stdout, name


@pytest.mark.slow
def test_paper_suite_fills_the_audio_columns(tmp_path: Path, weights_root: Path) -> None:
    proc = cli(tmp_path, "metrics=paper", f"weights.root={weights_root}", f"store={tmp_path}/s.sqlite",
               "hydra.run.dir=run1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "run1" / "summary.json").read_text())
    assert summary["transient_errors"] == []
    rows = list(csv.DictReader(open(tmp_path / "run1" / "leaderboard" / "leaderboard.csv")))
    assert len(rows) == 1
    row = {k.rstrip("↑↓"): v for k, v in rows[0].items()}
    for col in ("PQ", "CLAP", "FD", "WER", "AID-SIM", "VID-SIM"):
        assert row.get(col) not in (None, "", "-", "nan"), (col, rows[0])
    # an unchanged re-run reuses every score and the FD set value
    again = cli(tmp_path, "metrics=paper", f"weights.root={weights_root}", f"store={tmp_path}/s.sqlite",
                "hydra.run.dir=run2")
    assert again.returncode == 0, again.stderr[-3000:]
    s2 = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert s2["scored"] == 0 and s2["generated"] == 0
    rows2 = list(csv.DictReader(open(tmp_path / "run2" / "leaderboard" / "leaderboard.csv")))
    assert rows2 == rows
