"""Pictures of Swin's window arithmetic: shifted windows, the cyclic shift and its mask, the relative position index.

Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
(https://arxiv.org/abs/2103.14030), Section 3.2 and Figure 4:

- **W-MSA** computes self-attention inside non-overlapping M×M windows of the feature map (row-major order).
- **SW-MSA**, in the next block, uses windows moved by s = M/2 along both axes, so that information crosses the
  previous window borders. The moved partition has more windows (9 instead of 4 on an 8×8 map with M = 4), some
  of them clipped at the border. Instead of padding those, the map is rolled cyclically by -s: the regular
  partition of the rolled map then holds every shifted window, whole, but the last row and column of windows
  also hold pieces that were far apart before the roll. An additive mask (`MASKED_LOGIT` between tokens from
  different regions, 0 elsewhere) keeps those pieces from attending to each other, so the cost stays that of W-MSA.
- **Relative position bias**: a learned (2M-1)² × heads table, read for every (query, key) pair of a window at the
  row numbered by their offset (dy, dx): (dy + M - 1) * (2M - 1) + (dx + M - 1).

The arithmetic itself lives in `hf_visiontx.modeling.modeling_swin` (`window_partition`,
`shifted_region_ids`, `shifted_window_attention_mask`, `relative_position_index`); this module only draws it.

    from hf_visiontx.analysis import write_swin_pictures
    write_swin_pictures("pictures")              # shifted_windows.png, relative_position_index.png (8×8, M=4, s=2)

The same from the shell: `hf-visiontx swin-windows --out pictures [--height 8 --width 8 --window 4 --shift 2]`.

Sizes must be multiples of the window: the model pads its feature map to a multiple of the window before
partitioning, so the picture of an unpadded size would show a partition the model never uses; pass the padded
size instead. Plotting needs matplotlib (`pip install matplotlib`).
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.images import open_rgb_image
from ..modeling.modeling_swin import (
    MASKED_LOGIT,
    effective_window,
    relative_position_index,
    shifted_region_ids,
    shifted_window_attention_mask,
    window_partition,
)
from .figures import new_figure, require_matplotlib, save_figure, write_all_or_nothing

PICTURE_FILE_NAMES = ("shifted_windows.png", "relative_position_index.png")

REGION_COLOURS = (  # matplotlib's Pastel1 (its last grey darkened to stand out from white): one per region
    "#fbb4ae",
    "#b3cde3",
    "#ccebc5",
    "#decbe4",
    "#fed9a6",
    "#ffffcc",
    "#e5d8bd",
    "#fddaec",
    "#d9d9d9",
)
PLAIN_CELL = "#dce6f0"  # the cells of the un-shifted map (panel 1)
MASKED_COLOUR = "#262626"  # masked entries of the attention mask
GAP_COLOUR = "#ffffff"  # between mask tiles
MAX_CELLS_WITH_LINES = 32  # thin cell borders and coordinate ticks only up to this many cells per side
MAX_LABELS = 100  # text labels per panel only up to this many
MAX_WINDOW_WITH_NUMBERS = 4  # the relative position index has its values written in the cells up to this M
# The attention mask drawn has height x width x M² entries: at most this many (a 256x256 map with 8x8 windows, about
# 1 GB to draw), so that an impossible size is refused up front rather than failing to allocate.
MAX_MASK_ENTRIES = 1 << 22


# ----------------------------------------------------------------------------------------------------------------
# Argument checks


def _check_int(value: Any, name: str, minimum: int) -> None:
    """A ValueError naming `name` unless `value` is an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"`{name}` must be {kind}, got {value!r}")


