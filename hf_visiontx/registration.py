"""Registration of every hf_visiontx config, model, tokenizer and image processor with transformers' Auto classes."""

from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
from transformers.models.vit.image_processing_vit import ViTImageProcessor

from .modeling import (
    VtxSwinBackbone,
    VtxSwinConfig,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
    VtxTransformerConfig,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxViTConfig,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
)

# The image processors of transformers' ViT (resize, rescale, normalise) serve our vision models unchanged:
# Pillow backend by default, torchvision backend when that optional package is installed.
VISION_IMAGE_PROCESSORS = {"pil": ViTImageProcessorPil, "torchvision": ViTImageProcessor}


# Each family's classes and the Auto class that loads each. Marking them with `register_for_auto_class` makes
# `save_pretrained` / `push_to_hub` copy the model files into the saved directory (with `auto_map` in config.json),
# so that a saved model loads with `trust_remote_code=True` where hf_visiontx is not installed.
REMOTE_CODE_CLASSES = {
    VtxTransformerConfig: "AutoConfig",
    VtxTransformerModel: "AutoModel",
    VtxTransformerForConditionalGeneration: "AutoModelForSeq2SeqLM",
    VtxViTConfig: "AutoConfig",
    VtxViTModel: "AutoModel",
    VtxViTForImageClassification: "AutoModelForImageClassification",
    VtxViTForMaskedImageModeling: "AutoModelForMaskedImageModeling",
    VtxSwinConfig: "AutoConfig",
    VtxSwinModel: "AutoModel",
    VtxSwinForImageClassification: "AutoModelForImageClassification",
    VtxSwinForMaskedImageModeling: "AutoModelForMaskedImageModeling",
    VtxSwinBackbone: "AutoBackbone",
}


def register_auto_classes() -> None:
    """Make the Auto classes resolve our model types, and saved models carry their code; calling it twice is
    harmless."""
    for cls, auto_class in REMOTE_CODE_CLASSES.items():
        cls.register_for_auto_class(auto_class)

    AutoConfig.register(VtxTransformerConfig.model_type, VtxTransformerConfig, exist_ok=True)
    AutoModel.register(VtxTransformerConfig, VtxTransformerModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(VtxTransformerConfig, VtxTransformerForConditionalGeneration, exist_ok=True)
    AutoTokenizer.register(VtxTransformerConfig, tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)

    AutoConfig.register(VtxViTConfig.model_type, VtxViTConfig, exist_ok=True)
    AutoModel.register(VtxViTConfig, VtxViTModel, exist_ok=True)
    AutoModelForImageClassification.register(VtxViTConfig, VtxViTForImageClassification, exist_ok=True)
    AutoModelForMaskedImageModeling.register(VtxViTConfig, VtxViTForMaskedImageModeling, exist_ok=True)
    AutoImageProcessor.register(VtxViTConfig, image_processor_classes=VISION_IMAGE_PROCESSORS, exist_ok=True)

    AutoConfig.register(VtxSwinConfig.model_type, VtxSwinConfig, exist_ok=True)
    AutoModel.register(VtxSwinConfig, VtxSwinModel, exist_ok=True)
    AutoModelForImageClassification.register(VtxSwinConfig, VtxSwinForImageClassification, exist_ok=True)
    AutoModelForMaskedImageModeling.register(VtxSwinConfig, VtxSwinForMaskedImageModeling, exist_ok=True)
    AutoBackbone.register(VtxSwinConfig, VtxSwinBackbone, exist_ok=True)
    AutoImageProcessor.register(VtxSwinConfig, image_processor_classes=VISION_IMAGE_PROCESSORS, exist_ok=True)
