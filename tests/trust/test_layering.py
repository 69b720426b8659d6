"""Layering: a leaf module for weights and errors, no import cycles, light imports for the runner and CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_imports(path: Path, prefix: str) -> set[str]:
    """Every module under ``prefix`` that a file imports, at top level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(prefix)}
    return out


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in (ROOT / "iap_bench").rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = p
    return {m: {t for t in _module_imports(p, "iap_bench") if t in mods and t != m and not m.startswith(t + ".")}
            for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_the_harness() -> None:
    assert _cycles(_graph()) == []


def test_weights_and_errors_are_leaves_and_model_depends_only_on_them() -> None:
    g = _graph()
    assert g["iap_bench.errors"] == set()
    assert g["iap_bench.weights"] <= {"iap_bench.errors", "iap_bench.hashing"}
    for p in (ROOT / "model").rglob("*.py"):
        used = {m for m in _module_imports(p, "iap_bench")}
        assert used <= {"iap_bench.errors", "iap_bench.weights", "iap_bench.errors.MediaError",
                        "iap_bench.errors.MissingCheckpointError", "iap_bench.weights.WeightSpec"}, (p, used)


def test_importing_the_runner_and_cli_loads_no_heavy_library() -> None:
    code = ("import sys, iap_bench.runner, iap_bench.cli, iap_bench.store, iap_bench.metrics.base;"
            "print(sorted(m for m in ('torch', 'pandas', 'scipy', 'transformers', 'diffusers', 'dlib', "
            "'resemblyzer', 'faster_whisper', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
