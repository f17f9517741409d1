"""Speed-only paths: code that exists because it is faster, not because a paper describes it.

The model files call into this module at the few places where a faster route exists; every path here gives the
same result as the plain one (up to float rounding) and can be switched off.

Few-row linear layers (`linear`, opened by `few_row_linears`): while a Transformer decodes token by token, each
projection multiplies 1 to 64 rows (batch x beams) by a large weight, where MKL's sgemm behind `F.linear` reaches
about half of the memory bandwidth. Inside a `few_row_linears(decoder, lm_head)` block (which the Transformer's
`generate()` opens), their plain `nn.Linear` layers run oneDNN's matmul instead: on the weight as it is for one row, and on a
copy of the weight packed once for the block for 2 to `FEW_ROWS_MAX` rows (the copy costs the weight's memory once
more until the block ends). Everything else takes the layer's own forward: training, more rows, other dtypes and
devices, `torch.compile` / `torch.export`, and any layer that is not exactly `nn.Linear` or that carries hooks or a
replaced forward (quantized, PEFT-wrapped or offloaded layers stay untouched). The layers themselves stay plain
`nn.Linear` modules: tools that match module types (quantizers, PEFT) see them as such at all times.
Environment variable HF_VISIONTX_PREPACK=0 turns the path off (read once).

The path leans on torch's private oneDNN operators (`torch.ops.mkldnn._linear_pointwise`,
`torch.ops.mkldnn._reorder_linear_weight`) and on `torch.nn.modules.module`'s global hook dictionaries; the tests in
`tests/test_fast_paths.py` fail loudly when a torch upgrade removes or changes them.
"""

import contextlib
import functools
import os
import weakref
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules import module as torch_module

FEW_ROWS_MAX = 64  # up to this many rows oneDNN on a packed weight beats F.linear (MKL) on CPU


@functools.cache
def few_row_linears_available() -> bool:
    """Whether this torch build has oneDNN's linear operators and the user has not turned the path off
    (HF_VISIONTX_PREPACK=0, read at the first call)."""
    return (
        os.environ.get("HF_VISIONTX_PREPACK", "1") != "0"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


class _PackedWeight:
    """A layer's weight re-laid-out for oneDNN, the (storage, version, shape) of the weight it was made from, and how
    many open `few_row_linears` blocks allow the layer."""

    __slots__ = ("source", "packed", "users")

    def __init__(self):
        self.source, self.packed, self.users = None, None, 0

    def of(self, weight: torch.Tensor) -> torch.Tensor:
        """The packed copy of `weight`, made again whenever the weight was replaced or changed in place."""
        version = None if weight.is_inference() else weight._version  # inference tensors have no version counter
        source = (weight.data_ptr(), version, weight.shape)
        if source != self.source:
            self.packed = None  # free the old copy before packing the new one
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 16)
            self.source = source
        return self.packed


_OPEN_LAYERS: "weakref.WeakKeyDictionary[nn.Linear, _PackedWeight]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def few_row_linears(*modules: nn.Module) -> Iterator[None]:
    """Within the block, `linear(layer, inputs)` may run the plain `nn.Linear` layers of `modules` on oneDNN (packed
    copies made on first use, dropped when the outermost block for the layer ends). The Transformer's `generate()`
    opens one over its decoder and output layer, which multiply few rows per step; the encoder runs once per call
    and is left out, so that its weights are not packed for nothing.

    The copies are scoped to the block because they can be trusted only while the weights cannot change behind them:
    fused AdamW and writes through `.data` update a parameter without bumping its version counter, so a copy kept
    across training steps could go stale.
    """
    if not few_row_linears_available():
        yield
        return
    layers = list({id(layer): layer for module in modules for layer in module.modules() if type(layer) is nn.Linear}.values())
    for layer in layers:
        state = _OPEN_LAYERS.get(layer)
        if state is None:
            state = _OPEN_LAYERS[layer] = _PackedWeight()
        state.users += 1
    try:
        yield
    finally:
        for layer in layers:
            state = _OPEN_LAYERS[layer]
            state.users -= 1
            if state.users == 0:
                del _OPEN_LAYERS[layer]


def _runs_as_written(layer: nn.Linear) -> bool:
    """Whether calling `layer` would run exactly `nn.Linear.forward`: no module or global hooks, no replaced forward."""
    return not (
        layer._forward_hooks
        or layer._forward_pre_hooks
        or "forward" in layer.__dict__
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    )


def linear(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """`layer(inputs)`, computed by oneDNN when `layer` is a plain `nn.Linear` inside a `few_row_linears` block and
    the call multiplies at most `FEW_ROWS_MAX` float32 rows on CPU without autograd.

    Args:
        layer: any module mapping [..., in_features] to [..., out_features].
        inputs: [..., in_features].
    """
    state = _OPEN_LAYERS.get(layer) if _OPEN_LAYERS else None
    if state is None:
        return layer(inputs)
    weight, bias = layer.weight, layer.bias
    if not (
        inputs.numel() <= FEW_ROWS_MAX * layer.in_features
        and not torch.is_grad_enabled()
        and inputs.dtype == weight.dtype == torch.float32
        and inputs.device.type == "cpu"
        and type(weight) is nn.Parameter
        and not torch.compiler.is_compiling()
        and _runs_as_written(layer)
    ):
        return layer(inputs)
    if inputs.numel() == layer.in_features:  # one row: oneDNN's kernel gains without packing
        return torch.ops.mkldnn._linear_pointwise(inputs.contiguous(), weight, bias, "none", [], "")
    return torch.ops.mkldnn._linear_pointwise(inputs.contiguous(), state.of(weight), bias, "none", [], "")


__all__ = ["FEW_ROWS_MAX", "few_row_linears", "few_row_linears_available", "linear"]
