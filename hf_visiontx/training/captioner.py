"""Training an image captioner with `Seq2SeqTrainer`: transformers' `VisionEncoderDecoderModel` with our ViT or Swin
as the image encoder and our Transformer's decoder (`VtxTransformerForCausalLM` with cross-attention) as the text
decoder, a new BPE vocabulary trained on the captions, scored by sacreBLEU, chrF and exact match on generated
captions.

The model is small and sized for the embedded digit strings (`hf_visiontx.data.digit_strings`: 1-4 handwritten
digits in an 8x32 image, captioned "three hundred twelve"): the encoder cuts the image into 4x4 patches (each digit
is 2x2 of them) and the decoder reads them through cross-attention while it writes the number in words.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
from datasets import DatasetDict
from transformers import (
    AutoModel,
    AutoTokenizer,
    BaseImageProcessor,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    VisionEncoderDecoderModel,
    set_seed,
)

from ..data.captions import DIGIT_STRINGS, DIGIT_STRINGS_DESCRIPTION, load_caption_data
from ..data.tokenizers import train_tokenizer
from ..modeling import VtxTransformerConfig, VtxTransformerForCausalLM
from ..registration import VISION_IMAGE_PROCESSORS
from .loop import train_evaluate_save, training_arguments
from .options import CAPTIONER_ENCODERS, TrainOptions, TrainResult
from .recipes import Recipe, model_config, tokenizer_fields
from .run_directory import checkpoint_to_resume
from .scoring import translation_metrics
from .translation import KeepGenerationLengthUnset

# The small encoders: 4x4 patches (an 8x32 digit string is a 2x8 grid of 16 tokens); ViT attends over all of them
# (and its [CLS] token), Swin within 2x2 windows, then merges 2x2 neighbours into a 1x4 map (a token per digit place).
# Both end at 64 channels, the decoder's width, so the encoder's states reach the cross-attention without a
# projection. Swin gets learned absolute positions (its paper's option, off by default): its relative position bias
# only orders tokens within a window, and the decoder's cross-attention ignores the order of what it reads, so
# without them the captions name the right digits in the wrong places (measured: "eight thousand three hundred
# ninety-eight" for 8983, 7% exact match).
ENCODER_FIELDS: dict[str, dict[str, Any]] = {
    "vit": {
        "patch_size": 4,
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    },
    "swin": {
        "patch_size": 4,
        "embed_dim": 32,
        "depths": (2, 2),
        "num_heads": (2, 4),
        "window_size": 2,
        "drop_path_rate": 0.0,
        "use_absolute_embeddings": True,
    },
}
# The small decoder: two layers of the Transformer's decoder with cross-attention. `VisionEncoderDecoderModel`
# computes the loss itself (plain cross-entropy), so the decoder's label smoothing is set to 0 to say so.
DECODER_FIELDS: dict[str, Any] = {
    "d_model": 64,
    "decoder_layers": 2,
    "decoder_attention_heads": 4,
    "decoder_ffn_dim": 128,
    "max_position_embeddings": 32,
    "dropout": 0.1,
    "label_smoothing": 0.0,
}
VOCAB_SIZE = 80  # the number words are few: about one token per word
IMAGE_SIZE = 32  # side of the square images of other datasets (the embedded ones are 8x32)

# AdamW with warmup and cosine decay (the vision recipes' optimiser). No random shift: shifting the 8-pixel digits by
# up to one pixel kept this small model from learning to read them (its loss stayed at the level of guessing
# captions without the image for three epochs), where without it the held-out exact match passes 90%.
RECIPE = Recipe(
    learning_rate=2e-3,
    adam_beta1=0.9,
    adam_beta2=0.999,
    adam_epsilon=1e-8,
    weight_decay=0.05,
    lr_scheduler_type="cosine",
    warmup_steps=0.1,
    epochs=10,
    batch_size=32,
)


def captioner_image_size(options: TrainOptions) -> tuple[int, int]:
    """(height, width) of the captioner's images: the embedded digit strings are `image_size` (default 8) high and
    four digits wide; other datasets are resized to `image_size` x `image_size` (default 32)."""
    if options.dataset is None:
        digit_size = options.image_size or DIGIT_STRINGS["digit_size"]
        return digit_size, DIGIT_STRINGS["max_digits"] * digit_size
    side = options.image_size or IMAGE_SIZE
    return side, side


def build_captioner(
    encoder: str, image_size: tuple[int, int], tokenizer: PreTrainedTokenizerBase, max_new_tokens: int
) -> VisionEncoderDecoderModel:
    """A new small captioner: our `encoder` ("vit" or "swin") for images of `image_size` (height, width) and our
    Transformer decoder over `tokenizer`'s vocabulary, generating at most `max_new_tokens` tokens.

    Raises:
        ValueError: an unknown `encoder`, naming the choices.
    """
    if encoder not in CAPTIONER_ENCODERS:
        raise ValueError(f"`encoder` must be one of {CAPTIONER_ENCODERS}, got {encoder!r}.")
    image_encoder = AutoModel.from_config(model_config(encoder, **ENCODER_FIELDS[encoder], image_size=image_size))
    token_fields = tokenizer_fields(tokenizer)
    decoder_config = VtxTransformerConfig(**DECODER_FIELDS, **token_fields, is_decoder=True, add_cross_attention=True)
    model = VisionEncoderDecoderModel(encoder=image_encoder, decoder=VtxTransformerForCausalLM(decoder_config))
    model.config.decoder_start_token_id = tokenizer.bos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    special_tokens = {name: value for name, value in token_fields.items() if name.endswith("_token_id")}
    model.generation_config = GenerationConfig(**special_tokens, max_new_tokens=max_new_tokens)
    return model


def _tokenizer(options: TrainOptions, data: DatasetDict, resume_from: str | None) -> PreTrainedTokenizerBase:
    """The tokenizer saved with the checkpoint when resuming; else a new BPE vocabulary trained on the training
    captions."""
    if resume_from is not None:
        return AutoTokenizer.from_pretrained(resume_from)
    return train_tokenizer(list(data["train"][options.caption_column]), vocab_size=options.vocab_size or VOCAB_SIZE)


def captioner_image_processor(image_size: tuple[int, int]) -> BaseImageProcessor:
    """transformers' ViT processor at the captioner's size: resize, rescale to [0, 1], normalise with mean and std
    0.5."""
    height, width = image_size
    return VISION_IMAGE_PROCESSORS["pil"](
        size={"height": height, "width": width}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )


def caption_transform(
    image_processor: BaseImageProcessor, tokenizer: PreTrainedTokenizerBase, options: TrainOptions
) -> Callable[[dict[str, list]], dict[str, Any]]:
    """A `Dataset.with_transform` function: a batch of images and captions -> `pixel_values` and the captions'
    token ids as `labels` (cut at the decoder's positions)."""

    def transform(batch: dict[str, list]) -> dict[str, Any]:
        images = [image.convert("RGB") for image in batch[options.image_column]]
        pixel_values = image_processor(images=images, return_tensors="pt")["pixel_values"]
        labels = tokenizer(
            batch[options.caption_column], truncation=True, max_length=DECODER_FIELDS["max_position_embeddings"]
        )["input_ids"]
        return {"pixel_values": pixel_values, "labels": labels}

    return transform


def collate_captions(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the images and pad the label ids with -100 (ignored by the loss) to the longest caption."""
    longest = max(len(example["labels"]) for example in examples)
    labels = [list(example["labels"]) + [-100] * (longest - len(example["labels"])) for example in examples]
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),  # [batch, 3, H, W]
        "labels": torch.tensor(labels),  # [batch, longest]
    }


def train_captioner(options: TrainOptions, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Train, evaluate (validation and test), save (with the code of our encoder and decoder, so that it also loads
    as remote code) and optionally push an image captioner.

    The data is checked before anything is trained; see `hf_visiontx.data.captions.load_caption_data`. `callbacks`
    are added to the `Seq2SeqTrainer`.
    """
    resume_from = checkpoint_to_resume(options)
    set_seed(options.seed)
    image_size = captioner_image_size(options)
    data = load_caption_data(
        options.dataset, options.image_column, options.caption_column, digit_size=image_size[0], seed=options.seed
    )
    tokenizer = _tokenizer(options, data, resume_from)
    longest = max(len(ids) for ids in tokenizer(list(data["train"][options.caption_column]))["input_ids"])
    max_new_tokens = min(2 * longest, DECODER_FIELDS["max_position_embeddings"] - 1)
    model = build_captioner(options.encoder, image_size, tokenizer, max_new_tokens)
    processor = captioner_image_processor(image_size)
    overrides = {name: getattr(options, name) for name in ("epochs", "batch_size", "learning_rate")}
    settings = dataclasses.replace(RECIPE, **{name: value for name, value in overrides.items() if value is not None})
    transform = caption_transform(processor, tokenizer, options)
    evaluation = {split: data[split].with_transform(transform) for split in ("validation", "test")}
    args = training_arguments(
        options,
        settings,
        "exact_match",
        Seq2SeqTrainingArguments,
        predict_with_generate=True,
        generation_num_beams=1,
        remove_unused_columns=False,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=data["train"].with_transform(transform),
        eval_dataset=evaluation["validation"],
        processing_class=tokenizer,
        data_collator=collate_captions,
        compute_metrics=translation_metrics(tokenizer),
        callbacks=[KeepGenerationLengthUnset(), *callbacks],
    )
    description = DIGIT_STRINGS_DESCRIPTION if options.dataset is None else " ".join(options.dataset)
    return train_evaluate_save(trainer, options, resume_from, evaluation, description, processors=(processor,))
