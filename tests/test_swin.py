"""The Swin Transformer: paper sizes, stages, any image size, heads, backbone, processor and errors."""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
    SwinConfig,
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    SwinModel,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import (
    VtxSwinBackbone,
    VtxSwinConfig,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
)
from hf_visiontx.apps.cli import main
from hf_visiontx.convert import from_transformers
from hf_visiontx.modeling.modeling_swin import relative_position_index, shifted_window_attention_mask
from support.memory import bytes_held_after, mlp_inner_bytes
from support.model_tester_mixin import ModelTesterMixin
from support.swin_tester import NUM_LABELS, TINY_SIZES, tiny_swin_config
from support.vit_tester import masked_positions, pixel_batch


def tiny(model_class=VtxSwinForImageClassification, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return model_class(tiny_swin_config(**overrides)).eval()


class TestSwinCommon(ModelTesterMixin):
    """The shared checks on a tiny two-stage Swin (W-MSA and SW-MSA blocks, patch merging, drop path)."""

    model_classes = (VtxSwinModel, VtxSwinForMaskedImageModeling, VtxSwinBackbone, VtxSwinForImageClassification)
    auto_classes = {
        VtxSwinModel: AutoModel,
        VtxSwinForImageClassification: AutoModelForImageClassification,
        VtxSwinForMaskedImageModeling: AutoModelForMaskedImageModeling,
    }  # AutoBackbone: see test_backbone_returns_nchw_maps_at_strides_4_8_16_32

    def make_config(self, **overrides):
        return tiny_swin_config(**overrides)

    def make_inputs(self, config, model_class):
        inputs = {"pixel_values": pixel_batch()}
        if model_class is VtxSwinForImageClassification:
            inputs["labels"] = torch.tensor([0, 3, NUM_LABELS - 1])
        if model_class is VtxSwinForMaskedImageModeling:
            inputs["bool_masked_pos"] = masked_positions(3, 16 * 16)
        return inputs


class TestSwinAbsolutePositionsCommon(TestSwinCommon):
    """The same checks with absolute position embeddings and a backbone returning every stage."""

    def make_config(self, **overrides):
        return tiny_swin_config(use_absolute_embeddings=True, out_features=["stem", "stage1", "stage2"], **overrides)


# --- sizes and config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "paper_count"), [("tiny", 28e6), ("small", 50e6), ("base", 88e6), ("large", 197e6)])
def test_presets_match_the_paper_parameter_counts(preset, paper_count):
    with torch.device("meta"):
        model = VtxSwinForImageClassification(VtxSwinConfig.from_preset(preset, num_labels=1000))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - paper_count) / paper_count <= 0.02, f"{preset}: {count / 1e6:.1f}M"


def test_presets_pick_the_window_for_the_resolution():
    assert VtxSwinConfig.from_preset("tiny").window_size == 7
    assert VtxSwinConfig.from_preset("base", image_size=384).window_size == 12
    assert VtxSwinConfig.from_preset("base", image_size=384, window_size=6).window_size == 6
    large = VtxSwinConfig.from_preset("large")
    assert (large.embed_dim, large.depths, large.num_heads, large.hidden_size) == (
        192,
        [2, 2, 18, 2],
        [6, 12, 24, 48],
        1536,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_size": 20}, r"`window_size` \(20\) must not exceed the patch grid of `image_size` \(16 patches"),
        ({"num_heads": (3, 4)}, r"`num_heads\[0\]` \(3\) must divide the width of stage 1 \(embed_dim \* 2\^0 = 16\)"),
        ({"num_heads": (2,)}, "`num_heads` needs one entry per stage"),
        ({"depths": (2, 0)}, "`depths` must be a non-empty list of positive block counts"),
        ({"drop_path_rate": 1.0}, r"`drop_path_rate` must be in \[0, 1\)"),
    ],
)
def test_invalid_configs_fail_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_swin_config(**overrides)


# --- mechanics -----------------------------------------------------------------------------------------------


def test_stages_halve_the_resolution_and_double_the_channels():
    model = tiny(VtxSwinModel, depths=(2, 2, 2), num_heads=(2, 4, 8), image_size=64, encoder_stride=8)
    with torch.no_grad():
        out = model(pixel_batch(height=64, width=64), output_hidden_states=True)
    shapes = [tuple(m.shape) for m in out.reshaped_hidden_states]
    assert shapes == [(3, 16, 32, 32), (3, 32, 16, 16), (3, 64, 8, 8), (3, 64, 8, 8)]
    assert out.last_hidden_state.shape == (3, 64, 64) and out.pooler_output.shape == (3, 64)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))


