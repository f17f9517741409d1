"""Our classes refuse another model's checkpoint (transformers' ViT, Swin, Marian, GPT-2; another family of ours)
with an error that says what the folder holds and how to load it, and refuse weights whose layer counts differ from
the configuration's, instead of loading a mostly random model with a warning."""

import json
import shlex
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    SwinConfig,
    SwinForImageClassification,
    SwinModel,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)

import hf_visiontx
from hf_visiontx import (
    VtxSwinBackbone,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
    VtxTransformerConfig,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
    bit_backbone_config,
)
from hf_visiontx.modeling.checkpoint_checks import check_checkpoint_model_type
from support.swin_tester import TINY_SIZES as TINY_SWIN
from support.swin_tester import tiny_swin_config
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import TINY_SIZES as TINY_VIT
from support.vit_tester import tiny_vit_config

TINY_TEXT = dict(vocab_size=99, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
# name -> (a tiny transformers model, its model_type, its architecture, the head of ours it converts into)
TRANSFORMERS_MODELS = {
    "vit": (lambda: ViTModel(ViTConfig(**TINY_VIT)), "vit", "ViTModel", "VtxViTModel"),
    "vit-classifier": (
        lambda: ViTForImageClassification(ViTConfig(**TINY_VIT, num_labels=3)),
        "vit",
        "ViTForImageClassification",
        "VtxViTForImageClassification",
    ),
    "swin": (lambda: SwinModel(SwinConfig(**TINY_SWIN)), "swin", "SwinModel", "VtxSwinModel"),
    "swin-classifier": (
        lambda: SwinForImageClassification(SwinConfig(**TINY_SWIN, num_labels=3)),
        "swin",
        "SwinForImageClassification",
        "VtxSwinForImageClassification",
    ),
    "marian": (
        lambda: MarianMTModel(
            MarianConfig(
                **TINY_TEXT,
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=4,
                decoder_attention_heads=4,
                encoder_ffn_dim=37,
                decoder_ffn_dim=37,
                decoder_start_token_id=0,
            )
        ),
        "marian",
        "MarianMTModel",
        "VtxTransformerForConditionalGeneration",
    ),
    "gpt2": (
        lambda: GPT2LMHeadModel(GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
        "gpt2",
        "GPT2LMHeadModel",
        "VtxTransformerForCausalLM",
    ),
}
OUR_CLASSES = [
    VtxViTModel,
    VtxViTForImageClassification,
    VtxSwinModel,
    VtxSwinForImageClassification,
    VtxTransformerForConditionalGeneration,
    VtxTransformerForCausalLM,
]
OUR_FOLDERS = {  # name -> (model, what `model_type` it holds)
    "vtx-vit": (lambda: VtxViTForImageClassification(tiny_vit_config()), "vtx_vit"),
    "vtx-swin": (lambda: VtxSwinForImageClassification(tiny_swin_config()), "vtx_swin"),
    "vtx-transformer": (lambda: VtxTransformerForConditionalGeneration(tiny_transformer_config()), "vtx_transformer"),
    "vtx-lm": (lambda: VtxTransformerForCausalLM(tiny_transformer_config()), "vtx_transformer"),
}


def family_of(model_class) -> str:
    return model_class.config_class.model_type


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each model above saved once, in a folder of its name."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    for name, (build, *_) in {**TRANSFORMERS_MODELS, **OUR_FOLDERS}.items():
        build().save_pretrained(root / name)
    return root


@pytest.mark.parametrize("our_class", OUR_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name", TRANSFORMERS_MODELS)
def test_a_transformers_checkpoint_is_refused_with_the_convert_command(folders, name, our_class):
    _, model_type, architecture, converted_head = TRANSFORMERS_MODELS[name]
    source = folders / name
    same_family = family_of(our_class) == family_of(getattr(hf_visiontx, converted_head))
    loader = our_class.__name__ if same_family else converted_head
    with pytest.raises(ValueError) as raised:
        our_class.from_pretrained(source)
    message = str(raised.value)
    assert f"{source} holds a {model_type!r} model ({architecture}), but {our_class.__name__} loads " in message
    assert f"converts into its {converted_head}" in message
    command = f"`hf-visiontx convert {shlex.quote(str(source))} {shlex.quote(str(source))}-converted`"
    assert command in message and f"load {source}-converted with {loader}." in message


@pytest.mark.parametrize(
    ("name", "our_class"),
    [(name, cls) for name in OUR_FOLDERS for cls in OUR_CLASSES if family_of(cls) != OUR_FOLDERS[name][1]],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_another_family_s_checkpoint_is_refused_naming_the_class_that_loads_it(folders, name, our_class):
    model_type = OUR_FOLDERS[name][1]
    with pytest.raises(ValueError) as raised:
        our_class.from_pretrained(folders / name)
    architecture = json.loads((folders / name / "config.json").read_text())["architectures"][0]
    assert f"holds a {model_type!r} model ({architecture}), but {our_class.__name__} loads" in str(raised.value)
    assert f"Load it with {architecture}, or with an Auto class" in str(raised.value)


def test_a_config_passed_along_does_not_hide_the_folder_s_model_type(folders):
    with pytest.raises(ValueError, match=r"holds a 'vit' model \(ViTModel\), but VtxViTModel loads 'vtx_vit'"):
        VtxViTModel.from_pretrained(folders / "vit", config=tiny_vit_config())


def test_a_hub_repository_gets_the_pull_and_convert_commands():
    config = {"model_type": "swin", "architectures": ["SwinForImageClassification"]}
    with pytest.raises(ValueError) as raised:
        check_checkpoint_model_type(VtxSwinForImageClassification, "microsoft/swin-tiny-patch4-window7-224", config)
    assert (
        "run `hf-visiontx pull microsoft/swin-tiny-patch4-window7-224 swin-tiny-patch4-window7-224`, then "
        "`hf-visiontx convert swin-tiny-patch4-window7-224 swin-tiny-patch4-window7-224-converted` and load "
        "swin-tiny-patch4-window7-224-converted with VtxSwinForImageClassification."
    ) in str(raised.value)


def test_a_model_that_neither_loads_nor_converts_is_named(tmp_path):
    BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match=r"holds a 'bert' model \(BertModel\).*neither loads nor converts it"):
        VtxTransformerModel.from_pretrained(tmp_path)


def test_a_composite_points_at_its_part(tmp_path):
    decoder = VtxTransformerForCausalLM(tiny_transformer_config(is_decoder=True, add_cross_attention=True))
    VisionEncoderDecoderModel(encoder=VtxViTModel(tiny_vit_config()), decoder=decoder).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"Its encoder is one: load the whole with VisionEncoderDecoderModel and use"):
        VtxViTModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"Its decoder is one: load the whole with VisionEncoderDecoderModel"):
        VtxTransformerForCausalLM.from_pretrained(tmp_path)


def test_a_key_mapping_takes_responsibility_for_the_names(folders):
    """With `key_mapping` the caller renames the weights, so a foreign folder is not refused."""
    mapping = {r"^vit\.encoder\.layer\.(\d+)\.layernorm_before": r"vit.layers.\1.layernorm_before"}
    model = VtxViTModel.from_pretrained(folders / "vit-classifier", config=tiny_vit_config(), key_mapping=mapping)
    source = load_file(folders / "vit-classifier" / "model.safetensors")["vit.encoder.layer.1.layernorm_before.weight"]
    assert torch.equal(model.layers[1].layernorm_before.weight, source)


def edited_copy(folders, name, tmp_path, **fields):
    """A copy of `folders/name` whose config.json has `fields` changed."""
    copy = tmp_path / f"{name}-edited"
    shutil.copytree(folders / name, copy)
    config_file = copy / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | fields))
    return copy


