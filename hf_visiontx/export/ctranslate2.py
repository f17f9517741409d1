"""The Transformer (`VtxTransformerForConditionalGeneration`) as a CTranslate2 model that `ctranslate2.Translator`
runs.

CTranslate2's Transformer specification describes the paper's model, so the weights go into it as they are: the
fused query/key/value projection of self-attention and the fused key/value projection of cross-attention are the
spec's own fused layouts, the sinusoid table (either layout) or the learned position vectors are its position table,
and the embedding scale, post-LN or pre-LN (with the final LayerNorm of each stack), shared source/target embeddings
and the tied output projection (with its bias, if any) are options of the spec. The model is built through
`ctranslate2.specs` (`pip install hf_visiontx[ctranslate2]`), not through CTranslate2's converters.

The vocabulary is the model's tokenizer's (`tokenizer.json` in the model folder), one token string per id, so
`Translator.translate_batch` takes what `tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)` gives: the
source's `</s>` is part of it, as our tokenizer adds it. Decoding starts from `decoder_start_token_id` and stops at
`eos_token_id`, as `generate()` does.

Every export is checked before it is kept: on a fixed probe of random source sentences the fp32 model's greedy
tokens must equal `generate()`'s (plain greedy search: the generation config's penalties and forced tokens are not
part of the export), and a quantized export's share of equal tokens is measured. The folder is written all or
nothing.
"""

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from ..hub.files import new_folder
from ..hub.locations import check_model_location
from ..registration import head_class

TRANSLATOR = "VtxTransformerForConditionalGeneration"
# CTranslate2 stores weights as one of these; "none" keeps fp32. On a CPU, int8 runs as int8 with fp32 activations.
QUANTIZATIONS = ("none", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")
# transformers' activation names (`activation_function`) -> CTranslate2's `common_spec.Activation` members
ACTIVATIONS = {
    "relu": "RELU",
    "gelu": "GELU",
    "gelu_new": "GELUTanh",
    "gelu_pytorch_tanh": "GELUTanh",
    "silu": "SWISH",
    "swish": "SWISH",
}
PROBE_LENGTHS = (4, 9, 17, 30)  # source tokens of the probe sentences, the final `</s>` included
PROBE_NEW_TOKENS = 24  # the longest translation of the check


@dataclasses.dataclass(frozen=True)
class CTranslate2Export:
    """What `export_ctranslate2` wrote and how its greedy tokens compare with `generate()`'s.

    `sentences` probe sentences were translated; `generate()` gave `tokens` tokens for them, which the fp32 model
    reproduced exactly. `quantized_agreement` is the share of those tokens a quantized export reproduces (None
    when `quantization` is "none").
    """

    path: Path
    quantization: str
    sentences: int
    tokens: int
    quantized_agreement: float | None


def export_ctranslate2(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike, quantization: str = "none"
) -> CTranslate2Export:
    """Export the `VtxTransformerForConditionalGeneration` saved in `model_dir` (with its tokenizer) to a CTranslate2
    model in `out_dir`, checked against `generate()` before it is kept.

    Args:
        model_dir: a saved translation model with its tokenizer.
        out_dir: the new folder (must not exist or be empty).
        quantization: "none" (fp32) or a CTranslate2 weight type, one of `QUANTIZATIONS`.

    Raises:
        ImportError: ctranslate2 is missing (it is the `ctranslate2` extra).
        ValueError: the model is not a Transformer translator, has an option CTranslate2 cannot represent (naming
            it), has no tokenizer, `out_dir` holds files, or the fp32 export's greedy tokens differ from
            `generate()`'s.
    """
    if importlib.util.find_spec("ctranslate2") is None:
        raise ImportError("CTranslate2 export needs ctranslate2: `pip install hf_visiontx[ctranslate2]`.")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"`out_dir` {out_dir} already exists and is not an empty directory; choose a new one.")
    model = _load_translator(model_dir)
    vocabulary = model_vocabulary(model_dir, model.config)
    sources = probe_sources(model.config)
    expected = greedy_tokens(model, sources, PROBE_NEW_TOKENS)
    with new_folder(out_dir) as staging:
        _save(model, vocabulary, staging, "float32")
        _check_identical(expected, translate_ids(staging, vocabulary, sources, PROBE_NEW_TOKENS))
        agreement = None
        if quantization != "none":
            _save(model, vocabulary, staging, quantization)
            agreement = token_agreement(expected, translate_ids(staging, vocabulary, sources, PROBE_NEW_TOKENS))
    return CTranslate2Export(out_dir, quantization, len(sources), sum(map(len, expected)), agreement)


