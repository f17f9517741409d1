"""The models, in transformers' one-model-one-file style: `configuration_<family>.py` and `modeling_<family>.py`
per family, the family table (`families.py`), and modules with one job each that they share (attention, the
feed-forward block, heads, image tokens, input checks, config checks, checkpoint checks, the speed-only paths in
`fast_paths.py`, Hub cards).

The files import only torch, transformers, the standard library and each other, so they are Hub remote code: a
saved model carries its configuration and model file with every sibling they import, and loads with
`trust_remote_code=True` where hf_visiontx is not installed. The Transformer carries `attention.py`,
`feed_forward.py`, `input_checks.py`, `config_checks.py`, `checkpoint_checks.py`, `fast_paths.py`, `hub_mixin.py`,
`card_text.py` and `families.py`; ViT and Swin carry those and `heads.py`, `image_tokens.py`, `image_size.py`, and
ViT also `modeling_bit.py` (`tests/test_remote_code.py` checks the sets).
"""

from .configuration_swin import SWIN_PRESETS, VtxSwinConfig
from .configuration_transformer import TRANSFORMER_PRESETS, VtxTransformerConfig
from .configuration_vit import VIT_PRESETS, VtxViTConfig, bit_backbone_config
from .modeling_swin import (
    VtxSwinBackbone,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
    VtxSwinPreTrainedModel,
)
from .modeling_transformer import (
    VtxTransformerForCausalLM,
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
    "SWIN_PRESETS",
    "TRANSFORMER_PRESETS",
    "VIT_PRESETS",
    "VtxSwinBackbone",
    "VtxSwinConfig",
    "VtxSwinForImageClassification",
    "VtxSwinForMaskedImageModeling",
    "VtxSwinModel",
    "VtxSwinPreTrainedModel",
    "VtxTransformerConfig",
    "VtxTransformerForCausalLM",
    "VtxTransformerForConditionalGeneration",
    "VtxTransformerModel",
    "VtxTransformerPreTrainedModel",
    "VtxViTConfig",
    "VtxViTForImageClassification",
    "VtxViTForMaskedImageModeling",
    "VtxViTModel",
    "VtxViTPreTrainedModel",
    "bit_backbone_config",
]
