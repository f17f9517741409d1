"""int8 through torchao for every family and head: weight-only (`Int8WeightOnlyConfig`) and dynamic
(`Int8DynamicActivationInt8WeightConfig`), applied with torchao's `quantize_` to a loaded model and with transformers'
`TorchAoConfig` at `from_pretrained`, then saved (safetensors) and loaded again. transformers' own ViT, Swin and Marian
behave the same way (checked by hand against them): `TorchAoConfig` leaves an output layer tied to the embeddings in
full precision (the tied weights are never quantized, `include_input_output_embeddings` or not), while `quantize_`
replaces every `nn.Linear` weight, the tied output layer's too; a model quantized with `quantize_` cannot be saved
with `save_pretrained` (for theirs neither): load it with `TorchAoConfig` to get one that can."""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from transformers import CompileConfig, PreTrainedModel, TorchAoConfig, VisionEncoderDecoderModel

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
)
from hf_visiontx.modeling import fast_paths
from hf_visiontx.modeling.fast_paths import FEW_ROWS_MAX, few_row_linears, linear
from support.operators import library_calls, profiled_operators
from support.spies import record_calls
from support.swin_tester import tiny_swin_config
from support.transformer_tester import BOS, EOS, PAD, VOCAB_SIZE, padded_source_batch, tiny_transformer_config
from support.vit_tester import masked_positions, pixel_batch, tiny_vit_config

torchao_quantization = pytest.importorskip("torchao.quantization")
Int8Tensor = pytest.importorskip("torchao.quantization.quantize_.workflows.int8.int8_tensor").Int8Tensor

CONFIGS = {
    "weight-only": torchao_quantization.Int8WeightOnlyConfig,
    "dynamic": torchao_quantization.Int8DynamicActivationInt8WeightConfig,
}
# largest output difference from fp32 allowed, as a share of the largest fp32 output: the tiny random models see
# 0.1-3% (rounding each weight to 1/254 of its row's largest, and each activation row too when dynamic)
TOLERANCE = 0.08
MIN_LEAD = 0.05  # a lead of the greedy token over the runner-up that int8's logit errors here do not overturn
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
TOKEN_IDS = dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, decoder_start_token_id=BOS)


def text_decoder(**overrides) -> VtxTransformerConfig:
    """A tiny Transformer decoder config (the causal LM's, and the captioners' with cross-attention)."""
    return tiny_transformer_config(is_decoder=True, dropout=0.0, attention_dropout=0.0, **TOKEN_IDS, **overrides)


def captioner(encoder: PreTrainedModel) -> VisionEncoderDecoderModel:
    """`encoder` with our tiny Transformer decoder attending to it, as the demo's captioner is built."""
    decoder = VtxTransformerForCausalLM(text_decoder(add_cross_attention=True))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id = BOS, PAD
    model.generation_config.decoder_start_token_id, model.generation_config.pad_token_id = BOS, PAD
    model.generation_config.eos_token_id = EOS
    return model


def source_batch() -> dict[str, torch.Tensor]:
    input_ids, attention_mask = padded_source_batch()
    return dict(input_ids=input_ids, attention_mask=attention_mask)


def prompt_ids() -> dict[str, torch.Tensor]:
    return dict(input_ids=torch.randint(3, VOCAB_SIZE, (2, 5), generator=torch.Generator().manual_seed(0)))


def images() -> dict[str, torch.Tensor]:
    return dict(pixel_values=pixel_batch())


def with_targets(inputs: Callable[[], dict]) -> Callable[[], dict]:
    """`inputs` and the first target tokens of each of their 3 examples, for a forward pass of an encoder-decoder."""
    return lambda: inputs() | dict(decoder_input_ids=torch.tensor([[BOS, 5, 6, 7]] * 3))


@dataclass
class Case:
    """One family's head: how to build it, the inputs of a forward pass and the output compared, and for a model
    that generates, the inputs of `generate()` and its linear layers tied to the token embeddings."""

    build: Callable[[], PreTrainedModel]
    inputs: Callable[[], dict]
    output: Callable[[object], torch.Tensor]
    prompt: Callable[[], dict] | None = None
    tied: set[str] = field(default_factory=set)
    seed: int = 0  # of the random weights: for a model that generates, one whose greedy choices are clear


