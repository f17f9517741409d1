"""torch.compile, torch.export, ONNX and bfloat16 on the three families, with tiny configs.

Graph-break checks compile with `fullgraph=True` (any break is an error) on the `aot_eager` backend: it captures
the graph with Dynamo and traces forward and backward through AOTAutograd as inductor does, without inductor's
code generation, which costs tens of seconds per model on 2 CPU cores. Inductor's code generation itself is
exercised by the compiled training steps in test_vit.py / test_swin.py and the compiled generation in
test_transformer.py.
"""

from collections import Counter
from collections.abc import Callable

import pytest
import torch
from torch.export import Dim, export
from transformers import CompileConfig

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
)
from hf_visiontx.modeling import fast_paths
from support.operators import library_calls, profiled_operators
from support.swin_tester import tiny_swin_config
from support.transformer_tester import VOCAB_SIZE, padded_source_batch, target_labels, tiny_transformer_config
from support.vit_tester import masked_positions, pixel_batch, tiny_vit_config

pytestmark = pytest.mark.slow  # inductor compiles and torch.export / ONNX exports

NO_DROPOUT = {
    "vit": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    "swin": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0),
    "transformer": dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from a clean slate, so that no test hits another's cache or recompile limit."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def classifier(family: str, **overrides) -> torch.nn.Module:
    """A tiny image classifier of `family` ("vit" or "swin") without dropout, in eval mode."""
    if family == "vit":
        return VtxViTForImageClassification(tiny_vit_config(**NO_DROPOUT["vit"], **overrides)).eval()
    return VtxSwinForImageClassification(tiny_swin_config(**NO_DROPOUT["swin"], **overrides)).eval()


def translator(**overrides) -> VtxTransformerForConditionalGeneration:
    """A tiny Transformer without dropout, in eval mode."""
    config = tiny_transformer_config(**NO_DROPOUT["transformer"], **overrides)
    return VtxTransformerForConditionalGeneration(config).eval()


