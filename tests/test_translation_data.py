"""Translation data and dataset sources: the embedded corpus, CSV / JSON files, and the checks before training."""

import json

import pytest

from hf_visiontx.data.sources import load_source
from hf_visiontx.data.translation import load_translation_data
from support.training_data import write_translation_csvs


def test_the_embedded_corpus_is_the_number_words():
    data = load_translation_data(seed=0)
    assert {split: len(data[split]) for split in data} == {"train": 12000, "validation": 200, "test": 500}
    assert not set(data["train"]["source"]) & set(data["test"]["source"])


def test_split_files_load_with_their_splits_and_csv_cells_as_written(tmp_path):
    items = write_translation_csvs(tmp_path, sizes=(20, 4, 6))
    data = load_translation_data(items)
    assert {split: len(data[split]) for split in data} == {"train": 20, "validation": 4, "test": 6}
    assert data["train"].column_names == ["source", "target"]
    assert ("null", "zero") in zip(data["train"]["source"], data["train"]["target"], strict=True)  # not a missing value


def test_missing_splits_are_carved_from_train_and_aliases_count(tmp_path):
    rows = [{"de": f"satz {i}", "en": f"sentence {i}"} for i in range(30)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "dev.jsonl").write_text(json.dumps(rows[0]) + "\n")
    data = load_translation_data([str(tmp_path / "all.jsonl")], source_column="de", target_column="en", seed=0)
    assert {split: len(data[split]) for split in data} == {"train": 24, "validation": 3, "test": 3}
    assert data["test"]["de"] == load_translation_data([str(tmp_path / "all.jsonl")], "de", "en", seed=0)["test"]["de"]
    with_dev = load_translation_data([f"train={tmp_path / 'all.jsonl'}", f"dev={tmp_path / 'dev.jsonl'}"], "de", "en")
    assert len(with_dev["validation"]) == 1 and len(with_dev["train"]) + len(with_dev["test"]) == 30


def test_a_missing_column_is_named_with_the_available_ones(tmp_path):
    items = write_translation_csvs(tmp_path, sizes=(4, 2, 2))
    with pytest.raises(
        ValueError,
        match=r"`target_column` \(--target-column\) 'english' is not a column of the "
        r"'train' split; its columns are: source, target",
    ):
        load_translation_data(items, target_column="english")


def test_an_empty_text_is_named_with_split_and_row(tmp_path):
    (tmp_path / "train.csv").write_text("source,target\neins,one\nzwei,\ndrei,three\n")
    with pytest.raises(
        ValueError,
        match=r"`target_column` \(--target-column\) 'target': row 1 of the 'train' split "
        r"holds ''; every example needs a non-empty string",
    ):
        load_translation_data(
            [
                f"train={tmp_path / 'train.csv'}",
                f"validation={tmp_path / 'train.csv'}",
                f"test={tmp_path / 'train.csv'}",
            ]
        )


def test_bad_sources_are_named(tmp_path):
    (tmp_path / "a.csv").write_text("source,target\neins,one\n")
    (tmp_path / "b.json").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match=r"`dataset` file '.*missing\.csv' does not exist"):
        load_source([str(tmp_path / "missing.csv")])
    with pytest.raises(ValueError, match=r"must all be of one kind \(CSV, JSON or text\)"):
        load_source([f"train={tmp_path / 'a.csv'}", f"test={tmp_path / 'b.json'}"])
    with pytest.raises(ValueError, match="names split 'train' twice"):
        load_source([str(tmp_path / "a.csv"), f"train={tmp_path / 'a.csv'}"])
    with pytest.raises(ValueError, match=r"`dataset`: the name 'no-such/dataset' could not be loaded by `datasets`"):
        load_source(["no-such/dataset"])  # offline in the tests: not found in the cache either
