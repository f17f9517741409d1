"""Saved models into the formats of the engines users deploy with.

    from hf_visiontx.export import export_onnx
    report = export_onnx("runs/vit", "runs/vit-onnx")   # model.onnx + config + image processor, checked

`hf-visiontx export MODEL OUT --to onnx` is the same from the command line.
"""

from .onnx import OnnxExport, export_onnx

__all__ = ["OnnxExport", "export_onnx"]
