"""The generated number-translation corpus and the subword tokenizer trained in code."""

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_visiontx.data import number_translation, train_tokenizer


def test_number_translation_is_deterministic_and_splits_do_not_overlap():
    first = number_translation(train_size=300, validation_size=50, test_size=50, max_number=2000, seed=3)
    again = number_translation(train_size=300, validation_size=50, test_size=50, max_number=2000, seed=3)
    other = number_translation(train_size=300, validation_size=50, test_size=50, max_number=2000, seed=4)
    assert {split: len(first[split]) for split in first} == {"train": 300, "validation": 50, "test": 50}
    assert first["train"]["number"] == again["train"]["number"] and first["test"]["target"] == again["test"]["target"]
    assert first["train"]["number"] != other["train"]["number"]
    splits = [set(first[split]["source"]) for split in ("train", "validation", "test")]
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])
    assert len(splits[0]) == 300
    lengths = {len(str(n)) for n in first["train"]["number"]}
    assert lengths == {1, 2, 3, 4}  # every order of magnitude is represented


def test_number_translation_writes_numbers_in_both_languages():
    data = number_translation(train_size=100, validation_size=0, test_size=0, max_number=100, seed=0)
    pairs = dict(
        zip(data["train"]["number"], zip(data["train"]["source"], data["train"]["target"], strict=True), strict=True)
    )
    assert pairs[87] == ("siebenundachtzig", "eighty-seven")
    assert pairs[21] == ("einundzwanzig", "twenty-one")
    french = number_translation("en", "fr", train_size=5, validation_size=0, test_size=0, max_number=100)
    assert french["train"].column_names == ["number", "source", "target"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"src_lang": "xx"}, "`src_lang` 'xx' is not a num2words language"),
        ({"train_size": 90, "max_number": 100}, "ask for 1090 distinct numbers"),
        ({"test_size": -1}, "`test_size` must be non-negative"),
    ],
)
def test_number_translation_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        number_translation(**kwargs)


def test_trained_tokenizer_has_special_tokens_and_appends_eos(tmp_path):
    texts = ["siebenundachtzig", "eighty-seven", "dreihundertzwölf", "three hundred and twelve"] * 20
    tokenizer = train_tokenizer(texts, vocab_size=120, min_frequency=1)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    special = (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert special == (0, 1, 2, 3)
    encoded = tokenizer("siebenundachtzig", text_target="eighty-seven")
    assert encoded.input_ids[-1] == tokenizer.eos_token_id and encoded.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded.labels, skip_special_tokens=True) == "eighty-seven"
    assert tokenizer.decode(tokenizer("three hundred and twelve").input_ids, skip_special_tokens=True) == (
        "three hundred and twelve"
    )
    assert tokenizer.unk_token_id in tokenizer("qqq").input_ids  # unseen characters map to <unk>
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("dreihundertzwölf").input_ids == tokenizer("dreihundertzwölf").input_ids
    assert reloaded.pad_token == "<pad>" and reloaded.eos_token == "</s>"


def test_unigram_tokenizer_round_trips_text():
    texts = ["drei hundert zwölf", "three hundred twelve", "ein tausend"] * 30
    tokenizer = train_tokenizer(texts, vocab_size=60, model="unigram", lowercase=True)
    assert tokenizer.decode(tokenizer("Drei Hundert").input_ids, skip_special_tokens=True) == "drei hundert"


@pytest.mark.parametrize(
    ("texts", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "at least one non-empty string"),
        (["a b"], {"vocab_size": 3}, ValueError, "`vocab_size` must exceed the 4 special tokens"),
        (["a b"], {"model": "wordpiece"}, ValueError, "`model` must be one of"),
        (["a b", 3], {}, TypeError, "`texts` must hold strings, found int"),
    ],
)
def test_train_tokenizer_rejects_bad_arguments(texts, kwargs, error, message):
    with pytest.raises(error, match=message):
        train_tokenizer(texts, **kwargs)