def _load_translator(model_dir: str | os.PathLike) -> torch.nn.Module:
    """The saved translation model in fp32 and eval mode, once its config is known to fit CTranslate2's spec."""
    check_model_location("`model`", model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    what = f"`model` {model_dir}"
    if config.model_type != "vtx_transformer":
        raise ValueError(
            f"{what} is a {config.model_type!r} model; `export --to ctranslate2` takes vtx_transformer translation "
            f"models ({TRANSLATOR})."
        )
    if not config.is_encoder_decoder or TRANSLATOR not in (config.architectures or [TRANSLATOR]):
        saved = ", ".join(config.architectures or ["a decoder alone"])
        raise ValueError(f"{what} is {saved}; `export --to ctranslate2` takes translation models ({TRANSLATOR}).")
    check_representable(config)
    return head_class(TRANSLATOR).from_pretrained(model_dir, dtype=torch.float32).eval()


def check_representable(config: Any) -> None:
    """Refuse a Transformer config that CTranslate2's specification cannot describe, naming the field.

    Raises:
        ValueError: `activation_function` has no CTranslate2 counterpart, or `eos_token_id` lists several tokens
            (CTranslate2 stops at one end token).
    """
    if config.activation_function not in ACTIVATIONS:
        raise ValueError(
            f"`activation_function` {config.activation_function!r} has no CTranslate2 counterpart; CTranslate2 "
            f"runs {', '.join(ACTIVATIONS)}."
        )
    if isinstance(config.eos_token_id, list) and len(config.eos_token_id) != 1:
        raise ValueError(f"`eos_token_id` lists {config.eos_token_id}; a CTranslate2 model stops at one end token.")
    for name in ("decoder_start_token_id", "eos_token_id"):
        if getattr(config, name) is None:
            raise ValueError(f"`{name}` is not set; a CTranslate2 translator needs it.")


def _special_id(config: Any, name: str) -> int:
    """A special token id of the config (the single end token of a one-item `eos_token_id` list)."""
    value = getattr(config, name)
    return value[0] if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The token string of every id of a model (`tokens[id]`), and its unknown token."""

    tokens: list[str]
    unk_token: str = "<unk>"

    def strings(self, ids: Sequence[int]) -> list[str]:
        """Token ids as the token strings CTranslate2 reads."""
        return [self.tokens[index] for index in ids]


def model_vocabulary(model_dir: str | os.PathLike, config: Any) -> Vocabulary:
    """The vocabulary of the model saved in `model_dir`, from the tokenizer saved with it.

    Raises:
        ValueError: the folder has no tokenizer, or the tokenizer's ids do not fit the model's `vocab_size` or give
            two ids one token string.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`model` {model_dir} has no tokenizer to take the vocabulary from ({error}); save the tokenizer the "
            "model was trained with into it (`tokenizer.save_pretrained`)."
        ) from error
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer of `model` {model_dir} has {len(tokenizer)} tokens, more than the model's `vocab_size` "
            f"({config.vocab_size})."
        )
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"The tokenizer of `model` {model_dir} gives several ids the same token string.")
    # ids the tokenizer never produces (an embedding padded past the tokenizer) get unique placeholder names
    tokens += [f"<unused_{index}>" for index in range(len(tokens), config.vocab_size)]
    return Vocabulary(tokens, tokenizer.unk_token or "<unk>")


def _save(model: torch.nn.Module, vocabulary: Vocabulary, directory: Path, quantization: str) -> None:
    """Write the CTranslate2 model of `model` into `directory` (replacing what an earlier call wrote there)."""
    spec = transformer_spec(model, vocabulary)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(directory))


