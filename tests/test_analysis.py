"""What the model learned (ViT paper, Figure 7 and Appendix D.7/D.8): attention distance, rollout, position
embedding similarity, their plots and the `analyze` command.

The analyses are checked on hand-built attention maps and embeddings whose answer is known, then end to end on
tiny random transformers ViT models.
"""

import itertools
import math
import sys

import pytest
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification, ViTModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import VtxViTConfig, VtxViTForImageClassification, analysis
from hf_visiontx.apps.cli import main
from hf_visiontx.modeling.configuration_vit import bit_backbone_config
from support.vit_tester import TINY_SIZES as TINY_VIT_SIZES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOT_FILES = ("mean_attention_distance.png", "attention_rollout.png", "position_embedding_similarity.png")


# ---------------------------------------------------------------------------------------------------------------
# Hand-built attention maps over a (rows, cols) grid, patches in row-major order


def pointing_attention(rows: int, cols: int, target) -> torch.Tensor:
    """[N, N] patch attention where patch (r, c) puts all its weight on patch target(r, c)."""
    attention = torch.zeros(rows * cols, rows * cols)
    for r, c in itertools.product(range(rows), range(cols)):
        tr, tc = target(r, c, rows, cols)
        attention[r * cols + c, tr * cols + tc] = 1.0
    return attention


def itself(r, c, rows, cols):
    return r, c


def horizontal_neighbour(r, c, rows, cols):  # right-hand neighbour; the last column looks left instead
    return r, c + 1 if c + 1 < cols else c - 1


def diagonal_neighbour(r, c, rows, cols):  # one patch down-right, or up/left at the edges: sqrt(2) patches away
    return (r + 1 if r + 1 < rows else r - 1), (c + 1 if c + 1 < cols else c - 1)


def uniform(rows: int, cols: int) -> torch.Tensor:
    return torch.full((rows * cols, rows * cols), 1.0 / (rows * cols))


def with_prefix(patch_attention: torch.Tensor, num_prefix_tokens: int = 1, prefix_weight: float = 0.0) -> torch.Tensor:
    """[..., N, N] patch attention -> [..., T, T]: prefix queries attend uniformly, patches give each prefix
    token `prefix_weight`."""
    *batch, n, _ = patch_attention.shape
    total = num_prefix_tokens + n
    attention = torch.full((*batch, total, total), prefix_weight)
    attention[..., :num_prefix_tokens, :] = 1.0 / total
    attention[..., num_prefix_tokens:, num_prefix_tokens:] = patch_attention
    return attention


def brute_force_mean_pairwise_distance(rows: int, cols: int, patch_size: float) -> float:
    points = list(itertools.product(range(rows), range(cols)))
    return sum(patch_size * math.dist(p, q) for p, q in itertools.product(points, points)) / len(points) ** 2


# ---------------------------------------------------------------------------------------------------------------
# Mean attention distance


def test_attention_on_itself_has_distance_zero():
    layer = with_prefix(pointing_attention(4, 4, itself).expand(2, 3, 16, 16))  # [batch 2, heads 3, 17, 17]
    distances = analysis.mean_attention_distance_from_attentions([layer, layer], (4, 4), patch_size=16)
    assert distances.shape == (2, 3)
    assert torch.equal(distances, torch.zeros(2, 3))


def test_uniform_attention_gives_the_mean_pairwise_distance_of_the_grid():
    layer = with_prefix(uniform(4, 4).expand(1, 2, 16, 16))
    distances = analysis.mean_attention_distance_from_attentions([layer], 4, patch_size=16)
    expected = brute_force_mean_pairwise_distance(4, 4, 16)
    torch.testing.assert_close(distances, torch.full((1, 2), expected))


def test_neighbour_attention_gives_exactly_one_patch_on_a_non_square_grid():
    # 3 rows x 5 columns: swapping rows and columns would put index r*cols+c elsewhere and change the distances
    layer = with_prefix(pointing_attention(3, 5, horizontal_neighbour)[None, None])
    distances = analysis.mean_attention_distance_from_attentions([layer], (3, 5), patch_size=8)
    torch.testing.assert_close(distances, torch.tensor([[8.0]]))


