"""transformers' ViT (google/vit-*, facebook/deit-* without distillation token) -> ours: `ViTModel`,
`ViTForImageClassification`, `ViTForMaskedImageModeling` -> the `VtxViT*` classes."""

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTForMaskedImageModeling, ViTModel

from ..modeling import VtxViTConfig
from .mapping import LABEL_FIELDS, same_fields, square_patch_size, stack_projections


def convert_config(model: ViTModel | ViTForImageClassification | ViTForMaskedImageModeling) -> VtxViTConfig:
    """Our configuration for the model's ([CLS] pooling; the pre-logits layer when it has one)."""
    base = model if isinstance(model, ViTModel) else model.vit
    if base.pooler is not None and model.config.pooler_output_size != model.config.hidden_size:
        raise ValueError("ViT pooler_output_size differs from hidden_size; VtxViTConfig's pre-logits keep the width.")
    return vit_to_vtx_config(model.config, has_pooler=base.pooler is not None)


def convert_state_dict(
    model: ViTModel | ViTForImageClassification | ViTForMaskedImageModeling, config: VtxViTConfig
) -> dict[str, torch.Tensor]:
    """The model's weights under our names: separate q/k/v projections stacked into `qkv_proj`."""
    prefix = "" if isinstance(model, ViTModel) else "vit."
    source = model.state_dict()
    state = {
        key.replace("pooler.dense.", "pooler.0."): value
        for key, value in source.items()
        if not any(f".attention.{name}_proj." in key for name in "qkv")
    }
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}layers.{i}.attention"
        state |= stack_projections(source, [f"{layer}.{n}_proj" for n in "qkv"], f"{layer}.qkv_proj")
    return state


def vit_to_vtx_config(config: ViTConfig, has_pooler: bool) -> VtxViTConfig:
    """Our configuration for a transformers ViT one ([CLS] pooling; the pre-logits layer when it has one)."""
    shared = same_fields(
        config,
        "image_size num_channels hidden_size num_hidden_layers num_attention_heads intermediate_size hidden_act "
        "hidden_dropout_prob attention_probs_dropout_prob layer_norm_eps initializer_range qkv_bias pooler_act "
        f"encoder_stride {LABEL_FIELDS}",
    )
    return VtxViTConfig(**shared, patch_size=square_patch_size(config.patch_size), pooling="cls", use_pooler=has_pooler)
