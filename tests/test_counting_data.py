"""The embedded language-modelling corpus: counting in English words."""

import pytest

from hf_visiontx.data import counting_text, number_in_words


@pytest.fixture(scope="module")
def corpus():
    return counting_text(train_size=300, validation_size=40, test_size=40, max_number=1000, seed=3)


def test_documents_count_consecutive_numbers_in_words(corpus):
    for split in corpus:
        for example in corpus[split]:
            words = example["text"].split(", ")
            assert words == [number_in_words(n) for n in range(example["start"], example["start"] + example["length"])]
            assert 3 <= example["length"] <= 8
    assert ", ".join(number_in_words(n) for n in range(17, 21)) == "seventeen, eighteen, nineteen, twenty"
    assert number_in_words(120) == "one hundred twenty"


def test_splits_share_no_document_and_every_magnitude_starts_some(corpus):
    starts = {split: set(corpus[split]["start"]) for split in corpus}
    assert not starts["train"] & starts["validation"] and not starts["train"] & starts["test"]
    assert not starts["validation"] & starts["test"]
    assert {len(str(start)) for start in starts["train"]} == {1, 2, 3}
    assert {split: len(corpus[split]) for split in corpus} == {"train": 300, "validation": 40, "test": 40}


def test_the_same_seed_gives_the_same_corpus(corpus):
    again = counting_text(train_size=300, validation_size=40, test_size=40, max_number=1000, seed=3)
    other = counting_text(train_size=300, validation_size=40, test_size=40, max_number=1000, seed=4)
    assert again["test"]["text"] == corpus["test"]["text"] and other["test"]["text"] != corpus["test"]["text"]


def test_impossible_requests_name_the_argument():
    with pytest.raises(ValueError, match="2 <= min_length <= max_length, got 5 and 4"):
        counting_text(min_length=5, max_length=4)
    with pytest.raises(ValueError, match="ask for 30 distinct numbers but `max_number`=20 allows only 20"):
        counting_text(train_size=10, validation_size=10, test_size=10, max_number=20)
