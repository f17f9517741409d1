"""Training in more than one process, and training that survives being killed.

- `torchrun` and `accelerate launch` start 2 CPU processes (gloo, DDP) running the library's training entry point
  unchanged (tests/support/ddp_worker.py): both ranks end with identical weights, and the per-step loss curve matches a
  single process on the same global batch.
- `hf-visiontx train` killed with SIGKILL between two checkpoints and rerun with `--resume` ends with the same
  weights as an uninterrupted run.
- Killed while writing a checkpoint, it resumes from the last complete one and again ends with those weights.
- A second run into a directory that a run is using is refused.
- A truncated checkpoint is named in a clear error; the earlier checkpoint stays loadable.
"""

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from hf_visiontx import VtxViTForImageClassification
from hf_visiontx.apps.cli import main
from hf_visiontx.training.run_directory import LOCK_FILE
from support.launch import SUPPORT, environment, torchrun_command
from support.training_data import write_image_folder
from support.vit_tester import tiny_vit_config

pytestmark = pytest.mark.slow  # torchrun / accelerate launches and killed runs

PER_RANK_BATCH = 4
# The two runs see the same global batches in the same order, but sum their gradients in a different order
# (all-reduce vs one batch) and each process draws its own augmentation; the losses agree to this tolerance.
LOSS_TOLERANCE = dict(rtol=1e-3, atol=1e-4)


