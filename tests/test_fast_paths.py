"""The speed-only paths of `modeling/fast_paths.py`, one section each: oneDNN for the few-row matmuls of
token-by-token decoding, sdpa called directly, attention masks left out where they mask nothing, minimum-length logits
processors with a cached end-of-sequence mask, the MLP run in row pieces, the MLP's activation recomputed in the
backward pass, the cross-entropy's gradient made in one tensor, the ViT classifier's last layer for the [CLS] token
only, and Swin's per-block shift-mask cache (the int8 rows on fbgemm are tested in `test_quantization.py`, which
needs torchao). For each: the path is taken, it gives what the plain path (its switch off) gives, and a guard test
fails loudly when a torch or transformers upgrade removes or changes what it leans on."""

import contextlib
import copy
import gc
import importlib.util
import inspect
import io
import pickle
import re
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules import module as torch_module
from torch.utils.flop_counter import FlopCounterMode
from transformers import CompileConfig, GenerationMixin, LogitsProcessorList, masking_utils
from transformers.activations import ACT2FN, GELUActivation
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache, StaticCache
from transformers.generation.logits_process import MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor
from transformers.integrations import sdpa_attention
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxSwinModel,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
    VtxViTModel,
)
from hf_visiontx.modeling import attention, fast_paths, feed_forward
from hf_visiontx.modeling.fast_paths import (
    FEW_ROWS_MAX,
    CachedMinLengthLogitsProcessor,
    CachedMinNewTokensLengthLogitsProcessor,
    causal_mask_needless,
    few_row_linears,
    few_row_linears_available,
    linear,
    padding_free,
    with_cached_eos_masks,
)
from support.memory import bytes_held_after, peak_bytes_during
from support.spies import record_calls
from support.swin_tester import tiny_swin_config
from support.transformer_tester import padded_source_batch, tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config

needs_onednn = pytest.mark.skipif(not few_row_linears_available(), reason="this torch build has no oneDNN linear")


@pytest.fixture(autouse=True)
def onednn_for_tiny_weights(monkeypatch):
    """The tiny test models' weights are far below `FEW_ROW_MIN_WEIGHT`: let the few-row path take them, at any
    number of rows whatever the CPU's vendor (the tests of `MKL_FEW_ROWS` turn it on)."""
    monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 0)
    monkeypatch.setattr(fast_paths, "MKL_FEW_ROWS", False)


