#!/usr/bin/env bash
# Set up .venv (pinned CPU torch, hf_visiontx with its test extra) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
exec "${HF_VISIONTX_VENV:-.venv}/bin/python" -m pytest -q tests "$@"
