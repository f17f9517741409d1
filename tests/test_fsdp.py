"""FSDP2 auto-wrap through `_no_split_modules` for each family: 2 CPU processes (gloo) against one process.

Trainer cannot run FSDP on CPU: accelerate 1.15 turns its FSDP plugin on only for accelerator devices (GPU, XPU,
NPU, HPU, ...) and falls back to DDP for multi-CPU runs. So this test applies torch's `fully_shard` itself, unit by
unit as accelerate's transformer-based auto-wrap policy does, and checks that the sharded run trains exactly like
an unsharded one on the same global batch.
"""

import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from support.fsdp_worker import NO_DROPOUT, build_model, global_batch, train
from support.launch import environment, torchrun_command

pytestmark = pytest.mark.slow  # a torchrun launch


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    result = subprocess.run(
        torchrun_command("fsdp_worker.py", str(out)), env=environment(), capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("family", NO_DROPOUT)
def test_fsdp_training_matches_a_single_process(fsdp_run, family):
    out, report = fsdp_run
    model = build_model(family)
    expected_units = set(model._no_split_modules) & {type(module).__name__ for module in model.modules()}
    assert report[family]["sharded"] and report[family]["world"] == 2
    assert set(report[family]["units"]) == expected_units and expected_units
    losses = train(model, global_batch(family))
    torch.testing.assert_close(torch.tensor(report[family]["losses"]), torch.stack(losses), rtol=1e-5, atol=1e-6)
    sharded_weights = load_file(out / f"{family}.safetensors")
    expected = model.state_dict()
    assert sharded_weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(sharded_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    initial = build_model(family).state_dict()
    assert any(not torch.equal(initial[name], tensor) for name, tensor in sharded_weights.items())  # it trained
