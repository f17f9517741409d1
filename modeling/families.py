"""The three families, each declared once.

A `Family` says what a family is: its config class, its heads (each with the Auto class that loads it, its Hub
pipeline tag, the usage snippet of its model card and the transformers classes whose checkpoints convert into it),
its preprocessor (a tokenizer or an image processor), what `hf-visiontx train` teaches it, its training recipe and
what its model card says about the paper. Everything else is derived from this table:

- the configs' `auto_map` (where a saved model's remote code finds each head): `auto_map`;
- registration with the Auto classes and `register_for_auto_class` (`hf_visiontx.registration`);
- model cards (`card_text.py`): paper, summary, pipeline tag, Auto class and usage snippet of the head;
- conversion (`hf_visiontx.convert`): which of our heads a transformers class converts into;
- training (`hf_visiontx.training`): the command's family names, the task, the small model and the recipe;
- the command line's choices and dispatch (`hf_visiontx.apps.cli`).

`TRAINING_RUNS` declares the runs of `hf-visiontx train` that train another head of a family on another task (the
Transformer's decoder as a language model, `train lm`), each with its own small model and recipe.

Adding a head is one `Head(...)` line in its family below plus the class in the family's `modeling_*.py`.

This module imports only the standard library: it travels with the model files as Hub remote code.
"""

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


@dataclasses.dataclass(frozen=True)
class Head:
    """One model class of a family.

    Args:
        name: the class name in the family's `modeling_<module>.py`.
        auto_class: the transformers Auto class that loads it (`AutoModelForImageClassification`, ...).
        pipeline_tag: the Hub task its model card declares.
        usage: which usage snippet its model card shows: "generate", "encode_text", "complete" (text generation
            from a prompt), "classify", "encode_image", "reconstruct" or "backbone".
        converts_from: names of transformers classes whose models `hf_visiontx.convert` turns into this head.
    """

    name: str
    auto_class: str
    pipeline_tag: str
    usage: str
    converts_from: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RecipeSettings:
    """How `hf-visiontx train` trains a family: the optimiser and the settings of each kind of run.

    Args:
        optimizer: `TrainingArguments` fields of the optimiser and its schedule.
        small: the small model on the embedded data (learning rate, warmup, epochs, batch size, `max_shift`).
        preset: training a paper preset from scratch (warmup, epochs, batch size; the learning rate follows
            `preset_learning_rate`).
        fine_tuning: starting from trained weights (`--from`).
        preset_learning_rate: "inverse_sqrt_width" for the Transformer paper's d_model^-0.5 * warmup^-0.5, or a
            learning rate per training example that the batch size scales linearly (DeiT, Swin).
    """

    optimizer: Mapping[str, Any]
    small: Mapping[str, Any]
    preset: Mapping[str, Any]
    fine_tuning: Mapping[str, Any]
    preset_learning_rate: str | float


@dataclasses.dataclass(frozen=True)
class Family:
    """One architecture: its config, heads, preprocessor, training and model-card facts.

    Args:
        name: the family's name on the command line and in recipes ("transformer", "vit", "swin").
        model_type: the config's `model_type`.
        module: the suffix of its files, `configuration_<module>.py` and `modeling_<module>.py`.
        config_class: the config class name.
        heads: its model classes; the first is the default (the card's head when a config names none, and the
            class a converted checkpoint becomes when its architecture is not named).
        preprocessor: "tokenizer" or "image_processor", registered with AutoTokenizer / AutoImageProcessor.
        task: what `hf-visiontx train` teaches it: "translation" or "image-classification".
        analysis: what `hf-visiontx analyze` draws for it: "attention" (ViT's distances, rollout, positions),
            "windows" (Swin's shifted windows and masks), or None.
        small_config: config fields of the small model sized for the embedded data.
        recipe: the training recipe.
        title, paper, paper_url, summary: what its model card says about the architecture.
    """

    name: str
    model_type: str
    module: str
    config_class: str
    heads: tuple[Head, ...]
    preprocessor: str
    task: str
    analysis: str | None
    small_config: Mapping[str, Any]
    recipe: RecipeSettings
    title: str
    paper: str
    paper_url: str
    summary: str

    def head(self, name: str) -> Head:
        """The head called `name`; a `ValueError` lists the family's heads."""
        for head in self.heads:
            if head.name == name:
                return head
        raise ValueError(
            f"{name!r} is not a head of the {self.name} family; its heads: {[h.name for h in self.heads]}."
        )


