"""What a training run is asked to do (the options of `hf-visiontx train`) and what it returns."""

import dataclasses
import math
from pathlib import Path

from ..hub.locations import check_model_location
from .recipes import CAPTIONER, PRESETS, RUN_NAMES, run_family, run_task

CAPTIONER_ENCODERS = ("vit", "swin")  # the captioner's image encoders (`encoder`)

# The runs each sizing option applies to: what their training task reads.
SIZED_BY = {
    "image_size": (*(name for name in RUN_NAMES if run_task(name) == "image-classification"), CAPTIONER),
    "vocab_size": (
        *(name for name in RUN_NAMES if name != CAPTIONER and run_family(name).preprocessor == "tokenizer"),
        CAPTIONER,
    ),
}


@dataclasses.dataclass
class TrainOptions:
    """Options of one training run; None means "the recipe's default".

    Args:
        family: the run: "transformer" (translation), "vit" or "swin" (image classification), "lm" (the
            Transformer's decoder as a language model), or "captioner" (images to text: a ViT or Swin encoder with
            the Transformer's decoder).
        output_dir: the trained model is saved here; checkpoints go to `output_dir/checkpoints`.
        dataset: None for the embedded data (number words, digits, counting in words), else a `datasets` name, a
            local folder, or CSV / JSON (or, for "lm", plain text) files as `FILE` or `SPLIT=FILE` items.
        image_column, label_column: columns of image-classification data.
        source_column, target_column: columns of translation data.
        caption_column: the column of captioning data with each image's caption (the images are in `image_column`).
        encoder: the captioner's image encoder, "vit" or "swin" (None: "vit"); captioner runs only.
        text_column: the column of language-modelling data (CSV / JSON); a plain text file has one document per line.
        preset: a paper preset of the family's config (for example "b/16", "tiny", "base"); None for the small
            default model.
        from_model: a saved directory or Hub id of a model of the same family to fine-tune (`--from`); image models
            get a new head when the number of classes differs.
        image_size: side of the images for a vision model trained from scratch; for the captioner, the height of
            the embedded digit strings (four digits wide) or the side of other datasets' images.
        vocab_size: size of the new vocabulary of a Transformer, language model or captioner's decoder trained from
            scratch.
        epochs, batch_size, learning_rate: override the recipe.
        push_to_hub: a Hub repository id to upload the trained model to.
        resume: continue from the last checkpoint in `output_dir/checkpoints`.
        seed: seeds the data split, the model's initialisation, the data order, dropout and augmentation.
        progress: show progress bars.
    """

    family: str
    output_dir: Path
    dataset: list[str] | None = None
    image_column: str = "image"
    label_column: str = "label"
    source_column: str = "source"
    target_column: str = "target"
    caption_column: str = "caption"
    encoder: str | None = None
    text_column: str = "text"
    preset: str | None = None
    from_model: str | None = None
    image_size: int | None = None
    vocab_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    push_to_hub: str | None = None
    resume: bool = False
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.family not in RUN_NAMES:
            raise ValueError(f"`family` must be one of {RUN_NAMES}, got {self.family!r}.")
        self._check_captioner_options()
        if self.preset is not None and self.from_model is not None:
            raise ValueError(
                f"`preset` ({self.preset!r}) builds a new model and `from_model` (--from {self.from_model!r}) loads "
                "one; give one of them."
            )
        if self.preset is not None and self.preset not in PRESETS.get(self.family, ()):
            raise ValueError(
                f"`preset` {self.preset!r} is not a {self.family} preset; choose one of {PRESETS[self.family]}."
            )
        for name, families in SIZED_BY.items():
            value = getattr(self, name)
            if value is not None and self.family not in families:
                runs = f"{', '.join(families[:-1])} and {families[-1]}"
                raise ValueError(f"`{name}` ({value}) applies to {runs} models, not {self.family}.")
            if value is not None and self.from_model is not None:
                raise ValueError(
                    f"`{name}` ({value}) sizes a new model; the model loaded with `from_model` "
                    f"({self.from_model!r}) keeps its own."
                )
        for name in ("image_size", "vocab_size", "epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        if self.learning_rate is not None and not 0 < self.learning_rate < math.inf:
            raise ValueError(f"`learning_rate` must be a positive finite number, got {self.learning_rate}.")
        if self.from_model is not None:
            check_model_location("`from_model` (--from)", self.from_model)

    def _check_captioner_options(self) -> None:
        """`encoder` is the captioner's, and one of `CAPTIONER_ENCODERS` (None means "vit"); the captioner trains a
        new small model, so it takes neither `preset` nor `from_model`."""
        if self.family != CAPTIONER:
            if self.encoder is not None:
                raise ValueError(f"`encoder` ({self.encoder!r}) applies to {CAPTIONER} runs, not {self.family}.")
            return
        self.encoder = self.encoder or CAPTIONER_ENCODERS[0]
        if self.encoder not in CAPTIONER_ENCODERS:
            raise ValueError(f"`encoder` must be one of {CAPTIONER_ENCODERS}, got {self.encoder!r}.")
        for name in ("preset", "from_model"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"`{name}` ({getattr(self, name)!r}) does not apply to {CAPTIONER} runs, which train a new small "
                    "captioner; size it with `image_size` and `vocab_size`."
                )

    @property
    def checkpoints_dir(self) -> Path:
        """Where the Trainer writes its per-epoch checkpoints."""
        return self.output_dir / "checkpoints"


@dataclasses.dataclass
class TrainResult:
    """The outcome of a training run.

    Args:
        model_dir: the saved model, its tokenizer or image processor, model card and `metrics.json`.
        metrics: split ("validation", "test") -> metric name -> value, for the best checkpoint.
    """

    model_dir: Path
    metrics: dict[str, dict[str, float]]
