"""Marian (Helsinki-NLP/opus-mt-*) -> the Transformer: `MarianMTModel` -> `VtxTransformerForConditionalGeneration`,
`MarianModel` -> `VtxTransformerModel`."""

import torch
from transformers import MarianConfig, MarianModel, MarianMTModel

from ..modeling import VtxTransformerConfig
from .mapping import copy_layer, same_fields, stack_projections


def convert_config(model: MarianModel | MarianMTModel) -> VtxTransformerConfig:
    """Our configuration for the model's: concatenated sinusoids, Marian's activation, logits bias, no smoothing.

    Which embeddings are shared is read from the weights, not only from the flags: transformers 5 ties nothing
    unless `tie_word_embeddings` is set, so a Marian model with `share_encoder_decoder_embeddings=True` and
    `tie_word_embeddings=False` holds separate source and target embeddings.
    """
    base = model.model if isinstance(model, MarianMTModel) else model
    target_embeddings = base.decoder.embed_tokens.weight
    config = marian_to_vtx_config(model.config)
    config.share_encoder_decoder_embeddings = torch.equal(base.encoder.embed_tokens.weight, target_embeddings)
    if isinstance(model, MarianMTModel):
        config.tie_word_embeddings = torch.equal(model.lm_head.weight, target_embeddings)
    return config


def convert_state_dict(model: MarianModel | MarianMTModel, config: VtxTransformerConfig) -> dict[str, torch.Tensor]:
    """The model's weights under our names."""
    source = model.state_dict()
    if not isinstance(model, MarianMTModel):
        return _stack_state_dict(source, model.config, src="", dst="")
    state = _stack_state_dict(source, model.config, src="model.", dst="model.")
    state["lm_head.weight"] = source["lm_head.weight"]
    state["lm_head.bias"] = source["final_logits_bias"][0]  # [1, V] -> [V]
    return state


def marian_to_vtx_config(config: MarianConfig) -> VtxTransformerConfig:
    """Our configuration for a Marian one: concatenated sinusoids, Marian's activation, logits bias, no smoothing."""
    if config.decoder_vocab_size != config.vocab_size:
        raise ValueError(
            f"This Marian model has separate source ({config.vocab_size}) and target ({config.decoder_vocab_size}) "
            "vocabulary sizes; VtxTransformerConfig has one `vocab_size` for both, so it cannot be converted."
        )
    sizes = "vocab_size d_model max_position_embeddings " + " ".join(
        f"{stack}_{field}" for stack in ("encoder", "decoder") for field in ("layers", "attention_heads", "ffn_dim")
    )
    shared = same_fields(
        config,
        f"{sizes} activation_function dropout attention_dropout activation_dropout scale_embedding use_cache "
        "share_encoder_decoder_embeddings tie_word_embeddings pad_token_id bos_token_id eos_token_id "
        "decoder_start_token_id",
    )
    # Marian's layout of the sinusoids, post-LN blocks with LayerNorm's default epsilon, a bias on the logits.
    return VtxTransformerConfig(
        **shared,
        position_encoding_layout="concatenated",
        layer_norm_placement="post",
        layer_norm_eps=1e-5,
        lm_head_bias=True,
        label_smoothing=0.0,
    )


def _attention(source: dict, src: str, dst: str, is_cross_attention: bool) -> dict[str, torch.Tensor]:
    """Separate q/k/v/out projections -> our fused `qkv_proj` (or `q_proj` + `kv_proj`) and `o_proj`."""
    if is_cross_attention:
        weights = stack_projections(source, [f"{src}.q_proj"], f"{dst}.q_proj")
        weights |= stack_projections(source, [f"{src}.k_proj", f"{src}.v_proj"], f"{dst}.kv_proj")
    else:
        weights = stack_projections(source, [f"{src}.{n}_proj" for n in "qkv"], f"{dst}.qkv_proj")
    return weights | copy_layer(source, f"{src}.out_proj", f"{dst}.o_proj")


def _stack_state_dict(source: dict, config: MarianConfig, src: str, dst: str) -> dict[str, torch.Tensor]:
    """Map the layers of MarianModel (keys under `src`) to VtxTransformerModel (keys under `dst`)."""
    state = {}
    for stack, num_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(num_layers):
            s, d = f"{src}{stack}.layers.{i}", f"{dst}{stack}.layers.{i}"
            state |= _attention(source, f"{s}.self_attn", f"{d}.self_attn", is_cross_attention=False)
            state |= copy_layer(source, f"{s}.self_attn_layer_norm", f"{d}.self_attn_layer_norm")
            if stack == "decoder":
                state |= _attention(source, f"{s}.encoder_attn", f"{d}.encoder_attn", is_cross_attention=True)
                state |= copy_layer(source, f"{s}.encoder_attn_layer_norm", f"{d}.encoder_attn_layer_norm")
            state |= copy_layer(source, f"{s}.fc1", f"{d}.mlp.fc1")
            state |= copy_layer(source, f"{s}.fc2", f"{d}.mlp.fc2")
            state |= copy_layer(source, f"{s}.final_layer_norm", f"{d}.final_layer_norm")
    state[f"{dst}encoder.embed_tokens.weight"] = source[f"{src}encoder.embed_tokens.weight"]
    state[f"{dst}decoder.embed_tokens.weight"] = source[f"{src}decoder.embed_tokens.weight"]
    return state
