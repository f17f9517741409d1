"""Load published checkpoints into our classes: transformers models in, hf_visiontx models out.

    from transformers import MarianMTModel
    from hf_visiontx.convert import from_transformers

    ours = from_transformers(MarianMTModel.from_pretrained("Helsinki-NLP/opus-mt-de-en"))

`convert_checkpoint(src_dir, out_dir)` does the same from a saved directory (the `hf-visiontx convert` command).
Every converter maps weights one to one (fused projections are the separate matrices stacked), so outputs agree
with the source model to float rounding.
"""

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import MarianConfig, MarianModel, MarianMTModel, PreTrainedModel

from .checkpoint_files import verify_safetensors_files
from .modeling import VtxTransformerConfig, VtxTransformerForConditionalGeneration, VtxTransformerModel

# Files written by `save_pretrained` of a model; everything else in a checkpoint directory (tokenizer, vocabularies,
# README) is copied unchanged by `convert_checkpoint`.
MODEL_FILE_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "*.bin", "*.index.json", "*.h5",
                       "*.msgpack", "*.ckpt")


def marian_to_vtx_config(config: MarianConfig) -> VtxTransformerConfig:
    """Our configuration for a Marian one: concatenated sinusoids, Marian's activation, logits bias, no smoothing."""
    if config.decoder_vocab_size != config.vocab_size:
        raise ValueError(
            f"This Marian model has separate source ({config.vocab_size}) and target ({config.decoder_vocab_size}) "
            "vocabulary sizes; VtxTransformerConfig has one `vocab_size` for both, so it cannot be converted."
        )
    if config.share_encoder_decoder_embeddings and not config.tie_word_embeddings:
        raise ValueError(
            "This Marian model shares source/target embeddings but not the output projection; "
            "VtxTransformerConfig supports sharing only together with `tie_word_embeddings=True`."
        )
    return VtxTransformerConfig(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads,
        decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_dim=config.encoder_ffn_dim,
        decoder_ffn_dim=config.decoder_ffn_dim,
        activation_function=config.activation_function,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        max_position_embeddings=config.max_position_embeddings,
        position_encoding_layout="concatenated",
        layer_norm_placement="post",
        layer_norm_eps=1e-5,
        scale_embedding=config.scale_embedding,
        share_encoder_decoder_embeddings=config.share_encoder_decoder_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        lm_head_bias=True,
        label_smoothing=0.0,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        use_cache=config.use_cache,
    )


def _marian_attention(source: dict, src: str, dst: str, is_cross_attention: bool) -> dict[str, torch.Tensor]:
    """Separate q/k/v/out projections -> our fused `qkv_proj` (or `q_proj` + `kv_proj`) and `o_proj`."""
    weights = {}
    for kind in ("weight", "bias"):
        q, k, v = (source[f"{src}.{name}_proj.{kind}"] for name in ("q", "k", "v"))
        if is_cross_attention:
            weights[f"{dst}.q_proj.{kind}"] = q
            weights[f"{dst}.kv_proj.{kind}"] = torch.cat([k, v], dim=0)  # [2*d_out, ...]
        else:
            weights[f"{dst}.qkv_proj.{kind}"] = torch.cat([q, k, v], dim=0)  # [3*d_out, ...]
        weights[f"{dst}.o_proj.{kind}"] = source[f"{src}.out_proj.{kind}"]
    return weights


def _copy(source: dict, src: str, dst: str) -> dict[str, torch.Tensor]:
    return {f"{dst}.{kind}": source[f"{src}.{kind}"] for kind in ("weight", "bias")}


