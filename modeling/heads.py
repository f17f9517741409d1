"""The task heads ViT and Swin share: image classification (forward pass and loss) and SimMIM's masked image
modeling (reconstruction head and loss). Imported with a single-dot import, so the saved remote code of each vision
model carries this file along."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from .input_checks import resolve_return_dict


def linear_classifier(hidden_size: int, num_labels: int) -> nn.Module:
    """The classifier on the pooled representation: a linear layer to `num_labels` logits (the identity for 0)."""
    return nn.Linear(hidden_size, num_labels) if num_labels > 0 else nn.Identity()


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
    carried = {
        name: getattr(outputs, name) for name in output_class.__dataclass_fields__ if name not in ("loss", "logits")
    }
    output = output_class(loss=loss, logits=logits, **carried)
    return output if resolve_return_dict(model.config, return_dict) else output.to_tuple()


def classification_loss(
    model: nn.Module,
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor | None:
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


def simmim_decoder(hidden_size: int, encoder_stride: int, num_channels: int) -> nn.Sequential:
    """SimMIM's reconstruction head: a 1x1 convolution to `encoder_stride`^2 x `num_channels` values per token and a
    pixel shuffle that lays them out as the token's `encoder_stride` x `encoder_stride` pixels.

    [batch, hidden_size, rows, cols] -> [batch, num_channels, rows * encoder_stride, cols * encoder_stride].
    """
    return nn.Sequential(
        nn.Conv2d(hidden_size, encoder_stride**2 * num_channels, kernel_size=1),
        nn.PixelShuffle(encoder_stride),
    )


def masked_pixel_l1_loss(
    pixel_values: torch.Tensor,
    reconstruction: torch.Tensor,
    bool_masked_pos: torch.Tensor,
    patch_grid: tuple[int, int],
    patch_size: int,
) -> torch.Tensor:
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


__all__ = ["classification_loss", "classify_images", "linear_classifier", "masked_pixel_l1_loss", "simmim_decoder"]
