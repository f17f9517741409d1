"""Registration of every hf_visiontx config, model, tokenizer and image processor with transformers' Auto classes,
derived from the family table (`hf_visiontx.modeling.families`)."""

import transformers
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, PreTrainedConfig, PreTrainedTokenizerFast
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
from transformers.models.vit.image_processing_vit import ViTImageProcessor

from . import modeling
from .modeling.families import FAMILIES, Family

# The image processors of transformers' ViT (resize, rescale, normalise) serve our vision models unchanged:
# Pillow backend by default, torchvision backend when that optional package is installed.
VISION_IMAGE_PROCESSORS = {"pil": ViTImageProcessorPil, "torchvision": ViTImageProcessor}


def config_class(family: Family) -> type[PreTrainedConfig]:
    """The family's config class."""
    return getattr(modeling, family.config_class)


def head_class(name: str) -> type[transformers.PreTrainedModel]:
    """Our model class called `name` (a head of the family table)."""
    return getattr(modeling, name)


def remote_code_classes() -> dict[type, str]:
    """Each family's config and heads, with the Auto class that loads each.

    Marking them with `register_for_auto_class` makes `save_pretrained` / `push_to_hub` copy the model files into
    the saved directory (with `auto_map` in config.json), so that a saved model loads with `trust_remote_code=True`
    where hf_visiontx is not installed.
    """
    classes: dict[type, str] = {}
    for family in FAMILIES:
        classes[config_class(family)] = "AutoConfig"
        classes.update({head_class(head.name): head.auto_class for head in family.heads})
    return classes


def register_auto_classes() -> None:
    """Make the Auto classes resolve our model types, and saved models carry their code; calling it twice is
    harmless."""
    for cls, auto_class in remote_code_classes().items():
        cls.register_for_auto_class(auto_class)
    for family in FAMILIES:
        config = config_class(family)
        AutoConfig.register(family.model_type, config, exist_ok=True)
        for head in family.heads:
            getattr(transformers, head.auto_class).register(config, head_class(head.name), exist_ok=True)
        if family.preprocessor == "tokenizer":
            AutoTokenizer.register(config, tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)
        else:
            AutoImageProcessor.register(config, image_processor_classes=VISION_IMAGE_PROCESSORS, exist_ok=True)
