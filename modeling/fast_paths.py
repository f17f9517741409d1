"""Speed-only paths: code that exists because it is faster, not because a paper describes it.

The model files call into this module at the few places where a faster route exists, each with a one-line detour;
every path here gives the same result as the plain one (up to float rounding) and has one switch: a module-level
flag, set from an environment variable when the module is imported (`0` turns the path off) and read at each call,
so that `fast_paths.DIRECT_SDPA = False` at run time works too. A model loaded as Hub remote code imports its own
copy of this module: there only the environment variables reach it.

The paths, each with its flag and environment variable:
- few-row linear layers on oneDNN during `generate()` (`few_row_linears`, `linear`), in eager mode and inside a
  compiled decoding step (`few_row_linear`; one row there as a reduction inductor generates, `_one_row_linear`):
  `FEW_ROW_LINEARS`, HF_VISIONTX_PREPACK; with packed copies of the weights for 2 rows or more only when asked
  (`PACK_WEIGHTS`, HF_VISIONTX_PACK_WEIGHTS=1: off by default); on an Intel CPU calls of few rows or little work stay
  with `F.linear` (`MKL_FEW_ROWS`, HF_VISIONTX_MKL_FEW_ROWS=0 or 1 to decide instead of the CPU's vendor); under the
  same switch, few rows through torchao's dynamic int8 weights on fbgemm (`_int8_linear`);
- in inference outside decoding steps too, linear layers on oneDNN where it is the faster (`linear`), the MLP's first
  one over many rows with its non-linearity fused (`projected_and_activated`): `ONEDNN_LINEARS`,
  HF_VISIONTX_ONEDNN_LINEARS;
- in inference, torchao's weight-only int8 weights converted to float32 a cache-sized piece at a time instead of
  whole (`_weight_only_int8_linear`, through `linear`): `WEIGHT_ONLY_PIECES`, HF_VISIONTX_WEIGHT_ONLY_PIECES;
- `generate()` compiles its decoding step on CPU when the caller passes a `compile_config` (`FastDecodingMixin`):
  `COMPILE_ON_CPU`, HF_VISIONTX_COMPILE_ON_CPU;
- sdpa called directly, past transformers' wrapper (`direct_sdpa`, `sdpa_attention_forward`), and in a compiled
  decoding step one query's attention as reductions inductor generates (`_one_query_attention`): `DIRECT_SDPA`,
  HF_VISIONTX_DIRECT_SDPA;
- attention masks left out where they mask nothing (`padding_free`, `causal_mask_needless`): `SKIP_NEEDLESS_MASKS`,
  HF_VISIONTX_SKIP_MASKS;
- minimum-length logits processors that find the end-of-sequence columns once and fill only them
  (`FastDecodingMixin`): `CACHED_EOS_MASKS`, HF_VISIONTX_CACHED_EOS_MASKS;
- the MLP run in row pieces when its inner activation would be huge (`in_row_pieces`): `MLP_ROW_PIECES`,
  HF_VISIONTX_MLP_PIECES;
- in inference, the MLP's activation written over the first projection's output (`activated_in_place`):
  `IN_PLACE_ACTIVATIONS`, HF_VISIONTX_IN_PLACE_ACTIVATIONS;
- in training, the MLP's activated inner tensor recomputed in the backward pass instead of kept beside its input
  (`activation_recomputed`): `RECOMPUTE_ACTIVATIONS`, HF_VISIONTX_RECOMPUTE_ACTIVATIONS;
- the cross-entropy's gradient over the vocabulary made in one tensor instead of two (`summed_cross_entropy`):
  `FUSED_CROSS_ENTROPY`, HF_VISIONTX_FUSED_CROSS_ENTROPY;
- the ViT classifier's last layer computed for the [CLS] token only (`last_layer_query_tokens`):
  `CLS_ONLY_LAST_LAYER`, HF_VISIONTX_CLS_ONLY;
- Swin's shift masks kept by each block for reuse (`BoundedTensorCache`): `CACHE_SHIFT_MASKS`,
  HF_VISIONTX_MASK_CACHE.

Some paths lean on private APIs of torch or transformers: torch's oneDNN operators
(`torch.ops.mkldnn._linear_pointwise`, `torch.ops.mkldnn._reorder_linear_weight`) and `torch.nn.modules.module`'s
global hook dictionaries (few-row linears); fbgemm's `quantized::linear_prepack` and
`quantized::linear_with_input_q_dq_qweight_dq_output_fp32`, and the attributes of torchao's `Int8Tensor` (int8
rows); transformers' `sdpa_attention_forward` and the `ALL_ATTENTION_FUNCTIONS` registry (direct sdpa);
`Cache.is_compileable` (needless masks); `GenerationMixin._get_logits_processor` and the attributes of the
minimum-length processors (cached end-of-sequence columns); `GenerationMixin._valid_auto_compile_criteria` and
`CompileConfig._compile_all_devices` (compiled decoding on CPU); torch's
`_top_saved_tensors_default_hooks` (recomputed activations); `torch.ops.aten.gelu_` and the `act` attribute of
transformers' `GELUActivation` (in-place activations); oneDNN's post-op names and the `act` attribute of
transformers' `GELUTanh` (many-row linears). `tests/test_fast_paths.py` (for the int8 rows, which
need torchao, `tests/test_quantization.py`) has, for each path, a test that it is taken and equals the plain path,
and a test that fails loudly when an upgrade removes or changes what it leans on.
"""

import contextlib
import copy
import functools
import math
import os
import platform
import struct
import sys
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as torch_module
from transformers import GenerationConfig, LogitsProcessorList
from transformers.activations import GELUActivation, GELUTanh, NewGELUActivation, SiLUActivation
from transformers.cache_utils import Cache
from transformers.generation.logits_process import MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor
from transformers.integrations.sdpa_attention import sdpa_attention_forward as transformers_sdpa_attention_forward
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


def _switch(variable: str) -> bool:
    """A path's switch as the environment sets it: on unless the variable is "0"."""
    return os.environ.get(variable, "1") != "0"


FEW_ROW_LINEARS = _switch("HF_VISIONTX_PREPACK")
DIRECT_SDPA = _switch("HF_VISIONTX_DIRECT_SDPA")
SKIP_NEEDLESS_MASKS = _switch("HF_VISIONTX_SKIP_MASKS")
CACHED_EOS_MASKS = _switch("HF_VISIONTX_CACHED_EOS_MASKS")
MLP_ROW_PIECES = _switch("HF_VISIONTX_MLP_PIECES")
CLS_ONLY_LAST_LAYER = _switch("HF_VISIONTX_CLS_ONLY")
CACHE_SHIFT_MASKS = _switch("HF_VISIONTX_MASK_CACHE")
COMPILE_ON_CPU = _switch("HF_VISIONTX_COMPILE_ON_CPU")
RECOMPUTE_ACTIVATIONS = _switch("HF_VISIONTX_RECOMPUTE_ACTIVATIONS")
FUSED_CROSS_ENTROPY = _switch("HF_VISIONTX_FUSED_CROSS_ENTROPY")
IN_PLACE_ACTIVATIONS = _switch("HF_VISIONTX_IN_PLACE_ACTIVATIONS")
ONEDNN_LINEARS = _switch("HF_VISIONTX_ONEDNN_LINEARS")
WEIGHT_ONLY_PIECES = _switch("HF_VISIONTX_WEIGHT_ONLY_PIECES")
PACK_WEIGHTS = os.environ.get("HF_VISIONTX_PACK_WEIGHTS", "0") == "1"  # opt-in: trades memory for speed


