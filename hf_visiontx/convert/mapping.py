"""Weight-mapping helpers shared by the converters."""

import torch


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
