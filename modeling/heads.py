"""The task heads ViT and Swin share: image classification (forward pass and loss) and SimMIM's masked image
modeling (forward pass, reconstruction head and loss); each family's head class adds what is its own. Imported with a single-dot import, so the saved remote code of each vision
model carries this file along."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import ImageClassifierOutput, MaskedImageModelingOutput

from .fast_paths import linear
from .input_checks import check_shape, resolve_return_dict


def linear_classifier(hidden_size: int, num_labels: int) -> nn.Module:
    """The classifier on the pooled representation: a linear layer to `num_labels` logits (the identity for 0)."""
    return nn.Linear(hidden_size, num_labels) if num_labels > 0 else nn.Identity()


def _carried_fields(output_class: type, outputs, produced: tuple[str, ...]) -> dict:
    """The fields of `output_class` other than `produced` (hidden states, attentions, Swin's reshaped hidden states),
    copied from the encoder's `outputs` by name."""
    return {name: getattr(outputs, name) for name in output_class.__dataclass_fields__ if name not in produced}


class ImageClassificationHead:
    """The forward pass of the ViT and Swin image classifiers: encode, apply `self.classifier` to the pooled
    representation, and add the loss when `labels` are given.

    The model class sets `classifier_output` (`ImageClassifierOutput` or a subclass whose extra fields come from the
    encoder output by name) and `encoder_options` (keywords the encoder gets on every call).
    """

    classifier_output: type[ImageClassifierOutput] = ImageClassifierOutput
    encoder_options: dict = {}

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        """Class logits [batch, num_labels], and the loss when `labels` [batch] are given (cross-entropy for
        single-label classification; `config.problem_type` selects regression or multi-label, see
        `classification_loss`). `kwargs` as in the encoder's forward; their `num_items_in_batch` (from `Trainer`)
        also normalises the loss."""
        outputs = self.base_model(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **self.encoder_options,
            **kwargs,
        )
        logits = linear(self.classifier, outputs.pooler_output)  # [B, num_labels]
        loss = classification_loss(self, logits, labels, kwargs.get("num_items_in_batch"))
        carried = _carried_fields(self.classifier_output, outputs, ("loss", "logits"))
        output = self.classifier_output(loss=loss, logits=logits, **carried)
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


class MaskedImageModelingHead:
    """The forward pass of SimMIM (Xie et al. 2022) on ViT and Swin: encode with the masked patches replaced by
    the learned mask token, reconstruct the pixels from the final token map with `self.decoder`, and add the L1
    loss on the masked pixels when `bool_masked_pos` is given.

    The model class sets `reconstruction_output` (`MaskedImageModelingOutput` or a subclass) and implements
    `token_map(last_hidden_state, pixel_values)`, which returns the final tokens as a feature map for the decoder,
    and `patch_layout(pixel_values)`, the (rows, cols) patch grid `bool_masked_pos` covers and the patch side.
    """

    reconstruction_output: type[MaskedImageModelingOutput] = MaskedImageModelingOutput

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.BoolTensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedImageModelingOutput | tuple:
        """Reconstructed pixels [batch, C, H', W'], and the masked-pixel L1 loss when `bool_masked_pos`
        [batch, num_patches] is given (over the pixels input and reconstruction share). `kwargs` as in the
        encoder's forward."""
        outputs = self.base_model(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        reconstruction = self.decoder(self.token_map(outputs.last_hidden_state, pixel_values))  # [B, C, H', W']
        loss = None
        if bool_masked_pos is not None:
            patch_grid, patch_size = self.patch_layout(pixel_values)
            loss = masked_pixel_l1_loss(pixel_values, reconstruction, bool_masked_pos, patch_grid, patch_size)
        carried = _carried_fields(self.reconstruction_output, outputs, ("loss", "reconstruction"))
        output = self.reconstruction_output(loss=loss, reconstruction=reconstruction, **carried)
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


def classification_loss(
    model: nn.Module,
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor | None:
    """The loss of an image classifier, for the problem type `problem_type` names (cross-entropy, mean squared error
    or binary cross-entropy with logits), computed in float32; the labels' shape is checked for it first.

    Without `num_items_in_batch` the loss is the mean over the labelled elements. `Trainer` passes the number of
    labelled elements over all devices and accumulation steps, and then treats the loss as already normalised by it;
    so it is the summed loss divided by that number, for every problem type (transformers' own heads do this for
    single-label classification only, which misscales the other two under gradient accumulation or several
    processes). Class ids are checked to name a class (skipped under `torch.compile`, where reading the values back
    would break the graph).
    """
    if labels is None:
        return None
    num_labels = model.config.num_labels
    kind = problem_type(model.config, labels)
    check_classification_labels(labels, kind, logits.shape[0], num_labels, inferred=model.config.problem_type is None)
    checkable = kind == "single_label_classification" and labels.numel() and not torch.compiler.is_compiling()
    if checkable and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(
            f"`labels` must lie in [0, num_labels={num_labels}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    labels = labels.to(logits.device)
    if kind == "single_label_classification":
        labels = labels.reshape(-1)  # [B] or [B, 1] -> [B]
        summed = F.cross_entropy(logits.float(), labels, reduction="sum")
    elif kind == "regression":
        labels = labels.to(torch.float32).reshape(logits.shape)  # [B] (one label) or [B, num_labels]
        summed = F.mse_loss(logits.float(), labels, reduction="sum")
    else:
        labels = labels.to(torch.float32)  # [B, num_labels]
        summed = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="sum")
    if num_items_in_batch is None:
        num_items_in_batch = labels.numel()
    elif isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(summed.device)
    return summed / num_items_in_batch


PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


def problem_type(config: PreTrainedConfig, labels: torch.Tensor) -> str:
    """`config.problem_type`, or when it is unset, the problem type of this call's `labels` as transformers infers
    it: regression for one label, single-label classification for integer labels, multi-label otherwise.

    The config is never changed (transformers' own heads store the inferred type in it, so that one batch of float
    labels turns every later call into multi-label classification).
    """
    if config.problem_type is not None:
        if config.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"`config.problem_type` must be one of {PROBLEM_TYPES}, got {config.problem_type!r}.")
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def check_classification_labels(labels: torch.Tensor, kind: str, batch: int, num_labels: int, inferred: bool) -> None:
    """Raise a `ValueError` naming `labels` unless they suit the problem type `kind` for `batch` images: integer
    class ids [batch] (or [batch, 1]) for single-label classification, values [batch, num_labels] for multi-label
    classification and regression ([batch] too for regression with one label). `inferred`: `kind` was inferred
    from the labels (`config.problem_type` is unset), which the error then says."""
    hint = (
        f" (config.problem_type is unset, so {labels.dtype} labels mean {kind}; single-label classification takes "
        "integer class ids [batch])"
        if inferred and kind == "multi_label_classification"
        else ""
    )
    if kind == "single_label_classification":
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(
                f"`labels` of single-label classification must hold integer class ids, got dtype {labels.dtype}."
            )
        if labels.dim() == 2:  # [batch, 1], as transformers' heads accept it
            check_shape("labels", labels, ("batch", "1"), (batch, 1))
        else:
            check_shape("labels", labels, ("batch",), (batch,))
    elif kind == "regression" and num_labels == 1 and labels.dim() == 1:
        check_shape("labels", labels, ("batch",), (batch,))
    else:
        check_shape("labels", labels, ("batch", "num_labels"), (batch, num_labels), hint)


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


__all__ = [
    "ImageClassificationHead",
    "MaskedImageModelingHead",
    "check_classification_labels",
    "classification_loss",
    "linear_classifier",
    "masked_pixel_l1_loss",
    "problem_type",
    "simmim_decoder",
]
