"""Model files in transformers' one-model-one-file style; each is valid Hub remote code on its own."""

from .configuration_transformer import TRANSFORMER_PRESETS, VtxTransformerConfig
from .configuration_swin import SWIN_PRESETS, VtxSwinConfig
from .configuration_vit import VIT_PRESETS, VtxViTConfig, bit_backbone_config
from .modeling_swin import (
    VtxSwinBackbone,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
    VtxSwinPreTrainedModel,
)
from .modeling_transformer import (
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxTransformerPreTrainedModel,
)

from .modeling_vit import (
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
    VtxViTPreTrainedModel,
)

__all__ = [
    "TRANSFORMER_PRESETS",
    "VtxTransformerConfig",
    "VtxTransformerForConditionalGeneration",
    "VtxTransformerModel",
    "VtxTransformerPreTrainedModel",
    "VIT_PRESETS",
    "VtxViTConfig",
    "VtxViTForImageClassification",
    "VtxViTForMaskedImageModeling",
    "VtxViTModel",
    "VtxViTPreTrainedModel",
    "bit_backbone_config",
    "SWIN_PRESETS",
    "VtxSwinBackbone",
    "VtxSwinConfig",
    "VtxSwinForImageClassification",
    "VtxSwinForMaskedImageModeling",
    "VtxSwinModel",
    "VtxSwinPreTrainedModel",
]
