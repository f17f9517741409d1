"""transformers' composite models that hold an hf_visiontx model: save them so that they load anywhere.

UperNet, Mask2Former, DETR and Conditional DETR take `VtxSwinBackbone` as their backbone, and
`VisionEncoderDecoderModel` takes `VtxViTModel` or `VtxSwinModel` as its encoder. Their `save_pretrained` writes the
nested config with our `model_type` (`vtx_swin`, `vtx_vit`), which transformers resolves only through its registry:
in a process that has not run `import hf_visiontx`, loading fails (`KeyError: 'vtx_swin'`, "Unrecognized model type
for subconfig"), with or without `trust_remote_code=True`. transformers has no remote-code route for a nested model
type, only for the top-level config.

`save_composite` adds that route: next to the weights it writes our model files and a small module that registers
our model types with the Auto classes when transformers loads it as remote code, then names that module's
subclasses of the composite's config and model classes in the top-level `auto_map`. The folder then loads with
`AutoModelFor...from_pretrained(folder, trust_remote_code=True)` where hf_visiontx is not installed. Loading through
the composite class itself (`UperNetForSemanticSegmentation.from_pretrained`) never reads `auto_map`: there, run
`import hf_visiontx` first.
"""

import json
import os
from pathlib import Path

import transformers
from transformers import PreTrainedModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.models.auto import modeling_auto

from ..modeling.families import family
from ..modeling.hub_mixin import staged_directory
from ..registration import remote_code_classes

COMPOSITE_MODULE = "composite_code"
"""The module `save_composite` writes: registrations of our model types, and the composite's remote-code classes."""

PORTABLE_PREFIX = "Portable"


def nested_models(model: PreTrainedModel) -> list[PreTrainedModel]:
    """The hf_visiontx models held by `model` (not counting `model` itself), outermost first."""
    ours = tuple(cls for cls in remote_code_classes() if issubclass(cls, PreTrainedModel))
    return [module for module in model.modules() if module is not model and isinstance(module, ours)]


def save_composite(model: PreTrainedModel, directory: str | os.PathLike, **save_kwargs) -> Path:
    """`model.save_pretrained(directory, **save_kwargs)`, plus what lets the folder load as remote code where
    hf_visiontx is not installed (see the module docstring). Like our models' saves, it is all or nothing and leaves
    no weight files of an earlier save (`staged_directory`).

    Args:
        model: a transformers composite model holding at least one hf_visiontx model (a backbone or an encoder).
        directory: where to save.
    Returns:
        The directory.
    """
    if type(model) in remote_code_classes():
        raise ValueError(
            f"{type(model).__name__} is an hf_visiontx model: its `save_pretrained` already writes its code."
        )
    nested = nested_models(model)
    if not nested:
        raise ValueError(
            f"{type(model).__name__} holds no hf_visiontx model: save it with `save_pretrained`, which is enough."
        )
    architecture = type(model)
    if getattr(transformers, architecture.__name__, None) is not architecture:
        raise ValueError(
            f"`save_composite` takes transformers' own composite classes; {architecture.__module__}."
            f"{architecture.__name__} is not one."
        )
    with staged_directory(directory) as staging:  # all or nothing, and no weight files of an earlier save
        model.save_pretrained(staging, **save_kwargs)
        for module in nested:  # each model file with the sibling modules it imports
            custom_object_save(module, staging)
        nested_configs = list(dict.fromkeys(type(module.config) for module in nested))
        (staging / f"{COMPOSITE_MODULE}.py").write_text(
            _composite_module(architecture, type(model.config), nested_configs), encoding="utf-8"
        )
        _add_auto_map(staging / "config.json", architecture, type(model.config), model.config.model_type)
    return Path(directory)


def _family_registrations(config_class: type, auto_classes: set[str]) -> tuple[list[str], list[str]]:
    """Import lines and `register` calls for one of our configs and every model class of its family; adds the Auto
    classes the calls use to `auto_classes`."""
    declared = family(config_class.model_type)
    imports = {f"from .configuration_{declared.module} import {config_class.__name__}"}
    calls = [f"AutoConfig.register({config_class.__name__}.model_type, {config_class.__name__}, exist_ok=True)"]
    for head in declared.heads:
        auto_classes.add(head.auto_class)
        imports.add(f"from .modeling_{declared.module} import {head.name}")
        calls.append(f"{head.auto_class}.register({config_class.__name__}, {head.name}, exist_ok=True)")
    return sorted(imports), calls


def _composite_module(architecture: type, config_class: type, nested_configs: list[type]) -> str:
    """The source of `composite_code.py` for a composite of class `architecture` (config `config_class`) holding
    models of our `nested_configs`."""
    auto_classes: set[str] = {"AutoConfig"}
    imports, calls = [], []
    for nested_config in nested_configs:
        family_imports, family_calls = _family_registrations(nested_config, auto_classes)
        imports += family_imports
        calls += family_calls
    lines = [
        '"""Written by hf_visiontx\'s `save_composite`. Loaded as remote code, it registers the hf_visiontx model '
        "types this\ncomposite model holds (as `import hf_visiontx` would), so that transformers can resolve them; "
        'the classes below are\ntransformers\' own, named in config.json\'s `auto_map` to bring this module in."""',
        "",
        "import transformers",
        f"from transformers import {', '.join(sorted(auto_classes))}",
        "",
        *imports,
        "",
        *calls,
        "",
        "",
        f"class {PORTABLE_PREFIX}{config_class.__name__}(transformers.{config_class.__name__}):",
        f'    """transformers\' `{config_class.__name__}`, reached through remote code so that the registrations '
        'above run first."""',
        "",
        "",
        f"class {PORTABLE_PREFIX}{architecture.__name__}(transformers.{architecture.__name__}):",
        f'    """transformers\' `{architecture.__name__}` with the config class above."""',
        "",
        f"    config_class = {PORTABLE_PREFIX}{config_class.__name__}",
        "",
    ]
    return "\n".join(lines)


def _auto_classes_of(architecture: type, model_type: str) -> list[str]:
    """The names of transformers' Auto classes that map `model_type` to `architecture`."""
    names = []
    for name in dir(modeling_auto):
        auto_class = getattr(modeling_auto, name)
        mapping = getattr(auto_class, "_model_mapping", None)
        if (
            name.startswith("AutoModel")
            and mapping is not None
            and mapping._model_mapping.get(model_type) == architecture.__name__
        ):
            names.append(name)
    return names


def _add_auto_map(config_path: Path, architecture: type, config_class: type, model_type: str) -> None:
    """Name the composite's remote-code classes in `auto_map` of the saved config.json."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    auto_map = config.get("auto_map") or {}
    auto_map["AutoConfig"] = f"{COMPOSITE_MODULE}.{PORTABLE_PREFIX}{config_class.__name__}"
    for auto_class in _auto_classes_of(architecture, model_type):
        auto_map[auto_class] = f"{COMPOSITE_MODULE}.{PORTABLE_PREFIX}{architecture.__name__}"
    config["auto_map"] = auto_map
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["nested_models", "save_composite"]
