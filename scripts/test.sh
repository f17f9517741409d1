#!/usr/bin/env bash
# Set up .venv (pinned CPU torch, hf_visiontx with its test extra), lint and format-check the tree with ruff, then
# run the test suite in one pytest-xdist worker per CPU (a test file stays in one worker, so its module fixtures are
# built once; HF_VISIONTX_TEST_WORKERS=0 runs it in this process). Arguments go to pytest: `./scripts/test.sh -m
# "not slow"` is the quick lane.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
VENV="${HF_VISIONTX_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/python" -m pytest -q tests -n "${HF_VISIONTX_TEST_WORKERS:-auto}" --dist loadfile "$@"
