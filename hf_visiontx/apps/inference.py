"""Using a trained model: classify image files, caption them, translate sentences (saved directories or Hub ids).

All go through pipelines, batched: transformers' `image-classification` for ViT and Swin, hf_visiontx's
`image-captioning` for the image captioner and `seq2seq-translation` for the Transformer.
"""

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from transformers import pipeline

from ..pipelines import CAPTIONING_TASK, TRANSLATION_TASK


def open_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    """Open and decode image files as RGB images.

    Raises:
        FileNotFoundError: a file does not exist (naming it).
        ValueError: a file is not an image Pillow can decode (naming it).
    """
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"`images`: {path} does not exist or is not a file.")
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as error:  # not an image, truncated, corrupt
            raise ValueError(f"`images`: {path} cannot be read as an image ({error}).") from error
    return images


def _check_positive(**values: int) -> None:
    """Raise a `ValueError` naming the first of `values` that is not positive."""
    for name, value in values.items():
        if value <= 0:
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
    captioner = pipeline(CAPTIONING_TASK, model=model)
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
    classifier = pipeline("image-classification", model=model)
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
    translator = pipeline(TRANSLATION_TASK, model=model)
    outputs = translator(list(texts), num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [output["translation_text"] for output in outputs]
