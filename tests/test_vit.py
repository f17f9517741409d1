"""The Vision Transformer: paper sizes, embeddings, any image size, heads, processor, pipeline and errors."""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForMaskedImageModeling,
    pipeline,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import (
    VtxViTConfig,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
    bit_backbone_config,
)
from support.model_tester_mixin import ModelTesterMixin
from support.vit_tester import NUM_LABELS, masked_positions, pixel_batch, tiny_vit_config


def tiny(model_class=VtxViTForImageClassification, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return model_class(tiny_vit_config(**overrides)).eval()


class TestViTCommon(ModelTesterMixin):
    """The shared checks on the paper's ViT ([CLS] pooling, no pre-logits)."""

    model_classes = (VtxViTModel, VtxViTForMaskedImageModeling, VtxViTForImageClassification)
    attention_implementations = ("flex_attention",)
    auto_classes = {
        VtxViTModel: AutoModel,
        VtxViTForImageClassification: AutoModelForImageClassification,
        VtxViTForMaskedImageModeling: AutoModelForMaskedImageModeling,
    }
    config_overrides: dict = {}

    def make_config(self, **overrides):
        return tiny_vit_config(**(self.config_overrides | overrides))

    def make_inputs(self, config, model_class):
        inputs = {"pixel_values": pixel_batch()}
        if model_class is VtxViTForImageClassification:
            inputs["labels"] = torch.tensor([0, 3, NUM_LABELS - 1])
        if model_class is VtxViTForMaskedImageModeling:
            rows, cols = config.grid_size
            inputs["bool_masked_pos"] = masked_positions(3, rows * cols)
        return inputs


class TestViTGapPoolerCommon(TestViTCommon):
    """The same checks with the paper's GAP variant and the pre-logits layer."""

    config_overrides = {"pooling": "mean", "use_pooler": True}


class TestHybridViTCommon(TestViTCommon):
    """The same checks on the hybrid: patch embeddings from a (tiny) BiT ResNet feature map."""

    config_overrides = {"patch_size": 1, "backbone_config": bit_backbone_config(depths=(1, 1), width=8, num_groups=2)}


# --- sizes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "paper_count"),
    [("ti/16", 5.7e6), ("s/16", 22e6), ("b/16", 86e6), ("b/32", 88e6), ("l/16", 307e6), ("h/14", 632e6)],
)
def test_presets_match_the_paper_parameter_counts(preset, paper_count):
    with torch.device("meta"):
        model = VtxViTForImageClassification(VtxViTConfig.from_preset(preset, num_labels=1000))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - paper_count) / paper_count <= 0.02, f"{preset}: {count / 1e6:.1f}M"


def test_presets_carry_the_paper_sizes():
    huge = VtxViTConfig.from_preset("h/14")
    assert (huge.hidden_size, huge.num_hidden_layers, huge.num_attention_heads, huge.patch_size) == (1280, 32, 16, 14)
    hybrid = VtxViTConfig.from_preset("r50+b/16")
    assert hybrid.token_stride == 16 and hybrid.grid_size == (14, 14)
    with pytest.raises(ValueError, match="Unknown ViT preset 'x/16'"):
        VtxViTConfig.from_preset("x/16")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 30}, r"`hidden_size` \(30\) must be divisible by `num_attention_heads` \(4\)"),
        ({"pooling": "max"}, "`pooling` must be one of"),
        ({"image_size": 3}, "smaller than one token"),
        ({"patch_size": 0}, "`patch_size` must be a positive integer"),
        ({"hidden_dropout_prob": 1.0}, r"`hidden_dropout_prob` must be in \[0, 1\)"),
    ],
)
def test_invalid_configs_fail_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_vit_config(**overrides)


# --- embeddings and pooling ----------------------------------------------------------------------------------


