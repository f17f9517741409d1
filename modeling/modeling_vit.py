"""The Vision Transformer of Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words".

Paper: https://arxiv.org/abs/2010.11929

An image [B, C, H, W] is cut into P x P patches; each patch is flattened and linearly projected to D dimensions
(a convolution with kernel = stride = P does exactly that). A learnable [CLS] token is prepended, learnable 1-D
position embeddings are added, and a stack of pre-LN Transformer encoder layers follows (equations 1-4 of the
paper). The classifier reads the final [CLS] state (or the mean of the patch states, the paper's GAP variant).

Reading order: `VtxViTPatchEmbeddings`, `VtxViTEmbeddings` (with `image_tokens.grid_positions`),
`VtxViTAttention`, `VtxViTLayer`, then the models. The hybrid's ResNet is in `modeling_bit.py`. This file imports
only torch, transformers and its siblings, so it travels with a saved model as Hub remote code.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
)

from .attention import SwitchableAttentionMixin, attend, split_heads
from .configuration_vit import VtxViTConfig
from .fast_paths import last_layer_query_tokens, linear
from .feed_forward import VtxMLP
from .heads import ImageClassificationHead, MaskedImageModelingHead, linear_classifier, simmim_decoder
from .hub_mixin import VtxHubMixin
from .image_tokens import grid_positions, interpolate_position_embeddings, mask_patches, patch_tokens
from .input_checks import check_forward_kwargs, check_pixel_values, output_flags, resolve_return_dict
from .modeling_bit import VtxBitResNet


class VtxViTPatchEmbeddings(nn.Module):
    """Cuts the image into P x P patches and projects each to D dimensions (equation 1's x_p E).

    For the hybrid, a BiT ResNet first turns the image into a feature map and the patches are taken from it.
    """

    def __init__(self, config: VtxViTConfig):
        super().__init__()
        self.backbone = None
        in_channels = config.num_channels
        if config.backbone_config is not None:
            self.backbone = VtxBitResNet(config.num_channels, **config.backbone_config)
            in_channels = self.backbone.out_channels
        self.projection = nn.Conv2d(in_channels, config.hidden_size, config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[batch, C, H, W] -> patch embeddings as a map [batch, D, rows, cols].

        One tensor out, so that hooks on the input embedding (PEFT's `enable_input_require_grads`) work."""
        features = pixel_values if self.backbone is None else self.backbone(pixel_values)
        return self.projection(features)  # [B, D, rows, cols]


class VtxViTEmbeddings(nn.Module):
    """Patch embeddings, the [CLS] token and the position embeddings (equation 1), plus the optional mask token."""

    def __init__(self, config: VtxViTConfig, use_mask_token: bool = False):
        super().__init__()
        self.config = config
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_mask_token else None
        self.patch_embeddings = VtxViTPatchEmbeddings(config)
        rows, cols = config.grid_size
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + rows * cols, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def positions_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings [1, 1 + rows * cols, D] for a patch grid, interpolated when it is not the
        training grid (always under `torch.compile` / `torch.export`, where the grid may be symbolic)."""
        patch_positions = grid_positions(self.position_embeddings[:, 1:], self.config.grid_size, grid)  # [1, N, D]
        return torch.cat([self.position_embeddings[:, :1], patch_positions], dim=1)  # [1, 1 + N, D]

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.BoolTensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Token embeddings [batch, 1 + rows * cols, D] of an image batch, and the patch grid (rows, cols)."""
        check_pixel_values(pixel_values, self.config.num_channels, self.config.token_stride)
        height, width = pixel_values.shape[2:]
        if not interpolate_pos_encoding and (height, width) != self.config.image_height_width:
            expected_height, expected_width = self.config.image_height_width
            raise ValueError(
                f"`pixel_values` are {height}x{width} pixels but the model was configured for "
                f"{expected_height}x{expected_width} (config.image_size); resize the images, or pass "
                f"`interpolate_pos_encoding=True` to interpolate the position embeddings to this size."
            )
        patch_map = self.patch_embeddings(pixel_values.to(self.cls_token.dtype))  # [B, D, rows, cols]
        embeddings, grid = patch_tokens(patch_map)  # [B, N, D]
        if bool_masked_pos is not None:
            embeddings = mask_patches(embeddings, bool_masked_pos, self.mask_token, "VtxViTForMaskedImageModeling")
        cls_tokens = self.cls_token.expand(embeddings.shape[0], -1, -1)  # [B, 1, D]
        positions = self.positions_for(grid) if interpolate_pos_encoding else self.position_embeddings  # [1, 1+N, D]
        embeddings = torch.cat([cls_tokens, embeddings], dim=1) + positions  # [B, 1 + N, D]
        return self.dropout(embeddings), grid


class VtxViTAttention(nn.Module):
    """Multi-head self-attention over all tokens, with one fused query/key/value projection."""

    def __init__(self, config: VtxViTConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.scaling = (config.hidden_size // config.num_attention_heads) ** -0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, query_tokens: int | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[batch, tokens, D] -> [batch, tokens, D], and the probabilities when `output_attentions` is set or
        attention runs eager (None otherwise).

        With `query_tokens` only the first `query_tokens` tokens attend (to all of them) and the output is
        [batch, query_tokens, D]. The projections go through `fast_paths.linear`, which calls a wrapped or quantised
        layer whole."""
        batch, tokens, hidden_size = hidden_states.shape
        query, key, value = split_heads(linear(self.qkv_proj, hidden_states), 3, self.num_heads)  # 3 x [B, H, T, Dh]
        if query_tokens is not None:
            query, tokens = query[:, :, :query_tokens], query_tokens  # [B, H, q, Dh]
        attn_output, attn_weights = attend(self, query, key, value, None, output_attentions)  # [B, q, H, Dh]
        attn_output = attn_output.reshape(batch, tokens, hidden_size)  # [B, T, H, Dh] -> [B, T, D]
        return linear(self.o_proj, attn_output), attn_weights


class VtxViTLayer(GradientCheckpointingLayer):
    """One pre-LN encoder layer (equations 2-3): x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: VtxViTConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = VtxViTAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VtxMLP(config.hidden_size, config.intermediate_size, config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, query_tokens: int | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[batch, tokens, D] -> [batch, tokens, D], and the attention probabilities (see `VtxViTAttention`).

        With `query_tokens` only the first `query_tokens` tokens are updated and returned ([batch, query_tokens, D]),
        for a last layer whose other outputs nobody reads."""
        attention_output, attn_weights = self.attention(
            self.layernorm_before(hidden_states), query_tokens, output_attentions
        )
        if query_tokens is not None:
            hidden_states = hidden_states[:, :query_tokens]  # [B, T, D] -> [B, q, D]
        hidden_states = hidden_states + self.dropout(attention_output)
        hidden_states = hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states, attn_weights


class VtxViTPreTrainedModel(SwitchableAttentionMixin, VtxHubMixin, PreTrainedModel):
    """Weight initialisation and the class-level contract shared by the ViT models."""

    config: VtxViTConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _input_embed_layer = "patch_embeddings"  # get/set_input_embeddings find `embeddings.patch_embeddings`
    supports_gradient_checkpointing = True
    _no_split_modules = ["VtxViTEmbeddings", "VtxViTLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True

    def _init_weights(self, module: nn.Module) -> None:
        """Truncated-normal linear/conv weights, [CLS] token and positions; zero mask token and biases."""
        super()._init_weights(module)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, VtxViTEmbeddings):
            init.trunc_normal_(module.position_embeddings, mean=0.0, std=self.config.initializer_range)
            init.trunc_normal_(module.cls_token, mean=0.0, std=self.config.initializer_range)
            if module.mask_token is not None:
                init.zeros_(module.mask_token)


class VtxViTModel(VtxViTPreTrainedModel):
    """The bare ViT encoder: token states after the final LayerNorm, and the pooled image representation."""

    def __init__(self, config: VtxViTConfig, use_mask_token: bool = False, add_pooling_layer: bool = True):
        """`use_mask_token` adds the learned mask token of masked image modeling; `add_pooling_layer=False` leaves
        out the pre-logits layer even when configured (heads that do not pool must not hold unused weights)."""
        super().__init__(config)
        self.embeddings = VtxViTEmbeddings(config, use_mask_token=use_mask_token)
        self.layers = nn.ModuleList(VtxViTLayer(config) for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = (
            nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), ACT2FN[config.pooler_act])
            if config.use_pooler and add_pooling_layer
            else None
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.BoolTensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        _pooled_only: bool = False,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode an image batch.

        Args:
            pixel_values: [batch, num_channels, height, width] normalised pixels.
            bool_masked_pos: [batch, num_patches], True where a patch is replaced by the mask token (models built
                with `use_mask_token=True`).
            interpolate_pos_encoding: accept any image size by resizing the position grid to the real patch grid.
            output_attentions: also return each layer's attention probabilities (computed with eager attention for
                this call, whatever the implementation).
            **kwargs: transformers' shared keyword arguments (`TransformersKwargs`, for example the
                `num_items_in_batch` that `Trainer` passes through `VisionEncoderDecoderModel`) are accepted and have
                no effect; any other name raises a `TypeError`.
        Returns:
            `BaseModelOutputWithPooling`: `last_hidden_state` [batch, 1 + num_patches, D] and `pooler_output`
            [batch, D] ([CLS] or mean of patches, through the pre-logits layer when configured).
        """
        check_forward_kwargs(self, kwargs)
        output_attentions, output_hidden_states = output_flags(self.config, output_attentions, output_hidden_states)
        hidden_states, _ = self.embeddings(pixel_values, bool_masked_pos, interpolate_pos_encoding)

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        # `_pooled_only` (private, from the classifier): a fast path may then skip the last layer's patch outputs
        last_query_tokens = last_layer_query_tokens(
            _pooled_only, self.config.pooling, output_hidden_states or output_attentions
        )
        for index, layer in enumerate(self.layers):
            query_tokens = last_query_tokens if index == len(self.layers) - 1 else None
            hidden_states, attn_weights = layer(hidden_states, query_tokens, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
        sequence_output = self.layernorm(hidden_states)
        pooled = sequence_output[:, 0] if self.config.pooling == "cls" else sequence_output[:, 1:].mean(dim=1)
        if self.pooler is not None:
            pooled = self.pooler(pooled)
        output = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


class VtxViTForImageClassification(ImageClassificationHead, VtxViTPreTrainedModel):
    """ViT with a linear classifier on the pooled representation (the MLP head of fine-tuning); `forward` as in
    `heads.ImageClassificationHead`.

    With [CLS] pooling only the [CLS] token's final state is read, so the encoder's last layer may compute that
    token alone (`fast_paths.last_layer_query_tokens`); the public `VtxViTModel` always returns every token.
    """

    encoder_options = {"_pooled_only": True}

    def __init__(self, config: VtxViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = VtxViTModel(config)
        self.classifier = linear_classifier(config.hidden_size, config.num_labels)
        self.post_init()


class VtxViTForMaskedImageModeling(MaskedImageModelingHead, VtxViTPreTrainedModel):
    """SimMIM (Xie et al. 2022): masked patches are replaced by a learned token and their pixels reconstructed by a
    1x1 convolution + pixel shuffle from the token states; the loss is the L1 error on masked pixels. `forward` as
    in `heads.MaskedImageModelingHead`: the reconstruction has the image size rounded down to whole patches."""

    def __init__(self, config: VtxViTConfig):
        super().__init__(config)
        if config.encoder_stride != config.token_stride:
            raise ValueError(
                f"`encoder_stride` ({config.encoder_stride}) must equal the token stride ({config.token_stride}) "
                "so that the reconstruction has the input's size."
            )
        self.vit = VtxViTModel(config, use_mask_token=True, add_pooling_layer=False)
        self.decoder = simmim_decoder(config.hidden_size, config.encoder_stride, config.num_channels)
        self.post_init()

    def patch_layout(self, pixel_values: torch.Tensor) -> tuple[tuple[int, int], int]:
        """The (rows, cols) token grid of these images and the pixels per token side."""
        stride = self.config.encoder_stride
        return (pixel_values.shape[2] // stride, pixel_values.shape[3] // stride), stride

    def token_map(self, last_hidden_state: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """The patch tokens (after [CLS]) as a feature map [B, D, rows, cols]."""
        (rows, cols), _ = self.patch_layout(pixel_values)
        patch_states = last_hidden_state[:, 1:]  # [B, N, D]
        return patch_states.transpose(1, 2).reshape(patch_states.shape[0], -1, rows, cols)  # [B, D, rows, cols]


__all__ = [
    "VtxViTForImageClassification",
    "VtxViTForMaskedImageModeling",
    "VtxViTModel",
    "VtxViTPreTrainedModel",
    "interpolate_position_embeddings",
]
