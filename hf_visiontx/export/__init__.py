"""Saved models into the formats of the engines users deploy with.

    from hf_visiontx.export import export_ctranslate2, export_onnx
    report = export_onnx("runs/vit", "runs/vit-onnx")   # model.onnx + config + image processor, checked
    report = export_ctranslate2("runs/translator", "runs/translator-ct2", quantization="int8")  # checked

`hf-visiontx export MODEL OUT --to {onnx,ctranslate2}` is the same from the command line.
"""

from .ctranslate2 import CTranslate2Export, export_ctranslate2
from .onnx import OnnxExport, export_onnx

__all__ = ["CTranslate2Export", "OnnxExport", "export_ctranslate2", "export_onnx"]
