#!/usr/bin/env bash
# Install IAP-Bench and everything it needs (Debian packages, Python venv) from the project's own files.
# The venv lives outside the clone, keyed by a hash of the dependency files, so re-runs reuse it;
# ./.venv is a symlink to it. Usage: bash scripts/install.sh   (then .venv/bin/iap-bench ...)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# 1. Debian packages: TTS voices for the cascade baseline, real speech for iap-mini.
missing=$(grep -v '^#' .ci/apt-packages.txt | while read -r p; do [ -n "$p" ] && ! dpkg -s "$p" >/dev/null 2>&1 && echo "$p"; done || true)
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  echo "[install] apt packages: $missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# 2. Python venv keyed by the dependency files.
KEY=$(cat pyproject.toml .ci/requirements.txt .ci/requirements-nodeps.txt | sha256sum | cut -c1-16)
VROOT=${IAP_BENCH_VENV_ROOT:-$HOME/.cache/iap-bench}
VENV="$VROOT/venv-$KEY"
if [ ! -f "$VENV/.complete" ]; then
  echo "[install] creating $VENV"
  rm -rf "$VENV"; mkdir -p "$VROOT"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade "pip<27"
  # torch first: the CPU build (satisfies torch<=2.14.1); on a GPU machine install your CUDA build before this.
  "$VENV/bin/pip" install -q "torch==2.13.0" || "$VENV/bin/pip" install -q "torch>=2.4,<=2.14.1"
  "$VENV/bin/pip" install -q -r .ci/requirements.txt
  "$VENV/bin/pip" install -q --no-deps -r .ci/requirements-nodeps.txt
  touch "$VENV/.complete"
  # keep the disk from filling: drop venvs of older dependency sets
  find "$VROOT" -maxdepth 1 -name 'venv-*' -not -name "venv-$KEY" -exec rm -rf {} + 2>/dev/null || true
fi
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT" 2>/dev/null \
  || "$VENV/bin/pip" install -q --no-deps -e "$ROOT"
ln -sfn "$VENV" "$ROOT/.venv"
echo "[install] ready: $ROOT/.venv -> $VENV"
