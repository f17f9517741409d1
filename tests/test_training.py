"""`hf-visiontx train / classify / translate` end to end on tiny data, through the command line's `main`."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, AutoModelForSeq2SeqLM, AutoTokenizer

from hf_visiontx.apps.cli import main
from hf_visiontx.apps.demo import SHOWCASE, show_classifications, show_translations
from support.interruption import run_killed_after_the_first_checkpoint
from support.training_data import write_image_folder, write_translation_csvs

pytestmark = pytest.mark.slow  # multi-epoch training runs and the CLI's train command

VIT_RUN = ("--epochs", "3", "--batch-size", "8", "--learning-rate", "3e-3", "--no-progress")


def cli(*args: object) -> int:
    return main([str(arg) for arg in args])


def last_checkpoint(output_dir: Path) -> Path:
    return max((output_dir / "checkpoints").glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("data") / "images", {"dark": 40, "light": 210}, per_class=12)


@pytest.fixture(scope="module")
def trained_vit(image_folder, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("runs") / "vit"
    assert cli("train", "vit", "--dataset", image_folder, "--output-dir", output_dir, *VIT_RUN) == 0
    return output_dir


def test_train_vit_saves_model_metrics_card_and_checkpoints(trained_vit, image_folder):
    names = {path.name for path in trained_vit.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)  # nothing pickled next to the model
    metrics = json.loads((trained_vit / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"} and set(metrics["test"]) == {"loss", "accuracy"}
    card = (trained_vit / "README.md").read_text()
    assert "accuracy" in card and str(image_folder) in card
    checkpoints = list((trained_vit / "checkpoints").glob("checkpoint-*"))
    assert 1 <= len(checkpoints) <= 2  # the best and the last
    history = json.loads((last_checkpoint(trained_vit) / "trainer_state.json").read_text())["log_history"]
    epoch_losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(epoch_losses) == 3 and epoch_losses[-1] < epoch_losses[0]
    assert [entry["epoch"] for entry in history if "eval_accuracy" in entry] == [1.0, 2.0, 3.0]


def test_the_trained_vit_reloads_and_classifies_from_the_command_line(trained_vit, image_folder, capsys):
    model = AutoModelForImageClassification.from_pretrained(trained_vit)
    assert model.config.id2label == {0: "dark", 1: "light"}
    capsys.readouterr()
    image = image_folder / "light" / "0.png"
    assert cli("classify", trained_vit, image, image_folder / "dark" / "1.png", "--top-k", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image) and len(lines) == 6  # two images, two classes each (top-k capped)
    assert re.fullmatch(r"\s+\d+\.\d\d%\s+(dark|light)", lines[1])


def test_classify_names_an_unreadable_image(trained_vit, tmp_path, capsys):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    assert cli("classify", trained_vit, not_an_image) == 1
    assert f"`images`: {not_an_image} cannot be read as an image" in capsys.readouterr().err


def test_a_killed_run_resumed_from_its_checkpoint_ends_with_the_same_weights(
    trained_vit, image_folder, tmp_path, monkeypatch
):
    output_dir = tmp_path / "vit"
    arguments = ("train", "vit", "--dataset", image_folder, "--output-dir", output_dir, *VIT_RUN)
    run_killed_after_the_first_checkpoint(monkeypatch, lambda: cli(*arguments))
    assert [path.name for path in (output_dir / "checkpoints").iterdir()] == ["checkpoint-3"]
    assert cli(*arguments, "--resume") == 0
    uninterrupted = load_file(last_checkpoint(trained_vit) / "model.safetensors")
    resumed = load_file(last_checkpoint(output_dir) / "model.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


def test_resume_skips_a_checkpoint_whose_writing_was_cut_short(trained_vit, image_folder, tmp_path, capsys):
    """The last checkpoint lost what Trainer writes after the weights: resume from the one before, and end with
    the uninterrupted run's weights."""
    output_dir = tmp_path / "vit"
    shutil.copytree(trained_vit / "checkpoints", output_dir / "checkpoints")
    cut_short = last_checkpoint(output_dir)
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (cut_short / name).unlink()
    arguments = ("train", "vit", "--dataset", image_folder, "--output-dir", output_dir, *VIT_RUN, "--resume")
    assert cli(*arguments) == 0
    assert f"skipping the incomplete checkpoint {cut_short}" in capsys.readouterr().err
    uninterrupted = load_file(last_checkpoint(trained_vit) / "model.safetensors")
    resumed = load_file(last_checkpoint(output_dir) / "model.safetensors")
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


