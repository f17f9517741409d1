"""hf_visiontx: the encoder-decoder Transformer, ViT and Swin as first-class Hugging Face models.

Importing the package registers every model type with transformers' Auto classes and the
`seq2seq-translation` pipeline task, so `AutoModelForSeq2SeqLM.from_pretrained(dir)`,
`AutoModelForImageClassification.from_pretrained(dir)` and `pipeline("seq2seq-translation", model=dir)` work.
"""

import importlib.util
import sys
from pathlib import Path


def _load_checkout_modeling() -> None:
    """Import the repository's top-level `modeling/` folder as `hf_visiontx.modeling` when this package is
    imported from a source checkout.

    An installed package holds `hf_visiontx/modeling/` (setup.py maps the folder there). Run from the root of a
    checkout, Python finds the checkout's `hf_visiontx/` first (the working directory leads `sys.path`), and that
    folder has no `modeling/`: the model files sit beside it.
    """
    package_dir = Path(__file__).parent
    checkout_modeling = package_dir.parent / "modeling" / "__init__.py"
    if (package_dir / "modeling").is_dir() or not checkout_modeling.is_file():
        return
    spec = importlib.util.spec_from_file_location(
        f"{__name__}.modeling", checkout_modeling, submodule_search_locations=[str(checkout_modeling.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_load_checkout_modeling()

from . import modeling  # noqa: E402
from .hub import save_composite
from .modeling import *  # noqa: F403  (the model classes and configs, listed in modeling.__all__)
from .pipelines import TranslationPipeline, register_pipelines
from .registration import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()
register_pipelines()

__all__ = [*modeling.__all__, "TranslationPipeline", "save_composite", "__version__"]