def test_each_head_gets_its_own_distance():
    rows = cols = 4
    patterns = torch.stack(
        [
            pointing_attention(rows, cols, itself),
            pointing_attention(rows, cols, horizontal_neighbour),
            pointing_attention(rows, cols, diagonal_neighbour),
            uniform(rows, cols),
        ]
    )  # [heads 4, N, N]
    expected = torch.tensor([0.0, 16.0, 16.0 * math.sqrt(2), brute_force_mean_pairwise_distance(rows, cols, 16)])
    layers = [with_prefix(patterns[None]), with_prefix(patterns.flip(0)[None])]  # layer 2 has the heads reversed
    distances = analysis.mean_attention_distance_from_attentions(layers, (rows, cols), patch_size=16)
    torch.testing.assert_close(distances, torch.stack([expected, expected.flip(0)]))


def test_distances_are_averaged_over_images():
    images = torch.stack([pointing_attention(2, 3, itself), pointing_attention(2, 3, horizontal_neighbour)])
    distances = analysis.mean_attention_distance_from_attentions([with_prefix(images[:, None])], (2, 3), patch_size=10)
    torch.testing.assert_close(distances, torch.tensor([[5.0]]))  # (0 + 10) / 2


def test_prefix_tokens_are_ignored_as_queries_and_keys():
    torch.manual_seed(0)
    patch_attention = torch.randn(2, 3, 9, 9).softmax(dim=-1)  # [batch, heads, N, N], rows sum to 1
    plain = analysis.mean_attention_distance_from_attentions([with_prefix(patch_attention)], 3, patch_size=4)

    heavy = with_prefix(patch_attention * 0.01, prefix_weight=50.0)  # almost all weight on [CLS]
    heavy[..., 0, :] = 0.0
    heavy[..., 0, -1] = 1.0  # the [CLS] query looks at the far corner only
    torch.testing.assert_close(analysis.mean_attention_distance_from_attentions([heavy], 3, patch_size=4), plain)

    two_prefix = with_prefix(patch_attention, num_prefix_tokens=2, prefix_weight=3.0)  # e.g. [CLS] + distillation
    actual = analysis.mean_attention_distance_from_attentions([two_prefix], 3, patch_size=4, num_prefix_tokens=2)
    torch.testing.assert_close(actual, plain)


@pytest.mark.parametrize(
    ("attentions", "grid_size", "message"),
    [
        ([], 4, "`attentions`"),
        ([torch.rand(2, 17, 17)], 4, r"`attentions\[0\]`"),
        ([torch.rand(1, 2, 17, 17), torch.rand(1, 2, 17, 16)], 4, r"`attentions\[1\]`"),
        ([torch.rand(1, 2, 17, 17)], 3, "`grid_size`"),
        ([torch.rand(1, 2, 17, 17)], (4, 0), "`grid_size`"),
    ],
    ids=["empty", "3d", "not-square", "wrong-grid", "zero-grid"],
)
def test_distance_rejects_bad_input_naming_the_argument(attentions, grid_size, message):
    with pytest.raises(ValueError, match=message):
        analysis.mean_attention_distance_from_attentions(attentions, grid_size, patch_size=16)


# ---------------------------------------------------------------------------------------------------------------
# Attention rollout


def test_identity_attention_keeps_cls_on_itself():
    # fused I, plus the residual I, renormalised: I again; the product of identities is I, so [CLS] draws nothing
    # from the patches
    identity = torch.eye(17).expand(2, 4, 17, 17)
    rollout = analysis.attention_rollout([identity] * 3)
    assert rollout.shape == (2, 16)
    assert torch.equal(rollout, torch.zeros(2, 16))


def test_uniform_attention_rolls_out_to_a_known_uniform_share():
    # each layer becomes M = (U + I) / 2 with U = 1/T everywhere; U @ U = U, so M^L = (I + (2^L - 1) U) / 2^L and
    # [CLS] gets (2^L - 1) / (2^L T) from every patch
    num_layers, num_tokens = 3, 17
    layer = torch.full((1, 2, num_tokens, num_tokens), 1.0 / num_tokens)
    rollout = analysis.attention_rollout([layer] * num_layers)
    expected = (2**num_layers - 1) / (2**num_layers * num_tokens)
    torch.testing.assert_close(rollout, torch.full((1, 16), expected))


