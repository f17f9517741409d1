"""Text datasets of numbers in words, generated on the fly, so that tests and the demo need no network.

`number_translation` writes numbers as words in two languages with num2words: German -> English turns
"siebenundachtzig" into "eighty-seven", which needs real reordering (units before tens in German), compound
splitting and agreement, yet is learnable in minutes on a CPU.

`counting_text` counts in English words ("seventeen, eighteen, nineteen, twenty"): a language-modelling corpus whose
continuations anyone can check by eye.
"""

import itertools
import random

from datasets import Dataset, DatasetDict, Features, Value
from num2words import CONVERTER_CLASSES, num2words

NUMBER_TRANSLATION_FEATURES = Features({"number": Value("int64"), "source": Value("string"), "target": Value("string")})


def numbers_across_magnitudes(total: int, max_number: int, rng: random.Random) -> list[int]:
    """`total` distinct numbers from [0, max_number), split as evenly as possible over [0, 10), [10, 100), ..."""
    bounds = [0] + [10**k for k in range(1, len(str(max_number - 1)) + 1)]
    ranges = [range(low, min(high, max_number)) for low, high in itertools.pairwise(bounds) if low < max_number]
    counts, remaining = {}, total
    for position, numbers in enumerate(sorted(ranges, key=len)):  # small ranges first, their leftovers go on
        counts[numbers] = min(len(numbers), remaining // (len(ranges) - position))
        remaining -= counts[numbers]
    return [n for numbers in ranges for n in rng.sample(numbers, counts[numbers])]


def dealt_numbers(
    train_size: int, validation_size: int, test_size: int, available: int, limit: str, rng: random.Random
) -> dict[str, list[int]]:
    """Distinct numbers from [0, available), spread over orders of magnitude (`numbers_across_magnitudes`),
    shuffled and dealt into "train", "validation" and "test" lists of the given sizes: no number is in two splits.

    Raises:
        ValueError: a negative size, or more numbers asked for than `available` (`limit` names what sets it).
    """
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    for split, size in sizes.items():
        if size < 0:
            raise ValueError(f"`{split}_size` must be non-negative, got {size}.")
    total = sum(sizes.values())
    if total > available:
        raise ValueError(
            f"The splits ask for {total} distinct numbers but {limit} allows only {available}; raise it or shrink "
            "the splits."
        )
    numbers = numbers_across_magnitudes(total, available, rng)
    rng.shuffle(numbers)
    dealt, start = {}, 0
    for split, size in sizes.items():
        dealt[split] = numbers[start : start + size]
        start += size
    return dealt


def number_in_words(number: int) -> str:
    """The number in English words, without "and" or commas: 312 -> "three hundred twelve", 4021 -> "four thousand
    twenty-one"."""
    return num2words(number, lang="en").replace(" and", "").replace(",", "")


def number_translation(
    src_lang: str = "de",
    tgt_lang: str = "en",
    train_size: int = 8000,
    validation_size: int = 500,
    test_size: int = 500,
    max_number: int = 10000,
    seed: int = 0,
) -> DatasetDict:
    """A deterministic number-words translation corpus.

    Distinct numbers are drawn from [0, max_number) with `seed`, spread evenly over orders of magnitude (as many
    one- or two-digit numbers as there are, the rest shared equally by the longer ones) so that short and long
    numbers are both learned, then shuffled and dealt into the splits: no number (and so no source sentence)
    appears in two splits.

    Args:
        src_lang, tgt_lang: num2words language codes (for example "de", "en", "fr", "es", "it", "nl").
        train_size, validation_size, test_size: examples per split.
        max_number: numbers are drawn from [0, max_number).
        seed: the same seed gives the same dataset on every machine.

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits and columns "number" (int), "source" (the
        number in `src_lang` words) and "target" (in `tgt_lang` words).
    """
    for name, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if lang not in CONVERTER_CLASSES:
            raise ValueError(
                f"`{name}` {lang!r} is not a num2words language; choose one of {sorted(CONVERTER_CLASSES)}."
            )
    limit = f"`max_number`={max_number}"
    dealt = dealt_numbers(train_size, validation_size, test_size, max_number, limit, random.Random(seed))
    splits = {}
    for split, chosen in dealt.items():
        splits[split] = Dataset.from_dict(
            {
                "number": chosen,
                "source": [num2words(n, lang=src_lang) for n in chosen],
                "target": [num2words(n, lang=tgt_lang) for n in chosen],
            },
            features=NUMBER_TRANSLATION_FEATURES,
        )
    return DatasetDict(splits)


COUNTING_SEPARATOR = ", "


def counting_text(
    train_size: int = 8000,
    validation_size: int = 300,
    test_size: int = 300,
    max_number: int = 10000,
    min_length: int = 3,
    max_length: int = 8,
    seed: int = 0,
) -> DatasetDict:
    """A deterministic language-modelling corpus that counts in English words.

    Each document is a run of consecutive numbers in words (`number_in_words`) joined by ", ": "seventeen,
    eighteen, nineteen, twenty". The runs start at distinct numbers drawn from [0, max_number) with `seed`, spread
    evenly over orders of magnitude, and are dealt into the splits: no document appears in two splits.

    Args:
        train_size, validation_size, test_size: documents per split.
        max_number: runs start in [0, max_number) (and may count past it).
        min_length, max_length: numbers per document, drawn uniformly.
        seed: the same seed gives the same corpus on every machine.

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits and columns "text" (the document), "start" (its
        first number) and "length" (how many numbers it counts).
    """
    if not 2 <= min_length <= max_length:
        raise ValueError(
            f"`min_length` and `max_length` must satisfy 2 <= min_length <= max_length, got {min_length} and "
            f"{max_length}: a document counts at least two numbers."
        )
    rng = random.Random(seed)
    dealt = dealt_numbers(train_size, validation_size, test_size, max_number, f"`max_number`={max_number}", rng)
    splits = {}
    for split, chosen in dealt.items():
        lengths = [rng.randint(min_length, max_length) for _ in chosen]
        texts = [
            COUNTING_SEPARATOR.join(number_in_words(n) for n in range(start, start + length))
            for start, length in zip(chosen, lengths, strict=True)
        ]
        splits[split] = Dataset.from_dict({"text": texts, "start": chosen, "length": lengths})
    return DatasetDict(splits)