def _marian_stack_state_dict(source: dict, config: MarianConfig, src: str, dst: str) -> dict[str, torch.Tensor]:
    """Map the layers of MarianModel (keys under `src`) to VtxTransformerModel (keys under `dst`)."""
    state = {}
    for stack, num_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(num_layers):
            s, d = f"{src}{stack}.layers.{i}", f"{dst}{stack}.layers.{i}"
            state |= _marian_attention(source, f"{s}.self_attn", f"{d}.self_attn", is_cross_attention=False)
            state |= _copy(source, f"{s}.self_attn_layer_norm", f"{d}.self_attn_layer_norm")
            if stack == "decoder":
                state |= _marian_attention(source, f"{s}.encoder_attn", f"{d}.encoder_attn", is_cross_attention=True)
                state |= _copy(source, f"{s}.encoder_attn_layer_norm", f"{d}.encoder_attn_layer_norm")
            state |= _copy(source, f"{s}.fc1", f"{d}.mlp.fc1")
            state |= _copy(source, f"{s}.fc2", f"{d}.mlp.fc2")
            state |= _copy(source, f"{s}.final_layer_norm", f"{d}.final_layer_norm")
    state[f"{dst}encoder.embed_tokens.weight"] = source[f"{src}encoder.embed_tokens.weight"]
    state[f"{dst}decoder.embed_tokens.weight"] = source[f"{src}decoder.embed_tokens.weight"]
    return state


def _from_marian(model: MarianModel | MarianMTModel) -> VtxTransformerModel | VtxTransformerForConditionalGeneration:
    config = marian_to_vtx_config(model.config)
    source = model.state_dict()
    if isinstance(model, MarianMTModel):
        ours = VtxTransformerForConditionalGeneration(config)
        state = _marian_stack_state_dict(source, model.config, src="model.", dst="model.")
        state["lm_head.weight"] = source["lm_head.weight"]
        state["lm_head.bias"] = source["final_logits_bias"][0]  # [1, V] -> [V]
        ours.generation_config = copy.deepcopy(model.generation_config)
    else:
        ours = VtxTransformerModel(config)
        state = _marian_stack_state_dict(source, model.config, src="", dst="")
    ours.load_state_dict(state, strict=True)
    return ours.to(model.dtype).train(model.training)


CONVERTERS: dict[type, Callable[[PreTrainedModel], PreTrainedModel]] = {
    MarianMTModel: _from_marian,
    MarianModel: _from_marian,
}


def from_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Convert a transformers model into the equivalent hf_visiontx model, weights included.

    Supported: `MarianMTModel` (Helsinki-NLP/opus-mt-* checkpoints) -> `VtxTransformerForConditionalGeneration`,
    with its generation config; `MarianModel` -> `VtxTransformerModel`.
    """
    converter = CONVERTERS.get(type(model))
    if converter is None:
        supported = ", ".join(cls.__name__ for cls in CONVERTERS)
        raise TypeError(f"Cannot convert {type(model).__name__}; `from_transformers` supports {supported}.")
    return converter(model)


def _load_source_model(src_dir: Path) -> PreTrainedModel:
    config_file = src_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{src_dir} is not a saved model: it has no config.json.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error
    architectures = config.get("architectures") or []
    verify_safetensors_files(src_dir)
    for cls in CONVERTERS:
        if cls.__name__ in architectures:
            return cls.from_pretrained(src_dir)
    model_type = config.get("model_type")
    if model_type == "marian":
        return MarianMTModel.from_pretrained(src_dir)
    supported = ", ".join(cls.__name__ for cls in CONVERTERS)
    raise ValueError(
        f"{config_file} describes {architectures or model_type!r}; `hf-visiontx convert` supports {supported}."
    )


def convert_checkpoint(src_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert the transformers checkpoint saved in `src_dir` and save ours to `out_dir`.

    Tokenizer and other non-model files are copied along, so `AutoTokenizer.from_pretrained(out_dir)` loads the
    source's tokenizer. The output is written to a temporary directory first and moved into place at the end: a
    failure leaves no half-written `out_dir`.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"`src_dir` {src_dir} is not a directory.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"`out_dir` {out_dir} already exists and is not empty; choose a new directory.")
    converted = from_transformers(_load_source_model(src_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp") as staging:
        staging = Path(staging)
        converted.save_pretrained(staging)
        for path in src_dir.iterdir():
            if path.is_file() and not any(path.match(pattern) for pattern in MODEL_FILE_PATTERNS):
                shutil.copy2(path, staging / path.name)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
        staging.mkdir()  # leave the (now empty) temporary directory for TemporaryDirectory to clean up
    return out_dir