def parameters_of(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def linear_layer(in_features: int = 32, out_features: int = 48, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(in_features, out_features)


def spy_on_onednn(monkeypatch) -> list[torch.Tensor]:
    """Record the weights (as given, or packed) of the matmuls the few-row path hands to oneDNN."""
    return record_calls(monkeypatch, fast_paths, "_onednn_linear", lambda inputs, weight, bias: weight)


def spy_on_packing(monkeypatch) -> list[torch.Tensor]:
    """Record the weights whose packed copies are handed out."""
    return record_calls(monkeypatch, fast_paths._PackedWeight, "of", lambda holder, *sources, pack: sources[0])


def test_the_private_apis_the_few_row_path_leans_on_still_exist():
    """A torch upgrade that drops or changes these must fail here, not make decoding silently slower or wrong."""
    assert isinstance(torch_module._global_forward_hooks, dict)
    assert isinstance(torch_module._global_forward_pre_hooks, dict)
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    assert few_row_linears_available(), "torch.ops.mkldnn lost _linear_pointwise or _reorder_linear_weight"
    layer, inputs = linear_layer(), torch.randn(5, 32)
    with torch.no_grad():
        packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), 16)
        output = torch.ops.mkldnn._linear_pointwise(inputs, packed, layer.bias, "none", [], "")
        torch.testing.assert_close(output, F.linear(inputs, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


def test_the_private_apis_compiled_decoding_on_cpu_leans_on_still_exist():
    """transformers decides in `_valid_auto_compile_criteria` whether generate() compiles, and compiles on CPU only
    when `CompileConfig._compile_all_devices` is set: a rename must fail here, not silently stop compiling."""
    assert parameters_of(GenerationMixin._valid_auto_compile_criteria) == ["self", "model_kwargs", "generation_config"]
    assert "_compile_all_devices" in vars(CompileConfig) and CompileConfig()._compile_all_devices is None
    assert "_compile_all_devices" in inspect.getsource(GenerationMixin._valid_auto_compile_criteria)
    assert hasattr(torch.ops.hf_visiontx, "few_row_linear")  # defined once, shared by every copy of fast_paths


SWITCHES = {
    "FEW_ROW_LINEARS": "HF_VISIONTX_PREPACK",
    "DIRECT_SDPA": "HF_VISIONTX_DIRECT_SDPA",
    "SKIP_NEEDLESS_MASKS": "HF_VISIONTX_SKIP_MASKS",
    "CACHED_EOS_MASKS": "HF_VISIONTX_CACHED_EOS_MASKS",
    "MLP_ROW_PIECES": "HF_VISIONTX_MLP_PIECES",
    "CLS_ONLY_LAST_LAYER": "HF_VISIONTX_CLS_ONLY",
    "CACHE_SHIFT_MASKS": "HF_VISIONTX_MASK_CACHE",
    "COMPILE_ON_CPU": "HF_VISIONTX_COMPILE_ON_CPU",
    "RECOMPUTE_ACTIVATIONS": "HF_VISIONTX_RECOMPUTE_ACTIVATIONS",
    "FUSED_CROSS_ENTROPY": "HF_VISIONTX_FUSED_CROSS_ENTROPY",
    "IN_PLACE_ACTIVATIONS": "HF_VISIONTX_IN_PLACE_ACTIVATIONS",
    "ONEDNN_LINEARS": "HF_VISIONTX_ONEDNN_LINEARS",
    "WEIGHT_ONLY_PIECES": "HF_VISIONTX_WEIGHT_ONLY_PIECES",
}


def test_packed_weight_copies_are_opt_in(monkeypatch):
    """They hold the decoder's weights twice during generate(): off unless HF_VISIONTX_PACK_WEIGHTS=1 at import."""
    assert fast_paths.PACK_WEIGHTS is False
    assert "(`PACK_WEIGHTS`, HF_VISIONTX_PACK_WEIGHTS=1: off by default)" in fast_paths.__doc__.replace("\n  ", " ")
    monkeypatch.setenv("HF_VISIONTX_PACK_WEIGHTS", "1")
    spec = importlib.util.spec_from_file_location("packing_fast_paths", fast_paths.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.PACK_WEIGHTS is True


def test_every_path_has_its_documented_switch(monkeypatch):
    """Each flag is on by default and off when its environment variable is 0 at import (as in a process that loads
    the model as remote code, with its own copy of the module)."""
    assert all(getattr(fast_paths, flag) is True for flag in SWITCHES)
    for flag, variable in SWITCHES.items():
        assert f"`{flag}`, {variable}" in fast_paths.__doc__.replace("\n  ", " ")
        monkeypatch.setenv(variable, "0")
    spec = importlib.util.spec_from_file_location("fresh_fast_paths", fast_paths.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert all(getattr(fresh, flag) is False for flag in SWITCHES)


def test_few_row_linears_switch(monkeypatch):
    monkeypatch.setattr(fast_paths, "FEW_ROW_LINEARS", False)
    assert not few_row_linears_available()
    layer, onednn = linear_layer(), spy_on_onednn(monkeypatch)
    with few_row_linears(layer), torch.no_grad():
        linear(layer, torch.randn(4, 32))
    assert not onednn and layer not in fast_paths._OPEN_LAYERS


@needs_onednn
@pytest.mark.parametrize("packed", [False, True], ids=["weights as they are", "packed copies"])
def test_few_row_linear_equals_f_linear_and_follows_weight_changes(packed, monkeypatch):
    monkeypatch.setattr(fast_paths, "PACK_WEIGHTS", packed)
    monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)  # the block alone decides
    layer = linear_layer()
    inputs = torch.randn(3, 5, 32)  # 15 rows
    onednn, packing = spy_on_onednn(monkeypatch), spy_on_packing(monkeypatch)
    with torch.no_grad():
        linear(layer, inputs)
        assert not onednn  # outside a few_row_linears block: the layer's own forward
        with few_row_linears(layer):
            torch.testing.assert_close(
                linear(layer, inputs), F.linear(inputs, layer.weight, layer.bias), rtol=1e-5, atol=1e-5
            )
            assert onednn and bool(packing) == packed  # the oneDNN path was taken, on a packed copy if asked
            one_row = inputs[:1, :1]  # one row: oneDNN on the weight as it is
            torch.testing.assert_close(
                linear(layer, one_row), F.linear(one_row, layer.weight, layer.bias), rtol=1e-5, atol=1e-5
            )
            layer.weight.mul_(2.0)  # changed in place: the packed copy must be remade
            expected = F.linear(inputs, layer.weight, layer.bias)
            torch.testing.assert_close(linear(layer, inputs), expected, rtol=1e-5, atol=1e-5)
        assert layer not in fast_paths._OPEN_LAYERS  # its state dropped with the block
    with few_row_linears(layer), torch.inference_mode():
        layer.weight = torch.nn.Parameter(torch.randn(48, 32))  # replaced, as from_pretrained does
        torch.testing.assert_close(
            linear(layer, inputs), F.linear(inputs, layer.weight, layer.bias), rtol=1e-5, atol=1e-5
        )


@needs_onednn
@pytest.mark.parametrize("rows", [4, FEW_ROWS_MAX + 1], ids=["few rows in a block", "many rows"])
@pytest.mark.parametrize(
    "case",
    ["autograd", "bfloat16", "autocast", "forward hook", "replaced forward", "subclass", "global hook", "torchao"],
)
def test_the_onednn_paths_leave_the_call_to_the_layer_outside_their_domain(case, rows, monkeypatch):
    """Anything the fast paths cannot honour (gradients, other dtypes, autocast's lower precision, hooks of users
    and of accelerate, layers that are not exactly nn.Linear, as quantizers and PEFT make them, or whose weight
    torchao replaced by an int8 tensor in a scheme no int8 path takes) runs the layer's own forward: in a decoding
    step's block and, for many rows, anywhere."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    layer = linear_layer()
    if case == "subclass":
        layer = type("WrappedLinear", (torch.nn.Linear,), {})(32, 48)
    if case == "torchao":  # the layer stays an nn.Linear; its weight becomes a float32-typed int8 tensor subclass,
        # here in a scheme (one scale per group of 16 inputs) that no int8 path of fast_paths computes
        torchao_quantization = pytest.importorskip("torchao.quantization")
        grouped = torchao_quantization.Int8WeightOnlyConfig(granularity=torchao_quantization.PerGroup(16))
        torchao_quantization.quantize_(layer, grouped)
    inputs = torch.randn(rows, 32)
    if case == "bfloat16":
        layer, inputs = layer.to(torch.bfloat16), inputs.to(torch.bfloat16)
    calls = []
    if case == "forward hook":
        layer.register_forward_hook(lambda *_: calls.append(1))
    if case == "replaced forward":  # as accelerate's offloading hooks do
        layer.forward = lambda x, original=layer.forward: calls.append(1) or original(x)
    if case == "global hook":
        handle = torch_module.register_module_forward_hook(lambda *_: calls.append(1))
    onednn = spy_on_onednn(monkeypatch)
    block = few_row_linears(layer) if rows <= FEW_ROWS_MAX else contextlib.nullcontext()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "autocast")
    try:
        with block, autocast, torch.no_grad() if case != "autograd" else torch.enable_grad():
            output = linear(layer, inputs)
            expected = F.linear(inputs, layer.weight, layer.bias)
    finally:
        if case == "global hook":
            handle.remove()
    assert not onednn
    assert bool(calls) == (case in ("forward hook", "replaced forward", "global hook"))
    assert (output.grad_fn is not None) == (case == "autograd")
    assert output.dtype == (torch.bfloat16 if case in ("bfloat16", "autocast") else torch.float32)
    torch.testing.assert_close(output, expected)


class ThroughLinear(torch.nn.Module):
    """A module whose forward is `fast_paths.linear(layer, inputs)`, for tracing."""

    def __init__(self, layer: torch.nn.Linear):
        super().__init__()
        self.layer = layer

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return linear(self.layer, inputs)


@needs_onednn
@pytest.mark.parametrize("rows", ["many rows", "few rows in a decoding block"])
def test_tracing_and_vmap_keep_the_layers_own_operator(rows, monkeypatch):
    """A traced graph (the legacy ONNX exporter traces) must hold `aten::linear`, which exporters know, not oneDNN's
    operator; under vmap oneDNN's operator has no batching rule. Both rules that send a call to oneDNN (many rows
    anywhere, few rows inside `few_row_linears`) keep out of them."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 0)
    monkeypatch.setattr(fast_paths, "MKL_FEW_ROWS", False)
    layer, onednn = linear_layer(), spy_on_onednn(monkeypatch)
    count = FEW_ROWS_MAX + 1 if rows == "many rows" else 4
    inputs = torch.randn(count, 32)
    block = few_row_linears(layer) if rows != "many rows" else contextlib.nullcontext()
    with torch.no_grad(), block:
        linear(layer, inputs)
        assert len(onednn) == 1  # the call itself takes oneDNN
        traced = torch.jit.trace(ThroughLinear(layer), inputs, check_trace=False)
        batched = torch.vmap(lambda x: linear(layer, x))(inputs.reshape(count, 1, 32))
    assert len(onednn) == 1
    graph = str(traced.inlined_graph)
    assert "aten::linear" in graph and "mkldnn" not in graph
    torch.testing.assert_close(batched.reshape(-1, 48), F.linear(inputs, layer.weight, layer.bias))


@needs_onednn
def test_many_rows_take_onednn_from_enough_work_in_or_out_of_a_block(monkeypatch):
    """More than `FEW_ROWS_MAX` rows with at least `MANY_ROW_LEAST_WORK` multiply-adds go to oneDNN in inference,
    also inside a decoding block (a prefill); fewer rows outside a block follow the few-row rule (and its switch);
    less work or the switch off keep `F.linear`; an input of the wrong width gets `F.linear`'s own error."""
    layer, onednn = linear_layer(), spy_on_onednn(monkeypatch)
    inputs = torch.randn(5, 13, 32)  # 65 rows
    work = (FEW_ROWS_MAX + 1) * layer.weight.numel()
    with torch.no_grad():
        monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", work + 1)
        plain = linear(layer, inputs)
        assert not onednn
        monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", work)
        torch.testing.assert_close(linear(layer, inputs), plain, rtol=1e-5, atol=1e-5)
        assert len(onednn) == 1
        with few_row_linears(layer):
            torch.testing.assert_close(linear(layer, inputs), plain, rtol=1e-5, atol=1e-5)
        assert len(onednn) == 2
        few = inputs.reshape(-1, 32)[:FEW_ROWS_MAX]
        torch.testing.assert_close(linear(layer, few), F.linear(few, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
        assert len(onednn) == 3  # the fixture lets oneDNN take any weight at a few rows
        monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", layer.weight.numel() + 1)
        linear(layer, few)
        monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 0)
        monkeypatch.setattr(fast_paths, "FEW_ROW_LINEARS", False)
        linear(layer, few)
        assert len(onednn) == 3
        with pytest.raises(RuntimeError) as expected:
            layer(torch.randn(FEW_ROWS_MAX + 1, 31))
        with pytest.raises(RuntimeError, match=re.escape(str(expected.value))):
            linear(layer, torch.randn(FEW_ROWS_MAX + 1, 31))
        monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)
        assert torch.equal(linear(layer, inputs), plain)
    assert len(onednn) == 3


@needs_onednn
def test_weights_below_the_size_where_onednn_pays_off_keep_f_linear(monkeypatch):
    """oneDNN's fixed cost per call is larger than MKL's whole matmul for a small weight held in cache."""
    monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 48 * 32 + 1)
    layer, onednn = linear_layer(), spy_on_onednn(monkeypatch)
    with few_row_linears(layer), torch.no_grad():
        output = linear(layer, torch.ones(2, 32))
        assert not onednn
        monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 48 * 32)
        torch.testing.assert_close(linear(layer, torch.ones(2, 32)), output)
        assert onednn


