"""The Transformer's decoder as a language model: byte-level tokenizer, data, perplexity, `pipeline("text-generation")`
on a saved model, and `hf-visiontx generate` (quick: a tiny untrained model, its continuations checked against
`generate()`); `hf-visiontx train lm` end to end is in test_language_model_training.py."""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, EvalPrediction, TextStreamer, pipeline

from hf_visiontx import (
    VtxTransformerConfig,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
)
from hf_visiontx.apps.cli import build_parser, main
from hf_visiontx.apps.demo import DemoSettings
from hf_visiontx.apps.inference import generate_text
from hf_visiontx.data import counting_text, train_tokenizer
from hf_visiontx.data.language_modeling import counting_prompts, load_text_data
from hf_visiontx.modeling.families import LANGUAGE_MODEL
from hf_visiontx.training import TRAINERS, TrainOptions, train_language_model
from hf_visiontx.training.language_model import document_collator, next_number_accuracy
from hf_visiontx.training.recipes import PRESETS, model_config, recipe, run_task
from hf_visiontx.training.scoring import perplexity_metrics, token_losses
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import tiny_vit_config

ODD_TEXT = "Grüße, 世界! 👋\ttabs  and   spaces\nnew line , ending in a space "


@pytest.fixture(scope="module")
def corpus():
    return counting_text(train_size=200, validation_size=20, test_size=20, max_number=1000, seed=1)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(list(corpus["train"]["text"]), vocab_size=400, model="byte_bpe")


@pytest.fixture(scope="module")
def saved_lm(tokenizer, tmp_path_factory) -> Path:
    """A tiny random causal LM and its tokenizer, saved as `train lm` saves them."""
    torch.manual_seed(0)
    config = VtxTransformerConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    directory = tmp_path_factory.mktemp("lm") / "tiny"
    VtxTransformerForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@functools.cache
def loaded(directory: Path) -> tuple:
    """The saved model (in eval mode) and tokenizer, loaded once per directory."""
    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


def greedy_continuation(directory: Path, prompt: str, max_new_tokens: int) -> str:
    """The reference: one unpadded prompt through `generate()` directly."""
    model, tokenizer = loaded(directory)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_byte_level_tokenizer_round_trips_any_text_and_prepends_bos(tokenizer, tmp_path):
    ids = tokenizer(ODD_TEXT)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == 1 and tokenizer.eos_token_id not in ids  # prompts are continued
    assert tokenizer.unk_token_id not in ids  # every byte is in the vocabulary
    assert tokenizer.decode(ids, skip_special_tokens=True) == ODD_TEXT
    assert tokenizer.tokenize("seventeen, eighteen,")[-2:] == ["Ġeighteen", ","]  # number words are whole tokens
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(ODD_TEXT)["input_ids"] == ids and reloaded.decode(ids, skip_special_tokens=True) == ODD_TEXT
    batch = reloaded(["one", "two, three"], padding=True)
    assert reloaded.padding_side == "left" and batch["input_ids"][0][:2] == [reloaded.pad_token_id] * 2
    assert batch["attention_mask"][0] == [0, 0, 1, 1]


def test_byte_level_vocabulary_must_exceed_the_bytes_and_special_tokens():
    with pytest.raises(ValueError, match="`vocab_size` must exceed the 260 special tokens and 256 bytes, got 260"):
        train_tokenizer(["one two"], vocab_size=260, model="byte_bpe")
    with pytest.raises(ValueError, match=r"`model` must be one of \('bpe', 'unigram', 'byte_bpe'\), got 'wordpiece'"):
        train_tokenizer(["one two"], model="wordpiece")


def test_training_batches_end_documents_with_eos_and_ignore_padding(tokenizer):
    documents = [tokenizer("one, two")["input_ids"] + [2], tokenizer("five")["input_ids"] + [2]]
    batch = document_collator(tokenizer)([{"input_ids": ids} for ids in documents])
    assert batch["input_ids"][1, : len(documents[1])].tolist() == documents[1]  # padded on the right
    assert batch["labels"][1].tolist() == documents[1] + [-100] * (len(documents[0]) - len(documents[1]))
    assert batch["labels"][0].tolist() == documents[0]


def test_counting_prompts_stop_one_number_early(corpus):
    prompts, answers = counting_prompts(corpus["test"])
    example = corpus["test"][0]
    words = example["text"].split(", ")
    assert prompts[0] == ", ".join(words[:-1]) + "," and answers[0] == words[-1]
    assert len(prompts) == len(answers) == 20


def test_perplexity_is_exp_of_the_mean_loss_per_scored_token():
    logits = torch.zeros(2, 4, 10)  # uniform over 10 tokens: every loss is log(10)
    logits[0, 0, 3] = 50.0  # position 0 of the first document is sure of token 3, which follows: loss 0
    labels = torch.tensor([[5, 3, 7, -100], [1, 2, -100, -100]])
    losses = token_losses(logits, labels)
    assert losses.shape == (2, 3)
    assert losses[0, 0] == pytest.approx(0.0, abs=1e-6) and losses[0, 1] == pytest.approx(math.log(10))
    assert losses[1, 1:].tolist() == [-100.0, -100.0]
    padded = np.concatenate([losses.numpy(), np.full((2, 2), -100.0)], axis=1)  # Trainer's padding between batches
    perplexity = perplexity_metrics()(EvalPrediction(predictions=padded, label_ids=None))["perplexity"]
    assert perplexity == pytest.approx(math.exp(2 * math.log(10) / 3))  # 3 scored tokens, one of them certain


