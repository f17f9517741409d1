"""Building blocks shared by the model files: written once, imported with a single-dot import so that each
model's saved remote code carries this file along."""

import contextlib
import functools
import os
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN
from transformers.integrations.sdpa_attention import sdpa_attention_forward as transformers_sdpa_attention_forward
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


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
    probabilities = dropout_if_training(probabilities, dropout, module.training)
    output = torch.matmul(probabilities, value).transpose(1, 2).contiguous()  # [B, H, Q, D] -> [B, Q, H, D]
    return output, probabilities


def sdpa_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """`F.scaled_dot_product_attention` with the calling convention of transformers' attention functions.

    Equal to transformers' own sdpa function for our models (no grouped-query heads, no soft-capping, no position
    bias), without its per-call checks, which cost more than the attention itself when one token is decoded.
    Causality is the kernel's when `module.is_causal` and no mask is given (the mask builders leave it out then).

    Args: as `eager_attention_forward`.
    Returns:
        output [batch, q_len, heads, head_dim] (a view: the caller's reshape copies when it must) and None.
    """
    is_causal = module.is_causal and attention_mask is None and query.shape[2] > 1
    output = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal
    )  # [B, H, Q, D]
    return output.transpose(1, 2), None  # [B, Q, H, D]


def attention_function(config: PreTrainedConfig) -> Callable:
    """The attention function `config._attn_implementation` names: `sdpa_attention_forward` for "sdpa" (unless a
    user registered another "sdpa" in transformers' `AttentionInterface`), `eager_attention_forward` for "eager",
    otherwise the registered one."""
    implementation = config._attn_implementation
    if implementation == "sdpa" and ALL_ATTENTION_FUNCTIONS.get("sdpa") is transformers_sdpa_attention_forward:
        return sdpa_attention_forward
    return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


class SwitchableAttentionMixin:
    """Mixed into our `PreTrainedModel` bases: `set_attn_implementation()` may switch between "sdpa" and "eager" at
    any time, because every attention module looks its function up through `attention_function` at each call.

    transformers decides this by searching the modeling file's source for its own dispatcher call, which ours
    replaces, so the answer is given here instead.
    """

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        return True


