#!/usr/bin/env bash
# One-time set-up: a virtual environment in .venv with tessera installed in editable mode.
# Installs the CPU build of PyTorch unless an NVIDIA driver is present, so a machine
# without a GPU never downloads the multi-GB CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    $PIP install "torch==2.13.0"
  else
    # The CPU index is tried first; where it is unreachable pip falls back to the configured indexes.
    $PIP install --retries 1 --timeout 15 "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi
$PIP install -q -e ".[test]"
