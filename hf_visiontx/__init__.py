"""hf_visiontx: the encoder-decoder Transformer, ViT and Swin as first-class Hugging Face models.

Importing the package registers every model type with transformers' Auto classes and the
`seq2seq-translation` pipeline task, so `AutoModelForSeq2SeqLM.from_pretrained(dir)` and
`pipeline("seq2seq-translation", model=dir)` work.
"""

from .modeling import (
    TRANSFORMER_PRESETS,
    VIT_PRESETS,
    VtxTransformerConfig,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxTransformerPreTrainedModel,
    VtxViTConfig,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
    VtxViTPreTrainedModel,
    bit_backbone_config,
)
from .pipelines import TranslationPipeline, register_pipelines
from .registration import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()
register_pipelines()

__all__ = [
    "TRANSFORMER_PRESETS",
    "TranslationPipeline",
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
    "__version__",
]