def dropout_if_training(hidden_states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout` in training; in inference the input itself, without the call's overhead (which adds up over the
    hundreds of small ops of a token-by-token decoding step)."""
    return F.dropout(hidden_states, p=p, training=True) if training and p > 0 else hidden_states


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


PREPACKED_MAX_ROWS = 64  # up to this many rows oneDNN on a pre-packed weight beats F.linear (MKL) on CPU


@functools.cache
def _prepacking_available() -> bool:
    """Whether this torch build has oneDNN's linear kernels and the user has not turned them off
    (environment variable HF_VISIONTX_PREPACK=0, read at the first call)."""
    return (
        os.environ.get("HF_VISIONTX_PREPACK", "1") != "0"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class _PrepackedWeight:
    """A weight re-laid-out for oneDNN, the (storage, version) of the weight it was made from, and how many open
    `prepacked_linears` blocks allow it. Never copied or pickled with its layer."""

    __slots__ = ("source", "packed", "users")

    def __init__(self):
        self.source, self.packed, self.users = None, None, 0

    def __deepcopy__(self, memo: dict) -> "_PrepackedWeight":
        return _PrepackedWeight()

    def __reduce__(self) -> tuple:
        return _PrepackedWeight, ()

    def of(self, weight: torch.Tensor) -> torch.Tensor:
        """The packed copy of `weight`, made again whenever the weight was replaced or changed in place."""
        version = None if weight.is_inference() else weight._version  # inference tensors have no version counter
        source = (weight.data_ptr(), version, weight.shape)
        if source != self.source:
            self.packed = None  # free the old copy before packing the new one
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 16)
            self.source = source
        return self.packed

    def drop(self) -> None:
        """Forget the packed copy."""
        self.source, self.packed = None, None


@contextlib.contextmanager
def prepacked_linears(model: nn.Module) -> Iterator[None]:
    """Within the block, `model`'s `VtxLinear` layers may run on packed copies of their weights (made on first use,
    dropped when the outermost block ends). `generate()` opens one.

    The copies are scoped because they can be trusted only while the weights cannot change behind them: fused AdamW
    and writes through `.data` update a parameter without bumping its version counter, so a copy kept across
    training steps could go stale.
    """
    holders = [module._prepacked for module in model.modules() if isinstance(module, VtxLinear)]
    for holder in holders:
        holder.users += 1
    try:
        yield
    finally:
        for holder in holders:
            holder.users -= 1
            if holder.users == 0:
                holder.drop()


class VtxLinear(nn.Linear):
    """`nn.Linear` that is faster on CPU when it multiplies few rows at a time, as in token-by-token decoding.

    At a handful of rows (batch x beams) MKL's sgemm behind `F.linear` reaches about half of the memory bandwidth.
    Without autograd, in float32 on CPU, this layer runs oneDNN's matmul instead: on the weight as it is for one
    row, and for 2 to `PREPACKED_MAX_ROWS` rows inside `prepacked_linears(model)` (which `generate()` opens) on a
    copy of the weight packed once for the block, which costs the weight's memory once more until the block ends.
    Up to 3.5x faster per call at decoder sizes, equal to `F.linear` up to float rounding; HF_VISIONTX_PREPACK=0
    turns it off. Everything else (training, large batches, other dtypes and devices, tensor subclasses,
    `torch.compile` / `torch.export`) takes `F.linear`. Same parameters and state-dict keys as `nn.Linear`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._prepacked = _PrepackedWeight()

    def _takes_onednn_path(self, inputs: torch.Tensor, weight: torch.Tensor) -> bool:
        return (
            not torch.is_grad_enabled()
            and inputs.numel() <= PREPACKED_MAX_ROWS * self.in_features
            and inputs.dtype == weight.dtype == torch.float32
            and inputs.device.type == "cpu"
            and type(weight) is nn.Parameter
            and not torch.compiler.is_compiling()
            and _prepacking_available()
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[..., in_features] -> [..., out_features]."""
        weight, bias = self.weight, self.bias
        if self._takes_onednn_path(inputs, weight):
            if inputs.numel() == self.in_features:  # one row: oneDNN's kernel gains without packing
                return torch.ops.mkldnn._linear_pointwise(inputs.contiguous(), weight, bias, "none", [], "")
            if self._prepacked.users > 0:
                packed = self._prepacked.of(weight)
                return torch.ops.mkldnn._linear_pointwise(inputs.contiguous(), packed, bias, "none", [], "")
        return F.linear(inputs, weight, bias)


MLP_CHUNK_BYTES = 16 << 20  # inference: the MLP's inner activation is made in pieces of at most this size


class VtxMLP(nn.Module):
    """Position-wise feed-forward network: fc2(dropout(act(fc1(x)))); `linear` is the class of both projections
    (`VtxLinear` where few rows are multiplied at a time, as in a decoder).

    In inference, when the inner activation [rows, intermediate_size] would pass 2 x `MLP_CHUNK_BYTES` (32 MiB), the
    rows are run in pieces: glibc's malloc serves blocks over 32 MiB with fresh mappings from the OS, so each call
    would pay the page faults of the whole activation, twice (fc1's output and the activation's). For Swin-T's first
    stage at batch 8 that halves the MLP's time; the outputs are the same.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dropout: float = 0.0,
                 linear: type[nn.Linear] = nn.Linear):
        super().__init__()
        self.fc1 = linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[activation]
        self.dropout = dropout
        self.fc2 = linear(intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[..., hidden_size] -> [..., hidden_size]."""
        rows = hidden_states.numel() // hidden_states.shape[-1]
        chunk_rows = max(1, MLP_CHUNK_BYTES // (self.fc1.out_features * hidden_states.element_size()))
        if rows > 2 * chunk_rows and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            flat = hidden_states.reshape(rows, hidden_states.shape[-1])  # [..., D] -> [rows, D]
            pieces = [self._feed_forward(flat[start : start + chunk_rows]) for start in range(0, rows, chunk_rows)]
            return torch.cat(pieces).view(*hidden_states.shape[:-1], -1)  # [rows, D] -> [..., D]
        return self._feed_forward(hidden_states)

    def _feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation(self.fc1(hidden_states))
        hidden_states = dropout_if_training(hidden_states, self.dropout, self.training)
        return self.fc2(hidden_states)


def check_pixel_values(pixel_values: torch.Tensor, num_channels: int, min_size: int) -> None:
    """Raise a `ValueError` naming `pixel_values` unless it is a float [batch, num_channels, H, W] batch with H and W
    at least `min_size` (one token)."""
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(f"`pixel_values` must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if pixel_values.dim() != 4:
        raise ValueError(
            f"`pixel_values` must have 4 dimensions [batch, channels, height, width], got shape "
            f"{tuple(pixel_values.shape)}."
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"`pixel_values` must be a floating-point tensor (normalised pixels, as the image processor returns), "
            f"got {pixel_values.dtype}."
        )
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"`pixel_values` has {pixel_values.shape[1]} channels but the model expects {num_channels} "
            f"(config.num_channels)."
        )
    if min(pixel_values.shape[2:]) < min_size:
        raise ValueError(
            f"`pixel_values` of size {tuple(pixel_values.shape[2:])} is smaller than one token "
            f"({min_size}x{min_size} pixels)."
        )


def interpolate_position_embeddings(patch_positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a grid of learned position embeddings to another grid (the paper's section 3.2, "fine-tuning and
    higher resolution"): bicubic interpolation to an explicit size, computed in float32.

    Args:
        patch_positions: [1, rows, cols, D] position embeddings of the patch tokens.
        grid: the (rows, cols) to resize to.
    Returns:
        [1, grid rows * grid cols, D].
    """
    dtype = patch_positions.dtype
    resized = F.interpolate(
        patch_positions.permute(0, 3, 1, 2).float(),  # [1, rows, cols, D] -> [1, D, rows, cols]
        size=grid,
        mode="bicubic",
        align_corners=False,
    )
    return resized.to(dtype).flatten(2).transpose(1, 2)  # [1, D, r, c] -> [1, r*c, D]


def must_resize_positions(grid: tuple[int, int], trained_grid: tuple[int, int]) -> bool:
    """Whether position embeddings learned on `trained_grid` must be interpolated for a patch `grid`.

    Always True under `torch.compile` / `torch.export`, where the grid may be symbolic: comparing it would pin the
    graph to one image size, and interpolating to the same grid is exact (bicubic weights at whole-pixel offsets
    are 1 and 0).
    """
    return torch.compiler.is_compiling() or tuple(grid) != tuple(trained_grid)


def classify_images(
    model: nn.Module,
    encoder: nn.Module,
    pixel_values: torch.Tensor | None,
    labels: torch.Tensor | None,
    interpolate_pos_encoding: bool,
    output_attentions: bool | None,
    output_hidden_states: bool | None,
    return_dict: bool | None,
    **encoder_options,
) -> ImageClassifierOutput | tuple:
    """The forward pass of an image classifier: encode, apply `model.classifier` to the pooled representation,
    and add the loss when `labels` are given. Shared by the ViT and Swin classification heads; `encoder_options`
    go to the encoder as they are."""
    outputs = encoder(
        pixel_values,
        interpolate_pos_encoding=interpolate_pos_encoding,
        output_attentions=output_attentions,
        output_hidden_states=output_hidden_states,
        **encoder_options,
    )
    logits = model.classifier(outputs.pooler_output)  # [B, num_labels]
    output = ImageClassifierOutput(
        loss=classification_loss(model, logits, labels),
        logits=logits,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
    )
    return output if resolve_return_dict(model.config, return_dict) else output.to_tuple()


def classification_loss(model: nn.Module, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """The loss of an image classifier: `model.loss_function` (cross-entropy for single-label classification,
    `config.problem_type` selects regression or multi-label), after checking that integer labels name a class.

    The label check reads values back from the tensor, so it is skipped under `torch.compile`.
    """
    if labels is None:
        return None
    num_labels = model.config.num_labels
    checkable = not (torch.compiler.is_compiling() or labels.is_floating_point() or not labels.numel())
    if checkable and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(
            f"`labels` must lie in [0, num_labels={num_labels}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    return model.loss_function(labels, logits, model.config)


def masked_pixel_l1_loss(pixel_values: torch.Tensor, reconstruction: torch.Tensor, bool_masked_pos: torch.Tensor,
                         patch_grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """SimMIM's loss: the L1 error on the pixels of masked patches, averaged over those pixels and the channels.

    Args:
        pixel_values: [batch, C, H, W] the input images.
        reconstruction: [batch, C, H', W'] the prediction; the loss covers the pixels both share.
        bool_masked_pos: [batch, rows * cols] masked patches of the (rows, cols) `patch_grid`.
        patch_size: pixels per patch side.
    """
    mask = bool_masked_pos.reshape(-1, 1, *patch_grid).to(reconstruction.dtype)  # [B, 1, rows, cols]
    mask = mask.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)  # [B, 1, rows*P, cols*P]
    rows = min(pixel_values.shape[2], reconstruction.shape[2], mask.shape[2])
    cols = min(pixel_values.shape[3], reconstruction.shape[3], mask.shape[3])
    error = F.l1_loss(reconstruction[:, :, :rows, :cols], pixel_values[:, :, :rows, :cols], reduction="none")
    mask = mask[:, :, :rows, :cols]
    return (error * mask).sum() / (mask.sum() + 1e-5) / pixel_values.shape[1]
