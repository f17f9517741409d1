"""Language-modelling data: the embedded counting corpus, any other source, its checks, and held-out prompts.

The default is `hf_visiontx.data.counting_text` (runs of consecutive numbers in English words). `load_text_data`
also reads a `datasets` name, a folder, plain text files (one document per line) or CSV / JSON files with a text
column, and checks the data before any training starts: the column exists, every split has documents, and every
document is a non-empty string; each error names the column, split and row.

`counting_prompts` turns counting documents into checkable prompts: the first numbers of a run, and the number that
comes next.
"""

from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from .numbers import COUNTING_SEPARATOR, counting_text, number_in_words
from .sources import carve_missing_splits, load_source, named_splits, require_columns
from .translation import check_texts

# The embedded corpus: runs of 3 to 8 numbers starting below 10,000, every order of magnitude represented.
COUNTING_CORPUS = {
    "train_size": 8000,
    "validation_size": 300,
    "test_size": 300,
    "max_number": 10000,
    "min_length": 3,
    "max_length": 8,
}
COUNTING_CORPUS_DESCRIPTION = (
    "counting in English words: runs of 3 to 8 consecutive numbers below 10,000 generated with num2words "
    "(8,000 documents)"
)


def load_text_data(dataset: Sequence[str] | None = None, text_column: str = "text", seed: int = 0) -> DatasetDict:
    """Load and check documents for language modelling.

    Args:
        dataset: None for the embedded counting corpus (columns "text", "start", "length"), else a source as in
            `hf_visiontx.data.sources.load_source`: a `datasets` name, a folder, or text / CSV / JSON files.
        text_column: the column with the documents ("text" for plain text files).
        seed: seed of the embedded corpus, and of the split when validation or test are carved out of "train".

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits.

    Raises:
        ValueError: naming the missing column, empty split, or empty document (by split and row).
    """
    data = named_splits(counting_text(**COUNTING_CORPUS, seed=seed) if dataset is None else load_source(dataset))
    columns = {"text_column": text_column}
    require_columns(data, columns)
    check_texts(data, columns)
    return carve_missing_splits(data, seed)


def counting_prompts(documents: Dataset) -> tuple[list[str], list[str]]:
    """Prompts that end a counting document one number early, and the numbers that should follow.

    A document of `length` numbers from `start` gives the prompt of its first `length - 1` numbers, each followed by
    ", " but the last, which is followed by "," only ("seventeen, eighteen,"), and the answer `start + length - 1` in
    words ("nineteen"): a model that can count continues the prompt with " nineteen".

    Args:
        documents: a split of `counting_text` (columns "start" and "length").
    """
    prompts, answers = [], []
    for start, length in zip(documents["start"], documents["length"], strict=True):
        counted = COUNTING_SEPARATOR.join(number_in_words(n) for n in range(start, start + length - 1))
        prompts.append(counted + COUNTING_SEPARATOR.rstrip())
        answers.append(number_in_words(start + length - 1))
    return prompts, answers
