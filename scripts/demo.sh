#!/usr/bin/env bash
# Set up .venv (pinned CPU torch, hf_visiontx) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${HF_VISIONTX_VENV:-.venv}/bin/hf-visiontx" demo "$@"