def test_load_text_data_reads_text_files_and_names_bad_documents(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("\n".join(f"document {i}" for i in range(20)) + "\n", encoding="utf-8")
    data = load_text_data([str(good)])
    assert {split: len(data[split]) for split in data} == {"train": 16, "validation": 2, "test": 2}
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"`dataset` file '.*empty\.txt' is empty"):
        load_text_data([str(empty)])
    blank = tmp_path / "blank.txt"
    blank.write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"`text_column` \(--text-column\) 'text': row 1 of the 'train' split holds ''"
    ):
        load_text_data([str(blank)])
    table = tmp_path / "docs.csv"
    table.write_text("body\nfirst\nsecond\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"`text_column` \(--text-column\) 'text' is not a column .* body"):
        load_text_data([str(table)])
    assert load_text_data([f"train={table}", f"validation={table}", f"test={table}"], "body")["test"]["body"] == [
        "first",
        "second",
    ]


def test_lm_run_has_its_own_small_model_recipe_and_gpt2_presets(tmp_path):
    small = model_config("lm", vocab_size=400)
    assert all(getattr(small, name) == value for name, value in LANGUAGE_MODEL.small_config.items())
    assert (small.layer_norm_placement, small.label_smoothing) == ("pre", 0.0)  # the translator's: post-LN, 0.1
    assert model_config("lm", "gpt2").d_model == 768 and {"gpt2", "gpt2-medium"} <= set(PRESETS["lm"])
    assert recipe("lm").lr_scheduler_type == "cosine" and recipe("lm").weight_decay == 0.01
    assert recipe("lm", preset="gpt2").learning_rate == pytest.approx(2.5e-4)  # GPT's rate at batch 64
    assert recipe("transformer").lr_scheduler_type == "inverse_sqrt"  # the translator's recipe is untouched
    assert TrainOptions("lm", output_dir=tmp_path, vocab_size=500).vocab_size == 500
    with pytest.raises(ValueError, match=r"`image_size` \(32\) applies to vit, swin and captioner models, not lm"):
        TrainOptions("lm", output_dir=tmp_path, image_size=32)


def test_text_generation_pipeline_continues_one_prompt_and_a_left_padded_batch(saved_lm):
    generator = pipeline("text-generation", model=str(saved_lm))
    assert type(generator.model).__name__ == "VtxTransformerForCausalLM"
    prompts = ["seventeen, eighteen,", "one hundred one, one hundred two, one hundred three,"]
    expected = [greedy_continuation(saved_lm, prompt, max_new_tokens=6) for prompt in prompts]
    single = generator(prompts[0], max_new_tokens=6, do_sample=False, return_full_text=False)
    assert single == [{"generated_text": expected[0]}]
    batched = generator(prompts, max_new_tokens=6, do_sample=False, return_full_text=False, batch_size=2)
    assert [output[0]["generated_text"] for output in batched] == expected  # left padding changes nothing
    full = generator(prompts[1], max_new_tokens=6, do_sample=False)
    assert full[0]["generated_text"] == prompts[1] + expected[1]


def test_seeded_sampling_is_reproducible_and_the_seed_matters(saved_lm):
    def sample(seed: int) -> list[str]:
        return generate_text(str(saved_lm), ["one, two,"] * 3, max_new_tokens=8, do_sample=True, seed=seed)

    first = sample(seed=3)
    assert sample(seed=3) == first
    assert sample(seed=4) != first or len(set(first)) > 1  # a random model's samples vary


def test_text_streamer_prints_the_continuation_as_generated(saved_lm, capsys):
    tokenizer = AutoTokenizer.from_pretrained(saved_lm)
    generator = pipeline("text-generation", model=str(saved_lm))
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    output = generator("seventeen,", max_new_tokens=6, do_sample=False, return_full_text=False, streamer=streamer)
    assert capsys.readouterr().out.rstrip("\n") == output[0]["generated_text"]


def test_next_number_accuracy_scores_exact_continuations(saved_lm, corpus):
    model, tokenizer = loaded(saved_lm)
    prompts, _ = counting_prompts(corpus["test"].select(range(4)))
    # the answers the model does give: all right; any other number: all wrong
    given = [greedy_continuation(saved_lm, prompt, max_new_tokens=12) for prompt in prompts]
    answers = [continuation.split(",")[0].strip() for continuation in given]
    checkable = [i for i, answer in enumerate(answers) if answer and given[i].startswith(f" {answer}")]
    if checkable:
        chosen_prompts, chosen_answers = [prompts[i] for i in checkable], [answers[i] for i in checkable]
        assert next_number_accuracy(model, tokenizer, chosen_prompts, chosen_answers, batch_size=2) == 1.0
    assert next_number_accuracy(model, tokenizer, prompts, ["no such number"] * 4) == 0.0
    with pytest.raises(ValueError, match="`prompts` and `answers` must be non-empty and of one length, got 4 and 1"):
        next_number_accuracy(model, tokenizer, prompts, ["one"])


def test_generate_command_prints_each_continuation(saved_lm, capsys):
    prompts = ["seventeen, eighteen,", "five,"]
    assert main(["generate", str(saved_lm), *prompts, "--max-new-tokens", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{prompt} -> {greedy_continuation(saved_lm, prompt, 5)}" for prompt in prompts]
    assert main(["generate", str(saved_lm), "one,", "--do-sample", "--top-p", "0.9", "--seed", "1"]) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--max-new-tokens", "0"), "`max_new_tokens` must be positive, got 0."),
        (("--do-sample", "--top-p", "1.5"), "`top_p` must be in (0, 1], got 1.5."),
        (("--temperature", "0"), "`temperature` must be positive, got 0.0."),
    ],
)
def test_generate_command_rejects_bad_settings_in_one_line(saved_lm, arguments, message, capsys):
    assert main(["generate", str(saved_lm), "one,", *arguments]) == 1
    assert capsys.readouterr().err == f"hf-visiontx generate: error: {message}\n"


def test_generate_command_refuses_a_missing_directory_and_a_translator(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing"), "one,"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("hf-visiontx generate: error: ") and error.count("\n") == 1 and "missing" in error
    translator = tmp_path / "translator"
    VtxTransformerForConditionalGeneration(tiny_transformer_config()).save_pretrained(translator)
    assert main(["generate", str(translator), "one,"]) == 1
    error = capsys.readouterr().err
    assert "is a 'vtx_transformer' model (VtxTransformerForConditionalGeneration); `generate` needs a causal" in error
    vit = tmp_path / "vit"
    VtxViTForImageClassification(tiny_vit_config()).save_pretrained(vit)
    assert main(["generate", str(vit), "one,"]) == 1
    assert "is a 'vtx_vit' model (VtxViTForImageClassification); `generate` needs a causal" in capsys.readouterr().err
    assert json.loads((translator / "config.json").read_text())["is_encoder_decoder"] is True


@pytest.mark.parametrize(
    ("content", "arguments", "message"),
    [
        ("", (), "`dataset` file '{file}' is empty."),
        ("one, two\n\nthree, four\n", (), "`text_column` (--text-column) 'text': row 1 of the 'train' split holds ''"),
        (None, ("--text-column", "body"), "`text_column` (--text-column) 'body' is not a column of the 'train' split"),
        (None, ("--preset", "huge"), "'huge' is not a lm preset; choose one of ['base', 'big', 'gpt2', 'gpt2-medium']"),
        (None, ("--image-size", "32"), "`image_size` (32) applies to vit, swin and captioner models, not lm"),
        (None, ("--resume",), "`resume` (--resume): there is no complete checkpoint to resume from"),
    ],
)
def test_train_lm_rejects_bad_data_and_options_in_one_line(content, arguments, message, tmp_path, capsys):
    file = tmp_path / "documents.txt"
    file.write_text("one, two\nthree, four\n" if content is None else content, encoding="utf-8")
    assert main(["train", "lm", "--dataset", str(file), "--output-dir", str(tmp_path / "out"), *arguments]) == 1
    error = capsys.readouterr().err  # after the progress bars of `datasets` reading the file
    last = error.splitlines()[-1]
    assert "Traceback" not in error and last.startswith("hf-visiontx train: error: ")
    assert message.format(file=file) in last


def test_train_lm_refuses_to_fine_tune_a_translator_or_an_image_model(tmp_path, capsys):
    translator = tmp_path / "translator"
    VtxTransformerForConditionalGeneration(tiny_transformer_config()).save_pretrained(translator)
    assert main(["train", "lm", "--from", str(translator), "--output-dir", str(tmp_path / "out")]) == 1
    assert "is an encoder-decoder model (VtxTransformerForConditionalGeneration); `train lm` fine-tunes a causal" in (
        capsys.readouterr().err
    )
    vit = tmp_path / "vit"
    VtxViTForImageClassification(tiny_vit_config()).save_pretrained(vit)
    assert main(["train", "lm", "--from", str(vit), "--output-dir", str(tmp_path / "out")]) == 1
    assert "is a 'vtx_vit' model; `train lm` needs a 'vtx_transformer' one" in capsys.readouterr().err


def test_lm_is_a_run_of_train_and_of_the_demo():
    parser = build_parser()
    assert parser.parse_args(["train", "lm", "--output-dir", "out", "--text-column", "body"]).text_column == "body"
    assert parser.parse_args(["demo", "--only", "lm"]).only == ["lm"]
    assert "lm" in DemoSettings().families and run_task("lm") == "text-generation"
    assert TRAINERS[run_task("lm")] is train_language_model