def transformer_spec(model: torch.nn.Module, vocabulary: Vocabulary) -> Any:
    """`ctranslate2.specs.TransformerSpec` holding the weights of `model` (a `VtxTransformerForConditionalGeneration`)
    and its vocabulary, ready for `validate()`, `optimize()` and `save()`."""
    from ctranslate2.specs import TransformerDecoderSpec, TransformerEncoderSpec, TransformerSpec, common_spec

    config = model.config
    pre_norm = config.layer_norm_placement == "pre"
    activation = getattr(common_spec.Activation, ACTIVATIONS[config.activation_function])
    encoder, decoder = model.model.encoder, model.model.decoder
    encoder_spec = TransformerEncoderSpec(
        config.encoder_layers, config.encoder_attention_heads, pre_norm=pre_norm, activation=activation
    )
    decoder_spec = TransformerDecoderSpec(
        config.decoder_layers, config.decoder_attention_heads, pre_norm=pre_norm, activation=activation
    )
    _set_stack(encoder_spec, encoder, encoder_spec.embeddings[0])
    _set_stack(decoder_spec, decoder, decoder_spec.embeddings)
    for layer_spec, layer in zip(encoder_spec.layer, encoder.layers, strict=True):
        _set_self_attention(layer_spec.self_attention, layer)
        _set_feed_forward(layer_spec.ffn, layer)
    for layer_spec, layer in zip(decoder_spec.layer, decoder.layers, strict=True):
        _set_self_attention(layer_spec.self_attention, layer)
        _set_layer_norm(layer_spec.attention.layer_norm, layer.encoder_attn_layer_norm)
        attention = layer.encoder_attn
        for linear_spec, linear in zip(
            layer_spec.attention.linear, (attention.q_proj, attention.kv_proj, attention.o_proj), strict=True
        ):
            _set_linear(linear_spec, linear)
        _set_feed_forward(layer_spec.ffn, layer)
    _set_linear(decoder_spec.projection, model.lm_head)

    spec = TransformerSpec(encoder_spec, decoder_spec)
    spec.config.layer_norm_epsilon = config.layer_norm_eps
    start, end = _special_id(config, "decoder_start_token_id"), _special_id(config, "eos_token_id")
    tokens = vocabulary.tokens
    spec.config.decoder_start_token = tokens[start]
    spec.config.eos_token = tokens[end]
    spec.config.bos_token = tokens[config.bos_token_id if config.bos_token_id is not None else start]
    spec.config.unk_token = vocabulary.unk_token
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    return spec


def _weights(tensor: torch.Tensor) -> torch.Tensor:
    """A parameter or buffer as the spec stores it: detached, contiguous fp32."""
    return tensor.detach().to(torch.float32).contiguous()


def _set_stack(spec: Any, stack: torch.nn.Module, embeddings_spec: Any) -> None:
    """Token embedding and its scale, position table, final LayerNorm (pre-LN) of an encoder or decoder stack."""
    embeddings_spec.weight = _weights(stack.embed_tokens.weight)
    spec.scale_embeddings = float(stack.embed_tokens.scale)
    positions = stack.embed_positions
    spec.position_encodings.encodings = _weights(positions.weight if hasattr(positions, "weight") else positions.table)
    if stack.layer_norm is not None:
        _set_layer_norm(spec.layer_norm, stack.layer_norm)


def _set_self_attention(spec: Any, layer: torch.nn.Module) -> None:
    """The fused query/key/value projection, output projection and LayerNorm of a layer's self-attention."""
    _set_linear(spec.linear[0], layer.self_attn.qkv_proj)
    _set_linear(spec.linear[1], layer.self_attn.o_proj)
    _set_layer_norm(spec.layer_norm, layer.self_attn_layer_norm)


def _set_feed_forward(spec: Any, layer: torch.nn.Module) -> None:
    """The two projections and the LayerNorm of a layer's feed-forward network."""
    _set_linear(spec.linear_0, layer.mlp.fc1)
    _set_linear(spec.linear_1, layer.mlp.fc2)
    _set_layer_norm(spec.layer_norm, layer.final_layer_norm)


def _set_linear(spec: Any, linear: torch.nn.Linear) -> None:
    """Weight [out, in] and bias (if any) of a projection."""
    spec.weight = _weights(linear.weight)
    if linear.bias is not None:
        spec.bias = _weights(linear.bias)


def _set_layer_norm(spec: Any, norm: torch.nn.LayerNorm) -> None:
    """Scale and shift of a LayerNorm."""
    spec.gamma = _weights(norm.weight)
    spec.beta = _weights(norm.bias)


