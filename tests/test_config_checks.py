"""Config fields of the wrong type or range are refused when the config is built, from Python or from a hand-edited
config.json, with the field named: a string, float or bool in an integer field, a string in a boolean field."""

import json

import pytest
from transformers import AutoConfig, AutoModel

from hf_visiontx import (
    VtxSwinConfig,
    VtxSwinModel,
    VtxTransformerConfig,
    VtxViTConfig,
    VtxViTModel,
    bit_backbone_config,
)
from hf_visiontx.modeling.config_checks import declared_field_types
from support.swin_tester import tiny_swin_config
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import tiny_vit_config

TINY = {"transformer": tiny_transformer_config, "vit": tiny_vit_config, "swin": tiny_swin_config}
CONFIG_CLASSES = {"transformer": VtxTransformerConfig, "vit": VtxViTConfig, "swin": VtxSwinConfig}

# (family, field, value, what the error says after the field's name)
WRONG_TYPES = [
    ("transformer", "d_model", "32", r"must be an integer, got '32' \(str\)"),
    ("transformer", "d_model", 32.0, r"must be an integer, got 32.0 \(float\); write 32, not 32.0"),
    ("transformer", "encoder_layers", True, r"must be an integer, got True \(bool\)"),
    ("transformer", "vocab_size", 99.0, "write 99, not 99.0"),
    ("transformer", "max_position_embeddings", "64", "must be an integer"),
    ("transformer", "decoder_ffn_dim", None, r"must be an integer, got None"),
    ("transformer", "scale_embedding", "false", r"must be a boolean \(true or false\), got 'false' \(str\)"),
    ("transformer", "add_cross_attention", "false", "the string 'false' is not a boolean"),
    ("transformer", "lm_head_bias", "true", "must be a boolean"),
    ("transformer", "share_encoder_decoder_embeddings", 1, r"must be a boolean \(true or false\), got 1 \(int\)"),
    ("transformer", "tie_word_embeddings", "no", "must be a boolean"),
    ("transformer", "use_cache", "false", "must be a boolean"),
    ("transformer", "dropout", "0.1", r"must be a number, got '0.1' \(str\)"),
    ("transformer", "label_smoothing", True, r"must be a number, got True \(bool\)"),
    ("transformer", "layer_norm_eps", "1e-5", "must be a number"),
    ("transformer", "pad_token_id", "0", r"must be an integer or None \(null in config.json\), got '0'"),
    ("transformer", "eos_token_id", 2.0, "write 2, not 2.0"),
    ("transformer", "eos_token_id", [2, "3"], r"got \[2, '3'\], which holds '3' \(str\)"),
    ("transformer", "activation_function", 3, r"must be a string, got 3 \(int\)"),
    ("vit", "hidden_size", "32", "must be an integer"),
    ("vit", "hidden_size", 32.0, "write 32, not 32.0"),
    ("vit", "num_hidden_layers", True, r"got True \(bool\)"),
    ("vit", "patch_size", 4.0, "write 4, not 4.0"),
    ("vit", "qkv_bias", "false", "must be a boolean"),
    ("vit", "use_pooler", "false", "must be a boolean"),
    ("vit", "image_size", "32", r"must be an integer, a list of integers or a tuple of 2 integers, got '32'"),
    ("vit", "image_size", 32.0, "write 32, not 32.0"),
    ("vit", "image_size", [32.0, 32], r"which holds 32.0 \(float\); write 32, not 32.0"),
    ("vit", "image_size", (32, 32, 32), "tuple of 2 integers"),
    ("vit", "layer_norm_eps", "1e-6", "must be a number"),
    ("vit", "initializer_range", False, r"must be a number, got False \(bool\)"),
    ("vit", "hidden_dropout_prob", "0.1", "must be a number"),
    ("vit", "pooling", 1, "must be a string"),
    ("vit", "encoder_stride", 4.0, "must be an integer or None"),
    ("vit", "backbone_config", "r50", "must be a dict or None"),
    ("swin", "embed_dim", "16", "must be an integer"),
    ("swin", "embed_dim", 16.0, "write 16, not 16.0"),
    ("swin", "window_size", True, r"got True \(bool\)"),
    ("swin", "depths", 2, r"must be a list of integers or a tuple of integers, got 2 \(int\)"),
    ("swin", "depths", [2.0, 2], r"which holds 2.0 \(float\); write 2, not 2.0"),
    ("swin", "depths", ["2", "2"], r"which holds '2' \(str\)"),
    ("swin", "num_heads", [2, True], r"which holds True \(bool\)"),
    ("swin", "image_size", (32, True), r"which holds True \(bool\)"),
    ("swin", "qkv_bias", "false", "must be a boolean"),
    ("swin", "use_absolute_embeddings", "false", "must be a boolean"),
    ("swin", "mlp_ratio", "4", "must be a number"),
    ("swin", "drop_path_rate", None, "must be a number"),
]