VIT, SWIN = (
    (lambda: tiny_vit_config(**NO_DROPOUT)),
    (lambda **o: tiny_swin_config(**NO_DROPOUT, drop_path_rate=0.0, **o)),
)
TRANSFORMER = lambda: tiny_transformer_config(dropout=0.0, attention_dropout=0.0, **TOKEN_IDS)  # noqa: E731
CASES = {
    "ViT": Case(lambda: VtxViTModel(VIT()), images, lambda o: o.last_hidden_state),
    "ViT classification": Case(lambda: VtxViTForImageClassification(VIT()), images, lambda o: o.logits),
    "ViT masked image modeling": Case(
        lambda: VtxViTForMaskedImageModeling(VIT()),
        lambda: images() | dict(bool_masked_pos=masked_positions(3, 64)),
        lambda o: o.reconstruction,
    ),
    "Swin": Case(lambda: VtxSwinModel(SWIN()), images, lambda o: o.last_hidden_state),
    "Swin classification": Case(lambda: VtxSwinForImageClassification(SWIN()), images, lambda o: o.logits),
    "Swin masked image modeling": Case(
        lambda: VtxSwinForMaskedImageModeling(SWIN()),
        lambda: images() | dict(bool_masked_pos=masked_positions(3, 256)),
        lambda o: o.reconstruction,
    ),
    "Swin backbone": Case(
        lambda: VtxSwinBackbone(SWIN(out_features=["stage1", "stage2"])),
        images,
        lambda o: torch.cat([feature_map.flatten(1) for feature_map in o.feature_maps], 1),
    ),
    "Transformer": Case(
        lambda: VtxTransformerModel(TRANSFORMER()), with_targets(source_batch), lambda o: o.last_hidden_state
    ),
    "translator": Case(
        lambda: VtxTransformerForConditionalGeneration(TRANSFORMER()),
        with_targets(source_batch),
        lambda o: o.logits,
        source_batch,
        {"lm_head"},
    ),
    "causal LM": Case(
        lambda: VtxTransformerForCausalLM(text_decoder()), prompt_ids, lambda o: o.logits, prompt_ids, {"lm_head"}
    ),
    "ViT captioner": Case(
        lambda: captioner(VtxViTModel(VIT())), with_targets(images), lambda o: o.logits, images, {"decoder.lm_head"}, 3
    ),
    "Swin captioner": Case(
        lambda: captioner(VtxSwinModel(SWIN())),
        with_targets(images),
        lambda o: o.logits,
        images,
        {"decoder.lm_head"},
        1,
    ),
}


def fp32_model(case: Case) -> PreTrainedModel:
    torch.manual_seed(case.seed)
    return case.build().eval()


def forward(model: PreTrainedModel, case: Case) -> torch.Tensor:
    """The compared output of one forward pass."""
    with torch.no_grad():
        return case.output(model(**case.inputs()))


def generated(model: PreTrainedModel, case: Case) -> torch.Tensor:
    """Six greedy tokens after the case's prompt."""
    with torch.no_grad():
        return model.generate(**case.prompt(), max_new_tokens=6, do_sample=False)


def smallest_lead(model: PreTrainedModel, case: Case) -> float:
    """By how much the greedy token's score leads the runner-up's, at the closest step of `generated`: int8 can
    only be expected to pick the same tokens where the leads are larger than its logit errors."""
    with torch.no_grad():
        steps = model.generate(
            **case.prompt(), max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True
        ).scores
    top_two = [scores.topk(2).values for scores in steps]  # [batch, 2] per step
    return min((top[:, 0] - top[:, 1]).min().item() for top in top_two)


def unquantized_linears(model: nn.Module) -> set[str]:
    """The names of the `nn.Linear` layers whose weight is not a torchao int8 tensor."""
    return {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not isinstance(module.weight, Int8Tensor)
    }