@needs_onednn
def test_on_an_intel_cpu_f_linear_keeps_the_few_rows_mkl_multiplies_faster(monkeypatch):
    """On an Intel CPU MKL's own kernels beat oneDNN up to 3 rows, and oneDNN's fixed cost per call outweighs its
    gain below `MKL_LEAST_WORK` multiply-adds; elsewhere oneDNN takes every row count up to the most."""
    layer, onednn = linear_layer(), spy_on_onednn(monkeypatch)  # a weight of 48 x 32 elements

    def rows_taken_by_onednn() -> list[int]:
        taken = []
        with few_row_linears(layer), torch.no_grad():
            for rows in range(1, FEW_ROWS_MAX + 1):
                onednn.clear()
                inputs = torch.randn(rows, 32)
                torch.testing.assert_close(linear(layer, inputs), F.linear(inputs, layer.weight, layer.bias))
                if onednn:
                    taken.append(rows)
        return taken

    monkeypatch.setattr(fast_paths, "MKL_FEW_ROWS", True)
    assert rows_taken_by_onednn() == []  # 64 rows x 1536 elements: far below 2^23 multiply-adds
    monkeypatch.setattr(fast_paths, "MKL_LEAST_WORK", 10 * 48 * 32)
    assert rows_taken_by_onednn() == list(range(10, FEW_ROWS_MAX + 1))
    monkeypatch.setattr(fast_paths, "MKL_LEAST_WORK", 0)  # as for a large weight: MKL's own kernels up to 3 rows
    assert rows_taken_by_onednn() == list(range(4, FEW_ROWS_MAX + 1))
    monkeypatch.setattr(fast_paths, "MKL_FEW_ROWS", False)
    assert rows_taken_by_onednn() == list(range(1, FEW_ROWS_MAX + 1))


@pytest.mark.parametrize(
    ("vendor_line", "variable", "expected"),
    [
        ("vendor_id\t: GenuineIntel\n", None, True),
        ("vendor_id\t: AuthenticAMD\n", None, False),
        ("vendor_id\t: AuthenticAMD\n", "1", True),
        ("vendor_id\t: GenuineIntel\n", "0", False),
    ],
    ids=["Intel", "AMD", "forced on", "forced off"],
)
def test_mkl_few_rows_follows_the_cpu_vendor_unless_its_variable_decides(vendor_line, variable, expected, monkeypatch):
    """Read once at import: the vendor in /proc/cpuinfo (with torch built with MKL), or HF_VISIONTX_MKL_FEW_ROWS."""
    if variable is None:
        monkeypatch.delenv("HF_VISIONTX_MKL_FEW_ROWS", raising=False)
    else:
        monkeypatch.setenv("HF_VISIONTX_MKL_FEW_ROWS", variable)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: True)
    cpuinfo = "processor\t: 0\n" + vendor_line + "model name\t: a CPU\n"
    spec = importlib.util.spec_from_file_location("vendor_fast_paths", fast_paths.__file__)
    fresh = importlib.util.module_from_spec(spec)
    opened = []
    fresh.open = lambda path: opened.append(path) or io.StringIO(cpuinfo)  # the module's only file
    spec.loader.exec_module(fresh)
    assert opened == ([] if variable else ["/proc/cpuinfo"])  # the variable decides without reading the CPU
    assert fresh.MKL_FEW_ROWS is expected


def translator_and_batch() -> tuple[VtxTransformerForConditionalGeneration, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config()).eval()
    input_ids, attention_mask = padded_source_batch()
    return model, dict(input_ids=input_ids, attention_mask=attention_mask)


@needs_onednn
def test_a_model_copies_pickles_and_saves_unchanged_inside_a_few_row_block(monkeypatch):
    monkeypatch.setattr(fast_paths, "PACK_WEIGHTS", True)
    model, batch = translator_and_batch()
    packing = spy_on_packing(monkeypatch)
    with few_row_linears(model):
        tokens = model.generate(**batch, max_new_tokens=6, do_sample=False)
        assert packing and model.lm_head in fast_paths._OPEN_LAYERS  # kept while the outer block is open
        duplicate = copy.deepcopy(model)
        restored = pickle.loads(pickle.dumps(model))
        assert duplicate.lm_head not in fast_paths._OPEN_LAYERS and restored.lm_head not in fast_paths._OPEN_LAYERS
        assert all(type(module) is torch.nn.Linear for module in (duplicate.lm_head, restored.lm_head))
    assert model.lm_head not in fast_paths._OPEN_LAYERS
    assert torch.equal(duplicate.generate(**batch, max_new_tokens=6, do_sample=False), tokens)
    assert not any("pack" in key for key in model.state_dict())


