"""Test environment: offline, private Hugging Face cache, no telemetry; under pytest-xdist, the CPUs shared out
between the workers.

The variables are set before anything imports huggingface_hub (which reads some of them only once) or torch (which
reads OMP_NUM_THREADS when it starts its thread pool).
"""

import os
import sys
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="hf_visiontx_tests_hf_home_")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("WANDB_DISABLED", "true")
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:  # one pytest-xdist worker per CPU: threads beyond a worker's share would only contend
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

sys.path.insert(0, str(Path(__file__).parent))  # the `support` package of test helpers next to this file

import torch  # noqa: E402

import hf_visiontx  # noqa: E402,F401  (registers the Auto classes before any test runs)

if _WORKERS > 1:  # in case a plugin imported torch before this file set the variable
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
