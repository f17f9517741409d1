"""Training recipes: each paper's optimiser and schedule, and the model sizes to train.

- Transformer (Vaswani et al. 2017, section 5.3): Adam with beta = (0.9, 0.98), epsilon = 1e-9, no weight decay;
  the learning rate rises linearly for `warmup` steps and then decays with the inverse square root of the step
  (transformers' "inverse_sqrt" schedule, whose peak is the learning rate); label smoothing 0.1 (a field of
  `VtxTransformerConfig`). The paper's peak is d_model^-0.5 * warmup^-0.5 with 4000 warmup steps.
- Language model (`train lm`, the Transformer's decoder alone; GPT, Radford et al. 2018, section 4.1): Adam with
  weight decay 0.01, linear warmup then cosine decay; a learning rate of 2.5e-4 per batch of 64 for presets.
- ViT (Dosovitskiy et al. 2021; DeiT's recipe for training without extra data) and Swin (Liu et al. 2021, section
  4.1): AdamW with weight decay 0.05, linear warmup then cosine decay; a base learning rate scaled linearly with
  the batch size (DeiT: 5e-4 per 512 images; Swin: 1e-3 per 1024); stochastic depth (drop path) for Swin, set by
  its presets.

Without `--preset` the models are small ones sized for the embedded data (the number-words corpus and the 8x8
digits), with recipes tuned to train them in about a minute on two CPU cores. Fine-tuning a trained model
(`--from`) keeps the family's optimiser with a smaller learning rate.

The numbers are declared in the family table (`Family.recipe` and `Family.small_config` in
`hf_visiontx.modeling.families`, and `TrainingRun` for runs such as "lm" that train another head of a family); this
module turns them into a `Recipe` and a model configuration. A run's name ("transformer", "vit", "swin", "lm") is
what `recipe`, `model_config` and `TrainOptions.family` take.
"""

import dataclasses
from typing import Any

from transformers import PreTrainedConfig

from ..modeling.families import FAMILIES, TRAINING_RUNS, Family, TrainingRun
from ..modeling.families import family as declared_family
from ..registration import config_class

FAMILY_NAMES = tuple(declared.name for declared in FAMILIES)
# The image captioner composes families (a ViT or Swin encoder with the Transformer's decoder in transformers'
# `VisionEncoderDecoderModel`) rather than training one; its models and recipe are in `training/captioner.py`.
CAPTIONER = "captioner"
CAPTIONER_TASK = "image-to-text"
# What `hf-visiontx train` trains: each family's own task, the runs that train another head of a family, and the
# captioner.
RUN_NAMES = FAMILY_NAMES + tuple(run.name for run in TRAINING_RUNS) + (CAPTIONER,)
_RUN_FAMILIES = {**{name: name for name in FAMILY_NAMES}, **{run.name: run.family for run in TRAINING_RUNS}}
PRESETS: dict[str, list[str]] = {
    name: sorted(config_class(declared_family(family_name)).presets) for name, family_name in _RUN_FAMILIES.items()
}

# Shared subword vocabulary of the Transformer: the paper's 37,000 tokens for the presets; small for the number
# words, so that numbers are spelled from pieces (a token per whole word would not generalise to unseen numbers).
VOCAB_SIZES = {"small": 600, "preset": 37000}
# Byte-level vocabulary of a language model: GPT-2's 50,257 tokens for the presets; for counting in words, enough
# merges (400 minus 256 bytes and 4 special tokens) that every number word is a token of its own.
LM_VOCAB_SIZES = {"small": 400, "preset": 50257}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, learning-rate schedule, length, and (for images) augmentation.

    Args:
        learning_rate: peak learning rate (reached at the end of warmup).
        adam_beta1, adam_beta2, adam_epsilon: Adam's moment decay rates and epsilon.
        weight_decay: decoupled weight decay (AdamW); 0 gives plain Adam.
        lr_scheduler_type: transformers' schedule name ("inverse_sqrt", "cosine", ...).
        warmup_steps: linear warmup, in steps (>= 1) or as a fraction of all steps (< 1).
        epochs: passes over the training split.
        batch_size: examples per optimiser step.
        max_shift: images only: random translation of up to this many pixels each way (0 = none).
    """

    learning_rate: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    weight_decay: float
    lr_scheduler_type: str
    warmup_steps: int | float
    epochs: int
    batch_size: int
    max_shift: int = 0

    def training_arguments(self) -> dict[str, Any]:
        """The recipe as `TrainingArguments` fields (everything but `max_shift`)."""
        return {
            "learning_rate": self.learning_rate,
            "adam_beta1": self.adam_beta1,
            "adam_beta2": self.adam_beta2,
            "adam_epsilon": self.adam_epsilon,
            "weight_decay": self.weight_decay,
            "lr_scheduler_type": self.lr_scheduler_type,
            "warmup_steps": self.warmup_steps,
            "num_train_epochs": self.epochs,
            "per_device_train_batch_size": self.batch_size,
        }


def paper_learning_rate(d_model: int, warmup_steps: int) -> float:
    """Peak of the Transformer paper's schedule, lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)."""
    return d_model**-0.5 * warmup_steps**-0.5