def test_blocks_alternate_regular_and_shifted_windows_with_linear_drop_path():
    model = tiny(VtxSwinModel, drop_path_rate=0.3)
    blocks = [block for stage in model.stages for block in stage.blocks]
    assert [block.shift_size for block in blocks] == [0, 2, 0, 2]
    assert [round(block.drop_path.drop_prob, 6) for block in blocks] == [0.0, 0.1, 0.2, 0.3]


def test_patch_merging_concatenates_2x2_neighbours_in_the_reference_order():
    merging = tiny(VtxSwinModel).stages[0].downsample
    features = torch.zeros(2, 16, 16)  # a 4x4 grid of 16 channels
    features[..., 0] = torch.arange(32, dtype=torch.float32).reshape(2, 16)  # channel 0 numbers the positions
    captured = {}
    merging.norm.register_forward_hook(lambda module, args, out: captured.update(merged=args[0]))
    with torch.no_grad():
        _, grid = merging(features, (4, 4))
    assert grid == (2, 2)
    # first group of image 0: positions (0,0)=0, (1,0)=4, (0,1)=1, (1,1)=5
    assert captured["merged"][0, 0, ::16].tolist() == [0.0, 4.0, 1.0, 5.0]


def test_shift_masks_are_cached_per_size_dtype_and_device():
    block = next(block for block in tiny(VtxSwinModel).stages[0].blocks if block.shift_size)
    cpu = torch.device("cpu")
    first = block.shift_mask(8, 8, 4, 2, torch.float32, cpu)
    assert torch.equal(first, shifted_window_attention_mask(8, 8, 4, 2))
    assert block.shift_mask(8, 8, 4, 2, torch.float32, cpu) is first
    assert block.shift_mask(8, 8, 4, 2, torch.bfloat16, cpu).dtype == torch.bfloat16
    assert block.shift_mask(8, 8, 4, 0, torch.float32, cpu) is None


def test_a_stage_runs_its_blocks_then_its_patch_merging():
    """`VtxSwinStage.forward` gives what running its blocks and then its merging one by one gives."""
    model = tiny(VtxSwinModel, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0).eval()
    model.set_attn_implementation("eager")
    stage, grid = model.stages[0], (8, 8)
    hidden_states = torch.randn(2, 64, model.config.embed_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output, new_grid, before, attentions = stage(hidden_states, grid, output_attentions=True)
        expected, expected_attentions = hidden_states, []
        for block in stage.blocks:
            expected, weights = block(expected, grid, True)
            expected_attentions.append(weights)
        merged, merged_grid = stage.downsample(expected, grid)
    assert torch.equal(before, expected) and torch.equal(output, merged) and new_grid == merged_grid == (4, 4)
    assert len(attentions) == len(stage.blocks)
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(attentions, expected_attentions, strict=True))
    last = model.stages[-1]
    assert last.downsample is None
    with torch.no_grad():
        output, last_grid, before, _ = last(torch.randn(2, 4, last.blocks[0].attention.o_proj.in_features), (2, 2))
    assert output is before and last_grid == (2, 2)


def test_swin_blocks_are_named_blocks_and_keep_their_state_dict_keys():
    model = tiny(VtxSwinModel)
    assert type(model.stages[0].blocks[0]).__name__ == "VtxSwinBlock"
    assert "VtxSwinBlock" in model._no_split_modules
    assert "stages.0.blocks.1.attention.qkv_proj.weight" in model.state_dict()
    assert "stages.0.downsample.reduction.weight" in model.state_dict()


def test_a_map_no_larger_than_the_window_is_one_unshifted_window():
    model = tiny(VtxSwinModel)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(pixel_batch(batch=1, height=12, width=16), output_attentions=True)  # grids 6x8, then 3x4
    # stage 1: window 4 over a 6x8 map padded to 8x8 -> 4 windows of 16 tokens
    assert out.attentions[0].shape == (4, 2, 16, 16)
    # stage 2: the 3x4 map is no larger than the window: window min(3, 4) = 3, no shift, padded to 3x6 -> 2 windows
    assert out.attentions[2].shape == (2, 4, 9, 9) and out.attentions[3].shape == (2, 4, 9, 9)
    small_bias = model.stages[1].blocks[0].attention.relative_position_bias(3)
    table = model.stages[1].blocks[0].attention.relative_position_bias_table
    torch.testing.assert_close(small_bias[0].permute(1, 2, 0), table[relative_position_index(3, 4)])


def test_odd_and_non_multiple_sizes_work_in_every_head():
    for model_class in (VtxSwinModel, VtxSwinForImageClassification, VtxSwinForMaskedImageModeling):
        model = tiny(model_class)
        with torch.no_grad():
            out = model(pixel_batch(height=27, width=45))
        assert all(torch.isfinite(v).all() for v in out.values() if isinstance(v, torch.Tensor))


def test_eager_and_sdpa_agree_on_shifted_padded_windows():
    model = tiny(VtxSwinModel)
    pixels = pixel_batch(height=30, width=44)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(pixels).last_hidden_state
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        sdpa = model(pixels).last_hidden_state
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


