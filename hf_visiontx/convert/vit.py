"""transformers' ViT (google/vit-*, facebook/deit-* without distillation token) -> ours: `ViTModel`,
`ViTForImageClassification`, `ViTForMaskedImageModeling` -> the `VtxViT*` classes."""

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTForMaskedImageModeling, ViTModel

from ..modeling import VtxViTConfig
from .mapping import square_patch_size, stack_projections


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
    return VtxViTConfig(
        image_size=config.image_size,
        patch_size=square_patch_size(config.patch_size),
        num_channels=config.num_channels,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        qkv_bias=config.qkv_bias,
        pooling="cls",
        use_pooler=has_pooler,
        pooler_act=config.pooler_act,
        encoder_stride=config.encoder_stride,
        id2label=config.id2label,
        label2id=config.label2id,
        problem_type=config.problem_type,
    )