def _intel_cpu_with_mkl() -> bool:
    """Whether `F.linear` runs on MKL on an Intel CPU, where MKL takes kernels of its own (on other CPUs, generic
    ones): torch is built with MKL and the CPU's vendor is GenuineIntel."""
    if not torch.backends.mkl.is_available():
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            vendor = next((line for line in cpuinfo if line.startswith("vendor_id")), "")
    except OSError:  # not Linux: Windows names the vendor here, macOS does not (and its Intel Macs are rare)
        vendor = platform.processor()
    return "GenuineIntel" in vendor


def _mkl_few_rows_setting() -> bool:
    """`MKL_FEW_ROWS` as HF_VISIONTX_MKL_FEW_ROWS sets it ("1" or "0"), or else as the CPU's vendor decides."""
    variable = os.environ.get("HF_VISIONTX_MKL_FEW_ROWS")
    return variable == "1" if variable in ("0", "1") else _intel_cpu_with_mkl()


MKL_FEW_ROWS = _mkl_few_rows_setting()


# --- few-row linear layers --------------------------------------------------------------------------------------
# While a Transformer decodes token by token, each projection multiplies 1 to 64 rows (batch x beams) by a large
# weight, a case MKL's sgemm behind `F.linear` handles poorly. Inside a `few_row_linears(decoder, lm_head)` block
# (which `FastDecodingMixin.generate` opens), their plain `nn.Linear` layers run oneDNN's matmul instead, on the
# weight as it is, for 1 to `FEW_ROWS_MAX` rows, when the weight is large enough (`FEW_ROW_MIN_WEIGHT`) that
# oneDNN's fixed cost per call pays off (`_onednn_faster`; on an Intel CPU, where MKL's matrix-vector kernels are
# fast, `F.linear` keeps the calls of few rows or little work: `MKL_FEW_ROWS`). For 2 rows or more oneDNN is faster
# still on a copy of the weight re-laid-out ("packed") for it, but the copies hold the decoder's weights a second
# time for the duration of the block, which puts the peak memory of batched and beam decoding far above
# transformers' models: they are made only when `PACK_WEIGHTS` asks for them, once per layer and block. Everything
# else takes the layer's own forward: training, more rows, other dtypes and devices, and any layer that is not exactly
# `nn.Linear` or that carries hooks or a replaced forward (quantized, PEFT-wrapped or offloaded layers stay
# untouched). The layers themselves stay plain `nn.Linear` modules at all times.
#
# Under `torch.compile` (a decoding step that `generate()` compiles) inductor would run every projection through
# MKL's sgemm (`addmm`), and it lowers oneDNN's operator only for weights frozen into the graph. So inside an open
# block a compiled projection of 2 to `FEW_ROWS_MAX` rows calls `few_row_linear`, a custom operator that inductor
# leaves as a call to oneDNN on the weight as it is. One row (greedy decoding of one sequence) is written as a product
# summed over the input features (`_one_row_linear`): inductor generates a reduction kernel for it that streams the
# weight faster than either library's matrix-vector call and joins the step's other operations in one graph. Every
# graph traced outside a block (`torch.export` included) keeps the layer's own forward.

FEW_ROWS_MAX = 64  # up to this many rows oneDNN beats F.linear (MKL) on CPU
FEW_ROW_MIN_WEIGHT = 1 << 18  # below this many weight elements oneDNN's fixed cost per call outweighs its gain
# On an Intel CPU (`MKL_FEW_ROWS`) MKL multiplies up to 3 rows with kernels of its own, which stream any weight
# faster than oneDNN; from 4 rows on it changes kernels, and oneDNN is the faster once its fixed cost per call (about
# 35 us there) is small beside the work: from about 2^23 multiply-adds (bench_linear.py: a 512x512 weight from 32
# rows, 512x2048 from 8, a 512x32000 output layer from 4).
MKL_FEWEST_ROWS = 4  # with `MKL_FEW_ROWS`, F.linear keeps calls of fewer rows ...
MKL_LEAST_WORK = 1 << 23  # ... and of fewer than this many multiply-adds (rows x weight elements)


@functools.cache
def _onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's linear operators."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


def few_row_linears_available() -> bool:
    """Whether `few_row_linears` blocks take effect: the switch is on and torch has oneDNN's linear operators."""
    return FEW_ROW_LINEARS and _onednn_linear_available()


class _PackedWeight:
    """A layer's weight re-laid-out for oneDNN (or, for torchao's dynamic int8, packed for fbgemm), the tensors it
    was made from (storage, version, shape of each), and how many open `few_row_linears` blocks allow the layer."""

    __slots__ = ("packed", "source", "users")

    def __init__(self):
        self.source, self.packed, self.users = None, None, 0

    def of(self, *sources: torch.Tensor | None, pack: Callable[..., object]) -> object:
        """`pack(*sources)`, made again whenever one of `sources` was replaced or changed in place."""
        key = tuple(_identity(tensor) for tensor in sources)
        if key != self.source:
            self.packed = None  # free the old copy before packing the new one
            self.packed = pack(*sources)
            self.source = key
        return self.packed


def _identity(tensor: torch.Tensor | None) -> tuple | None:
    """What tells a tensor's contents apart: its storage, version (inference tensors have none) and shape."""
    if tensor is None:
        return None
    return tensor.data_ptr(), None if tensor.is_inference() else tensor._version, tensor.shape


def _pack_for_onednn(weight: torch.Tensor) -> torch.Tensor:
    """`weight` [out, in] re-laid-out for oneDNN's matmul."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 16)


_OPEN_LAYERS: "weakref.WeakKeyDictionary[nn.Linear, _PackedWeight]" = weakref.WeakKeyDictionary()
_OPEN_BLOCKS = 0  # how many `few_row_linears` blocks are open; what a compiled graph reads (and guards on)


def _onednn_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """inputs [..., in_features] @ weight [out, in]^T + bias by oneDNN's matmul (weight as it is, or packed)."""
    return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")


