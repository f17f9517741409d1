"""The position-wise feed-forward network the three model files share (Vaswani et al. 2017, section 3.3; the MLP
of ViT's and Swin's blocks). Imported with a single-dot import, so each model's saved remote code carries it."""

import torch
from torch import nn
from transformers.activations import ACT2FN

from .fast_paths import activation_recomputed, in_row_pieces, linear, projected_and_activated


class VtxMLP(nn.Module):
    """Position-wise feed-forward network: fc2(dropout(act(fc1(x)))).

    Args:
        hidden_size: width of the input and the output.
        intermediate_size: width of the inner activation.
        activation: a name in transformers' `ACT2FN` ("relu", "gelu", ...).
        dropout: dropout probability on the inner activation.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[activation]
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> [..., hidden_size]."""
        return in_row_pieces(self.feed_forward, hidden_states, self.fc1.out_features)  # fast path: see fast_paths

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The network itself, [..., hidden_size] -> [..., hidden_size]; the projections go through
        `fast_paths.linear` (oneDNN where it is the faster), and in inference the activation is fused into the first
        projection or overwrites its output (`fast_paths.projected_and_activated`)."""
        inner, activated = projected_and_activated(self.fc1, self.activation, hidden_states)  # fast paths: see there
        with activation_recomputed(self.activation, inner, activated):  # memory path: see fast_paths
            return linear(self.fc2, self.dropout(activated))


__all__ = ["VtxMLP"]
