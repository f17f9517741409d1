#!/usr/bin/env bash
# Create the virtual environment (if needed) and install hf_visiontx into it.
# Usage: scripts/setup_env.sh [EXTRAS]   e.g. `scripts/setup_env.sh test`
# The CPU build of torch is pinned and installed first: an unpinned torch, asked for directly or by another
# package, resolves to a multi-GB CUDA build. Override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HF_VISIONTX_VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${1:-}"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "$TORCH_SPEC"
if [ -n "$EXTRAS" ]; then
    "${PIP[@]}" -e ".[$EXTRAS]"
else
    "${PIP[@]}" -e .
fi
