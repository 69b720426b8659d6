"""Weights in one place: `weights.root`, the `iap-bench weights` table, all missing files named before work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iap_bench.metrics.base import build_metric
from iap_bench.weights import ROOT_ENV
from iap_bench.weights_report import MissingWeightsError, require_weights, weight_rows

ROOT = Path(__file__).resolve().parents[2]


def test_weights_root_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iap_bench.backends.speaker import resemblyzer_weight_spec

    spec = resemblyzer_weight_spec()
    (tmp_path / spec.filename).write_bytes(spec.resolve().read_bytes())
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert spec.resolve() == tmp_path / spec.filename
    rows = weight_rows([build_metric("aid_sim/offline")])
    assert rows[0].path == tmp_path / spec.filename and rows[0].pin == "match"


def test_every_missing_file_is_named_at_once(tmp_path: Path) -> None:
    """An explicit path that does not exist is an error, never replaced by the packaged file."""
    metrics = [build_metric("aid_sim/offline", weights=str(tmp_path / "nope.pt")),
               build_metric("vid_sim/sface", weights=str(tmp_path / "nope.onnx"))]
    with pytest.raises(MissingWeightsError) as e:
        require_weights(metrics)
    text = str(e.value)
    assert text.startswith("2 checkpoint file(s)") and "nope.pt" in text and "nope.onnx" in text
    assert [r.ok for r in weight_rows(metrics)] == [False, False, True]  # YuNet still found


def test_cli_weights_and_run_list_all_missing_before_work(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    bad = ("metrics.metrics=[{name: aid_sim/offline, params: {weights: /nonexistent/a.pt}},"
           "{name: vid_sim/sface, params: {weights: /nonexistent/b.onnx}}]")
    table = subprocess.run([sys.executable, "-m", "iap_bench", "weights", bad, f"hydra.run.dir={tmp_path}/w"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert table.returncode == 1 and table.stdout.count("missing") >= 2, table.stdout
    run = subprocess.run([sys.executable, "-m", "iap_bench", bad, f"store={tmp_path}/s.sqlite",
                          f"hydra.run.dir={tmp_path}/r"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "a.pt" in run.stderr and "b.onnx" in run.stderr and "2 checkpoint file(s)" in run.stderr
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "r" / "samples").exists()