def recipe(family: str, preset: str | None = None, fine_tuning: bool = False, **overrides: Any) -> Recipe:
    """The recipe for `family` ("transformer", "vit", "swin", or a run such as "lm").

    Args:
        preset: the model preset being trained from scratch (paper-scale settings), or None for the small default.
        fine_tuning: the model starts from trained weights (`--from`): same optimiser, smaller learning rate.
        **overrides: any `Recipe` field, for example `epochs=5`; None values are ignored.
    """
    settings = _known_run(family).recipe
    if fine_tuning:
        run = settings.fine_tuning
    elif preset is not None:
        run = dict(settings.preset)
        if settings.preset_learning_rate == "inverse_sqrt_width":
            d_model = config_class(run_family(family)).from_preset(preset).d_model
            run["learning_rate"] = paper_learning_rate(d_model, run["warmup_steps"])
        else:  # a rate per example, scaled linearly with the batch
            run["learning_rate"] = settings.preset_learning_rate * run["batch_size"]
    else:
        run = settings.small
    fields = {**settings.optimizer, **run}
    fields.update({name: value for name, value in overrides.items() if value is not None})
    return Recipe(**fields)


def model_config(family: str, preset: str | None = None, **fields: Any) -> PreTrainedConfig:
    """A fresh model configuration: `CONFIG.from_preset(preset, **fields)`, or the small default with `fields`.

    Raises:
        ValueError: unknown family or preset (listing the choices), or fields the configuration rejects.
    """
    declared = _known_run(family)
    if preset is not None:
        return config_class(run_family(family)).from_preset(preset, **fields)
    return config_class(run_family(family))(**{**declared.small_config, **fields})


def _known_run(name: str) -> Family | TrainingRun:
    """The family or training run called `name`; a `ValueError` names the argument and the choices (the captioner,
    which composes families, has neither)."""
    if name not in _RUN_FAMILIES:
        raise ValueError(f"`family` must be one of {tuple(_RUN_FAMILIES)}, got {name!r}.")
    return next(run for run in TRAINING_RUNS if run.name == name) if name not in FAMILY_NAMES else declared_family(name)


def run_family(name: str) -> Family:
    """The family a run trains: the family `name` itself, or the family whose head a run such as "lm" trains."""
    _known_run(name)
    return declared_family(_RUN_FAMILIES[name])


def run_task(name: str) -> str:
    """What the run `name` teaches ("translation", "image-classification", "text-generation", "image-to-text")."""
    if name == CAPTIONER:
        return CAPTIONER_TASK
    if name not in RUN_NAMES:
        raise ValueError(f"`family` must be one of {RUN_NAMES}, got {name!r}.")
    return _known_run(name).task


def default_vocab_size(preset: str | None, family: str = "transformer") -> int:
    """Size of a new tokenizer's vocabulary: the Transformer's shared one, or a language model's (`family="lm"`)."""
    sizes = LM_VOCAB_SIZES if run_task(family) == "text-generation" else VOCAB_SIZES
    return sizes["small" if preset is None else "preset"]


def tokenizer_fields(tokenizer: Any) -> dict[str, int | None]:
    """The fields of a new Transformer config that its tokenizer decides: `vocab_size` and the special ids (the
    decoder starts from `<s>`)."""
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }
