"""transformers' Swin (microsoft/swin-*) -> ours: `SwinModel`, `SwinForImageClassification`,
`SwinForMaskedImageModeling` -> the `VtxSwin*` classes."""

import torch
from transformers import SwinConfig, SwinForImageClassification, SwinForMaskedImageModeling, SwinModel

from ..modeling import VtxSwinConfig
from .mapping import LABEL_FIELDS, same_fields, square_patch_size, stack_projections


def convert_config(model: SwinModel | SwinForImageClassification | SwinForMaskedImageModeling) -> VtxSwinConfig:
    """Our configuration for the model's."""
    return swin_to_vtx_config(model.config)


def convert_state_dict(
    model: SwinModel | SwinForImageClassification | SwinForMaskedImageModeling, config: VtxSwinConfig
) -> dict[str, torch.Tensor]:
    """The model's weights under our names: stages instead of encoder layers, q/k/v stacked into `qkv_proj`."""
    source = model.state_dict()
    state = {
        key.replace("encoder.layers.", "stages.").replace(
            "attention.relative_position_bias.relative_position_bias_table", "attention.relative_position_bias_table"
        ): value
        for key, value in source.items()
        if not any(f".attention.{name}_proj." in key for name in "qkv")
    }
    prefix = "" if isinstance(model, SwinModel) else "swin."
    for stage, depth in enumerate(config.depths):
        for block in range(depth):
            src = f"{prefix}encoder.layers.{stage}.blocks.{block}.attention"
            dst = f"{prefix}stages.{stage}.blocks.{block}.attention"
            state |= stack_projections(source, [f"{src}.{n}_proj" for n in "qkv"], f"{dst}.qkv_proj")
    return state


def swin_to_vtx_config(config: SwinConfig) -> VtxSwinConfig:
    """Our configuration for a transformers Swin one."""
    shared = same_fields(
        config,
        "image_size num_channels embed_dim depths num_heads window_size mlp_ratio qkv_bias hidden_dropout_prob "
        "attention_probs_dropout_prob drop_path_rate hidden_act use_absolute_embeddings layer_norm_eps "
        f"initializer_range encoder_stride {LABEL_FIELDS}",
    )
    return VtxSwinConfig(**shared, patch_size=square_patch_size(config.patch_size))
