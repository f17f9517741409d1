"""Image-classification data: the embedded digits, any other source, and its checks before training.

The default needs no network: scikit-learn ships the UCI handwritten digits (1,797 grey 8x8 images of 0-9), which
`digits` upscales to RGB images of the model's size. `load_image_classification_data` also reads a `datasets` name,
an image folder (one sub-folder per class) or CSV / JSON files whose image column holds file paths, and checks the
data before any training starts: the columns exist, every split has examples, every label is a class id in range
and every image decodes; each error names the split, row or file.
"""

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage
from sklearn.datasets import load_digits

from .sources import carve_missing_splits, load_source, named_splits, require_columns

# What Pillow raises for a file it cannot decode: not an image, truncated or corrupt, or larger than its
# decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), which is not an OSError.
UNDECODABLE_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError)

DIGITS_CLASSES = [str(digit) for digit in range(10)]
DIGITS_FEATURES = Features({"image": Image(), "label": ClassLabel(names=DIGITS_CLASSES)})
DIGITS_DESCRIPTION = "scikit-learn's handwritten digits (1,797 grey 8x8 images of 0-9, upscaled to RGB)"


def digits(
    image_size: int = 32, seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.2
) -> DatasetDict:
    """scikit-learn's handwritten digits as RGB images of `image_size` x `image_size` pixels.

    The 16 grey levels are stretched to 0-255 and each 8x8 image is upscaled bilinearly. The split is stratified
    by class and the same for a given `seed` on every machine.

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits (1257 / 180 / 360 images with the default
        fractions) and columns "image" (PIL images) and "label" (`ClassLabel` "0" ... "9").
    """
    if image_size < 8:
        raise ValueError(f"`image_size` must be at least the digits' 8 pixels, got {image_size}.")
    raw = load_digits()
    grey = (raw.images * (255 / 16)).round().astype(np.uint8)  # [1797, 8, 8], 0-16 -> 0-255
    images = [
        PILImage.fromarray(image).resize((image_size, image_size), PILImage.Resampling.BILINEAR).convert("RGB")
        for image in grey  # uint8 [8, 8] -> a grey ("L") image
    ]
    data = Dataset.from_dict({"image": images, "label": raw.target.tolist()}, features=DIGITS_FEATURES)
    return carve_missing_splits(
        DatasetDict(train=data), seed, validation_fraction, test_fraction, stratify_by_column="label"
    )


