"""Image-captioning data that ships with the package: strings of handwritten digits captioned in English words.

`digit_strings` lays 1 to `max_digits` of scikit-learn's handwritten digits side by side and captions the image with
the number they write, in words: the image of "3", "1", "2" is captioned "three hundred twelve". Reading it needs
both halves of an image-to-text model: recognising each digit, and saying the number in the right order and form.
"""

import random

from datasets import Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from .images import digits
from .numbers import dealt_numbers, number_in_words

CAPTION_FEATURES = Features({"image": Image(), "caption": Value("string"), "number": Value("int64")})


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


__all__ = ["CAPTION_FEATURES", "digit_strings"]
