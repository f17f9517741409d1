"""Image-classification data: the embedded digits, image folders and CSV files, and the checks before training."""

import json

import numpy as np
import pytest
import torch
from datasets import ClassLabel
from PIL import Image
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx.data.images import digits, image_transform, load_image_classification_data, random_shift
from support.training_data import write_image_folder


def test_digits_are_split_deterministically_and_stratified():
    data = digits(image_size=16, seed=0)
    assert {split: len(data[split]) for split in data} == {"train": 1257, "validation": 180, "test": 360}
    image = data["train"][0]["image"]
    assert image.size == (16, 16) and image.mode == "RGB"
    assert data["train"].features["label"].names == [str(d) for d in range(10)]
    test_counts = np.bincount(data["test"]["label"], minlength=10)
    assert test_counts.min() >= 34 and test_counts.max() <= 37  # 360 / 10 per class, give or take rounding
    assert data["test"]["label"] == digits(image_size=16, seed=0)["test"]["label"]
    assert data["test"]["label"] != digits(image_size=16, seed=1)["test"]["label"]


def test_an_image_folder_gives_classes_from_folder_names_and_carved_splits(tmp_path):
    write_image_folder(tmp_path / "images", {"dark": 40, "light": 210}, per_class=10)
    data = load_image_classification_data([str(tmp_path / "images")], seed=0)
    assert list(data) == ["train", "validation", "test"]
    assert {split: len(data[split]) for split in data} == {"train": 16, "validation": 2, "test": 2}
    assert data["train"].features["label"].names == ["dark", "light"]
    assert sorted(data["test"]["label"]) == [0, 1]  # stratified: one of each class


def test_csv_files_with_image_paths_and_string_labels(tmp_path):
    write_image_folder(tmp_path, {"cat": 30, "dog": 220}, per_class=4)
    rows = [f"{tmp_path / name / f'{i}.png'},{name}" for name in ("dog", "cat") for i in range(4)]
    (tmp_path / "train.csv").write_text("file,kind\n" + "\n".join(rows[:6]) + "\n")
    (tmp_path / "test.csv").write_text("file,kind\n" + "\n".join(rows[6:] + rows[:2]) + "\n")
    data = load_image_classification_data(
        [f"train={tmp_path / 'train.csv'}", f"test={tmp_path / 'test.csv'}"], image_column="file", label_column="kind"
    )
    assert isinstance(data["train"].features["kind"], ClassLabel)
    assert data["train"].features["kind"].names == ["cat", "dog"]  # sorted over every split, same ids everywhere
    assert len(data["test"]) == 4 and len(data["train"]) + len(data["validation"]) == 6
    assert data["test"][0]["file"].size == (16, 16)


def test_a_missing_column_is_named_with_the_available_ones(tmp_path):
    write_image_folder(tmp_path / "images", {"a": 0, "b": 255}, per_class=4)
    with pytest.raises(
        ValueError,
        match=r"`label_column` \(--label-column\) 'class' is not a column of the 'train' "
        r"split; its columns are: image, label",
    ):
        load_image_classification_data([str(tmp_path / "images")], label_column="class")


def test_an_undecodable_image_is_named(tmp_path):
    write_image_folder(tmp_path / "images", {"a": 0, "b": 255}, per_class=10)
    broken = tmp_path / "images" / "b" / "3.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a truncated PNG
    with pytest.raises(ValueError, match=r"the image .*b/3\.png cannot be decoded"):
        load_image_classification_data([str(tmp_path / "images")])


def test_labels_outside_the_classes_are_named_with_split_and_row(tmp_path):
    write_image_folder(tmp_path, {"x": 100}, per_class=3)
    paths = [str(tmp_path / "x" / f"{i}.png") for i in range(3)]
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"image": p, "label": i % 2}) + "\n" for i, p in enumerate(paths))
    )
    (tmp_path / "test.jsonl").write_text(json.dumps({"image": paths[0], "label": -1}) + "\n")
    with pytest.raises(ValueError, match=r"row 0 of the 'test' split has label -1, outside \[0, 2\) for 2 classes"):
        load_image_classification_data([f"train={tmp_path / 'train.jsonl'}", f"test={tmp_path / 'test.jsonl'}"])


def test_mixed_label_types_and_empty_splits_are_refused(tmp_path):
    write_image_folder(tmp_path, {"x": 100}, per_class=2)
    path = str(tmp_path / "x" / "0.png")
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"image": path, "label": "cat"}) + "\n" + json.dumps({"image": path, "label": 3}) + "\n"
    )
    with pytest.raises(ValueError, match=r"class ids \(int\) or class names \(str\)"):
        load_image_classification_data([str(tmp_path / "mixed.jsonl")])
    (tmp_path / "empty.csv").write_text("image,label\n")
    with pytest.raises(ValueError, match=r"`dataset`: the files \{'train': '.*empty\.csv'\} could not be loaded"):
        load_image_classification_data([str(tmp_path / "empty.csv")])


def test_random_shift_moves_whole_images_within_the_limit():
    torch.manual_seed(0)
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    assert torch.equal(random_shift(images, 0), images)
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape
    padded = torch.nn.functional.pad(images, (2,) * 4, mode="replicate")
    for index in range(2):  # each result is one 6x6 window of the padded image, the same for every channel
        windows = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.equal(padded[index, :, top : top + 6, left : left + 6], shifted[index])
        ]
        assert len(windows) == 1


def test_image_transform_makes_model_inputs():
    processor = ViTImageProcessorPil(size={"height": 8, "width": 8}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    transform = image_transform(processor, "img", "y", max_shift=1)
    batch = {"img": [Image.new("L", (5, 7), 255), Image.new("RGBA", (9, 9))], "y": [1, 0]}
    out = transform(batch)
    assert out["pixel_values"].shape == (2, 3, 8, 8) and out["labels"].tolist() == [1, 0]
    assert out["pixel_values"][0].min() == pytest.approx(1.0)  # white, normalised to +1, shifted or not