def _frozen(fields: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(fields)


# The Transformer paper, section 5.3: Adam with beta = (0.9, 0.98), epsilon = 1e-9, warmup then the inverse square
# root of the step. ViT (DeiT's recipe for training without extra data) and Swin (section 4.1): AdamW with weight
# decay 0.05, warmup then cosine decay.
_ADAM = _frozen(
    {
        "adam_beta1": 0.9,
        "adam_beta2": 0.98,
        "adam_epsilon": 1e-9,
        "weight_decay": 0.0,
        "lr_scheduler_type": "inverse_sqrt",
    }
)
_ADAMW = _frozen(
    {"adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "weight_decay": 0.05, "lr_scheduler_type": "cosine"}
)
_VISION_SMALL_RUN = _frozen(
    {"learning_rate": 1e-3, "warmup_steps": 0.1, "epochs": 30, "batch_size": 16, "max_shift": 2}
)
_VISION_PRESET_RUN = _frozen({"warmup_steps": 0.05, "epochs": 300, "batch_size": 64})
_FINE_TUNING = _frozen({"learning_rate": 1e-4, "warmup_steps": 0.1, "batch_size": 32})
_VISION_FINE_TUNING = _frozen({**_FINE_TUNING, "epochs": 5})

# The Hub task of the vision heads that output features rather than labels.
_IMAGE_PIPELINE = "image-feature-extraction"


def _image_heads(ours: str, theirs: str) -> tuple[Head, ...]:
    """The heads ViT and Swin both have, each converted from transformers' class of the same role: the bare encoder,
    the image classifier and the SimMIM head (`ours` "VtxViT" and `theirs` "ViT" give `VtxViTModel` from
    `ViTModel`, ...)."""
    return (
        Head(f"{ours}Model", "AutoModel", _IMAGE_PIPELINE, "encode_image", converts_from=(f"{theirs}Model",)),
        Head(
            f"{ours}ForImageClassification",
            "AutoModelForImageClassification",
            "image-classification",
            "classify",
            converts_from=(f"{theirs}ForImageClassification",),
        ),
        Head(
            f"{ours}ForMaskedImageModeling",
            "AutoModelForMaskedImageModeling",
            _IMAGE_PIPELINE,
            "reconstruct",
            converts_from=(f"{theirs}ForMaskedImageModeling",),
        ),
    )


TRANSFORMER = Family(
    name="transformer",
    model_type="vtx_transformer",
    module="transformer",
    config_class="VtxTransformerConfig",
    heads=(
        Head(
            "VtxTransformerForConditionalGeneration",
            "AutoModelForSeq2SeqLM",
            "translation",
            "generate",
            converts_from=("MarianMTModel",),
        ),
        Head("VtxTransformerModel", "AutoModel", "feature-extraction", "encode_text", converts_from=("MarianModel",)),
        Head(
            "VtxTransformerForCausalLM",
            "AutoModelForCausalLM",
            "text-generation",
            "complete",
            converts_from=("GPT2LMHeadModel",),
        ),
    ),
    preprocessor="tokenizer",
    task="translation",
    analysis=None,
    # Small model for the number-words corpus.
    small_config=_frozen(
        {
            "d_model": 128,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 512,
            "decoder_ffn_dim": 512,
            "max_position_embeddings": 128,
            "dropout": 0.1,
            "label_smoothing": 0.1,
        }
    ),
    recipe=RecipeSettings(
        optimizer=_ADAM,
        small=_frozen({"learning_rate": 2e-3, "warmup_steps": 200, "epochs": 4, "batch_size": 64}),
        preset=_frozen({"warmup_steps": 4000, "epochs": 10, "batch_size": 64}),
        fine_tuning=_frozen({**_FINE_TUNING, "epochs": 3}),
        preset_learning_rate="inverse_sqrt_width",
    ),
    title="Transformer",
    paper="Vaswani et al. 2017, Attention Is All You Need",
    paper_url="https://arxiv.org/abs/1706.03762",
    summary="an encoder-decoder of self-attention and feed-forward blocks with fixed sinusoidal positions and "
    "embeddings shared between source, target and output, decoding one token at a time",
)

# The small vision models take 32x32 images cut into a 4x4 grid of 8x8 patches (each covers 2x2 pixels of the
# original 8x8 digit): ViT attends over all 16 tokens; Swin attends within 2x2 windows, shifted by one token in
# every second block, then merges 2x2 neighbours into a 2x2 map (one window).
VIT = Family(
    name="vit",
    model_type="vtx_vit",
    module="vit",
    config_class="VtxViTConfig",
    heads=_image_heads("VtxViT", "ViT"),
    preprocessor="image_processor",
    task="image-classification",
    analysis="attention",
    small_config=_frozen(
        {
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 96,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 192,
        }
    ),
    recipe=RecipeSettings(
        optimizer=_ADAMW,
        small=_VISION_SMALL_RUN,
        preset=_VISION_PRESET_RUN,
        fine_tuning=_VISION_FINE_TUNING,
        preset_learning_rate=5e-4 / 512,
    ),
    title="Vision Transformer (ViT)",
    paper="Dosovitskiy et al. 2021, An Image is Worth 16x16 Words",
    paper_url="https://arxiv.org/abs/2010.11929",
    summary="the image is cut into square patches, each linearly embedded, a learnable [CLS] token and learnable "
    "1-D positions are added, and a pre-LN Transformer encoder reads the sequence",
)

SWIN = Family(
    name="swin",
    model_type="vtx_swin",
    module="swin",
    config_class="VtxSwinConfig",
    heads=(*_image_heads("VtxSwin", "Swin"), Head("VtxSwinBackbone", "AutoBackbone", _IMAGE_PIPELINE, "backbone")),
    preprocessor="image_processor",
    task="image-classification",
    analysis="windows",
    small_config=_frozen(
        {
            "image_size": 32,
            "patch_size": 8,
            "embed_dim": 64,
            "depths": (2, 2),
            "num_heads": (4, 8),
            "window_size": 2,
            "drop_path_rate": 0.1,
        }
    ),
    recipe=RecipeSettings(
        optimizer=_ADAMW,
        small=_VISION_SMALL_RUN,
        preset=_VISION_PRESET_RUN,
        fine_tuning=_VISION_FINE_TUNING,
        preset_learning_rate=1e-3 / 1024,
    ),
    title="Swin Transformer",
    paper="Liu et al. 2021, Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
    paper_url="https://arxiv.org/abs/2103.14030",
    summary="attention inside non-overlapping local windows that shift by half a window every other block, a "
    "learnable relative position bias, and patch merging between four stages at strides 4, 8, 16 and 32",
)

FAMILIES: tuple[Family, ...] = (TRANSFORMER, VIT, SWIN)


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """A run of `hf-visiontx train` that teaches one head of a family a task other than the family's own.

    Args:
        name: the run's name on the command line and in recipes ("lm").
        family: the name of the family whose head it trains ("transformer").
        head: the head it trains (a `Head.name` of that family).
        task: what it learns; the key of its trainer in `hf_visiontx.training.TRAINERS`.
        small_config: config fields of the small model sized for the embedded data.
        recipe: the training recipe.
    """

    name: str
    family: str
    head: str
    task: str
    small_config: Mapping[str, Any]
    recipe: RecipeSettings


# The Transformer's decoder alone as a language model (`hf-visiontx train lm`). Presets (GPT-2's sizes) follow GPT's
# recipe (Radford et al. 2018, section 4.1): Adam with weight decay 0.01, the learning rate warmed up over 2000
# updates to 2.5e-4 (for batches of 64) and annealed to 0 with a cosine. The small model learns to count in English
# words (`counting_text`): 3 pre-LN layers of width 128 (0.64M parameters); 1,500 steps of 32 documents teach it to
# continue 99% of the held-out counts with the right next number (2 layers and 375 steps of 64 reached 96%).
LANGUAGE_MODEL = TrainingRun(
    name="lm",
    family="transformer",
    head="VtxTransformerForCausalLM",
    task="text-generation",
    small_config=_frozen(
        {
            "d_model": 128,
            "decoder_layers": 3,
            "decoder_attention_heads": 4,
            "decoder_ffn_dim": 512,
            "max_position_embeddings": 128,
            "layer_norm_placement": "pre",
            "dropout": 0.0,
            "label_smoothing": 0.0,
        }
    ),
    recipe=RecipeSettings(
        optimizer=_frozen(
            {
                "adam_beta1": 0.9,
                "adam_beta2": 0.999,
                "adam_epsilon": 1e-8,
                "weight_decay": 0.01,
                "lr_scheduler_type": "cosine",
            }
        ),
        small=_frozen({"learning_rate": 2e-3, "warmup_steps": 0.05, "epochs": 6, "batch_size": 32}),
        preset=_frozen({"warmup_steps": 2000, "epochs": 10, "batch_size": 64}),
        fine_tuning=_frozen({**_FINE_TUNING, "epochs": 3}),
        preset_learning_rate=2.5e-4 / 64,
    ),
)

TRAINING_RUNS: tuple[TrainingRun, ...] = (LANGUAGE_MODEL,)


def family(key: str) -> Family:
    """The family whose `name` ("vit") or `model_type` ("vtx_vit") is `key`; a `ValueError` lists the choices."""
    for candidate in FAMILIES:
        if key in (candidate.name, candidate.model_type):
            return candidate
    raise ValueError(
        f"Unknown family {key!r}: expected one of {[f.name for f in FAMILIES]} or {[f.model_type for f in FAMILIES]}."
    )


def auto_map(model_type: str) -> dict[str, str]:
    """Where each Auto class finds the family's classes in a saved model directory (Hub remote code).

    Every head is listed, so a checkpoint saved from one head loads into any other with `trust_remote_code=True`.
    """
    declared = family(model_type)
    entries = {"AutoConfig": f"configuration_{declared.module}.{declared.config_class}"}
    for head in declared.heads:
        entries[head.auto_class] = f"modeling_{declared.module}.{head.name}"
    return entries


__all__ = [
    "FAMILIES",
    "LANGUAGE_MODEL",
    "SWIN",
    "TRAINING_RUNS",
    "TRANSFORMER",
    "VIT",
    "Family",
    "Head",
    "RecipeSettings",
    "TrainingRun",
    "auto_map",
    "family",
]
