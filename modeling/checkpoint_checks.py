"""Whether a checkpoint holds the model that a class loads: the checks of `VtxHubMixin.from_pretrained`.

- Before loading, the `model_type` in the checkpoint's config.json must be the class's (also when a `config` is
  passed: the weights are still the folder's). Another family is another architecture, and transformers' ViT, Swin,
  Marian and GPT-2 name and lay out their tensors differently: our class would load almost none of them and
  initialise the rest at random. The error says what the folder holds and, for a model that `hf-visiontx convert`
  turns into ours, the commands that do it.
- After loading, each stack of layers (`layers.0`, `layers.1`, ...; Swin's `stages` and each stage's `blocks`)
  must hold as many layers in the weights as the configuration builds: a config.json edited to fewer
  layers would silently drop the weights' extra layers, one edited to more would add layers initialised at random.

Imported with a single-dot import, so each model's saved remote code carries this file along.
"""

import os
import shlex
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import transformers
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel

from .families import FAMILIES, Family, Head

# The arguments of `from_pretrained` that say where config.json is.
_LOCATION_ARGUMENTS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


def checkpoint_config(source: str | os.PathLike | None, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint's config.json as a dict; None when there is none to read (no `source`, a GGUF file, no or an
    unreadable config.json), in which case `from_pretrained` goes on and reports what it lacks itself."""
    if source is None or kwargs.get("gguf_file"):
        return None
    location = {name: kwargs[name] for name in _LOCATION_ARGUMENTS if name in kwargs}
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(source, **location)
    except (OSError, ValueError):
        return None
    return config_dict


def check_checkpoint_model_type(
    model_class: type[PreTrainedModel], source: str | os.PathLike, config_dict: dict[str, Any] | None
) -> None:
    """Raise a `ValueError` when the checkpoint's config.json names another `model_type` than `model_class`'s: it says
    what the checkpoint holds and how to load it (the class that does, or the `hf-visiontx convert` commands)."""
    found = (config_dict or {}).get("model_type")
    expected = model_class.config_class.model_type
    if found is None or found == expected:
        return
    architectures = config_dict.get("architectures") or []
    holds = f"a {found!r} model" + (f" ({', '.join(architectures)})" if architectures else "")
    raise ValueError(
        f"{source} holds {holds}, but {model_class.__name__} loads {expected!r} checkpoints: it would load almost "
        f"none of the weights and initialise the rest at random. {_how_to_load(model_class, source, config_dict)}"
    )


def _how_to_load(model_class: type[PreTrainedModel], source: str | os.PathLike, config_dict: dict[str, Any]) -> str:
    """What to do with a checkpoint of another `model_type` than `model_class`'s: the sentence that ends the error."""
    expected = model_class.config_class.model_type
    found, architectures = config_dict["model_type"], config_dict.get("architectures") or []
    ours = {declared.model_type: declared for declared in FAMILIES}
    if found in ours:
        head = architectures[0] if architectures else ours[found].heads[0].name
        return f"Load it with {head}, or with an Auto class, which picks the class from config.json."
    for part in ("encoder", "decoder"):
        if isinstance(config_dict.get(part), dict) and config_dict[part].get("model_type") == expected:
            composite = architectures[0] if architectures else "its class"
            return f"Its {part} is one: load the whole with {composite} and use its `.{part}`."
    converted = _converted_head(found, architectures)
    if converted is None:
        return "hf_visiontx neither loads nor converts it."
    converted_family, head = converted
    loader = model_class.__name__ if converted_family.model_type == expected else head.name
    if os.path.isdir(source):
        local, commands = str(source).rstrip("/\\"), ""
    else:  # a Hub repository: download it first
        local = str(source).rstrip("/").split("/")[-1]
        commands = f"`hf-visiontx pull {shlex.quote(str(source))} {shlex.quote(local)}`, then "
    converted = f"{local}-converted"
    return (
        f"It is a transformers checkpoint that hf_visiontx converts into its {head.name}: run {commands}"
        f"`hf-visiontx convert {shlex.quote(local)} {shlex.quote(converted)}` and load {converted} with {loader}."
    )