@needs_onednn
def test_generation_gives_the_same_tokens_with_and_without_the_few_row_path(monkeypatch):
    monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)  # the decoding steps' block alone decides
    model, batch = translator_and_batch()
    settings = dict(max_new_tokens=8, do_sample=False, num_beams=3)
    onednn, packing = spy_on_onednn(monkeypatch), spy_on_packing(monkeypatch)
    fast = model.generate(**batch, **settings)
    assert onednn  # generate() took the oneDNN path
    assert not packing  # on the weights as they are: no copies unless PACK_WEIGHTS asks for them
    decoder_weights = {module.weight for module in model.get_decoder().modules() if isinstance(module, torch.nn.Linear)}
    assert set(onednn) <= decoder_weights | {model.lm_head.weight}  # the encoder runs once per call: left out
    monkeypatch.setattr(fast_paths, "PACK_WEIGHTS", True)
    assert torch.equal(model.generate(**batch, **settings), fast)
    assert packing
    monkeypatch.setattr(fast_paths, "few_row_linears_available", lambda: False)
    onednn.clear()
    assert torch.equal(model.generate(**batch, **settings), fast)
    assert not onednn  # F.linear all the way


@needs_onednn
def test_generation_after_a_fused_adamw_step_uses_the_new_weights(monkeypatch):
    """Fused AdamW updates parameters without bumping their version counter: packed copies kept from the previous
    generate() would be stale."""
    monkeypatch.setattr(fast_paths, "PACK_WEIGHTS", True)
    model, batch = translator_and_batch()
    settings = dict(max_new_tokens=5, do_sample=False, output_scores=True, return_dict_in_generate=True)
    model.generate(**batch, **settings)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    labels = torch.randint(3, 99, (3, 6), generator=torch.Generator().manual_seed(1))
    model.train()
    model(**batch, labels=labels).loss.backward()
    optimizer.step()
    model.eval()
    fast = torch.stack(model.generate(**batch, **settings).scores)
    monkeypatch.setattr(fast_paths, "few_row_linears_available", lambda: False)
    plain = torch.stack(model.generate(**batch, **settings).scores)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


def vit_classifier(**overrides) -> VtxViTForImageClassification:
    torch.manual_seed(0)
    config = tiny_vit_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=5, **overrides)
    return VtxViTForImageClassification(config)


def full_path_logits(model: VtxViTForImageClassification, pixels: torch.Tensor) -> torch.Tensor:
    """Logits through the whole last layer (the encoder's default), for comparison."""
    return model.classifier(model.vit(pixels).pooler_output)


def test_vit_classifier_updates_only_the_cls_token_in_its_last_layer():
    model, pixels = vit_classifier().eval(), pixel_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, full_path_logits(model, pixels), rtol=1e-5, atol=1e-5)
        assert model.vit(pixels, _pooled_only=True).last_hidden_state.shape[1] == 1
        assert model.vit(pixels, _pooled_only=True, output_hidden_states=True).last_hidden_state.shape[1] == 65
    with FlopCounterMode(display=False) as shortcut:
        model(pixels)
    with FlopCounterMode(display=False) as full:
        full_path_logits(model, pixels)
    width, inner = model.config.hidden_size, model.config.intermediate_size
    patch_output_flops = 2 * pixels.shape[0] * 64 * (width**2 + 2 * width * inner)  # O and the MLP of 64 patches
    assert full.get_total_flops() - shortcut.get_total_flops() >= patch_output_flops


def test_vit_classifier_shortcut_trains_with_the_full_paths_gradients():
    shortcut, full = vit_classifier().train(), vit_classifier().train()
    pixels, labels = pixel_batch(), torch.tensor([0, 3, 4])
    shortcut(pixels, labels=labels).loss.backward()
    F.cross_entropy(full_path_logits(full, pixels), labels).backward()
    for (name, ours), reference in zip(shortcut.named_parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, reference.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_vit_cls_only_switch_gives_the_same_logits(monkeypatch):
    model, pixels = vit_classifier().eval(), pixel_batch()
    with torch.no_grad():
        fast = model(pixels).logits
        monkeypatch.setattr(fast_paths, "CLS_ONLY_LAST_LAYER", False)
        assert model.vit(pixels, _pooled_only=True).last_hidden_state.shape[1] == 65
        torch.testing.assert_close(model(pixels).logits, fast, rtol=1e-5, atol=1e-5)


def test_pooled_only_is_not_part_of_the_public_encoder_contract():
    """The shortcut is the classifier's private business: the bare encoder always returns every token."""
    assert "pooled_only" not in inspect.signature(VtxViTModel.forward).parameters
    assert "pooled_only" not in inspect.signature(VtxViTModel.__init__).parameters
    model, pixels = vit_classifier().eval(), pixel_batch()
    with torch.no_grad(), pytest.raises(TypeError, match="pooled_only"):
        model.vit(pixels, pooled_only=True)
    with torch.no_grad():
        assert model.vit(pixels).last_hidden_state.shape[1] == 65


def test_vit_mean_pooling_keeps_every_token():
    model, pixels = vit_classifier(pooling="mean").eval(), pixel_batch()
    with torch.no_grad():
        assert model.vit(pixels, _pooled_only=True).last_hidden_state.shape[1] == 65
        torch.testing.assert_close(model(pixels).logits, full_path_logits(model, pixels))


def test_vit_classifier_shortcut_works_with_quantised_projections():
    model, pixels = vit_classifier().eval(), pixel_batch()
    quantised = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        difference = (quantised(pixels).logits - model(pixels).logits).abs().max()
    assert difference < 0.05


def test_mlp_runs_huge_activations_in_row_pieces_with_the_same_outputs(monkeypatch):
    torch.manual_seed(0)
    config = tiny_swin_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0)
    model, pixels = VtxSwinForImageClassification(config).eval(), pixel_batch()
    fc1_calls = []
    for module in model.modules():
        if isinstance(module, feed_forward.VtxMLP):
            module.fc1.register_forward_hook(lambda *_: fc1_calls.append(1))
    with torch.no_grad():
        whole = model(pixels).logits
        whole_calls = len(fc1_calls)
        monkeypatch.setattr(fast_paths, "MLP_CHUNK_BYTES", 4096)  # the first stage's [768, 64] activation: 6 pieces
        pieces = model(pixels).logits
        monkeypatch.setattr(fast_paths, "MLP_ROW_PIECES", False)
        calls_before = len(fc1_calls)
        switched_off = model(pixels).logits
        assert len(fc1_calls) - calls_before == whole_calls
        monkeypatch.setattr(fast_paths, "MLP_ROW_PIECES", True)
    assert len(fc1_calls) - whole_calls > whole_calls  # some MLPs really ran in pieces
    torch.testing.assert_close(pieces, whole, rtol=1e-5, atol=1e-6)
    assert torch.equal(switched_off, whole)
    with torch.enable_grad():  # training keeps the whole activation (autograd saves it anyway)
        calls_before = len(fc1_calls)
        model(pixels)
    assert len(fc1_calls) - calls_before == whole_calls


# --- the MLP's activation in place ------------------------------------------------------------------------------


