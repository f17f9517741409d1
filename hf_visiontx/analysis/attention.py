"""What a Vision Transformer learned: attention distances, attention rollout and position-embedding similarity.

The analyses of Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words" (https://arxiv.org/abs/2010.11929):

- **Mean attention distance** (Figure 7 right, Appendix D.7): for each head, how far in pixels a query patch looks,
  the distances to the patches it attends to weighted by the attention. It plays the role of a receptive field
  size: some heads of the lowest layers already look across the whole image, others stay local, and the
  distance grows with depth.
- **Attention rollout** (Figure 6, Appendix D.8; Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928): the
  attention maps of all layers multiplied together, with the identity added for the residual connection, gives
  how much the [CLS] token draws from each input patch.
- **Position-embedding similarity** (Figure 7 centre): cosine similarity between the learned 1-D position
  embedding of each patch and those of all other patches. Trained models rediscover the 2-D grid: nearby
  patches, and patches in the same row or column, get similar embeddings.

Token layout everywhere: `num_prefix_tokens` tokens ([CLS], and e.g. a distillation token) first, then the patches
of a (rows, cols) grid in row-major order. The model-level functions work with transformers' `ViTModel` /
`ViTForImageClassification` and with our ViT classes, which share that output format.

    from hf_visiontx.analysis import mean_attention_distance, plot_mean_attention_distance
    distances = mean_attention_distance(model, pixel_values)       # [num_layers, num_heads], pixels
    plot_mean_attention_distance(distances, "distance.png")

`write_analysis(model_dir, image_path, out_dir)` writes all three plots for one image (the `hf-visiontx analyze`
command). Plotting needs matplotlib (`pip install matplotlib`); the analyses themselves need only torch.
"""

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import open_rgb_image
from .figures import new_figure, require_matplotlib, save_figure, write_all_or_nothing

HEAD_FUSIONS = {"mean": torch.mean, "max": torch.amax, "min": torch.amin}  # reductions over the head dimension
PLOT_FILE_NAMES = ("mean_attention_distance.png", "attention_rollout.png", "position_embedding_similarity.png")


# ----------------------------------------------------------------------------------------------------------------
# Input checks shared by the analyses


def _grid(grid_size: int | Sequence[int], name: str = "grid_size") -> tuple[int, int]:
    """(rows, cols) from an int (square grid) or a pair of positive ints."""
    rows_cols = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
    if len(rows_cols) != 2 or not all(isinstance(n, int) and n > 0 for n in rows_cols):
        raise ValueError(f"`{name}` must be a positive int or a pair (rows, cols) of positive ints, got {grid_size!r}")
    return rows_cols


def _check_attentions(attentions: Sequence[torch.Tensor], num_prefix_tokens: int) -> int:
    """Checks a per-layer sequence of [batch, heads, T, T] attention maps; returns T."""
    if isinstance(attentions, torch.Tensor) or len(attentions) == 0:
        raise ValueError(
            "`attentions` must be a non-empty sequence with one [batch, heads, T, T] tensor per layer, got "
            f"{'a single tensor' if isinstance(attentions, torch.Tensor) else 'an empty sequence'} (a model run "
            "under sdpa returns no attentions: use eager attention)"
        )
    if not isinstance(num_prefix_tokens, int) or num_prefix_tokens < 0:
        raise ValueError(f"`num_prefix_tokens` must be a non-negative int, got {num_prefix_tokens!r}")
    first = attentions[0]
    for layer, attention in enumerate(attentions):
        is_4d = isinstance(attention, torch.Tensor) and attention.dim() == 4
        if not is_4d or attention.shape[-1] != attention.shape[-2]:
            shape = tuple(attention.shape) if isinstance(attention, torch.Tensor) else type(attention).__name__
            raise ValueError(f"`attentions[{layer}]` must be a 4-D tensor [batch, heads, T, T], got {shape}")
        if attention.shape != first.shape:
            raise ValueError(
                f"`attentions[{layer}]` has shape {tuple(attention.shape)}, but `attentions[0]` has "
                f"{tuple(first.shape)}: every layer must have the same batch, heads and tokens"
            )
    if first.shape[-1] <= num_prefix_tokens:
        raise ValueError(
            f"`attentions` have T={first.shape[-1]} tokens, which leaves no patch tokens after "
            f"`num_prefix_tokens`={num_prefix_tokens}"
        )
    return first.shape[-1]