def assert_close_to(quantized: torch.Tensor, reference: torch.Tensor) -> None:
    difference = (quantized - reference).abs().max().item()
    assert 0 < difference <= TOLERANCE * reference.abs().max().item()  # quantized, and close


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", CASES)
def test_quantize_replaces_every_linear_weight_and_keeps_the_outputs(name, config):
    case = CASES[name]
    model = fp32_model(case)
    expected = forward(model, case)
    if case.prompt is not None:
        assert smallest_lead(model, case) > MIN_LEAD  # the case's seed gives clear greedy choices
        tokens = generated(model, case)
    torchao_quantization.quantize_(model, CONFIGS[config]())
    assert not unquantized_linears(model)  # the tied output layer's weight too: quantize_ unties it
    assert_close_to(forward(model, case), expected)
    if case.prompt is not None:
        assert torch.equal(generated(model, case), tokens)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", CASES)
def test_torchao_config_quantizes_all_but_a_tied_output_layer_and_saves(name, config, tmp_path):
    case = CASES[name]
    model = fp32_model(case)
    model.save_pretrained(tmp_path / "fp32")
    loaded = type(model).from_pretrained(tmp_path / "fp32", quantization_config=TorchAoConfig(CONFIGS[config]()))
    assert unquantized_linears(loaded) == case.tied  # as for transformers' own models
    outputs = forward(loaded.eval(), case)
    assert_close_to(outputs, forward(model, case))
    tokens = generated(loaded, case) if case.prompt is not None else None
    if case.prompt is not None:
        assert torch.equal(tokens, generated(model, case))
    loaded.save_pretrained(tmp_path / "int8")
    assert (tmp_path / "int8" / "model.safetensors").is_file()
    reloaded = type(model).from_pretrained(tmp_path / "int8").eval()  # the quantization config travels with it
    assert unquantized_linears(reloaded) == case.tied
    assert torch.equal(forward(reloaded, case), outputs)
    if case.prompt is not None:
        assert torch.equal(generated(reloaded, case), tokens)


# --- few rows through torchao's dynamic int8 weights (`fast_paths`) ----------------------------------------------


def fbgemm_calls(monkeypatch) -> list[torch.Tensor]:
    """Record the inputs the few-row path hands to fbgemm's int8 linear."""
    return record_calls(monkeypatch, fast_paths, "_int8_linear", lambda inputs, packed, bias: inputs)


def int8_layer(config, in_features: int = 64, out_features: int = 96, bias: bool = True) -> nn.Linear:
    """A seeded `nn.Linear` quantized by torchao's `quantize_` under `config`."""
    torch.manual_seed(0)
    layer = nn.Linear(in_features, out_features, bias=bias)
    torchao_quantization.quantize_(layer, config)
    return layer


def dynamic_int8_layer(in_features: int = 64, out_features: int = 96, **config) -> nn.Linear:
    return int8_layer(torchao_quantization.Int8DynamicActivationInt8WeightConfig(**config), in_features, out_features)


def weight_only_int8_layer(in_features: int = 64, out_features: int = 96, bias: bool = True) -> nn.Linear:
    return int8_layer(torchao_quantization.Int8WeightOnlyConfig(), in_features, out_features, bias)


needs_fbgemm = pytest.mark.skipif(not fast_paths._int8_kernel_available(), reason="no fbgemm in this torch")


def test_the_apis_the_int8_path_leans_on_still_exist():
    """A torch or torchao upgrade that drops or renames these must fail here, not slow int8 decoding down silently."""
    layer = dynamic_int8_layer()
    weight = layer.weight
    assert fast_paths._torchao_dynamic_int8(weight)  # torchao's class, its attributes and the scheme's names
    assert weight.qdata.dtype == torch.int8 and weight.scale.shape == (96, 1)
    assert fast_paths._int8_kernel_available() == hasattr(
        torch.ops.quantized, "linear_with_input_q_dq_qweight_dq_output_fp32"
    )


@needs_fbgemm
def test_fbgemm_reads_its_input_at_scale_1_as_torchao_rounds_and_clamps():
    """The int8 path hands fbgemm x / scale unrounded: fbgemm must round halves to even and saturate to [-128, 127],
    as torchao's `round` and `clamp` do."""
    values = torch.tensor([[0.5, 1.5, 2.5, -0.5, -2.5, 127.5, -127.5, -128.5, 126.5, 3.49, 300.0, -300.0]])
    identity = fast_paths._pack_int8_for_fbgemm(torch.eye(12, dtype=torch.int8), torch.ones(12, 1), None)
    read = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(values, 1.0, 128, identity)
    assert torch.equal(read, torch.round(values).clamp(-128, 127))


