"""The family table is the single source: registration, auto_map, model cards, conversion, recipes and the command
line all follow it, and a head added to it reaches every one of them."""

import dataclasses
import json

import pytest
import transformers
from transformers import AutoConfig

import hf_visiontx
from hf_visiontx import modeling
from hf_visiontx.apps.cli import build_parser
from hf_visiontx.convert import convertible_classes
from hf_visiontx.modeling import families
from hf_visiontx.modeling.card_text import build_model_card
from hf_visiontx.modeling.families import FAMILIES, Head, auto_map, family
from hf_visiontx.registration import register_auto_classes, remote_code_classes
from hf_visiontx.training import model_config, recipe
from support.swin_tester import tiny_swin_config
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import tiny_vit_config

TINY_CONFIGS = {"transformer": tiny_transformer_config, "vit": tiny_vit_config, "swin": tiny_swin_config}
ALL_HEADS = [(declared, head) for declared in FAMILIES for head in declared.heads]


def auto_registry(auto_class: str) -> dict:
    """What `import hf_visiontx` added to an Auto class: config class -> model class."""
    return dict(getattr(transformers, auto_class)._model_mapping._extra_content)


@pytest.mark.parametrize(("declared", "head"), ALL_HEADS, ids=lambda value: getattr(value, "name", None))
def test_every_head_is_registered_with_its_auto_class_and_carries_its_code(declared, head):
    config_class = getattr(modeling, declared.config_class)
    assert config_class.model_type == declared.model_type
    assert auto_registry(head.auto_class)[config_class] is getattr(modeling, head.name)
    assert remote_code_classes()[getattr(modeling, head.name)] == head.auto_class
    assert config_class._auto_class == "AutoConfig" and getattr(modeling, head.name)._auto_class == head.auto_class


@pytest.mark.parametrize("declared", FAMILIES, ids=lambda declared: declared.name)
def test_saved_config_maps_every_head_to_its_class_in_the_model_file(declared, tmp_path):
    config = TINY_CONFIGS[declared.name]()
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert saved == auto_map(declared.model_type)
    assert set(saved) == {"AutoConfig", *(head.auto_class for head in declared.heads)}
    for reference in saved.values():
        module, name = reference.split(".")
        assert module in (f"configuration_{declared.module}", f"modeling_{declared.module}")
        assert getattr(modeling, name).__module__.endswith(module)
    assert type(AutoConfig.from_pretrained(tmp_path)) is type(config)


@pytest.mark.parametrize(("declared", "head"), ALL_HEADS, ids=lambda value: getattr(value, "name", None))
def test_model_card_takes_pipeline_tag_auto_class_and_paper_from_the_table(declared, head):
    config = TINY_CONFIGS[declared.name](architectures=[head.name])
    card = build_model_card(config)
    assert f'pipeline_tag: "{head.pipeline_tag}"' in card
    assert f"(loads with `{head.auto_class}`)" in card and declared.paper_url in card
    assert f"{head.auto_class}.from_pretrained(" in card


def test_card_of_a_config_without_architectures_describes_the_default_head():
    for declared in FAMILIES:
        assert f"head: `{declared.heads[0].name}`" in build_model_card(TINY_CONFIGS[declared.name](architectures=None))


def test_conversion_sources_are_transformers_classes_with_a_converter_module():
    sources = convertible_classes()
    assert set(sources) == {name for _, head in ALL_HEADS for name in head.converts_from}
    for name, head in sources.items():
        source_class = getattr(transformers, name)
        converter = __import__(f"hf_visiontx.convert.{source_class.config_class.model_type}", fromlist=["x"])
        assert callable(converter.convert_config) and callable(converter.convert_state_dict)
        assert issubclass(getattr(modeling, head.name), transformers.PreTrainedModel)


def test_command_line_and_recipes_follow_the_table():
    names = [declared.name for declared in FAMILIES]
    parser = build_parser()
    for name in names:
        assert parser.parse_args(["train", name, "--output-dir", "out"]).family == name
        assert parser.parse_args(["demo", "--only", name]).only == [name]
        settings = family(name).recipe
        assert recipe(name).learning_rate == settings.small["learning_rate"]
        assert recipe(name, fine_tuning=True).batch_size == settings.fine_tuning["batch_size"]
        built = model_config(name)
        assert all(
            getattr(built, key) in (value, list(value) if isinstance(value, tuple) else value)
            for key, value in family(name).small_config.items()
        )
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "gpt", "--output-dir", "out"])
    with pytest.raises(ValueError, match="`family` must be one of"):
        recipe("gpt")


def test_lookups_name_the_choices():
    assert family("vit") is family("vtx_vit")
    with pytest.raises(ValueError, match="'transformer', 'vit', 'swin'"):
        family("bert")
    with pytest.raises(ValueError, match="VtxSwinBackbone"):
        family("vit").head("VtxSwinBackbone")


def test_a_head_added_to_the_table_reaches_registration_auto_map_and_cards(monkeypatch):
    """The edit docs/architecture.md shows: one `Head(...)` in the table plus the class."""

    class VtxViTForImageSimilarity(hf_visiontx.VtxViTModel):
        """A stand-in for a new head."""

    head = Head("VtxViTForImageSimilarity", "AutoModelForImageToImage", "image-to-image", "encode_image")
    vit = family("vit")
    monkeypatch.setattr(modeling, head.name, VtxViTForImageSimilarity, raising=False)
    object.__setattr__(vit, "heads", (*vit.heads, head))
    registry = transformers.AutoModelForImageToImage._model_mapping._extra_content
    try:
        register_auto_classes()
        assert registry[hf_visiontx.VtxViTConfig] is VtxViTForImageSimilarity
        assert hf_visiontx.VtxViTConfig().auto_map["AutoModelForImageToImage"] == f"modeling_vit.{head.name}"
        card = build_model_card(hf_visiontx.VtxViTConfig(architectures=[head.name]))
        assert 'pipeline_tag: "image-to-image"' in card
    finally:
        object.__setattr__(vit, "heads", tuple(h for h in vit.heads if h is not head))
        registry.pop(hf_visiontx.VtxViTConfig, None)
    assert head.name not in hf_visiontx.VtxViTConfig().auto_map.values()
    assert dataclasses.is_dataclass(families.VIT) and families.VIT.heads[-1].name != head.name


def test_analyze_refuses_a_family_the_table_gives_no_analysis(tmp_path, capsys):
    from hf_visiontx.apps.cli import main

    hf_visiontx.VtxTransformerModel(tiny_transformer_config()).save_pretrained(tmp_path / "transformer")
    (tmp_path / "image.png").write_bytes(b"")
    assert main(["analyze", str(tmp_path / "transformer"), str(tmp_path / "image.png"), "--out", str(tmp_path)]) == 1
    assert "holds a 'vtx_transformer' model; `analyze` draws ['vtx_vit', 'vtx_swin'] models" in capsys.readouterr().err


def test_every_training_option_is_a_train_command_option():
    """`hf-visiontx train` hands its options to TrainOptions by name: each field but `progress` needs one."""
    from hf_visiontx.training import TrainOptions

    parsed = vars(build_parser().parse_args(["train", "vit", "--output-dir", "out", "--no-progress"]))
    assert {field.name for field in dataclasses.fields(TrainOptions)} - set(parsed) == {"progress"}