def test_patch_embedding_is_a_linear_map_of_flattened_patches():
    model = tiny(VtxViTModel)
    pixels = pixel_batch(batch=1)
    projection = model.embeddings.patch_embeddings.projection
    patches = pixels.unfold(2, 4, 4).unfold(3, 4, 4)  # [1, C, 8, 8, 4, 4]
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(1, 64, 48)  # [1, 64 patches, C*P*P]
    expected = flat @ projection.weight.reshape(32, 48).T + projection.bias
    patch_map = model.embeddings.patch_embeddings(pixels)  # [1, D, 8, 8]
    assert patch_map.shape == (1, 32, 8, 8)
    torch.testing.assert_close(patch_map.flatten(2).transpose(1, 2), expected, atol=1e-5, rtol=1e-5)


def test_cls_and_mean_pooling_read_the_final_states():
    pixels = pixel_batch()
    cls_model, gap_model = tiny(VtxViTModel), tiny(VtxViTModel, pooling="mean")
    with torch.no_grad():
        cls_out, gap_out = cls_model(pixels), gap_model(pixels)
    torch.testing.assert_close(cls_out.pooler_output, cls_out.last_hidden_state[:, 0])
    torch.testing.assert_close(gap_out.pooler_output, gap_out.last_hidden_state[:, 1:].mean(1))
    assert tiny(VtxViTModel).pooler is None and tiny(VtxViTModel, use_pooler=True).pooler is not None


def test_interpolated_positions_handle_any_size_and_keep_the_native_one():
    model = tiny()
    pixels = pixel_batch()
    with torch.no_grad():
        native = model(pixels).logits
        native_interpolated = model(pixels, interpolate_pos_encoding=True).logits
        wide = model(pixel_batch(height=24, width=44), interpolate_pos_encoding=True, output_hidden_states=True)
    torch.testing.assert_close(native_interpolated, native)
    assert wide.hidden_states[0].shape == (3, 1 + 6 * 11, 32)
    positions = model.vit.embeddings.positions_for((6, 11))
    assert positions.shape == (1, 67, 32)
    torch.testing.assert_close(positions[:, 0], model.vit.embeddings.position_embeddings[:, 0])


def test_wrong_image_size_without_interpolation_names_the_expected_size():
    with pytest.raises(ValueError, match=r"are 24x40 pixels but the model was configured for 32x32.*interpolate"):
        tiny()(pixel_batch(height=24, width=40))


def test_attentions_and_hidden_states_are_returned_under_the_default_sdpa():
    model = tiny(VtxViTModel)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        out = model(pixel_batch(), output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 4, 65, 65)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(3, 4, 65))
    assert len(out.hidden_states) == 3


# --- heads ---------------------------------------------------------------------------------------------------


def test_masked_image_modeling_replaces_masked_patches_and_scores_only_them():
    model = tiny(VtxViTForMaskedImageModeling)
    with torch.no_grad():
        model.vit.embeddings.mask_token.normal_()
    pixels = pixel_batch()
    mask = masked_positions(3, 64)
    with torch.no_grad():
        out = model(pixels, bool_masked_pos=mask)
        unmasked = model(pixels)
    assert out.reconstruction.shape == pixels.shape
    assert not torch.allclose(out.reconstruction, unmasked.reconstruction)
    pixel_mask = mask.reshape(3, 1, 8, 8).repeat_interleave(4, 2).repeat_interleave(4, 3).float()
    error = (out.reconstruction - pixels).abs()
    expected = (error * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    torch.testing.assert_close(out.loss, expected)
    with pytest.raises(ValueError, match=r"`bool_masked_pos` must have shape \(batch, num_patches\) = \(3, 64\)"):
        model(pixels, bool_masked_pos=mask[:, :60])


def test_masked_image_modeling_works_on_non_square_images():
    model = tiny(VtxViTForMaskedImageModeling)
    pixels = pixel_batch(height=24, width=40)
    with torch.no_grad():
        out = model(pixels, bool_masked_pos=masked_positions(3, 6 * 10), interpolate_pos_encoding=True)
    assert out.reconstruction.shape == pixels.shape and torch.isfinite(out.loss)


def test_classifier_head_swaps_with_ignore_mismatched_sizes(tmp_path):
    model = tiny(id2label={i: f"digit {i}" for i in range(NUM_LABELS)})
    model.save_pretrained(tmp_path)
    swapped = VtxViTForImageClassification.from_pretrained(tmp_path, num_labels=3, ignore_mismatched_sizes=True)
    assert swapped.classifier.weight.shape == (3, 32)
    assert torch.equal(swapped.vit.layers[1].mlp.fc1.weight, model.vit.layers[1].mlp.fc1.weight)
    with pytest.raises(RuntimeError, match=r"size mismatch|mismatched"):
        VtxViTForImageClassification.from_pretrained(tmp_path, num_labels=3)


def test_classification_loss_is_cross_entropy():
    model = tiny()
    labels = torch.tensor([0, 3, 4])
    with torch.no_grad():
        out = model(pixel_batch(), labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))