def run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny ViT without dropout to fine-tune, and a small image folder."""
    root = tmp_path_factory.mktemp("processes")
    torch.manual_seed(0)
    model = VtxViTForImageClassification(
        tiny_vit_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2)
    )
    model.save_pretrained(root / "tiny-vit")
    # Split folders, so that the 32 training images make exactly 4 global batches of 8 (no partial last batch).
    for seed, (split, per_class) in enumerate((("train", 16), ("validation", 2), ("test", 2))):
        write_image_folder(root / "images" / split, {"dark": 60, "light": 190}, per_class=per_class, size=16, seed=seed)
    return root


def launch(launcher: str, root: Path, name: str) -> Path:
    out = root / name
    out.mkdir()
    worker = [str(SUPPORT / "ddp_worker.py"), str(out), str(root / "tiny-vit"), str(root / "images")]
    if launcher == "single":
        command = [sys.executable, *worker, str(2 * PER_RANK_BATCH)]
    elif launcher == "torchrun":
        command = torchrun_command("ddp_worker.py", *worker[1:], str(PER_RANK_BATCH))
    else:  # accelerate's multi-process launcher is torch's, and Trainer(use_cpu=True) makes it MULTI_CPU + gloo
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",
            *worker,
            str(PER_RANK_BATCH),
        ]
    run(command)
    return out


@pytest.fixture(scope="module")
def single_run(setup):
    return launch("single", setup, "single")


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_train_like_one(setup, single_run, launcher):
    out = launch(launcher, setup, launcher)
    rank0, rank1 = (load_file(out / f"weights-rank{rank}.safetensors") for rank in (0, 1))
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)  # DDP kept the replicas identical
    single = load_file(single_run / "weights-rank0.safetensors")
    initial = VtxViTForImageClassification.from_pretrained(setup / "tiny-vit").state_dict()
    assert any(not torch.equal(initial[name], rank0[name]) for name in rank0)  # it trained
    for name in single:
        torch.testing.assert_close(rank0[name], single[name], rtol=1e-3, atol=1e-4, msg=name)
    losses = json.loads((out / "losses-rank0.json").read_text())
    expected = json.loads((single_run / "losses-rank0.json").read_text())
    assert len(losses) == len(expected) == 4  # 32 images, global batch 8
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected), **LOSS_TOLERANCE)


def train_command(output_dir: Path, *extra: str) -> list[str]:
    """`python -m hf_visiontx train vit` on the embedded digits: 2 epochs of the small default ViT."""
    return [
        sys.executable,
        "-m",
        "hf_visiontx",
        "train",
        "vit",
        "--output-dir",
        str(output_dir),
        "--epochs",
        "2",
        "--seed",
        "3",
        "--no-progress",
        *extra,
    ]


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints whose trainer_state.json (written last by Trainer) exists, in step order."""
    paths = [path.parent for path in (output_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")]
    return sorted(paths, key=lambda path: int(path.name.split("-")[1]))


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """An uninterrupted run and, in parallel, a run SIGKILLed once its first checkpoint is complete (and a third
    run tried into the uninterrupted one's directory while it runs)."""
    root = tmp_path_factory.mktemp("resume")
    uninterrupted = subprocess.Popen(
        train_command(root / "uninterrupted"),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = subprocess.Popen(
        train_command(root / "killed"), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # A second run into the uninterrupted run's directory, started once that run holds the directory.
    lock, concurrent = root / "uninterrupted" / LOCK_FILE, None
    deadline = time.monotonic() + 240
    while not complete_checkpoints(root / "killed") and killed.poll() is None and time.monotonic() < deadline:
        if concurrent is None and lock.exists() and lock.read_text().strip():
            with contextlib.redirect_stderr(io.StringIO()) as stderr:  # in this process, so that it starts at once
                concurrent = (main(train_command(root / "uninterrupted")[3:]), stderr.getvalue())
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = {
        "checkpoints": complete_checkpoints(root / "killed"),
        "return_code": killed.returncode,
        "finished": (root / "killed" / "model.safetensors").exists(),
        "concurrent": concurrent,
        "first_process": uninterrupted.pid,
    }
    resumed = subprocess.run(
        train_command(root / "killed", "--resume"), env=environment(), capture_output=True, text=True, timeout=300
    )
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-4000:]
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return root, at_kill


def test_sigkill_between_checkpoints_then_resume_gives_the_uninterrupted_weights(killed_and_resumed):
    root, at_kill = killed_and_resumed
    assert at_kill["return_code"] == -signal.SIGKILL and not at_kill["finished"]
    assert len(at_kill["checkpoints"]) == 1  # killed after the first checkpoint, before the second
    # The last checkpoint (epoch 2, trained after the kill) and the saved model (the best epoch) both agree.
    last_checkpoints = [complete_checkpoints(root / run)[-1] for run in ("killed", "uninterrupted")]
    assert last_checkpoints[0].name == last_checkpoints[1].name != at_kill["checkpoints"][0].name
    for resumed_file, uninterrupted_file in (
        (last_checkpoints[0] / "model.safetensors", last_checkpoints[1] / "model.safetensors"),
        (root / "killed" / "model.safetensors", root / "uninterrupted" / "model.safetensors"),
    ):
        resumed, uninterrupted = load_file(resumed_file), load_file(uninterrupted_file)
        assert resumed.keys() == uninterrupted.keys()
        for name, tensor in uninterrupted.items():
            assert torch.equal(resumed[name], tensor), (resumed_file, name)
    metrics = [json.loads((root / run / "metrics.json").read_text()) for run in ("killed", "uninterrupted")]
    assert metrics[0] == metrics[1]


def test_a_second_run_into_a_directory_in_use_is_refused(killed_and_resumed):
    """The second run fails at once with one line naming the first run's process; the first run's results (checked
    above against the resumed run's) are its own. (The second run is started in the test's process, where
    hf_visiontx is already imported, so that it reaches the directory while the first one runs.)"""
    root, at_kill = killed_and_resumed
    return_code, stderr = at_kill["concurrent"]
    assert return_code == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"hf-visiontx train: error: `output_dir` (--output-dir) {root / 'uninterrupted'} is in use by another `train` "
        f"run (process {at_kill['first_process']}); wait for it to end, or choose another --output-dir."
    )


def test_sigkill_while_a_checkpoint_is_written_then_resume_continues_from_the_last_complete_one(
    killed_and_resumed, tmp_path
):
    """Killed after the second checkpoint's weights, before its trainer_state.json: `--resume` says it skips that
    folder, continues from the first checkpoint and ends with the uninterrupted run's weights and metrics."""
    root, _ = killed_and_resumed
    run_dir = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, str(SUPPORT / "killed_mid_checkpoint.py"), *train_command(run_dir)[3:]],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-4000:]
    folders = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(folders) == 2 and complete_checkpoints(run_dir) == folders[:1]
    assert (folders[1] / "model.safetensors").exists() and not (folders[1] / "optimizer.pt").exists()
    resumed = subprocess.run(
        train_command(run_dir, "--resume"), env=environment(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"skipping the incomplete checkpoint {folders[1]}" in resumed.stderr
    for name in ("model.safetensors", "metrics.json"):
        assert (run_dir / name).read_bytes() == (root / "uninterrupted" / name).read_bytes(), name


def test_truncated_checkpoint_is_named_and_the_earlier_one_still_loads(killed_and_resumed, tmp_path):
    root, _ = killed_and_resumed
    run_dir = tmp_path / "run"
    shutil.copytree(root / "uninterrupted", run_dir)
    earlier, last = complete_checkpoints(run_dir)
    weights = last / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = subprocess.run(
        train_command(run_dir, "--resume"), env=environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert (
        str(weights) in result.stderr and "truncated or corrupted" in result.stderr and "Traceback" not in result.stderr
    )
    model = AutoModelForImageClassification.from_pretrained(earlier)
    assert model.num_parameters() > 0
