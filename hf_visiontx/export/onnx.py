"""ViT and Swin as ONNX graphs that ONNX Runtime runs: one input, `pixel_values` (any batch size, the image size of
the config), and the outputs of the model's head by name (`logits` of a classifier, `last_hidden_state` and
`pooler_output` of a bare model, `reconstruction` of the masked-image-modeling head).

The graph comes from torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, which needs `onnx` and
`onnxscript`: `pip install hf_visiontx[onnx]`). Swin is exported under eager attention: torch 2.13's ONNX
decomposition of CPU sdpa with a float mask loses the layout of its output. Every export is checked before it is
kept: ONNX Runtime runs it on a batch of random images, and each output must agree with PyTorch's to `tolerance`.
The folder is written all or nothing, next to a copy of the config and the image processor.
"""

import dataclasses
import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoImageProcessor, PreTrainedModel

from ..hub.files import new_folder
from ..hub.locations import check_model_location
from ..modeling.families import family
from ..registration import head_class

ONNX_FILE = "model.onnx"
CHECK_BATCH = 3  # the check runs another batch size than the export's example, so that the batch is really dynamic
EXAMPLE_BATCH = 2
_EXPORTED_FAMILIES = ("vtx_vit", "vtx_swin")
_REQUIRED_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote and how closely ONNX Runtime agrees with PyTorch on it."""

    path: Path
    outputs: tuple[str, ...]
    max_abs_difference: float


class _NamedOutputs(torch.nn.Module):
    """pixel_values -> the head's output tensors in a fixed order: the plain signature an ONNX graph has."""

    def __init__(self, model: PreTrainedModel, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(pixel_values=pixel_values)
        return tuple(output[name] for name in self.names)


def export_onnx(model_dir: str | os.PathLike, out_dir: str | os.PathLike, tolerance: float = 1e-4) -> OnnxExport:
    """Export the ViT or Swin model saved in `model_dir` to `out_dir/model.onnx`, check it with ONNX Runtime, and
    copy its config and image processor next to it.

    Raises:
        ImportError: onnx, onnxscript or onnxruntime is missing (they are the `onnx` extra).
        ValueError: the model is not a ViT or Swin model, `out_dir` holds files, or ONNX Runtime disagrees with
            PyTorch by more than `tolerance`.
    """
    missing = [name for name in _REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}: `pip install hf_visiontx[onnx]`.")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"`out_dir` {out_dir} already exists and is not an empty directory; choose a new one.")
    model = _load_image_model(model_dir)
    pixel_values = _random_pixels(model, EXAMPLE_BATCH)
    with torch.no_grad():
        names = tuple(key for key, value in model(pixel_values=pixel_values).items() if torch.is_tensor(value))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        _NamedOutputs(model, names),
        (pixel_values,),
        input_names=["pixel_values"],
        output_names=list(names),
        dynamic_shapes=({0: batch},),
        dynamo=True,
        verbose=False,
    )
    with new_folder(out_dir) as staging:
        program.save(str(staging / ONNX_FILE))
        difference = _check_with_onnx_runtime(staging / ONNX_FILE, model, names, tolerance)
        model.config.save_pretrained(staging)
        AutoImageProcessor.from_pretrained(model_dir).save_pretrained(staging)
    return OnnxExport(out_dir / ONNX_FILE, names, difference)


def _load_image_model(model_dir: str | os.PathLike) -> PreTrainedModel:
    """The saved ViT or Swin model, as the head its config names, in eval mode with an exportable attention."""
    check_model_location("`model`", model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type not in _EXPORTED_FAMILIES:
        families = ", ".join(_EXPORTED_FAMILIES)
        hint = (
            " (a Transformer translator exports with `--to ctranslate2`)"
            if config.model_type == "vtx_transformer"
            else ""
        )
        raise ValueError(
            f"`model` {model_dir} is a {config.model_type!r} model; `export --to onnx` takes {families} models{hint}."
        )
    declared = family(config.model_type)
    heads = {head.name for head in declared.heads}
    architecture = next((name for name in config.architectures or () if name in heads), declared.heads[0].name)
    model = head_class(architecture).from_pretrained(model_dir).eval()
    if config.model_type == "vtx_swin":
        model.set_attn_implementation("eager")  # see the module docstring
    return model


def _random_pixels(model: PreTrainedModel, batch: int, seed: int = 0) -> torch.Tensor:
    """A batch of random images of the model's size: [batch, channels, height, width]."""
    config = model.config
    height, width = (config.image_size, config.image_size) if isinstance(config.image_size, int) else config.image_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.num_channels, height, width, generator=generator)


def _check_with_onnx_runtime(path: Path, model: PreTrainedModel, names: tuple[str, ...], tolerance: float) -> float:
    """Run the exported graph on a batch other than the example's; the largest difference from PyTorch's outputs.

    Raises:
        ValueError: an output differs by more than `tolerance`, naming it.
    """
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixel_values = _random_pixels(model, CHECK_BATCH, seed=1)
    exported = session.run(list(names), {"pixel_values": pixel_values.numpy()})
    with torch.no_grad():
        expected = model(pixel_values=pixel_values)
    largest = 0.0
    for name, values in zip(names, exported, strict=True):
        difference = (torch.from_numpy(values) - expected[name]).abs().max().item()
        if not difference <= tolerance:
            raise ValueError(
                f"the exported graph's `{name}` differs from PyTorch's by {difference:.2e} (tolerance {tolerance:.0e}); "
                "nothing was written."
            )
        largest = max(largest, difference)
    return largest


__all__ = ["ONNX_FILE", "OnnxExport", "export_onnx"]
