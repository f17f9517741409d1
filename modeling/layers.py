"""Building blocks shared by the model files: written once, imported with a single-dot import so that each
model's saved remote code carries this file along."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN
from transformers.integrations.sdpa_attention import sdpa_attention_forward as transformers_sdpa_attention_forward
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import TransformersKwargs

from .fast_paths import linear


def resolve_return_dict(config: PreTrainedConfig, return_dict: bool | None) -> bool:
    """The caller's `return_dict`, else the config's (True unless the user turned it off)."""
    return return_dict if return_dict is not None else getattr(config, "return_dict", True)


def check_forward_kwargs(model: nn.Module, kwargs: dict) -> None:
    """Accept the keyword arguments of transformers' shared calling convention (`TransformersKwargs`, for example
    `num_items_in_batch`, which `Trainer` passes and wrappers such as `VisionEncoderDecoderModel` hand on to their
    encoder); they have no effect on our models. Raise a `TypeError` naming any other, so that a misspelt argument is
    not silently ignored."""
    unknown = sorted(set(kwargs) - set(TransformersKwargs.__annotations__))
    if unknown:
        raise TypeError(f"{type(model).__name__}.forward() got unexpected keyword arguments {unknown}.")


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


def attention_function(config: PreTrainedConfig, output_attentions: bool = False) -> Callable:
    """The attention function `config._attn_implementation` names: `sdpa_attention_forward` for "sdpa" (unless a
    user registered another "sdpa" in transformers' `AttentionInterface`), `eager_attention_forward` for "eager",
    otherwise the registered one.

    With `output_attentions=True` it is always `eager_attention_forward`, the one path that computes the attention
    probabilities: a call that asks for them gets them under any implementation (where transformers' own models
    raise), at eager attention's cost for that call only.
    """
    implementation = "eager" if output_attentions else config._attn_implementation
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


MLP_CHUNK_BYTES = 16 << 20  # inference: the MLP's inner activation is made in pieces of at most this size


class VtxMLP(nn.Module):
    """Position-wise feed-forward network: fc2(dropout(act(fc1(x)))). Both projections go through
    `fast_paths.linear`, which runs them on oneDNN while a decoder multiplies few rows at a time.

    In inference, when the inner activation [rows, intermediate_size] would pass 2 x `MLP_CHUNK_BYTES` (32 MiB), the
    rows are run in pieces: glibc's malloc serves blocks over 32 MiB with fresh mappings from the OS, so each call
    would pay the page faults of the whole activation, twice (fc1's output and the activation's). For Swin-T's first
    stage at batch 8 that halves the MLP's time; the outputs are the same.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[activation]
        self.dropout = dropout
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

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
        hidden_states = self.activation(linear(self.fc1, hidden_states))
        hidden_states = dropout_if_training(hidden_states, self.dropout, self.training)
        return linear(self.fc2, hidden_states)


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
    output_class: type[ImageClassifierOutput] = ImageClassifierOutput,
    **encoder_options,
) -> ImageClassifierOutput | tuple:
    """The forward pass of an image classifier: encode, apply `model.classifier` to the pooled representation,
    and add the loss when `labels` are given. Shared by the ViT and Swin classification heads.

    `output_class` is `ImageClassifierOutput` or a subclass; its fields other than `loss` and `logits` (hidden
    states, attentions, Swin's reshaped hidden states) are copied from the encoder output by name.
    `encoder_options` go to the encoder as they are; their `num_items_in_batch` (from `Trainer`) also normalises the
    loss (see `classification_loss`)."""
    outputs = encoder(
        pixel_values,
        interpolate_pos_encoding=interpolate_pos_encoding,
        output_attentions=output_attentions,
        output_hidden_states=output_hidden_states,
        **encoder_options,
    )
    logits = model.classifier(outputs.pooler_output)  # [B, num_labels]
    loss = classification_loss(model, logits, labels, encoder_options.get("num_items_in_batch"))
    carried = {name: getattr(outputs, name) for name in output_class.__dataclass_fields__ if name not in ("loss", "logits")}
    output = output_class(loss=loss, logits=logits, **carried)
    return output if resolve_return_dict(model.config, return_dict) else output.to_tuple()


def classification_loss(model: nn.Module, logits: torch.Tensor, labels: torch.Tensor | None,
                        num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor | None:
    """The loss of an image classifier, for the problem type `config.problem_type` names (inferred as transformers
    does when unset: regression for one label, single-label classification for integer labels, multi-label
    otherwise): cross-entropy, mean squared error or binary cross-entropy with logits, computed in float32.

    Without `num_items_in_batch` the loss is the mean over the labelled elements. `Trainer` passes the number of
    labelled elements over all devices and accumulation steps, and then treats the loss as already normalised by it;
    so it is the summed loss divided by that number, for every problem type (transformers' own heads do this for
    single-label classification only, which misscales the other two under gradient accumulation or several
    processes). Integer labels are checked to name a class first (skipped under `torch.compile`, where reading the
    values back would break the graph).
    """
    if labels is None:
        return None
    config, num_labels = model.config, model.config.num_labels
    checkable = not (torch.compiler.is_compiling() or labels.is_floating_point() or not labels.numel())
    if checkable and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(
            f"`labels` must lie in [0, num_labels={num_labels}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    if config.problem_type == "single_label_classification":
        labels = labels.reshape(-1)  # [B]
        summed = F.cross_entropy(logits.reshape(-1, num_labels).float(), labels, reduction="sum")
    elif config.problem_type == "regression":
        labels = labels.to(torch.float32).reshape(logits.shape)  # [B] or [B, num_labels] -> [B, num_labels]
        summed = F.mse_loss(logits.float(), labels, reduction="sum")
    elif config.problem_type == "multi_label_classification":
        labels = labels.to(torch.float32)  # [B, num_labels]
        summed = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="sum")
    else:
        raise ValueError(
            f"`config.problem_type` must be 'regression', 'single_label_classification' or "
            f"'multi_label_classification', got {config.problem_type!r}."
        )
    if num_items_in_batch is None:
        num_items_in_batch = labels.numel()
    elif isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(summed.device)
    return summed / num_items_in_batch


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
