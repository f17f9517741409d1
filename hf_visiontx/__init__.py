"""hf_visiontx: the encoder-decoder Transformer, ViT and Swin as first-class Hugging Face models.

Importing the package registers every model type with transformers' Auto classes and the
`seq2seq-translation` and `image-captioning` pipeline tasks, so `AutoModelForSeq2SeqLM.from_pretrained(dir)`,
`AutoModelForImageClassification.from_pretrained(dir)`, `pipeline("seq2seq-translation", model=dir)` and
`pipeline("image-captioning", model=dir)` work.
"""

from . import source_checkout  # noqa: F401  (first: makes `hf_visiontx.modeling` importable from a checkout)

# isort: split
from . import modeling
from .hub import save_composite
from .modeling import *  # noqa: F403  (the model classes and configs, listed in modeling.__all__)
from .pipelines import ImageCaptioningPipeline, TranslationPipeline, register_pipelines
from .registration import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()
register_pipelines()

__all__ = [*modeling.__all__, "ImageCaptioningPipeline", "TranslationPipeline", "save_composite", "__version__"]
