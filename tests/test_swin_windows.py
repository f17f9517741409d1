"""Swin's window arithmetic (Liu et al. 2021, Section 3.2 and Figure 4): window partition, the shifted-window
attention mask, the relative position index, and their pictures (`hf_visiontx.analysis.swin`, `hf-visiontx
swin-windows`).

The mask is checked against its meaning, built here from first principles rather than from region ids: SW-MSA
computes attention inside the windows of a partition offset by `shift` (clipped at the image border), and the
cyclic shift plus mask must let two tokens of the original map attend to each other exactly when they share such
a shifted window. transformers' Swin is the second oracle.
"""

import itertools
import sys

import pytest
import torch
from transformers import SwinConfig
from transformers.models.swin.modeling_swin import SwinLayer, SwinRelativePositionBias

from hf_visiontx.analysis import plot_relative_position_index, plot_shifted_windows, write_swin_pictures
from hf_visiontx.apps.cli import main
from hf_visiontx.modeling.modeling_swin import (
    MASKED_LOGIT,
    relative_position_index,
    shifted_window_attention_mask,
    window_partition,
    window_reverse,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PICTURE_FILES = ("shifted_windows.png", "relative_position_index.png")

# (height, width, window_size, shift_size): square, non-square, tiny windows, a shift other than M / 2, and a map
# with interior windows that need no mask at all
GRIDS = [(8, 8, 4, 2), (8, 12, 4, 2), (4, 6, 2, 1), (6, 9, 3, 1), (9, 6, 3, 2), (12, 8, 4, 1)]


# ---------------------------------------------------------------------------------------------------------------
# Window partition and reverse


@pytest.mark.parametrize(("height", "width", "window_size"), [(8, 8, 4), (8, 12, 4), (6, 4, 2), (3, 3, 3)])
def test_window_k_holds_the_kth_block_in_row_major_order(height, width, window_size):
    batch, channels = 2, 3
    features = torch.randn(batch, height, width, channels)
    windows = window_partition(features, window_size)
    rows, cols = height // window_size, width // window_size
    assert windows.shape == (batch * rows * cols, window_size, window_size, channels)
    for b, r, c in itertools.product(range(batch), range(rows), range(cols)):
        block = features[b, r * window_size : (r + 1) * window_size, c * window_size : (c + 1) * window_size]
        assert torch.equal(windows[(b * rows + r) * cols + c], block)


@pytest.mark.parametrize(("height", "width", "window_size"), [(8, 8, 4), (8, 12, 4), (6, 4, 2)])
def test_window_reverse_undoes_window_partition(height, width, window_size):
    features = torch.randn(3, height, width, 5)
    windows = window_partition(features, window_size)
    assert torch.equal(window_reverse(windows, window_size, height, width), features)
    other = torch.randn_like(windows)  # and the other way round
    assert torch.equal(window_partition(window_reverse(other, window_size, height, width), window_size), other)


# ---------------------------------------------------------------------------------------------------------------
# The shifted-window mask, by its meaning


def shifted_window_of_each_position(length: int, window_size: int, shift_size: int) -> list[int]:
    """Along one axis of the ORIGINAL map: which window of the shifted partition each position is in.

    The shifted windows are the regular ones moved by `shift_size`: they start at shift, shift + M, shift + 2M, ...,
    plus the clipped window [0, shift) when shift > 0; the last one is clipped at the border.
    """
    starts = sorted({0, *range(shift_size, length, window_size)})
    return [sum(start <= position for start in starts) - 1 for position in range(length)]


def brute_force_allowed(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    """[num_windows, M*M, M*M] bool: may query a and key b of each rolled window attend to each other?

    Follows every token through the cyclic shift (torch.roll by -shift of a map of original positions) and the
    regular partition (plain slicing), and allows a pair exactly when its two ORIGINAL positions share a
    shifted window.
    """
    window_rows = shifted_window_of_each_position(height, window_size, shift_size)
    window_cols = shifted_window_of_each_position(width, window_size, shift_size)
    original = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"), dim=-1)
    rolled = torch.roll(original, shifts=(-shift_size, -shift_size), dims=(0, 1))  # [H, W, 2]: where each came from
    allowed = []
    for r, c in itertools.product(range(height // window_size), range(width // window_size)):
        block = rolled[r * window_size : (r + 1) * window_size, c * window_size : (c + 1) * window_size]
        positions = [tuple(p) for p in block.reshape(-1, 2).tolist()]  # row-major inside the window
        allowed.append(
            [
                [window_rows[y1] == window_rows[y2] and window_cols[x1] == window_cols[x2] for (y2, x2) in positions]
                for (y1, x1) in positions
            ]
        )
    return torch.tensor(allowed)


@pytest.mark.parametrize(("height", "width", "window_size", "shift_size"), GRIDS)
def test_mask_allows_exactly_the_pairs_that_share_a_shifted_window(height, width, window_size, shift_size):
    mask = shifted_window_attention_mask(height, width, window_size, shift_size)
    num_windows = (height // window_size) * (width // window_size)
    assert mask.shape == (num_windows, window_size**2, window_size**2)
    assert mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, MASKED_LOGIT}
    assert torch.equal(mask == 0, brute_force_allowed(height, width, window_size, shift_size))


@pytest.mark.parametrize(("height", "width", "window_size", "shift_size"), GRIDS)
def test_every_shifted_window_lands_whole_in_one_rolled_window(height, width, window_size, shift_size):
    # the other half of "SW-MSA computes the shifted windows' attention": no pair that shares a shifted window is
    # split over two rolled windows, so the mask never needs to allow a pair it cannot see
    window_rows = shifted_window_of_each_position(height, window_size, shift_size)
    window_cols = shifted_window_of_each_position(width, window_size, shift_size)
    rolled_row = [((y - shift_size) % height) // window_size for y in range(height)]  # torch.roll(-s): y -> y - s
    rolled_col = [((x - shift_size) % width) // window_size for x in range(width)]
    for y1, y2 in itertools.product(range(height), repeat=2):
        if window_rows[y1] == window_rows[y2]:
            assert rolled_row[y1] == rolled_row[y2]
    for x1, x2 in itertools.product(range(width), repeat=2):
        if window_cols[x1] == window_cols[x2]:
            assert rolled_col[x1] == rolled_col[x2]


def test_eight_by_eight_with_window_four_has_nine_shifted_windows_in_four_rolled_windows():
    # the paper's example (Figure 4): 2x2 regular windows become 3x3 shifted ones, computed in 2x2 rolled windows
    assert len(set(shifted_window_of_each_position(8, 4, 2))) == 3
    mask = shifted_window_attention_mask(8, 8, 4, 2)
    allowed_per_query = (mask == 0).sum(dim=-1)  # [4, 16]: size of each query's shifted window
    assert allowed_per_query[0].tolist() == [16] * 16  # the top-left rolled window is one whole shifted window
    assert sorted(set(allowed_per_query[1].tolist())) == [8]  # two 4x2 pieces
    assert sorted(set(allowed_per_query[2].tolist())) == [8]  # two 2x4 pieces
    assert sorted(set(allowed_per_query[3].tolist())) == [4]  # four 2x2 pieces (the corners that wrapped around)


@pytest.mark.parametrize(("height", "width", "window_size"), [(8, 8, 4), (8, 12, 4), (4, 6, 2)])
def test_no_shift_needs_no_mask(height, width, window_size):
    mask = shifted_window_attention_mask(height, width, window_size, 0)
    assert mask.shape == ((height // window_size) * (width // window_size), window_size**2, window_size**2)
    assert torch.equal(mask, torch.zeros_like(mask))


def test_interior_windows_are_not_masked():
    mask = shifted_window_attention_mask(16, 12, 4, 2)  # 4 x 3 rolled windows
    masked_windows = {w for w in range(12) if (mask[w] != 0).any()}
    last_row, last_col = set(range(9, 12)), {2, 5, 8, 11}
    assert masked_windows == last_row | last_col


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mask_dtype_and_device_follow_the_arguments(dtype, device):
    mask = shifted_window_attention_mask(8, 8, 4, 2, dtype=dtype, device=torch.device(device))
    assert mask.dtype == dtype and mask.device.type == device
    if device == "cpu":
        reference = shifted_window_attention_mask(8, 8, 4, 2)
        assert torch.equal(mask.float(), reference)  # -100 is exact in half precision
        assert torch.isfinite(mask).all()


@pytest.mark.parametrize(("height", "width", "window_size", "shift_size"), GRIDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_equals_transformers_swin(height, width, window_size, shift_size, dtype):
    config = SwinConfig(embed_dim=8, depths=[2], num_heads=[2], window_size=window_size)
    layer = SwinLayer(config, dim=8, input_resolution=(height, width), num_heads=2, shift_size=shift_size)
    expected = layer.get_attn_mask(height, width, dtype=dtype, device=torch.device("cpu"))
    actual = shifted_window_attention_mask(height, width, window_size, shift_size, dtype=dtype)
    assert actual.dtype == expected.dtype
    assert torch.equal(actual, expected)


# ---------------------------------------------------------------------------------------------------------------
# Relative position index


def offsets_of_window(window_size: int) -> list[tuple[int, int]]:
    return list(itertools.product(range(window_size), range(window_size)))  # (y, x), row-major


@pytest.mark.parametrize("window_size", [1, 2, 3, 4, 7])
def test_relative_position_index_structure(window_size):
    m = window_size
    index = relative_position_index(m)
    table_rows = (2 * m - 1) ** 2
    centre = (m - 1) * (2 * m - 1) + (m - 1)  # offset (0, 0)
    assert index.shape == (m * m, m * m) and index.dtype == torch.long
    assert index.min() >= 0 and index.max() < table_rows
    assert torch.equal(index.diagonal(), torch.full((m * m,), centre))
    assert torch.equal(index + index.T, torch.full_like(index, 2 * centre))  # offset (dy, dx) vs (-dy, -dx)
    assert len(index.unique()) == table_rows  # a window of side m shows every offset at least once


@pytest.mark.parametrize("window_size", [2, 3, 4])
def test_equal_offsets_get_equal_indices_and_different_offsets_different_ones(window_size):
    m = window_size
    index = relative_position_index(m)
    positions = offsets_of_window(m)
    row_of_offset = {}
    for (i, (y1, x1)), (j, (y2, x2)) in itertools.product(enumerate(positions), repeat=2):
        offset = (y1 - y2, x1 - x2)
        row = int(index[i, j])
        assert row_of_offset.setdefault(offset, row) == row  # the same offset always reads the same row
        assert row == (offset[0] + m - 1) * (2 * m - 1) + (offset[1] + m - 1)  # the paper's numbering
    assert len(set(row_of_offset.values())) == len(row_of_offset)  # and different offsets different rows


@pytest.mark.parametrize(("window_size", "table_window_size"), [(1, 4), (2, 4), (3, 4), (2, 7), (4, 4)])
def test_smaller_window_reads_its_offsets_rows_of_the_larger_table(window_size, table_window_size):
    m, big = window_size, table_window_size
    small = relative_position_index(m, big)
    full = relative_position_index(big)
    # the m x m window placed anywhere inside the big window sees the same offsets, so the same table rows
    for top, left in [(0, 0), (big - m, big - m), ((big - m) // 2, big - m)]:
        inside = torch.tensor([(y + top) * big + (x + left) for y, x in offsets_of_window(m)])
        assert torch.equal(small, full[inside][:, inside])
    for (i, (y1, x1)), (j, (y2, x2)) in itertools.product(enumerate(offsets_of_window(m)), repeat=2):
        assert small[i, j] == (y1 - y2 + big - 1) * (2 * big - 1) + (x1 - x2 + big - 1)


@pytest.mark.parametrize("window_size", [2, 4, 7])
def test_relative_position_index_equals_transformers_swin(window_size):
    expected = SwinRelativePositionBias(num_heads=2, window_size=(window_size, window_size)).relative_position_index
    assert torch.equal(relative_position_index(window_size).flatten(), expected)


# ---------------------------------------------------------------------------------------------------------------
# Pictures and the `swin-windows` command


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(("height", "width", "window_size", "shift_size"), [(8, 8, 4, 2), (8, 12, 4, 2), (4, 4, 2, 0)])
def test_plot_shifted_windows_writes_a_png(tmp_path, height, width, window_size, shift_size):
    path = plot_shifted_windows(height, width, window_size, shift_size, tmp_path / "windows.png")
    assert path == tmp_path / "windows.png"
    assert_png(path)


@pytest.mark.parametrize("window_size", [2, 7])
def test_plot_relative_position_index_writes_a_png(tmp_path, window_size):
    assert_png(plot_relative_position_index(window_size, str(tmp_path / "index.png")))


def test_write_swin_pictures_writes_both_files_and_leaves_no_staging(tmp_path):
    out_dir = tmp_path / "deep" / "pictures"
    written = write_swin_pictures(out_dir, height=8, width=12)
    assert written == [out_dir / name for name in PICTURE_FILES]
    for path in written:
        assert_png(path)
    assert sorted(path.name for path in out_dir.parent.iterdir()) == ["pictures"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_size": 16}, "`window_size`"),
        ({"shift_size": 4}, "`shift_size`"),
        ({"shift_size": -1}, "`shift_size`"),
        ({"height": 0}, "`height`"),
        ({"width": 10}, "`width`"),
        ({"window_size": 0}, "`window_size`"),
        ({"height": 8.0}, "`height`"),
    ],
)
def test_pictures_reject_bad_arguments_naming_the_argument(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_swin_pictures(tmp_path / "pictures", **kwargs)
    with pytest.raises(ValueError, match=message):
        plot_shifted_windows(
            **{"height": 8, "width": 8, "window_size": 4, "shift_size": 2, **kwargs}, path=tmp_path / "windows.png"
        )
    assert list(tmp_path.iterdir()) == []


def test_plot_relative_position_index_rejects_a_bad_window(tmp_path):
    with pytest.raises(ValueError, match="`window_size`"):
        plot_relative_position_index(0, tmp_path / "index.png")


def test_pictures_say_how_to_install_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install matplotlib"):
        write_swin_pictures(tmp_path / "pictures")
    assert list(tmp_path.iterdir()) == []


def test_cli_swin_windows_writes_both_pictures(tmp_path, capsys):
    out_dir = tmp_path / "pictures"
    argv = ["swin-windows", "--out", str(out_dir), "--height", "8", "--width", "12", "--window", "4", "--shift", "2"]
    assert main(argv) == 0
    for name in PICTURE_FILES:
        assert_png(out_dir / name)
    assert capsys.readouterr().out.split() == [str(out_dir / name) for name in PICTURE_FILES]
    assert [path.name for path in tmp_path.iterdir()] == ["pictures"]  # no staging left


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--shift", "4"], "`shift_size`"),
        (["--window", "16"], "`window_size`"),
        (["--height", "10"], "`height`"),
        (["--width", "0"], "`width`"),
    ],
)
def test_cli_swin_windows_reports_bad_arguments_without_creating_output(tmp_path, capsys, options, message):
    out_dir = tmp_path / "pictures"
    assert main(["swin-windows", "--out", str(out_dir), *options]) == 1
    error = capsys.readouterr().err
    assert "hf-visiontx swin-windows: error:" in error and message in error
    assert len(error.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