def run_mlp_watching_its_inner_tensors(mlp, inputs, monkeypatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MLP's output, fc1's output as `fast_paths.linear` returned it, and the tensor fc2 was given."""
    fc1_outputs, fc2_inputs, original = [], [], fast_paths.linear
    monkeypatch.setattr(  # fc1 goes through `fast_paths.projected_and_activated`, fc2 through `feed_forward.linear`
        fast_paths, "linear", lambda layer, x: fc1_outputs.append(original(layer, x)) or fc1_outputs[-1]
    )
    handle = mlp.fc2.register_forward_pre_hook(lambda module, args: fc2_inputs.append(args[0]))
    try:
        output = mlp(inputs)
    finally:
        handle.remove()
    return output, fc1_outputs[0], fc2_inputs[0]


@pytest.mark.parametrize("activation", ["gelu", "relu", "swish"])
def test_in_inference_the_activation_overwrites_the_first_projections_output(activation, monkeypatch):
    """No second tensor of the inner width: fc2 reads the very tensor fc1 returned, and the output is the same to
    the bit as with the activation out of place."""
    mlp, inputs = mlp_and_inputs(activation)
    assert fast_paths._in_place_form(mlp.activation) is not None  # transformers' GELU still holds F.gelu as `act`
    with torch.no_grad():
        output, fc1_output, fc2_input = run_mlp_watching_its_inner_tensors(mlp, inputs, monkeypatch)
        monkeypatch.setattr(fast_paths, "IN_PLACE_ACTIVATIONS", False)
        plain, plain_fc1_output, plain_fc2_input = run_mlp_watching_its_inner_tensors(mlp, inputs, monkeypatch)
    assert fc2_input.data_ptr() == fc1_output.data_ptr()
    assert plain_fc2_input.data_ptr() != plain_fc1_output.data_ptr()
    assert torch.equal(fc2_input, mlp.activation(plain_fc1_output))
    assert torch.equal(output, plain)


@pytest.mark.parametrize(
    "case", ["autograd", "hook keeping fc1's output", "hook on the activation", "wrapped fc1", "no in-place form"]
)
def test_the_activation_stays_out_of_place_where_the_difference_could_be_seen(case, monkeypatch):
    """Gradients need fc1's output; a hook may keep it (and must see it as it was); a hook on the activation must
    run; a layer that is not exactly nn.Linear may return a tensor it keeps; GPT-2's tanh GELU has no in-place form
    that computes the same."""
    mlp, inputs = mlp_and_inputs("gelu_new" if case == "no in-place form" else "gelu")
    kept, activation_calls = [], []
    if case == "hook keeping fc1's output":
        mlp.fc1.register_forward_hook(lambda module, args, output: kept.append(output))
    if case == "hook on the activation":
        mlp.activation.register_forward_hook(lambda *_: activation_calls.append(1))
    if case == "wrapped fc1":
        mlp.fc1.__class__ = type("WrappedLinear", (torch.nn.Linear,), {})
    with torch.enable_grad() if case == "autograd" else torch.no_grad():
        output, fc1_output, fc2_input = run_mlp_watching_its_inner_tensors(mlp, inputs, monkeypatch)
    assert fc2_input.data_ptr() != fc1_output.data_ptr()
    assert torch.equal(fc2_input, mlp.activation(fc1_output.detach()))
    if kept:
        assert torch.equal(kept[0], F.linear(inputs, mlp.fc1.weight, mlp.fc1.bias))
    assert bool(activation_calls) == (case == "hook on the activation")
    with torch.no_grad():
        torch.testing.assert_close(output, mlp.fc2(mlp.activation(mlp.fc1(inputs))))


ONEDNN_POST_OPS = {"gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu", "swish": "swish"}
ONEDNN_POST_OPS["silu"] = "swish"


def test_the_activations_of_our_configs_have_their_onednn_post_op():
    """transformers' activation classes (and what GELUActivation and GELUTanh hold as `act`) are what the fused
    path recognises: a change there must fail here, not silently stop fusing."""
    for name, post_op in ONEDNN_POST_OPS.items():
        assert fast_paths._onednn_post_op(ACT2FN[name])[0] == post_op, name
    assert fast_paths._onednn_post_op(ACT2FN["quick_gelu"]) is None
    assert fast_paths._onednn_post_op(GELUActivation(use_gelu_python=True)) is None


@needs_onednn
@pytest.mark.parametrize("activation", sorted(ONEDNN_POST_OPS))
def test_in_inference_many_rows_run_the_first_projection_and_activation_in_one_onednn_pass(activation, monkeypatch):
    """oneDNN applies the non-linearity as it writes the product (the same function as transformers' activation, up
    to float rounding): fc2 reads that tensor, and the MLP's output is the plain path's."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    torch.manual_seed(0)
    mlp, inputs = feed_forward.VtxMLP(32, 128, activation), torch.randn(2, FEW_ROWS_MAX, 32)
    fused = record_calls(monkeypatch, fast_paths, "_onednn_activated_linear", lambda *args: args[3][0])
    fc2_inputs = []
    mlp.fc2.register_forward_pre_hook(lambda module, args: fc2_inputs.append(args[0]))
    with torch.no_grad():
        output = mlp(inputs)
        monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)
        plain = mlp(inputs)
    assert fused == [ONEDNN_POST_OPS[activation]]
    expected = mlp.activation(F.linear(inputs, mlp.fc1.weight, mlp.fc1.bias))
    torch.testing.assert_close(fc2_inputs[0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(output, plain, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("case", ["hook on the activation", "no oneDNN form", "autograd"])
def test_the_activation_stays_a_call_of_its_own_where_fusing_would_change_what_runs(case, monkeypatch):
    """A hook on the activation must run; an activation oneDNN does not have (QuickGELU) must be computed as
    written; gradients need the plain path."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    torch.manual_seed(0)
    mlp = feed_forward.VtxMLP(32, 128, "quick_gelu" if case == "no oneDNN form" else "gelu")
    inputs = torch.randn(2, FEW_ROWS_MAX, 32)
    fused, hooked = record_calls(monkeypatch, fast_paths, "_onednn_activated_linear", lambda *args: 1), []
    if case == "hook on the activation":
        mlp.activation.register_forward_hook(lambda *_: hooked.append(1))
    with torch.enable_grad() if case == "autograd" else torch.no_grad():
        output = mlp(inputs)
    assert not fused
    assert bool(hooked) == (case == "hook on the activation")
    with torch.no_grad():
        torch.testing.assert_close(output, mlp.fc2(mlp.activation(mlp.fc1(inputs))), rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("family", ["vit", "swin"])
def test_in_inference_every_projection_of_an_image_model_runs_on_onednn_with_the_same_outputs(family, monkeypatch):
    """Attention's Q/K/V and output projections, both MLP layers (the first fused with its GELU) and Swin's patch
    merging run on oneDNN; the outputs are the plain path's."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    torch.manual_seed(0)
    config = (tiny_vit_config if family == "vit" else tiny_swin_config)(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model = (VtxViTModel if family == "vit" else VtxSwinModel)(config).eval()
    weights = spy_on_onednn(monkeypatch)
    fused_weights = record_calls(monkeypatch, fast_paths, "_onednn_activated_linear", lambda *args: args[1])
    pixels = pixel_batch(batch=2)
    with torch.no_grad():
        outputs = model(pixels)
        monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)
        plain = model(pixels)
    blocks = "layers." if family == "vit" else "stages."
    projections = {
        id(module.weight)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith(blocks)
    }
    assert {id(weight) for weight in weights + fused_weights} == projections
    assert len(fused_weights) == (config.num_hidden_layers if family == "vit" else sum(config.depths))
    torch.testing.assert_close(outputs.last_hidden_state, plain.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs.pooler_output, plain.pooler_output, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_a_translation_models_forward_runs_its_projections_on_onednn_with_the_same_logits(monkeypatch):
    """Encoder and decoder over whole sentences (teacher forcing), the output layer included: every projection
    takes the many-row path, and the logits are the plain path's; generate() gives the same tokens."""
    monkeypatch.setattr(fast_paths, "MANY_ROW_LEAST_WORK", 0)
    model, _ = translator_and_batch()
    input_ids, attention_mask = padded_source_batch(batch=8)  # 72 rows
    weights = spy_on_onednn(monkeypatch)
    fused_weights = record_calls(monkeypatch, fast_paths, "_onednn_activated_linear", lambda *args: args[1])
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits
        tokens = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=5)
        monkeypatch.setattr(fast_paths, "ONEDNN_LINEARS", False)
        plain = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits
        plain_tokens = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=5)
    projections = {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Linear)}
    assert {id(weight) for weight in weights + fused_weights} == projections
    torch.testing.assert_close(logits, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(tokens, plain_tokens)


# --- the MLP's activation recomputed in the backward pass ------------------------------------------------------


def mlp_and_inputs(activation: str) -> tuple[feed_forward.VtxMLP, torch.Tensor]:
    torch.manual_seed(0)
    return feed_forward.VtxMLP(32, 128, activation), torch.randn(2, 10, 32, requires_grad=True)


@pytest.mark.parametrize(("activation", "recomputed"), [("gelu", True), ("silu", True), ("relu", False)])
def test_the_mlp_keeps_one_inner_activation_for_backward_with_the_same_gradients(activation, recomputed, monkeypatch):
    """GELU and SiLU keep their input for the backward pass: fc2's copy of their output is recomputed instead. ReLU
    keeps its output, which fc2 shares: there is nothing to gain and the path is not taken."""
    mlp, inputs = mlp_and_inputs(activation)
    inner_bytes = 2 * 10 * 128 * 4  # one [rows, intermediate_size] float32 tensor
    held, gradients = {}, {}
    for switch in (True, False):
        monkeypatch.setattr(fast_paths, "RECOMPUTE_ACTIVATIONS", switch)
        loss, held[switch] = bytes_held_after(lambda: mlp(inputs).sum())
        gradients[switch] = torch.autograd.grad(loss, [inputs, *mlp.parameters()])
    assert held[True] <= inner_bytes + 4  # fc1's output, and the loss
    assert held[False] - held[True] == (inner_bytes if recomputed else 0)
    assert all(torch.equal(on, off) for on, off in zip(gradients[True], gradients[False], strict=True))


def test_the_recomputed_activation_joins_the_graph_for_second_derivatives(monkeypatch):
    """With `create_graph=True` the recomputation is differentiable: fc2's weight gradient depends on fc1's weight."""
    mlp, inputs = mlp_and_inputs("gelu")
    results = {}
    for switch in (True, False):
        monkeypatch.setattr(fast_paths, "RECOMPUTE_ACTIVATIONS", switch)
        (fc2_gradient,) = torch.autograd.grad(mlp(inputs).pow(2).sum(), mlp.fc2.weight, create_graph=True)
        results[switch] = torch.autograd.grad(fc2_gradient.pow(2).sum(), mlp.fc1.weight)[0]
    assert results[True].abs().sum() > 0
    torch.testing.assert_close(results[True], results[False])


def test_recomputation_stays_out_of_other_saved_tensor_hooks(monkeypatch):
    """Activation checkpointing and CPU offloading save through hooks of their own: inside them the path is not
    taken, so that everything saved still passes through theirs."""
    mlp, inputs = mlp_and_inputs("gelu")
    saved = {}
    for switch in (True, False):
        monkeypatch.setattr(fast_paths, "RECOMPUTE_ACTIVATIONS", switch)
        saved[switch] = []

        def pack(tensor, packed=saved[switch]):
            packed.append((tuple(tensor.shape), tensor.untyped_storage().nbytes()))
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            mlp(inputs).sum().backward()
    assert saved[True] == saved[False]


def test_the_apis_the_recomputed_activations_lean_on_still_exist():
    """The path asks torch whether saved-tensor hooks are enabled and which are active (private), and reads what
    GELU, SiLU and ReLU saved through their backward nodes' `_saved_*` attributes."""
    assert torch._C._autograd._saved_tensors_hooks_is_enabled() is True
    top_hooks = torch._C._autograd._top_saved_tensors_default_hooks
    assert top_hooks(False) is None

    def pack(tensor):
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, pack):
        assert top_hooks(False) == (pack, pack)
    inputs = torch.randn(3, requires_grad=True)
    for function in (F.gelu, F.silu):
        outputs = function(inputs)
        assert fast_paths._saves(outputs.grad_fn, inputs) and not fast_paths._saves(outputs.grad_fn, outputs)
    outputs = F.relu(inputs)
    assert fast_paths._saves(outputs.grad_fn, outputs) and not fast_paths._saves(outputs.grad_fn, inputs)


# --- the cross-entropy's gradient made in one tensor ---------------------------------------------------------


def logits_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 97, generator=generator, requires_grad=True)  # [N, V]
    labels = torch.randint(0, 97, (40,), generator=generator)
    labels[::7] = -100  # ignored positions
    return logits, labels


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_summed_cross_entropy_equals_f_cross_entropy_and_its_gradient(label_smoothing):
    logits, labels = logits_and_labels()
    expected = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing)
    loss = fast_paths.summed_cross_entropy(logits, labels, -100, label_smoothing)
    assert loss.grad_fn.name().endswith("_SummedCrossEntropyBackward")
    assert torch.equal(loss, expected)
    (gradient,) = torch.autograd.grad(0.37 * loss, logits)
    (expected_gradient,) = torch.autograd.grad(0.37 * expected, logits)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-6, atol=1e-7)
    assert not gradient[::7].any()