# --- oracle --------------------------------------------------------------------------------------------------


def reference_swin(model_class, seed: int = 0):
    torch.manual_seed(seed)
    model = model_class(SwinConfig(**TINY_SIZES, num_labels=7)).eval()
    with torch.no_grad():  # the tables start at zero: give the relative position bias something to do
        for name, parameter in model.named_parameters():
            if "relative_position_bias_table" in name:
                parameter.normal_()
    return model


SWIN_PAIRS = [
    (SwinModel, VtxSwinModel, "last_hidden_state"),
    (SwinForImageClassification, VtxSwinForImageClassification, "logits"),
    (SwinForMaskedImageModeling, VtxSwinForMaskedImageModeling, "reconstruction"),
]


@pytest.mark.parametrize(
    ("reference_class", "our_class", "output"), SWIN_PAIRS, ids=[p[0].__name__ for p in SWIN_PAIRS]
)
@pytest.mark.parametrize("size", [(32, 32), (20, 20)], ids=["native", "not-a-window-multiple"])
def test_converted_swin_gives_the_same_outputs(reference_class, our_class, output, size):
    reference = reference_swin(reference_class)
    ours = from_transformers(reference)
    assert type(ours) is our_class
    pixels = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(pixels), ours(pixels)
    assert (actual[output] - expected[output]).abs().max() <= 1e-5


def test_converted_swin_matches_on_non_square_images():
    reference = reference_swin(SwinForImageClassification, seed=3)
    ours = from_transformers(reference)
    pixels = torch.randn(2, 3, 30, 44, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (ours(pixels).logits - reference(pixels).logits).abs().max() <= 1e-5


def test_a_training_forward_keeps_less_for_backward_than_transformers_swin():
    """Ours keeps for the backward pass what transformers' Swin keeps, but one inner activation per MLP where
    transformers' keeps two (GELU's input and fc2's input), and no copy of the image (ours pads it only when it must):
    at most transformers' bytes minus one inner activation per block, plus the per-sample stochastic-depth masks of
    the MLP branch (which transformers' Swin leaves out)."""
    reference = reference_swin(SwinForImageClassification).train()
    ours = from_transformers(reference).train()
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 3, 6])
    ours(pixels, labels=labels)  # builds the shift masks, which the model keeps between calls
    _, reference_bytes = bytes_held_after(lambda: reference(pixels, labels=labels).loss)
    _, our_bytes = bytes_held_after(lambda: ours(pixels, labels=labels).loss)
    inner_bytes = mlp_inner_bytes(ours, lambda: ours(pixels, labels=labels))
    assert inner_bytes > 0.1 * reference_bytes
    assert our_bytes <= reference_bytes - inner_bytes + 4 * sum(ours.config.depths) * len(pixels)


# --- heads, backbone, processor ------------------------------------------------------------------------------


def test_masked_image_modeling_scores_only_masked_pixels():
    model = tiny(VtxSwinForMaskedImageModeling)
    with torch.no_grad():
        model.swin.embeddings.mask_token.normal_()
    pixels = pixel_batch()
    mask = masked_positions(3, 256)
    with torch.no_grad():
        out = model(pixels, bool_masked_pos=mask)
    pixel_mask = mask.reshape(3, 1, 16, 16).repeat_interleave(2, 2).repeat_interleave(2, 3).float()
    expected = ((out.reconstruction - pixels).abs() * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ValueError, match=r"`bool_masked_pos` must have shape \(batch, num_patches\) = \(3, 256\)"):
        model(pixels, bool_masked_pos=mask[:, :100])


def test_backbone_returns_nchw_maps_at_strides_4_8_16_32(tmp_path):
    config = VtxSwinConfig.from_preset(
        "tiny",
        out_features=["stage1", "stage2", "stage3", "stage4"],
        embed_dim=16,
        num_heads=(1, 2, 4, 8),
        depths=(2, 2, 2, 2),
    )
    torch.manual_seed(0)
    backbone = VtxSwinBackbone(config).eval()
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 224, 224)).feature_maps
    assert [tuple(m.shape) for m in maps] == [(1, 16, 56, 56), (1, 32, 28, 28), (1, 64, 14, 14), (1, 128, 7, 7)]
    assert backbone.channels == [16, 32, 64, 128]
    backbone.save_pretrained(tmp_path)
    # transformers 5.24's AutoBackbone.from_pretrained asks the Hub whether a local directory is a repo (and
    # fails offline), so resolve the class through AutoBackbone.from_config and load the weights with it.
    resolved = type(AutoBackbone.from_config(AutoConfig.from_pretrained(tmp_path)))
    reloaded = resolved.from_pretrained(tmp_path, out_indices=[2, 4])
    assert resolved is VtxSwinBackbone and reloaded.out_features == ["stage2", "stage4"]
    assert torch.equal(
        reloaded.swin.stages[3].blocks[1].mlp.fc2.weight, backbone.swin.stages[3].blocks[1].mlp.fc2.weight
    )


