"""`hf-visiontx train lm` end to end on small data, through the command line's `main`: what it saves, its metrics,
resuming, fine-tuning, uploading, and using the result with `generate` and `pipeline("text-generation")`."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

from hf_visiontx.apps.cli import main
from hf_visiontx.apps.demo import COUNTING_SHOWCASE, show_continuations
from hf_visiontx.data import counting_text
from support.interruption import run_killed_after_the_first_checkpoint

pytestmark = pytest.mark.slow  # several short training runs

RUN = ("--epochs", "2", "--batch-size", "16", "--vocab-size", "300", "--no-progress")
SMALL_COUNTING = {  # the embedded corpus, shrunk so that a run takes seconds
    "train_size": 160,
    "validation_size": 16,
    "test_size": 16,
    "max_number": 1000,
    "min_length": 3,
    "max_length": 5,
}


def cli(*args: object) -> int:
    return main([str(arg) for arg in args])


def last_checkpoint(output_dir: Path) -> Path:
    return max((output_dir / "checkpoints").glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """Counting documents in a plain text file, one per line."""
    path = tmp_path_factory.mktemp("data") / "counting.txt"
    texts = counting_text(train_size=150, validation_size=0, test_size=0, max_number=1000, seed=2)["train"]["text"]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_lm(documents, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("runs") / "lm"
    assert cli("train", "lm", "--dataset", documents, "--output-dir", output_dir, *RUN) == 0
    return output_dir


def test_train_lm_on_a_text_file_saves_a_causal_lm_with_metrics_and_card(trained_lm, documents):
    names = {path.name for path in trained_lm.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    metrics = json.loads((trained_lm / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"} and set(metrics["test"]) == {"loss", "perplexity"}
    # no label smoothing: the training loss is the mean token loss, and perplexity its exponential
    assert metrics["test"]["perplexity"] == pytest.approx(math.exp(metrics["test"]["loss"]), rel=1e-4)
    assert 1.0 < metrics["test"]["perplexity"] < 300  # better than guessing among the 300 tokens
    config = json.loads((trained_lm / "config.json").read_text())
    assert config["architectures"] == ["VtxTransformerForCausalLM"] and config["is_encoder_decoder"] is False
    card = (trained_lm / "README.md").read_text()
    assert "perplexity" in card and str(documents) in card and 'pipeline_tag: "text-generation"' in card
    history = json.loads((last_checkpoint(trained_lm) / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 2 and losses[1] < losses[0]
    best = json.loads((last_checkpoint(trained_lm) / "trainer_state.json").read_text())["best_metric"]
    assert best == min(entry["eval_perplexity"] for entry in history if "eval_perplexity" in entry)  # lower wins


def test_the_trained_lm_continues_prompts_from_the_command_line_and_the_pipeline(trained_lm, capsys):
    prompts = ["seventeen, eighteen,", "one hundred one,"]
    assert cli("generate", trained_lm, *prompts, "--max-new-tokens", "4") == 0
    lines = capsys.readouterr().out.splitlines()
    generator = pipeline("text-generation", model=str(trained_lm))
    outputs = generator(prompts, max_new_tokens=4, do_sample=False, return_full_text=False)  # the pipeline samples
    continuations = [output[0]["generated_text"] for output in outputs]  # unless told otherwise; generate does not
    assert lines == [f"{prompt} -> {text}" for prompt, text in zip(prompts, continuations, strict=True)]


def test_train_lm_on_the_embedded_corpus_scores_next_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("hf_visiontx.data.language_modeling.COUNTING_CORPUS", SMALL_COUNTING)
    output_dir = tmp_path / "counting"
    assert cli("train", "lm", "--output-dir", output_dir, *RUN) == 0
    captured = capsys.readouterr()
    table = captured.out
    assert "Map:" not in captured.err + captured.out  # --no-progress: no bars, the data preparation's included
    assert re.search(r"^next_number_accuracy\s+\d\.\d{4}\s+\d\.\d{4}$", table, flags=re.MULTILINE)
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "perplexity", "next_number_accuracy"}
    assert 0.0 <= metrics["test"]["next_number_accuracy"] <= 1.0
    assert "counting in English words" in (output_dir / "README.md").read_text()
    # the demo's reload: the same held-out test prompts give the same accuracy through AutoModelForCausalLM
    assert show_continuations(output_dir, seed=0, count=3) == metrics["test"]["next_number_accuracy"]
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("    reloaded VtxTransformerForCausalLM and TokenizersBackend")
    assert len(shown) == 1 + 3 + len(COUNTING_SHOWCASE) + 1 and shown[1].startswith("    ")
    assert " ->" in shown[1] and shown[-1].startswith("    next-number accuracy on 16 held-out prompts:")


def test_a_killed_lm_run_resumed_from_its_checkpoint_ends_with_the_same_weights(
    trained_lm, documents, tmp_path, monkeypatch
):
    output_dir = tmp_path / "lm"
    arguments = ("train", "lm", "--dataset", documents, "--output-dir", output_dir, *RUN)
    run_killed_after_the_first_checkpoint(monkeypatch, lambda: cli(*arguments))
    assert len(list((output_dir / "checkpoints").iterdir())) == 1
    assert cli(*arguments, "--resume") == 0
    uninterrupted = load_file(last_checkpoint(trained_lm) / "model.safetensors")
    resumed = load_file(last_checkpoint(output_dir) / "model.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


def test_lm_fine_tunes_from_a_saved_lm_and_pushes(trained_lm, tmp_path, monkeypatch):
    pushes = []
    monkeypatch.setattr(
        "hf_visiontx.training.loop.push", lambda directory, repo_id: pushes.append((directory, repo_id))
    )
    other = tmp_path / "other.txt"
    other.write_text("\n".join(f"{n}, {n + 1}, {n + 2}" for n in range(40)) + "\n", encoding="utf-8")
    output_dir = tmp_path / "tuned"
    run = ("--epochs", "1", "--batch-size", "16", "--no-progress", "--push-to-hub", "me/lm")
    assert cli("train", "lm", "--from", trained_lm, "--dataset", other, "--output-dir", output_dir, *run) == 0
    assert pushes == [(output_dir, "me/lm")]
    before, after = load_file(trained_lm / "model.safetensors"), load_file(output_dir / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[name], after[name], atol=0.05) for name in before)  # tuned, not re-drawn
    assert not all(torch.equal(before[name], after[name]) for name in before)
    assert (output_dir / "tokenizer.json").read_text() == (trained_lm / "tokenizer.json").read_text()
    assert f'base_model: "{trained_lm}"' in (output_dir / "README.md").read_text()