def test_the_cross_entropy_backward_makes_one_vocabulary_sized_tensor(monkeypatch):
    logits, labels = logits_and_labels()
    vocabulary_bytes = logits.nbytes
    peaks = {}
    for switch in (True, False):
        monkeypatch.setattr(fast_paths, "FUSED_CROSS_ENTROPY", switch)
        loss = fast_paths.summed_cross_entropy(logits, labels, -100, 0.1)
        peaks[switch] = peak_bytes_during(lambda loss=loss: torch.autograd.grad(loss, logits))
    assert peaks[True] < 1.1 * vocabulary_bytes
    assert peaks[False] >= 2 * vocabulary_bytes


# --- per-step costs of token-by-token decoding -----------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("query_length", [1, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_attention_equals_transformers_sdpa_function(causal, query_length, masked):
    generator = torch.Generator().manual_seed(query_length)
    query = torch.randn(2, 4, query_length, 8, generator=generator)
    key, value = torch.randn(2, 2, 4, 5, 8, generator=generator).unbind(0)  # 2 x [B, H, K, D]
    mask = None
    if masked:  # an additive padding mask hiding the last key of the second sequence
        mask = torch.zeros(2, 1, query_length, 5)
        mask[1, ..., -1] = torch.finfo(torch.float32).min
    module = torch.nn.Module()
    module.is_causal = causal
    ours, _ = fast_paths.sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    reference, _ = sdpa_attention.sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    torch.testing.assert_close(ours, reference)  # [B, Q, H, D]
    if causal and query_length > 1 and not masked:  # the kernel's causality really applied
        bidirectional = torch.nn.Module()
        bidirectional.is_causal = False
        plain, _ = fast_paths.sdpa_attention_forward(bidirectional, query, key, value, None, scaling=0.3)
        assert not torch.allclose(ours, plain)