def _converted_head(model_type: str, architectures: list[str]) -> tuple[Family, Head] | None:
    """The family and head that `hf-visiontx convert` makes of a transformers checkpoint: the head converting its
    architecture, else the first head converting its `model_type` (as the converter chooses); None when none does."""
    by_model_type = None
    for declared in FAMILIES:
        for head in declared.heads:
            for source_class in head.converts_from:
                if source_class in architectures:
                    return declared, head
                if by_model_type is None and getattr(transformers, source_class).config_class.model_type == model_type:
                    by_model_type = declared, head
    return by_model_type


def layer_stacks(model: nn.Module, prefix: str = "") -> dict[str, int]:
    """Each stack of layers in `model` with its length: a `ModuleList` or `Sequential` whose members are all of one
    class (the Transformer's `encoder.layers`, Swin's `stages` and each stage's `blocks`, the hybrid's ResNet
    stages), named without `prefix`. A `Sequential` of different modules (a stem, the image decoder) is no stack."""
    return {
        name.removeprefix(prefix): len(module)
        for name, module in model.named_modules()
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len({type(member) for member in module}) == 1
    }


def numbered_layers(keys: Iterable[str]) -> dict[str, set[int]]:
    """The indices under each numbered container in the weight names `keys`: "stages.1.blocks.0.norm.weight" puts
    1 under "stages" and 0 under "stages.1.blocks"."""
    layers = defaultdict(set)
    for key in keys:
        parts = key.split(".")
        for position, part in enumerate(parts):
            if part.isdigit():
                layers[".".join(parts[:position])].add(int(part))
    return layers


def check_layer_counts(model: PreTrainedModel, source: str | os.PathLike | None, loading_info: dict) -> None:
    """Raise a `ValueError` naming each stack of layers (`layer_stacks`) that the loaded weights hold more or fewer
    layers of than the model has.

    The weights' names are what `from_pretrained(..., output_loading_info=True)` reports: the model's own names less
    the missing keys, plus the unexpected keys. The base model's prefix (`vit.`) is dropped from all names, so a base
    model loads from a head's checkpoint and a head from a base model's. Only layers 0, 1, ..., m - 1 in the weights
    are a count: a stack the weights do not hold at all (the encoder of a causal LM's checkpoint) or of which they
    lack a layer in the middle (a damaged file) is left to transformers, which reports the keys as missing.
    """
    prefix = f"{model.base_model_prefix}."
    model_keys = {key.removeprefix(prefix) for key in model.state_dict()}
    missing = {key.removeprefix(prefix) for key in loading_info["missing_keys"]}
    unexpected = {key.removeprefix(prefix) for key in loading_info["unexpected_keys"]}
    saved = numbered_layers((model_keys - missing) | unexpected)
    mismatches = [
        f"`{stack}` has {length} in the configuration and {len(saved[stack])} in the weights"
        for stack, length in layer_stacks(model, prefix).items()
        if saved.get(stack) == set(range(len(saved[stack]))) and len(saved[stack]) != length
    ]
    if mismatches:
        config_class = type(model.config).__name__
        raise ValueError(
            f"The configuration does not match the layers of the weights in {source}: {'; '.join(mismatches)}. Loading "
            f"would drop the extra layers or initialise the missing ones at random. Give the {config_class} (the "
            "checkpoint's config.json, or the `config` you pass) the layer counts of the weights; to load part of "
            "the weights on purpose, build the model and use `load_state_dict(..., strict=False)`."
        )


__all__ = [
    "check_checkpoint_model_type",
    "check_layer_counts",
    "checkpoint_config",
    "layer_stacks",
    "numbered_layers",
]