def _check_map_and_window(height: int, width: int, window_size: int, shift_size: int) -> None:
    """ValueErrors naming the argument for a feature map and window that SW-MSA cannot partition.

    The map must hold a whole number of windows per side (the model pads to that before partitioning), the
    shift must be in [0, window_size), and the attention mask must have at most `MAX_MASK_ENTRIES` entries.
    """
    _check_int(height, "height", 1)
    _check_int(width, "width", 1)
    _check_int(window_size, "window_size", 1)
    _check_int(shift_size, "shift_size", 0)
    entries = height * width * window_size**2
    if entries > MAX_MASK_ENTRIES:
        raise ValueError(
            f"`height` x `width` x `window_size`² = {height} x {width} x {window_size}² = {entries} attention-mask "
            f"entries to draw; the pictures draw at most {MAX_MASK_ENTRIES} (for example a 256x256 map with "
            "window 8): choose a smaller map or window"
        )
    if window_size > min(height, width):
        raise ValueError(
            f"`window_size`={window_size} is larger than the feature map ({height}x{width}): it must be at most "
            f"min(`height`, `width`)={min(height, width)}"
        )
    for name, size in (("height", height), ("width", width)):
        if size % window_size:
            raise ValueError(
                f"`{name}`={size} must be a multiple of `window_size`={window_size} (the model pads its feature "
                f"map to a multiple of the window before partitioning: pass the padded size, e.g. "
                f"{-(-size // window_size) * window_size})"
            )
    if shift_size >= window_size:
        raise ValueError(
            f"`shift_size` must be in [0, `window_size`) = [0, {window_size}), got {shift_size} (the paper uses "
            f"window_size // 2 = {window_size // 2})"
        )


# ----------------------------------------------------------------------------------------------------------------
# Drawing helpers


def _rgb(colour: str) -> tuple[float, float, float]:
    """'#rrggbb' -> (r, g, b) in [0, 1]."""
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def _cells_image(colour_index: torch.Tensor, palette: tuple[str, ...]) -> torch.Tensor:
    """[H, W] indices into `palette` -> [H, W, 3] float RGB for imshow."""
    return torch.tensor([_rgb(colour) for colour in palette])[colour_index]


def _window_borders(length: int, window_size: int, offset: int) -> list[float]:
    """Positions, between cells, of the borders of windows that start at offset, offset + M, ... (and at 0)."""
    starts = sorted({0, *range(offset, length, window_size)} | {length})
    return [start - 0.5 for start in starts]


def _draw_map(
    axes: Any,
    cells: torch.Tensor,
    row_borders: list[float],
    col_borders: list[float],
    row_labels: list[int],
    col_labels: list[int],
) -> None:
    """Draws [H, W, 3] cells with thick window borders, thin cell borders and coordinate ticks on small maps."""
    height, width = cells.shape[:2]
    axes.imshow(cells.numpy(), interpolation="nearest")
    if max(height, width) <= MAX_CELLS_WITH_LINES:
        axes.vlines([x - 0.5 for x in range(1, width)], -0.5, height - 0.5, colors="white", linewidth=0.8)
        axes.hlines([y - 0.5 for y in range(1, height)], -0.5, width - 0.5, colors="white", linewidth=0.8)
        axes.set_xticks(range(width), [str(c) for c in col_labels], fontsize=6)
        axes.set_yticks(range(height), [str(r) for r in row_labels], fontsize=6)
        axes.tick_params(length=0, pad=1.5)
    else:
        axes.set_xticks([])
        axes.set_yticks([])
    axes.vlines(col_borders, -0.5, height - 0.5, colors="black", linewidth=2.2)
    axes.hlines(row_borders, -0.5, width - 0.5, colors="black", linewidth=2.2)
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)  # row 0 at the top, as in the tensor
    axes.set_frame_on(False)


def _label_pieces(axes: Any, piece: torch.Tensor, text: Callable[[int], str]) -> None:
    """Writes text(piece id) at the centre of every piece of an [H, W] map of piece ids (pieces are rectangles)."""
    ids = piece.unique()
    if len(ids) > MAX_LABELS:
        return
    rows, cols = torch.meshgrid(torch.arange(piece.shape[0]), torch.arange(piece.shape[1]), indexing="ij")
    fontsize = 9 if len(ids) <= 36 else 7
    for piece_id in ids.tolist():
        where = piece == piece_id
        centre_row, centre_col = rows[where].double().mean().item(), cols[where].double().mean().item()
        axes.text(
            centre_col, centre_row, text(piece_id), ha="center", va="center", fontsize=fontsize, fontweight="bold"
        )