@pytest.mark.parametrize("mask_kind", ["none", "boolean", "additive"])
def test_one_query_attention_written_for_inductor_equals_sdpa(mask_kind):
    """The compiled decoding step's attention (`_one_query_attention`: one query, as products and sums) gives sdpa's
    output, with either kind of mask hiding some keys."""
    generator = torch.Generator().manual_seed(7)
    query = torch.randn(3, 4, 1, 8, generator=generator)  # [B, H, 1, D]
    key, value = torch.randn(2, 3, 4, 6, 8, generator=generator).unbind(0)  # 2 x [B, H, K, D]
    attend = torch.ones(3, 1, 1, 6, dtype=torch.bool)
    attend[1, ..., 4:] = False  # the second sequence's last two keys: a static cache's empty slots
    attend[2, ..., 0] = False
    mask = {"none": None, "boolean": attend, "additive": torch.zeros(attend.shape).masked_fill(~attend, -1e30)}
    ours = fast_paths._one_query_attention(query, key, value, mask[mask_kind], scaling=0.3)
    reference = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[mask_kind], scale=0.3)
    torch.testing.assert_close(ours, reference.transpose(1, 2), rtol=1e-5, atol=1e-6)  # [B, 1, H, D]


def test_the_private_apis_direct_sdpa_leans_on_still_exist():
    """Direct sdpa replaces transformers' sdpa function only while the registry maps "sdpa" to it, and must take the
    arguments our attention modules pass it."""
    assert ALL_ATTENTION_FUNCTIONS.get("sdpa") is sdpa_attention.sdpa_attention_forward
    assert isinstance(ALL_ATTENTION_FUNCTIONS._global_mapping, dict)
    assert parameters_of(sdpa_attention.sdpa_attention_forward)[:5] == [
        "module",
        "query",
        "key",
        "value",
        "attention_mask",
    ]
    assert {"dropout", "scaling"} <= set(parameters_of(sdpa_attention.sdpa_attention_forward))


def test_attention_function_takes_direct_sdpa_and_honours_a_user_registered_sdpa(monkeypatch):
    config = tiny_transformer_config(attn_implementation="sdpa")
    assert attention.attention_function(config) is fast_paths.sdpa_attention_forward
    config._attn_implementation = "eager"
    assert attention.attention_function(config) is attention.eager_attention_forward
    config._attn_implementation = "sdpa"
    monkeypatch.setattr(fast_paths, "DIRECT_SDPA", False)
    assert attention.attention_function(config) is sdpa_attention.sdpa_attention_forward
    monkeypatch.setattr(fast_paths, "DIRECT_SDPA", True)

    def custom(*args, **kwargs):
        return attention.eager_attention_forward(*args, **kwargs)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "sdpa", custom)
    assert attention.attention_function(config) is custom


def test_direct_sdpa_switch_gives_the_same_translation(monkeypatch):
    model, batch = translator_and_batch()
    decoder_input_ids = batch["input_ids"][:, :4]
    with torch.no_grad():
        fast = model(**batch, decoder_input_ids=decoder_input_ids).logits
        tokens = model.generate(**batch, max_new_tokens=6, num_beams=2)
        monkeypatch.setattr(fast_paths, "DIRECT_SDPA", False)
        torch.testing.assert_close(model(**batch, decoder_input_ids=decoder_input_ids).logits, fast)
        assert torch.equal(model.generate(**batch, max_new_tokens=6, num_beams=2), tokens)


def test_the_apis_the_needless_mask_path_leans_on_still_exist():
    """A static cache is told apart by `Cache.is_compileable`; the mask builders take the arguments we pass."""
    config = tiny_transformer_config()
    assert isinstance(inspect.getattr_static(Cache, "is_compileable"), property)
    assert not DynamicCache(config=config).is_compileable
    assert StaticCache(config=config, max_cache_len=8).is_compileable
    assert {"config", "inputs_embeds", "attention_mask", "cache"} <= set(
        parameters_of(masking_utils.create_causal_mask)
    )
    assert {"config", "inputs_embeds", "attention_mask", "encoder_hidden_states"} <= set(
        parameters_of(masking_utils.create_bidirectional_mask)
    )


def test_masks_are_left_out_only_when_they_mask_nothing(monkeypatch):
    assert padding_free(None) and padding_free(torch.ones(2, 5, dtype=torch.long))
    assert not padding_free(torch.tensor([[1, 1, 0]]))
    assert not padding_free(torch.zeros(2, 1, 3, 3))  # a prepared 4-D mask is used as given
    config = tiny_transformer_config()
    dynamic = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    assert causal_mask_needless(1, None, None) and causal_mask_needless(1, dynamic.self_attention_cache, None)
    assert not causal_mask_needless(2, None, None)
    assert not causal_mask_needless(1, StaticCache(config=config, max_cache_len=8), None)
    assert not causal_mask_needless(1, None, torch.tensor([[1, 0]]))
    monkeypatch.setattr(fast_paths, "SKIP_NEEDLESS_MASKS", False)
    assert not padding_free(None) and not causal_mask_needless(1, None, None)


def test_needless_masks_are_not_built_while_decoding_and_the_switch_gives_the_same_tokens(monkeypatch):
    from hf_visiontx.modeling import modeling_transformer

    model, batch = translator_and_batch()
    batch = dict(input_ids=batch["input_ids"][:2, :4], attention_mask=torch.ones(2, 4, dtype=torch.long))
    built = []
    for name in ("create_causal_mask", "create_bidirectional_mask"):
        original = getattr(modeling_transformer, name)
        monkeypatch.setattr(
            modeling_transformer,
            name,
            lambda *args, _original=original, _name=name, **kwargs: built.append(_name) or _original(*args, **kwargs),
        )
    with torch.no_grad():
        fast = model.generate(**batch, max_new_tokens=6, output_scores=True, return_dict_in_generate=True)
        assert built == []  # no padding, one position per step: no mask was built at all
        monkeypatch.setattr(fast_paths, "SKIP_NEEDLESS_MASKS", False)
        plain = model.generate(**batch, max_new_tokens=6, output_scores=True, return_dict_in_generate=True)
    assert "create_causal_mask" in built and "create_bidirectional_mask" in built
    assert torch.equal(plain.sequences, fast.sequences)
    torch.testing.assert_close(torch.stack(plain.scores), torch.stack(fast.scores))


