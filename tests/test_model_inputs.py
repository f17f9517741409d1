"""Bad inputs to the models' forward passes and `generate()`: an empty source or prompt, tensors of the wrong rank or
batch size, masks that are not 0/1, classifier labels of the wrong shape; and a forward pass never changes the
config."""

import pytest
import torch
import torch.nn.functional as F

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
)
from support.swin_tester import tiny_swin_config
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import masked_positions, pixel_batch, tiny_vit_config


def seeded(model_class, config):
    torch.manual_seed(0)
    return model_class(config).eval()


@pytest.fixture(scope="module")
def translator():
    return seeded(VtxTransformerForConditionalGeneration, tiny_transformer_config())


@pytest.fixture(scope="module")
def language_model():
    return seeded(VtxTransformerForCausalLM, tiny_transformer_config())


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(3, 50, shape, generator=torch.Generator().manual_seed(sum(shape)))


# --- empty sequences --------------------------------------------------------------------------------------------


def test_an_empty_source_is_refused_by_forward_and_generate(translator):
    empty = ids(2, 0)
    message = r"`input_ids` is empty \(shape \(2, 0\)\): the source must hold at least one token"
    with pytest.raises(ValueError, match=message):
        translator(input_ids=empty, labels=ids(2, 7))
    with pytest.raises(ValueError, match=message):
        translator.generate(empty, max_new_tokens=3)
    with pytest.raises(ValueError, match=r"`input_ids` is empty \(shape \(0, 5\)\)"):
        translator.generate(ids(0, 5), max_new_tokens=3)
    bare = seeded(VtxTransformerModel, tiny_transformer_config())
    with pytest.raises(ValueError, match=message):
        bare(input_ids=empty, decoder_input_ids=ids(2, 7))


def test_empty_decoder_inputs_and_labels_are_named(translator):
    with pytest.raises(ValueError, match=r"`decoder_input_ids` is empty .* at least its start token"):
        translator(input_ids=ids(2, 5), decoder_input_ids=ids(2, 0))
    with pytest.raises(ValueError, match=r"`labels` is empty \(shape \(2, 0\)\)"):
        translator(input_ids=ids(2, 5), labels=ids(2, 0))


def test_the_causal_lm_refuses_an_empty_prompt_unless_tokens_are_cached(language_model):
    message = r"`input_ids` is empty \(shape \(2, 0\)\): with nothing cached, a language model needs at least one"
    with pytest.raises(ValueError, match=message):
        language_model(ids(2, 0))
    with pytest.raises(ValueError, match=message):
        language_model.generate(ids(2, 0), max_new_tokens=3)
    cached = language_model(ids(2, 4), use_cache=True).cache
    assert language_model(ids(2, 0), cache=cached, use_cache=True).logits.shape == (2, 0, 99)


# --- shapes of token tensors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"input_ids": ids(5), "labels": ids(2, 7)},
            r"`input_ids` must have shape \(batch, source_length\), got \(5,\)",
        ),
        (
            {"input_ids": ids(1, 2, 5), "labels": ids(2, 7)},
            r"`input_ids` must have shape \(batch, source_length\), got \(1, 2, 5\)",
        ),
        (
            {"input_ids": ids(2, 5), "decoder_input_ids": ids(7)},
            r"`decoder_input_ids` must have shape \(batch, target_length\) = \(2, target_length\), got \(7,\)",
        ),
        (
            {"input_ids": ids(2, 5), "labels": ids(7)},
            r"`labels` must have shape \(batch, target_length\) = \(2, target_length\), got \(7,\)",
        ),
        (
            {"input_ids": ids(2, 5), "labels": ids(1, 2, 7)},
            r"`labels` must have shape \(batch, target_length\) = \(2, target_length\), got \(1, 2, 7\)",
        ),
        (
            {"input_ids": ids(2, 5), "labels": ids(3, 7)},
            r"`labels` must have shape \(batch, target_length\) = \(2, target_length\), got \(3, 7\)",
        ),
        (
            {"input_ids": ids(2, 5), "decoder_input_ids": ids(2, 7), "labels": ids(3, 7)},
            r"`labels` must have shape \(batch, target_length\) = \(2, 7\), got \(3, 7\)",
        ),
        (
            {"input_ids": ids(2, 5), "decoder_input_ids": ids(2, 7), "labels": ids(2, 5)},
            r"`labels` must have shape \(batch, target_length\) = \(2, 7\), got \(2, 5\)",
        ),
        (
            {"input_ids": ids(2, 5), "decoder_input_ids": ids(3, 7)},
            r"`decoder_input_ids` must have shape \(batch, target_length\) = \(2, target_length\), got \(3, 7\)",
        ),
        (
            {"inputs_embeds": torch.randn(5, 32), "labels": ids(2, 7)},
            r"`inputs_embeds` must have shape \(batch, source_length, d_model\) = \(batch, source_length, 32\)",
        ),
    ],
)
def test_translator_inputs_of_the_wrong_shape_are_named(translator, inputs, message):
    with pytest.raises(ValueError, match=message):
        translator(**inputs)


def test_labels_are_checked_against_precomputed_encoder_outputs(translator):
    encoder_outputs = translator.get_encoder()(ids(2, 5))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(batch, target_length\) = \(2, target_length\)"):
        translator(encoder_outputs=encoder_outputs, labels=ids(3, 7))


