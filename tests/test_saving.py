"""What `save_pretrained` leaves in a directory: the files of the model it saved, and no weights of an earlier one."""

import pytest
import torch
from safetensors.torch import save_file

from hf_visiontx import VtxViTForImageClassification
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