def _patch_centres(grid_size: tuple[int, int], spacing: float) -> torch.Tensor:
    """Pixel coordinates (y, x) of the patch centres in row-major order: [rows * cols, 2], float64.

    Centres are `spacing` pixels apart; the common offset of half a patch cancels in every distance.
    """
    rows, cols = grid_size
    row_index, col_index = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")  # [rows, cols] each
    return torch.stack([row_index, col_index], dim=-1).reshape(rows * cols, 2).double() * spacing  # [N, 2]


# ----------------------------------------------------------------------------------------------------------------
# Mean attention distance (Figure 7 right)


def mean_attention_distance_from_attentions(
    attentions: Sequence[torch.Tensor],
    grid_size: int | Sequence[int],
    patch_size: float,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Mean attention distance in pixels of every head, from attention maps.

    For a query patch q the attention distance is sum_k a[q, k] * |c_q - c_k|, where c are patch centres in
    pixels (`patch_size` apart) and k runs over the patches; it is averaged over query patches and images.

    Prefix tokens ([CLS], ...) are left out, as queries and as keys: they have no position in the image. Each query
    row of patch-to-patch weights is then renormalised to sum to 1, so the result is "how far the head looks
    among the patches", whatever share of its attention goes to [CLS]. A query row with no weight on any patch
    (possible only in hand-built maps; softmax weights are positive) has no distance and is left out of the
    average; a head where no row has any is NaN.

    Args:
        attentions: one tensor per layer, [batch, heads, T, T] (rows are queries, columns keys), with
            T = num_prefix_tokens + rows * cols; the `attentions` output of a ViT run with `output_attentions=True`.
        grid_size: the patch grid, (rows, cols) or an int for a square grid.
        patch_size: distance in pixels between neighbouring patch centres (the patch size, or the token stride of
            a hybrid model).
        num_prefix_tokens: tokens before the patches ([CLS] and e.g. a distillation token).

    Returns:
        [num_layers, num_heads] float32 tensor of distances in pixels.
    """
    rows, cols = _grid(grid_size)
    num_tokens = _check_attentions(attentions, num_prefix_tokens)
    if num_tokens != num_prefix_tokens + rows * cols:
        raise ValueError(
            f"`attentions` have T={num_tokens} tokens, but `grid_size` {(rows, cols)} with `num_prefix_tokens`="
            f"{num_prefix_tokens} needs T={num_prefix_tokens + rows * cols}"
        )
    if not patch_size > 0:
        raise ValueError(f"`patch_size` must be positive, got {patch_size!r}")

    centres = _patch_centres((rows, cols), float(patch_size)).to(attentions[0].device)  # [N, 2]
    distances = (centres[:, None, :] - centres[None, :, :]).norm(dim=-1)  # [N, N]: query, key
    per_layer = []
    for attention in attentions:  # layers; heads, images and positions are tensor dimensions
        patch_attention = attention[:, :, num_prefix_tokens:, num_prefix_tokens:].double()  # [B, H, N, N]
        mass = patch_attention.sum(dim=-1)  # [B, H, N]: weight each query puts on patches
        weighted = (patch_attention * distances).sum(dim=-1)  # [B, H, N]
        per_query = torch.where(mass > 0, weighted / mass, torch.nan)  # [B, H, N], renormalised rows
        per_layer.append(per_query.transpose(0, 1).flatten(1).nanmean(dim=-1))  # [H]: over images and queries
    return torch.stack(per_layer).float()  # [L, H]


def collect_attentions(
    model: nn.Module, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
) -> tuple[torch.Tensor, ...]:
    """Runs a ViT once and returns its attention maps, one [batch, heads, T, T] tensor per layer.

    The model runs in eval mode without gradients and under eager attention (sdpa returns no weights): when
    `model.config._attn_implementation` is something else it is switched with `set_attn_implementation("eager")`
    for this call only. The previous implementation and training mode are restored afterwards, also on error.

    Args:
        model: a ViT base model or a model with a head (`ViTModel`, `ViTForImageClassification`, our classes).
        pixel_values: [batch, channels, height, width].
        interpolate_pos_encoding: passed on to the model, for images of another size than `config.image_size`.
    """
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"`pixel_values` must be a 4-D tensor [batch, channels, height, width], got {shape}")
    previous_implementation = model.config._attn_implementation
    was_training = model.training
    try:
        if previous_implementation != "eager":
            model.set_attn_implementation("eager")
        model.eval()
        with torch.no_grad():
            outputs = model(
                pixel_values=pixel_values.to(model.device),
                output_attentions=True,
                interpolate_pos_encoding=interpolate_pos_encoding,
            )
    finally:
        if model.config._attn_implementation != previous_implementation:
            model.set_attn_implementation(previous_implementation)
        model.train(was_training)
    return tuple(outputs.attentions or ())


def _token_stride(config: Any) -> int:
    """Pixels between neighbouring tokens: `token_stride` for hybrid models, else `patch_size`."""
    stride = getattr(config, "token_stride", None) or config.patch_size
    if not isinstance(stride, int):
        if len(set(stride)) != 1:
            raise ValueError(f"only square patches are supported, the config has patch size / stride {stride}")
        stride = stride[0]
    return stride


def _attention_grid(config: Any, pixel_values: torch.Tensor, attentions: Sequence[torch.Tensor]) -> dict[str, Any]:
    """grid_size, patch_size (the token stride in pixels) and num_prefix_tokens of a model run on `pixel_values`.

    The prefix tokens are what the attention maps hold beyond the (height // stride, width // stride) patches.
    """
    stride = _token_stride(config)
    rows, cols = pixel_values.shape[-2] // stride, pixel_values.shape[-1] // stride
    num_prefix_tokens = attentions[0].shape[-1] - rows * cols if len(attentions) else 1
    return {"grid_size": (rows, cols), "patch_size": stride, "num_prefix_tokens": num_prefix_tokens}


def mean_attention_distance(
    model: nn.Module, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False
) -> torch.Tensor:
    """Mean attention distance in pixels of every head of a ViT, averaged over the given images.

    See `mean_attention_distance_from_attentions` for the definition (prefix tokens excluded, rows renormalised)
    and `collect_attentions` for how the model is run. The patch grid is (height // s, width // s), where s is
    `config.token_stride` if the model has one (hybrid models) and `config.patch_size` otherwise.

    Args:
        model: a ViT base model or a model with a head.
        pixel_values: [batch, channels, height, width].
        interpolate_pos_encoding: passed on to the model, for images of another size than `config.image_size`.

    Returns:
        [num_layers, num_heads] float32 tensor of distances in pixels.
    """
    attentions = collect_attentions(model, pixel_values, interpolate_pos_encoding)
    grid = _attention_grid(model.config, pixel_values, attentions)
    return mean_attention_distance_from_attentions(attentions, **grid)


# ----------------------------------------------------------------------------------------------------------------
# Attention rollout (Figure 6, Appendix D.8)


def attention_rollout(
    attentions: Sequence[torch.Tensor],
    num_prefix_tokens: int = 1,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much the [CLS] token draws from each patch through all layers.

    Per layer: fuse the heads (mean, max or min over heads), optionally zero the weakest weights, add the
    identity for the residual connection and renormalise every row to sum to 1 (with softmax rows this is
    0.5 * A + 0.5 * I). The layers are multiplied, first layer rightmost: R = A_L ... A_2 A_1.

    Args:
        attentions: one tensor per layer, [batch, heads, T, T]; the [CLS] token is token 0.
        num_prefix_tokens: tokens before the patches; they are dropped from the returned columns.
        head_fusion: "mean", "max" or "min" over heads.
        discard_ratio: fraction in [0, 1) of each image's fused weights (the smallest) set to zero before the
            identity is added, which sharpens the map (0 keeps everything, as in the paper).

    Returns:
        [batch, T - num_prefix_tokens] float32: the [CLS] row of R at the patch columns. The row of R sums to 1
        over all tokens, so these sum to at most 1 (the rest stays on the prefix tokens).
    """
    num_tokens = _check_attentions(attentions, num_prefix_tokens)
    if num_prefix_tokens < 1:
        raise ValueError("`num_prefix_tokens` must be at least 1: the rollout is read from the [CLS] token's row")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"`head_fusion` must be one of {tuple(HEAD_FUSIONS)}, got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"`discard_ratio` must be in [0, 1), got {discard_ratio!r}")

    identity = torch.eye(num_tokens, dtype=torch.float64, device=attentions[0].device)  # [T, T]
    rollout = identity
    for attention in attentions:  # layers, in order
        fused = HEAD_FUSIONS[head_fusion](attention.double(), dim=1)  # [B, H, T, T] -> [B, T, T]
        num_discarded = int(discard_ratio * num_tokens * num_tokens)
        if num_discarded > 0:
            flat = fused.flatten(1)  # [B, T*T]
            weakest = flat.topk(num_discarded, dim=-1, largest=False).indices  # [B, num_discarded]
            fused = flat.scatter(1, weakest, 0.0).view_as(fused)  # [B, T, T]
        layer = fused + identity  # residual connection
        layer = layer / layer.sum(dim=-1, keepdim=True)  # rows sum to 1
        rollout = layer @ rollout  # [B, T, T]
    return rollout[:, 0, num_prefix_tokens:].float()  # [B, N]


def attention_rollout_map(
    attentions: Sequence[torch.Tensor],
    grid_size: int | Sequence[int] | None = None,
    num_prefix_tokens: int = 1,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """`attention_rollout` laid out on the patch grid: [batch, rows, cols].

    Args:
        attentions, num_prefix_tokens, head_fusion, discard_ratio: as for `attention_rollout`.
        grid_size: (rows, cols), an int for a square grid, or None to infer a square grid from the token count.
    """
    rollout = attention_rollout(attentions, num_prefix_tokens, head_fusion, discard_ratio)  # [B, N]
    num_patches = rollout.shape[-1]
    rows, cols = _square_grid(num_patches, "attentions") if grid_size is None else _grid(grid_size)
    if rows * cols != num_patches:
        raise ValueError(f"`grid_size` {(rows, cols)} has {rows * cols} patches, `attentions` have {num_patches}")
    return rollout.view(-1, rows, cols)  # [B, rows, cols]


def _square_grid(num_patches: int, name: str) -> tuple[int, int]:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"`{name}` have {num_patches} patch tokens, not a square grid: pass `grid_size`")
    return side, side


# ----------------------------------------------------------------------------------------------------------------
# Position-embedding similarity (Figure 7 centre)


def position_embedding_similarity_from_embeddings(
    position_embeddings: torch.Tensor, grid_size: int | Sequence[int], num_prefix_tokens: int = 0
) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches, on the patch grid.

    Args:
        position_embeddings: [T, D] or [1, T, D] with T = num_prefix_tokens + rows * cols, patches row-major.
        grid_size: (rows, cols), or an int for a square grid.
        num_prefix_tokens: leading positions ([CLS], ...) to drop.

    Returns:
        [rows, cols, rows, cols] float32: entry [i, j, k, l] is the similarity of patch (i, j) with patch (k, l);
        [i, j] is the small map drawn for patch (i, j) in Figure 7.
    """
    rows, cols = _grid(grid_size)
    if position_embeddings.dim() == 3 and position_embeddings.shape[0] == 1:
        position_embeddings = position_embeddings[0]  # [T, D]
    if position_embeddings.dim() != 2:
        raise ValueError(f"`position_embeddings` must be [T, D] or [1, T, D], got {tuple(position_embeddings.shape)}")
    if position_embeddings.shape[0] != num_prefix_tokens + rows * cols:
        raise ValueError(
            f"`position_embeddings` have {position_embeddings.shape[0]} positions, but `grid_size` {(rows, cols)} "
            f"with `num_prefix_tokens`={num_prefix_tokens} needs {num_prefix_tokens + rows * cols}"
        )
    patches = F.normalize(position_embeddings[num_prefix_tokens:].detach().double(), dim=-1)  # [N, D], unit rows
    similarity = patches @ patches.T  # [N, N]
    return similarity.view(rows, cols, rows, cols).float()


def _position_grid(config: Any, num_patches: int) -> tuple[int, int]:
    """The patch grid of the position embeddings: from config image_size / stride when it fits, else square."""
    image_size = getattr(config, "image_size", None)
    if image_size is not None and getattr(config, "patch_size", None) is not None:
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        stride = _token_stride(config)
        if (height // stride) * (width // stride) == num_patches:
            return height // stride, width // stride
    return _square_grid(num_patches, "position embeddings")


def position_embedding_similarity(model: nn.Module, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Cosine similarity between the learned position embeddings of a ViT's patches (Figure 7 centre).

    Reads `model.base_model.embeddings.position_embeddings`, [1, num_prefix_tokens + rows * cols, D]. The grid is
    (image_size // patch_size) per side from the config when that matches the number of positions (`token_stride`
    replaces `patch_size` for hybrid models), else square.

    Args:
        model: a ViT base model or a model with a head.
        num_prefix_tokens: leading positions without a patch ([CLS]; 2 for models with a distillation token).

    Returns:
        [rows, cols, rows, cols] float32, see `position_embedding_similarity_from_embeddings`.
    """
    embeddings = model.base_model.embeddings.position_embeddings
    embeddings = getattr(embeddings, "weight", embeddings)  # an nn.Embedding holds them in .weight
    embeddings = embeddings.reshape(-1, embeddings.shape[-1])  # [T, D]
    grid_size = _position_grid(model.config, embeddings.shape[0] - num_prefix_tokens)
    return position_embedding_similarity_from_embeddings(embeddings, grid_size, num_prefix_tokens)


# ----------------------------------------------------------------------------------------------------------------
# Plots


def plot_mean_attention_distance(distances: torch.Tensor, path: str | os.PathLike) -> Path:
    """Scatter of every head's mean attention distance against its layer (Figure 7 right); writes a PNG.

    Args:
        distances: [num_layers, num_heads] in pixels, from `mean_attention_distance`.
        path: the PNG file to write.

    Returns:
        `path` as a Path.
    """
    if distances.dim() != 2:
        raise ValueError(f"`distances` must be [num_layers, num_heads], got {tuple(distances.shape)}")
    num_layers, num_heads = distances.shape
    distances = distances.detach().cpu().float()
    depth = torch.arange(1, num_layers + 1).repeat_interleave(num_heads)  # [L*H]: layer of each head
    head = torch.arange(num_heads).repeat(num_layers)  # [L*H]: head index, the colour
    figure = new_figure(figsize=(5.5, 4))
    axes = figure.add_subplot()
    points = axes.scatter(
        depth.numpy(), distances.reshape(-1).numpy(), c=head.numpy(), cmap="tab20", vmin=-0.5, vmax=19.5, s=18
    )
    handles, _ = points.legend_elements(num=None)  # one marker per head, in head order
    axes.legend(
        handles,
        [f"head {h + 1}" for h in range(num_heads)],
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        fontsize=7,
        frameon=False,
        ncols=math.ceil(num_heads / 16),
    )
    axes.set_xlabel("Network depth (layer)")
    axes.set_ylabel("Mean attention distance (pixels)")
    axes.set_xticks(range(1, num_layers + 1))
    top = float(distances.nan_to_num(0.0).max())
    axes.set_ylim(0, top * 1.08 if top > 0 else 1.0)
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def _image_array(image: Any) -> Any:
    """An image as a numpy array [H, W] or [H, W, C] for imshow: PIL images, arrays, or a [C, H, W] tensor."""
    import numpy as np

    if isinstance(image, torch.Tensor):
        if image.dim() == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)  # [C, H, W] -> [H, W, C]
        image = image.detach().cpu().float()
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)  # to [0, 1] for display
        image = image.squeeze(-1) if image.dim() == 3 and image.shape[-1] == 1 else image
        return image.numpy()
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"`image` must be [H, W] or [H, W, C] (or a PIL image), got shape {array.shape}")
    return array


