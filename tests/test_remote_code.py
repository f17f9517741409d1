"""Saved models carry their code: they load with `trust_remote_code=True` where hf_visiontx cannot be imported."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.swin_tester import tiny_swin_config
from support.transformer_tester import padded_source_batch, tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    bit_backbone_config,
)

# Put first in a script, this makes hf_visiontx unimportable: a meta-path finder refuses it before anything else
# is imported.
REFUSE_HF_VISIONTX = textwrap.dedent(
    """
    import importlib.abc, sys

    class RefuseHfVisiontx(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "hf_visiontx":
                raise ImportError("hf_visiontx is not importable in this process")
            return None

    sys.meta_path.insert(0, RefuseHfVisiontx())
    """
)

REMOTE_LOAD_SCRIPT = REFUSE_HF_VISIONTX + textwrap.dedent(
    """
    import torch, transformers
    from safetensors.torch import load_file, save_file

    model_dir, auto_name, inputs_file, outputs_file, output_name = sys.argv[1:6]
    auto_class = getattr(transformers, auto_name)
    try:
        auto_class.from_pretrained(model_dir)
    except ValueError as error:
        assert "trust_remote_code=True" in str(error), error
    else:
        raise AssertionError("loading custom code without trust_remote_code=True must fail")
    model = auto_class.from_pretrained(model_dir, trust_remote_code=True).eval()
    assert not any(name.split(".")[0] == "hf_visiontx" for name in sys.modules)
    inputs = load_file(inputs_file)
    with torch.no_grad():
        output = model(**inputs)[output_name]
    save_file({"output": output.contiguous()}, outputs_file)
    print(type(model).__module__, type(model).__name__)
    """
)

CASES = [
    (VtxTransformerForConditionalGeneration, tiny_transformer_config, "AutoModelForSeq2SeqLM", "logits"),
    (VtxViTForMaskedImageModeling, tiny_vit_config, "AutoModelForMaskedImageModeling", "reconstruction"),
    (VtxSwinForImageClassification, tiny_swin_config, "AutoModelForImageClassification", "logits"),
]


SHARED_SIBLINGS = {"attention.py", "fast_paths.py", "feed_forward.py", "hub_mixin.py", "input_checks.py"}
REMOTE_SIBLINGS = {  # what each family's model file imports, transitively
    "transformer": SHARED_SIBLINGS,
    "vit": SHARED_SIBLINGS | {"heads.py", "image_tokens.py", "modeling_bit.py"},
    "swin": SHARED_SIBLINGS | {"heads.py", "image_tokens.py"},
}


def inputs_for(model_class) -> dict[str, torch.Tensor]:
    if model_class is VtxTransformerForConditionalGeneration:
        input_ids, attention_mask = padded_source_batch()
        return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": input_ids[:, :4].clone()}
    return {"pixel_values": pixel_batch()}


@pytest.mark.parametrize(("model_class", "make_config", "auto_name", "output_name"), CASES,
                         ids=[case[0].__name__ for case in CASES])
def test_saved_model_loads_as_remote_code_without_hf_visiontx(tmp_path, model_class, make_config, auto_name,
                                                             output_name):
    torch.manual_seed(0)
    model = model_class(make_config()).eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    saved = {path.name for path in model_dir.iterdir()}
    family = model_class.__module__.rsplit("_", 1)[-1]  # transformer / vit / swin
    assert {f"modeling_{family}.py", f"configuration_{family}.py", *REMOTE_SIBLINGS[family]} <= saved
    auto_map = json.loads((model_dir / "config.json").read_text())["auto_map"]
    assert auto_map[auto_name] == f"modeling_{family}.{model_class.__name__}" and "AutoModel" in auto_map

    inputs = inputs_for(model_class)
    save_file(inputs, tmp_path / "inputs.safetensors")
    with torch.no_grad():
        expected = model(**inputs)[output_name]
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(model_dir), auto_name, str(tmp_path / "inputs.safetensors"),
         str(tmp_path / "outputs.safetensors"), output_name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert model_class.__name__ in result.stdout and "hf_visiontx" not in result.stdout
    assert torch.equal(load_file(tmp_path / "outputs.safetensors")["output"], expected)


def test_a_checkpoint_of_one_head_loads_into_another_head_as_remote_code(tmp_path):
    torch.manual_seed(0)
    VtxSwinForImageClassification(tiny_swin_config()).save_pretrained(tmp_path / "model")
    save_file({"pixel_values": pixel_batch()}, tmp_path / "inputs.safetensors")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(tmp_path / "model"), "AutoModel", str(tmp_path / "inputs.safetensors"),
         str(tmp_path / "outputs.safetensors"), "pooler_output"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "VtxSwinModel" in result.stdout
    assert load_file(tmp_path / "outputs.safetensors")["output"].shape == (3, 32)


def test_a_hybrid_vit_carries_its_bit_resnet_as_remote_code(tmp_path):
    """The hybrid's ResNet lives in `modeling_bit.py`, which the ViT model file imports: it travels along."""
    torch.manual_seed(0)
    config = tiny_vit_config(patch_size=1, backbone_config=bit_backbone_config(depths=(1, 1), width=8, num_groups=2))
    model = VtxViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "modeling_bit.py").is_file()
    save_file({"pixel_values": pixel_batch()}, tmp_path / "inputs.safetensors")
    with torch.no_grad():
        expected = model(pixel_batch()).logits
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(tmp_path / "model"), "AutoModelForImageClassification",
         str(tmp_path / "inputs.safetensors"), str(tmp_path / "outputs.safetensors"), "logits"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(load_file(tmp_path / "outputs.safetensors")["output"], expected)
