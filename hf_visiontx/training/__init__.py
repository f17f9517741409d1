"""Training the three families from the command line or from Python.

    from hf_visiontx.training import TrainOptions, train
    result = train(TrainOptions("vit", output_dir="out/vit"))   # the embedded digits, small ViT
    result.metrics["test"]["accuracy"], result.model_dir

`hf-visiontx train {transformer,vit,swin,lm,captioner}` is the same with command-line options.
"""

from collections.abc import Sequence

import datasets
from transformers import TrainerCallback

from ..hub.cards import check_card_writable
from .captioner import train_captioner
from .images import train_image_classifier
from .language_model import train_language_model
from .options import TrainOptions, TrainResult
from .recipes import CAPTIONER_TASK, Recipe, model_config, recipe, run_task
from .run_directory import exclusive_output_dir
from .translation import train_translator

# What trains each task: the family table's (`Family.task`, `TrainingRun.task`) and the captioner's.
TRAINERS = {
    "translation": train_translator,
    "image-classification": train_image_classifier,
    "text-generation": train_language_model,
    CAPTIONER_TASK: train_captioner,
}


def train(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate, save (and push) the model `options` describe; the run's task picks the trainer. A README.md
    written by hand in `output_dir`, which the model card would replace, is refused before anything starts.

    One run at a time per `output_dir`: a second is refused (`ValueError`) while the first runs.

    Args:
        callbacks: extra `TrainerCallback`s for the `Trainer` (for example to log or stop early).
    """
    check_card_writable(options.output_dir, "`output_dir` (--output-dir)")
    with exclusive_output_dir(options):  # a second run into the same directory is refused while this one runs
        if options.progress:
            return TRAINERS[run_task(options.family)](options, callbacks)
        shown = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # `progress=False` hides the data preparation's bars too
        try:
            return TRAINERS[run_task(options.family)](options, callbacks)
        finally:
            if shown:
                datasets.enable_progress_bars()


__all__ = [
    "Recipe",
    "TrainOptions",
    "TrainResult",
    "model_config",
    "recipe",
    "train",
    "train_captioner",
    "train_image_classifier",
    "train_language_model",
    "train_translator",
]
