"""What every training run shares: checkpoints and resuming, `TrainingArguments`, the final evaluation and its
table, saving, the model card and the upload.

Checkpoints are written to `output_dir/checkpoints` at the end of every epoch, after evaluating the validation
split; the best one (by the family's metric) and the last one are kept (two checkpoints at most), and the best
is loaded at the end. A run killed and restarted with `resume=True` continues from the last complete checkpoint
(weights, optimiser, schedule, RNG states and data order; see `run_directory.py`) and ends with the same weights as
an uninterrupted run. The final save is all or nothing (`staged_directory`).
"""

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoConfig, BaseImageProcessor, PreTrainedConfig, Trainer, TrainingArguments

from ..hub.cards import write_model_card
from ..hub.composite import nested_models, save_composite
from ..hub.transfer import push
from ..modeling.hub_mixin import README, staged_directory
from ..registration import remote_code_classes
from .options import TrainOptions, TrainResult
from .recipes import Recipe, run_family

# Keys of `Trainer.evaluate` results that describe the run rather than the model.
_RUN_STATISTICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def pretrained_config(options: TrainOptions) -> PreTrainedConfig:
    """The configuration of `options.from_model`, checked to be of `options.family`.

    Raises:
        ValueError: the model is of another family (hf_visiontx's or transformers' own; the latter can be
            converted with `hf-visiontx convert`).
    """
    config = AutoConfig.from_pretrained(options.from_model)
    expected = run_family(options.family).model_type
    if config.model_type != expected:
        raise ValueError(
            f"`from_model` (--from) {options.from_model!r} is a {config.model_type!r} model; `train {options.family}` "
            f"needs a {expected!r} one (convert a transformers checkpoint with `hf-visiontx convert` first)."
        )
    return config


def training_arguments(
    options: TrainOptions,
    recipe: Recipe,
    best_metric: str,
    arguments_class: type[TrainingArguments] = TrainingArguments,
    greater_is_better: bool = True,
    **fields: Any,
) -> TrainingArguments:
    """`TrainingArguments` for `recipe`: evaluate and checkpoint every epoch, keep and reload the best checkpoint.

    Args:
        best_metric: the validation metric that picks the best checkpoint.
        greater_is_better: whether a higher `best_metric` is better (accuracy) or a lower one (perplexity).
        arguments_class: `TrainingArguments` or `Seq2SeqTrainingArguments`.
        **fields: further fields, for example `predict_with_generate=True`.
    """
    return arguments_class(
        output_dir=str(options.checkpoints_dir),
        **recipe.training_arguments(),
        per_device_eval_batch_size=recipe.batch_size,
        eval_strategy="epoch",
        save_strategy="epoch",
        # The last checkpoint (to resume from) and the best one are protected; 1 would delete the last at the end.
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better=greater_is_better,
        logging_strategy="epoch",
        report_to=[],
        seed=options.seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=not options.progress,
        **fields,
    )


def evaluate_splits(trainer: Trainer, splits: Mapping[str, Dataset], **generation: Any) -> dict[str, dict[str, float]]:
    """Evaluate the trainer's model on each split: split -> metric -> value (loss included, timings left out).

    Args:
        **generation: generation settings for a `Seq2SeqTrainer` (for example `num_beams=4`).
    """
    results = {}
    for split, dataset in splits.items():
        raw = trainer.evaluate(dataset, metric_key_prefix=split, **generation)
        results[split] = {
            key.removeprefix(f"{split}_"): float(value)
            for key, value in raw.items()
            if not key.endswith(_RUN_STATISTICS)
        }
    return results


def metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """A text table with one row per metric and one column per split."""
    splits = list(metrics)
    names = list(dict.fromkeys(name for split in splits for name in metrics[split]))
    width = max(len("metric"), *(len(name) for name in names))
    lines = [f"{'metric':<{width}}" + "".join(f"  {split:>10}" for split in splits)]
    for name in names:
        values = "".join(f"  {metrics[split].get(name, float('nan')):>10.4f}" for split in splits)
        lines.append(f"{name:<{width}}{values}")
    return "\n".join(lines)


def save_model(
    trainer: Trainer,
    options: TrainOptions,
    metrics: Mapping[str, Mapping[str, float]],
    dataset_description: str,
    processors: Sequence[BaseImageProcessor] = (),
) -> Path:
    """Save the model and its tokenizer or image processor in `output_dir`, with `metrics.json` and a model card
    whose metrics are the test split's; upload it when `push_to_hub` names a repository.

    A transformers composite holding our models (the image captioner) is saved with `save_composite`, which adds
    their code so that the folder also loads as remote code. `processors` are saved next to the trainer's
    `processing_class` (the captioner's image processor next to its tokenizer).

    In a multi-process run (torchrun, accelerate launch) only the main process writes and uploads; every process
    waits until the files are complete, so that any of them may read them afterwards.
    """
    if trainer.is_world_process_zero():
        _write_model_dir(trainer, options, metrics, dataset_description, processors)
    trainer.accelerator.wait_for_everyone()
    return options.output_dir


def _write_model_dir(
    trainer: Trainer,
    options: TrainOptions,
    metrics: Mapping[str, Mapping[str, float]],
    dataset_description: str,
    processors: Sequence[BaseImageProcessor],
) -> None:
    # All or nothing: a failure leaves the directory's earlier model, processors, metrics and card as they were.
    directory = options.output_dir
    with staged_directory(directory) as staging:
        if (directory / README).exists():  # the card keeps what the earlier one recorded (or refuses a hand-written)
            shutil.copy2(directory / README, staging / README)
        # save_pretrained rather than Trainer.save_model, which adds the pickled training_args.bin
        if type(trainer.model) not in remote_code_classes() and nested_models(trainer.model):
            save_composite(trainer.model, staging)
        else:
            trainer.model.save_pretrained(staging)
        for processor in (trainer.processing_class, *processors):
            processor.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        test_metrics = {name: value for name, value in metrics["test"].items() if name != "loss"}
        write_model_card(staging, datasets=[dataset_description], metrics=test_metrics, base_model=options.from_model)
    if options.push_to_hub is not None:
        push(directory, options.push_to_hub)
        print(f"pushed {directory} to {options.push_to_hub}")


def train_evaluate_save(
    trainer: Trainer,
    options: TrainOptions,
    resume_from: str | None,
    eval_splits: Mapping[str, Dataset],
    dataset_description: str,
    processors: Sequence[BaseImageProcessor] = (),
    extra_metrics: Callable[[str], Mapping[str, float]] | None = None,
    **generation: Any,
) -> TrainResult:
    """Train (from `resume_from` when given), evaluate the best model on `eval_splits`, print the table, save.

    Args:
        processors: saved with the model next to the trainer's `processing_class` (see `save_model`).
        extra_metrics: split name -> further metrics of the best model on it (for example scores of generated
            text), added to the trainer's.
        **generation: generation settings of the final evaluation of a `Seq2SeqTrainer`.
    """
    trainer.train(resume_from_checkpoint=resume_from)
    metrics = evaluate_splits(trainer, eval_splits, **generation)
    if extra_metrics is not None:
        for split in metrics:
            metrics[split].update(extra_metrics(split))
    print(metrics_table(metrics))
    model_dir = save_model(trainer, options, metrics, dataset_description, processors)
    print(f"saved to {model_dir}")
    return TrainResult(model_dir=model_dir, metrics=metrics)