def decoding_rows(rows: int) -> torch.Tensor:
    """[rows, 1, 64]: a decoding step's inputs, with a row of zeros (the smallest scale), a row of large values, and
    rows whose largest value is negative (its int8 value, -127.5 before rounding, is where roundings differ)."""
    inputs = torch.randn(rows, 1, 64, generator=torch.Generator().manual_seed(rows))
    inputs[0, 0, 3] = -10.0
    if rows > 1:
        inputs[1] = 0.0
        inputs[-1] *= 1e4
    return inputs


@needs_fbgemm
@pytest.mark.parametrize("rows", [1, 5, FEW_ROWS_MAX])
def test_few_rows_through_fbgemm_equal_torchao_dynamic_int8(rows, monkeypatch):
    layer, calls = dynamic_int8_layer(), fbgemm_calls(monkeypatch)
    inputs = decoding_rows(rows)
    with torch.no_grad():
        expected = layer(inputs)  # torchao's own path
        with few_row_linears(layer):
            output = linear(layer, inputs)
    assert len(calls) == 1 and output.shape == (rows, 1, 96)
    for row in range(rows):  # each row to float rounding of its own size
        torch.testing.assert_close(output[row], expected[row], rtol=1e-5, atol=1e-5 * expected[row].abs().max())


@needs_fbgemm
@pytest.mark.parametrize(
    "case", ["too many rows", "autograd", "asymmetric activations", "static activation scale", "hooked"]
)
def test_other_int8_calls_keep_torchaos_path(case, monkeypatch):
    """Many rows, gradients, and every dynamic int8 scheme the fbgemm call does not reproduce run torchao's path
    (weight-only int8 has its own path: see below)."""
    if case == "asymmetric activations":
        layer = dynamic_int8_layer(act_mapping_type=torchao_quantization.MappingType.ASYMMETRIC)
    else:
        layer = dynamic_int8_layer()
    if case == "static activation scale":
        layer.weight.act_quant_scale = torch.full((1, 1), 0.05)  # one scale for [1, in]
    if case == "hooked":
        layer.register_forward_hook(lambda *_: None)
    inputs = torch.randn(FEW_ROWS_MAX + 1 if case == "too many rows" else 1, 64)
    calls = fbgemm_calls(monkeypatch)
    with few_row_linears(layer), torch.enable_grad() if case == "autograd" else torch.no_grad():
        output = linear(layer, inputs)
        expected = layer(inputs)
    assert not calls
    assert torch.equal(output, expected)


@needs_fbgemm
def test_the_packed_copy_is_kept_with_the_layer_and_follows_new_weights(monkeypatch):
    layer, row = dynamic_int8_layer(), torch.randn(1, 64)
    packing = record_calls(monkeypatch, fast_paths, "_pack_int8_for_fbgemm", lambda qdata, scale, zero_point: qdata)
    with torch.no_grad():
        for _ in range(2):  # two blocks, as two generate() calls open
            with few_row_linears(layer):
                first = linear(layer, row)
        assert len(packing) == 1  # packing takes long: once for the layer, not once per block
        layer.bias.add_(1.0)  # the bias is added after fbgemm's matmul, never packed
        layer.weight = nn.Parameter(torch.randn(96, 64), requires_grad=False)  # new weights, quantized anew
        torchao_quantization.quantize_(layer, torchao_quantization.Int8DynamicActivationInt8WeightConfig())
        with few_row_linears(layer):
            output = linear(layer, row)
        assert len(packing) == 2
        torch.testing.assert_close(output, layer(row), rtol=1e-5, atol=1e-5 * output.abs().max())
        assert not torch.allclose(output, first + 1.0)


