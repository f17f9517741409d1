"""Training a ViT or Swin image classifier with `Trainer`: from scratch (small default or a paper preset) or
fine-tuned from a saved model (`--from`), scored by accuracy."""

import logging
from collections.abc import Sequence

from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    BaseImageProcessor,
    PreTrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    set_seed,
)

from ..data.images import DIGITS_DESCRIPTION, image_transform, load_image_classification_data
from ..registration import VISION_IMAGE_PROCESSORS
from .loop import pretrained_config, train_evaluate_save, training_arguments
from .options import TrainOptions, TrainResult
from .recipes import model_config, recipe
from .run_directory import checkpoint_to_resume
from .scoring import classification_metrics

logger = logging.getLogger(__name__)


def _new_model_config(options: TrainOptions) -> PreTrainedConfig:
    """The configuration of a new model: the preset or the small default, at `image_size` when given."""
    sizes = {} if options.image_size is None else {"image_size": options.image_size}
    return model_config(options.family, options.preset, **sizes)


def _model(options: TrainOptions, config: PreTrainedConfig, class_names: list[str]) -> PreTrainedModel:
    """The model to train, with a head for `class_names` (a new head when a loaded model has other classes)."""
    labels = {"id2label": dict(enumerate(class_names)), "label2id": {name: i for i, name in enumerate(class_names)}}
    if options.from_model is None:
        config.update(labels)
        return AutoModelForImageClassification.from_config(config)
    return AutoModelForImageClassification.from_pretrained(
        options.from_model, num_labels=len(class_names), ignore_mismatched_sizes=True, **labels
    )


def _image_processor(options: TrainOptions, config: PreTrainedConfig) -> BaseImageProcessor:
    """The loaded model's image processor; for a new model, or a loaded one saved without its processor,
    transformers' ViT processor at the model's size (resize, rescale to [0, 1], normalise with mean and std 0.5)."""
    if options.from_model is not None:
        try:
            return AutoImageProcessor.from_pretrained(options.from_model)
        except OSError:
            logger.warning(
                "%s has no image processor; using ViT's at the model's size with mean and std 0.5.", options.from_model
            )
    height, width = config.image_height_width
    return VISION_IMAGE_PROCESSORS["pil"](
        size={"height": height, "width": width}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )


def train_image_classifier(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate (validation and test accuracy), save and optionally push an image classifier.

    The data is checked before the model is built; see `hf_visiontx.data.images.load_image_classification_data`.
    `callbacks` are added to the `Trainer`.
    """
    resume_from = checkpoint_to_resume(options)
    set_seed(options.seed)
    config = _new_model_config(options) if options.from_model is None else pretrained_config(options)
    data = load_image_classification_data(
        options.dataset,
        options.image_column,
        options.label_column,
        image_size=max(config.image_height_width),
        seed=options.seed,
    )
    class_names = data["train"].features[options.label_column].names
    model = _model(options, config, class_names)
    processor = _image_processor(options, model.config)
    settings = recipe(
        options.family,
        options.preset,
        fine_tuning=options.from_model is not None,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
    )
    train_transform = image_transform(processor, options.image_column, options.label_column, settings.max_shift)
    eval_transform = image_transform(processor, options.image_column, options.label_column)
    evaluation = {split: data[split].with_transform(eval_transform) for split in ("validation", "test")}
    args = training_arguments(options, settings, "accuracy", remove_unused_columns=False)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data["train"].with_transform(train_transform),
        eval_dataset=evaluation["validation"],
        processing_class=processor,
        compute_metrics=classification_metrics(),
        callbacks=list(callbacks),
    )
    description = DIGITS_DESCRIPTION if options.dataset is None else " ".join(options.dataset)
    return train_evaluate_save(trainer, options, resume_from, evaluation, description)
