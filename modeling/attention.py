"""Attention as the three model files share it: scaled dot-product attention written out, the choice of attention
function for a call, and the split of a fused projection into heads. Imported with a single-dot import, so each
model's saved remote code carries this file along."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .fast_paths import direct_sdpa


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out: softmax(QK^T * scaling + mask) V.

    The fallback of transformers' attention dispatcher, and the only path that returns the probabilities. It also
    reads the masks built for sdpa (a call asking for the probabilities runs here whatever the implementation the
    masks were built for): a boolean mask, True where attending is allowed, and no mask at all for a causal module,
    whose causality sdpa's kernel applies.

    Args:
        query: [batch, heads, q_len, head_dim]; key, value: [batch, heads, kv_len, head_dim].
        attention_mask: additive float mask or boolean mask broadcastable to [batch, heads, q_len, kv_len], or None.
    Returns:
        output [batch, q_len, heads, head_dim] and the attention probabilities [batch, heads, q_len, kv_len].
    """
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [B, H, Q, K]
    q_len, kv_len = scores.shape[-2:]
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    elif module.is_causal and q_len > 1:  # query i is position kv_len - q_len + i: it sees the keys up to there
        allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).tril(kv_len - q_len)  # [Q, K]
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probabilities = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probabilities = F.dropout(probabilities, p=dropout, training=module.training)
    output = torch.matmul(probabilities, value).transpose(1, 2).contiguous()  # [B, H, Q, D] -> [B, Q, H, D]
    return output, probabilities


def attention_function(config: PreTrainedConfig, output_attentions: bool = False) -> Callable:
    """The attention function `config._attn_implementation` names: `eager_attention_forward` for "eager", otherwise
    the one registered in transformers' `AttentionInterface` (for "sdpa", `fast_paths.direct_sdpa`'s when it applies).

    With `output_attentions=True` it is always `eager_attention_forward`, the one path that computes the attention
    probabilities: a call that asks for them gets them under any implementation (where transformers' own models
    raise), at eager attention's cost for that call only.
    """
    implementation = "eager" if output_attentions else config._attn_implementation
    return direct_sdpa(implementation) or ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


def attend(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the attention function `attention_function` picks for `module.config`, with the module's `scaling`, and
    its `attention_dropout` in training.

    Args: as `eager_attention_forward`.
    Returns:
        output [batch, q_len, heads, head_dim], and the probabilities [batch, heads, q_len, kv_len] when
        `output_attentions` is set or attention runs eager (None otherwise).
    """
    attention_interface = attention_function(module.config, output_attentions)
    return attention_interface(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=module.attention_dropout if module.training else 0.0,
        scaling=module.scaling,
    )


class SwitchableAttentionMixin:
    """Mixed into our `PreTrainedModel` bases: `set_attn_implementation()` may switch between "sdpa" and "eager" at
    any time, because every attention module looks its function up through `attention_function` at each call.

    transformers decides this by searching the modeling file's source for its own dispatcher call, which ours
    replaces, so the answer is given here instead.
    """

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        return True


def split_heads(projected: torch.Tensor, parts: int, num_heads: int) -> tuple[torch.Tensor, ...]:
    """Split a fused projection into per-head tensors.

    Args:
        projected: [batch, len, parts * num_heads * head_dim], e.g. the output of a fused Q/K/V linear layer.
    Returns:
        `parts` tensors of shape [batch, num_heads, len, head_dim] (views, no copy).
    """
    batch, length, width = projected.shape
    head_dim = width // (parts * num_heads)
    projected = projected.view(batch, length, parts, num_heads, head_dim)  # [B, L, parts, H, D]
    return projected.permute(2, 0, 3, 1, 4).unbind(0)  # parts x [B, H, L, D]


__all__ = ["SwitchableAttentionMixin", "attend", "attention_function", "eager_attention_forward", "split_heads"]