@needs_fbgemm
@pytest.mark.parametrize("beams", [1, 3])
def test_decoding_in_dynamic_int8_gives_torchaos_tokens_through_fbgemm(beams, monkeypatch):
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config(dropout=0.0, **TOKEN_IDS)).eval()
    torchao_quantization.quantize_(model, torchao_quantization.Int8DynamicActivationInt8WeightConfig())
    batch = source_batch()
    settings = dict(max_new_tokens=6, min_new_tokens=6, num_beams=beams, do_sample=False, output_scores=True)
    calls = fbgemm_calls(monkeypatch)
    fast = model.generate(**batch, **settings, return_dict_in_generate=True)
    decoder_linears = sum(isinstance(module, nn.Linear) for module in model.get_decoder().modules()) + 1  # + lm_head
    assert len(calls) >= 5 * decoder_linears  # every projection of each step after the first
    monkeypatch.setattr(fast_paths, "FEW_ROW_LINEARS", False)
    plain = model.generate(**batch, **settings, return_dict_in_generate=True)
    assert torch.equal(fast.sequences, plain.sequences)
    # Each layer equals torchao's up to float rounding, but a rounding-sized change in a layer's input can move an
    # activation across a rounding boundary of the next layer's int8 grid: scores agree to int8's precision
    fast_scores, plain_scores = torch.stack(fast.scores), torch.stack(plain.scores)
    finite = torch.isfinite(plain_scores)  # min_new_tokens forbids the end token: -inf on both paths
    assert torch.equal(torch.isfinite(fast_scores), finite)
    difference = (fast_scores[finite] - plain_scores[finite]).abs().max().item()
    assert difference <= 0.02 * plain_scores[finite].abs().max().item()


def test_one_int8_row_as_a_reduction_equals_torchaos_weight_only_layer():
    """A compiled decoding step computes a one-row projection through weight-only int8 as a sum over the int8
    weights (`_one_row_int8_linear`); it equals the quantized layer's own forward. The dynamic scheme, which also
    quantizes the activations, is not taken for it."""
    layer = weight_only_int8_layer()
    weight, row = layer.weight, torch.randn(1, 1, 64)
    assert fast_paths._torchao_weight_only_int8(weight) and not fast_paths._torchao_dynamic_int8(weight)
    assert not fast_paths._torchao_weight_only_int8(dynamic_int8_layer().weight)
    with torch.no_grad():
        expected = layer(row)
    ours = fast_paths._one_row_int8_linear(row, weight.qdata, weight.scale, layer.bias)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)  # [1, 1, 96]


@pytest.mark.slow  # an inductor compile
def test_compiled_decoding_in_weight_only_int8_gives_the_eager_tokens_without_a_matmul_call():
    """Greedy decoding of one sentence with torchao's weight-only int8 and a compiled step: the eager model's
    tokens, and after the prefill no matmul of any library is called: each projection is a reduction over the int8
    weights in the graph's own code."""
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config(dropout=0.0, **TOKEN_IDS)).eval()
    torchao_quantization.quantize_(model, torchao_quantization.Int8WeightOnlyConfig())
    batch = {name: tensor[:1] for name, tensor in source_batch().items()}
    settings = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False)
    eager = model.generate(**batch, **settings)
    compile_config = CompileConfig(fullgraph=True, mode="default")

    def compiled_generation() -> torch.Tensor:
        return model.generate(**batch, cache_implementation="static", compile_config=compile_config, **settings)

    assert torch.equal(compiled_generation(), eager)
    prefill_only = settings | dict(max_new_tokens=1, min_new_tokens=1)  # the uncompiled first token, encoder included
    prefill = library_calls(profiled_operators(lambda: model.generate(**batch, **prefill_only)))
    assert prefill["mkldnn::_linear_pointwise"] + prefill["aten::mm"] > 0  # the weight-only layers, run eagerly
    assert library_calls(profiled_operators(compiled_generation)) == prefill


# --- torchao's weight-only int8 in eager inference, a piece of the weights at a time (`fast_paths`) ------------


