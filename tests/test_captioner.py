"""The image captioner: transformers' `VisionEncoderDecoderModel` with our ViT or Swin encoder and our Transformer
decoder, trained with `Seq2SeqTrainer`, saved with its code, reloaded through the Auto classes, used through the
`image-captioning` pipeline and the `train captioner` / `caption` commands."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForImageTextToText,
    AutoTokenizer,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    VisionEncoderDecoderModel,
    pipeline,
)
from transformers.pipelines import PIPELINE_REGISTRY

from hf_visiontx import ImageCaptioningPipeline, VtxSwinModel, VtxTransformerForCausalLM, VtxViTModel
from hf_visiontx.apps.cli import main
from hf_visiontx.apps.demo import show_captions
from hf_visiontx.data import digit_strings, load_caption_data, train_tokenizer
from hf_visiontx.hub import save_composite, write_model_card
from hf_visiontx.hub.cards import refreshed_card
from hf_visiontx.training import TrainOptions
from hf_visiontx.training.captioner import (
    build_captioner,
    caption_transform,
    captioner_image_processor,
    collate_captions,
)
from support.interruption import run_killed_after_the_first_checkpoint
from support.remote_code import REFUSE_HF_VISIONTX

IMAGE_SIZE = (8, 32)


def cli(*args: object) -> int:
    return main([str(arg) for arg in args])


@pytest.fixture(scope="module")
def captions():
    """A few digit strings (8-pixel digits, 1-4 of them) with their captions."""
    return digit_strings(digit_size=8, train_size=24, validation_size=6, test_size=6, seed=1)


@pytest.fixture(scope="module")
def tokenizer(captions):
    return train_tokenizer(list(captions["train"]["caption"]), vocab_size=60, min_frequency=1)


def tiny_options(tmp_path: Path, **fields) -> TrainOptions:
    return TrainOptions("captioner", output_dir=tmp_path, **fields)


@pytest.mark.parametrize(("encoder", "encoder_class"), [("vit", VtxViTModel), ("swin", VtxSwinModel)])
def test_captioner_trains_with_seq2seq_trainer_generates_and_reloads(
    tmp_path, captions, tokenizer, encoder, encoder_class
):
    torch.manual_seed(0)
    model = build_captioner(encoder, IMAGE_SIZE, tokenizer, max_new_tokens=8)
    assert type(model.encoder) is encoder_class and type(model.decoder) is VtxTransformerForCausalLM
    assert model.decoder.config.add_cross_attention and model.decoder.config.is_decoder
    options = tiny_options(tmp_path)
    processor = captioner_image_processor(IMAGE_SIZE)
    train_split = captions["train"].with_transform(caption_transform(processor, tokenizer, options))
    evaluation = captions["validation"].with_transform(caption_transform(processor, tokenizer, options))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "checkpoints"),
        max_steps=3,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=4,
        learning_rate=1e-2,
        predict_with_generate=True,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_split,
        processing_class=tokenizer,
        data_collator=collate_captions,
        compute_metrics=lambda prediction: {"generated": float(prediction.predictions.shape[0])},
    )
    trainer.train()
    for part in ("encoder", "decoder"):
        changed = [
            name for name, p in model.named_parameters() if name.startswith(part) and not torch.equal(p, before[name])
        ]
        assert changed, f"the {part} did not train"
    # a generating evaluation: Seq2SeqTrainer hands `labels` to generate(), which hands them on to our encoder
    metrics = trainer.evaluate(evaluation)
    assert metrics["eval_generated"] == 6 and torch.isfinite(torch.tensor(metrics["eval_loss"]))

    model.eval()
    pixel_values = collate_captions([evaluation[i] for i in range(3)])["pixel_values"]
    with torch.no_grad():
        greedy = model.generate(pixel_values, do_sample=False)
        uncached = model.generate(pixel_values, do_sample=False, use_cache=False)
        beams = model.generate(pixel_values, num_beams=3)
    assert torch.equal(greedy, uncached) and beams.shape[0] == 3
    assert greedy.shape[1] <= 1 + 8 and (greedy[:, 0] == tokenizer.bos_token_id).all()

    save_composite(model, tmp_path / "saved")
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "saved").eval()
    assert isinstance(reloaded, VisionEncoderDecoderModel) and type(reloaded.encoder) is encoder_class
    assert type(reloaded.decoder) is VtxTransformerForCausalLM
    with torch.no_grad():
        assert torch.equal(reloaded.generate(pixel_values, do_sample=False), greedy)


@pytest.fixture(scope="module")
def saved_captioner(tmp_path_factory, tokenizer):
    directory = tmp_path_factory.mktemp("captioner")
    torch.manual_seed(0)
    model = build_captioner("vit", IMAGE_SIZE, tokenizer, max_new_tokens=6).eval()
    save_composite(model, directory)
    tokenizer.save_pretrained(directory)
    captioner_image_processor(IMAGE_SIZE).save_pretrained(directory)
    return directory


def reference_captions(directory, images, **generate_kwargs) -> list[str]:
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    pixel_values = captioner_image_processor(IMAGE_SIZE)(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        generated = model.generate(pixel_values, **generate_kwargs)
    return [
        text.strip()
        for text in AutoTokenizer.from_pretrained(directory).batch_decode(generated, skip_special_tokens=True)
    ]


def test_image_captioning_pipeline_captions_one_image_or_a_list_like_generate(saved_captioner, captions, tmp_path):
    assert PIPELINE_REGISTRY.supported_tasks["image-captioning"]["impl"] is ImageCaptioningPipeline
    images = list(captions["test"]["image"])[:3]
    captioner = pipeline("image-captioning", model=str(saved_captioner))
    results = captioner(images, num_beams=2, max_new_tokens=5, batch_size=2)
    assert [set(result) for result in results] == [{"generated_text"}] * 3
    assert [r["generated_text"] for r in results] == reference_captions(
        saved_captioner, images, num_beams=2, max_new_tokens=5
    )
    path = tmp_path / "digits.png"
    images[0].save(path)
    assert captioner(str(path), num_beams=2, max_new_tokens=5) == [results[0]]  # a path, a single image
    several = captioner(images[:2], num_beams=3, num_return_sequences=3, max_new_tokens=5)
    assert [len(candidates) for candidates in several] == [3, 3]


def test_the_captioner_card_describes_the_composite_and_follows_the_repository(saved_captioner):
    write_model_card(saved_captioner, datasets=["digit strings"], metrics={"exact_match": 0.5, "sacrebleu": 12.5})
    card = (saved_captioner / "README.md").read_text()
    assert card.startswith("---\n") and 'pipeline_tag: "image-to-text"' in card
    assert "- encoder `VtxViTModel`: 4x4 patches at 8x32 px: 16 tokens + [CLS]; 3 layers, width 64" in card
    assert "- decoder `VtxTransformerForCausalLM`: decoder only: 2 layers, with cross-attention to an encoder" in card
    assert "| exact_match | 0.5 |" in card and "- digit strings" in card
    assert f'pipeline("image-captioning", model="{saved_captioner}")' in card
    refreshed = refreshed_card(saved_captioner, repo_id="me/captioner")  # what `push` uploads
    assert 'repo = "me/captioner"' in refreshed and "# captioner" in refreshed and "| sacrebleu | 12.5 |" in refreshed


def test_image_captioning_pipeline_rejects_what_is_not_an_image(saved_captioner):
    captioner = pipeline("image-captioning", model=str(saved_captioner))
    with pytest.raises(TypeError, match=r"`images` must be an image .* got a int \(3\)"):
        captioner([Image.new("RGB", (32, 8)), 3])
    with pytest.raises(TypeError, match="got an empty sequence"):
        captioner([])
    text_only = AutoModelForImageTextToText.from_pretrained(saved_captioner).decoder
    with pytest.raises(
        ValueError, match=r"needs an image encoder-decoder model .* VtxTransformerForCausalLM is not one"
    ):
        pipeline(
            "image-captioning",
            model=text_only,
            tokenizer=AutoTokenizer.from_pretrained(saved_captioner),
            image_processor=captioner_image_processor(IMAGE_SIZE),
        )


def test_caption_command_prints_each_image_with_its_caption(saved_captioner, captions, tmp_path, capsys):
    paths = []
    for index, image in enumerate(list(captions["test"]["image"])[:2]):
        paths.append(tmp_path / f"{index}.png")
        image.save(paths[-1])
    assert cli("caption", saved_captioner, *paths, "--num-beams", "2", "--max-new-tokens", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    expected = reference_captions(
        saved_captioner, [Image.open(path).convert("RGB") for path in paths], num_beams=2, max_new_tokens=5
    )
    assert lines == [f"{path}: {text}" for path, text in zip(paths, expected, strict=True)]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    capsys.readouterr()
    assert cli("caption", saved_captioner, not_an_image) == 1
    assert capsys.readouterr().err.strip() == (
        f"hf-visiontx caption: error: `images`: {not_an_image} cannot be read as an image (cannot identify image file "
        f"{str(not_an_image)!r})."
    )
    assert cli("caption", saved_captioner, paths[0], "--num-beams", "0") == 1
    assert "`num_beams` must be positive, got 0." in capsys.readouterr().err


# --- `hf-visiontx train captioner` end to end on tiny data (slow: training runs) --------------------------------

RUN = ("--epochs", "2", "--batch-size", "8", "--image-size", "16", "--no-progress")


def write_caption_csvs(directory: Path, sizes: tuple[int, int, int] = (32, 6, 6)) -> list[str]:
    """train / validation / test CSV files of digit-string PNGs (column "file") and their captions ("text")."""
    train, validation, test = sizes
    data = digit_strings(digit_size=8, train_size=train, validation_size=validation, test_size=test, seed=2)
    items = []
    for split in ("train", "validation", "test"):
        rows = []
        for index, example in enumerate(data[split]):
            path = directory / f"{split}-{index}.png"
            example["image"].save(path)
            rows.append(f"{path},{example['caption']}")
        csv = directory / f"{split}.csv"
        csv.write_text("file,text\n" + "\n".join(rows) + "\n")
        items.append(f"{split}={csv}")
    return items


@pytest.fixture(scope="module")
def caption_csvs(tmp_path_factory) -> list[str]:
    return write_caption_csvs(tmp_path_factory.mktemp("caption-data"))


@pytest.fixture(scope="module")
def trained_captioner(tmp_path_factory, caption_csvs) -> Path:
    output_dir = tmp_path_factory.mktemp("runs") / "captioner"
    columns = ("--image-column", "file", "--caption-column", "text")
    assert (
        cli(
            "train",
            "captioner",
            "--encoder",
            "swin",
            "--dataset",
            *caption_csvs,
            *columns,
            "--output-dir",
            output_dir,
            *RUN,
        )
        == 0
    )
    return output_dir


@pytest.mark.slow
def test_train_captioner_saves_a_composite_with_its_code_metrics_and_card(trained_captioner):
    names = {path.name for path in trained_captioner.iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"}
    expected |= {"preprocessor_config.json", "README.md", "metrics.json", "composite_code.py"}
    assert expected | {"modeling_swin.py", "modeling_transformer.py"} <= names
    metrics = json.loads((trained_captioner / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    assert set(metrics["test"]) == {"loss", "sacrebleu", "chrf", "exact_match"}
    model = AutoModelForImageTextToText.from_pretrained(trained_captioner)
    assert type(model.encoder) is VtxSwinModel and model.config.encoder.image_height_width == (16, 16)
    card = (trained_captioner / "README.md").read_text()
    assert 'pipeline_tag: "image-to-text"' in card and "Swin Transformer" in card
    assert "decoder `VtxTransformerForCausalLM`: decoder only: 2 layers, with cross-attention" in card
    assert f"| exact_match | {metrics['test']['exact_match']:.4g} |" in card
    saved_generation = json.loads((trained_captioner / "generation_config.json").read_text())
    assert saved_generation["max_new_tokens"] > 0 and "max_length" not in saved_generation


# In a process where hf_visiontx cannot be imported: without `trust_remote_code` transformers fails on the nested
# model types; with it, the registration module that `save_composite` wrote brings them in.
CAPTIONER_REMOTE_SCRIPT = REFUSE_HF_VISIONTX + textwrap.dedent(
    """
    import torch, transformers
    from safetensors.torch import load_file, save_file

    model_dir, inputs_file, outputs_file = sys.argv[1:4]
    try:
        transformers.AutoModelForImageTextToText.from_pretrained(model_dir)
    except ValueError as error:
        assert "Unrecognized model type for subconfig" in str(error), error
    else:
        raise AssertionError("the nested hf_visiontx models loaded without their code")
    model = transformers.AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True).eval()
    assert not any(name.split(".")[0] == "hf_visiontx" for name in sys.modules)
    inputs = load_file(inputs_file)
    with torch.no_grad():
        logits = model(**inputs).logits
        generated = model.generate(inputs["pixel_values"], num_beams=2)
    save_file({"logits": logits.contiguous(), "generated": generated.contiguous()}, outputs_file)
    print(type(model).__name__, type(model.encoder).__name__, type(model.decoder).__name__)
    """
)


@pytest.mark.slow
def test_the_trained_captioner_loads_as_remote_code_where_hf_visiontx_is_absent(trained_captioner, tmp_path):
    pixel_values = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    inputs = {"pixel_values": pixel_values, "decoder_input_ids": torch.tensor([[1, 5, 6], [1, 7, 8]])}
    save_file(inputs, tmp_path / "inputs.safetensors")
    arguments = [trained_captioner, tmp_path / "inputs.safetensors", tmp_path / "out.safetensors"]
    command = [sys.executable, "-c", CAPTIONER_REMOTE_SCRIPT, *map(str, arguments)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["PortableVisionEncoderDecoderModel", "VtxSwinModel", "VtxTransformerForCausalLM"]
    model = AutoModelForImageTextToText.from_pretrained(trained_captioner).eval()
    with torch.no_grad():
        expected = {"logits": model(**inputs).logits, "generated": model.generate(pixel_values, num_beams=2)}
    outputs = load_file(tmp_path / "out.safetensors")
    torch.testing.assert_close(outputs["logits"], expected["logits"])
    assert torch.equal(outputs["generated"], expected["generated"])


@pytest.mark.slow
def test_the_demo_reloads_the_captioner_and_captions_test_digit_strings(trained_captioner, capsys):
    show_captions(trained_captioner, count=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "    reloaded VisionEncoderDecoderModel (VtxSwinModel + VtxTransformerForCausalLM) from "
    )
    assert len(lines) == 1 + 3 + 1 and all(
        re.match(r"    +\d+: '.*'  (ok|wrong \(it is ')", line) for line in lines[1:4]
    )
    assert lines[-1] == "    pipeline('image-captioning') gives the same captions"


@pytest.mark.slow
def test_a_killed_captioner_run_resumed_from_its_checkpoint_ends_with_the_same_weights(
    trained_captioner, caption_csvs, tmp_path, monkeypatch
):
    output_dir = tmp_path / "captioner"
    columns = ("--image-column", "file", "--caption-column", "text")
    arguments = (
        "train",
        "captioner",
        "--encoder",
        "swin",
        "--dataset",
        *caption_csvs,
        *columns,
        "--output-dir",
        output_dir,
        *RUN,
    )
    run_killed_after_the_first_checkpoint(monkeypatch, lambda: cli(*arguments))
    assert [path.name for path in (output_dir / "checkpoints").iterdir()] == ["checkpoint-4"]
    assert cli(*arguments, "--resume") == 0
    uninterrupted = load_file(trained_captioner / "model.safetensors")
    resumed = load_file(output_dir / "model.safetensors")
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


@pytest.mark.slow
def test_train_captioner_pushes_the_saved_directory(caption_csvs, tmp_path, monkeypatch):
    pushes = []
    monkeypatch.setattr(
        "hf_visiontx.training.loop.push", lambda directory, repo_id: pushes.append((directory, repo_id))
    )
    output_dir = tmp_path / "captioner"
    columns = ("--image-column", "file", "--caption-column", "text")
    run = ("--epochs", "1", "--batch-size", "16", "--image-size", "16", "--no-progress")
    assert (
        cli(
            "train",
            "captioner",
            "--dataset",
            *caption_csvs,
            *columns,
            "--output-dir",
            output_dir,
            *run,
            "--push-to-hub",
            "me/captioner",
        )
        == 0
    )
    assert pushes == [(output_dir, "me/captioner")]
    assert type(AutoModelForImageTextToText.from_pretrained(output_dir).encoder) is VtxViTModel  # the default encoder


def test_load_caption_data_checks_columns_captions_and_images(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    (tmp_path / "missing.csv").write_text(f"file,words\n{good},one\n")
    (tmp_path / "empty.csv").write_text(f"file,text\n{good},one\n{good},\n")
    (tmp_path / "broken.csv").write_text(f"file,text\n{good},one\n{broken},two\n")
    with pytest.raises(
        ValueError, match=r"`caption_column` \(--caption-column\) 'text' is not a column of the 'train'"
    ):
        load_caption_data([str(tmp_path / "missing.csv")], "file", "text")
    with pytest.raises(
        ValueError, match=r"`caption_column` \(--caption-column\) 'text': row 1 of the 'train' split holds ''"
    ):
        load_caption_data([str(tmp_path / "empty.csv")], "file", "text")
    with pytest.raises(
        ValueError, match=rf"`image_column` \(--image-column\) 'file': the image {broken} cannot be decoded"
    ):
        load_caption_data([str(tmp_path / "broken.csv")], "file", "text")


def test_load_caption_data_reads_an_image_folder_with_its_captions(tmp_path, captions):
    folder = tmp_path / "folder"
    (folder / "train").mkdir(parents=True)
    rows = []
    for index, example in enumerate(captions["train"]):
        example["image"].save(folder / "train" / f"{index}.png")
        rows.append(f"{index}.png,{example['caption']}")
    (folder / "train" / "metadata.csv").write_text("file_name,caption\n" + "\n".join(rows) + "\n")
    data = load_caption_data([str(folder)])
    assert {name: len(split) for name, split in data.items()} == {"train": 19, "validation": 2, "test": 3}
    seen = sorted(caption for split in data.values() for caption in split["caption"])
    assert seen == sorted(captions["train"]["caption"]) and data["train"][0]["image"].size == (32, 8)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("captioner", "--encoder", "resnet"), "argument --encoder: invalid choice: 'resnet'"),
        (("vit", "--encoder", "swin"), "error: `encoder` ('swin') applies to captioner runs, not vit."),
        (("captioner", "--preset", "tiny"), "error: `preset` ('tiny') does not apply to captioner runs"),
        (("captioner", "--from", "somewhere"), "error: `from_model` ('somewhere') does not apply to captioner runs"),
        (("captioner", "--resume"), "error: `resume` (--resume): there is no complete checkpoint to resume from"),
    ],
)
def test_bad_captioner_requests_fail_with_one_line(arguments, message, tmp_path, capsys):
    family, *rest = arguments
    try:
        status = cli("train", family, "--output-dir", tmp_path / "out", *rest)
    except SystemExit as exit_:  # argparse's own usage error
        status = exit_.code
    assert status in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