@pytest.mark.parametrize(
    ("name", "model_class", "fields", "message"),
    [
        (
            "vtx-vit",
            VtxViTForImageClassification,
            {"num_hidden_layers": 1},
            "`layers` has 1 in the configuration and 2",
        ),
        (
            "vtx-vit",
            VtxViTForImageClassification,
            {"num_hidden_layers": 3},
            "`layers` has 3 in the configuration and 2",
        ),
        ("vtx-vit", VtxViTModel, {"num_hidden_layers": 1}, "`layers` has 1 in the configuration and 2 in the weights"),
        ("vtx-swin", VtxSwinForImageClassification, {"depths": [2, 1]}, "`stages.1.blocks` has 1 in the configuration"),
        ("vtx-swin", VtxSwinModel, {"depths": [3, 2]}, "`stages.0.blocks` has 3 in the configuration and 2 in the"),
        ("vtx-swin", VtxSwinModel, {"depths": [2, 2, 2], "num_heads": [2, 4, 8]}, "`stages` has 3 in the config"),
        (
            "vtx-transformer",
            VtxTransformerForConditionalGeneration,
            {"decoder_layers": 1},
            "`decoder.layers` has 1 in the configuration and 2 in the weights",
        ),
        (
            "vtx-transformer",
            VtxTransformerModel,
            {"encoder_layers": 3},
            "`encoder.layers` has 3 in the configuration and 2 in the weights",
        ),
        ("vtx-lm", VtxTransformerForCausalLM, {"decoder_layers": 4}, "`decoder.layers` has 4 in the configuration"),
    ],
)
def test_layer_counts_that_disagree_with_the_weights_are_named(folders, tmp_path, name, model_class, fields, message):
    edited = edited_copy(folders, name, tmp_path, **fields)
    with pytest.raises(ValueError, match=rf"The configuration does not match the layers of the weights in .*{message}"):
        model_class.from_pretrained(edited)