def test_padded_decoding_steps_match_the_full_forward():
    """Padding on both sides (source and target) still masks while decoding one position at a time, where the
    masks are left out only when they mask nothing."""
    model, batch = translator_and_batch()
    decoder_input_ids = torch.randint(3, 99, (3, 5), generator=torch.Generator().manual_seed(2))
    decoder_attention_mask = torch.ones(3, 5, dtype=torch.long)
    decoder_attention_mask[2, :2] = 0  # the third target is left-padded
    with torch.no_grad():
        full = model(**batch, decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask)
        encoder_outputs = model.get_encoder()(**batch)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        steps = [
            model(
                encoder_outputs=encoder_outputs,
                attention_mask=batch["attention_mask"],
                decoder_input_ids=decoder_input_ids[:, t : t + 1],
                decoder_attention_mask=decoder_attention_mask[:, : t + 1],
                cache=cache,
                use_cache=True,
            ).logits
            for t in range(5)
        ]
    stepped = torch.cat(steps, dim=1)  # [B, 5, V]
    real = decoder_attention_mask.bool()
    torch.testing.assert_close(stepped[real], full.logits[real], rtol=1e-5, atol=1e-5)


def test_the_private_apis_the_cached_eos_masks_lean_on_still_exist():
    """`FastDecodingMixin` overrides `GenerationMixin._get_logits_processor` and swaps the class of the processors it
    returns, whose attributes the cached subclasses read."""
    assert callable(inspect.getattr_static(GenerationMixin, "_get_logits_processor"))
    assert "generation_config" in parameters_of(GenerationMixin._get_logits_processor)
    assert "_get_logits_processor" not in vars(VtxTransformerForConditionalGeneration)
    min_length = MinLengthLogitsProcessor(3, torch.tensor([2]))
    assert min_length.min_length == 3 and torch.equal(min_length.eos_token_id, torch.tensor([2]))
    min_new = MinNewTokensLengthLogitsProcessor(2, 4, torch.tensor([2]))
    assert (min_new.prompt_length_to_skip, min_new.min_new_tokens) == (2, 4)
    assert torch.equal(min_new.eos_token_id, torch.tensor([2]))
    min_length.__class__ = CachedMinLengthLogitsProcessor  # raises if the class layouts stop being compatible
    assert torch.isinf(min_length(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 5))[0, 2])


@pytest.mark.parametrize("processor_class", [MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor])
def test_cached_minimum_length_processors_equal_transformers(processor_class):
    eos = torch.tensor([2, 7, 500])  # 500 lies outside the vocabulary and must be ignored, as isin does
    make = {
        MinLengthLogitsProcessor: lambda: MinLengthLogitsProcessor(6, eos),
        MinNewTokensLengthLogitsProcessor: lambda: MinNewTokensLengthLogitsProcessor(2, 4, eos),
    }[processor_class]
    reference, cached = make(), with_cached_eos_masks(LogitsProcessorList([make()]))[0]
    assert type(cached) is not processor_class and isinstance(cached, processor_class)
    scores = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    for length in range(3, 9):  # below, at and above the minimum
        input_ids = torch.zeros(3, length, dtype=torch.long)
        expected = reference(input_ids, scores)
        actual = cached(input_ids, scores)
        assert torch.equal(actual, expected) and actual is not scores
    assert torch.isinf(cached(torch.zeros(3, 3, dtype=torch.long), scores)[:, [2, 7]]).all()


def test_generate_uses_the_cached_minimum_length_processors_and_forbids_early_eos(monkeypatch):
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config(lm_head_bias=True)).eval()
    _, batch = translator_and_batch()
    eos = model.config.eos_token_id
    with torch.no_grad():
        model.lm_head.bias[eos] = 50.0  # without the processors, every sequence would end at once
    built = []
    original = VtxTransformerForConditionalGeneration._get_logits_processor
    monkeypatch.setattr(
        VtxTransformerForConditionalGeneration,
        "_get_logits_processor",
        lambda self, *args, **kwargs: built.append(original(self, *args, **kwargs)) or built[-1],
    )
    with torch.no_grad():
        assert model.generate(**batch, max_new_tokens=3).shape[1] == 2  # the start token, then eos
        tokens = model.generate(**batch, max_new_tokens=9, min_new_tokens=6, min_length=5)
    assert {type(processor) for processor in built[-1]} >= {
        CachedMinLengthLogitsProcessor,
        CachedMinNewTokensLengthLogitsProcessor,
    }
    assert tokens.shape[1] == 8 and not (tokens[:, 1:7] == eos).any() and (tokens[:, 7] == eos).all()
    monkeypatch.setattr(fast_paths, "CACHED_EOS_MASKS", False)
    with torch.no_grad():
        assert torch.equal(model.generate(**batch, max_new_tokens=9, min_new_tokens=6, min_length=5), tokens)
    assert {MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor} <= {type(p) for p in built[-1]}


# --- Swin's shift masks, cached per block -----------------------------------------------------------------------


def tiny_swin(**overrides) -> VtxSwinModel:
    torch.manual_seed(0)
    config = tiny_swin_config(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0, **overrides
    )
    return VtxSwinModel(config).eval()


def shifted_blocks(model: VtxSwinModel) -> list:
    return [block for stage in model.stages for block in stage.blocks if block.shift_size]


def test_shift_masks_are_built_once_per_block_and_size_and_equal_fresh_ones(monkeypatch):
    model, pixels = tiny_swin(), pixel_batch()
    with torch.no_grad():
        cached = model(pixels).last_hidden_state
        block = shifted_blocks(model)[0]
        assert len(block.shift_masks) == 1
        (mask,) = block.shift_masks.entries.values()
        model(pixels)
        assert next(iter(block.shift_masks.entries.values())) is mask  # reused, not rebuilt
        monkeypatch.setattr(fast_paths, "CACHE_SHIFT_MASKS", False)
        for each in shifted_blocks(model):
            each.shift_masks.entries.clear()
        assert torch.equal(model(pixels).last_hidden_state, cached)
    assert all(len(each.shift_masks) == 0 for each in shifted_blocks(model))


def test_the_shift_mask_cache_is_bounded():
    model = tiny_swin()
    block = shifted_blocks(model)[0]
    with torch.no_grad():
        for size in range(32, 32 + 4 * (block.shift_masks.max_entries + 3), 4):
            model(torch.randn(1, 3, size, size), interpolate_pos_encoding=True)
    assert len(block.shift_masks) == block.shift_masks.max_entries


def test_deleting_a_swin_model_frees_its_shift_masks():
    """The masks belong to the model: nothing process-wide keeps them (or their device memory) alive."""
    model, pixels = tiny_swin(), pixel_batch()
    with torch.no_grad():
        model(pixels)
    masks = [weakref.ref(mask) for block in shifted_blocks(model) for mask in block.shift_masks.entries.values()]
    assert masks
    del model
    gc.collect()
    assert all(mask() is None for mask in masks)


def test_the_apis_the_shift_mask_cache_leans_on_still_exist():
    """Under torch.compile the masks are built in the graph: the cache asks `torch.compiler.is_compiling`."""
    assert callable(torch.compiler.is_compiling) and torch.compiler.is_compiling() is False
    cache = fast_paths.BoundedTensorCache(max_entries=2)
    built = [cache.get(key, lambda: torch.zeros(1)) for key in (1, 2, 1, 3)]
    assert built[0] is built[2] and list(cache.entries) == [2, 3]