class LargestFloatTensor(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the most elements of any float32 tensor an operator returns while the mode is on."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for tensor in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32:
                self.elements = max(self.elements, tensor.numel())
        return result


def largest_float_tensor(run: Callable[[], object]) -> int:
    """The most elements of a float32 tensor that `run()` makes (inputs and outputs included)."""
    with LargestFloatTensor() as recorder:
        run()
    return recorder.elements


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 3, FEW_ROWS_MAX + 6])
@pytest.mark.parametrize("out_features", [640, 1024], ids=["small weights: F.linear", "2^18 weights: oneDNN"])
def test_weight_only_int8_a_piece_at_a_time_equals_torchaos_layer(out_features, rows, bias, monkeypatch):
    """In and out of a decoding block, `linear` multiplies by weight-only int8 weights [out_features, 256] 4096
    elements (16 rows) at a time, never making their float32 copy as torchao's own layer does, on oneDNN from
    `FEW_ROW_MIN_WEIGHT` weight elements on; the output is torchao's up to float rounding."""
    monkeypatch.setattr(fast_paths, "WEIGHT_ONLY_PIECE_ELEMENTS", 4096)
    layer, inputs = weight_only_int8_layer(256, out_features, bias), torch.randn(2, rows, 256)
    onednn = record_calls(monkeypatch, fast_paths, "_onednn_linear", lambda inputs, weight, bias: weight.shape)
    with torch.no_grad():
        expected = layer(inputs)
        assert largest_float_tensor(lambda: layer(inputs)) == out_features * 256  # torchao converts the weight whole
        outputs = linear(layer, inputs)
        largest = largest_float_tensor(lambda: linear(layer, inputs))
        with few_row_linears(layer):
            in_block = linear(layer, inputs)
    assert largest == max(4096, inputs.numel(), outputs.numel())  # a piece, the inputs or the outputs
    pieces = out_features // 16
    assert onednn == ([(16, 256)] * 3 * pieces if out_features * 256 >= fast_paths.FEW_ROW_MIN_WEIGHT else [])
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())
    assert torch.equal(in_block, outputs) and outputs.shape == (2, rows, out_features)


@pytest.mark.parametrize("case", ["switched off", "autograd", "hooked", "dynamic int8", "grouped scales"])
def test_other_calls_keep_torchaos_weight_only_path(case, monkeypatch):
    """With the switch off, with gradients, with a hook, and for int8 schemes other than weight-only with one scale
    per row, `linear` runs torchao's own layer."""
    monkeypatch.setattr(fast_paths, "WEIGHT_ONLY_PIECES", case != "switched off")
    if case == "dynamic int8":
        layer = dynamic_int8_layer(64, 640)
    elif case == "grouped scales":
        grouped = torchao_quantization.Int8WeightOnlyConfig(granularity=torchao_quantization.PerGroup(32))
        layer = int8_layer(grouped, 64, 640)
    else:
        layer = weight_only_int8_layer(64, 640)
    if case == "hooked":
        layer.register_forward_hook(lambda *_: None)
    calls = record_calls(monkeypatch, fast_paths, "_weight_only_int8_linear", lambda *args: args)
    inputs = torch.randn(FEW_ROWS_MAX + 1, 64)
    with torch.enable_grad() if case == "autograd" else torch.no_grad():
        assert torch.equal(linear(layer, inputs), layer(inputs))
    assert not calls


def test_decoding_in_weight_only_int8_gives_torchaos_tokens_a_piece_at_a_time(monkeypatch):
    """Greedy and beam decoding through weight-only int8: the tokens of torchao's own layers, and no float32 copy of
    the output layer's weights (vocabulary x d_model) is made."""
    torch.manual_seed(0)
    config = tiny_transformer_config(dropout=0.0, vocab_size=4000, **TOKEN_IDS)  # the output layer: 4000 x 32
    model = VtxTransformerForConditionalGeneration(config).eval()
    torchao_quantization.quantize_(model, torchao_quantization.Int8WeightOnlyConfig())
    batch, output_weights = source_batch(), model.get_output_embeddings().weight.numel()
    monkeypatch.setattr(fast_paths, "WEIGHT_ONLY_PIECE_ELEMENTS", output_weights // 4)
    for beams in (1, 3):
        settings = dict(max_new_tokens=6, min_new_tokens=6, num_beams=beams, do_sample=False)

        def generation(settings=settings) -> torch.Tensor:
            return model.generate(**batch, **settings)

        assert largest_float_tensor(generation) < output_weights
        pieces = generation()
        monkeypatch.setattr(fast_paths, "WEIGHT_ONLY_PIECES", False)
        assert largest_float_tensor(generation) == output_weights  # torchao's copy of the output layer's weights
        assert torch.equal(pieces, generation())
        monkeypatch.setattr(fast_paths, "WEIGHT_ONLY_PIECES", True)