def test_swin_fine_tunes_from_a_saved_model_with_other_classes(image_folder, tmp_path, monkeypatch):
    first, second = tmp_path / "swin-2", tmp_path / "swin-3"
    run = ("--epochs", "1", "--batch-size", "8", "--no-progress")
    pushes = []
    monkeypatch.setattr(
        "hf_visiontx.training.loop.push", lambda directory, repo_id: pushes.append((directory, repo_id))
    )
    assert cli("train", "swin", "--dataset", image_folder, "--output-dir", first, *run, "--push-to-hub", "me/swin") == 0
    assert pushes == [(first, "me/swin")]  # the saved directory, after the card was written
    three_classes = write_image_folder(tmp_path / "three", {"dark": 30, "grey": 128, "light": 220}, per_class=6)
    assert cli("train", "swin", "--from", first, "--dataset", three_classes, "--output-dir", second, *run) == 0
    config = json.loads((second / "config.json").read_text())
    assert config["id2label"] == {"0": "dark", "1": "grey", "2": "light"}
    before, after = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert after["classifier.weight"].shape[0] == 3 and before["classifier.weight"].shape[0] == 2
    body = [name for name in before if not name.startswith("classifier.")]
    assert all(torch.allclose(before[name], after[name], atol=0.05) for name in body)  # fine-tuned, not re-drawn
    assert f'base_model: "{first}"' in (second / "README.md").read_text()


def test_train_transformer_on_csv_files_then_translate(tmp_path, capsys):
    output_dir = tmp_path / "transformer"
    files = write_translation_csvs(tmp_path, sizes=(48, 4, 4))
    assert (
        cli(
            "train",
            "transformer",
            "--dataset",
            *files,
            "--output-dir",
            output_dir,
            "--vocab-size",
            "80",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--no-progress",
        )
        == 0
    )
    table = capsys.readouterr().out
    assert re.search(r"^sacrebleu\s+\d+\.\d{4}\s+\d+\.\d{4}$", table, flags=re.MULTILINE)
    # evaluation left the length limit as it was: a saved max_length next to max_new_tokens makes generate() warn
    saved_generation = json.loads((output_dir / "generation_config.json").read_text())
    assert saved_generation["max_new_tokens"] > 0 and "max_length" not in saved_generation
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "sacrebleu", "chrf", "exact_match"}
    assert len(AutoTokenizer.from_pretrained(output_dir)) <= 80
    assert AutoModelForSeq2SeqLM.from_pretrained(output_dir).config.label_smoothing == 0.1
    assert cli("translate", output_dir, "eins", "zwei", "--num-beams", "2", "--max-new-tokens", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["eins", "zwei"]
    show_translations(output_dir, ["eins"], ["one"])  # the demo's reload through the Auto classes
    shown = capsys.readouterr().out.splitlines()
    assert "reloaded VtxTransformerForConditionalGeneration" in shown[0] and len(shown) == 1 + 1 + len(SHOWCASE)


def test_the_demo_reloads_a_classifier_and_shows_test_digits(trained_vit, capsys):
    show_classifications(trained_vit, count=4)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("    reloaded VtxViTForImageClassification and ViTImageProcessorPil")
    assert len(lines) == 5 and all(re.match(r"    digit \d: predicted (dark|light) \(", line) for line in lines[1:])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("vit", "--label-column", "class"), "`label_column` (--label-column) 'class' is not a column"),
        (("vit", "--preset", "b/16", "--from", "somewhere"), "give one of them"),
        (("swin", "--preset", "huge"), "'huge' is not a swin preset; choose one of ['base', 'large', 'small', 'tiny']"),
        (
            ("transformer", "--image-size", "64"),
            "`image_size` (64) applies to vit, swin and captioner models, not transformer",
        ),
        (("vit", "--resume"), "`resume` (--resume): there is no complete checkpoint to resume from"),
    ],
)
def test_bad_training_requests_fail_with_a_message(arguments, message, image_folder, tmp_path, capsys):
    family, *rest = arguments
    assert cli("train", family, "--dataset", image_folder, "--output-dir", tmp_path / "out", *rest) == 1
    assert message in capsys.readouterr().err


def test_a_fresh_run_refuses_a_directory_with_checkpoints_and_another_family(trained_vit, capsys):
    assert cli("train", "vit", "--output-dir", trained_vit) == 1
    assert "already holds the checkpoint" in capsys.readouterr().err
    assert cli("train", "swin", "--from", trained_vit, "--output-dir", trained_vit.parent / "other") == 1
    assert "is a 'vtx_vit' model; `train swin` needs a 'vtx_swin' one" in capsys.readouterr().err


def test_resuming_from_a_truncated_checkpoint_names_the_file(trained_vit, tmp_path, capsys):
    output_dir = tmp_path / "vit"
    shutil.copytree(trained_vit / "checkpoints", output_dir / "checkpoints")
    weights = last_checkpoint(output_dir) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert cli("train", "vit", "--output-dir", output_dir, "--resume") == 1
    assert f"{weights} is truncated or corrupted" in capsys.readouterr().err
