"""What `save_pretrained` leaves in a directory: the files of the model it saved, and no weights of an earlier one;
and a save that fails (a full disk, a failing rename) or is killed never leaves a mixture of two models that loads."""

import errno
import functools
import itertools
import json
import multiprocessing
import os
import resource
import signal
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from transformers import VisionEncoderDecoderModel, ViTConfig, ViTImageProcessor, ViTModel

from hf_visiontx import VtxTransformerForCausalLM, VtxViTForImageClassification, VtxViTModel
from hf_visiontx.convert import convert_checkpoint
from hf_visiontx.hub.composite import save_composite
from hf_visiontx.modeling.hub_mixin import STAGING_PREFIX
from hf_visiontx.training import TrainOptions
from hf_visiontx.training.loop import save_model
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config


def tiny_classifier(seed: int) -> VtxViTForImageClassification:
    torch.manual_seed(seed)
    return VtxViTForImageClassification(tiny_vit_config()).eval()


def weight_files(directory) -> list[str]:
    return sorted(
        path.name
        for path in directory.iterdir()
        if path.suffix in (".safetensors", ".bin", ".json") and path.name.startswith(("model", "pytorch_model"))
    )


def assert_loads_as(directory, model) -> None:
    reloaded = VtxViTForImageClassification.from_pretrained(directory).eval()
    pixels = pixel_batch()
    with torch.no_grad():
        assert torch.equal(reloaded(pixels).logits, model(pixels).logits)


@pytest.mark.parametrize(("first_shard_size", "second_shard_size"), [(None, "20KB"), ("20KB", None)])
def test_a_save_over_another_model_leaves_only_its_own_weight_files(tmp_path, first_shard_size, second_shard_size):
    """Unsharded then sharded: the old `model.safetensors` would be loaded in place of the new shards. Sharded then
    unsharded: the old index and shards would be uploaded with the new file."""
    first, second = tiny_classifier(seed=0), tiny_classifier(seed=1)
    first.save_pretrained(tmp_path, **({"max_shard_size": first_shard_size} if first_shard_size else {}))
    second.save_pretrained(tmp_path, **({"max_shard_size": second_shard_size} if second_shard_size else {}))
    files = weight_files(tmp_path)
    if second_shard_size:
        assert "model.safetensors" not in files and "model.safetensors.index.json" in files and len(files) > 2
    else:
        assert files == ["model.safetensors"]
    assert_loads_as(tmp_path, second)


def test_a_save_removes_an_older_pickled_checkpoint_and_keeps_other_files(tmp_path):
    save_file({"weight": torch.zeros(2)}, tmp_path / "pytorch_model.bin")  # stands for an older pickled save
    (tmp_path / "notes.txt").write_text("mine")
    model = tiny_classifier(seed=2)
    model.save_pretrained(tmp_path)
    assert weight_files(tmp_path) == ["model.safetensors"]
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert_loads_as(tmp_path, model)


