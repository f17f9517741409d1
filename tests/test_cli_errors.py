"""Every `hf-visiontx` failure is one line naming what is wrong, with a non-zero status, never a traceback: damaged
or pickled weights, decompression bombs, impossible picture sizes, missing model directories, models of another
kind, empty texts, a hand-written README.md in a training run's output folder, interruptions and the unexpected."""

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification, pipeline
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import VtxTransformerForConditionalGeneration, VtxViTForImageClassification
from hf_visiontx.apps.cli import main
from hf_visiontx.data import train_tokenizer
from hf_visiontx.training import TRAINERS
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import TINY_SIZES, tiny_vit_config

SOURCES = ["ein zwei drei", "vier fünf", "sechs sieben acht neun zehn"]


def cli(*args: object) -> int:
    return main([str(arg) for arg in args])


def error_line(capsys, command: str) -> str:
    """The one line the command printed on stderr, checked to be its error line."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hf-visiontx {command}: error: "), err
    return err


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A tiny ViT classifier with its image processor, a tiny translator with its tokenizer, and an image."""
    root = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    VtxViTForImageClassification(tiny_vit_config()).save_pretrained(root / "vit")
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root / "vit")
    tokenizer = train_tokenizer(SOURCES * 5 + ["one two three four five"] * 5, vocab_size=60, min_frequency=1)
    VtxTransformerForConditionalGeneration(tiny_transformer_config(vocab_size=len(tokenizer))).save_pretrained(
        root / "translator"
    )
    tokenizer.save_pretrained(root / "translator")
    Image.new("RGB", (32, 32), (90, 140, 200)).save(root / "image.png")
    return {"vit": root / "vit", "translator": root / "translator", "image": root / "image.png"}


def copy_of(directory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(directory, tmp_path / directory.name))


# --- weights ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_weights_are_named(saved, tmp_path, capsys, damage):
    model_dir = copy_of(saved["vit"], tmp_path)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(b"\xff" * 100 if damage == "garbage" else weights.read_bytes()[:-100])
    assert cli("classify", model_dir, saved["image"]) == 1
    assert f"`model`: {weights} is truncated or corrupted" in error_line(capsys, "classify")


