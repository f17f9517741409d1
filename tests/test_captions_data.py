"""The embedded captioning data: handwritten digit strings captioned with the number in English words."""

import numpy as np
import pytest

from hf_visiontx.data import digit_strings, digits, number_in_words

SIZES = {"train_size": 120, "validation_size": 30, "test_size": 40}


@pytest.fixture(scope="module")
def data():
    return digit_strings(digit_size=8, max_digits=4, seed=1, **SIZES)


def test_numbers_are_said_in_words_without_and_or_commas():
    assert number_in_words(0) == "zero"
    assert number_in_words(312) == "three hundred twelve"
    assert number_in_words(4021) == "four thousand twenty-one"
    assert number_in_words(9999) == "nine thousand nine hundred ninety-nine"


def test_captions_say_the_numbers_and_splits_share_no_number(data):
    assert {split: len(data[split]) for split in data} == {"train": 120, "validation": 30, "test": 40}
    seen = set()
    for split in data:
        numbers = data[split]["number"]
        assert data[split]["caption"] == [number_in_words(number) for number in numbers]
        assert len(set(numbers)) == len(numbers) and not seen & set(numbers)
        seen |= set(numbers)
    assert {len(str(number)) for number in seen} == {1, 2, 3, 4}  # every length is represented


def test_images_show_each_digit_in_its_slot_and_handwriting_stays_in_its_split(data):
    pools = digits(image_size=8, seed=1)  # the handwriting each split draws from
    pool_bytes = {split: {np.asarray(image).tobytes() for image in pools[split]["image"]} for split in data}
    for split in data:
        for example in data[split].select(range(10)):
            pixels = np.asarray(example["image"])
            assert pixels.shape == (8, 32, 3)
            length = len(str(example["number"]))
            assert not pixels[:, 8 * length :].any()  # black after the last digit
            for position, digit in enumerate(str(example["number"])):
                slot = pixels[:, 8 * position : 8 * (position + 1)]
                assert slot.any() and slot.tobytes() in pool_bytes[split], (split, digit)


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(data):
    again = digit_strings(digit_size=8, max_digits=4, seed=1, **SIZES)
    other = digit_strings(digit_size=8, max_digits=4, seed=2, **SIZES)
    assert again["test"]["caption"] == data["test"]["caption"]
    first, repeated = np.asarray(data["test"][0]["image"]), np.asarray(again["test"][0]["image"])
    assert np.array_equal(first, repeated)
    assert other["test"]["caption"] != data["test"]["caption"]


def test_impossible_requests_name_the_argument():
    with pytest.raises(ValueError, match="`max_digits` must be between 1 and 6, got 0"):
        digit_strings(max_digits=0)
    with pytest.raises(ValueError, match="`test_size` must be non-negative, got -1"):
        digit_strings(test_size=-1)
    with pytest.raises(ValueError, match="ask for 12 distinct numbers but `max_digits`=1 allows only 10"):
        digit_strings(max_digits=1, train_size=10, validation_size=1, test_size=1)
