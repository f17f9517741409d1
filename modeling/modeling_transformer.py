"""The encoder-decoder Transformer of Vaswani et al. 2017, "Attention Is All You Need".

Paper: https://arxiv.org/abs/1706.03762

Reading order: `sinusoidal_position_table` (section 3.5), `VtxTransformerAttention` (3.2; the feed-forward
network of 3.3 is `feed_forward.VtxMLP`), the encoder and decoder layers (3.1, post-LN residual blocks), the stacks,
then the encoder-decoder models, and the decoder alone as a language model (`VtxTransformerForCausalLM`, with
optional cross-attention to any encoder's output); teacher forcing (`shift_tokens_right`) and the label-smoothed loss
(section 5.4) close the file.
Generation goes through transformers' `GenerationMixin` and its Cache API: the decoder's self-attention keys and
values grow by one position per step, and the cross-attention keys and values are projected from the encoder
output once, at the first step, then reused.

This file imports only torch, transformers and its siblings (configuration, attention, feed-forward network, input
checks, fast paths), so it travels with a saved model as Hub remote code.
"""

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils.deprecation import deprecate_kwarg

from .attention import SwitchableAttentionMixin, attend, split_heads
from .configuration_transformer import VtxTransformerConfig
from .fast_paths import FastDecodingMixin, causal_mask_needless, linear, padding_free, summed_cross_entropy
from .feed_forward import VtxMLP
from .hub_mixin import VtxHubMixin
from .input_checks import (
    IGNORE_INDEX,
    check_attention_mask,
    check_forward_kwargs,
    check_not_empty,
    check_position_ids,
    check_shape,
    check_token_ids,
    output_flags,
    resolve_return_dict,
    token_shape,
)


def sinusoidal_position_table(num_positions: int, dim: int, layout: str = "interleaved") -> torch.Tensor:
    """Fixed sinusoidal position encodings (section 3.5 of the paper).

    PE(pos, 2i) = sin(pos / 10000^(2i/d)) and PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).

    Args:
        num_positions: number of positions (rows).
        dim: encoding width d (even).
        layout: "interleaved" puts sin/cos pairs side by side as in the formula above; "concatenated" puts all
            sines first and all cosines second, as Marian does.

    Returns:
        float32 tensor of shape [num_positions, dim] (computed in float64).
    """
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # [P, 1]
    frequencies = 10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # [dim/2]
    angles = positions / frequencies  # [P, dim/2]
    if layout == "interleaved":
        table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)  # [P, dim/2, 2] -> [P, dim]
    elif layout == "concatenated":
        table = torch.cat((angles.sin(), angles.cos()), dim=-1)  # [P, dim]
    else:
        raise ValueError(f"`layout` must be 'interleaved' or 'concatenated', got {layout!r}.")
    return table.float()


class VtxTransformerScaledEmbedding(nn.Embedding):
    """Token embeddings multiplied by sqrt(d_model) (section 3.4 of the paper), or by `scale` as configured.

    The scale lives in the embedding, so `model.get_input_embeddings()(ids)` passed as `inputs_embeds` gives exactly
    what `input_ids=ids` gives.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, scale: float):
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.scale = scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[batch, len] token ids -> [batch, len, embedding_dim] scaled embeddings."""
        return super().forward(input_ids) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