class _WritesAFile:
    """Unpickling this creates `marker`: it shows whether a pickle was ever run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickled_checkpoint_is_refused_without_being_unpickled(saved, tmp_path, capsys):
    model_dir = tmp_path / "transformers-vit"
    ViTForImageClassification(ViTConfig(**TINY_SIZES, num_labels=3)).save_pretrained(model_dir)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(model_dir)
    (model_dir / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    (model_dir / "pytorch_model.bin").write_bytes(pickle.dumps(_WritesAFile(marker)))
    capsys.readouterr()
    assert cli("classify", model_dir, saved["image"]) == 1
    assert (
        "holds no safetensors weights (model.safetensors or model.safetensors.index.json), only pytorch_model.bin"
        in (error_line(capsys, "classify"))
    )
    assert not marker.exists()
    assert cli("convert", model_dir, tmp_path / "converted") == 1  # `convert` does not unpickle either
    assert "`src_dir`" in error_line(capsys, "convert") and not marker.exists()
    assert not (tmp_path / "converted").exists()


# --- images -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["classify", "caption", "analyze"])
def test_a_decompression_bomb_is_named_as_an_unreadable_image(saved, tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 = 1024 pixels is then more than twice the limit
    image = saved["image"]
    extra = ("--out", tmp_path / "plots") if command == "analyze" else ()
    assert cli(command, saved["vit"], image, *extra) == 1
    line = error_line(capsys, command)
    assert f"{image} cannot be read as an image (Image size (1024 pixels) exceeds limit" in line
    assert not (tmp_path / "plots").exists()


def test_an_impossible_swin_windows_size_is_refused_before_anything_is_allocated(tmp_path, capsys):
    out = tmp_path / "pictures"
    assert cli("swin-windows", "--out", out, "--height", "100000", "--width", "100000") == 1
    line = error_line(capsys, "swin-windows")
    assert "`height` x `width` x `window_size`² = 100000 x 100000 x 4² = 160000000000 attention-mask entries" in line
    assert not out.exists()


# --- model directories ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "arguments", "label"),
    [
        ("classify", ("{model}", "{image}"), "`model`"),
        ("caption", ("{model}", "{image}"), "`model`"),
        ("translate", ("{model}", "eins"), "`model`"),
        ("generate", ("{model}", "one,"), "`model`"),
        ("analyze", ("{model}", "{image}", "--out", "{out}"), "`model_dir`"),
        ("train", ("vit", "--from", "{model}", "--output-dir", "{out}"), "`from_model` (--from)"),
    ],
)
def test_a_missing_model_directory_is_reported_as_missing(saved, tmp_path, capsys, command, arguments, label):
    missing = tmp_path / "no" / "such-model"
    values = {"model": missing, "image": saved["image"], "out": tmp_path / "out"}
    assert cli(command, *(argument.format(**values) for argument in arguments)) == 1
    line = error_line(capsys, command)
    assert f"{label} {missing}: no such directory, and '{missing}' is not a valid Hub repo id" in line
    assert "Repo id must" not in line


def test_a_file_is_not_a_model_directory(saved, capsys):
    assert cli("classify", saved["image"], saved["image"]) == 1
    assert f"`model` {saved['image']} is a file; a saved model is a directory" in error_line(capsys, "classify")


@pytest.mark.parametrize(
    ("command", "model", "arguments", "message"),
    [
        (
            "classify",
            "translator",
            ("{image}",),
            "is a 'vtx_transformer' model (VtxTransformerForConditionalGeneration); `classify` needs an image "
            "classifier",
        ),
        ("translate", "vit", ("eins",), "is a 'vtx_vit' model (VtxViTForImageClassification); `translate` needs an"),
        ("caption", "vit", ("{image}",), "is a 'vtx_vit' model (VtxViTForImageClassification); `caption` needs an"),
    ],
)
def test_a_model_of_another_kind_is_named_in_one_line(saved, capsys, command, model, arguments, message):
    assert cli(command, saved[model], *(argument.format(image=saved["image"]) for argument in arguments)) == 1
    assert f"`model` {saved[model]} {message}" in error_line(capsys, command)


# --- texts and options ------------------------------------------------------------------------------------------


def test_empty_and_blank_texts_are_not_translated(saved, capsys):
    assert cli("translate", saved["translator"], "eins", "  ", "--max-new-tokens", "4", "--num-beams", "1") == 1
    assert error_line(capsys, "translate").endswith("`texts`[1] is '  ': there is nothing to translate.\n")
    translator = pipeline("seq2seq-translation", model=str(saved["translator"]))
    with pytest.raises(ValueError, match=r"`texts`\[0\] is '': there is nothing to translate"):
        translator("", max_new_tokens=4)


def test_a_nan_temperature_is_refused_before_loading(tmp_path, capsys):
    assert cli("generate", tmp_path / "missing", "one,", "--do-sample", "--temperature", "nan") == 1
    assert error_line(capsys, "generate").endswith("`temperature` must be positive, got nan.\n")


@pytest.fixture
def trainer_calls(monkeypatch) -> list:
    """Replaces the image-classification trainer by one that records its calls."""
    calls = []
    monkeypatch.setitem(TRAINERS, "image-classification", lambda options, callbacks: calls.append(options))
    return calls


def test_a_hand_written_readme_in_the_output_folder_is_refused_before_training(tmp_path, capsys, trainer_calls):
    readme = tmp_path / "run" / "README.md"
    readme.parent.mkdir()
    readme.write_text("# My notes on this run\n", encoding="utf-8")
    assert cli("train", "vit", "--output-dir", readme.parent, "--epochs", "1") == 1
    line = error_line(capsys, "train")
    assert f"`output_dir` (--output-dir) {readme.parent} holds a README.md written by hand ({readme})" in line
    assert trainer_calls == [] and readme.read_text(encoding="utf-8") == "# My notes on this run\n"


@pytest.mark.parametrize("rate", ["nan", "inf"])
def test_a_non_finite_learning_rate_is_refused_before_training(tmp_path, capsys, trainer_calls, rate):
    assert cli("train", "vit", "--output-dir", tmp_path / "run", "--learning-rate", rate) == 1
    assert f"`learning_rate` must be a positive finite number, got {rate}." in error_line(capsys, "train")
    assert trainer_calls == []


# --- whatever else goes wrong -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "expected"),
    [
        (KeyboardInterrupt(), 130, "hf-visiontx classify: interrupted\n"),
        (MemoryError(), 1, "hf-visiontx classify: error: MemoryError: out of memory\n"),
        (
            RuntimeError("deep inside\n  a library"),
            1,
            "hf-visiontx classify: error: RuntimeError: deep inside a library "
            "(run with HF_VISIONTX_DEBUG=1 for the traceback)\n",
        ),
    ],
)
def test_interruptions_and_unexpected_errors_end_in_one_line(saved, capsys, monkeypatch, raised, status, expected):
    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr("hf_visiontx.apps.inference.classify", fail)
    assert cli("classify", saved["vit"], saved["image"]) == status
    assert capsys.readouterr().err == expected


def test_hf_visiontx_debug_shows_the_traceback(saved, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("deep inside a library")

    monkeypatch.setattr("hf_visiontx.apps.inference.classify", fail)
    monkeypatch.setenv("HF_VISIONTX_DEBUG", "1")
    with pytest.raises(RuntimeError, match="deep inside a library"):
        cli("classify", saved["vit"], saved["image"])


def test_models_that_pass_the_checks_still_classify_and_translate(saved, capsys):
    """The checks run before loading; a good model directory is used as before."""
    assert cli("classify", saved["vit"], saved["image"], "--top-k", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(saved["image"]) and len(lines) == 3
    assert cli("translate", saved["translator"], "eins", "--max-new-tokens", "3", "--num-beams", "1") == 0
    assert capsys.readouterr().out.startswith("eins -> ")