def _define_few_row_linear() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The operator `hf_visiontx::few_row_linear`, defined on first import. A model loaded as Hub remote code
    imports its own copy of this module: the copy finds the operator already defined and uses it."""
    namespace = torch.ops.hf_visiontx
    if hasattr(namespace, "few_row_linear"):
        return namespace.few_row_linear

    @torch.library.custom_op("hf_visiontx::few_row_linear", mutates_args=())
    def few_row_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """inputs [..., in_features] @ weight [out, in]^T + bias, by oneDNN's matmul."""
        return _onednn_linear(inputs, weight, bias)

    @few_row_linear.register_fake
    def _(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return inputs.new_empty(*inputs.shape[:-1], weight.shape[0])  # [..., in] -> [..., out]

    return few_row_linear


few_row_linear = _define_few_row_linear()


@contextlib.contextmanager
def few_row_linears(*modules: nn.Module) -> Iterator[None]:
    """Within the block, `linear(layer, inputs)` may run the plain `nn.Linear` layers of `modules` on oneDNN (with
    `PACK_WEIGHTS`, on packed copies made on first use and dropped when the outermost block for the layer ends).
    `FastDecodingMixin.generate` opens one over the decoder and output layer, which multiply few rows per step; the
    encoder runs once per call and is left out.

    Packed copies are scoped to the block because they can be trusted only while the weights cannot change behind them:
    fused AdamW and writes through `.data` update a parameter without bumping its version counter, so a copy kept
    across training steps could go stale.
    """
    global _OPEN_BLOCKS
    if not few_row_linears_available():
        yield
        return
    layers = list(
        {id(layer): layer for module in modules for layer in module.modules() if type(layer) is nn.Linear}.values()
    )
    for layer in layers:
        state = _OPEN_LAYERS.get(layer)
        if state is None:
            state = _OPEN_LAYERS[layer] = _PackedWeight()
        state.users += 1
    _OPEN_BLOCKS += 1
    try:
        yield
    finally:
        _OPEN_BLOCKS -= 1
        for layer in layers:
            state = _OPEN_LAYERS[layer]
            state.users -= 1
            if state.users == 0:
                del _OPEN_LAYERS[layer]


def _onednn_faster(rows: int, weight: torch.Tensor) -> bool:
    """Whether oneDNN multiplies `rows` float32 rows by `weight` faster than `F.linear` does: for weights of at least
    `FEW_ROW_MIN_WEIGHT` elements, and on an Intel CPU (`MKL_FEW_ROWS`) only from `MKL_FEWEST_ROWS` rows and
    `MKL_LEAST_WORK` multiply-adds on."""
    if MKL_FEW_ROWS and rows < MKL_FEWEST_ROWS:
        return False
    elements = weight.numel()
    return elements >= FEW_ROW_MIN_WEIGHT and not (MKL_FEW_ROWS and rows * elements < MKL_LEAST_WORK)


def _runs_as_written(layer: nn.Module) -> bool:
    """Whether calling `layer` would run exactly its class's forward: no module or global hooks, no replaced
    forward."""
    return not (
        layer._forward_hooks
        or layer._forward_pre_hooks
        or "forward" in layer.__dict__
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    )


def linear(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """`layer(inputs)`, computed by oneDNN when `layer` is a plain `nn.Linear` inside a `few_row_linears` block and
    the call multiplies at most `FEW_ROWS_MAX` float32 rows on CPU without autograd where oneDNN is the faster
    (`_onednn_faster`: by the weight's size and, on an Intel CPU, the rows; in a compiled graph traced inside such
    a block, through `few_row_linear`); by fbgemm when the weight is torchao's dynamic int8 (`_int8_linear`, same
    conditions but the weight's size and the rows); by oneDNN too, in or out of a block, for an inference call of
    more rows and enough work, or of few rows where oneDNN is the faster (`_onednn_inference_call`).

    Args:
        layer: any module mapping [..., in_features] to [..., out_features].
        inputs: [..., in_features].
    """
    if torch.compiler.is_compiling():
        return _compiled_linear(layer, inputs)
    # The checks run at every projection of every decoding step, between matmuls that have just evicted the
    # interpreter's data from the caches: the cheapest reason to leave the call to the layer comes first.
    state = _OPEN_LAYERS.get(layer) if _OPEN_LAYERS else None
    if state is None:
        return _inference_linear(layer, inputs)
    weight, bias = layer.weight, layer.bias
    if type(weight) is not nn.Parameter:  # a tensor subclass: torchao's int8 weights, or another library's
        packed = _int8_packed_weights(layer) if _few_row_inference_call(layer, inputs) else None
        return _inference_linear(layer, inputs) if packed is None else _int8_linear(inputs, packed, bias)
    if not _onednn_call(layer, inputs):
        return _inference_linear(layer, inputs)
    if PACK_WEIGHTS and inputs.numel() > layer.in_features:  # one row gains nothing from packing
        weight = state.of(weight, pack=_pack_for_onednn)
    return _onednn_linear(inputs.contiguous(), weight, bias)


def _onednn_call(layer: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether the few-row path runs this call of `layer` on oneDNN: float32 weights (a plain parameter, not a
    tensor subclass) where oneDNN is the faster, and a call the path may take (`_few_row_inference_call`)."""
    weight = layer.weight
    return (
        type(weight) is nn.Parameter
        and _onednn_faster(inputs.numel() // layer.in_features, weight)
        and weight.dtype == torch.float32
        and _few_row_inference_call(layer, inputs)
    )


def _few_row_inference_call(layer: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether a call of `layer` multiplies at most `FEW_ROWS_MAX` rows and is a plain inference call
    (`_plain_inference_call`): what both few-row paths (oneDNN and int8) require of the call."""
    return inputs.numel() <= FEW_ROWS_MAX * layer.in_features and _plain_inference_call(layer, inputs)


def _plain_inference_call(layer: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether a call of `layer` multiplies float32 rows on CPU without autograd or autocast, outside tracing and
    torch.func transforms, and runs exactly `nn.Linear.forward`: what every path that replaces `F.linear` requires
    of the call."""
    return (
        not torch.is_grad_enabled()
        and inputs.dtype == torch.float32
        and inputs.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")  # autocast would have F.linear compute in its lower precision
        and not torch.jit.is_tracing()  # a traced graph must hold the layer's own operator, which exporters know
        and not torch._C._are_functorch_transforms_active()  # vmap, grad: no rules for oneDNN's or fbgemm's ops
        and _runs_as_written(layer)
    )


# --- linear layers in inference outside decoding steps ---------------------------------------------------------
# `F.linear` hands a projection of many rows (an image's tokens, the encoder's sentences) to MKL as `addmm`, which
# first copies the bias into every row of a fresh output and then multiplies into it; oneDNN's matmul adds the bias
# as it writes the product, and can apply the MLP's non-linearity in the same pass. In inference, a call of a plain
# `nn.Linear` on float32 rows on CPU runs oneDNN (`linear`, in or out of a `few_row_linears` block) when it multiplies
# more than `FEW_ROWS_MAX` rows with at least `MANY_ROW_LEAST_WORK` multiply-adds (below that oneDNN's fixed cost per
# call outweighs its gain), or fewer rows where the few-row rule finds oneDNN the faster (`_onednn_faster`; under
# `FEW_ROW_LINEARS` too, so that its switch keeps every call of few rows on `F.linear`). Over many rows the MLP's
# first projection runs with its non-linearity fused where oneDNN computes the same function
# (`projected_and_activated`): GELU, exact or tanh, ReLU, SiLU (at a few rows fusing was no faster).
# `bench_linear.py --many-rows` times both libraries at the models' shapes. The results equal `F.linear`'s up to
# float rounding: the two libraries sum in different orders. Training, autocast, other dtypes and devices, and
# layers that are not exactly `nn.Linear` or carry hooks keep the layer's own forward, as in the few-row path.

MANY_ROW_LEAST_WORK = 1 << 24  # multiply-adds (rows x weight elements) from which oneDNN beats F.linear on many rows


def _onednn_inference_call(layer: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether `linear` runs this call of `layer` on oneDNN outside the few-row path: a plain inference call
    (`_plain_inference_call`), through a plain `nn.Linear` with a float32 weight on CPU (a plain parameter, not a
    tensor subclass); more than `FEW_ROWS_MAX` rows with at least `MANY_ROW_LEAST_WORK` multiply-adds, or fewer
    where `_onednn_faster` says so and `FEW_ROW_LINEARS` is on."""
    if not (ONEDNN_LINEARS and type(layer) is nn.Linear and type(inputs) is torch.Tensor):
        return False
    weight = layer.weight
    rows = inputs.numel() // layer.in_features
    if rows > FEW_ROWS_MAX:
        faster = rows * weight.numel() >= MANY_ROW_LEAST_WORK
    else:
        faster = FEW_ROW_LINEARS and rows > 0 and _onednn_faster(rows, weight)
    return (
        faster
        and inputs.shape[-1] == layer.in_features  # any other shape gets F.linear's own error
        and type(weight) is nn.Parameter
        and weight.dtype == torch.float32
        and weight.is_cpu
        and _onednn_linear_available()
        and _plain_inference_call(layer, inputs)
    )


def _inference_linear(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """`layer(inputs)`, by oneDNN's matmul when `_onednn_inference_call` takes the call, and through torchao's
    weight-only int8 weights a piece at a time when `_weight_only_int8_call` does."""
    if type(layer) is nn.Linear and type(layer.weight) is not nn.Parameter:  # a tensor subclass, which oneDNN's
        # path never takes: torchao's int8 weights, or another library's
        if _weight_only_int8_call(layer, inputs):
            return _weight_only_int8_linear(inputs, layer.weight.qdata, layer.weight.scale, layer.bias)
        return layer(inputs)
    if _onednn_inference_call(layer, inputs):
        return _onednn_linear(inputs.contiguous(), layer.weight, layer.bias)
    return layer(inputs)


def _onednn_activated_linear(
    inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post_op: tuple[str, list, str]
) -> torch.Tensor:
    """The non-linearity `post_op` (from `_onednn_post_op`) of inputs [..., in] @ weight [out, in]^T + bias, in one
    pass of oneDNN's matmul."""
    return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, *post_op)


def _onednn_post_op(activation: nn.Module) -> tuple[str, list, str] | None:
    """oneDNN's name, scalars and algorithm for `activation` applied as the matmul writes its output, for the
    non-linearities where oneDNN computes the same function (up to float rounding): transformers' exact GELU, its
    tanh GELUs (GPT-2's "gelu_new", "gelu_pytorch_tanh"), ReLU, SiLU ("swish", "silu"); None for any other."""
    kind = type(activation)
    if kind is GELUActivation and activation.act is F.gelu:
        return "gelu", [], "none"
    if kind is NewGELUActivation or (kind is GELUTanh and _is_tanh_gelu(activation.act)):
        return "gelu", [], "tanh"
    if kind is nn.ReLU:
        return "relu", [], ""
    if kind is nn.SiLU or kind is SiLUActivation:
        return "swish", [], ""
    return None


def _is_tanh_gelu(function: Callable) -> bool:
    """Whether `function` is `F.gelu` with `approximate="tanh"` bound (what transformers' `GELUTanh` holds)."""
    return (
        isinstance(function, functools.partial)
        and function.func is F.gelu
        and not function.args
        and function.keywords == {"approximate": "tanh"}
    )


def projected_and_activated(
    layer: nn.Module, activation: nn.Module, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's first projection and its non-linearity: `layer(inputs)` (through `linear`) and `activation` of it.

    In inference the two may be one tensor: computed in one oneDNN pass for more than `FEW_ROWS_MAX` rows that
    `_onednn_inference_call` takes, where oneDNN has the non-linearity (`_onednn_post_op`, and no hooks on
    `activation`), or the non-linearity written over the projection's output (`activated_in_place`). Nothing reads
    the projection's output then.

    Args:
        layer: the projection, [..., in_features] -> [..., intermediate_size].
        activation: the non-linearity.
        inputs: [..., in_features].
    Returns:
        the projection's output and the activated tensor, each [..., intermediate_size] (the same tensor when they
        were computed as one).
    """
    if (  # compiling first (a size test would guard an exported graph), then the row count: a decoding step's few
        # rows leave at once for `linear`
        not torch.compiler.is_compiling()
        and type(layer) is nn.Linear
        and inputs.numel() > FEW_ROWS_MAX * layer.in_features
        and _onednn_inference_call(layer, inputs)
        and _runs_as_written(activation)
    ):
        post_op = _onednn_post_op(activation)
        if post_op is not None:
            activated = _onednn_activated_linear(inputs.contiguous(), layer.weight, layer.bias, post_op)
            return activated, activated
    projected = linear(layer, inputs)
    return projected, activated_in_place(activation, layer, projected)


# --- few rows through torchao's dynamic int8 weights -------------------------------------------------------------
# torchao's dynamic int8 (`Int8DynamicActivationInt8WeightConfig`) quantises each row of activations to int8 at
# every call (symmetric, one scale per row), multiplies int8 by int8 into int32 and rescales by both scales. Eager on
# CPU it does that in a dozen separate operations around a `torch._int_mm` no faster than float32's matmul, so
# decoding in int8 ran below float32 speed. Inside a `few_row_linears` block, up to `FEW_ROWS_MAX` rows take
# fbgemm's int8 matmul instead (`quantized::linear_with_input_q_dq_qweight_dq_output_fp32`): the rows, scaled by
# torchao's scale for each, are handed over at scale 1, which fbgemm rounds and saturates to int8 exactly as torchao
# does, multiplied in int32 by the int8 weights and rescaled: torchao's result up to float rounding. fbgemm wants the
# weights packed: an int8 copy (a quarter of the float32 weights' size), made on a layer's first such call and kept
# with the layer. Every other int8 scheme keeps torchao's own path.

_INT8_ROW_SCALE_DIVISOR = 127.5  # torchao's symmetric int8 scale: max |x| / ((127 - (-128)) / 2)
_INT8_ZERO_POINT = 128  # fbgemm reads the rows as uint8: torchao's int8 values shifted by 128
_FLOAT32_EPS = torch.finfo(torch.float32).eps  # torchao's floor for a scale


@functools.cache
def _int8_kernel_available() -> bool:
    """Whether this torch build has fbgemm's int8 linear with float32 input and output."""
    return hasattr(torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32") and any(
        engine in torch.backends.quantized.supported_engines for engine in ("x86", "fbgemm")
    )


def _torchao_dynamic_int8(weight: torch.Tensor) -> bool:
    """Whether `weight` holds torchao's dynamic int8 in the scheme one fbgemm call reproduces: weights int8 with one
    scale per output row, activations quantised symmetrically with one scale per row over the full int8 range, and
    no pre-scaling or fixed (static) activation scale."""
    torchao_quantization = sys.modules.get("torchao.quantization")  # never imported here: only if the user has
    if type(weight) is not getattr(torchao_quantization, "Int8Tensor", None):
        return False
    activations = weight.act_quant_kwargs
    return (
        activations is not None
        and getattr(activations.mapping_type, "name", None) == "SYMMETRIC"
        and type(activations.granularity).__name__ == "PerRow"
        and not activations.reduce_range
        and not weight.reduce_range
        and weight.act_pre_scale is None
        and weight.act_quant_scale is None
        and weight.dtype == torch.float32
        and list(weight.block_size) == [1, weight.shape[-1]]
    )


def _pack_int8_for_fbgemm(qdata: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None):
    """fbgemm's packed form of int8 weights `qdata` [out, in] with per-row `scale` [out, 1]; None when the weights
    are not symmetric (a nonzero zero point) or fbgemm refuses them."""
    if zero_point is not None and zero_point.any():
        return None
    rows = scale.numel()
    with warnings.catch_warnings():  # torch deprecates quantized tensors, which fbgemm's packing still takes
        warnings.simplefilter("ignore", UserWarning)
        weight = torch._make_per_channel_quantized_tensor(
            qdata, scale.reshape(rows).double(), torch.zeros(rows, dtype=torch.long), 0
        )
        try:
            return torch.ops.quantized.linear_prepack(weight, None)
        except RuntimeError:  # a quantized engine without this packing
            return None


class _Int8Packing(_PackedWeight):
    """A layer's fbgemm-packed int8 weights, and the weight object last found to hold torchao's dynamic int8 (which
    then need not be checked again at every call)."""

    __slots__ = ("checked",)

    def __init__(self):
        super().__init__()
        self.checked = None  # a weak reference to the weight that passed `_torchao_dynamic_int8`


_INT8_PACKED: "weakref.WeakKeyDictionary[nn.Linear, _Int8Packing]" = weakref.WeakKeyDictionary()


def _int8_packed_weights(layer: nn.Linear):
    """The fbgemm-packed copy of `layer`'s torchao dynamic int8 weights, or None where the int8 path does not apply
    (another scheme, or no fbgemm). Packing takes long (as long as several decoding steps), so the copy is kept for
    as long as the layer lives, not per `few_row_linears` block, and made again when the int8 weights or their
    scales change."""
    weight = layer.weight
    state = _INT8_PACKED.get(layer)
    if state is None or state.checked is None or state.checked() is not weight:
        if not (_int8_kernel_available() and _torchao_dynamic_int8(weight)):
            return None
        if state is None:
            state = _INT8_PACKED[layer] = _Int8Packing()
        state.checked = weakref.ref(weight)
    return state.of(weight.qdata, weight.scale, weight.zero_point, pack=_pack_int8_for_fbgemm)


def _int8_linear(inputs: torch.Tensor, packed, bias: torch.Tensor | None) -> torch.Tensor:
    """Rows [..., in_features] through fbgemm-packed int8 weights, each quantised as torchao quantises it; returns
    [..., out_features]."""
    rows = inputs.reshape(-1, inputs.shape[-1])  # [..., in] -> [M, in]
    # torchao's float32 arithmetic: scale = max(max|x| / 127.5, eps) per row, int8 = round(x * (1 / scale)) in range
    if rows.shape[0] == 1:  # one row (greedy decoding at batch 1): the scale as a number, three operations fewer
        largest = torch.linalg.vector_norm(rows, float("inf")).item()
        scale = max(_float32(largest / _INT8_ROW_SCALE_DIVISOR), _FLOAT32_EPS)
        inverse = _float32(1.0 / scale)
    else:
        largest = torch.linalg.vector_norm(rows, float("inf"), dim=-1, keepdim=True)  # [M, 1]
        scale = (largest / _INT8_ROW_SCALE_DIVISOR).clamp_(min=_FLOAT32_EPS)
        inverse = 1.0 / scale
    # Read at scale 1, fbgemm rounds x * (1 / scale) half to even and saturates to int8, as torchao's round and clamp
    # do; it multiplies in int32 and applies the weights' scales: [M, out]
    outputs = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
        rows * inverse, 1.0, _INT8_ZERO_POINT, packed
    )
    if bias is None:
        outputs = outputs.mul_(scale)
    elif rows.shape[0] == 1:
        outputs = torch.add(bias, outputs, alpha=scale)  # bias + scale * outputs
    else:
        outputs = torch.addcmul(bias, outputs, scale)  # bias + outputs * row scales
    return outputs.reshape(*inputs.shape[:-1], outputs.shape[-1])  # [M, out] -> [..., out]


def _float32(number: float) -> float:
    """`number` rounded to float32: for the quotient of two float32 numbers, what float32 division gives."""
    return struct.unpack("f", struct.pack("f", number))[0]


def _compiled_linear(layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """`linear` as a compiled graph sees it, while a `few_row_linears` block is open, for a call through a plain
    `nn.Linear` that the few-row path would run on oneDNN (`_onednn_call`): one row as a multiply-and-sum that
    inductor generates and fuses with its neighbours (`_one_row_linear`), 2 to `FEW_ROWS_MAX` rows by
    `few_row_linear`; one row through torchao's weight-only int8 as the same sum over the int8 weights
    (`_one_row_int8_linear`). The layer's own forward otherwise."""
    if not (_OPEN_BLOCKS and type(layer) is nn.Linear):
        return layer(inputs)
    one_row = inputs.numel() == layer.in_features
    weight = layer.weight
    if type(weight) is not nn.Parameter:  # a tensor subclass: torchao's weight-only int8 has a one-row form
        if one_row and _torchao_weight_only_int8(weight) and _plain_inference_call(layer, inputs):
            return _one_row_int8_linear(inputs, weight.qdata, weight.scale, layer.bias)
        return layer(inputs)
    if not _onednn_call(layer, inputs):
        return layer(inputs)
    if one_row:
        return _one_row_linear(inputs, weight, layer.bias)
    return few_row_linear(inputs.contiguous(), weight, layer.bias)


def _one_row_linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """inputs [..., in] holding one row @ weight [out, in]^T + bias, written as a product summed over `in`.

    Traced by inductor, this becomes a reduction kernel that reads each weight once at the memory's rate, in one
    graph with the step's other operations, where an extern matmul call (MKL's or oneDNN's) reads the weights more
    slowly at one row and splits the graph at every projection. For more rows the same loop would read the weight
    once per row, so it is kept to one."""
    product = (inputs.unsqueeze(-2) * weight).sum(-1)  # [..., 1, in] * [out, in] -> [..., out]
    return product if bias is None else product + bias


def _one_row_int8_linear(
    inputs: torch.Tensor, qdata: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """`_one_row_linear` through int8 weights `qdata` [out, in] with one `scale` per output row (or one for all), as
    torchao computes its weight-only int8: (inputs @ qdata^T) * scale + bias. Inductor converts each int8 weight as it
    reads it, so the weights stream at a quarter of float32's bytes."""
    product = _one_row_linear(inputs, qdata, None) * scale.flatten()  # [..., out]
    return product if bias is None else product + bias


# --- torchao's weight-only int8 in eager inference ---------------------------------------------------------------
# torchao's weight-only int8 (`Int8WeightOnlyConfig`) multiplies by its int8 weights converted to float32 whole: a
# call through the 32000-token output layer of a Transformer-base makes a 65 MB float32 copy of it, four times the
# int8 weights, at every decoding step in eager mode, and once per `generate()` call in the prefill of a compiled
# one, where it set the call's peak memory. In eager inference `linear` converts at most `WEIGHT_ONLY_PIECE_ELEMENTS`
# weight elements at a time, a piece that stays in the CPU's cache, and multiplies the rows by each piece on oneDNN
# (with MKL's `F.linear` for small weights, as the few-row rule does, or where this torch has no oneDNN), then
# applies torchao's scales and bias: (inputs @ int8 weights^T) * scales + bias, torchao's result up to float rounding.

WEIGHT_ONLY_PIECE_ELEMENTS = 1 << 18  # 1 MiB of float32: inside a core's cache


def _weight_only_int8_call(layer: nn.Linear, inputs: torch.Tensor) -> bool:
    """Whether `linear` runs this call of `layer`, a plain `nn.Linear` whose weight is a tensor subclass, a piece of
    the weights at a time (`_weight_only_int8_linear`): torchao's weight-only int8 in the scheme that function
    computes, called with inputs whose last size is the layer's, in a plain inference call
    (`_plain_inference_call`)."""
    return (
        WEIGHT_ONLY_PIECES
        and inputs.shape[-1:] == (layer.in_features,)
        and _torchao_weight_only_int8(layer.weight)
        and _plain_inference_call(layer, inputs)
    )


def _weight_only_int8_linear(
    inputs: torch.Tensor, qdata: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """inputs [..., in] @ (int8 `qdata` [out, in] as float32)^T * `scale` (one per output row, or one) + bias, as
    torchao computes its weight-only int8, converting at most `WEIGHT_ONLY_PIECE_ELEMENTS` weight elements to float32
    at a time: [..., out]."""
    rows = inputs.reshape(-1, inputs.shape[-1]).contiguous()  # [..., in] -> [M, in]
    out_features, in_features = qdata.shape
    piece = max(1, WEIGHT_ONLY_PIECE_ELEMENTS // in_features)  # output rows of the weights per piece
    # rows @ weights^T; below `FEW_ROW_MIN_WEIGHT` elements oneDNN's fixed cost per call outweighs its gain
    multiply = _onednn_linear if qdata.numel() >= FEW_ROW_MIN_WEIGHT and _onednn_linear_available() else F.linear
    products = [
        multiply(rows, qdata[start : start + piece].to(rows.dtype), None)  # [M, in] @ [piece, in]^T -> [M, piece]
        for start in range(0, out_features, piece)
    ]
    outputs = products[0] if len(products) == 1 else torch.cat(products, dim=-1)  # [M, out]
    outputs.mul_(scale.to(rows.dtype).flatten())
    if bias is not None:
        outputs += bias
    return outputs.reshape(*inputs.shape[:-1], out_features)  # [M, out] -> [..., out]


def _torchao_weight_only_int8(weight: torch.Tensor) -> bool:
    """Whether `weight` holds torchao's weight-only int8 (`Int8WeightOnlyConfig`) for float32 layers with one scale
    per output row or one for the whole weight: the scheme `_one_row_int8_linear` computes. Read from the type's
    name, so that nothing here imports torchao and a compiled graph can evaluate it."""
    kind = type(weight)
    return (
        kind.__name__ == "Int8Tensor"
        and kind.__module__.startswith("torchao.")
        and weight.act_quant_kwargs is None
        and weight.act_pre_scale is None
        and weight.dtype == torch.float32
        and weight.block_size[-1] == weight.shape[-1]
    )


# --- sdpa called directly ---------------------------------------------------------------------------------------


def sdpa_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """`F.scaled_dot_product_attention` with the calling convention of transformers' attention functions.

    Equal to transformers' own sdpa function for our models (no grouped-query heads, no soft-capping, no position
    bias), without its per-call checks, which cost more than the attention itself when one token is decoded.
    Causality is the kernel's when `module.is_causal` and no mask is given (the mask builders leave it out then).
    In a decoding step that `generate()` compiles (inside a `few_row_linears` block), one query's attention is
    written out for inductor instead (`_one_query_attention`).

    Args:
        query: [batch, heads, q_len, head_dim]; key, value: [batch, heads, kv_len, head_dim].
        attention_mask: additive float mask or boolean mask broadcastable to [batch, heads, q_len, kv_len], or None.
    Returns:
        output [batch, q_len, heads, head_dim] (a view: the caller's reshape copies when it must) and None.
    """
    if (  # an eager decoding step calls this at every layer: the test that fails there comes first
        torch.compiler.is_compiling()
        and _OPEN_BLOCKS
        and query.shape[2] == 1
        and query.dtype == torch.float32
        and dropout == 0.0
    ):
        return _one_query_attention(query, key, value, attention_mask, scaling), None
    is_causal = module.is_causal and attention_mask is None and query.shape[2] > 1
    output = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal
    )  # [B, H, Q, D]
    return output.transpose(1, 2), None  # [B, H, Q, D] -> [B, Q, H, D]


def _one_query_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float
) -> torch.Tensor:
    """softmax(q k^T * scaling + mask) v for one float32 query per sequence and head, written as products summed
    over the head and key dimensions, for a decoding step that `generate()` compiles: inductor generates fused
    reductions for it, where sdpa's flash kernel spends more on its fixed work per call than on one query's
    attention.

    Args:
        query: [batch, heads, 1, head_dim]; key, value: [batch, heads, kv_len, head_dim].
        attention_mask: additive float mask or boolean mask (True: attend) broadcastable to [batch, heads, 1,
            kv_len], or None.
    Returns:
        output [batch, 1, heads, head_dim].
    """
    scores = (query * key).sum(-1).unsqueeze(-2) * scaling  # [B, H, 1, D] * [B, H, K, D] -> [B, H, K] -> [B, H, 1, K]
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, -math.inf)
    elif attention_mask is not None:
        scores = scores + attention_mask
    probabilities = scores.softmax(-1).unsqueeze(-1)  # [B, H, 1, K] -> [B, H, 1, K, 1]
    output = (probabilities * value.unsqueeze(2)).sum(-2)  # [B, H, 1, K, 1] * [B, H, 1, K, D] -> [B, H, 1, D]
    return output.transpose(1, 2)  # [B, H, 1, D] -> [B, 1, H, D]


def direct_sdpa(implementation: str) -> Callable | None:
    """`sdpa_attention_forward` for the "sdpa" implementation while transformers' registry maps "sdpa" to its own
    function (a user who registered another one gets theirs) and `DIRECT_SDPA` is on; None otherwise."""
    registered = ALL_ATTENTION_FUNCTIONS.get("sdpa")
    if DIRECT_SDPA and implementation == "sdpa" and registered is transformers_sdpa_attention_forward:
        return sdpa_attention_forward
    return None


# --- attention masks left out where they mask nothing -----------------------------------------------------------


def padding_free(attention_mask: torch.Tensor | None) -> bool:
    """Whether a padding mask masks nothing, so that attention needs no mask: None, or a 2-D mask of ones.

    The values are read only in eager mode; under `torch.compile` / `torch.export` a given mask is always built.
    False when `SKIP_NEEDLESS_MASKS` is off: transformers' mask builders then decide.
    """
    if not SKIP_NEEDLESS_MASKS:
        return False
    if attention_mask is None:
        return True
    return attention_mask.dim() == 2 and not torch.compiler.is_compiling() and bool(attention_mask.all())


def causal_mask_needless(query_length: int, cache: Cache | None, attention_mask: torch.Tensor | None) -> bool:
    """Whether a decoder step needs no self-attention mask: one new position that may see every cached key (no
    padding, and no static cache, whose slots for positions not yet written a mask must hide)."""
    return query_length == 1 and not (cache is not None and cache.is_compileable) and padding_free(attention_mask)


# --- minimum-length logits processors with their end-of-sequence columns found once -----------------------------
# transformers' `MinLengthLogitsProcessor` and `MinNewTokensLengthLogitsProcessor` rebuild the end-of-sequence mask
# over the whole vocabulary at every step (`arange` + `isin` + `where`), even once the minimum length is reached.
# The subclasses here find the end-of-sequence columns once per vocabulary size and device, and return the same
# scores: a copy with -inf written into those columns below the minimum length (`index_fill`, which touches only
# them, where `where` passes over the whole [batch, vocabulary] mask), a copy of the scores otherwise.


class _CachedEosColumns:
    """The end-of-sequence ids (`self.eos_token_id`) that lie in the vocabulary, as columns found on first use."""

    def _eos_columns(self, scores: torch.Tensor) -> torch.Tensor:
        key = (scores.shape[-1], scores.device)
        if getattr(self, "_cached_eos_key", None) != key:
            vocabulary = torch.arange(scores.shape[-1], device=scores.device)  # [V]
            in_vocabulary = torch.isin(vocabulary, self.eos_token_id.to(scores.device))  # [V], as transformers' mask
            self._cached_eos_columns, self._cached_eos_key = vocabulary[in_vocabulary], key  # [E]
        return self._cached_eos_columns

    def _forbid_eos(self, scores: torch.Tensor, too_short: bool) -> torch.Tensor:
        """scores [batch, V] with -inf on the end-of-sequence ids when `too_short`; a copy of them otherwise."""
        return scores.index_fill(-1, self._eos_columns(scores), -math.inf) if too_short else scores.clone()


class CachedMinLengthLogitsProcessor(_CachedEosColumns, MinLengthLogitsProcessor):
    """`MinLengthLogitsProcessor` with its end-of-sequence mask built once."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids [batch, length], scores [batch, V] -> processed scores [batch, V]."""
        return self._forbid_eos(scores, input_ids.shape[-1] < self.min_length)


class CachedMinNewTokensLengthLogitsProcessor(_CachedEosColumns, MinNewTokensLengthLogitsProcessor):
    """`MinNewTokensLengthLogitsProcessor` with its end-of-sequence mask built once."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids [batch, length], scores [batch, V] -> processed scores [batch, V]."""
        return self._forbid_eos(scores, input_ids.shape[-1] - self.prompt_length_to_skip < self.min_new_tokens)


_CACHED_EQUIVALENTS = {
    MinLengthLogitsProcessor: CachedMinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor: CachedMinNewTokensLengthLogitsProcessor,
}


def with_cached_eos_masks(processors: LogitsProcessorList) -> LogitsProcessorList:
    """Switch, in place, the processors that are exactly transformers' minimum-length ones to the subclasses above
    (same attributes, same outputs); user-supplied subclasses and other processors are left alone."""
    for processor in processors:
        cached = _CACHED_EQUIVALENTS.get(type(processor))
        if cached is not None:
            processor.__class__ = cached
    return processors


class FastDecodingMixin:
    """The decoding paths of a `GenerationMixin` model, mixed in before it: `generate()` runs inside a
    `few_row_linears` block over the decoder and the output layer, the minimum-length logits processors that
    transformers builds are switched to the cached ones above (`CACHED_EOS_MASKS`), and a `compile_config` given
    with a static cache compiles the decoding step on CPU too (`COMPILE_ON_CPU`).

    transformers compiles the decoding step only on accelerators, unless the private
    `CompileConfig._compile_all_devices` is set: on CPU a caller's `compile_config` is otherwise skipped with a
    warning. Here a `compile_config` that the caller passes (or that the generation config holds) is a request to
    compile wherever the model runs; the caller's object is left unchanged.
    """

    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate` with the decoder's few-row projections on oneDNN for the duration."""
        with few_row_linears(self.get_decoder(), self.get_output_embeddings()):
            return super().generate(*args, **kwargs)

    def _valid_auto_compile_criteria(self, model_kwargs: dict, generation_config: GenerationConfig) -> bool:
        requested = generation_config.compile_config
        if COMPILE_ON_CPU and requested is not None and requested._compile_all_devices is None:
            generation_config.compile_config = copy.copy(requested)  # the call's own copy: the caller's stays as given
            generation_config.compile_config._compile_all_devices = True
        return super()._valid_auto_compile_criteria(model_kwargs, generation_config)

    def _get_logits_processor(self, *args, **kwargs) -> LogitsProcessorList:
        processors = super()._get_logits_processor(*args, **kwargs)
        return with_cached_eos_masks(processors) if CACHED_EOS_MASKS else processors


# --- the MLP in row pieces --------------------------------------------------------------------------------------
# glibc's malloc serves blocks over 32 MiB with fresh mappings from the OS, so an MLP whose inner activation
# [rows, intermediate_size] passes that size pays the page faults of the whole activation at each call, twice (fc1's
# output and the activation's). In inference the rows are run in pieces below that size instead; the outputs are the
# same.

MLP_CHUNK_BYTES = 16 << 20  # inference: the MLP's inner activation is made in pieces of at most this size


def in_row_pieces(
    feed_forward: Callable[[torch.Tensor], torch.Tensor], hidden_states: torch.Tensor, inner_width: int
) -> torch.Tensor:
    """`feed_forward(hidden_states)`, run over pieces of the rows when, in inference, the inner activation
    [rows, inner_width] would pass 2 x `MLP_CHUNK_BYTES`.

    Args:
        feed_forward: a row-wise function [rows, D] -> [rows, D'].
        hidden_states: [..., D].
    Returns:
        [..., D'].
    """
    if not MLP_ROW_PIECES or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return feed_forward(hidden_states)  # tested first: under torch.export a test of the size guards the batch
    rows = hidden_states.numel() // hidden_states.shape[-1]
    chunk_rows = max(1, MLP_CHUNK_BYTES // (inner_width * hidden_states.element_size()))
    if rows <= 2 * chunk_rows:
        return feed_forward(hidden_states)
    flat = hidden_states.reshape(rows, hidden_states.shape[-1])  # [..., D] -> [rows, D]
    pieces = [feed_forward(flat[start : start + chunk_rows]) for start in range(0, rows, chunk_rows)]
    return torch.cat(pieces).view(*hidden_states.shape[:-1], -1)  # [rows, D'] -> [..., D']


# --- the MLP's activation in place --------------------------------------------------------------------------------
# In inference the MLP's first projection returns a fresh tensor that nothing reads after the activation. Computing
# the activation out of place allocates a second tensor of the inner width, whose fresh pages the CPU faults in as
# the activation writes them; written over the projection's output instead, the result is the same to the bit and
# one allocation (the MLP's largest) is gone. Only where nobody can see the difference: no autograd, no hooks on
# the projection (a hook may keep its output) or on the activation (calling it in place skips its hooks), and an
# activation whose in-place form computes exactly what its forward computes.


def _in_place_form(activation: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The function that overwrites a tensor with `activation(tensor)`, for the activations of our configs whose
    in-place form is the same computation (transformers' exact GELU, ReLU, SiLU as "swish"); None for any other."""
    kind = type(activation)
    if kind is GELUActivation and activation.act is F.gelu:
        return torch.ops.aten.gelu_
    if kind is nn.ReLU:
        return torch.relu_
    if kind is nn.SiLU:
        return functools.partial(F.silu, inplace=True)
    return None


def activated_in_place(activation: nn.Module, layer: nn.Module, projected: torch.Tensor) -> torch.Tensor:
    """`activation(projected)`, where `projected` is the output `layer` has just returned; in inference, when
    `layer` is a plain `nn.Linear` and neither it nor `activation` carries hooks, computed over `projected`.

    Args:
        activation: the MLP's non-linearity.
        layer: the projection that made `projected` (its fresh output, read by nothing else).
        projected: [..., intermediate_size].
    Returns:
        [..., intermediate_size]: `projected` itself when overwritten.
    """
    if not IN_PLACE_ACTIVATIONS or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return activation(projected)
    in_place = _in_place_form(activation)
    if (
        in_place is None
        or type(layer) is not nn.Linear
        or not (_runs_as_written(layer) and _runs_as_written(activation))
    ):
        return activation(projected)
    return in_place(projected)


# --- the MLP's activation recomputed in the backward pass -------------------------------------------------------
# In training, a non-linearity whose backward pass needs its input (GELU, SiLU) leaves autograd holding two tensors
# of the MLP's inner width per layer: fc1's output, which the non-linearity saves, and the non-linearity's output,
# which fc2 saves for its weight gradient. The second is a function of the first. Inside `activation_recomputed`,
# what autograd saves of the second is kept as a note instead, and recomputed from the first (which stays in memory
# anyway) when the backward pass reads it: one elementwise function more per layer in backward, the same gradients,
# one [rows, intermediate_size] tensor less per layer held from the forward to the backward pass.


def _saves(node: torch.autograd.graph.Node, tensor: torch.Tensor) -> bool:
    """Whether the backward node `node` saved `tensor` or a view of it."""
    pointer = tensor.untyped_storage().data_ptr()
    for name in dir(node):
        if name.startswith("_saved_"):
            saved = getattr(node, name)
            if isinstance(saved, torch.Tensor) and saved.untyped_storage().data_ptr() == pointer:
                return True
    return False


def activation_recomputed(
    activation: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, outputs: torch.Tensor
) -> contextlib.AbstractContextManager:
    """A block within which a tensor that autograd saves and that is `outputs` (= `activation(inputs)`) or a view of it
    is kept as a note and recomputed from `inputs` when the backward pass reads it.

    Taken only where it saves memory: `outputs` is a contiguous tensor that needs a gradient, and its own backward
    node keeps `inputs` but not `outputs` (GELU and SiLU do; ReLU keeps its output, which fc2 then shares). Not taken
    under `torch.compile` (which chooses what to recompute itself), nor inside other saved-tensor hooks (activation
    checkpointing, offloading to the CPU), which the block would otherwise override. `activation` must be a
    deterministic elementwise function.
    """
    if not (
        RECOMPUTE_ACTIVATIONS
        and not torch.compiler.is_compiling()  # first: a compiled graph cannot read `grad_fn`
        and outputs.requires_grad
        and outputs.grad_fn is not None
        and outputs.is_contiguous()
        and torch._C._autograd._saved_tensors_hooks_is_enabled()
        and torch._C._autograd._top_saved_tensors_default_hooks(False) is None
        and _saves(outputs.grad_fn, inputs)
        and not _saves(outputs.grad_fn, outputs)
    ):
        return contextlib.nullcontext()  # inference above all: no generator to make and run
    pointer, device = outputs.untyped_storage().data_ptr(), outputs.device  # not the storage: that would keep it

    def pack(tensor: torch.Tensor) -> torch.Tensor | tuple:
        if tensor.device != device or tensor.untyped_storage().data_ptr() != pointer:
            return tensor
        return tensor.shape, tensor.stride(), tensor.storage_offset()  # the view of `outputs` that was saved

    def unpack(packed: torch.Tensor | tuple) -> torch.Tensor:
        if isinstance(packed, torch.Tensor):
            return packed
        shape, stride, offset = packed
        # grad mode as the backward pass sets it: with create_graph the recomputation joins the graph
        return activation(inputs).contiguous().as_strided(shape, stride, offset)

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


# --- the cross-entropy's gradient made in one tensor --------------------------------------------------------------
# `F.cross_entropy` is log_softmax then the loss on the log-probabilities: its backward pass makes the gradient with
# respect to the log-probabilities [rows, vocab], then from it the gradient with respect to the logits, a second
# [rows, vocab] tensor, while the saved log-probabilities are still held: three vocabulary-sized tensors at once,
# the peak of a translation model's training step. `summed_cross_entropy` computes the same loss from the same
# log-probabilities, and in backward writes the gradient with respect to the logits, softmax - smoothed target, into
# one tensor.


class _SummedCrossEntropy(torch.autograd.Function):
    """The summed, label-smoothed cross-entropy of logits [rows, vocab] and labels [rows], as `F.cross_entropy`
    computes it; its backward pass makes one [rows, vocab] tensor."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, label_smoothing: float):
        log_probs = torch.log_softmax(logits, dim=-1)  # [N, V]
        loss = F.nll_loss(log_probs, labels, ignore_index=ignore_index, reduction="sum")
        if label_smoothing > 0:  # the uniform part of the target, as `F.cross_entropy` adds it
            smooth = -log_probs.sum(-1).masked_fill(labels == ignore_index, 0.0)  # [N]
            loss = (1 - label_smoothing) * loss + smooth.sum() * (label_smoothing / logits.shape[-1])
        ctx.save_for_backward(log_probs, labels)
        ctx.ignore_index, ctx.label_smoothing = ignore_index, label_smoothing
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable  # second derivatives raise instead of silently missing terms
    def backward(ctx, grad_loss: torch.Tensor):
        log_probs, labels = ctx.saved_tensors
        smoothing = ctx.label_smoothing
        kept = labels != ctx.ignore_index  # [N]
        row_grad = (grad_loss * kept).to(log_probs.dtype)[:, None]  # [N, 1]: 0 on ignored rows
        grad = log_probs.exp().mul_(row_grad)  # softmax, scaled: the one [N, V] tensor
        if smoothing > 0:
            grad.sub_(row_grad * (smoothing / log_probs.shape[-1]))
        targets = labels.masked_fill(~kept, 0)[:, None]  # [N, 1]
        grad.scatter_add_(1, targets, -(1 - smoothing) * row_grad)
        return grad, None, None, None


def summed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, label_smoothing: float
) -> torch.Tensor:
    """`F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum", label_smoothing=label_smoothing)`
    for logits [rows, vocab] and labels [rows]; with autograd (and `FUSED_CROSS_ENTROPY` on, not compiling) its
    backward pass makes one vocabulary-sized tensor instead of two."""
    if torch.compiler.is_compiling() or not (FUSED_CROSS_ENTROPY and logits.requires_grad and torch.is_grad_enabled()):
        return F.cross_entropy(
            logits, labels, ignore_index=ignore_index, reduction="sum", label_smoothing=label_smoothing
        )
    return _SummedCrossEntropy.apply(logits, labels, ignore_index, label_smoothing)


# --- the ViT classifier's last layer for the [CLS] token only ---------------------------------------------------


def last_layer_query_tokens(pooled_only: bool, pooling: str, every_state_returned: bool) -> int | None:
    """How many leading tokens the last ViT layer must update: 1 (the [CLS] token) when the caller reads only the
    [CLS]-pooled output and no hidden states or attentions are returned, None (all) otherwise. The other tokens'
    last-layer outputs would be computed and thrown away."""
    return 1 if CLS_ONLY_LAST_LAYER and pooled_only and pooling == "cls" and not every_state_returned else None


# --- Swin's shift masks kept for reuse ----------------------------------------------------------------------------


class BoundedTensorCache:
    """A few derived tensors kept by the module that owns the cache, so that they die with it: at most
    `max_entries`, the oldest dropped first. Under `torch.compile` / `torch.export`, or with `CACHE_SHIFT_MASKS` off,
    every lookup builds afresh (in the graph, where the compiler folds it)."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self.entries: dict[Hashable, torch.Tensor] = {}

    def get(self, key: Hashable, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The tensor stored under `key`, made by `build()` the first time."""
        if not CACHE_SHIFT_MASKS or torch.compiler.is_compiling():
            return build()
        tensor = self.entries.get(key)
        if tensor is None:
            if len(self.entries) >= self.max_entries:
                del self.entries[next(iter(self.entries))]
            tensor = self.entries[key] = build()
        return tensor

    def __len__(self) -> int:
        return len(self.entries)


__all__ = [
    "FEW_ROWS_MAX",
    "FEW_ROW_MIN_WEIGHT",
    "MKL_FEW_ROWS",
    "BoundedTensorCache",
    "FastDecodingMixin",
    "activated_in_place",
    "activation_recomputed",
    "causal_mask_needless",
    "direct_sdpa",
    "few_row_linear",
    "few_row_linears",
    "few_row_linears_available",
    "in_row_pieces",
    "last_layer_query_tokens",
    "linear",
    "padding_free",
    "sdpa_attention_forward",
    "summed_cross_entropy",
    "with_cached_eos_masks",
]
