"""Model cards written by save_pretrained and write_model_card, read back with huggingface_hub's ModelCard."""

import pytest
from huggingface_hub import ModelCard

from hf_visiontx import VtxSwinBackbone, VtxTransformerConfig, VtxViTConfig
from hf_visiontx.hub import write_model_card
from hf_visiontx.modeling.card_text import build_model_card, matching_preset
from support.swin_tester import tiny_swin_config


def test_presets_are_recognised_and_custom_sizes_are_not():
    assert matching_preset(VtxViTConfig.from_preset("b/16", num_labels=10, hidden_dropout_prob=0.1)) == "b/16"
    assert matching_preset(VtxViTConfig.from_preset("r50+b/16")) == "r50+b/16"
    assert matching_preset(VtxViTConfig.from_preset("b/16", num_hidden_layers=6)) is None
    assert matching_preset(VtxTransformerConfig.from_preset("big", dropout=0.1)) == "big"
    card = ModelCard(build_model_card(VtxViTConfig.from_preset("l/16")))
    assert "preset-l-16" in card.data.tags and "- preset: `l/16`" in card.content
    assert "24 layers, width 1024, 16 heads, MLP 4096" in card.content


def test_saved_card_with_metrics_keeps_descriptions_out_of_the_dataset_ids(tmp_path):
    model = VtxSwinBackbone(tiny_swin_config())
    model.save_pretrained(tmp_path)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction" and "AutoBackbone.from_pretrained(repo" in card.content
    description = "scikit-learn's digits (1,797 grey 8x8 images)"
    write_model_card(tmp_path, datasets=[description], metrics={"accuracy": 0.975}, base_model="user/base")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.datasets is None and card.data.base_model == "user/base"
    result = card.data.eval_results[0]
    assert (result.dataset_type, result.dataset_name, result.metric_value) == ("custom", description, 0.975)
    assert f"## Training data\n\n- {description}" in card.content and "| accuracy | 0.975 |" in card.content
    write_model_card(tmp_path)  # nothing given: what the card recorded is kept
    assert ModelCard.load(tmp_path / "README.md").data.eval_results[0].metric_value == 0.975


def test_a_hand_written_card_is_never_overwritten(tmp_path):
    model = VtxSwinBackbone(tiny_swin_config())
    (tmp_path / "README.md").write_text("# My own notes\n")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# My own notes\n"
    with pytest.raises(ValueError, match="written by hand"):
        write_model_card(tmp_path, metrics={"accuracy": 1.0})
