"""Translation data: the embedded number-words corpus, any other source, and its checks before training.

The default is `hf_visiontx.data.number_translation` (German number words -> English, generated with num2words).
`load_translation_data` also reads a `datasets` name, a folder of CSV / JSON files, or CSV / JSON files with a
source and a target column, and checks the data before any training starts: the columns exist, every split has
examples, and every source and target is a non-empty string; each error names the column, split and row.
"""

from collections.abc import Sequence

from datasets import DatasetDict

from .numbers import number_translation
from .sources import carve_missing_splits, load_source, named_splits, require_columns

# The embedded corpus: enough numbers up to 100,000 to learn the words' composition in a few minutes on a CPU.
NUMBER_CORPUS = {
    "src_lang": "de",
    "tgt_lang": "en",
    "train_size": 12000,
    "validation_size": 200,
    "test_size": 500,
    "max_number": 100000,
}
NUMBER_CORPUS_DESCRIPTION = "German -> English number words below 100,000 generated with num2words (12,000 pairs)"


def check_texts(data: DatasetDict, columns: dict[str, str]) -> None:
    """Raise a `ValueError` naming the argument, split and row of the first value that is not a non-empty string.

    Args:
        columns: argument name -> column name, for example `{"source_column": "de"}`.
    """
    for split_name, split in data.items():
        for argument, column in columns.items():
            for row, value in enumerate(split[column]):
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(
                        f"`{argument}` (--{argument.replace('_', '-')}) {column!r}: row {row} of the {split_name!r} "
                        f"split holds {value!r}; every example needs a non-empty string."
                    )


def load_translation_data(
    dataset: Sequence[str] | None = None,
    source_column: str = "source",
    target_column: str = "target",
    seed: int = 0,
) -> DatasetDict:
    """Load and check sentence pairs for translation.

    Args:
        dataset: None for the embedded German -> English number words (columns "source" and "target"), else a
            source as in `hf_visiontx.data.sources.load_source`: a `datasets` name, a folder, or CSV / JSON files.
        source_column, target_column: the columns with the text to translate and its translation.
        seed: seed of the embedded corpus, and of the split when validation or test are carved out of "train".

    Returns:
        `DatasetDict` with "train", "validation" and "test" splits.

    Raises:
        ValueError: naming the missing column, empty split, or row without text.
    """
    data = named_splits(number_translation(**NUMBER_CORPUS, seed=seed) if dataset is None else load_source(dataset))
    columns = {"source_column": source_column, "target_column": target_column}
    require_columns(data, columns)
    check_texts(data, columns)
    return carve_missing_splits(data, seed)
