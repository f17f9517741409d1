#!/usr/bin/env bash
# Set up .venv (pinned CPU torch, hf_visiontx with its test extra), lint and format-check the tree with ruff, then
# run the test suite. Arguments go to pytest: `./scripts/test.sh -m "not slow"` is the quick lane.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
VENV="${HF_VISIONTX_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/python" -m pytest -q tests "$@"