# --- processor and pipeline ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vit")
    model = tiny(id2label={i: f"class {i}" for i in range(NUM_LABELS)})
    model.save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def test_auto_image_processor_uses_the_pillow_backend(saved_classifier):
    processor = AutoImageProcessor.from_pretrained(saved_classifier)
    assert isinstance(processor, ViTImageProcessorPil)
    image = Image.new("RGB", (50, 70), color=(200, 10, 30))
    assert processor(image, return_tensors="pt").pixel_values.shape == (1, 3, 32, 32)


def test_image_classification_pipeline_on_images_and_paths(saved_classifier, tmp_path):
    classifier = pipeline("image-classification", model=str(saved_classifier))
    image = Image.fromarray((torch.rand(40, 60, 3) * 255).to(torch.uint8).numpy())
    path = tmp_path / "image.png"
    image.save(path)
    from_image = classifier(image, top_k=NUM_LABELS)
    from_path = classifier(str(path), top_k=NUM_LABELS)
    assert {r["label"] for r in from_image} == {f"class {i}" for i in range(NUM_LABELS)}
    assert sum(r["score"] for r in from_image) == pytest.approx(1.0, abs=1e-4)
    assert [r["label"] for r in from_image] == [r["label"] for r in from_path]
    model = AutoModelForImageClassification.from_pretrained(saved_classifier).eval()
    pixels = AutoImageProcessor.from_pretrained(saved_classifier)(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        best = model(pixels).logits.argmax(-1).item()
    assert from_image[0]["label"] == f"class {best}"


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (torch.randn(2, 1, 32, 32), r"has 1 channels but the model expects 3"),
        (torch.randn(2, 3, 3, 3), r"smaller than one token \(4x4 pixels\)"),
        (torch.randn(3, 32, 32), r"must have 4 dimensions \[batch, channels, height, width\], got shape \(3, 32, 32\)"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "must be a floating-point tensor.*torch.uint8"),
    ],
)
def test_bad_pixel_values_are_named(pixels, message):
    with pytest.raises(ValueError, match=message):
        tiny()(pixels, interpolate_pos_encoding=True)


def test_labels_outside_the_classes_are_named():
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, num_labels=5\), got values in \[0, 7\]"):
        tiny()(pixel_batch(), labels=torch.tensor([0, 7, 1]))


def test_missing_pixels_are_named():
    with pytest.raises(ValueError, match="`pixel_values` is required"):
        tiny(VtxViTModel)()


def test_flex_attention_matches_eager():
    model = tiny(VtxViTModel)
    pixels = pixel_batch()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(pixels).last_hidden_state
    model.set_attn_implementation("flex_attention")  # compiled by torch on first use, also on CPU
    with torch.no_grad():
        flex = model(pixels).last_hidden_state
    torch.testing.assert_close(flex, eager, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # an inductor compile
def test_compiles_with_fullgraph_for_training():
    model = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    pixels, labels = pixel_batch(), torch.tensor([0, 1, 2])
    eager = model(pixels, labels=labels)
    compiled = torch.compile(model, fullgraph=True)(pixels, labels=labels)  # any graph break is an error
    torch.testing.assert_close(compiled.logits, eager.logits, atol=1e-5, rtol=1e-5)
    compiled.loss.backward()
    assert model.vit.embeddings.cls_token.grad is not None