class VtxTransformerSinusoidalPositions(nn.Module):
    """Looks up the fixed sinusoid table: a non-persistent buffer in the model's dtype, rebuilt by `_init_weights`."""

    def __init__(self, config: VtxTransformerConfig):
        super().__init__()
        self.layout = config.position_encoding_layout
        table = sinusoidal_position_table(config.max_position_embeddings, config.d_model, self.layout)
        # `from_pretrained(..., dtype=...)` and `from_config(..., dtype=...)` build the model under that default dtype
        self.register_buffer("table", table.to(torch.get_default_dtype()), persistent=False)  # [max_pos, d_model]

    def forward(self, start: int | torch.Tensor, length: int, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Encodings of positions start, ..., start + length - 1, shape [length, d_model]; or of `position_ids`
        [batch, length], shape [batch, length, d_model].

        `start` may be a 0-d tensor (a static cache's length): the positions are then gathered, which keeps the
        output shape independent of its value under `torch.compile`.
        """
        if position_ids is not None:
            return self.table[position_ids]  # [B, length, d_model]
        if isinstance(start, int):
            return self.table[start : start + length]
        return self.table[torch.arange(length, device=self.table.device) + start]  # [length, d_model]


class VtxTransformerLearnedPositions(nn.Embedding):
    """Learned absolute positions (`position_embedding_type="learned"`, as GPT-2): one trained vector per position.

    The paper (Table 3, row E) found them as good as the sinusoids; GPT-2 uses them.
    """

    def __init__(self, config: VtxTransformerConfig):
        super().__init__(config.max_position_embeddings, config.d_model)

    def forward(self, start: int | torch.Tensor, length: int, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of positions start, ..., start + length - 1 ([length, d_model]) or of `position_ids` [batch,
        length] ([batch, length, d_model])."""
        if position_ids is None:
            position_ids = torch.arange(length, device=self.weight.device) + start  # [length]
        return super().forward(position_ids)


def check_position_range(
    start: int | torch.Tensor, length: int, position_ids: torch.Tensor | None, num_positions: int, argument: str
) -> None:
    """Raise a `ValueError` when a position passes the table of `num_positions` (`max_position_embeddings`), saying
    what is too long: the tokens given as `argument`, or, after cached positions (`start` > 0), the text being
    generated."""
    if torch.compiler.is_compiling():
        return
    last = int(position_ids.max()) if position_ids is not None and position_ids.numel() else int(start) + length - 1
    if last < num_positions:
        return
    if int(start) > 0:  # incremental decoding: the new positions are generated ones
        raise ValueError(
            f"The generated text is longer than `max_position_embeddings` ({num_positions}) allows: it reached "
            f"position {last + 1} after {int(start)} cached positions; lower `max_new_tokens` (or `max_length`) or "
            "raise `max_position_embeddings`."
        )
    raise ValueError(
        f"`{argument}` is longer than `max_position_embeddings` ({num_positions}): {last + 1} positions; shorten it "
        "or raise `max_position_embeddings`."
    )


POSITION_EMBEDDINGS = {"sinusoidal": VtxTransformerSinusoidalPositions, "learned": VtxTransformerLearnedPositions}


class VtxTransformerAttention(nn.Module):
    """Multi-head attention (section 3.2.2) with fused projections.

    Self-attention projects queries, keys and values with one matrix (`qkv_proj`); cross-attention projects
    queries from the decoder (`q_proj`) and keys/values from the encoder output with one matrix (`kv_proj`).
    The fused layout is exact: the rows of `qkv_proj.weight` are those of the separate Q, K, V matrices stacked.
    """

    def __init__(
        self,
        config: VtxTransformerConfig,
        num_heads: int,
        is_cross_attention: bool = False,
        is_causal: bool = False,
        layer_idx: int | None = None,
    ):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.d_model // num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_cross_attention = is_cross_attention
        self.is_causal = is_causal
        self.layer_idx = layer_idx
        if is_cross_attention:
            self.q_proj = nn.Linear(config.d_model, config.d_model)
            self.kv_proj = nn.Linear(config.d_model, 2 * config.d_model)
        else:
            self.qkv_proj = nn.Linear(config.d_model, 3 * config.d_model)
        self.o_proj = nn.Linear(config.d_model, config.d_model)

    def _cross_key_value(
        self, encoder_hidden_states: torch.Tensor, cache: Cache | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the encoder output, projected once per generation and then read from the cache (an
        `EncoderDecoderCache`; with any other, or none, they are projected at every call)."""
        if not isinstance(cache, EncoderDecoderCache):
            cache = None
        if cache is not None and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        key, value = split_heads(linear(self.kv_proj, encoder_hidden_states), 2, self.num_heads)  # 2 x [B, H, S, D]
        if cache is not None:
            key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return key, value

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from `hidden_states` [batch, q_len, d_model] to itself, or to `encoder_hidden_states`.

        `cache` holds the keys and values of earlier positions: self-attention reads and extends its
        self-attention part (the cache itself when it is not an `EncoderDecoderCache`), cross-attention its
        cross-attention part.

        Returns the output [batch, q_len, d_model] and the probabilities [batch, heads, q_len, kv_len] when
        `output_attentions` is set or attention runs eager (None otherwise).
        """
        batch, q_len, d_model = hidden_states.shape
        if self.is_cross_attention:
            (query,) = split_heads(linear(self.q_proj, hidden_states), 1, self.num_heads)  # [B, H, Q, D]
            key, value = self._cross_key_value(encoder_hidden_states, cache)  # [B, H, S, D]
        else:
            query, key, value = split_heads(linear(self.qkv_proj, hidden_states), 3, self.num_heads)  # 3 x [B, H, Q, D]
            if isinstance(cache, EncoderDecoderCache):
                cache = cache.self_attention_cache
            if cache is not None:
                key, value = cache.update(key, value, self.layer_idx)  # [B, H, past+Q, D]

        attn_output, attn_weights = attend(self, query, key, value, attention_mask, output_attentions)  # [B, Q, H, D]
        attn_output = attn_output.reshape(batch, q_len, d_model)  # [B, Q, H, D] -> [B, Q, d_model]
        return linear(self.o_proj, attn_output), attn_weights


class VtxTransformerResidualBlock(GradientCheckpointingLayer):
    """Shared residual wiring of the encoder and decoder layers.

    Post-LN (the paper): x = LayerNorm(x + Dropout(Sublayer(x))).
    Pre-LN (option): x = x + Dropout(Sublayer(LayerNorm(x))).
    """

    def __init__(self, config: VtxTransformerConfig):
        super().__init__()
        self.pre_norm = config.layer_norm_placement == "pre"
        self.dropout = nn.Dropout(config.dropout)

    def _residual(self, hidden_states: torch.Tensor, norm: nn.LayerNorm, sublayer: Callable) -> tuple:
        """Apply `sublayer` (returning (output, extra)) inside a residual connection; returns (x, extra)."""
        output, extra = sublayer(norm(hidden_states) if self.pre_norm else hidden_states)
        hidden_states = hidden_states + self.dropout(output)
        return (hidden_states if self.pre_norm else norm(hidden_states)), extra


class VtxTransformerEncoderLayer(VtxTransformerResidualBlock):
    """One encoder block: self-attention, then the feed-forward network, each inside a residual connection."""

    def __init__(self, config: VtxTransformerConfig, layer_idx: int):
        super().__init__(config)
        self.self_attn = VtxTransformerAttention(config, config.encoder_attention_heads, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = VtxMLP(config.d_model, config.encoder_ffn_dim, config.activation_function, config.activation_dropout)
        self.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states [batch, src_len, d_model] -> same shape, plus the self-attention probabilities."""
        hidden_states, attn_weights = self._residual(
            hidden_states,
            self.self_attn_layer_norm,
            lambda x: self.self_attn(x, attention_mask=attention_mask, output_attentions=output_attentions),
        )
        hidden_states, _ = self._residual(hidden_states, self.final_layer_norm, lambda x: (self.mlp(x), None))
        return hidden_states, attn_weights


class VtxTransformerDecoderLayer(VtxTransformerResidualBlock):
    """One decoder block: masked self-attention, cross-attention over the encoder output, feed-forward network.

    Without `cross_attention` (a language model's decoder) the block is masked self-attention and the feed-forward
    network only.
    """

    def __init__(self, config: VtxTransformerConfig, layer_idx: int, cross_attention: bool = True):
        super().__init__(config)
        heads = config.decoder_attention_heads
        self.self_attn = VtxTransformerAttention(config, heads, is_causal=True, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        if cross_attention:
            self.encoder_attn = VtxTransformerAttention(config, heads, is_cross_attention=True, layer_idx=layer_idx)
            self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        else:
            self.encoder_attn = self.encoder_attn_layer_norm = None
        self.mlp = VtxMLP(config.d_model, config.decoder_ffn_dim, config.activation_function, config.activation_dropout)
        self.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """hidden_states [batch, tgt_len, d_model] -> same shape, plus self- and cross-attention probabilities
        (cross-attention runs when the block has it and `encoder_hidden_states` are given)."""
        hidden_states, self_weights = self._residual(
            hidden_states,
            self.self_attn_layer_norm,
            lambda x: self.self_attn(
                x, attention_mask=attention_mask, cache=cache, output_attentions=output_attentions
            ),
        )
        cross_weights = None
        if self.encoder_attn is not None and encoder_hidden_states is not None:
            hidden_states, cross_weights = self._residual(
                hidden_states,
                self.encoder_attn_layer_norm,
                lambda x: self.encoder_attn(
                    x,
                    encoder_hidden_states,
                    attention_mask=encoder_attention_mask,
                    cache=cache,
                    output_attentions=output_attentions,
                ),
            )
        hidden_states, _ = self._residual(hidden_states, self.final_layer_norm, lambda x: (self.mlp(x), None))
        return hidden_states, self_weights, cross_weights


class VtxTransformerPreTrainedModel(SwitchableAttentionMixin, VtxHubMixin, PreTrainedModel):
    """Weight initialisation and the class-level contract shared by the Transformer models."""

    config: VtxTransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["VtxTransformerEncoderLayer", "VtxTransformerDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = False
    _can_compile_fullgraph = True
    _output_projection_key: str | None = None  # the output projection's weight, in heads that have one
    _has_encoder = True  # False for the decoder alone (`VtxTransformerForCausalLM`)

    @property
    def _tied_weights_keys(self) -> dict[str, str]:
        """Which weights are one tensor, as {tied name: source name}, read from the config at each use.

        `share_encoder_decoder_embeddings` ties the decoder's token embedding to the encoder's; `tie_word_embeddings`
        ties the output projection to the decoder's token embedding (so to the encoder's when those are shared).
        The two flags act independently, the same way at construction, at save and at load: every combination
        builds, saves and reloads. A saved file holds each source once; `from_pretrained` ties the rest back.
        """
        prefix = "" if self.base_model is self else f"{self.base_model_prefix}."
        decoder_embedding = f"{prefix}decoder.embed_tokens.weight"
        tied = {}
        if self.config.share_encoder_decoder_embeddings and self._has_encoder:
            tied[decoder_embedding] = decoder_embedding = f"{prefix}encoder.embed_tokens.weight"
        if self.config.tie_word_embeddings and self._output_projection_key is not None:
            tied[self._output_projection_key] = decoder_embedding
        return tied

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict[str, str]:
        """transformers' mapping of tied weights, without its rule that nothing at all is tied unless
        `tie_word_embeddings` is set: here that flag governs the output projection only (see `_tied_weights_keys`)."""
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return self._tied_weights_keys

    def _resize_token_embeddings(
        self, new_num_tokens: int | None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """transformers' resizing of the source embedding and the output projection, plus the decoder's token
        embedding when it is not shared: source and target share one vocabulary size (`config.vocab_size`)."""
        resized = super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        if self._has_encoder and not self.config.share_encoder_decoder_embeddings:
            decoder = self.get_decoder()
            decoder.embed_tokens = self._get_resized_embeddings(
                decoder.embed_tokens, resized.num_embeddings, mean_resizing=mean_resizing
            )
        return resized

    def _init_weights(self, module: nn.Module) -> None:
        """Xavier-uniform linear layers, N(0, d_model^-1/2) embeddings, rebuilt sinusoid tables."""
        super()._init_weights(module)
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.d_model**-0.5)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, VtxTransformerSinusoidalPositions):
            table = sinusoidal_position_table(module.table.shape[0], module.table.shape[1], module.layout)
            init.copy_(module.table, table)


class VtxTransformerStack(nn.Module):
    """What the encoder and decoder stacks share: token embeddings scaled by sqrt(d_model), sinusoidal (or learned)
    positions, embedding dropout, the layers, and (pre-LN only) a final LayerNorm.

    Subclasses set `length_name` (the sequence dimension's name in shape errors) and `empty_hint` (what a batch
    without tokens lacks)."""

    length_name = "sequence_length"
    empty_hint = "at least one token is needed"

    def __init__(self, config: VtxTransformerConfig, layers: list[nn.Module]):
        super().__init__()
        self.config = config
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = VtxTransformerScaledEmbedding(config.vocab_size, config.d_model, config.pad_token_id, scale)
        self.embed_positions = POSITION_EMBEDDINGS[config.position_embedding_type](config)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(layers)
        pre_norm = config.layer_norm_placement == "pre"
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if pre_norm else None

    def embed(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        ids_name: str,
        embeds_name: str,
        batch: int | None = None,
        refuse_empty: bool = True,
    ) -> torch.Tensor:
        """Token embeddings [batch, len, d_model] of `input_ids` (scaled by the embedding), or `inputs_embeds` as
        given; their shape is checked (and their batch size, when `batch` is given), and with `refuse_empty` a
        batch without tokens is refused (`self.empty_hint` says what it needs)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"Pass exactly one of `{ids_name}` and `{embeds_name}`.")
        shape = token_shape(
            ids_name, input_ids, embeds_name, inputs_embeds, self.length_name, self.config.d_model, batch
        )
        if refuse_empty:
            check_not_empty(ids_name if input_ids is not None else embeds_name, shape, self.empty_hint)
        if inputs_embeds is not None:
            return inputs_embeds
        check_token_ids(ids_name, input_ids, self.embed_tokens.num_embeddings)
        return self.embed_tokens(input_ids)  # [B, L, d_model]

    def add_positions(
        self,
        inputs_embeds: torch.Tensor,
        start: int | torch.Tensor,
        argument: str,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Add the encodings of positions start, start + 1, ... (or of `position_ids` [batch, len]) and apply
        embedding dropout; positions past `max_position_embeddings` are refused, naming `argument` (the tokens
        given) or the generated text."""
        length = inputs_embeds.shape[1]
        check_position_range(start, length, position_ids, self.config.max_position_embeddings, argument)
        positions = self.embed_positions(start, length, position_ids)  # [L or B, L, d_model]
        return self.dropout(inputs_embeds + positions)

    def final_norm(self, hidden_states: torch.Tensor, all_hidden_states: tuple | None) -> tuple:
        """Apply the pre-LN stack's final LayerNorm (if any); the last recorded hidden state is the normed one."""
        if self.layer_norm is None:
            return hidden_states, all_hidden_states
        hidden_states = self.layer_norm(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states = (*all_hidden_states[:-1], hidden_states)
        return hidden_states, all_hidden_states


class VtxTransformerEncoder(VtxTransformerStack):
    """The encoder stack: N encoder layers over the embedded source."""

    length_name = "source_length"
    empty_hint = "the source must hold at least one token"

    def __init__(self, config: VtxTransformerConfig):
        super().__init__(config, [VtxTransformerEncoderLayer(config, i) for i in range(config.encoder_layers)])

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput:
        """Encode a source batch.

        Args:
            input_ids: [batch, src_len] source token ids, or `inputs_embeds` [batch, src_len, d_model] (used as
                given, as `embed_tokens(input_ids)` returns them: already scaled).
            attention_mask: [batch, src_len], 1 for real tokens and 0 for padding.
            output_attentions: also return each layer's attention probabilities (computed with eager attention for
                this call whatever the implementation).
            return_dict: accepted for `generate()`; the output is always a `BaseModelOutput`.
        Returns:
            `BaseModelOutput` with `last_hidden_state` [batch, src_len, d_model].
        """
        output_attentions = bool(output_attentions)
        inputs_embeds = self.embed(input_ids, inputs_embeds, "input_ids", "inputs_embeds")
        check_attention_mask("attention_mask", attention_mask, inputs_embeds.shape[:2])
        hidden_states = self.add_positions(inputs_embeds, start=0, argument="input_ids")
        mask = (
            None
            if padding_free(attention_mask)
            else create_bidirectional_mask(
                config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask
            )
        )

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, attn_weights = layer(hidden_states, mask, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
        hidden_states, all_hidden_states = self.final_norm(hidden_states, all_hidden_states)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


class VtxTransformerDecoder(VtxTransformerStack):
    """The decoder stack: N decoder layers over the embedded target, attending to the encoder output.

    Args:
        config: the model's configuration.
        standalone: the decoder of `VtxTransformerForCausalLM` rather than of the encoder-decoder model: its layers
            have cross-attention only when `config.add_cross_attention` is set, and its errors name the causal
            LM's arguments (`input_ids`, `attention_mask`) rather than the decoder's (`decoder_input_ids`, ...).
    """

    def __init__(self, config: VtxTransformerConfig, standalone: bool = False):
        cross_attention = config.add_cross_attention or not standalone
        super().__init__(
            config, [VtxTransformerDecoderLayer(config, i, cross_attention) for i in range(config.decoder_layers)]
        )
        self.cross_attention = cross_attention
        self.argument_prefix = "" if standalone else "decoder_"
        self.length_name = "sequence_length" if standalone else "target_length"
        self.empty_hint = (
            f"with nothing cached, a language model needs at least one token to continue, for example the "
            f"beginning-of-sequence token (config.bos_token_id={config.bos_token_id})"
            if standalone
            else f"with nothing cached, the decoder needs at least its start token "
            f"(config.decoder_start_token_id={config.decoder_start_token_id})"
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        position_ids: torch.LongTensor | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Decode target positions given the encoder output.

        Args:
            input_ids: [batch, tgt_len] decoder input ids; with a cache, only the new positions. Or
                `inputs_embeds` [batch, tgt_len, d_model], used as given (already scaled).
            encoder_hidden_states: [batch, src_len, d_model], or None for a language model's decoder.
            attention_mask: [batch, past_len + tgt_len] decoder padding mask (causality is added here).
            encoder_attention_mask: [batch, src_len] source padding mask.
            cache: a `Cache` of the self-attention keys and values (an `EncoderDecoderCache` also keeps the
                cross-attention ones), updated in place.
            position_ids: [batch, tgt_len] position of each token (left-padded prompts count from their first real
                token); by default past_len, past_len + 1, ...
        """
        prefix = self.argument_prefix
        if cache is not None and not isinstance(cache, Cache):
            raise TypeError(f"`cache` must be a transformers `Cache`, got {type(cache).__name__}.")
        if encoder_hidden_states is not None and not self.cross_attention:
            raise ValueError(
                "`encoder_hidden_states` were given but the decoder has no cross-attention layers: build it with "
                "`add_cross_attention=True` in its config."
            )
        past_length = cache.get_seq_length() if cache is not None else 0
        inputs_embeds = self.embed(
            input_ids,
            inputs_embeds,
            f"{prefix}input_ids",
            f"{prefix}inputs_embeds",
            batch=encoder_hidden_states.shape[0] if encoder_hidden_states is not None else None,
            refuse_empty=not torch.compiler.is_compiling() and int(past_length) == 0,
        )
        check_attention_mask(
            f"{prefix}attention_mask", attention_mask, (inputs_embeds.shape[0], past_length + inputs_embeds.shape[1])
        )
        check_position_ids("position_ids", position_ids, inputs_embeds.shape[:2])
        hidden_states = self.add_positions(
            inputs_embeds, start=past_length, argument=f"{prefix}input_ids", position_ids=position_ids
        )
        self_attention_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if causal_mask_needless(inputs_embeds.shape[1], self_attention_cache, attention_mask):
            causal_mask = None  # fast path: one new position that may see every cached key
        else:
            causal_mask = create_causal_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                cache=self_attention_cache,
                position_ids=position_ids,
            )
        cross_mask = (
            None
            if encoder_hidden_states is None or padding_free(encoder_attention_mask)
            else create_bidirectional_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=encoder_attention_mask,
                encoder_hidden_states=encoder_hidden_states,
            )
        )

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_self_attentions = () if output_attentions else None
        all_cross_attentions = () if output_attentions and encoder_hidden_states is not None else None
        for layer in self.layers:
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                encoder_hidden_states,
                causal_mask,
                cross_mask,
                cache=cache,
                output_attentions=output_attentions,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_self_attentions += (self_weights,)
            if all_cross_attentions is not None:
                all_cross_attentions += (cross_weights,)
        hidden_states, all_hidden_states = self.final_norm(hidden_states, all_hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            cache=cache,
            hidden_states=all_hidden_states,
            attentions=all_self_attentions,
            cross_attentions=all_cross_attentions,
        )


class VtxTransformerModel(VtxTransformerPreTrainedModel):
    """The bare encoder-decoder Transformer, returning the decoder's last hidden states."""

    def __init__(self, config: VtxTransformerConfig):
        super().__init__(config)
        self.encoder = VtxTransformerEncoder(config)
        self.decoder = VtxTransformerDecoder(config)
        self.post_init()  # ties the decoder's token embedding to the encoder's when they are shared

    def get_input_embeddings(self) -> nn.Embedding:
        """The source token embedding (shared with the target when configured)."""
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the source embedding, and the target one when they are shared."""
        self.encoder.embed_tokens = value
        if self.config.share_encoder_decoder_embeddings:
            self.decoder.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode the source (unless `encoder_outputs` is given) and decode the target.

        Args:
            input_ids: [batch, src_len] source ids; attention_mask: [batch, src_len] source padding mask.
            decoder_input_ids: [batch, tgt_len] target ids, already shifted right (teacher forcing).
            decoder_attention_mask: [batch, past_len + tgt_len] target padding mask.
            encoder_outputs: a precomputed encoder output, as `generate()` passes it.
            cache: an `EncoderDecoderCache` to read and extend; with `use_cache=True` and none given, a dynamic
                one is created. `past_key_values` is accepted as its deprecated name.
            inputs_embeds, decoder_inputs_embeds: instead of ids, embeddings as `get_input_embeddings()` returns them.
            output_attentions: also return every attention map (computed with eager attention for this call, whatever
                the implementation).
            **kwargs: transformers' shared keyword arguments (`TransformersKwargs`, for example `num_items_in_batch`)
                are accepted and have no effect here; any other name raises a `TypeError`.
        Returns:
            `Seq2SeqModelOutput` with `last_hidden_state` [batch, tgt_len, d_model] (a tuple if `return_dict=False`).
        """
        check_forward_kwargs(self, kwargs)
        output_attentions, output_hidden_states = output_flags(self.config, output_attentions, output_hidden_states)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "The decoder needs `decoder_input_ids` (or `labels`, from which they are derived by shifting right)."
            )
        if use_cache is None:  # a cache only helps incremental decoding, never a training forward
            use_cache = self.config.use_cache and not self.training
        if not use_cache:
            cache = None
        elif cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        elif not isinstance(cache, EncoderDecoderCache):
            raise TypeError(
                f"`cache` must be an `EncoderDecoderCache` (self-attention and cross-attention caches), "
                f"got {type(cache).__name__}."
            )
        decoder_outputs = self.decoder(
            decoder_input_ids,
            encoder_outputs.last_hidden_state,
            attention_mask=decoder_attention_mask,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


class VtxTransformerForConditionalGeneration(FastDecodingMixin, VtxTransformerPreTrainedModel, GenerationMixin):
    """The Transformer with its output projection: next-token logits, loss from `labels`, and `generate()`."""

    _output_projection_key = "lm_head.weight"

    def __init__(self, config: VtxTransformerConfig):
        super().__init__(config)
        self.model = VtxTransformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)
        self.post_init()  # ties the output projection to the token embedding when `tie_word_embeddings` is set
        if self.generation_config.max_new_tokens is None:
            self.generation_config.max_new_tokens = min(256, config.max_position_embeddings - 1)

    def get_input_embeddings(self) -> nn.Embedding:
        """The source token embedding."""
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the source (and shared target) embedding."""
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        """The output projection to vocabulary logits."""
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        """Replace the output projection."""
        self.lm_head = value

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for teacher forcing, as `DataCollatorForSeq2Seq` asks for them."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        """Next-token logits for each target position, and the label-smoothed loss when `labels` are given.

        Args:
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache,
                inputs_embeds, decoder_inputs_embeds, use_cache: as in `VtxTransformerModel.forward`.
            labels: [batch, tgt_len] target ids, -100 where ignored. Without `decoder_input_ids`, the decoder
                inputs are the labels shifted right.
            num_items_in_batch: passed by `Trainer`: the loss is the summed token loss divided by it, which keeps
                gradient accumulation exact.
            **kwargs: as in `VtxTransformerModel.forward`.
        Returns:
            `Seq2SeqLMOutput` with `logits` [batch, tgt_len, vocab_size] and `loss` when `labels` are given.
        """
        check_forward_kwargs(self, kwargs)
        if labels is not None:
            self._check_labels_shape(
                labels, input_ids, inputs_embeds, encoder_outputs, decoder_input_ids, decoder_inputs_embeds
            )
            check_token_ids("labels", labels, self.config.vocab_size, allow_ignore_index=True)
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = linear(self.lm_head, outputs.last_hidden_state)  # [B, T, V]
        loss = None
        if labels is not None:
            loss = label_smoothed_cross_entropy(logits, labels, self.config.label_smoothing, num_items_in_batch)
        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()

    def _check_labels_shape(
        self,
        labels: torch.Tensor,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
    ) -> None:
        """Raise a `ValueError` unless `labels` are [batch, target_len] for the source's batch size and, when the
        decoder inputs are given as well, their length (checking the shapes of source and decoder inputs first)."""
        d_model = self.config.d_model
        if encoder_outputs is not None:
            batch = encoder_outputs[0].shape[0]
        else:
            source = token_shape("input_ids", input_ids, "inputs_embeds", inputs_embeds, "source_length", d_model)
            batch = source[0] if source is not None else None
        target = token_shape(
            "decoder_input_ids",
            decoder_input_ids,
            "decoder_inputs_embeds",
            decoder_inputs_embeds,
            "target_length",
            d_model,
            batch,
        )
        check_shape("labels", labels, ("batch", "target_length"), (batch, target[1] if target is not None else None))
        check_not_empty("labels", labels.shape, "the loss needs at least one target token")

    def generate(self, inputs: torch.Tensor | None = None, **kwargs) -> torch.LongTensor:
        """`GenerationMixin.generate` (through `fast_paths.FastDecodingMixin`), with a clear error when no source
        is given.

        Args:
            inputs: [batch, src_len] source ids (or pass `input_ids=`, `inputs_embeds=` or `encoder_outputs=`).
            **kwargs: anything `GenerationMixin.generate` accepts: `attention_mask`, `num_beams`, `do_sample`,
                `max_new_tokens`, `cache_implementation="static"`, a `generation_config`, ...
        """
        if inputs is None and all(
            kwargs.get(name) is None for name in ("input_ids", "inputs_embeds", "encoder_outputs")
        ):
            raise ValueError(
                "generate() needs a source sentence: pass `input_ids` (for example `tokenizer(texts, "
                "return_tensors='pt', padding=True)`), `inputs_embeds` or `encoder_outputs`."
            )
        return super().generate(inputs, **kwargs)


class VtxTransformerDecoderWrapper(nn.Module):
    """Holds the decoder as `decoder`, so the causal LM's weights are named `model.decoder.*` as in the
    encoder-decoder model (and in transformers' `MarianForCausalLM`)."""

    def __init__(self, config: VtxTransformerConfig):
        super().__init__()
        self.decoder = VtxTransformerDecoder(config, standalone=True)

    def forward(self, *args, **kwargs) -> BaseModelOutputWithPastAndCrossAttentions:
        """The decoder's forward."""
        return self.decoder(*args, **kwargs)


class VtxTransformerForCausalLM(FastDecodingMixin, VtxTransformerPreTrainedModel, GenerationMixin):
    """The Transformer's decoder alone, as a language model: next-token logits, loss from `labels`, `generate()`.

    With `add_cross_attention=True` in the config, each layer also attends to `encoder_hidden_states`, which makes
    it the decoder of `VisionEncoderDecoderModel` or `EncoderDecoderModel`. The config is marked a decoder
    (`is_decoder=True`, `is_encoder_decoder=False`) as transformers' own causal LMs do, on a copy when the given
    one is not marked; only its `decoder_*` sizes are read. `from_preset("gpt2")` gives GPT-2's sizes, and `hf_visiontx.convert.from_transformers` turns a
    `GPT2LMHeadModel` into this class.
    """

    _output_projection_key = "lm_head.weight"
    _has_encoder = False
    _no_split_modules = ["VtxTransformerDecoderLayer"]

    def __init__(self, config: VtxTransformerConfig):
        if config.is_encoder_decoder or not config.is_decoder:  # a copy: the caller's config may build a translator
            config = copy.deepcopy(config)
            config.is_decoder, config.is_encoder_decoder = True, False
        super().__init__(config)
        self.model = VtxTransformerDecoderWrapper(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)
        self.post_init()  # ties the output projection to the token embedding when `tie_word_embeddings` is set
        if self.generation_config.max_new_tokens is None:
            self.generation_config.max_new_tokens = min(256, config.max_position_embeddings - 1)

    @classmethod
    def checkpoint_key_mapping(cls, checkpoint_config: dict[str, Any] | None) -> dict[str, str] | None:
        """A translator saved with shared embeddings holds its decoder's token embedding once, under the encoder's
        name (see `_tied_weights_keys`): read it from there."""
        if (checkpoint_config or {}).get("is_encoder_decoder") and checkpoint_config.get(
            "share_encoder_decoder_embeddings", True
        ):
            return {
                r"^model\.encoder\.embed_tokens\.weight$": "model.decoder.embed_tokens.weight",  # a translator
                r"^encoder\.embed_tokens\.weight$": "decoder.embed_tokens.weight",  # the bare encoder-decoder
            }
        return None

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding."""
        return self.model.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the token embedding."""
        self.model.decoder.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        """The output projection to vocabulary logits."""
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        """Replace the output projection."""
        self.lm_head = value

    def get_decoder(self) -> VtxTransformerDecoder:
        """The decoder stack."""
        return self.model.decoder

    def set_decoder(self, decoder: VtxTransformerDecoder) -> None:
        """Replace the decoder stack."""
        self.model.decoder = decoder

    def generate(self, inputs: torch.Tensor | None = None, **kwargs) -> torch.LongTensor:
        """`GenerationMixin.generate` (through `fast_paths.FastDecodingMixin`), with a clear error for a prompt
        without tokens (without any prompt, generation starts from `config.bos_token_id`).

        Args:
            inputs: [batch, prompt_len] prompt ids (or pass `input_ids=` or `inputs_embeds=`).
            **kwargs: anything `GenerationMixin.generate` accepts.
        """
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        shape = token_shape(
            "input_ids", prompt, "inputs_embeds", kwargs.get("inputs_embeds"), "sequence_length", self.config.d_model
        )
        if shape is not None:
            check_not_empty(
                "input_ids" if prompt is not None else "inputs_embeds", shape, self.get_decoder().empty_hint
            )
        return super().generate(inputs, **kwargs)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> CausalLMOutputWithCrossAttentions | tuple:
        """Next-token logits at each position, and the loss of predicting each next token when `labels` are given.

        Args:
            input_ids: [batch, len] token ids (with a cache, only the new ones), or `inputs_embeds`
                [batch, len, d_model] as `get_input_embeddings()` returns them.
            attention_mask: [batch, past_len + len], 1 for real tokens and 0 for padding (left padding for
                generation).
            position_ids: [batch, len] positions; `generate()` derives them from `attention_mask`, so a
                left-padded prompt is positioned as the same prompt unpadded.
            encoder_hidden_states: [batch, src_len, encoder width] to attend to (needs `add_cross_attention=True`);
                encoder_attention_mask: [batch, src_len] its padding mask.
            cache: a `Cache` to read and extend (an `EncoderDecoderCache` with cross-attention); with
                `use_cache=True` and none given, a dynamic one is created. `past_key_values` is accepted as its
                deprecated name.
            labels: [batch, len] token ids, -100 where ignored; as in transformers' causal LMs they are the inputs
                themselves: position t is scored on predicting `labels[:, t + 1]`.
            shift_labels (keyword): [batch, len] targets already aligned with the positions (position t predicts
                `shift_labels[:, t]`), as sequence-parallel training passes them after shifting the whole sequence;
                when given, they are scored instead of `labels`. A keyword rather than a named parameter, as in
                transformers' causal LMs: `Trainer` takes every named parameter with "label" in it for a label
                it must find in each batch.
            logits_to_keep: compute the logits of the last this many positions only (0: all), or of the positions
                a 1-D tensor lists; `generate()` asks for the last one.
            num_items_in_batch: passed by `Trainer`: the loss is the summed token loss divided by it, which keeps
                gradient accumulation exact.
            output_attentions: also return every attention map (computed with eager attention for this call,
                whatever the implementation).
            **kwargs: transformers' shared keyword arguments (`TransformersKwargs`) are accepted and have no
                effect here; any other name raises a `TypeError`.
        Returns:
            `CausalLMOutputWithCrossAttentions` with `logits` [batch, kept positions, vocab_size] and `loss` when
            `labels` are given (a tuple if `return_dict=False`).
        """
        shift_labels = kwargs.pop("shift_labels", None)
        check_forward_kwargs(self, kwargs)
        output_attentions, output_hidden_states = output_flags(self.config, output_attentions, output_hidden_states)
        if shift_labels is not None or labels is not None:
            if not (isinstance(logits_to_keep, int) and logits_to_keep == 0):
                raise ValueError("`labels` score every position: leave `logits_to_keep` at 0 when passing them.")
            tokens = token_shape(
                "input_ids", input_ids, "inputs_embeds", inputs_embeds, "sequence_length", self.config.d_model
            )
            name, targets = ("shift_labels", shift_labels) if shift_labels is not None else ("labels", labels)
            check_shape(name, targets, ("batch", "sequence_length"), tokens)
            check_token_ids(name, targets, self.config.vocab_size, allow_ignore_index=True)
            if shift_labels is None:
                shift_labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # [B, L]: position t predicts t + 1
            use_cache = False
        if use_cache is None:  # a cache only helps incremental decoding, never a training forward
            use_cache = self.config.use_cache and not self.training
        if not use_cache:
            cache = None
        elif cache is None:
            cache = DynamicCache(config=self.config)
        if cache is not None and encoder_hidden_states is not None and not isinstance(cache, EncoderDecoderCache):
            cache = EncoderDecoderCache(cache, DynamicCache(config=self.config))  # keeps the encoder's keys/values
        outputs = self.model(
            input_ids,
            encoder_hidden_states,
            attention_mask=attention_mask,
            encoder_attention_mask=encoder_attention_mask,
            cache=cache,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            position_ids=position_ids,
        )
        hidden_states = outputs.last_hidden_state  # [B, L, d_model]
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = linear(self.lm_head, hidden_states[:, kept])  # [B, kept, V]
        loss = None
        if shift_labels is not None:
            loss = label_smoothed_cross_entropy(logits, shift_labels, self.config.label_smoothing, num_items_in_batch)
        output = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher-forcing decoder inputs: the labels moved one step right, starting with `decoder_start_token_id`.

    Positions ignored in the loss (-100) become `pad_token_id`.

    Args:
        labels: [batch, target_len] target token ids, -100 where ignored.
    Returns:
        [batch, target_len] decoder input ids.
    """
    shifted = labels.new_full(labels.shape, decoder_start_token_id)  # [B, T]
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_token_id)


def label_smoothed_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_smoothing: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Token-level cross-entropy with label smoothing, summed and divided by the number of target tokens.

    Args:
        logits: [batch, target_len, vocab] decoder outputs (not shifted: they already predict `labels`).
        labels: [batch, target_len] target ids, -100 where ignored.
        label_smoothing: epsilon of the smoothed target distribution (0.1 in the paper).
        num_items_in_batch: the number of target tokens over all gradient-accumulation micro-batches, passed by
            `Trainer`; when None, the tokens of this batch are counted.
    """
    summed = summed_cross_entropy(  # F.cross_entropy(..., reduction="sum"); memory path: see fast_paths
        logits.flatten(0, 1).float(),  # [B*T, V]
        labels.flatten(),  # [B*T]
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )
    if num_items_in_batch is None:
        num_items_in_batch = (labels != IGNORE_INDEX).sum()
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(summed.device)
    return summed / num_items_in_batch


__all__ = [
    "VtxTransformerForCausalLM",
    "VtxTransformerForConditionalGeneration",
    "VtxTransformerModel",
    "VtxTransformerPreTrainedModel",
    "shift_tokens_right",
    "sinusoidal_position_table",
]
