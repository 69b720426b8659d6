"""Wall time of the main job on iap-mini: first run, unchanged re-run, and decodes per sample.

Runs `iap-bench` twice in fresh processes against a fresh store and prints a table. The re-run must be a
small fraction of the first: every sample and every score is reused from the store, nothing is decoded.
Usage: .venv/bin/python benchmarks/bench_eval.py [extra hydra overrides...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def run_job(store: Path, run_dir: Path, extra: list[str]) -> tuple[float, dict]:
    """One `iap-bench` process; returns its wall time and the summary.json it wrote."""
    cmd = [sys.executable, "-m", "iap_bench", f"store={store}", f"hydra.run.dir={run_dir}", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = tmp_path / "store.sqlite"
        rows = []
        for name in ("first run", "unchanged re-run"):
            wall, s = run_job(store, tmp_path / name.replace(" ", "_"), extra)
            n = s["generated"] + s["reused"] + s["generation_failures"]
            rows.append((name, wall, s, n))
    table = Table(title="iap-bench main job on iap-mini (cascade + offline metrics)")
    for col in ("run", "wall s", "generate s", "evaluate s", "items", "generated", "reused", "new scores",
                "stored scores", "decodes / sample"):
        table.add_column(col, justify="right")
    for name, wall, s, n in rows:
        decoded = s.get("decoded_samples", 0)
        table.add_row(name, f"{wall:.1f}", f"{s['timings'].get('generate_s', 0):.1f}",
                      f"{s['timings'].get('evaluate_s', 0):.1f}", str(n), str(s["generated"]), str(s["reused"]),
                      str(s["scored"]), str(s["skipped_scores"]),
                      f"{s.get('decodes', 0) / decoded:.2f}" if decoded else "0 (none decoded)")
    console = Console(width=140)
    console.print(table)
    console.print(f"re-run / first run wall time: {rows[1][1] / rows[0][1]:.1%}")


if __name__ == "__main__":
    main()
