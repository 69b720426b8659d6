"""benchmarks/bench_model.py runs on the tiny preset and its cache/dense paths agree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_model_tiny_rows():
    spec = importlib.util.spec_from_file_location("bench_model", REPO / "benchmarks" / "bench_model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_model"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    rows = mod.main(["--presets", "tiny", "--steps", "2", "--device", "cpu"])
    whats = [r["what"] for r in rows]
    assert whats == ["sample cache", "sample dense-mask", "train step (B=2)"]
    assert rows[0]["max_abs_diff"] < 1e-3 and all(r["per_step_s"] > 0 and r["peak_mb"] > 0 for r in rows)