def _axis_window_ids(length: int, window_size: int, offset: int) -> torch.Tensor:
    """[length]: the window each position is in, for windows starting at offset, offset + M, ... (and at 0)."""
    positions = torch.arange(length)
    return (positions + (window_size - offset) % window_size) // window_size


def _mask_mosaic(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    """The SW-MSA mask as one RGB image: one M²×M² tile per window, laid out like the windows on the map.

    Allowed entries take the colour of the query's region, masked ones are dark; tiles are separated by white gaps.
    """
    area = window_size * window_size
    rows, cols = height // window_size, width // window_size
    mask = shifted_window_attention_mask(height, width, window_size, shift_size)  # [nW, M², M²]
    regions = shifted_region_ids(height, width, window_size, shift_size)  # [H, W], rolled coordinates
    query_region = window_partition(regions[None, :, :, None], window_size).reshape(-1, area)  # [nW, M²]
    palette = torch.tensor([_rgb(colour) for colour in (*REGION_COLOURS, MASKED_COLOUR)])  # [10, 3]
    colour_index = torch.where(mask == 0, query_region[:, :, None], len(REGION_COLOURS))  # [nW, M², M²]
    tiles = palette[colour_index]  # [nW, M², M², 3]
    gap = max(1, area // 8)
    tiles = torch.nn.functional.pad(tiles.permute(0, 3, 1, 2), (0, gap, 0, gap), value=1.0)  # [nW, 3, M²+g, M²+g]
    side = area + gap
    mosaic = tiles.view(rows, cols, 3, side, side).permute(0, 3, 1, 4, 2).reshape(rows * side, cols * side, 3)
    return mosaic[:-gap, :-gap]  # [rows*side - g, cols*side - g, 3]


# ----------------------------------------------------------------------------------------------------------------
# The pictures


def plot_shifted_windows(height: int, width: int, window_size: int, shift_size: int, path: str | os.PathLike) -> Path:
    """One figure explaining SW-MSA (the paper's Figure 4) in four panels; writes a PNG.

    1. W-MSA: the feature map with the regular window grid, windows numbered in row-major order.
    2. SW-MSA: the windows moved by `shift_size`, drawn on the original map, each cell coloured by the region it
       belongs to (`shifted_region_ids` rolled back to the original positions) and each window labelled with its
       region id.
    3. The map after the cyclic shift by -`shift_size` with the regular grid again: each window of the last row
       and column holds pieces of several regions (colours, labelled with their ids); the ticks give the original
       row and column of each cell.
    4. The attention mask [num_windows, M², M²] of `shifted_window_attention_mask`, one tile per window laid out as
       the windows in panel 3 (query rows, key columns, tokens row-major inside the window): allowed pairs in the
       colour of their region, masked pairs dark.

    Args:
        height, width: size of the feature map in tokens, multiples of `window_size`.
        window_size: the window side M.
        shift_size: the shift s in [0, M); the paper uses M // 2.
        path: the PNG file to write.

    Returns:
        `path` as a Path.
    """
    _check_map_and_window(height, width, window_size, shift_size)
    num_windows = (height // window_size) * (width // window_size)
    regular_rows = _axis_window_ids(height, window_size, 0)  # [H]
    regular_cols = _axis_window_ids(width, window_size, 0)  # [W]
    regular_window = regular_rows[:, None] * (width // window_size) + regular_cols[None, :]  # [H, W], row-major
    rolled_regions = shifted_region_ids(height, width, window_size, shift_size)  # [H, W], rolled coordinates
    regions = torch.roll(rolled_regions, shifts=(shift_size, shift_size), dims=(0, 1))  # [H, W], original
    shifted_rows = _axis_window_ids(height, window_size, shift_size)  # [H]
    shifted_cols = _axis_window_ids(width, window_size, shift_size)  # [W]
    num_shifted = int(shifted_rows.max() + 1) * int(shifted_cols.max() + 1)
    rows, cols = list(range(height)), list(range(width))
    rolled_rows = [(r + shift_size) % height for r in rows]  # original row shown at each rolled row
    rolled_cols = [(c + shift_size) % width for c in cols]

    figure = new_figure(figsize=(4.6 * 4 * max(1.0, width / height) ** 0.5, 5.2))
    regular_axes, shifted_axes, rolled_axes, mask_axes = figure.subplots(1, 4)
    regular_borders = _window_borders(height, window_size, 0), _window_borders(width, window_size, 0)

    _draw_map(
        regular_axes,
        _cells_image(torch.zeros(height, width, dtype=torch.long), (PLAIN_CELL,)),
        *regular_borders,
        rows,
        cols,
    )
    _label_pieces(regular_axes, regular_window, lambda window: f"w{window}")
    regular_axes.set_title(
        f"1. W-MSA (layer l)\n{num_windows} regular {window_size}×{window_size} windows", fontsize=10
    )

    _draw_map(
        shifted_axes,
        _cells_image(regions, REGION_COLOURS),
        _window_borders(height, window_size, shift_size),
        _window_borders(width, window_size, shift_size),
        rows,
        cols,
    )
    shifted_window = shifted_rows[:, None] * int(shifted_cols.max() + 1) + shifted_cols[None, :]  # [H, W]
    _label_pieces(shifted_axes, shifted_window * 9 + regions, lambda piece: str(piece % 9))
    shifted_axes.set_title(
        f"2. SW-MSA (layer l+1): windows moved by ({shift_size}, {shift_size})\n"
        f"{num_shifted} windows; colour and number = region",
        fontsize=10,
    )

    _draw_map(rolled_axes, _cells_image(rolled_regions, REGION_COLOURS), *regular_borders, rolled_rows, rolled_cols)
    _label_pieces(rolled_axes, regular_window * 9 + rolled_regions, lambda piece: str(piece % 9))
    rolled_axes.set_title(
        f"3. cyclic shift: torch.roll by (-{shift_size}, -{shift_size})\n"
        f"the same {num_windows} windows now mix regions",
        fontsize=10,
    )
    if max(height, width) <= MAX_CELLS_WITH_LINES:  # the ticks are drawn
        rolled_axes.set_xlabel("original column", fontsize=8)
        rolled_axes.set_ylabel("original row", fontsize=8)

    mask_axes.imshow(_mask_mosaic(height, width, window_size, shift_size).numpy(), interpolation="nearest")
    mask_axes.set_xticks([])
    mask_axes.set_yticks([])
    mask_axes.set_frame_on(False)
    mask_axes.set_xlabel("key token (row-major in its window); one tile per window of panel 3", fontsize=8)
    mask_axes.set_ylabel("query token", fontsize=8)
    mask_axes.set_title(
        f"4. attention mask [{num_windows}, {window_size**2}, {window_size**2}]\n"
        f"dark: masked ({MASKED_LOGIT:g} added to the logit)",
        fontsize=10,
    )

    figure.suptitle(
        f"Swin shifted windows: {height}×{width} tokens, window M={window_size}, shift s={shift_size}", fontsize=12
    )
    return save_figure(figure, path)


def plot_relative_position_index(window_size: int, path: str | os.PathLike) -> Path:
    """The [M², M²] relative position index of `relative_position_index` as an image with a colour bar; writes a PNG.

    Entry (query i, key j) is the row of the (2M-1)²-row bias table read for that pair. Thin lines separate the
    token rows of the window (blocks of M tokens); for M <= 4 the tokens are named (y, x) and the indices written
    in the cells.

    Args:
        window_size: the window side M.
        path: the PNG file to write.

    Returns:
        `path` as a Path.
    """
    _check_int(window_size, "window_size", 1)
    index = relative_position_index(window_size)  # [M², M²]
    area, table_rows = window_size * window_size, (2 * window_size - 1) ** 2
    figure = new_figure(figsize=(7.6, 6.4) if window_size == MAX_WINDOW_WITH_NUMBERS else (6.4, 5.4))
    axes = figure.add_subplot()
    image = axes.imshow(index.numpy(), cmap="viridis", vmin=0, vmax=table_rows - 1, interpolation="nearest")
    if window_size <= MAX_WINDOW_WITH_NUMBERS:
        names = [f"({y},{x})" for y in range(window_size) for x in range(window_size)]
        axes.set_xticks(range(area), names, fontsize=7, rotation=90)
        axes.set_yticks(range(area), names, fontsize=7)
        middle = (table_rows - 1) / 2
        for (i, j), value in zip(
            torch.cartesian_prod(torch.arange(area), torch.arange(area)).tolist(), index.flatten().tolist(), strict=True
        ):
            axes.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                fontsize=9 if window_size <= 3 else 7,
                color="white" if value < middle else "black",
            )
    else:  # one tick per row y of the window, in the middle of its block of M tokens
        centres = [y * window_size + (window_size - 1) / 2 for y in range(window_size)]
        axes.set_xticks(centres, [f"y={y}" for y in range(window_size)], fontsize=7, rotation=90)
        axes.set_yticks(centres, [f"y={y}" for y in range(window_size)], fontsize=7)
        axes.tick_params(length=0)
    borders = [start - 0.5 for start in range(window_size, area, window_size)]
    axes.vlines(borders, -0.5, area - 0.5, colors="white", linewidth=0.6)
    axes.hlines(borders, -0.5, area - 0.5, colors="white", linewidth=0.6)
    axes.set_xlabel("key token (y, x), row-major")
    axes.set_ylabel("query token (y, x), row-major")
    axes.set_title(
        f"Relative position index, M={window_size}: table row of offset (dy, dx)\n"
        f"(dy + {window_size - 1})·{2 * window_size - 1} + (dx + {window_size - 1}); "
        f"diagonal (0, 0) = {(window_size - 1) * (2 * window_size)}",
        fontsize=10,
    )
    figure.colorbar(image, ax=axes, label=f"row of the bias table (0 … {table_rows - 1})", shrink=0.85)
    return save_figure(figure, path)


# ----------------------------------------------------------------------------------------------------------------
# Both pictures (the `hf-visiontx swin-windows` command)


def write_swin_pictures(
    out_dir: str | os.PathLike, height: int = 8, width: int = 8, window_size: int = 4, shift_size: int = 2
) -> list[Path]:
    """Writes shifted_windows.png (`plot_shifted_windows`) and relative_position_index.png
    (`plot_relative_position_index`) into `out_dir`; returns their paths.

    The arguments are checked and matplotlib imported before anything is created; both pictures are drawn in a
    temporary directory next to `out_dir` and moved into `out_dir` (created if needed) only when both exist.

    Args:
        out_dir: the directory for the two PNG files.
        height, width: size of the feature map in tokens, multiples of `window_size` (default: the paper's 8×8).
        window_size: the window side M.
        shift_size: the shift s in [0, M).
    """
    _check_map_and_window(height, width, window_size, shift_size)
    require_matplotlib()

    def draw(staging: Path) -> list[Path]:
        return [
            plot_shifted_windows(height, width, window_size, shift_size, staging / PICTURE_FILE_NAMES[0]),
            plot_relative_position_index(window_size, staging / PICTURE_FILE_NAMES[1]),
        ]

    return write_all_or_nothing(out_dir, draw)


def write_swin_model_pictures(
    model_dir: str | os.PathLike, image_path: str | os.PathLike, out_dir: str | os.PathLike
) -> list[Path]:
    """The pictures of `write_swin_pictures` for a saved Swin model and one image: the first stage's feature map
    for that image (as the model's image processor sizes it, padded to whole windows as the model pads it) with
    the model's window and shift. Used by `hf-visiontx analyze` for Swin models."""
    from transformers import AutoConfig, AutoImageProcessor

    config = AutoConfig.from_pretrained(model_dir)
    image = open_rgb_image(image_path, "image")
    pixel_values = AutoImageProcessor.from_pretrained(model_dir)(images=image, return_tensors="pt")["pixel_values"]
    grid = tuple(-(-side // config.patch_size) for side in pixel_values.shape[-2:])  # first-stage tokens
    window, shift = effective_window(grid, config.window_size, config.window_size // 2)
    height, width = (-(-side // window) * window for side in grid)  # padded to whole windows
    return write_swin_pictures(out_dir, height, width, window, shift)
