"""Training a Transformer translator with `Seq2SeqTrainer`: from scratch (small default or a paper preset, with a
new shared BPE vocabulary) or fine-tuned from a saved model (`--from`), scored by sacreBLEU, chrF and exact match
on generated translations."""

import copy
from collections.abc import Sequence

from datasets import DatasetDict
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)

from ..data.tokenizers import train_tokenizer
from ..data.translation import NUMBER_CORPUS_DESCRIPTION, load_translation_data
from .loop import pretrained_config, train_evaluate_save, training_arguments
from .options import TrainOptions, TrainResult
from .recipes import default_vocab_size, model_config, recipe, tokenizer_fields
from .run_directory import checkpoint_to_resume
from .scoring import translation_metrics

# Beam size of the final evaluation (the paper's); the per-epoch evaluation decodes greedily, which is faster.
FINAL_NUM_BEAMS = 4


def _tokenizer(options: TrainOptions, data: DatasetDict, resume_from: str | None) -> PreTrainedTokenizerBase:
    """The loaded model's tokenizer; the one saved with the checkpoint when resuming; else a new shared BPE
    vocabulary trained on both sides of the training split."""
    if options.from_model is not None or resume_from is not None:
        return AutoTokenizer.from_pretrained(options.from_model or resume_from)
    texts = list(data["train"][options.source_column]) + list(data["train"][options.target_column])
    return train_tokenizer(texts, vocab_size=options.vocab_size or default_vocab_size(options.preset))


def _model(options: TrainOptions, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model to fine-tune (`from_model`), or a new one (preset or small) sized for `tokenizer`."""
    if options.from_model is not None:
        pretrained_config(options)  # checks the family
        return AutoModelForSeq2SeqLM.from_pretrained(options.from_model)
    config = model_config("transformer", options.preset, **tokenizer_fields(tokenizer))
    return AutoModelForSeq2SeqLM.from_config(config)


def _encode(
    data: DatasetDict, tokenizer: PreTrainedTokenizerBase, options: TrainOptions, max_length: int
) -> DatasetDict:
    """Token ids of the sources (`input_ids`, `attention_mask`) and targets (`labels`), cut at `max_length`."""

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return tokenizer(
            batch[options.source_column],
            text_target=batch[options.target_column],
            truncation=True,
            max_length=max_length,
        )

    return data.map(encode, batched=True, remove_columns=data["train"].column_names)


def _generation_config(model: PreTrainedModel, encoded: DatasetDict) -> GenerationConfig:
    """The model's generation settings with `max_new_tokens` set to twice the longest training target (within
    the position limit): evaluating a barely trained model then stops there instead of at the position limit. The
    setting is saved with the model."""
    longest = max(len(labels) for labels in encoded["train"]["labels"])
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = min(2 * longest, model.config.max_position_embeddings - 1)
    return config


class KeepGenerationLengthUnset(TrainerCallback):
    """Undo one side effect of `Seq2SeqTrainer`'s evaluation.

    In transformers 5.x, `Seq2SeqTrainer.prediction_step` fills the model's generation config with transformers'
    defaults after every batch it generates, `max_length=20` among them. Our config limits length with
    `max_new_tokens`, so from then on every `generate()` call (the next batches, the saved model's users) would warn
    that both are set. This puts `max_length` back to None after each prediction step, before anything is saved.
    """

    def on_prediction_step(self, args, state, control, model: PreTrainedModel | None = None, **kwargs) -> None:
        """Clear the `max_length` the trainer's prediction step set."""
        if model is not None and model.generation_config.max_new_tokens is not None:
            model.generation_config.max_length = None


def train_translator(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate (validation and test with beam search), save and optionally push a Transformer translator.

    The data is checked before anything is trained; see `hf_visiontx.data.translation.load_translation_data`.
    `callbacks` are added to the `Seq2SeqTrainer`.
    """
    resume_from = checkpoint_to_resume(options)
    set_seed(options.seed)
    data = load_translation_data(options.dataset, options.source_column, options.target_column, seed=options.seed)
    tokenizer = _tokenizer(options, data, resume_from)
    model = _model(options, tokenizer)
    encoded = _encode(data, tokenizer, options, max_length=model.config.max_position_embeddings)
    settings = recipe(
        "transformer",
        options.preset,
        fine_tuning=options.from_model is not None,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
    )
    args = training_arguments(
        options,
        settings,
        "sacrebleu",
        Seq2SeqTrainingArguments,
        predict_with_generate=True,
        generation_num_beams=1,
        generation_config=_generation_config(model, encoded),
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        compute_metrics=translation_metrics(tokenizer),
        callbacks=[KeepGenerationLengthUnset(), *callbacks],
    )
    description = NUMBER_CORPUS_DESCRIPTION if options.dataset is None else " ".join(options.dataset)
    evaluation = {split: encoded[split] for split in ("validation", "test")}
    return train_evaluate_save(trainer, options, resume_from, evaluation, description, num_beams=FINAL_NUM_BEAMS)