def probe_sources(config: Any, seed: int = 0) -> list[list[int]]:
    """Source sentences of the check: random ordinary tokens (no special id) ending in `eos_token_id`, of the
    lengths `PROBE_LENGTHS` (shortened to what `max_position_embeddings` allows)."""
    special = {getattr(config, name) for name in ("pad_token_id", "bos_token_id", "decoder_start_token_id")}
    end = _special_id(config, "eos_token_id")
    ordinary = torch.tensor([index for index in range(config.vocab_size) if index not in special | {end}])
    generator = torch.Generator().manual_seed(seed)
    sources = []
    for length in sorted({min(length, config.max_position_embeddings) for length in PROBE_LENGTHS}):
        picks = torch.randint(len(ordinary), (length - 1,), generator=generator)
        sources.append([*ordinary[picks].tolist(), end])
    return sources


def greedy_tokens(model: torch.nn.Module, sources: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
    """`model.generate()`'s plain greedy translations of `sources` (one padded batch), each without its start token
    and cut before its end token."""
    config = model.config
    pad = config.pad_token_id if config.pad_token_id is not None else _special_id(config, "eos_token_id")
    longest = max(map(len, sources))
    input_ids = torch.tensor([[*source, *[pad] * (longest - len(source))] for source in sources])  # [B, S]
    attention_mask = torch.tensor([[1] * len(source) + [0] * (longest - len(source)) for source in sources])
    greedy = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=pad,
        max_new_tokens=min(max_new_tokens, config.max_position_embeddings - 1),
        num_beams=1,
        do_sample=False,
    )
    with torch.no_grad():
        generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=greedy)
    end = _special_id(config, "eos_token_id")
    return [_until(row[1:].tolist(), end) for row in generated]


def _until(tokens: list[int], end: int) -> list[int]:
    """`tokens` up to (without) the first `end`."""
    return tokens[: tokens.index(end)] if end in tokens else tokens


def translate_ids(
    model: Any, vocabulary: Vocabulary, sources: Sequence[Sequence[int]], max_new_tokens: int, **options: Any
) -> list[list[int]]:
    """Translate token ids with a CTranslate2 model: `sources` as token strings of `vocabulary`, greedy by default,
    the best hypothesis of each back as ids (without start and end tokens).

    Args:
        model: a `ctranslate2.Translator`, or the folder of one (loaded on the CPU in the type it was saved in).
        vocabulary: the token string of each id (as exported).
        sources: token ids of each source sentence, the end token included.
        max_new_tokens: the longest translation (`max_decoding_length`).
        **options: more `translate_batch` options (`beam_size`, `min_decoding_length`, ...).
    """
    import ctranslate2

    translator = model if isinstance(model, ctranslate2.Translator) else ctranslate2.Translator(str(model))
    ids = {token: index for index, token in enumerate(vocabulary.tokens)}
    options = {"beam_size": 1, "min_decoding_length": 0, "max_decoding_length": max_new_tokens} | options
    results = translator.translate_batch([vocabulary.strings(source) for source in sources], **options)
    return [[ids[token] for token in result.hypotheses[0]] for result in results]


def _check_identical(expected: list[list[int]], exported: list[list[int]]) -> None:
    """Refuse an fp32 export whose greedy tokens differ from `generate()`'s, saying where they part."""
    for index, (ours, theirs) in enumerate(zip(expected, exported, strict=True)):
        if ours != theirs:
            step = next(
                (step for step in range(min(len(ours), len(theirs))) if ours[step] != theirs[step]),
                min(len(ours), len(theirs)),
            )
            raise ValueError(
                f"CTranslate2's greedy translation of probe sentence {index} differs from generate()'s at token {step} "
                f"({theirs[step : step + 3]} instead of {ours[step : step + 3]}); nothing was written."
            )


def token_agreement(expected: list[list[int]], exported: list[list[int]]) -> float:
    """The share of `expected` tokens that `exported` reproduces at the same place (a longer or shorter translation
    counts its extra or missing tokens as different)."""
    pairs = list(zip(expected, exported, strict=True))
    equal = sum(ours[step] == theirs[step] for ours, theirs in pairs for step in range(min(len(ours), len(theirs))))
    total = sum(max(len(ours), len(theirs)) for ours, theirs in pairs)
    return equal / total if total else 1.0


__all__ = [
    "QUANTIZATIONS",
    "CTranslate2Export",
    "Vocabulary",
    "export_ctranslate2",
    "greedy_tokens",
    "model_vocabulary",
    "probe_sources",
    "token_agreement",
    "transformer_spec",
    "translate_ids",
]
