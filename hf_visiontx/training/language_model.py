"""Training the Transformer's decoder alone as a language model (`VtxTransformerForCausalLM`) with `Trainer`: from
scratch (small default or a GPT-2 preset, with a new byte-level BPE vocabulary) or fine-tuned from a saved causal
LM (`--from`), scored by loss and perplexity, and on the embedded counting corpus by next-number accuracy.

Each document is one training example: `<s>` (the tokenizer's post-processor), its tokens, then `</s>` so that the
model learns where a document ends; documents longer than the model's positions are cut (and lose their `</s>`).
"""

from collections.abc import Callable, Mapping, Sequence

import torch
from datasets import DatasetDict
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    set_seed,
)

from ..data.language_modeling import COUNTING_CORPUS_DESCRIPTION, counting_prompts, load_text_data
from ..data.tokenizers import train_tokenizer
from .loop import pretrained_config, train_evaluate_save, training_arguments
from .options import TrainOptions, TrainResult
from .recipes import default_vocab_size, model_config, recipe, tokenizer_fields
from .run_directory import checkpoint_to_resume
from .scoring import IGNORED_TOKEN, perplexity_metrics, token_losses


def _tokenizer(options: TrainOptions, data: DatasetDict, resume_from: str | None) -> PreTrainedTokenizerBase:
    """The loaded model's tokenizer; the one saved with the checkpoint when resuming; else a new byte-level BPE
    vocabulary trained on the training documents."""
    if options.from_model is not None or resume_from is not None:
        return AutoTokenizer.from_pretrained(options.from_model or resume_from)
    size = options.vocab_size or default_vocab_size(options.preset, "lm")
    return train_tokenizer(data["train"][options.text_column], vocab_size=size, model="byte_bpe")


def _check_pretrained(options: TrainOptions) -> None:
    """Raise a `ValueError` unless `from_model` is a saved causal LM of the Transformer family (a translator's
    decoder would come without the byte-level tokenizer and its `<s>` ... `</s>` convention)."""
    config = pretrained_config(options)
    if config.is_encoder_decoder:
        raise ValueError(
            f"`from_model` (--from) {options.from_model!r} is an encoder-decoder model "
            f"({', '.join(config.architectures or [config.model_type])}); `train lm` fine-tunes a causal language "
            "model (VtxTransformerForCausalLM)."
        )


def _model(options: TrainOptions, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The causal LM to fine-tune (`from_model`), or a new one (preset or small) sized for `tokenizer`."""
    if options.from_model is not None:
        return AutoModelForCausalLM.from_pretrained(options.from_model)
    config = model_config("lm", options.preset, **tokenizer_fields(tokenizer))
    return AutoModelForCausalLM.from_config(config)


def _encode(data: DatasetDict, tokenizer: PreTrainedTokenizerBase, text_column: str, max_length: int) -> DatasetDict:
    """Each document's token ids (`input_ids`): `<s>`, its tokens and `</s>`, cut at `max_length`."""

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        documents = tokenizer(batch[text_column])["input_ids"]
        return {"input_ids": [[*ids, tokenizer.eos_token_id][:max_length] for ids in documents]}

    return data.map(encode, batched=True, remove_columns=data["train"].column_names)


def document_collator(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Batch documents for training: padded on the right (every document starts at position 0, as prompts do in
    generation), `labels` = `input_ids` with -100 at the padding (the model shifts them to score each next token)."""

    def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = tokenizer.pad(
            [{"input_ids": example["input_ids"]} for example in examples], padding_side="right", return_tensors="pt"
        )
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORED_TOKEN)  # [B, L]
        return dict(batch)

    return collate


def next_number_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 64,
) -> float:
    """The fraction of `prompts` that greedy decoding continues with exactly the next number of `answers`.

    A prompt such as "seventeen, eighteen," (from `counting_prompts`) is right when the model continues it with
    " nineteen" followed by "," or the end of the document.

    Args:
        model: a causal LM; tokenizer: its tokenizer (prepending `<s>`, padding on the left).
        prompts, answers: the prompts and the number, in words, each should be continued with.
        batch_size: prompts per `generate` call.
    """
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(
            f"`prompts` and `answers` must be non-empty and of one length, got {len(prompts)} and {len(answers)}."
        )
    longest = max(len(tokenizer(f" {answer},", add_special_tokens=False)["input_ids"]) for answer in answers)
    model.eval()
    right = 0
    for first in range(0, len(prompts), batch_size):
        batch = tokenizer(
            list(prompts[first : first + batch_size]), padding=True, padding_side="left", return_tensors="pt"
        )
        batch = batch.to(model.device)
        with torch.no_grad():
            generated = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=longest)
        continuations = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for continuation, answer in zip(continuations, answers[first : first + batch_size], strict=True):
            right += continuation == f" {answer}" or continuation.startswith(f" {answer},")
    return right / len(prompts)


def train_language_model(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate (validation and test loss and perplexity; next-number accuracy on the embedded counting
    corpus), save and optionally push a `VtxTransformerForCausalLM`.

    The data is checked before anything is trained; see `hf_visiontx.data.language_modeling.load_text_data`.
    `callbacks` are added to the `Trainer`.
    """
    resume_from = checkpoint_to_resume(options)
    if options.from_model is not None:
        _check_pretrained(options)
    set_seed(options.seed)
    data = load_text_data(options.dataset, options.text_column, seed=options.seed)
    tokenizer = _tokenizer(options, data, resume_from)
    model = _model(options, tokenizer)
    encoded = _encode(data, tokenizer, options.text_column, max_length=model.config.max_position_embeddings)
    settings = recipe(
        "lm",
        options.preset,
        fine_tuning=options.from_model is not None,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
    )
    args = training_arguments(options, settings, "perplexity", greater_is_better=False)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        data_collator=document_collator(tokenizer),
        compute_metrics=perplexity_metrics(),
        preprocess_logits_for_metrics=token_losses,
        callbacks=list(callbacks),
    )
    evaluation = {split: encoded[split] for split in ("validation", "test")}
    if options.dataset is not None:
        return train_evaluate_save(trainer, options, resume_from, evaluation, " ".join(options.dataset))

    def counting_accuracy(split: str) -> Mapping[str, float]:
        prompts, answers = counting_prompts(data[split])
        return {"next_number_accuracy": next_number_accuracy(trainer.model, tokenizer, prompts, answers)}

    return train_evaluate_save(
        trainer, options, resume_from, evaluation, COUNTING_CORPUS_DESCRIPTION, extra_metrics=counting_accuracy
    )
