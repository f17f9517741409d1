"""Model files in transformers' one-model-one-file style; each is valid Hub remote code on its own."""

from .configuration_transformer import TRANSFORMER_PRESETS, VtxTransformerConfig
from .modeling_transformer import (
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxTransformerPreTrainedModel,
)

__all__ = [
    "TRANSFORMER_PRESETS",
    "VtxTransformerConfig",
    "VtxTransformerForConditionalGeneration",
    "VtxTransformerModel",
    "VtxTransformerPreTrainedModel",
]
