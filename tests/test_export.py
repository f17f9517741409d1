"""`hf-visiontx export MODEL OUT --to onnx`: ViT and Swin as ONNX graphs that ONNX Runtime runs like PyTorch."""

import importlib.util

import pytest
import torch
from transformers import ViTImageProcessorPil

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxSwinModel,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
)
from hf_visiontx.apps.cli import main
from hf_visiontx.export import export_onnx
from hf_visiontx.modeling import fast_paths
from support.swin_tester import tiny_swin_config
from support.transformer_tester import tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config

MODELS = {
    "vit": lambda: VtxViTForImageClassification(tiny_vit_config(num_labels=3)),
    "swin": lambda: VtxSwinForImageClassification(tiny_swin_config(num_labels=3)),
    "swin-base": lambda: VtxSwinModel(tiny_swin_config()),
}


def saved(name: str, directory):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    model.save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(directory)
    return model


@pytest.mark.slow  # each export traces the model with torch's dynamo exporter
@pytest.mark.parametrize(
    ("name", "outputs"), [("vit", ["logits"]), ("swin-base", ["last_hidden_state", "pooler_output"])]
)
def test_exported_graph_runs_in_onnx_runtime_like_pytorch_at_any_batch(tmp_path, capsys, name, outputs):
    import onnxruntime

    model = saved(name, tmp_path / name)
    assert main(["export", str(tmp_path / name), str(tmp_path / "onnx"), "--to", "onnx"]) == 0
    assert f"outputs {', '.join(outputs)}; ONNX Runtime agrees with PyTorch" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == outputs
    for batch in (1, 5):
        pixels = pixel_batch(batch=batch, seed=batch)
        exported = session.run(outputs, {"pixel_values": pixels.numpy()})
        with torch.no_grad():
            expected = model(pixel_values=pixels)
        for output, values in zip(outputs, exported, strict=True):
            torch.testing.assert_close(torch.from_numpy(values), expected[output], atol=1e-4, rtol=1e-4)
    assert {"config.json", "preprocessor_config.json", "model.onnx"} <= {p.name for p in (tmp_path / "onnx").iterdir()}


@pytest.mark.slow
def test_swin_classifier_exports_where_transformers_own_swin_does_not(tmp_path):
    saved("swin", tmp_path / "swin")
    report = export_onnx(tmp_path / "swin", tmp_path / "onnx")
    assert report.outputs == ("logits",) and report.max_abs_difference <= 1e-4


@pytest.mark.slow
def test_a_model_whose_mlp_runs_in_pieces_above_some_batch_exports_for_any_batch(tmp_path, monkeypatch):
    import onnxruntime

    # In eager inference the MLP runs in row pieces above a size (ViT-B/16: above batch 13); with pieces above 200
    # rows, the tiny ViT's export example (2 x 65 tokens) is below it and batch 5 above. The exporter must not
    # make that size test a guard on the batch (torch 2.13 then fails to solve its constraints).
    monkeypatch.setattr(fast_paths, "MLP_CHUNK_BYTES", 100 * tiny_vit_config().intermediate_size * 4)
    model = saved("vit", tmp_path / "vit")
    report = export_onnx(tmp_path / "vit", tmp_path / "onnx")
    assert report.max_abs_difference <= 1e-4
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    pixels = pixel_batch(batch=5)
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)


def test_export_refuses_what_it_cannot_do(tmp_path, capsys, monkeypatch):
    VtxTransformerForConditionalGeneration(tiny_transformer_config()).save_pretrained(tmp_path / "translator")
    assert main(["export", str(tmp_path / "translator"), str(tmp_path / "out")]) == 1
    assert (
        "is a 'vtx_transformer' model; `export --to onnx` takes vtx_vit, vtx_swin models (a Transformer translator "
        "exports with `--to ctranslate2`)" in capsys.readouterr().err
    )
    saved("vit", tmp_path / "vit")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("mine")
    assert main(["export", str(tmp_path / "vit"), str(tmp_path / "taken")]) == 1
    assert "`out_dir`" in capsys.readouterr().err and (tmp_path / "taken" / "mine.txt").read_text() == "mine"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnxscript" else find_spec(name))
    assert main(["export", str(tmp_path / "vit"), str(tmp_path / "out")]) == 1
    assert "needs onnxscript: `pip install hf_visiontx[onnx]`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
