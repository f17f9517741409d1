"""Config- and weight-mapping helpers shared by the converters."""

from typing import Any

import torch

# The label fields every classification config has, with the same meaning in transformers' and ours.
LABEL_FIELDS = "id2label label2id problem_type"


def same_fields(config: Any, names: str) -> dict[str, Any]:
    """`{name: config.<name>}` for each of the space-separated `names`: fields a transformers config shares with
    ours, under the same name and meaning."""
    return {name: getattr(config, name) for name in names.split()}


def stack_projections(source: dict, sources: list[str], target: str) -> dict[str, torch.Tensor]:
    """Separate projections (e.g. q/k/v) -> one fused projection whose output rows are theirs, stacked."""
    fused = {}
    for kind in ("weight", "bias"):
        parts = [source[f"{name}.{kind}"] for name in sources if f"{name}.{kind}" in source]
        if parts:
            fused[f"{target}.{kind}"] = torch.cat(parts, dim=0)  # [parts * d_out, ...]
    return fused


def copy_layer(source: dict, src: str, dst: str) -> dict[str, torch.Tensor]:
    """The weight and bias of layer `src` under the name `dst`."""
    return {f"{dst}.{kind}": source[f"{src}.{kind}"] for kind in ("weight", "bias")}


def square_patch_size(patch_size: int | list | tuple) -> int:
    """The side of square patches, given as an int or a (height, width) pair; other shapes cannot convert."""
    if isinstance(patch_size, int):
        return patch_size
    if len(patch_size) == 2 and patch_size[0] == patch_size[1]:
        return int(patch_size[0])
    raise ValueError(f"Unsupported patch_size {patch_size!r}: only square patches convert.")
