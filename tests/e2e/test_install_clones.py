"""Two clones installed with scripts/install.sh share the dependency venv but each runs its own code.

Regression test for "the last install wins": the shared venv (keyed by the dependency files) used to carry an
editable install of whichever clone ran install.sh last, so `<clone>/.venv/bin/iap-bench` could run another
clone's code. This test uses the shared venv the running interpreter gets its packages from, and never builds
one: it skips (fails under CI=true) when no complete shared venv for the current dependency files is found.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEP_FILES = ("pyproject.toml", ".ci/requirements.txt", ".ci/requirements-nodeps.txt")
PROBE = "IAP_BENCH_CLONE_PROBE"

pytestmark = pytest.mark.slow


def _shared_venv() -> Path | None:
    """The complete shared venv for this tree's dependency files, found from the running interpreter."""
    key = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in DEP_FILES)).hexdigest()[:16]
    roots = {os.environ["IAP_BENCH_VENV_ROOT"]} if os.environ.get("IAP_BENCH_VENV_ROOT") else set()
    for entry in [sys.prefix, *sys.path]:
        m = re.match(r"(.*)/venv-[0-9a-f]{16}(/|$)", entry)
        if m:
            roots.add(m.group(1))
    for vroot in sorted(roots):
        venv = Path(vroot) / f"venv-{key}"
        if (venv / ".complete").is_file() and (venv / "bin" / "python").exists():
            return venv
    return None


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clone(dst: Path, env: dict) -> Path:
    _run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dst)], env, ROOT.parent)
    # The clone has the committed tree; test the working tree's install script with the working tree's
    # dependency files (so the key names the shared venv that already exists).
    for rel in ("scripts/install.sh", *DEP_FILES):
        shutil.copyfile(ROOT / rel, dst / rel)
    # A probe that tells which clone's package was imported, then exits before any heavy import.
    for pkg in ("iap_bench", "model"):
        with open(dst / pkg / "__init__.py", "a") as f:
            f.write(f"\nimport os as _os\nif _os.environ.get({PROBE!r}):\n"
                    f"    print({PROBE!r}, __file__, flush=True)\n    raise SystemExit(0)\n")
    return dst


def _imported_from(clone: Path, module: str, env: dict, cwd: Path) -> Path:
    out = _run([str(clone / ".venv/bin/python"), "-c", f"import {module}; print({module}.__file__)"], env, cwd)
    return Path(out.stdout.strip().splitlines()[-1])


def _probe(script: Path, env: dict, cwd: Path) -> Path:
    out = _run([str(script), "--help"], {**env, PROBE: "1"}, cwd)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(PROBE))
    return Path(line.split(" ", 1)[1])


def test_two_clones_share_dependencies_but_run_their_own_code(tmp_path: Path) -> None:
    shared = _shared_venv()
    if shared is None:
        msg = ("no complete shared venv (venv-<dependency hash>/.complete) for this tree's dependency files "
               "was found from the running interpreter; run `bash scripts/install.sh` and use .venv/bin/python")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", PROBE)}
    env.update(IAP_BENCH_VENV_ROOT=str(shared.parent), IAP_BENCH_SKIP_APT="1", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    work = tmp_path / "cwd"  # a neutral working directory: '' on sys.path must not find either clone
    work.mkdir()
    a, b = _clone(tmp_path / "a", env), _clone(tmp_path / "b", env)
    (b / "iap_bench" / "__init__.py").write_text(
        (b / "iap_bench" / "__init__.py").read_text().replace('__version__ = "0.1.0"', '__version__ = "0.1.0+b"'))

    # Upgrade path: clone a has the old layout, ./.venv a symlink to the shared venv.
    (a / ".venv").symlink_to(shared)
    for clone in (a, b):
        out = _run(["bash", "scripts/install.sh"], env, clone, timeout=300)
        assert str(shared) in out.stdout and "creating " + str(shared) not in out.stdout, out.stdout
    assert (shared / ".complete").is_file() and (shared / "bin" / "python").exists()  # kept the shared venv
    assert (a / ".venv").is_dir() and not (a / ".venv").is_symlink()
    # no clone's code in the shared venv
    assert not list(shared.glob("lib/python*/site-packages/iap_bench-*.dist-info"))

    # each clone's python, iap-bench and iap-train run that clone's code, after both were installed
    for clone in (a, b):
        assert _imported_from(clone, "iap_bench", env, work) == clone / "iap_bench" / "__init__.py"
        assert _imported_from(clone, "model", env, work) == clone / "model" / "__init__.py"
        assert _probe(clone / ".venv/bin/iap-bench", env, work) == clone / "iap_bench" / "__init__.py"
        assert _probe(clone / ".venv/bin/iap-train", env, work) == clone / "model" / "__init__.py"
    version = [str(a / ".venv/bin/python"), "-c", "import iap_bench; print(iap_bench.__version__)"]
    assert _run(version, env, work).stdout.split() == ["0.1.0"]
    version[0] = str(b / ".venv/bin/python")
    assert _run(version, env, work).stdout.split() == ["0.1.0+b"]

    # the real entry point runs, and the dependencies and tools come from the shared venv
    help_text = _run([str(a / ".venv/bin/iap-bench"), "--help"], env, work).stdout
    assert "powered by Hydra" in help_text and "generator" in help_text, help_text
    torch_file = _imported_from(a, "torch", env, work)
    assert torch_file.is_relative_to(shared)
    _run([str(a / ".venv/bin/python"), "-m", "pytest", "--version"], env, work)
    _run([str(a / ".venv/bin/ruff"), "--version"], env, work)

    # re-running with nothing changed is quick and keeps the per-clone venv
    start = time.monotonic()
    out = _run(["bash", "scripts/install.sh"], env, a)
    assert time.monotonic() - start < 10 and "creating" not in out.stdout, out.stdout
    assert _imported_from(a, "iap_bench", env, work) == a / "iap_bench" / "__init__.py"