def class_names(data: DatasetDict, label_column: str) -> list[str]:
    """The class names of `label_column`: a `ClassLabel`'s names, the sorted distinct strings of string labels, or
    "0" ... str(largest label in "train") for integer labels.

    Raises:
        ValueError: the labels are neither all integers nor all strings (naming the split, row and value).
    """
    feature = data["train"].features[label_column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    labelled = [(name, row, value) for name, split in data.items() for row, value in enumerate(split[label_column])]
    if all(isinstance(value, str) for _, _, value in labelled):
        return sorted({value for _, _, value in labelled})
    if all(_is_class_id(value) for _, _, value in labelled):
        return [str(index) for index in range(max(data["train"][label_column]) + 1)]
    first_kind = type(labelled[0][2])
    split, row, value = (
        next(item for item in labelled if type(item[2]) is not first_kind) if first_kind in (str, int) else labelled[0]
    )
    raise ValueError(
        f"`label_column` (--label-column) {label_column!r} must hold class ids (int) or class names (str) "
        f"throughout; row {row} of the {split!r} split holds {value!r}."
    )


def _is_class_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_label_range(data: DatasetDict, label_column: str, num_labels: int) -> None:
    """Raise a `ValueError` naming the split, row and value of the first integer label outside [0, num_labels)."""
    for name, split in data.items():
        if getattr(split.features[label_column], "dtype", "").startswith("int"):  # ClassLabel or integer Value
            labels = np.asarray(split[label_column])
            bad = np.flatnonzero((labels < 0) | (labels >= num_labels))
            if bad.size:
                row = int(bad[0])
                raise ValueError(
                    f"`label_column` (--label-column) {label_column!r}: row {row} of the {name!r} split has label "
                    f"{int(labels[row])}, outside [0, {num_labels}) for {num_labels} classes ({bad.size} such rows)."
                )


def check_images_decode(data: DatasetDict, image_column: str) -> None:
    """Open and fully decode every image once; raise a `ValueError` naming the first file (or row) that fails.

    This reads every image, so it takes a while on large datasets, but a broken file is then found before
    training starts rather than hours into it.
    """
    for name, split in data.items():
        encoded = split.cast_column(image_column, Image(decode=False))
        for start, batch in zip(range(0, len(encoded), 256), encoded.iter(batch_size=256), strict=True):
            for offset, image in enumerate(batch[image_column]):
                where = (image or {}).get("path") or f"in row {start + offset} of the {name!r} split"
                if image is None:
                    raise ValueError(f"`image_column` (--image-column) {image_column!r}: there is no image {where}.")
                try:
                    with PILImage.open(io.BytesIO(image["bytes"]) if image["bytes"] else image["path"]) as opened:
                        opened.load()
                except UNDECODABLE_IMAGE_ERRORS as error:
                    raise ValueError(
                        f"`image_column` (--image-column) {image_column!r}: the image {where} cannot be decoded "
                        f"({error})."
                    ) from error


def open_rgb_image(path: str | os.PathLike, argument: str) -> PILImage.Image:
    """The image file `path` decoded as an RGB image.

    Raises:
        FileNotFoundError: `path` is not a file (naming `argument`, the option that gave it, and the path).
        ValueError: Pillow cannot decode it: not an image, truncated, corrupt, or a decompression bomb.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"`{argument}`: {path} does not exist or is not a file.")
    try:
        with PILImage.open(path) as image:
            return image.convert("RGB")
    except UNDECODABLE_IMAGE_ERRORS as error:
        raise ValueError(f"`{argument}`: {path} cannot be read as an image ({error}).") from error


def load_image_classification_data(
    dataset: Sequence[str] | None = None,
    image_column: str = "image",
    label_column: str = "label",
    image_size: int = 32,
    seed: int = 0,
) -> DatasetDict:
    """Load and check image-classification data.

    Args:
        dataset: None for the embedded digits (at `image_size`, columns "image" and "label"), else a source as in
            `hf_visiontx.data.sources.load_source`: a `datasets` name, an image folder, or CSV / JSON files whose
            `image_column` holds image paths (relative to the current directory) and `label_column` the classes.
        image_column, label_column: column names.
        image_size: size of the embedded digits (other sources are resized by the image processor).
        seed: seed of the split when validation or test are carved out of "train".

    Returns:
        `DatasetDict` "train" / "validation" / "test" whose `label_column` is a `ClassLabel` (its names are the
        classes) and whose `image_column` is an `Image` column; every image was decoded once.

    Raises:
        ValueError: naming the missing column, empty split, label out of range, or undecodable image.
    """
    data = named_splits(digits(image_size=image_size, seed=seed) if dataset is None else load_source(dataset))
    require_columns(data, {"image_column": image_column, "label_column": label_column})
    names = class_names(data, label_column)
    check_label_range(data, label_column, len(names))
    data = DatasetDict(
        {
            name: split.cast_column(label_column, ClassLabel(names=names)).cast_column(image_column, Image())
            for name, split in data.items()
        }
    )
    check_images_decode(data, image_column)
    return carve_missing_splits(data, seed, stratify_by_column=label_column)


def random_shift(pixel_values: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image by its own random offset of -max_shift ... max_shift pixels along each axis.

    The image is padded by repeating its edge pixels and a window of the original size is cut out at a random
    position (random crop with padding). Offsets come from torch's global generator, which `Trainer` seeds and
    saves in its checkpoints, so augmented runs are reproducible and resumable.

    Args:
        pixel_values: images, [batch, channels, height, width].
        max_shift: largest offset in pixels; 0 returns the images unchanged.
    """
    if max_shift == 0:
        return pixel_values
    batch, channels, height, width = pixel_values.shape
    padded = torch.nn.functional.pad(pixel_values, (max_shift,) * 4, mode="replicate")  # [B, C, H + 2s, W + 2s]
    top = torch.randint(0, 2 * max_shift + 1, (batch, 1))
    left = torch.randint(0, 2 * max_shift + 1, (batch, 1))
    rows = (top + torch.arange(height))[:, None, :, None]  # [B, 1, H, 1]
    cols = (left + torch.arange(width))[:, None, None, :]  # [B, 1, 1, W]
    batch_index = torch.arange(batch)[:, None, None, None]  # [B, 1, 1, 1]
    channel_index = torch.arange(channels)[None, :, None, None]  # [1, C, 1, 1]
    return padded[batch_index, channel_index, rows, cols]  # broadcast to [B, C, H, W]


def image_transform(
    image_processor: Callable[..., Any], image_column: str, label_column: str, max_shift: int = 0
) -> Callable[[dict[str, list]], dict[str, torch.Tensor]]:
    """A `Dataset.with_transform` function: a batch of images and labels -> `pixel_values` and `labels` tensors.

    Images are converted to RGB (grey, palette and RGBA images alike) before the image processor resizes and
    normalises them; with `max_shift` > 0 they are then randomly translated (for training; see `random_shift`).
    """

    def transform(batch: dict[str, list]) -> dict[str, torch.Tensor]:
        images = [image.convert("RGB") for image in batch[image_column]]
        pixel_values = image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": random_shift(pixel_values, max_shift), "labels": torch.tensor(batch[label_column])}

    return transform
