"""Tiny datasets written to disk for the data-loading and training tests."""

from pathlib import Path

import numpy as np
from PIL import Image

from hf_visiontx.data import number_translation


def write_image_folder(root: Path, classes: dict[str, int], per_class: int = 8, size: int = 16, seed: int = 0) -> Path:
    """An image folder (one sub-folder per class) of noisy PNGs whose brightness is set by the class value."""
    rng = np.random.default_rng(seed)
    for name, brightness in classes.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(brightness + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def write_translation_csvs(directory: Path, sizes: tuple[int, int, int] = (48, 8, 8)) -> list[str]:
    """train/validation/test CSV files of German -> English number words; returns `SPLIT=FILE` items."""
    data = number_translation("de", "en", *sizes, max_number=1000, seed=0)
    items = []
    for split in ("train", "validation", "test"):
        path = directory / f"{split}.csv"
        data[split].remove_columns("number").to_csv(str(path), index=False)
        items.append(f"{split}={path}")
    return items