def source_batch(batch: int, source_length: int, target_length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Source ids with some right padding, their mask, and decoder input ids."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB_SIZE, (batch, source_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, source_length // 2 :] = 0
    decoder_input_ids = torch.randint(3, VOCAB_SIZE, (batch, target_length), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}


def inference_case(family: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A model of `family` and the inputs of one inference forward."""
    if family == "transformer":
        return translator(), source_batch(3, 9, 5)
    return classifier(family), {"pixel_values": pixel_batch()}


def training_case(family: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A model of `family` in training mode and the inputs of one loss-producing forward (the masked image
    modeling heads for ViT and Swin; the classification heads are compiled in test_vit.py / test_swin.py)."""
    if family == "transformer":
        input_ids, attention_mask = padded_source_batch()
        return translator().train(), {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": target_labels(),
        }
    if family == "vit":
        model = VtxViTForMaskedImageModeling(tiny_vit_config(**NO_DROPOUT["vit"]))
    else:
        model = VtxSwinForMaskedImageModeling(tiny_swin_config(**NO_DROPOUT["swin"]))
    num_patches = (32 // model.config.patch_size) ** 2  # 32 px images
    return model.train(), {"pixel_values": pixel_batch(), "bool_masked_pos": masked_positions(3, num_patches)}


def compile_without_graph_breaks(model: torch.nn.Module) -> Callable:
    """`torch.compile` that raises on any graph break."""
    return torch.compile(model, fullgraph=True, backend="aot_eager")


@pytest.mark.parametrize("family", ["vit", "swin", "transformer"])
def test_inference_compiles_as_one_graph(family):
    model, inputs = inference_case(family)
    with torch.no_grad():
        expected = model(**inputs).logits
        compiled = compile_without_graph_breaks(model)(**inputs).logits
    torch.testing.assert_close(compiled, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["vit", "swin", "transformer"])
def test_training_step_compiles_as_one_graph(family):
    model, inputs = training_case(family)
    expected_loss = model(**inputs).loss
    expected_loss.backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    loss = compile_without_graph_breaks(model)(**inputs).loss
    loss.backward()
    torch.testing.assert_close(loss, expected_loss, atol=1e-5, rtol=1e-5)
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_compiled_beam_search_with_static_cache_gives_the_eager_tokens():
    model = translator()
    input_ids, attention_mask = padded_source_batch()
    settings = dict(attention_mask=attention_mask, max_new_tokens=6, num_beams=3, num_return_sequences=2)
    eager = model.generate(input_ids, **settings)
    compile_config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    compiled = model.generate(input_ids, cache_implementation="static", compile_config=compile_config, **settings)
    assert torch.equal(compiled, eager)


@pytest.mark.parametrize("head", ["translator", "causal lm"])
def test_a_compile_config_compiles_the_decoding_step_on_cpu_without_private_flags(head):
    """transformers compiles the decoding step only on accelerators unless the private `_compile_all_devices` is
    set; ours takes a `compile_config` as the request it is, and leaves the caller's object unchanged."""
    if head == "translator":
        model, (input_ids, attention_mask) = translator(), padded_source_batch()
    else:
        model = VtxTransformerForCausalLM(tiny_transformer_config(**NO_DROPOUT["transformer"])).eval()
        input_ids = torch.randint(3, VOCAB_SIZE, (2, 5), generator=torch.Generator().manual_seed(0))
        attention_mask = torch.ones_like(input_ids)
    settings = dict(attention_mask=attention_mask, max_new_tokens=6, do_sample=False)
    eager = model.generate(input_ids, **settings)
    compile_config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    compiled = model.generate(input_ids, cache_implementation="static", compile_config=compile_config, **settings)
    assert torch.equal(compiled, eager)
    assert hasattr(model, "_compiled_call")  # the decoding steps ran through torch.compile
    assert compile_config._compile_all_devices is None


def test_compiling_on_cpu_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(fast_paths, "COMPILE_ON_CPU", False)
    model, (input_ids, attention_mask) = translator(), padded_source_batch()
    compile_config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=3,
        cache_implementation="static",
        compile_config=compile_config,
    )
    assert not hasattr(model, "_compiled_call")  # transformers' own rule: skipped on CPU


@pytest.mark.skipif(not fast_paths.few_row_linears_available(), reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("rows", [1, 3], ids=["batch 1", "batch 3"])
def test_a_compiled_greedy_step_runs_its_projections_on_onednn_or_as_reductions_and_gives_the_eager_tokens(
    rows, monkeypatch
):
    """Inductor would run a few-row projection through MKL's sgemm (`addmm`); inside generate() the compiled step
    calls `hf_visiontx::few_row_linear` (oneDNN) for every projection of the decoder and the output layer, or, at one
    row, computes each as a reduction in the graph's own generated code, calling no matmul at all. Its attention
    (one query) is the graph's own code too: no sdpa kernel is called after the prefill."""
    monkeypatch.setattr(fast_paths, "FEW_ROW_MIN_WEIGHT", 0)  # the tiny model's weights are below it
    monkeypatch.setattr(fast_paths, "MKL_FEW_ROWS", False)  # on an Intel CPU, oneDNN at every row count
    model, (input_ids, attention_mask) = translator(), padded_source_batch()
    input_ids, attention_mask = input_ids[:rows], attention_mask[:rows]  # batch x 1 rows per projection
    settings = dict(attention_mask=attention_mask, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    eager = model.generate(input_ids, **settings)
    compile_config = CompileConfig(fullgraph=True, mode="default")

    def compiled_generation() -> torch.Tensor:
        return model.generate(input_ids, cache_implementation="static", compile_config=compile_config, **settings)

    assert torch.equal(compiled_generation(), eager)
    operators = profiled_operators(compiled_generation)
    # The first of the 5 tokens comes from the uncompiled prefill, which also runs the encoder: the eager call for
    # that one token makes the same library calls.
    prefill_only = settings | dict(max_new_tokens=1, min_new_tokens=1)
    prefill = library_calls(profiled_operators(lambda: model.generate(input_ids, **prefill_only)))
    assert prefill["aten::_scaled_dot_product_flash_attention_for_cpu"] > 0  # the counted name is the kernel's
    if rows == 1:
        assert library_calls(operators) == prefill
    else:
        decoder_projections = sum(
            isinstance(module, torch.nn.Linear) and not name.endswith("encoder_attn.kv_proj")  # once, at prefill
            for name, module in model.model.decoder.named_modules()
        )
        compiled_steps = 4
        few_row_calls = compiled_steps * (decoder_projections + 1)
        onednn_calls = Counter(
            {"hf_visiontx::few_row_linear": few_row_calls, "mkldnn::_linear_pointwise": few_row_calls}
        )
        assert library_calls(operators) == prefill + onednn_calls  # each call of ours runs oneDNN's matmul


def test_a_graph_traced_outside_generate_keeps_the_plain_projections():
    """torch.export (and any compile outside generate()) sees nn.Linear's own forward: the exported graph holds no
    operator of ours."""
    model = translator()
    inputs = {**source_batch(1, 1, 1), "use_cache": False}  # one row per projection, as in a decoding step
    program = export(model, args=(), kwargs=inputs)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("hf_visiontx" in target for target in targets)
    assert_runs_like_eager(program, model, inputs)


def assert_runs_like_eager(program: torch.export.ExportedProgram, model: torch.nn.Module, inputs: dict) -> None:
    """The exported program's logits equal the eager model's on `inputs`."""
    with torch.no_grad():
        expected = model(**inputs).logits
        actual = program.module()(**inputs).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_export_vit_with_dynamic_batch():
    model = classifier("vit")
    program = export(
        model,
        (),
        {"pixel_values": pixel_batch(batch=2)},
        dynamic_shapes={"pixel_values": {0: Dim("batch", min=1, max=64)}},
    )
    for batch in (1, 5):
        assert_runs_like_eager(program, model, {"pixel_values": pixel_batch(batch=batch, seed=batch)})


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_export_with_dynamic_batch_height_and_width(family):
    """One program for any batch and image size: ViT interpolates its positions to the patch grid (sizes in whole
    patches), Swin pads to whole windows (sizes in multiples of patch x window x 2 ** (stages - 1), here 16)."""
    model = classifier(family)
    step = 4 if family == "vit" else 16
    rows, cols = Dim("rows", min=2, max=16), Dim("cols", min=2, max=16)
    example = {"pixel_values": pixel_batch(batch=2), "interpolate_pos_encoding": True}
    shapes = {
        "pixel_values": {0: Dim("batch", min=1, max=64), 2: step * rows, 3: step * cols},
        "interpolate_pos_encoding": None,
    }
    program = export(model, (), example, dynamic_shapes=shapes)
    for batch, height, width in ((1, 32, 32), (3, 3 * step, 5 * step)):
        pixels = pixel_batch(batch=batch, height=height, width=width, seed=height)
        assert_runs_like_eager(program, model, {"pixel_values": pixels, "interpolate_pos_encoding": True})


def test_export_transformer_with_dynamic_batch_and_lengths():
    model = translator()
    batch, source, target = Dim("batch", min=1, max=64), Dim("source", min=2, max=60), Dim("target", min=2, max=60)
    shapes = {
        "input_ids": {0: batch, 1: source},
        "attention_mask": {0: batch, 1: source},
        "decoder_input_ids": {0: batch, 1: target},
        "use_cache": None,
    }
    program = export(model, (), {**source_batch(3, 9, 5), "use_cache": False}, dynamic_shapes=shapes)
    for sizes in ((3, 9, 5), (5, 12, 7)):
        assert_runs_like_eager(program, model, {**source_batch(*sizes, seed=sizes[0]), "use_cache": False})


class ImageLogits(torch.nn.Module):
    """pixel_values -> logits, the plain tensor-in tensor-out signature an ONNX graph has."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values).logits


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_onnx_export_with_dynamic_batch(family, tmp_path):
    """torch's ONNX exporter (onnx and onnxscript, in the test extra); ONNX Runtime runs the graph.

    Swin is exported under eager attention: torch 2.13's ONNX decomposition of CPU sdpa with a float mask loses
    the layout of its output ("Cannot view a tensor with shape ... as a tensor with shape ...").
    """
    import onnx
    import onnxruntime

    model = classifier(family)
    if family == "swin":
        model.set_attn_implementation("eager")
    program = torch.onnx.export(
        ImageLogits(model), (pixel_batch(batch=2),), dynamo=True, dynamic_shapes=({0: Dim("batch", min=1, max=64)},)
    )
    path = tmp_path / f"{family}.onnx"
    program.save(str(path))
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        pixels = pixel_batch(batch=batch, seed=batch)
        (logits,) = session.run(None, {session.get_inputs()[0].name: pixels.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(logits), model(pixels).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["vit", "swin"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_bfloat16_image_models_train_and_infer(family, attention):
    model = classifier(family).to(torch.bfloat16).train()
    model.set_attn_implementation(attention)
    output = model(pixel_batch(), labels=torch.tensor([0, 1, 2]))  # float32 pixels are cast by the model
    output.loss.backward()
    assert output.logits.dtype == torch.bfloat16 and torch.isfinite(output.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        logits = model.eval()(pixel_batch(height=48, width=40), interpolate_pos_encoding=True).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_bfloat16_transformer_trains_and_generates(attention):
    model = translator().to(torch.bfloat16).train()
    model.set_attn_implementation(attention)
    input_ids, attention_mask = padded_source_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=target_labels())
    output.loss.backward()
    assert output.logits.dtype == torch.bfloat16 and torch.isfinite(output.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    for settings in ({}, {"num_beams": 2}, {"cache_implementation": "static"}):
        tokens = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=5, **settings)
        assert tokens.shape[0] == 3 and tokens.dtype == torch.long
