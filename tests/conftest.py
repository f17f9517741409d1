"""Test environment: offline, private Hugging Face cache, no telemetry.

The variables are set before anything imports huggingface_hub, which reads some of them only once.
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

sys.path.insert(0, str(Path(__file__).parent))  # the `support` package of test helpers next to this file

import hf_visiontx  # noqa: E402,F401  (registers the Auto classes before any test runs)
