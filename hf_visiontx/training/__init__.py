"""Training the three families from the command line or from Python.

    from hf_visiontx.training import TrainOptions, train
    result = train(TrainOptions("vit", output_dir="out/vit"))   # the embedded digits, small ViT
    result.metrics["test"]["accuracy"], result.model_dir

`hf-visiontx train {transformer,vit,swin}` is the same with command-line options.
"""

from collections.abc import Sequence

from transformers import TrainerCallback

from .images import train_image_classifier
from .options import TrainOptions, TrainResult
from .translation import train_translator


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate, save (and push) the model `options` describe; the family picks the task.

    Args:
        callbacks: extra `TrainerCallback`s for the `Trainer` (for example to log or stop early).
    """
    run = train_translator if options.family == "transformer" else train_image_classifier
    return run(options, callbacks)


__all__ = ["TrainOptions", "TrainResult", "train", "train_image_classifier", "train_translator"]
