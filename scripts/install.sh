#!/usr/bin/env bash
# Install IAP-Bench and everything it needs (Debian packages, Python venvs) from the project's own files.
# Two venvs:
#  - a shared one with the heavy dependencies (several GB), outside the clone under $IAP_BENCH_VENV_ROOT
#    (default ~/.cache/iap-bench), keyed by a hash of the dependency files, so re-runs and other clones reuse
#    it. It holds no clone's code.
#  - a small per-clone one at ./.venv (a real directory), made from the same Python: a .pth file in its
#    site-packages adds the shared venv's site-packages, and it holds this clone's editable install, so
#    ./.venv/bin/{python,iap-bench,iap-train} always run the code of the clone they sit in. The shared venv's
#    other tools (pytest, ruff, pip, ...) are reachable from ./.venv/bin too.
# Usage: bash scripts/install.sh   (then .venv/bin/iap-bench ...). IAP_BENCH_SKIP_APT=1 skips step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# 1. Debian packages: TTS voices for the cascade baseline, real speech for iap-mini.
if [ "${IAP_BENCH_SKIP_APT:-0}" != 1 ]; then
  missing=$(grep -v '^#' .ci/apt-packages.txt | while read -r p; do [ -n "$p" ] && ! dpkg -s "$p" >/dev/null 2>&1 && echo "$p"; done || true)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    echo "[install] apt packages: $missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
fi

# 2. Shared venv with the dependencies, keyed by the dependency files.
KEY=$(cat pyproject.toml .ci/requirements.txt .ci/requirements-nodeps.txt | sha256sum | cut -c1-16)
VROOT=${IAP_BENCH_VENV_ROOT:-$HOME/.cache/iap-bench}
VENV="$VROOT/venv-$KEY"
if [ ! -f "$VENV/.complete" ]; then
  echo "[install] creating $VENV"
  rm -rf "$VENV"; mkdir -p "$VROOT"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade "pip<27"
  # torch first: 2.14.1, the build torchvision 0.29.1 and torchaudio 2.11.0 are made for (the 2.13 CPU wheel
  # cannot load their CUDA-linked extensions). It runs on CPU-only machines too.
  "$VENV/bin/pip" install -q "torch==2.14.1"
  "$VENV/bin/pip" install -q -r .ci/requirements.txt
  "$VENV/bin/pip" install -q --no-deps -r .ci/requirements-nodeps.txt
  # laion-clap's wheel installs its own test files as a top-level `tests` package, which would shadow this
  # project's tests/ (imported as `tests.*`): remove that stray package (laion_clap itself does not use it).
  SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if grep -qs '^tests/__init__.py' "$SP"/laion_clap-*.dist-info/RECORD; then rm -rf "$SP/tests"; fi
  touch "$VENV/.complete"
  # keep the disk from filling: drop venvs of older dependency sets
  find "$VROOT" -maxdepth 1 -name 'venv-*' -not -name "venv-$KEY" -exec rm -rf {} + 2>/dev/null || true
fi
# The shared venv must not carry any clone's code: earlier versions of this script installed the clone
# there (editable), so whichever clone installed last won for every clone. Remove such an install.
if compgen -G "$VENV/lib/python*/site-packages/iap_bench-*.dist-info" >/dev/null \
   || compgen -G "$VENV/lib/python*/site-packages/iap[-_]bench.egg-link" >/dev/null; then
  echo "[install] removing a clone's iap-bench install from the shared venv $VENV"
  "$VENV/bin/python" -m pip uninstall -q -y iap-bench >/dev/null
fi

# 3. Per-clone venv ./.venv: this clone's code + console scripts, dependencies from the shared venv.
CV="$ROOT/.venv"
STAMP="$CV/.iap-bench-install"
want=$(printf 'layout=1\nshared=%s\nclone=%s' "$VENV" "$ROOT")
if [ -L "$CV" ] || [ ! -x "$CV/bin/python" ] || [ ! -x "$CV/bin/iap-bench" ] || [ ! -f "$STAMP" ] \
   || [ "$(cat "$STAMP")" != "$want" ] || [ "$VENV/.complete" -nt "$STAMP" ]; then
  echo "[install] creating the per-clone venv $CV (dependencies from $VENV)"
  # Old layout: ./.venv was a symlink to the shared venv. Remove the link, never its target.
  if [ -L "$CV" ]; then rm -f "$CV"; fi
  if [ -e "$CV" ]; then
    if [ "$(cd "$CV" && pwd -P)" = "$(cd "$VENV" && pwd -P)" ]; then
      echo "[install] error: $CV is the shared venv itself; refusing to delete it" >&2; exit 1
    fi
    rm -rf "$CV"
  fi
  # Same interpreter as the shared venv (venv uses the base interpreter behind "$VENV/bin/python").
  "$VENV/bin/python" -m venv --without-pip "$CV"
  # The .pth runs site.addsitedir on the shared site-packages: it is appended to sys.path after the
  # clone's own site-packages, and the shared .pth files run too. Named to sort after this clone's
  # __editable__*.pth, so this clone's import finder is registered first.
  "$VENV/bin/python" -c 'import sysconfig
paths = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
print("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in paths))' >"$CV/shared-site.pth.tmp"
  CSP=$("$CV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mv "$CV/shared-site.pth.tmp" "$CSP/zz_iap_bench_shared_venv.pth"
  # This clone, editable, into the per-clone venv (pip and setuptools come from the shared venv).
  PIPI=("$CV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$ROOT")
  "${PIPI[@]}" --no-build-isolation 2>/dev/null || "${PIPI[@]}"
  # The shared venv's tools in ./.venv/bin: Python scripts re-pointed at ./.venv/bin/python (so they see this
  # clone's code), anything else (e.g. the ruff binary) linked.
  IAP_SHARED="$VENV" IAP_CLONE="$CV" "$CV/bin/python" - <<'EOF'
import os
from pathlib import Path

shared, clone = Path(os.environ["IAP_SHARED"]), Path(os.environ["IAP_CLONE"])
old, new = str(shared / "bin" / "python").encode(), str(clone / "bin" / "python").encode()
for src in sorted((shared / "bin").iterdir()):
    dst = clone / "bin" / src.name
    if src.name.startswith(("python", "activate", "Activate")) or src.is_dir() or dst.exists() or dst.is_symlink():
        continue  # (some packages leave a __pycache__ folder in bin/)
    with open(src, "rb") as f:
        head = f.read(4096)
    lines = head.split(b"\n", 2)
    if head.startswith(b"#!") and len(lines) == 3 and old in lines[0] + lines[1]:
        data = src.read_bytes()
        cut = len(lines[0]) + len(lines[1]) + 2
        dst.write_bytes(data[:cut].replace(old, new) + data[cut:])
        dst.chmod(0o755)
    else:
        dst.symlink_to(src)
EOF
  printf '%s' "$want" >"$STAMP"
fi
echo "[install] ready: $CV (this clone's code; dependencies from $VENV)"