def test_rollout_peaks_where_cls_sends_its_attention():
    torch.manual_seed(0)
    rows, cols, targets = 3, 4, [5, 10]  # one target patch per image; patch 5 is (1, 1), patch 10 is (2, 2)
    layers = []
    for _ in range(2):
        layer = torch.randn(2, 3, 13, 13).softmax(dim=-1)  # [batch, heads, T, T]
        layer[:, :, 0, :] = 0.0
        for image, target in enumerate(targets):
            layer[image, :, 0, 1 + target] = 1.0  # every head of [CLS] looks at the target patch only
        layers.append(layer)
    rollout_map = analysis.attention_rollout_map(layers, (rows, cols))
    assert rollout_map.shape == (2, rows, cols)
    peaks = [divmod(int(image_map.argmax()), cols) for image_map in rollout_map]
    assert peaks == [(1, 1), (2, 2)]


def test_rollout_follows_attention_through_the_layers_in_order():
    # layer 1: patch token 1 gathers from patch token 3; layer 2: [CLS] reads patch token 1. So [CLS] draws from
    # patch 3 through patch 1: R[0] = A2'[0] A1' = (e0 + e1) / 2 A1' = e0 / 2 + e1 / 4 + e3 / 4
    first, second = torch.eye(5)[None, None].clone(), torch.eye(5)[None, None].clone()
    first[0, 0, 1] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    second[0, 0, 0] = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])
    rollout = analysis.attention_rollout([first, second])
    torch.testing.assert_close(rollout, torch.tensor([[0.25, 0.0, 0.25, 0.0]]))


