"""The `seq2seq-translation` pipeline: one call that translates a batch of strings."""

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from hf_visiontx import VtxTransformerForConditionalGeneration
from hf_visiontx.data import train_tokenizer
from support.transformer_tester import tiny_transformer_config

SOURCES = ["ein zwei drei", "vier fünf", "sechs sieben acht neun zehn"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("translator")
    tokenizer = train_tokenizer(SOURCES * 5 + ["one two three four five"] * 5, vocab_size=60, min_frequency=1)
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config(vocab_size=len(tokenizer))).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def reference_translation(directory, texts, **generate_kwargs):
    model = VtxTransformerForConditionalGeneration.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    generated = model.generate(**batch, **generate_kwargs)
    return tokenizer.batch_decode(generated, skip_special_tokens=True)


def test_pipeline_translates_a_batch_like_generate(saved_model):
    translator = pipeline("seq2seq-translation", model=str(saved_model))
    results = translator(SOURCES, batch_size=2, max_new_tokens=6, num_beams=2)
    assert [r["translation_text"] for r in results] == reference_translation(
        saved_model, SOURCES, max_new_tokens=6, num_beams=2
    )
    single = translator(SOURCES[0], max_new_tokens=6, num_beams=2)
    assert single == [results[0]]


def test_pipeline_returns_several_candidates_per_input(saved_model):
    translator = pipeline("seq2seq-translation", model=str(saved_model), max_new_tokens=5)
    results = translator(SOURCES[:2], num_beams=3, num_return_sequences=3)
    assert [len(candidates) for candidates in results] == [3, 3]
    assert all(set(candidate) == {"translation_text"} for candidates in results for candidate in candidates)


def test_pipeline_rejects_non_text_input(saved_model):
    translator = pipeline("seq2seq-translation", model=str(saved_model))
    with pytest.raises(TypeError, match="`texts` must be a string or a non-empty sequence of strings, got a int"):
        translator(["fine", 3])
    with pytest.raises(TypeError, match="got an empty sequence"):
        translator([])
