"""Starting test subprocesses and 2-process `torchrun` launches that import the tests' helpers and this checkout."""

import os
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
REPO_ROOT = TESTS.parent


def environment() -> dict[str, str]:
    """The current environment plus the tests and the checkout on the import path; one thread per process, so
    that two processes on two cores do not compete for them."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO_ROOT)]), "OMP_NUM_THREADS": "1"}


def torchrun_command(script: str, *args: str) -> list[str]:
    """`torchrun --standalone --nproc_per_node 2 tests/support/SCRIPT ARGS...` (a free port is picked per run)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(SUPPORT / script),
        *args,
    ]
