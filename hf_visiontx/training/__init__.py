"""Training the three families from the command line or from Python.

    from hf_visiontx.training import TrainOptions, train
    result = train(TrainOptions("vit", output_dir="out/vit"))   # the embedded digits, small ViT
    result.metrics["test"]["accuracy"], result.model_dir

`hf-visiontx train {transformer,vit,swin,captioner}` is the same with command-line options.
"""

from collections.abc import Sequence

from transformers import TrainerCallback

from ..modeling.families import family
from .captioner import train_captioner
from .images import train_image_classifier
from .options import CAPTIONER, TrainOptions, TrainResult
from .recipes import Recipe, model_config, recipe
from .translation import train_translator

# What trains each task of the family table (`Family.task`).
TRAINERS = {"translation": train_translator, "image-classification": train_image_classifier}
# What trains each run that composes families (`RUN_NAMES` beyond the family names).
RUN_TRAINERS = {CAPTIONER: train_captioner}


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate, save (and push) the model `options` describe; the run's trainer, else the family's task,
    picks the trainer.

    Args:
        callbacks: extra `TrainerCallback`s for the `Trainer` (for example to log or stop early).
    """
    if options.family in RUN_TRAINERS:
        return RUN_TRAINERS[options.family](options, callbacks)
    return TRAINERS[family(options.family).task](options, callbacks)


__all__ = [
    "Recipe",
    "TrainOptions",
    "TrainResult",
    "model_config",
    "recipe",
    "train",
    "train_captioner",
    "train_image_classifier",
    "train_translator",
]