def plot_attention_rollout(image: Any, rollout_map: torch.Tensor, path: str | os.PathLike) -> Path:
    """The input image and, beside it, the image with the attention rollout overlaid (Figure 6); writes a PNG.

    The map is scaled to [0, 1] (minimum to maximum) and upsampled bilinearly to the image size, so it is stretched over
    the whole image: pass the image as the model saw it (resized, not cropped).

    Args:
        image: a PIL image, an array [H, W] or [H, W, C], or a tensor [C, H, W] (scaled to [0, 1] for display).
        rollout_map: [rows, cols] (or [1, rows, cols]), from `attention_rollout_map`.
        path: the PNG file to write.

    Returns:
        `path` as a Path.
    """
    if rollout_map.dim() == 3 and rollout_map.shape[0] == 1:
        rollout_map = rollout_map[0]
    if rollout_map.dim() != 2:
        raise ValueError(f"`rollout_map` must be [rows, cols] for one image, got {tuple(rollout_map.shape)}")
    figure = new_figure(figsize=(8, 4))
    pixels = _image_array(image)
    height, width = pixels.shape[:2]
    heat = rollout_map.detach().cpu().double()
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)  # [rows, cols] in [0, 1]
    heat = F.interpolate(heat[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]  # [H, W]
    image_axes, overlay_axes = figure.subplots(1, 2)
    grey = "gray" if pixels.ndim == 2 else None
    image_axes.imshow(pixels, cmap=grey)
    image_axes.set_title("Input")
    overlay_axes.imshow(pixels, cmap=grey)
    overlay_axes.imshow(heat.clamp(0, 1).numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    overlay_axes.set_title("Attention rollout")
    for axes in (image_axes, overlay_axes):
        axes.axis("off")
    return save_figure(figure, path)


def plot_position_embedding_similarity(similarity: torch.Tensor, path: str | os.PathLike) -> Path:
    """One small cosine-similarity map per patch, laid out on the patch grid (Figure 7 centre); writes a PNG.

    The tile at input patch (row i, column j) shows the similarity of that patch's embedding with every patch.
    Tiles are drawn as one mosaic image separated by blank lines, which keeps large grids fast to draw.

    Args:
        similarity: [rows, cols, rows, cols], from `position_embedding_similarity`.
        path: the PNG file to write.

    Returns:
        `path` as a Path.
    """
    if similarity.dim() != 4 or similarity.shape[:2] != similarity.shape[2:]:
        raise ValueError(f"`similarity` must be [rows, cols, rows, cols], got {tuple(similarity.shape)}")
    rows, cols = similarity.shape[:2]
    tiles = F.pad(similarity.detach().cpu().float(), (0, 1, 0, 1), value=torch.nan)  # [R, C, R+1, C+1]: gap
    mosaic = tiles.permute(0, 2, 1, 3).reshape(rows * (rows + 1), cols * (cols + 1))  # [R*(R+1), C*(C+1)]
    figure = new_figure(figsize=(6, 5.2))
    axes = figure.add_subplot()
    colour_map = _colour_map("viridis")
    image = axes.imshow(mosaic[:-1, :-1].numpy(), cmap=colour_map, vmin=-1, vmax=1, interpolation="nearest")
    axes.set_xticks([(j + 0.5) * (cols + 1) - 1 for j in range(cols)], [str(j + 1) for j in range(cols)])
    axes.set_yticks([(i + 0.5) * (rows + 1) - 1 for i in range(rows)], [str(i + 1) for i in range(rows)])
    axes.tick_params(length=0, labelsize=7)
    axes.set_xlabel("Input patch column")
    axes.set_ylabel("Input patch row")
    axes.set_frame_on(False)
    figure.colorbar(image, ax=axes, label="Cosine similarity", shrink=0.8)
    axes.set_title("Position embedding similarity")
    return save_figure(figure, path)


def _colour_map(name: str) -> Any:
    """A copy of a matplotlib colour map that draws NaN (the gaps between tiles) white."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="white")


# ----------------------------------------------------------------------------------------------------------------
# Everything for one image (the `hf-visiontx analyze` command)


def write_analysis(
    model_dir: str | os.PathLike, image_path: str | os.PathLike, out_dir: str | os.PathLike
) -> list[Path]:
    """Loads a saved ViT and one image, and writes the three plots into `out_dir`; returns their paths.

    The model is loaded with `AutoModel.from_pretrained(model_dir)` (our model types resolve once hf_visiontx is
    imported) and the image is prepared by `AutoImageProcessor.from_pretrained(model_dir)`. Everything is
    computed and drawn into a temporary directory next to `out_dir` first; the files are moved into `out_dir`
    (created if needed, existing files of the same name replaced) only when all three exist, so a failure leaves
    no partial output.

    Files: mean_attention_distance.png, attention_rollout.png, position_embedding_similarity.png.
    """
    from transformers import AutoImageProcessor, AutoModel

    require_matplotlib()  # fail before the slow part if plots cannot be drawn
    image = open_rgb_image(image_path, "image")
    model = AutoModel.from_pretrained(model_dir)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    image = image.convert("L") if getattr(model.config, "num_channels", 3) == 1 else image
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]  # [1, C, H, W]

    image_size = getattr(model.config, "image_size", None)
    configured = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size or ())
    interpolate = configured != tuple(pixel_values.shape[-2:])
    attentions = collect_attentions(model, pixel_values, interpolate_pos_encoding=interpolate)
    grid = _attention_grid(model.config, pixel_values, attentions)
    distances = mean_attention_distance_from_attentions(attentions, **grid)  # [L, H]
    rollout_map = attention_rollout_map(attentions, grid["grid_size"], grid["num_prefix_tokens"])[0]  # [rows, cols]
    similarity = position_embedding_similarity(model, grid["num_prefix_tokens"])  # [rows, cols, rows, cols]
    shown_image = image.resize((pixel_values.shape[-1], pixel_values.shape[-2]))

    def draw(staging: Path) -> list[Path]:
        return [
            plot_mean_attention_distance(distances, staging / PLOT_FILE_NAMES[0]),
            plot_attention_rollout(shown_image, rollout_map, staging / PLOT_FILE_NAMES[1]),
            plot_position_embedding_similarity(similarity, staging / PLOT_FILE_NAMES[2]),
        ]

    return write_all_or_nothing(out_dir, draw)
