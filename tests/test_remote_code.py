"""Saved models carry their code: they load with `trust_remote_code=True` where hf_visiontx cannot be imported."""

import json
import subprocess
import sys
from functools import partial

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    bit_backbone_config,
)
from support.remote_code import REMOTE_LOAD_SCRIPT
from support.swin_tester import tiny_swin_config
from support.transformer_tester import padded_source_batch, tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config

CASES = [
    (VtxTransformerForConditionalGeneration, tiny_transformer_config, "AutoModelForSeq2SeqLM", "logits"),
    (
        VtxTransformerForCausalLM,
        partial(tiny_transformer_config, layer_norm_placement="pre", position_embedding_type="learned"),
        "AutoModelForCausalLM",
        "logits",
    ),
    (VtxViTForMaskedImageModeling, tiny_vit_config, "AutoModelForMaskedImageModeling", "reconstruction"),
    (VtxSwinForImageClassification, tiny_swin_config, "AutoModelForImageClassification", "logits"),
]


pytestmark = pytest.mark.slow  # each test loads a saved model in a new process

# What each family's configuration and model files import, transitively: the Python files a saved model carries
# besides configuration_<family>.py and modeling_<family>.py (modeling/__init__.py and docs/hub.md list them too).
SHARED_SIBLINGS = {
    "attention.py",
    "card_text.py",
    "checkpoint_checks.py",
    "config_checks.py",
    "families.py",
    "fast_paths.py",
    "feed_forward.py",
    "hub_mixin.py",
    "input_checks.py",
}
REMOTE_SIBLINGS = {
    "transformer": SHARED_SIBLINGS,
    "vit": SHARED_SIBLINGS | {"heads.py", "image_size.py", "image_tokens.py", "modeling_bit.py"},
    "swin": SHARED_SIBLINGS | {"heads.py", "image_size.py", "image_tokens.py"},
}


def inputs_for(model_class) -> dict[str, torch.Tensor]:
    if model_class is VtxTransformerForConditionalGeneration:
        input_ids, attention_mask = padded_source_batch()
        return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": input_ids[:, :4].clone()}
    if model_class is VtxTransformerForCausalLM:
        input_ids, attention_mask = padded_source_batch()
        return {"input_ids": input_ids, "attention_mask": attention_mask}
    return {"pixel_values": pixel_batch()}


def load_as_remote_code(tmp_path, auto_name: str, inputs: dict[str, torch.Tensor], output_name: str) -> tuple:
    """Load `tmp_path/model` with `auto_name` in a process where hf_visiontx cannot be imported and run it on
    `inputs`; return what the process printed and its `output_name` output."""
    save_file(inputs, tmp_path / "inputs.safetensors")
    arguments = [tmp_path / "model", auto_name, tmp_path / "inputs.safetensors", tmp_path / "outputs.safetensors"]
    command = [sys.executable, "-c", REMOTE_LOAD_SCRIPT, *map(str, arguments), output_name]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, load_file(tmp_path / "outputs.safetensors")["output"]


@pytest.mark.parametrize(
    ("model_class", "make_config", "auto_name", "output_name"), CASES, ids=[case[0].__name__ for case in CASES]
)
def test_saved_model_loads_as_remote_code_without_hf_visiontx(
    tmp_path, model_class, make_config, auto_name, output_name
):
    torch.manual_seed(0)
    model = model_class(make_config()).eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    saved = {path.name for path in model_dir.glob("*.py")}
    family = model_class.__module__.rsplit("_", 1)[-1]  # transformer / vit / swin
    assert saved == {f"modeling_{family}.py", f"configuration_{family}.py", *REMOTE_SIBLINGS[family]}
    auto_map = json.loads((model_dir / "config.json").read_text())["auto_map"]
    assert auto_map[auto_name] == f"modeling_{family}.{model_class.__name__}" and "AutoModel" in auto_map

    inputs = inputs_for(model_class)
    with torch.no_grad():
        expected = model(**inputs)[output_name]
    stdout, output = load_as_remote_code(tmp_path, auto_name, inputs, output_name)
    assert model_class.__name__ in stdout and "hf_visiontx" not in stdout
    assert torch.equal(output, expected)


def test_a_checkpoint_of_one_head_loads_into_another_head_as_remote_code(tmp_path):
    torch.manual_seed(0)
    VtxSwinForImageClassification(tiny_swin_config()).save_pretrained(tmp_path / "model")
    stdout, output = load_as_remote_code(tmp_path, "AutoModel", {"pixel_values": pixel_batch()}, "pooler_output")
    assert "VtxSwinModel" in stdout
    assert output.shape == (3, 32)


def test_a_hybrid_vit_carries_its_bit_resnet_as_remote_code(tmp_path):
    """The hybrid's ResNet lives in `modeling_bit.py`, which the ViT model file imports: it travels along."""
    torch.manual_seed(0)
    config = tiny_vit_config(patch_size=1, backbone_config=bit_backbone_config(depths=(1, 1), width=8, num_groups=2))
    model = VtxViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "modeling_bit.py").is_file()
    with torch.no_grad():
        expected = model(pixel_batch()).logits
    _, output = load_as_remote_code(
        tmp_path, "AutoModelForImageClassification", {"pixel_values": pixel_batch()}, "logits"
    )
    assert torch.equal(output, expected)