@pytest.mark.parametrize(
    ("our_class", "reference_class"),
    [
        (VtxSwinForImageClassification, SwinForImageClassification),
        (VtxSwinForMaskedImageModeling, SwinForMaskedImageModeling),
    ],
)
def test_heads_return_the_fields_of_transformers_swin_heads(our_class, reference_class):
    """Both heads carry `reshaped_hidden_states` (the hidden states as NCHW maps), as transformers' Swin heads do,
    in the same field order (tuples index the same way)."""
    model, pixels = tiny(our_class), pixel_batch()
    with torch.no_grad():
        outputs = model(pixels, output_hidden_states=True)
        reference = reference_class(
            SwinConfig(
                image_size=32,
                patch_size=2,
                embed_dim=16,
                depths=[2, 2],
                num_heads=[2, 4],
                window_size=4,
                encoder_stride=4,
                num_labels=5,
            )
        )
        reference_outputs = reference.eval()(pixels, output_hidden_states=True)
    assert list(outputs.keys()) == list(reference_outputs.keys())
    assert len(outputs.reshaped_hidden_states) == len(outputs.hidden_states) == 3
    for tokens, feature_map in zip(outputs.hidden_states, outputs.reshaped_hidden_states, strict=True):
        assert feature_map.dim() == 4 and feature_map.shape[1] == tokens.shape[-1]
        torch.testing.assert_close(feature_map.flatten(2).transpose(1, 2), tokens)


def test_auto_image_processor_and_classifier_resolve(tmp_path):
    model = tiny(id2label={i: f"class {i}" for i in range(NUM_LABELS)})
    model.save_pretrained(tmp_path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), ViTImageProcessorPil)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tmp_path), VtxSwinForImageClassification)


def test_classification_loss_is_cross_entropy():
    labels = torch.tensor([0, 3, 4])
    with torch.no_grad():
        out = tiny()(pixel_batch(), labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (torch.randn(2, 4, 32, 32), r"has 4 channels but the model expects 3"),
        (torch.randn(2, 3, 1, 8), r"smaller than one token \(2x2 pixels\)"),
        (torch.randn(32, 32), r"must have 4 dimensions"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.int64), "must be a floating-point tensor"),
    ],
)
def test_bad_pixel_values_are_named(pixels, message):
    with pytest.raises(ValueError, match=message):
        tiny()(pixels)


def test_absolute_positions_at_another_size_ask_for_interpolation():
    model = tiny(use_absolute_embeddings=True)
    with pytest.raises(ValueError, match="pass `interpolate_pos_encoding=True`"):
        model(pixel_batch(height=40, width=40))
    with torch.no_grad():
        assert model(pixel_batch(height=40, width=24), interpolate_pos_encoding=True).logits.shape == (3, NUM_LABELS)


@pytest.mark.slow  # an inductor compile
def test_compiles_with_fullgraph_for_training():
    model = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0).train()
    pixels, labels = pixel_batch(), torch.tensor([0, 1, 2])
    eager = model(pixels, labels=labels)
    compiled = torch.compile(model, fullgraph=True)(pixels, labels=labels)
    torch.testing.assert_close(compiled.logits, eager.logits, atol=1e-5, rtol=1e-5)
    compiled.loss.backward()
    assert model.swin.stages[0].blocks[1].attention.relative_position_bias_table.grad is not None


def test_analyze_draws_the_windows_of_a_saved_swin(tmp_path, capsys):
    model_dir, out_dir, image_path = tmp_path / "swin", tmp_path / "pictures", tmp_path / "image.png"
    tiny().save_pretrained(model_dir)
    ViTImageProcessorPil(size={"height": 30, "width": 44}).save_pretrained(model_dir)
    Image.new("RGB", (64, 48)).save(image_path)
    assert main(["analyze", str(model_dir), str(image_path), "--out", str(out_dir)]) == 0
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["relative_position_index.png", "shifted_windows.png"]
    assert all((out_dir / name).read_bytes().startswith(b"\x89PNG") for name in written)
    assert str(out_dir / "shifted_windows.png") in capsys.readouterr().out


def test_cli_converts_a_saved_swin(tmp_path):
    reference = reference_swin(SwinForImageClassification, seed=5)
    reference.save_pretrained(tmp_path / "swin")
    assert main(["convert", str(tmp_path / "swin"), str(tmp_path / "converted")]) == 0
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "converted").eval()
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert isinstance(loaded, VtxSwinForImageClassification)
        assert (loaded(pixels).logits - reference(pixels).logits).abs().max() <= 1e-5