def test_the_hybrid_s_resnet_stages_are_counted_too(tmp_path):
    backbone = bit_backbone_config(depths=(1, 2), width=8, num_groups=4)
    VtxViTModel(tiny_vit_config(patch_size=1, image_size=64, backbone_config=backbone)).save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config["backbone_config"]["depths"] = [1, 1]
    config_file.write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match=r"`embeddings\.patch_embeddings\.backbone\.stages\.1` has 1 in the configuration"
    ):
        VtxViTModel.from_pretrained(tmp_path)


def test_a_config_passed_with_other_layer_counts_is_refused(folders):
    config = VtxTransformerConfig.from_dict(json.loads((folders / "vtx-lm" / "config.json").read_text()))
    config.decoder_layers = 1
    with pytest.raises(ValueError, match=r"`decoder\.layers` has 1 in the configuration and 2 in the weights"):
        VtxTransformerForCausalLM.from_pretrained(folders / "vtx-lm", config=config)


@pytest.mark.parametrize(
    ("name", "model_class", "kwargs"),
    [
        ("vtx-vit", VtxViTModel, {}),  # a base model from a head's checkpoint
        ("vtx-vit", VtxViTForMaskedImageModeling, {}),  # another head: its own layers are new
        ("vtx-vit", VtxViTForImageClassification, {"num_labels": 3, "ignore_mismatched_sizes": True}),
        ("vtx-swin", VtxSwinBackbone, {}),
        ("vtx-swin", VtxSwinForMaskedImageModeling, {}),
        ("vtx-lm", VtxTransformerForConditionalGeneration, {}),  # the decoder's layers, and a new encoder
        ("vtx-transformer", VtxTransformerModel, {}),
    ],
)
def test_legitimate_loads_still_work(folders, name, model_class, kwargs):
    model, info = model_class.from_pretrained(folders / name, output_loading_info=True, **kwargs)
    assert isinstance(model, model_class) and set(info) >= {"missing_keys", "unexpected_keys"}
    assert isinstance(model_class.from_pretrained(folders / name, **kwargs), model_class)


def test_a_head_loads_from_its_base_model_and_a_causal_lm_from_a_translator(tmp_path):
    torch.manual_seed(0)
    base = VtxViTModel(tiny_vit_config())
    base.save_pretrained(tmp_path / "base")
    classifier = VtxViTForImageClassification.from_pretrained(tmp_path / "base")
    assert torch.equal(classifier.vit.layers[1].mlp.fc1.weight, base.layers[1].mlp.fc1.weight)
    translator = VtxTransformerForConditionalGeneration(tiny_transformer_config(share_encoder_decoder_embeddings=False))
    translator.save_pretrained(tmp_path / "translator")
    language_model = VtxTransformerForCausalLM.from_pretrained(tmp_path / "translator")
    assert torch.equal(
        language_model.model.decoder.layers[1].mlp.fc1.weight, translator.model.decoder.layers[1].mlp.fc1.weight
    )
