"""Checks and defaults of the model files' forward arguments: a clear error that names the argument, the expected
shape or range and what was given, instead of a bare shape mismatch deep inside a matmul. Imported with a
single-dot import, so each model's saved remote code carries this file along."""

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import TransformersKwargs

IGNORE_INDEX = -100  # label value the losses skip


# Passed to a model without a loss by transformers' own wrappers: `Seq2SeqTrainer` hands a batch's `labels` to
# `generate()`, and `VisionEncoderDecoderModel.generate` hands every keyword on to its encoder.
_ACCEPTED_BY_MODELS_WITHOUT_LOSS = ("labels",)


def check_forward_kwargs(model: nn.Module, kwargs: dict) -> None:
    """Accept the keyword arguments of transformers' shared calling convention (`TransformersKwargs`, for example
    `num_items_in_batch`, which `Trainer` passes and wrappers such as `VisionEncoderDecoderModel` hand on to their
    encoder), and `labels` in a model that computes no loss (heads with a loss name `labels` in their signature, so it
    never reaches here from them); they have no effect. Raise a `TypeError` naming any other, so that a misspelt
    argument is not silently ignored."""
    unknown = sorted(set(kwargs) - set(TransformersKwargs.__annotations__) - set(_ACCEPTED_BY_MODELS_WITHOUT_LOSS))
    if unknown:
        raise TypeError(f"{type(model).__name__}.forward() got unexpected keyword arguments {unknown}.")


def output_flags(
    config: PreTrainedConfig, output_attentions: bool | None, output_hidden_states: bool | None
) -> tuple[bool, bool]:
    """(output_attentions, output_hidden_states) as the caller gives them, else as the config sets them."""
    return (
        bool(output_attentions if output_attentions is not None else config.output_attentions),
        bool(output_hidden_states if output_hidden_states is not None else config.output_hidden_states),
    )


def resolve_return_dict(config: PreTrainedConfig, return_dict: bool | None) -> bool:
    """The caller's `return_dict`, else the config's (True unless the user turned it off)."""
    return return_dict if return_dict is not None else getattr(config, "return_dict", True)


def check_pixel_values(pixel_values: torch.Tensor | None, num_channels: int, min_size: int) -> None:
    """Raise a `ValueError` naming `pixel_values` unless it is a float [batch, num_channels, H, W] batch with H and W
    at least `min_size` (one token)."""
    if pixel_values is None:
        raise ValueError("`pixel_values` is required: a [batch, channels, height, width] float tensor.")
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


def check_mask_positions(
    bool_masked_pos: torch.Tensor, has_mask_token: bool, num_patches: tuple[int, int], masking_head: str
) -> None:
    """Raise a `ValueError` unless `bool_masked_pos` can mask the patches: a [batch, num_patches] boolean mask (or
    integers 0 and 1), on a model with a mask token (else the error points to `masking_head`, the class that has
    one). Any other value would weigh the mask token into the patch instead of replacing it.

    The values of an integer mask are not read under `torch.compile`, where that would break the graph.
    """
    if not has_mask_token:
        raise ValueError(f"`bool_masked_pos` needs a model with a mask token: use {masking_head}.")
    check_shape("bool_masked_pos", bool_masked_pos, ("batch", "num_patches"), tuple(num_patches))
    if bool_masked_pos.dtype == torch.bool:
        return
    if bool_masked_pos.is_floating_point() or bool_masked_pos.is_complex():
        raise ValueError(
            f"`bool_masked_pos` must be a boolean mask (True where a patch is masked) or hold integers 0 and 1, "
            f"got dtype {bool_masked_pos.dtype}."
        )
    if torch.compiler.is_compiling():
        return
    others = bool_masked_pos[(bool_masked_pos != 0) & (bool_masked_pos != 1)]
    if others.numel():
        raise ValueError(
            f"`bool_masked_pos` must hold only 0 and 1 (or True and False; 1 where a patch is masked), found "
            f"{sorted(set(others.unique().tolist()))[:5]}."
        )


def check_shape(
    name: str,
    tensor: torch.Tensor | None,
    dims: tuple[str, ...],
    sizes: tuple[int | None, ...] | None = None,
    hint: str = "",
) -> None:
    """Raise a `ValueError` naming `name` unless `tensor` (when given) has one dimension per name in `dims`, of the
    size `sizes` gives (None: any size), for example "`labels` must have shape (batch, target_length) = (2, 7),
    got (3, 7)"; `hint` is added to the message."""
    if tensor is None:
        return
    sizes = sizes or (None,) * len(dims)
    shape = tuple(tensor.shape)
    if len(shape) == len(dims) and all(size is None or given == size for given, size in zip(shape, sizes, strict=True)):
        return
    expected = _tuple_text(dims)
    if any(size is not None for size in sizes):
        expected += " = " + _tuple_text(
            [dim if size is None else str(size) for dim, size in zip(dims, sizes, strict=True)]
        )
    raise ValueError(f"`{name}` must have shape {expected}, got {shape}{hint}.")