@pytest.mark.parametrize(("head_fusion", "expected"), [("mean", 0.25), ("max", 1 / 3), ("min", 0.0)])
def test_head_fusion(head_fusion, expected):
    # head 0 keeps [CLS] on itself, head 1 sends it to patch 2. mean: CLS row 0.5 e0 + 0.5 e3, plus I, halved ->
    # 0.25 on the patch; max: e0 + e3, plus I -> (2 e0 + e3) / 3; min: nothing, plus I -> e0
    layer = torch.eye(5).repeat(1, 2, 1, 1)  # [1, heads 2, T 5, T 5]
    layer[0, 1, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    rollout = analysis.attention_rollout([layer], head_fusion=head_fusion)
    torch.testing.assert_close(rollout, torch.tensor([[0.0, 0.0, expected, 0.0]]))


def test_discard_ratio_zeroes_the_weakest_weights():
    layer = torch.eye(5)[None, None].clone()  # one head, T = 1 + 2x2
    layer[0, 0, 0] = torch.tensor([0.0, 0.7, 0.2, 0.05, 0.05])
    kept = analysis.attention_rollout([layer])
    torch.testing.assert_close(kept, torch.tensor([[0.35, 0.1, 0.025, 0.025]]))
    # 25 weights: 17 zeros and the two 0.05 are the 19 smallest; the [CLS] row becomes (e0 + [0, .7, .2, 0, 0]) / 1.9
    sharpened = analysis.attention_rollout([layer], discard_ratio=0.77)
    torch.testing.assert_close(sharpened, torch.tensor([[0.7 / 1.9, 0.2 / 1.9, 0.0, 0.0]]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head_fusion": "median"}, "`head_fusion`"),
        ({"discard_ratio": 1.0}, "`discard_ratio`"),
        ({"num_prefix_tokens": 0}, "`num_prefix_tokens`"),
    ],
)
def test_rollout_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        analysis.attention_rollout([torch.eye(5)[None, None]], **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Position-embedding similarity


def row_column_embeddings(rows: int, cols: int, num_prefix_tokens: int = 1, seed: int = 0) -> torch.Tensor:
    """[1, P + rows*cols, rows + cols]: patch (r, c) is scale * (onehot(r), onehot(c)), scale random and positive.

    Cosine similarity is then ([r == r'] + [c == c']) / 2: 1 for itself, 1/2 in the same row or column, 0 else.
    """
    generator = torch.Generator().manual_seed(seed)
    row_part = torch.eye(rows).repeat_interleave(cols, dim=0)  # [N, rows]: row of each patch
    col_part = torch.eye(cols).repeat(rows, 1)  # [N, cols]: column of each patch
    patches = torch.cat([row_part, col_part], dim=-1) * (0.1 + torch.rand(rows * cols, 1, generator=generator) * 5)
    prefix = torch.randn(num_prefix_tokens, rows + cols, generator=generator) * 10
    return torch.cat([prefix, patches])[None]


def expected_row_column_similarity(rows: int, cols: int) -> torch.Tensor:
    expected = torch.empty(rows, cols, rows, cols)
    for r, c, r2, c2 in itertools.product(range(rows), range(cols), range(rows), range(cols)):
        expected[r, c, r2, c2] = ((r == r2) + (c == c2)) / 2
    return expected


def test_similarity_of_random_embeddings_is_one_on_the_diagonal_and_symmetric():
    embeddings = torch.randn(1, 1 + 12, 8, generator=torch.Generator().manual_seed(0))
    similarity = analysis.position_embedding_similarity_from_embeddings(embeddings, (3, 4), num_prefix_tokens=1)
    assert similarity.shape == (3, 4, 3, 4)
    flat = similarity.reshape(12, 12)
    torch.testing.assert_close(flat.diagonal(), torch.ones(12))
    torch.testing.assert_close(flat, flat.T)
    assert flat.abs().max() <= 1 + 1e-6


def test_similarity_of_constructed_embeddings_is_known():
    similarity = analysis.position_embedding_similarity_from_embeddings(
        row_column_embeddings(2, 3), (2, 3), num_prefix_tokens=1
    )
    torch.testing.assert_close(similarity, expected_row_column_similarity(2, 3))


def test_similarity_reads_the_model_position_embeddings_through_a_head():
    model = ViTForImageClassification(tiny_vit_config())  # 8x8 patches
    embeddings = torch.nn.functional.pad(row_column_embeddings(8, 8), (0, 32 - 16))  # [1, 65, 32], zeros after 16
    with torch.no_grad():
        model.vit.embeddings.position_embeddings.copy_(embeddings)
    torch.testing.assert_close(analysis.position_embedding_similarity(model), expected_row_column_similarity(8, 8))


# ---------------------------------------------------------------------------------------------------------------
# On a real (tiny, random) ViT


TINY_VIT = TINY_VIT_SIZES | {"num_labels": 3}  # an 8x8 patch grid


def tiny_vit_config() -> ViTConfig:
    return ViTConfig(**TINY_VIT)


def tiny_vit(model_class=ViTModel, attn_implementation: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    model = model_class(tiny_vit_config())
    model.set_attn_implementation(attn_implementation)
    return model


@pytest.mark.parametrize(
    ("model_class", "attn_implementation"),
    [(ViTModel, "sdpa"), (ViTModel, "eager"), (ViTForImageClassification, "sdpa")],
)
def test_mean_attention_distance_of_a_tiny_vit(model_class, attn_implementation):
    model = tiny_vit(model_class, attn_implementation)
    model.train()
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    distances = analysis.mean_attention_distance(model, pixel_values)

    assert distances.shape == (2, 4)
    assert torch.isfinite(distances).all()
    assert (distances >= 0).all() and (distances <= 4 * 7 * math.sqrt(2)).all()  # corners of the 8x8 grid
    assert model.config._attn_implementation == attn_implementation
    assert model.training  # put back as it was
    model.eval()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(pixel_values=pixel_values, output_attentions=True).attentions
    torch.testing.assert_close(distances, analysis.mean_attention_distance_from_attentions(attentions, 8, patch_size=4))


def test_mean_attention_distance_with_interpolated_positions_on_a_non_square_image():
    model = tiny_vit()
    pixel_values = torch.randn(1, 3, 40, 48)  # a 10x12 grid
    distances = analysis.mean_attention_distance(model, pixel_values, interpolate_pos_encoding=True)
    assert distances.shape == (2, 4) and torch.isfinite(distances).all()
    assert (distances <= 4 * math.hypot(9, 11)).all()


@pytest.mark.parametrize("hybrid", [False, True], ids=["vit", "hybrid"])
def test_mean_attention_distance_of_our_vit(hybrid):
    # the hybrid's tokens come from an 8-pixel-stride feature map: a 4x4 grid whose centres are 8 pixels apart
    backbone = {"patch_size": 1, "backbone_config": bit_backbone_config(depths=(1, 1), width=8, num_groups=2)}
    torch.manual_seed(0)
    model = VtxViTForImageClassification(VtxViTConfig(**TINY_VIT | (backbone if hybrid else {})))
    grid, stride = (4, 8) if hybrid else (8, 4)
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    implementation = model.config._attn_implementation

    distances = analysis.mean_attention_distance(model, pixel_values)
    assert model.config._attn_implementation == implementation
    assert analysis.position_embedding_similarity(model).shape == (grid, grid, grid, grid)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(pixel_values=pixel_values, output_attentions=True).attentions
    torch.testing.assert_close(distances, analysis.mean_attention_distance_from_attentions(attentions, grid, stride))


def test_attention_implementation_is_restored_when_the_model_fails():
    model = tiny_vit()
    with pytest.raises(ValueError):
        analysis.mean_attention_distance(model, torch.randn(1, 3, 40, 40))  # wrong size and no interpolation
    assert model.config._attn_implementation == "sdpa"


# ---------------------------------------------------------------------------------------------------------------
# Plots


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("image_kind", ["pil", "tensor"])
def test_plot_attention_rollout_writes_a_png(tmp_path, image_kind):
    image = Image.new("RGB", (40, 30), (200, 120, 40)) if image_kind == "pil" else torch.randn(3, 30, 40)
    rollout_map = torch.rand(3, 4)
    assert_png(analysis.plot_attention_rollout(image, rollout_map, tmp_path / "rollout.png"))


def test_plot_mean_attention_distance_writes_a_png(tmp_path):
    assert_png(analysis.plot_mean_attention_distance(torch.rand(12, 12) * 100, tmp_path / "distance.png"))


def test_plot_position_embedding_similarity_writes_a_png(tmp_path):
    similarity = expected_row_column_similarity(5, 5)
    assert_png(analysis.plot_position_embedding_similarity(similarity, tmp_path / "similarity.png"))


def test_plots_say_how_to_install_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install matplotlib"):
        analysis.plot_mean_attention_distance(torch.rand(2, 4), tmp_path / "distance.png")
    assert not (tmp_path / "distance.png").exists()


# ---------------------------------------------------------------------------------------------------------------
# The `analyze` command


@pytest.fixture
def saved_vit(tmp_path):
    model_dir = tmp_path / "vit"
    tiny_vit(ViTForImageClassification).save_pretrained(model_dir)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(model_dir)
    return model_dir


def test_cli_analyze_writes_three_plots(saved_vit, tmp_path, capsys):
    image_path = tmp_path / "photo.png"
    pixels = torch.randint(0, 256, (30, 45, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    Image.fromarray(pixels.numpy()).save(image_path)
    out_dir = tmp_path / "plots"

    assert main(["analyze", str(saved_vit), str(image_path), "--out", str(out_dir)]) == 0

    for name in PLOT_FILES:
        assert_png(out_dir / name)
    assert capsys.readouterr().out.split() == [str(out_dir / name) for name in PLOT_FILES]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photo.png", "plots", "vit"]  # no staging left


@pytest.mark.parametrize("problem", ["missing", "not-an-image"])
def test_cli_analyze_reports_a_bad_image_without_creating_output(saved_vit, tmp_path, capsys, problem):
    image_path = tmp_path / "photo.png"
    if problem == "not-an-image":
        image_path.write_bytes(b"this is not a PNG file")
    out_dir = tmp_path / "plots"

    assert main(["analyze", str(saved_vit), str(image_path), "--out", str(out_dir)]) == 1

    error = capsys.readouterr().err
    assert "hf-visiontx analyze: error:" in error and str(image_path) in error
    assert not out_dir.exists()