def directory_snapshot(directory) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones included) with its bytes."""
    return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def run_forked(action, file_size_limit: int | None = None, kill_at_move: int | None = None) -> tuple[int, str]:
    """Run `action()` in a forked process; returns its exit code and "done" or the error it raised.

    Args:
        file_size_limit: files cannot grow past this many bytes, as on a full disk (writes fail with EFBIG where a
            full disk gives ENOSPC).
        kill_at_move: the process SIGKILLs itself when it is about to make this rename (`os.replace`), 1-based.
    """
    context = multiprocessing.get_context("fork")
    outcome = context.SimpleQueue()

    def forked():
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with an error instead of killing us
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))
        if kill_at_move is not None:
            replace, moves = os.replace, []

            def replace_or_die(source, target):
                moves.append(target)
                if len(moves) == kill_at_move:
                    os.kill(os.getpid(), signal.SIGKILL)
                replace(source, target)

            os.replace = replace_or_die
        try:
            action()
            outcome.put("done")
        except Exception as error:  # reported to the test, which asserts on it
            outcome.put(f"{type(error).__name__}: {error}")

    process = context.Process(target=forked)
    process.start()
    process.join(timeout=120)
    return process.exitcode, (outcome.get() if process.exitcode == 0 else "killed")


def test_a_save_that_runs_out_of_space_leaves_the_earlier_model(tmp_path):
    """The config (small) fits, the weights (large) do not: the earlier model must still load, unchanged."""
    first, second = tiny_classifier(seed=0), tiny_classifier(seed=1)
    first.save_pretrained(tmp_path)
    before = directory_snapshot(tmp_path)
    exit_code, outcome = run_forked(lambda: second.save_pretrained(tmp_path), file_size_limit=16 * 1024)
    assert exit_code == 0 and "File too large" in outcome
    assert directory_snapshot(tmp_path) == before
    assert_loads_as(tmp_path, first)
    second.save_pretrained(tmp_path)  # with room again, the new model replaces the old one
    assert_loads_as(tmp_path, second)
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


@pytest.mark.parametrize("failing_move", [1, 2, 3, 5, 8])
def test_a_save_whose_files_cannot_be_moved_into_place_is_undone(tmp_path, monkeypatch, failing_move):
    """The n-th rename of the commit fails: the renames before it are undone, the earlier (sharded) model loads."""
    first, second = tiny_classifier(seed=0), tiny_classifier(seed=1)
    first.save_pretrained(tmp_path, max_shard_size="20KB")
    before = directory_snapshot(tmp_path)
    replace, moves = os.replace, []

    def failing_replace(source, target):
        moves.append(target)
        if len(moves) == failing_move:
            raise OSError(errno.EIO, "Input/output error")
        replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="Input/output error"):
        second.save_pretrained(tmp_path)  # unsharded: replaces config.json and removes the index and shards
    monkeypatch.undo()
    assert directory_snapshot(tmp_path) == before
    assert_loads_as(tmp_path, first)


@pytest.mark.parametrize("sharded", [False, True])
def test_a_save_killed_at_any_rename_never_leaves_a_mixture_that_loads(tmp_path, sharded):
    """SIGKILL at each rename of the commit in turn: the folder loads as the earlier model, or as the new one, or
    not at all (no config.json yet); and the next save cleans up after the killed one."""
    first, second = tiny_classifier(seed=0), tiny_classifier(seed=1)
    outcomes = []
    for kill_at_move in itertools.count(1):
        directory = tmp_path / str(kill_at_move)
        first.save_pretrained(directory, **({} if sharded else {"max_shard_size": "60KB"}))
        save = functools.partial(second.save_pretrained, directory, **({"max_shard_size": "60KB"} if sharded else {}))
        exit_code, _ = run_forked(save, kill_at_move=kill_at_move)
        if not (directory / "config.json").exists():
            with pytest.raises(OSError):
                VtxViTForImageClassification.from_pretrained(directory)
            outcomes.append("refuses to load")
        else:
            reloaded = VtxViTForImageClassification.from_pretrained(directory).eval()
            with torch.no_grad():
                logits = reloaded(pixel_batch()).logits
            assert torch.equal(logits, (second if exit_code == 0 else first)(pixel_batch()).logits)
            outcomes.append("new" if exit_code == 0 else "earlier")
        if exit_code == 0:
            break
        assert exit_code == -signal.SIGKILL
        second.save_pretrained(directory)
        assert not list(directory.glob(f"{STAGING_PREFIX}*"))
        assert_loads_as(directory, second)
    assert outcomes[0] == "earlier" and outcomes[-1] == "new" and "refuses to load" in outcomes


def tiny_captioner(seed: int) -> VisionEncoderDecoderModel:
    """Our tiny ViT encoder with our tiny Transformer decoder attending to it: a transformers composite."""
    torch.manual_seed(seed)
    decoder = VtxTransformerForCausalLM(tiny_transformer_config(add_cross_attention=True, is_decoder=True))
    return VisionEncoderDecoderModel(encoder=VtxViTModel(tiny_vit_config()), decoder=decoder).eval()


def test_a_composite_save_leaves_only_its_weight_files_and_is_all_or_nothing(tmp_path):
    first, second = tiny_captioner(seed=0), tiny_captioner(seed=1)
    save_composite(first, tmp_path)
    before = directory_snapshot(tmp_path)
    exit_code, outcome = run_forked(lambda: save_composite(second, tmp_path), file_size_limit=16 * 1024)
    assert exit_code == 0 and "File too large" in outcome
    assert directory_snapshot(tmp_path) == before
    save_composite(second, tmp_path, max_shard_size="60KB")
    assert "model.safetensors" not in weight_files(tmp_path)  # the first save's single file would shadow the shards
    reloaded = VisionEncoderDecoderModel.from_pretrained(tmp_path).eval()
    pixels, decoder_input_ids = pixel_batch(), torch.tensor([[1, 5, 6]] * 3)
    with torch.no_grad():
        expected = second(pixel_values=pixels, decoder_input_ids=decoder_input_ids).logits
        assert torch.equal(reloaded(pixel_values=pixels, decoder_input_ids=decoder_input_ids).logits, expected)


class NoTrainer(SimpleNamespace):
    """What `save_model` reads of a `Trainer`: the model, its processor, and the process it runs in."""

    def is_world_process_zero(self) -> bool:
        return True


def test_the_train_command_s_final_save_leaves_the_earlier_results_when_the_disk_is_full(tmp_path):
    """Model, image processor, metrics.json and card: all of the new run or all of the earlier one."""
    options = TrainOptions("vit", output_dir=tmp_path)
    accelerator = SimpleNamespace(wait_for_everyone=lambda: None)
    earlier = NoTrainer(model=tiny_classifier(0), processing_class=ViTImageProcessor(), accelerator=accelerator)
    save_model(earlier, options, {"test": {"accuracy": 0.25, "loss": 2.0}}, "digits")
    before = directory_snapshot(tmp_path)
    later = NoTrainer(model=tiny_classifier(1), processing_class=ViTImageProcessor(), accelerator=accelerator)
    save_later = functools.partial(save_model, later, options, {"test": {"accuracy": 0.75, "loss": 1.0}}, "digits")
    exit_code, outcome = run_forked(save_later, file_size_limit=16 * 1024)
    assert exit_code == 0 and "File too large" in outcome
    assert directory_snapshot(tmp_path) == before
    save_later()
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["accuracy"] == 0.75
    assert "0.75" in (tmp_path / "README.md").read_text()
    assert_loads_as(tmp_path, later.model)


def test_a_conversion_that_runs_out_of_space_leaves_no_output(tmp_path):
    torch.manual_seed(0)
    ViTModel(ViTConfig(**tiny_vit_config().to_dict())).save_pretrained(tmp_path / "vit")
    out_dir = tmp_path / "converted"
    exit_code, outcome = run_forked(lambda: convert_checkpoint(tmp_path / "vit", out_dir), file_size_limit=16 * 1024)
    assert exit_code == 0 and "File too large" in outcome
    assert sorted(path.name for path in tmp_path.iterdir()) == ["vit"]  # no output, no staging folder
    convert_checkpoint(tmp_path / "vit", out_dir)
    assert (
        VtxViTModel.from_pretrained(out_dir).num_parameters()
        == ViTModel.from_pretrained(tmp_path / "vit").num_parameters()
    )
