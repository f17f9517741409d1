"""Training the three families from the command line or from Python.

    from hf_visiontx.training import TrainOptions, train
    result = train(TrainOptions("vit", output_dir="out/vit"))   # the embedded digits, small ViT
    result.metrics["test"]["accuracy"], result.model_dir

`hf-visiontx train {transformer,vit,swin}` is the same with command-line options.
"""

from collections.abc import Sequence

from transformers import TrainerCallback

from ..modeling.families import family
from .images import train_image_classifier
from .options import TrainOptions, TrainResult
from .recipes import Recipe, model_config, recipe
from .translation import train_translator

# What trains each task of the family table (`Family.task`).
TRAINERS = {"translation": train_translator, "image-classification": train_image_classifier}


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate, save (and push) the model `options` describe; the family's task picks the trainer.

    Args:
        callbacks: extra `TrainerCallback`s for the `Trainer` (for example to log or stop early).
    """
    return TRAINERS[family(options.family).task](options, callbacks)


__all__ = [
    "Recipe",
    "TrainOptions",
    "TrainResult",
    "model_config",
    "recipe",
    "train",
    "train_image_classifier",
    "train_translator",
]