def test_the_bare_model_names_decoder_inputs_of_another_batch_size():
    model = seeded(VtxTransformerModel, tiny_transformer_config())
    with pytest.raises(
        ValueError, match=r"`decoder_input_ids` must have shape .* = \(2, target_length\), got \(3, 7\)"
    ):
        model(input_ids=ids(2, 5), decoder_input_ids=ids(3, 7))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"input_ids": ids(5)}, r"`input_ids` must have shape \(batch, sequence_length\), got \(5,\)"),
        ({"input_ids": ids(1, 2, 5)}, r"`input_ids` must have shape \(batch, sequence_length\), got \(1, 2, 5\)"),
        (
            {"input_ids": ids(2, 5), "labels": ids(5)},
            r"`labels` must have shape \(batch, sequence_length\) = \(2, 5\), got \(5,\)",
        ),
        (
            {"input_ids": ids(2, 5), "labels": ids(3, 5)},
            r"`labels` must have shape \(batch, sequence_length\) = \(2, 5\), got \(3, 5\)",
        ),
    ],
)
def test_causal_lm_inputs_of_the_wrong_shape_are_named(language_model, inputs, message):
    with pytest.raises(ValueError, match=message):
        language_model(**inputs)


def test_the_decoder_names_inputs_of_another_batch_size_than_the_encoder_states():
    decoder = seeded(VtxTransformerForCausalLM, tiny_transformer_config(add_cross_attention=True))
    with pytest.raises(ValueError, match=r"`input_ids` must have shape .* = \(2, sequence_length\), got \(3, 4\)"):
        decoder(ids(3, 4), encoder_hidden_states=torch.randn(2, 6, 32))


# --- masked image modeling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_class", "config", "num_patches"),
    [
        (VtxViTForMaskedImageModeling, tiny_vit_config(), 64),
        (VtxSwinForMaskedImageModeling, tiny_swin_config(), 256),
    ],
)
def test_bool_masked_pos_must_be_a_boolean_or_0_1_mask(model_class, config, num_patches):
    model = seeded(model_class, config)
    pixels = pixel_batch()
    mask = masked_positions(3, num_patches)
    with torch.no_grad():
        expected = model(pixels, bool_masked_pos=mask).loss
        torch.testing.assert_close(model(pixels, bool_masked_pos=mask.long()).loss, expected)  # 0/1 integers
    for bad, found in ((mask.long() * 2, r"\[0, 2\]|\[2\]"), (mask.long() - 1, r"\[-1\]")):
        with pytest.raises(ValueError, match=rf"`bool_masked_pos` must hold only 0 and 1 .* found {found}"):
            model(pixels, bool_masked_pos=bad)
    with pytest.raises(ValueError, match=r"`bool_masked_pos` must be a boolean mask .* got dtype torch.float32"):
        model(pixels, bool_masked_pos=mask.float() * 0.5)


def test_a_bare_vit_with_a_mask_token_refuses_a_mask_of_other_values():
    torch.manual_seed(0)
    model = VtxViTModel(tiny_vit_config(), use_mask_token=True).eval()
    with pytest.raises(ValueError, match=r"`bool_masked_pos` must hold only 0 and 1 .* found \[2\]"):
        model(pixel_batch(), bool_masked_pos=torch.full((3, 64), 2))


# --- image classification labels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_class", "config"),
    [(VtxViTForImageClassification, tiny_vit_config()), (VtxSwinForImageClassification, tiny_swin_config())],
)
@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 1, 2, 3, 4]), r"`labels` must have shape \(batch,\) = \(3,\), got \(5,\)"),
        (torch.tensor(1), r"`labels` must have shape \(batch,\) = \(3,\), got \(\)"),
        (torch.tensor([[0, 1], [2, 3], [4, 0]]), r"`labels` must have shape \(batch, 1\) = \(3, 1\), got \(3, 2\)"),
        (
            torch.tensor([0.0, 1.0, 2.0]),
            r"`labels` must have shape \(batch, num_labels\) = \(3, 5\), got \(3,\) \(config.problem_type is unset, "
            r"so torch.float32 labels mean multi_label_classification",
        ),
    ],
)
def test_classifier_labels_of_the_wrong_shape_are_named(model_class, config, labels, message):
    with pytest.raises(ValueError, match=message):
        seeded(model_class, config)(pixel_batch(), labels=labels)


def test_a_single_label_classifier_refuses_float_labels_when_its_problem_type_says_so():
    model = seeded(VtxViTForImageClassification, tiny_vit_config(problem_type="single_label_classification"))
    with pytest.raises(ValueError, match=r"single-label classification must hold integer class ids, got dtype"):
        model(pixel_batch(), labels=torch.tensor([0.0, 1.0, 2.0]))


@pytest.mark.parametrize(
    ("model_class", "config"),
    [(VtxViTForImageClassification, tiny_vit_config()), (VtxSwinForImageClassification, tiny_swin_config())],
)
def test_float_labels_do_not_change_the_config_or_later_losses(model_class, config):
    model = seeded(model_class, config)
    assert model.config.problem_type is None
    pixels = pixel_batch()
    multi_hot = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1]])
    with torch.no_grad():
        out = model(pixels, labels=multi_hot)
        torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi_hot))
        assert model.config.problem_type is None
        class_ids = torch.tensor([0, 3, 4])
        out = model(pixels, labels=class_ids)
        torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, class_ids))
    assert model.config.problem_type is None
