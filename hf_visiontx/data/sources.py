"""Where a training dataset comes from, and its train / validation / test splits.

A source is a `datasets` name (from the Hub, or its local cache), a local folder (`datasets` infers the builder:
`imagefolder` for images sorted into one folder per class, `csv` / `json` for text files), or CSV / JSON / plain text
files (`.txt`: one example per line, in a column "text") given as `FILE` (the training split) or `SPLIT=FILE`
items. The helpers here are shared by the image and the text data: they load a source, bring its splits to "train",
"validation" and "test" (carving missing ones out of "train"), and check columns and sizes with errors that name
the argument.

The data modules check their sources' splits as loaded (so that a row number in an error is the row in the file or
split the user has) and carve the missing splits last.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, load_dataset
from datasets.exceptions import DatasetGenerationError

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}
DATA_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}  # text: a "text" column


def _data_files(items: Sequence[str]) -> dict[str, str] | None:
    """`{split: file}` when every item is a data file (`FILE` or `SPLIT=FILE`), None when none is; else an error."""
    files = {}
    for item in items:
        split, _, path = item.partition("=") if "=" in item else ("train", "", item)
        split = SPLIT_ALIASES.get(split, split)
        if Path(path).suffix.lower() not in DATA_FILE_BUILDERS:
            if len(items) == 1:
                return None
            raise ValueError(
                f"`dataset` takes one name or folder, or data files ({', '.join(DATA_FILE_BUILDERS)}) as FILE or "
                f"SPLIT=FILE; got {list(items)}."
            )
        if not Path(path).is_file():
            raise FileNotFoundError(f"`dataset` file {path!r} does not exist.")
        if Path(path).stat().st_size == 0:
            raise ValueError(f"`dataset` file {path!r} is empty.")
        if split in files:
            raise ValueError(f"`dataset` names split {split!r} twice: {files[split]!r} and {path!r}.")
        files[split] = path
    builders = {DATA_FILE_BUILDERS[Path(path).suffix.lower()] for path in files.values()}
    if len(builders) > 1:
        raise ValueError(f"`dataset` files must all be of one kind (CSV, JSON or text), got {sorted(files.values())}.")
    return files


def load_source(source: Sequence[str]) -> DatasetDict:
    """Load a dataset source as a `DatasetDict` (its splits as the source names them).

    Args:
        source: one `datasets` name (for example "cifar10"), one local folder, or one or more CSV / JSON / text
            files, each `FILE` (the training split) or `SPLIT=FILE` (for example `train=a.csv test=b.csv`).

    Raises:
        FileNotFoundError: a named file does not exist.
        ValueError: the items mix kinds, or the source cannot be loaded (the reason is included).
    """
    items = list(source)
    if not items:
        raise ValueError("`dataset` must name a dataset, a folder or data files; got nothing.")
    files = _data_files(items)
    try:
        if files is not None:
            builder = DATA_FILE_BUILDERS[Path(next(iter(files.values()))).suffix.lower()]
            # CSV cells are kept as written: pandas would otherwise read "null" (German zero), "NA" or "None" as
            # missing values.
            options = {"keep_default_na": False} if builder == "csv" else {}
            return load_dataset(builder, data_files=files, **options)
        return load_dataset(items[0])
    except (OSError, ValueError, DatasetGenerationError) as error:  # offline, DatasetNotFoundError, bad rows, ...
        what = (
            f"the files {files}"
            if files is not None
            else f"the local folder {items[0]!r}"
            if Path(items[0]).is_dir()
            else f"the name {items[0]!r}"
        )
        raise ValueError(f"`dataset`: {what} could not be loaded by `datasets` ({error}).") from error


def named_splits(data: DatasetDict) -> DatasetDict:
    """The splits of `data` that training uses: "train" and, when present, "validation" and "test".

    "valid", "val" and "dev" count as "validation"; other splits (for example "unsupervised") are dropped.

    Raises:
        ValueError: there is no "train" split, or a kept split is empty.
    """
    splits = {SPLIT_ALIASES.get(name, name): split for name, split in data.items()}
    if "train" not in splits:
        raise ValueError(f"The dataset has no 'train' split; its splits are {sorted(data)}.")
    result = DatasetDict({name: splits[name] for name in SPLITS if name in splits})
    require_nonempty(result)
    return result


def carve_missing_splits(
    data: DatasetDict,
    seed: int,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    stratify_by_column: str | None = None,
) -> DatasetDict:
    """Complete `data` (a "train" split, maybe "validation" and "test") to exactly those three splits.

    A missing validation or test split is carved out of "train" (the fractions are of the original "train"),
    deterministically for a given `seed`, and stratified by `stratify_by_column` (a `ClassLabel` column) when given
    and every class has enough examples.

    Raises:
        ValueError: a split would be empty.
    """
    splits = dict(data)
    carve = {
        name: fraction
        for name, fraction in (("validation", validation_fraction), ("test", test_fraction))
        if name not in splits
    }
    if carve:
        total = sum(carve.values())
        splits["train"], held_out = _split_off(splits["train"], total, seed, stratify_by_column)
        if len(carve) == 1:
            splits[next(iter(carve))] = held_out
        else:
            splits["validation"], splits["test"] = _split_off(held_out, carve["test"] / total, seed, stratify_by_column)
    result = DatasetDict({name: splits[name] for name in SPLITS})
    require_nonempty(result)
    return result


def _split_off(data: Dataset, fraction: float, seed: int, stratify_by_column: str | None) -> tuple[Dataset, Dataset]:
    """Split `data` into (the rest, `fraction` of it), stratified when every class can be in both parts."""
    if stratify_by_column is not None:
        counts = np.bincount(data[stratify_by_column])
        classes, held_out = np.count_nonzero(counts), math.ceil(fraction * len(data))
        if counts[counts > 0].min() < 2 or not classes <= held_out <= len(data) - classes:
            stratify_by_column = None  # too few examples per class: a plain random split
    parts = data.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify_by_column)
    return parts["train"], parts["test"]


def require_nonempty(data: DatasetDict) -> None:
    """Raise a `ValueError` naming the first empty split."""
    for name, split in data.items():
        if len(split) == 0:
            raise ValueError(f"The {name!r} split of the dataset is empty.")


def require_columns(data: DatasetDict, columns: Mapping[str, str]) -> None:
    """Check that every split has the named columns.

    Args:
        columns: argument name -> column name, for example `{"image_column": "img"}`; the argument is named in the
            error together with the columns the split does have.
    """
    for split_name, split in data.items():
        for argument, column in columns.items():
            if column not in split.column_names:
                raise ValueError(
                    f"`{argument}` (--{argument.replace('_', '-')}) {column!r} is not a column of the "
                    f"{split_name!r} split; its columns are: {', '.join(split.column_names)}."
                )
