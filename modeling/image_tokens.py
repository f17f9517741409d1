"""From an image to a sequence of tokens, as ViT and Swin share it: the patch map flattened into tokens, SimMIM's
mask token put in place of masked patches, and learned position embeddings resized to another patch grid.
Imported with a single-dot import, so the saved remote code of each vision model carries this file along."""

import torch
import torch.nn.functional as F

from .input_checks import check_mask_positions


def patch_tokens(patch_map: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The tokens of a patch embedding map, row by row, and the patch grid.

    Args:
        patch_map: [batch, D, rows, cols].
    Returns:
        [batch, rows * cols, D] and (rows, cols).
    """
    grid = (patch_map.shape[2], patch_map.shape[3])
    return patch_map.flatten(2).transpose(1, 2), grid  # [B, D, rows*cols] -> [B, N, D]


def to_feature_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Tokens [batch, rows * cols, D] on a (rows, cols) grid -> an NCHW feature map [batch, D, rows, cols]."""
    batch, _, channels = tokens.shape
    return tokens.view(batch, *grid, channels).permute(0, 3, 1, 2).contiguous()  # [B, r, c, D] -> [B, D, r, c]


def mask_patches(
    tokens: torch.Tensor, bool_masked_pos: torch.Tensor, mask_token: torch.Tensor | None, masking_head: str
) -> torch.Tensor:
    """Replace the tokens of masked patches by the learned mask token (SimMIM, Xie et al. 2022).

    Args:
        tokens: [batch, num_patches, D] patch tokens.
        bool_masked_pos: [batch, num_patches], True where a patch is masked.
        mask_token: [1, 1, D], or None for a model without one (an error then names `masking_head`, the class that
            has one).
    Returns:
        [batch, num_patches, D].
    """
    check_mask_positions(bool_masked_pos, mask_token is not None, tokens.shape[:2], masking_head)
    mask = bool_masked_pos.unsqueeze(-1).to(tokens.dtype)  # [B, N, 1]
    return tokens * (1.0 - mask) + mask_token * mask


def interpolate_position_embeddings(patch_positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a grid of learned position embeddings to another grid (ViT's section 3.2, "fine-tuning and
    higher resolution"): bicubic interpolation to an explicit size, computed in float32.

    Args:
        patch_positions: [1, rows, cols, D] position embeddings of the patch tokens.
        grid: the (rows, cols) to resize to.
    Returns:
        [1, grid rows * grid cols, D].
    """
    dtype = patch_positions.dtype
    resized = F.interpolate(
        patch_positions.permute(0, 3, 1, 2).float(),  # [1, rows, cols, D] -> [1, D, rows, cols]
        size=grid,
        mode="bicubic",
        align_corners=False,
    )
    return resized.to(dtype).flatten(2).transpose(1, 2)  # [1, D, r, c] -> [1, r*c, D]


def must_resize_positions(grid: tuple[int, int], trained_grid: tuple[int, int]) -> bool:
    """Whether position embeddings learned on `trained_grid` must be interpolated for a patch `grid`.

    Always True under `torch.compile` / `torch.export`, where the grid may be symbolic: comparing it would pin the
    graph to one image size, and interpolating to the same grid is exact (bicubic weights at whole-pixel offsets
    are 1 and 0).
    """
    return torch.compiler.is_compiling() or tuple(grid) != tuple(trained_grid)


def grid_positions(patch_positions: torch.Tensor, trained_grid: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Position embeddings of the patch tokens for a patch grid: as learned on `trained_grid`, or interpolated to
    `grid` when it differs (see `must_resize_positions`).

    Args:
        patch_positions: [1, trained rows * trained cols, D].
    Returns:
        [1, rows * cols, D].
    """
    if not must_resize_positions(grid, trained_grid):
        return patch_positions
    positions = patch_positions.reshape(1, *trained_grid, -1)  # [1, N, D] -> [1, rows, cols, D]
    return interpolate_position_embeddings(positions, grid)


__all__ = [
    "grid_positions",
    "interpolate_position_embeddings",
    "mask_patches",
    "must_resize_positions",
    "patch_tokens",
    "to_feature_map",
]