@pytest.mark.parametrize(("family", "field", "value", "message"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_refused_by_name(family, field, value, message):
    with pytest.raises(ValueError, match=rf"`{field}` .*{message}"):
        TINY[family](**{field: value})


@pytest.mark.parametrize("family", TINY)
def test_every_declared_field_is_type_checked(family):
    """Each field the config class declares refuses a value of no type it accepts (a new field is covered too)."""
    fields = declared_field_types(CONFIG_CLASSES[family])
    assert len(fields) > 15
    for field in fields:
        with pytest.raises(ValueError, match=rf"^`{field}` must be "):
            TINY[family](**{field: object()})


@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("transformer", {"eos_token_id": 99}, r"`eos_token_id` \(99\) must lie in \[0, vocab_size=99\)"),
        ("transformer", {"eos_token_id": -1}, r"`eos_token_id` \(-1\) must lie in \[0, vocab_size=99\)"),
        ("transformer", {"eos_token_id": [2, 150]}, r"`eos_token_id` \(\[2, 150\]\) must lie in \[0, vocab_size=99\)"),
        ("transformer", {"layer_norm_eps": 0}, "`layer_norm_eps` must be a positive number, got 0"),
        ("transformer", {"layer_norm_eps": -1e-5}, "`layer_norm_eps` must be a positive number"),
        ("transformer", {"initializer_range": -0.02}, "`initializer_range` must be a positive number"),
        ("transformer", {"initializer_range": "0.02"}, "`initializer_range` must be a number"),
        ("vit", {"layer_norm_eps": 0.0}, "`layer_norm_eps` must be a positive number, got 0.0"),
        ("vit", {"initializer_range": -0.02}, "`initializer_range` must be a positive number, got -0.02"),
        ("swin", {"layer_norm_eps": -1.0}, "`layer_norm_eps` must be a positive number"),
        ("swin", {"initializer_range": 0}, "`initializer_range` must be a positive number, got 0"),
        ("swin", {"mlp_ratio": 0}, "`mlp_ratio` must be a positive number"),
        ("vit", {"patch_size": 0}, "`patch_size` must be a positive integer, got 0"),
    ],
)
def test_out_of_range_values_are_refused_by_name(family, overrides, message):
    with pytest.raises(ValueError, match=message):
        TINY[family](**overrides)


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        ({"depths": [3, 4], "width": "64", "num_groups": 32}, r"`backbone_config\['width'\]` must be an integer"),
        ({"depths": [3.0, 4], "width": 64, "num_groups": 32}, r"`backbone_config\['depths'\]` .* write 3, not 3.0"),
        ({"depths": [3, 4], "width": 64, "num_groups": 0}, "positive block counts, width and num_groups"),
        ({"width": 64, "num_groups": 32}, "must be a dict with `depths`, `width` and `num_groups`"),
    ],
)
def test_the_hybrid_backbone_config_is_checked(backbone, message):
    with pytest.raises(ValueError, match=message):
        tiny_vit_config(patch_size=1, image_size=64, backbone_config=backbone)


def test_accepted_values_keep_their_meaning():
    """Floats take ints, tuples and lists both work, booleans stay booleans; defaults and every preset build."""
    config = tiny_transformer_config(dropout=0, layer_norm_eps=1, eos_token_id=[2, 3], add_cross_attention=False)
    assert (config.dropout, config.layer_norm_eps, config.eos_token_id) == (0, 1, [2, 3])
    assert config.add_cross_attention is False
    assert tiny_vit_config(image_size=(32, 48)).image_size == [32, 48]
    assert tiny_swin_config(depths=(2, 2), num_heads=[2, 4], qkv_bias=False).qkv_bias is False
    tiny_vit_config(
        patch_size=1, image_size=64, backbone_config=bit_backbone_config(depths=(1,), width=8, num_groups=4)
    )
    for config_class in CONFIG_CLASSES.values():
        config_class()
        for name in config_class.presets:
            config_class.from_preset(name)


@pytest.mark.parametrize(
    ("family", "model_class", "field", "value", "message"),
    [
        ("vit", VtxViTModel, "qkv_bias", "false", "`qkv_bias` must be a boolean"),
        ("vit", VtxViTModel, "hidden_size", 32.0, "`hidden_size` must be an integer, got 32.0 .*write 32"),
        ("swin", VtxSwinModel, "depths", [2, 2.0], "`depths` must be a list of integers"),
        ("swin", VtxSwinModel, "initializer_range", 0, "`initializer_range` must be a positive number"),
    ],
)
def test_a_hand_edited_config_json_is_refused_by_name(tmp_path, family, model_class, field, value, message):
    model_class(TINY[family]()).save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {field: value}))
    for load in (model_class.from_pretrained, AutoModel.from_pretrained, AutoConfig.from_pretrained):
        with pytest.raises(ValueError, match=message):
            load(tmp_path)
