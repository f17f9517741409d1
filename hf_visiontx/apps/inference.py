"""Using a trained model: classify image files, caption them, translate sentences, continue prompts (saved
directories or Hub ids).

All go through pipelines, batched: transformers' `image-classification` for ViT and Swin and `text-generation` for a
language model, hf_visiontx's `image-captioning` for the image captioner and `seq2seq-translation` for the
Transformer.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    pipeline,
    set_seed,
)

from ..data.images import open_rgb_image
from ..hub.locations import check_model_location
from ..pipelines import CAPTIONING_TASK, TRANSLATION_TASK, checked_texts


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """What a command needs: a model that `auto_class` loads and, when `encoder_decoder` is not None, that is (True)
    or is not (False) an encoder-decoder; `description` names it in errors."""

    auto_class: type
    encoder_decoder: bool | None
    description: str


IMAGE_CLASSIFIER = ModelKind(
    AutoModelForImageClassification, None, "an image classifier (VtxViTForImageClassification, ...)"
)
CAPTIONER = ModelKind(
    AutoModelForImageTextToText, True, "an image captioner (a VisionEncoderDecoderModel, as `train captioner` saves)"
)
TRANSLATOR = ModelKind(
    AutoModelForSeq2SeqLM, True, "an encoder-decoder model (VtxTransformerForConditionalGeneration, Marian, ...)"
)
LANGUAGE_MODEL = ModelKind(
    AutoModelForCausalLM, False, "a causal language model (VtxTransformerForCausalLM, GPT-2, ...)"
)


def load_model(model: str, kind: ModelKind, command: str) -> PreTrainedModel:
    """The model saved in `model` (a directory or a Hub id), checked to be of `kind` before its weights are read;
    only safetensors weights are read.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: naming `model`: no such directory, a damaged or missing
            weight file, or a model of another kind than `command` uses.
    """
    check_model_location("`model`", model)
    config = AutoConfig.from_pretrained(model)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if type(config) not in kind.auto_class._model_mapping or kind.encoder_decoder not in (None, encoder_decoder):
        classes = ", ".join(config.architectures or [type(config).__name__])
        raise ValueError(
            f"`model` {model} is a {config.model_type!r} model ({classes}); `{command}` needs {kind.description}."
        )
    return kind.auto_class.from_pretrained(model, use_safetensors=True)


def open_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    """Open and decode image files as RGB images.

    Raises:
        FileNotFoundError: a file does not exist (naming it).
        ValueError: a file is not an image Pillow can decode (naming it).
    """
    return [open_rgb_image(path, "images") for path in paths]


def _check_positive(**values: float) -> None:
    """Raise a `ValueError` naming the first of `values` that is not positive."""
    for name, value in values.items():
        if not value > 0:  # also refuses NaN
            raise ValueError(f"`{name}` must be positive, got {value}.")


def caption(
    model: str, images: Sequence[str | Path], num_beams: int = 4, max_new_tokens: int = 32, batch_size: int = 16
) -> list[str]:
    """Caption image files with a saved image captioner (directory or Hub id) and its image processor and tokenizer.

    Args:
        num_beams: beam size (1 = greedy decoding).
        max_new_tokens: longest caption, in tokens.
        batch_size: images per `generate` call.
    """
    _check_positive(num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)
    pictures = open_images(images)
    captioner = pipeline(
        CAPTIONING_TASK, model=load_model(model, CAPTIONER, "caption"), tokenizer=model, image_processor=model
    )
    outputs = captioner(pictures, num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [output["generated_text"] for output in outputs]


def classify(
    model: str, images: Sequence[str | Path], top_k: int = 5, batch_size: int = 16
) -> list[list[dict[str, float | str]]]:
    """The `top_k` most likely classes of each image file, best first.

    Args:
        model: a saved model directory or a Hub id (an image classifier with an image processor).
        images: image files.
        top_k: classes per image (at most the model's number of classes).
        batch_size: images per forward pass.

    Returns:
        For each image, a list of `{"label": name, "score": probability}`.
    """
    if top_k <= 0 or batch_size <= 0:
        raise ValueError(f"`top_k` and `batch_size` must be positive, got {top_k} and {batch_size}.")
    pictures = open_images(images)
    classifier = pipeline(
        "image-classification", model=load_model(model, IMAGE_CLASSIFIER, "classify"), image_processor=model
    )
    top_k = min(top_k, classifier.model.config.num_labels)
    return classifier(pictures, top_k=top_k, batch_size=batch_size)


def translate(
    model: str, texts: Sequence[str], num_beams: int = 4, max_new_tokens: int = 128, batch_size: int = 16
) -> list[str]:
    """Translate `texts` with a saved Transformer (directory or Hub id) and its tokenizer.

    Args:
        num_beams: beam size (1 = greedy decoding).
        max_new_tokens: longest translation, in tokens.
        batch_size: sentences per `generate` call.
    """
    _check_positive(num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)
    texts = checked_texts(texts)
    translator = pipeline(TRANSLATION_TASK, model=load_model(model, TRANSLATOR, "translate"), tokenizer=model)
    outputs = translator(texts, num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [output["translation_text"] for output in outputs]


def generate_text(
    model: str,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 1.0,
    num_beams: int = 1,
    seed: int = 0,
    batch_size: int = 16,
) -> list[str]:
    """Continue each of `prompts` with a saved causal language model (directory or Hub id) and its tokenizer.

    Args:
        max_new_tokens: longest continuation, in tokens (it stops earlier at the end-of-text token).
        do_sample: sample the next token (with `temperature`, `top_k`, `top_p`) instead of choosing the likeliest;
            `seed` makes it reproducible.
        num_beams: beam size (1 = greedy decoding, or plain sampling with `do_sample`).
        batch_size: prompts per `generate` call (padded on the left).

    Returns:
        The continuation of each prompt (the generated text only, without the prompt).

    Raises:
        ValueError: a setting out of range, or a model that is not a causal language model.
    """
    _check_positive(
        max_new_tokens=max_new_tokens, num_beams=num_beams, batch_size=batch_size, top_k=top_k, temperature=temperature
    )
    if not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
    generator = pipeline("text-generation", model=load_model(model, LANGUAGE_MODEL, "generate"), tokenizer=model)
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p} if do_sample else {}
    set_seed(seed)
    outputs = generator(
        list(prompts),
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        num_beams=num_beams,
        return_full_text=False,
        batch_size=batch_size,
        **sampling,
    )
    return [output[0]["generated_text"] for output in outputs]
