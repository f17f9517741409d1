"""Building blocks shared by the model files: written once, imported with a single-dot import so that each
model's saved remote code carries this file along."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN


def resolve_return_dict(config: PreTrainedConfig, return_dict: bool | None) -> bool:
    """The caller's `return_dict`, else the config's (True unless the user turned it off)."""
    return return_dict if return_dict is not None else getattr(config, "return_dict", True)


def check_attention_output_request(config: PreTrainedConfig, output_attentions: bool) -> None:
    """Attention probabilities exist only under eager attention: raise a clear error instead of returning None."""
    if output_attentions and config._attn_implementation != "eager":
        raise ValueError(
            f"`output_attentions=True` needs eager attention, but the model runs {config._attn_implementation!r}: "
            "load it with `attn_implementation='eager'` or call `model.set_attn_implementation('eager')`."
        )


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

    The fallback of transformers' attention dispatcher, and the only path that returns the probabilities.

    Args:
        query: [batch, heads, q_len, head_dim]; key, value: [batch, heads, kv_len, head_dim].
        attention_mask: additive float mask broadcastable to [batch, heads, q_len, kv_len], or None.
    Returns:
        output [batch, q_len, heads, head_dim] and the attention probabilities [batch, heads, q_len, kv_len].
    """
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [B, H, Q, K]
    if attention_mask is not None:
        scores = scores + attention_mask
    probabilities = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probabilities = F.dropout(probabilities, p=dropout, training=module.training)
    output = torch.matmul(probabilities, value).transpose(1, 2).contiguous()  # [B, H, Q, D] -> [B, Q, H, D]
    return output, probabilities


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


class VtxMLP(nn.Module):
    """Position-wise feed-forward network: fc2(dropout(act(fc1(x))))."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[activation]
        self.dropout = dropout
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> [..., hidden_size]."""
        hidden_states = self.activation(self.fc1(hidden_states))
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)
        return self.fc2(hidden_states)
