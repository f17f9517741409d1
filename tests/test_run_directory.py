"""A training run's output directory: the checkpoint it resumes from, and one run at a time."""

import json
import multiprocessing
import os
import signal

import pytest
import torch
from safetensors.torch import save_file

from hf_visiontx.training import TrainOptions
from hf_visiontx.training.run_directory import LOCK_FILE, checkpoint_to_resume, exclusive_output_dir


def write_checkpoint(options: TrainOptions, step: int, state: str | None = None) -> str:
    """A checkpoint folder with weights and, unless `state` is None, this trainer_state.json text."""
    folder = options.checkpoints_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"weight": torch.zeros(2)}, folder / "model.safetensors")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    return str(folder)


COMPLETE = json.dumps({"global_step": 3, "log_history": []})


@pytest.mark.parametrize("state", [None, COMPLETE[:10]], ids=["no trainer_state.json", "half a trainer_state.json"])
def test_resume_skips_and_removes_a_checkpoint_whose_writing_was_cut_short(tmp_path, capsys, state):
    options = TrainOptions("vit", output_dir=tmp_path, resume=True)
    complete = write_checkpoint(options, 3, COMPLETE)
    incomplete = write_checkpoint(options, 6, state)
    assert checkpoint_to_resume(options) == complete
    assert f"skipping the incomplete checkpoint {incomplete}" in capsys.readouterr().err
    assert not os.path.exists(incomplete)


def test_resume_without_a_complete_checkpoint_says_so_and_a_fresh_run_then_starts(tmp_path, capsys):
    incomplete = write_checkpoint(TrainOptions("vit", output_dir=tmp_path), 3)
    with pytest.raises(
        ValueError, match=r"no complete checkpoint to resume from in .* incomplete\); run again without"
    ):
        checkpoint_to_resume(TrainOptions("vit", output_dir=tmp_path, resume=True))
    assert os.path.exists(incomplete)  # left for the user to decide
    assert checkpoint_to_resume(TrainOptions("vit", output_dir=tmp_path)) is None
    assert not os.path.exists(incomplete)


def test_a_fresh_run_is_still_refused_a_directory_with_a_complete_checkpoint(tmp_path):
    options = TrainOptions("vit", output_dir=tmp_path)
    write_checkpoint(options, 3, COMPLETE)
    write_checkpoint(options, 6)
    with pytest.raises(ValueError, match=r"already holds the checkpoint .*checkpoint-3; pass --resume"):
        checkpoint_to_resume(options)


def test_a_directory_in_use_by_a_run_is_refused_until_that_run_dies(tmp_path):
    """The lock is the OS's: a SIGKILLed holder leaves none behind."""
    options = TrainOptions("vit", output_dir=tmp_path)
    context = multiprocessing.get_context("fork")
    holding = context.Event()

    def hold():
        with exclusive_output_dir(options):
            holding.set()
            signal.pause()

    holder = context.Process(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=60)
        with pytest.raises(ValueError) as refusal, exclusive_output_dir(options):
            pass
        assert str(refusal.value) == (
            f"`output_dir` (--output-dir) {tmp_path} is in use by another `train` run (process {holder.pid}); wait "
            "for it to end, or choose another --output-dir."
        )
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    with exclusive_output_dir(options):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    with exclusive_output_dir(options):  # released at the end of the block
        pass
