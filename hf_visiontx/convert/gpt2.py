"""GPT-2 (openai-community/gpt2 and its kin) -> the Transformer's decoder: `GPT2LMHeadModel` ->
`VtxTransformerForCausalLM`.

GPT-2 is the paper's decoder with pre-LN blocks, a final LayerNorm, learned positions and GELU; its projections
are `Conv1D` layers, whose weights are stored [in, out] and are transposed into `nn.Linear`'s [out, in]. GPT-2's
fused `c_attn` already stacks Q, K and V in our order.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..modeling import VtxTransformerConfig
from .mapping import copy_layer, same_fields


def convert_config(model: GPT2LMHeadModel) -> VtxTransformerConfig:
    """Our configuration for the model's: GPT-2's sizes in our fields (see `gpt2_to_vtx_config`)."""
    return gpt2_to_vtx_config(model.config)


def gpt2_to_vtx_config(config: GPT2Config) -> VtxTransformerConfig:
    """Our configuration for a GPT-2 one: pre-LN, learned positions, unscaled embeddings, no label smoothing.

    GPT-2 options that change the computation in ways ours does not have are refused rather than ignored.
    """
    unsupported = {
        "scale_attn_by_inverse_layer_idx": (config.scale_attn_by_inverse_layer_idx, False),
        "reorder_and_upcast_attn": (config.reorder_and_upcast_attn, False),
        "scale_attn_weights": (config.scale_attn_weights, True),
    }
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise ValueError(
                f"GPT-2 models with `{name}={value}` cannot be converted: ours computes `{name}={supported}`."
            )
    if config.embd_pdrop != config.resid_pdrop:
        raise ValueError(
            f"GPT-2 models with different `embd_pdrop` ({config.embd_pdrop}) and `resid_pdrop` ({config.resid_pdrop}) "
            "cannot be converted: ours has one `dropout` for both."
        )
    inner = config.n_inner or 4 * config.n_embd
    return VtxTransformerConfig(
        **same_fields(config, "vocab_size activation_function add_cross_attention use_cache tie_word_embeddings"),
        **same_fields(config, "pad_token_id bos_token_id eos_token_id"),
        d_model=config.n_embd,
        **{f"{stack}_layers": config.n_layer for stack in ("encoder", "decoder")},
        **{f"{stack}_attention_heads": config.n_head for stack in ("encoder", "decoder")},
        **{f"{stack}_ffn_dim": inner for stack in ("encoder", "decoder")},
        max_position_embeddings=config.n_positions,
        position_embedding_type="learned",
        layer_norm_placement="pre",
        layer_norm_eps=config.layer_norm_epsilon,
        scale_embedding=False,
        dropout=config.resid_pdrop,
        attention_dropout=config.attn_pdrop,
        activation_dropout=0.0,
        lm_head_bias=False,
        label_smoothing=0.0,
        decoder_start_token_id=config.bos_token_id,
    )


def _conv1d(source: dict, src: str, dst: str) -> dict[str, torch.Tensor]:
    """A `Conv1D` (weight [in, out]) as an `nn.Linear` (weight [out, in])."""
    return {f"{dst}.weight": source[f"{src}.weight"].t().contiguous(), f"{dst}.bias": source[f"{src}.bias"]}


def convert_state_dict(model: GPT2LMHeadModel, config: VtxTransformerConfig) -> dict[str, torch.Tensor]:
    """The model's weights under our names."""
    source = model.state_dict()
    state = {
        "model.decoder.embed_tokens.weight": source["transformer.wte.weight"],
        "model.decoder.embed_positions.weight": source["transformer.wpe.weight"],
        "lm_head.weight": source["lm_head.weight"],
    }
    state |= copy_layer(source, "transformer.ln_f", "model.decoder.layer_norm")
    for i in range(config.decoder_layers):
        s, d = f"transformer.h.{i}", f"model.decoder.layers.{i}"
        state |= copy_layer(source, f"{s}.ln_1", f"{d}.self_attn_layer_norm")
        state |= _conv1d(source, f"{s}.attn.c_attn", f"{d}.self_attn.qkv_proj")
        state |= _conv1d(source, f"{s}.attn.c_proj", f"{d}.self_attn.o_proj")
        if config.add_cross_attention:
            state |= copy_layer(source, f"{s}.ln_cross_attn", f"{d}.encoder_attn_layer_norm")
            state |= _conv1d(source, f"{s}.crossattention.q_attn", f"{d}.encoder_attn.q_proj")
            state |= _conv1d(source, f"{s}.crossattention.c_attn", f"{d}.encoder_attn.kv_proj")
            state |= _conv1d(source, f"{s}.crossattention.c_proj", f"{d}.encoder_attn.o_proj")
        state |= copy_layer(source, f"{s}.ln_2", f"{d}.final_layer_norm")
        state |= _conv1d(source, f"{s}.mlp.c_fc", f"{d}.mlp.fc1")
        state |= _conv1d(source, f"{s}.mlp.c_proj", f"{d}.mlp.fc2")
    return state