def _tuple_text(items: Sequence[str]) -> str:
    """Items written as Python writes a tuple: "(batch, length)", "(batch,)"."""
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def token_shape(
    ids_name: str,
    input_ids: torch.Tensor | None,
    embeds_name: str,
    inputs_embeds: torch.Tensor | None,
    length_name: str,
    d_model: int,
    batch: int | None = None,
) -> tuple[int, int] | None:
    """The (batch, length) of a token sequence given as ids [batch, length] or as embeddings [batch, length,
    d_model] (None when neither is given), after checking that shape (and the batch size `batch`, when known) with
    `check_shape`; `length_name` names the length in the error (for example "target_length")."""
    check_shape(ids_name, input_ids, ("batch", length_name), (batch, None))
    check_shape(embeds_name, inputs_embeds, ("batch", length_name, "d_model"), (batch, None, d_model))
    tokens = input_ids if input_ids is not None else inputs_embeds
    return None if tokens is None else (tokens.shape[0], tokens.shape[1])


def check_not_empty(name: str, shape: tuple[int, int], needed: str) -> None:
    """Raise a `ValueError` naming `name` when a (batch, length) token batch holds no token; `needed` says what
    it must hold instead."""
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(shape)}): {needed}.")


def check_token_ids(
    name: str, token_ids: torch.Tensor | None, vocab_size: int, allow_ignore_index: bool = False
) -> None:
    """Raise a `ValueError` naming `name` when `token_ids` holds an id outside [0, vocab_size) (or `IGNORE_INDEX`,
    when allowed).

    Skipped under `torch.compile`, where reading a value back from the tensor would break the graph.
    """
    if token_ids is None or torch.compiler.is_compiling():
        return
    if token_ids.is_floating_point() or token_ids.is_complex():
        raise ValueError(f"`{name}` must hold integer token ids, got dtype {token_ids.dtype}.")
    ids = token_ids[token_ids != IGNORE_INDEX] if allow_ignore_index else token_ids
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        allowed = "-100 or " if allow_ignore_index else ""
        raise ValueError(
            f"`{name}` holds token ids outside the vocabulary: found values in [{int(ids.min())}, {int(ids.max())}], "
            f"expected {allowed}ids in [0, {vocab_size}) (config.vocab_size={vocab_size})."
        )


def check_attention_mask(name: str, attention_mask: torch.Tensor | None, expected_shape: tuple[int, ...]) -> None:
    """Raise a `ValueError` naming `name` when a 2-D padding mask does not match the sequence it masks."""
    if attention_mask is None or attention_mask.dim() == 4:  # a prepared 4-D mask is the caller's business
        return
    if tuple(attention_mask.shape) != tuple(expected_shape):
        raise ValueError(
            f"`{name}` must have shape {tuple(expected_shape)} (batch, sequence length), "
            f"got {tuple(attention_mask.shape)}."
        )


def check_position_ids(name: str, position_ids: torch.Tensor | None, expected_shape: tuple[int, ...]) -> None:
    """Raise a `ValueError` naming `name` unless the positions are integers of shape (batch, length) or (1, length)
    and none is negative."""
    if position_ids is None:
        return
    batch, length = expected_shape
    if position_ids.is_floating_point() or position_ids.is_complex() or position_ids.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer positions, got dtype {position_ids.dtype}.")
    if position_ids.dim() != 2 or position_ids.shape[0] not in (1, batch) or position_ids.shape[1] != length:
        raise ValueError(
            f"`{name}` must have shape ({batch}, {length}) or (1, {length}) (batch, sequence length), "
            f"got {tuple(position_ids.shape)}."
        )
    if not torch.compiler.is_compiling() and position_ids.numel() and int(position_ids.min()) < 0:
        raise ValueError(f"`{name}` must not hold negative positions, got {int(position_ids.min())}.")


__all__ = [
    "IGNORE_INDEX",
    "check_attention_mask",
    "check_forward_kwargs",
    "check_mask_positions",
    "check_not_empty",
    "check_pixel_values",
    "check_position_ids",
    "check_shape",
    "check_token_ids",
    "output_flags",
    "resolve_return_dict",
    "token_shape",
]
