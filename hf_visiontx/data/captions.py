"""Image-captioning data: the embedded strings of handwritten digits captioned in English words, any other source,
and its checks before training.

`digit_strings` lays 1 to `max_digits` of scikit-learn's handwritten digits side by side and captions the image with
the number they write, in words: the image of "3", "1", "2" is captioned "three hundred twelve". Reading it needs
both halves of an image-to-text model: recognising each digit, and saying the number in the right order and form.

`load_caption_data` also reads a `datasets` name, a folder, or CSV / JSON files whose image column holds image paths
and whose caption column holds the text, and checks the data before any training starts: the columns exist, every
split has examples, every caption is a non-empty string and every image decodes; each error names the split, row or
file.
"""

import random
from collections.abc import Sequence

from datasets import Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from .images import check_images_decode, digits
from .numbers import dealt_numbers, number_in_words
from .sources import carve_missing_splits, load_source, named_splits, require_columns
from .translation import check_texts

CAPTION_FEATURES = Features({"image": Image(), "caption": Value("string"), "number": Value("int64")})
# The embedded captioning data as `hf-visiontx train captioner` uses it: 8-pixel digits (scikit-learn's own
# resolution, so nothing is lost or invented by resizing), 1-4 of them in a 8x32 image.
DIGIT_STRINGS = {"digit_size": 8, "max_digits": 4, "train_size": 8000, "validation_size": 300, "test_size": 500}
DIGIT_STRINGS_DESCRIPTION = (
    "strings of 1-4 of scikit-learn's handwritten digits side by side (8x32 px), captioned with the number in English "
    "words (8,000 training images)"
)


def digit_strings(
    digit_size: int = 16,
    max_digits: int = 4,
    train_size: int = 4000,
    validation_size: int = 300,
    test_size: int = 500,
    seed: int = 0,
) -> DatasetDict:
    """Images of 1 to `max_digits` handwritten digits side by side, captioned with the number in English words.

    The numbers are distinct, drawn from [0, 10**max_digits) and spread evenly over their lengths (as many one-digit
    numbers as there are, the rest shared by the longer ones). They are dealt into the splits, so no number and no
    caption appears in two splits. Each digit is drawn with its own random handwriting from the split of
    scikit-learn's digits (`digits`) that matches the caption's split, so no handwritten digit appears in two splits
    either. The same `seed` gives the same dataset on every machine.

    Args:
        digit_size: the side of each digit in pixels; images are `digit_size` high and `max_digits * digit_size`
            wide, the digits from the left, black after the last.
        max_digits: the longest digit string.
        train_size, validation_size, test_size: examples per split.
        seed: seeds the numbers, the handwriting and the splits of the digits.

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits and columns "image" (RGB PIL images), "caption"
        (the number in words) and "number" (int).
    """
    if not 1 <= max_digits <= 6:
        raise ValueError(f"`max_digits` must be between 1 and 6, got {max_digits}.")
    rng = random.Random(seed)
    limit = f"`max_digits`={max_digits}"
    dealt = dealt_numbers(train_size, validation_size, test_size, 10**max_digits, limit, rng)
    handwriting = digits(image_size=digit_size, seed=seed)
    splits = {}
    for split, chosen in dealt.items():
        by_digit = _images_by_digit(handwriting[split])
        images = [_digit_string_image(number, by_digit, digit_size, max_digits, rng) for number in chosen]
        captions = [number_in_words(number) for number in chosen]
        splits[split] = Dataset.from_dict(
            {"image": images, "caption": captions, "number": chosen}, features=CAPTION_FEATURES
        )
    return DatasetDict(splits)


def _images_by_digit(split: Dataset) -> dict[int, list[PILImage.Image]]:
    """The images of a split of `digits`, grouped by the digit they show."""
    by_digit: dict[int, list[PILImage.Image]] = {digit: [] for digit in range(10)}
    for example in split:
        by_digit[example["label"]].append(example["image"])
    return by_digit


def _digit_string_image(
    number: int, by_digit: dict[int, list[PILImage.Image]], digit_size: int, max_digits: int, rng: random.Random
) -> PILImage.Image:
    """The digits of `number` in handwriting drawn from `by_digit`, side by side from the left on a black canvas."""
    canvas = PILImage.new("RGB", (max_digits * digit_size, digit_size))
    for position, digit in enumerate(str(number)):
        canvas.paste(rng.choice(by_digit[int(digit)]), (position * digit_size, 0))
    return canvas


def load_caption_data(
    dataset: Sequence[str] | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    digit_size: int = DIGIT_STRINGS["digit_size"],
    seed: int = 0,
) -> DatasetDict:
    """Load and check images with their captions.

    Args:
        dataset: None for the embedded digit strings (`digit_strings` with `DIGIT_STRINGS`, columns "image" and
            "caption"), else a source as in `hf_visiontx.data.sources.load_source`: a `datasets` name, a folder, or
            CSV / JSON files whose `image_column` holds image paths (relative to the current directory).
        image_column, caption_column: the columns with the images and their captions.
        digit_size: the side of each digit of the embedded data, in pixels.
        seed: seed of the embedded data, and of the split when validation or test are carved out of "train".

    Returns:
        `DatasetDict` "train" / "validation" / "test" whose `image_column` is an `Image` column; every image was
        decoded once.

    Raises:
        ValueError: naming the missing column, empty split, row without a caption, or undecodable image.
    """
    if dataset is None:
        data = named_splits(digit_strings(**{**DIGIT_STRINGS, "digit_size": digit_size}, seed=seed))
    else:
        data = named_splits(load_source(dataset))
    require_columns(data, {"image_column": image_column, "caption_column": caption_column})
    check_texts(data, {"caption_column": caption_column})
    data = DatasetDict({name: split.cast_column(image_column, Image()) for name, split in data.items()})
    check_images_decode(data, image_column)
    return carve_missing_splits(data, seed)


__all__ = ["CAPTION_FEATURES", "DIGIT_STRINGS", "DIGIT_STRINGS_DESCRIPTION", "digit_strings", "load_caption_data"]
