"""Load published checkpoints into our classes: transformers models in, hf_visiontx models out.

    from transformers import MarianMTModel
    from hf_visiontx.convert import from_transformers

    ours = from_transformers(MarianMTModel.from_pretrained("Helsinki-NLP/opus-mt-de-en"))

`convert_checkpoint(src_dir, out_dir)` does the same from a saved directory (the `hf-visiontx convert` command).
Every converter maps weights one to one (fused projections are the separate matrices stacked), so outputs agree
with the source model to float rounding.

Which transformers class becomes which of our heads is the family table's `Head.converts_from`; the mapping of a
source's config and weights lives in the module named for its `model_type` (`marian.py`, `gpt2.py`, `vit.py`,
`swin.py`), each with `convert_config(model)` and `convert_state_dict(model, config)`.
"""

import copy
import importlib
import json
import shutil
from pathlib import Path
from types import ModuleType

import transformers
from transformers import PreTrainedModel

from ..hub.files import check_links_stay_inside, new_folder
from ..hub.locations import check_model_location
from ..modeling.families import FAMILIES, Head
from ..registration import head_class

# Files written by `save_pretrained` of a model; everything else in a checkpoint directory (tokenizer, vocabularies,
# README) is copied unchanged by `convert_checkpoint`.
MODEL_FILE_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.bin",
    "*.index.json",
    "*.h5",
    "*.msgpack",
    "*.ckpt",
)


def convertible_classes() -> dict[str, Head]:
    """The name of every transformers class that converts, with the head of ours it becomes (the family table's
    `Head.converts_from`)."""
    return {source: head for declared in FAMILIES for head in declared.heads for source in head.converts_from}


def _converter(model: PreTrainedModel) -> ModuleType:
    """The module that maps this model's config and weights: `hf_visiontx.convert.<its model_type>`."""
    return importlib.import_module(f"{__name__}.{model.config.model_type}")


def from_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Convert a transformers model into the equivalent hf_visiontx model, weights included.

    Supported: `MarianMTModel` (Helsinki-NLP/opus-mt-* checkpoints) -> `VtxTransformerForConditionalGeneration`,
    with its generation config; `MarianModel` -> `VtxTransformerModel`; `GPT2LMHeadModel` (openai-community/gpt2
    and its kin) -> `VtxTransformerForCausalLM`; `ViTModel`, `ViTForImageClassification`,
    `ViTForMaskedImageModeling` (google/vit-* and facebook/deit-* checkpoints without distillation token) ->
    `VtxViTModel`, `VtxViTForImageClassification`, `VtxViTForMaskedImageModeling`; `SwinModel`,
    `SwinForImageClassification`, `SwinForMaskedImageModeling` (microsoft/swin-* checkpoints) -> the `VtxSwin*`
    classes. The family table (`Head.converts_from`) lists them.
    """
    heads = convertible_classes()
    head = heads.get(type(model).__name__)
    if head is None or getattr(transformers, type(model).__name__, None) is not type(model):
        raise TypeError(f"Cannot convert {type(model).__name__}; `from_transformers` supports {', '.join(heads)}.")
    converter = _converter(model)
    config = converter.convert_config(model)
    ours = head_class(head.name)(config)
    ours.load_state_dict(converter.convert_state_dict(model, config), strict=True)
    if ours.can_generate():
        ours.generation_config = copy.deepcopy(model.generation_config)
    return ours.to(model.dtype).train(model.training)


def _load_source_model(src_dir: Path) -> PreTrainedModel:
    """The transformers model saved in `src_dir`, as the class its config names (or its family's default)."""
    config_file = src_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{src_dir} is not a saved model: it has no config.json.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error
    architectures = config.get("architectures") or []
    sources = [getattr(transformers, name) for name in convertible_classes()]
    named = [cls for cls in sources if cls.__name__ in architectures]
    # else the family's default head: the first in table order
    of_type = [cls for cls in sources if cls.config_class.model_type == config.get("model_type")]
    if not named + of_type:
        supported = ", ".join(cls.__name__ for cls in sources)
        raise ValueError(
            f"{config_file} describes {architectures or config.get('model_type')!r}; `hf-visiontx convert` supports "
            f"{supported}."
        )
    # Safetensors weights only, each readable: a checkpoint with only pickled weights is refused unread.
    check_model_location("`src_dir`", src_dir)
    return (named + of_type)[0].from_pretrained(src_dir, use_safetensors=True)


def convert_checkpoint(src_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert the transformers checkpoint saved in `src_dir` and save ours to `out_dir`.

    Tokenizer and other non-model files are copied along, so `AutoTokenizer.from_pretrained(out_dir)` loads the
    source's tokenizer. The output is written to a temporary directory first and moved into place at the end: a
    failure leaves no half-written `out_dir`.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"`src_dir` {src_dir} is not a directory.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"`out_dir` {out_dir} already exists and is not empty; choose a new directory.")
    converted = from_transformers(_load_source_model(src_dir))
    with new_folder(out_dir) as staging:
        converted.save_pretrained(staging)
        for path in src_dir.iterdir():
            if path.is_file() and not any(path.match(pattern) for pattern in MODEL_FILE_PATTERNS):
                check_links_stay_inside(src_dir, [path], "src_dir")
                shutil.copy2(path, staging / path.name)
    return out_dir
