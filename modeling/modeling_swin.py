"""The Swin Transformer of Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", https://arxiv.org/abs/2103.14030.

An image is cut into 4x4 patches (48 values per token) and linearly embedded to C channels. Four stages follow, at
H/4, H/8, H/16 and H/32: each holds Swin blocks that alternate W-MSA (attention inside non-overlapping M x M
windows) and SW-MSA (windows shifted by M/2), and each stage after the first starts with a patch merging that
concatenates 2x2 neighbours (4C) and projects them to 2C. Attention logits get a learned relative position bias.
Cost grows linearly with image area, where ViT's global attention grows with its square.

SW-MSA in one paragraph: the feature map is rolled by -shift along both axes, so that the windows of the regular
partition now straddle the old window borders. The roll also brings far-apart edge strips next to each other in
the last row and column of windows; the mask keeps tokens that came from different regions (there are 9: 3 strips
along each axis) from attending to each other, so each window computes exactly the attention of the shifted
window it stands for, at the cost of W-MSA. Rolling back by +shift restores the layout.

Reading order: the window arithmetic (`window_partition`, `shifted_window_attention_mask`,
`relative_position_index`), `VtxSwinAttention`, `VtxSwinBlock`, `VtxSwinPatchMerging`, `VtxSwinStage`, then the
models. This file imports only torch, transformers and its siblings, so it travels with a saved model as
Hub remote code.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.backbone_utils import BackboneMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BackboneOutput,
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    MaskedImageModelingOutput,
)

from .attention import SwitchableAttentionMixin, attend, split_heads
from .configuration_swin import VtxSwinConfig
from .fast_paths import BoundedTensorCache, linear
from .feed_forward import VtxMLP
from .heads import ImageClassificationHead, MaskedImageModelingHead, linear_classifier, simmim_decoder
from .hub_mixin import VtxHubMixin
from .image_tokens import grid_positions, mask_patches, patch_tokens, to_feature_map
from .input_checks import check_forward_kwargs, check_pixel_values, output_flags, resolve_return_dict

# Added to the attention logits of token pairs that must not attend to each other (as the reference does; it stays
# finite in float16 and bfloat16, and exp(-100) is zero in float32).
MASKED_LOGIT = -100.0


def window_partition(features: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cut a feature map into non-overlapping square windows.

    Args:
        features: [batch, height, width, channels], height and width multiples of `window_size`.
    Returns:
        [batch * num_windows, window_size, window_size, channels], windows in row-major order per image.
    """
    batch, height, width, channels = features.shape
    rows, cols = height // window_size, width // window_size
    features = features.view(batch, rows, window_size, cols, window_size, channels)  # [B, r, M, c, M, C]
    windows = features.transpose(2, 3)  # [B, r, c, M, M, C]
    return windows.reshape(batch * rows * cols, window_size, window_size, channels)  # [B*r*c, M, M, C]


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Put windows back together: the inverse of `window_partition`.

    Args:
        windows: [batch * num_windows, window_size, window_size, channels].
    Returns:
        [batch, height, width, channels].
    """
    rows, cols = height // window_size, width // window_size
    batch, channels = windows.shape[0] // (rows * cols), windows.shape[-1]
    windows = windows.view(batch, rows, cols, window_size, window_size, channels)  # [B, r, c, M, M, C]
    return windows.transpose(2, 3).reshape(batch, height, width, channels)  # [B, H, W, C]


def shifted_region_ids(
    height: int, width: int, window_size: int, shift_size: int, device: torch.device | None = None
) -> torch.Tensor:
    """Which of the 9 regions each position of the rolled (shifted) feature map came from.

    Along each axis of length L, the rolled map holds three strips: [0, L - M) (the interior), [L - M, L - s)
    and [L - s, L) (the strip that wrapped around from the opposite border). Region id = 3 * row strip + column
    strip.

    Args:
        height, width: size of the (padded) feature map, multiples of `window_size`.
    Returns:
        [height, width] long tensor of region ids in 0..8.
    """
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    row_strip = (rows >= height - window_size).long() + (rows >= height - shift_size).long()  # [H] in 0..2
    col_strip = (cols >= width - window_size).long() + (cols >= width - shift_size).long()  # [W] in 0..2
    return row_strip[:, None] * 3 + col_strip[None, :]  # [H, W]


def shifted_window_attention_mask(
    height: int,
    width: int,
    window_size: int,
    shift_size: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The additive attention mask of SW-MSA: 0 where two tokens of a window came from the same region,
    `MASKED_LOGIT` elsewhere.

    Args:
        height, width: size of the (padded) feature map, multiples of `window_size`.
    Returns:
        [num_windows, window_size ** 2, window_size ** 2] in `dtype`.
    """
    regions = shifted_region_ids(height, width, window_size, shift_size, device)  # [H, W]
    window_regions = window_partition(regions[None, :, :, None], window_size)  # [nW, M, M, 1]
    window_regions = window_regions.reshape(-1, window_size * window_size)  # [nW, M*M]
    different = window_regions[:, :, None] != window_regions[:, None, :]  # [nW, M*M, M*M]
    return torch.zeros(different.shape, dtype=dtype, device=device).masked_fill(different, MASKED_LOGIT)


def relative_position_index(window_size: int, table_window_size: int | None = None) -> torch.Tensor:
    """Index into the relative position bias table for every (query, key) pair of a window.

    For tokens at (y1, x1) and (y2, x2) the offsets dy = y1 - y2 and dx = x1 - x2 lie in [-(M - 1), M - 1];
    adding M - 1 makes them non-negative, and (dy + M - 1) * (2M - 1) + (dx + M - 1) numbers the (2M - 1)^2
    possible offsets, the rows of the table.

    Args:
        window_size: the side m of the window attention runs on.
        table_window_size: the side M the (2M - 1)^2-row table was built for (default m). A smaller window (a
            feature map smaller than the configured window) reads the subset of rows its offsets need.
    Returns:
        [m * m, m * m] long tensor.
    """
    table_window_size = table_window_size or window_size
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(
        1
    )  # [2, m*m]: (y, x) of each token
    offsets = coords[:, :, None] - coords[:, None, :] + (table_window_size - 1)  # [2, m*m, m*m], non-negative
    return offsets[0] * (2 * table_window_size - 1) + offsets[1]  # [m*m, m*m]


def fits_whole_windows(height: int, width: int, window_size: int) -> bool:
    """Whether an (height, width) map is tiled by whole windows, so needs no padding. False for symbolic sizes
    (`torch.export` with a dynamic image size), which take the padding path whatever their value."""
    return isinstance(height, int) and isinstance(width, int) and height % window_size == width % window_size == 0


def effective_window(grid: tuple[int, int], window_size: int, shift_size: int) -> tuple[int, int]:
    """(window, shift) for a feature map: a map no larger than the window is attended as one window, unshifted
    (as the reference implementation does)."""
    if min(grid) <= window_size:
        return min(grid), 0
    return window_size, shift_size


@dataclass
class VtxSwinModelOutput(BaseModelOutputWithPooling):
    """`BaseModelOutputWithPooling` plus `reshaped_hidden_states`: the hidden states as NCHW feature maps.

    hidden_states / reshaped_hidden_states: the embedding output, then each stage's output, as [batch, tokens, C]
        and [batch, C, height, width].
    """

    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class VtxSwinImageClassifierOutput(ImageClassifierOutput):
    """`ImageClassifierOutput` plus `reshaped_hidden_states`, as the encoder returns them (the fields of
    transformers' `SwinImageClassifierOutput`)."""

    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class VtxSwinMaskedImageModelingOutput(MaskedImageModelingOutput):
    """`MaskedImageModelingOutput` plus `reshaped_hidden_states`, as the encoder returns them (the fields of
    transformers' `SwinMaskedImageModelingOutput`)."""

    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


class VtxSwinDropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, drop a residual branch for a random subset of samples and
    scale the rest by 1 / keep probability."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[batch, ...] -> same shape."""
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.dim() - 1)  # one draw per sample
        mask = torch.empty(shape, dtype=hidden_states.dtype, device=hidden_states.device).bernoulli_(keep)
        return hidden_states * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class VtxSwinPatchEmbeddings(nn.Module):
    """Patch partition + linear embedding: P x P patches (padded at the right and bottom to whole patches), each
    projected to C channels by a convolution with kernel = stride = P."""

    def __init__(self, config: VtxSwinConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.projection = nn.Conv2d(config.num_channels, config.embed_dim, config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[batch, C_in, H, W] -> patch embeddings as a map [batch, C, h, w], (h, w) = (ceil(H / P), ceil(W / P)).

        One tensor out, so that hooks on the input embedding (PEFT's `enable_input_require_grads`) work."""
        height, width = pixel_values.shape[2:]
        if not fits_whole_windows(height, width, self.patch_size):  # (F.pad would copy the image even for zero
            # padding, and the convolution would keep the copy for its backward pass)
            pad_bottom, pad_right = (-height) % self.patch_size, (-width) % self.patch_size
            pixel_values = F.pad(pixel_values, (0, pad_right, 0, pad_bottom))  # [B, C_in, h * P, w * P]
        return self.projection(pixel_values)  # [B, C, h, w]


class VtxSwinEmbeddings(nn.Module):
    """Patch embeddings, LayerNorm, optional absolute positions and the optional SimMIM mask token."""

    def __init__(self, config: VtxSwinConfig, use_mask_token: bool = False):
        super().__init__()
        self.config = config
        self.patch_embeddings = VtxSwinPatchEmbeddings(config)
        height, width = config.image_height_width
        self.grid_size = (-(-height // config.patch_size), -(-width // config.patch_size))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim)) if use_mask_token else None
        self.position_embeddings = None
        if config.use_absolute_embeddings:
            self.position_embeddings = nn.Parameter(
                torch.zeros(1, self.grid_size[0] * self.grid_size[1], config.embed_dim)
            )
        self.norm = nn.LayerNorm(config.embed_dim)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Token embeddings [batch, h * w, C] of an image batch, and the patch grid (h, w)."""
        check_pixel_values(pixel_values, self.config.num_channels, self.config.patch_size)
        patch_map = self.patch_embeddings(pixel_values.to(self.norm.weight.dtype))  # [B, C, h, w]
        embeddings, grid = patch_tokens(patch_map)  # [B, h*w, C]
        embeddings = self.norm(embeddings)
        if bool_masked_pos is not None:
            embeddings = mask_patches(embeddings, bool_masked_pos, self.mask_token, "VtxSwinForMaskedImageModeling")
        if self.position_embeddings is not None:
            embeddings = embeddings + self._positions_for(grid, interpolate_pos_encoding)
        return self.dropout(embeddings), grid

    def _positions_for(self, grid: tuple[int, int], interpolate_pos_encoding: bool) -> torch.Tensor:
        """Absolute position embeddings [1, h * w, C] for a patch grid, interpolated when asked to and needed."""
        if not interpolate_pos_encoding:
            if tuple(grid) != self.grid_size:
                raise ValueError(
                    f"The image gives a {grid[0]}x{grid[1]} patch grid but the absolute position embeddings cover "
                    f"{self.grid_size[0]}x{self.grid_size[1]} (config.image_size); pass "
                    "`interpolate_pos_encoding=True`."
                )
            return self.position_embeddings
        return grid_positions(self.position_embeddings, self.grid_size, grid)


class VtxSwinAttention(nn.Module):
    """Window multi-head self-attention with a learned relative position bias (section 3.2 of the paper):
    softmax(Q K^T / sqrt(d) + B + mask) V inside each window, with one fused Q/K/V projection."""

    def __init__(self, config: VtxSwinConfig, dim: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.window_size = config.window_size
        self.scaling = (dim // num_heads) ** -0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.qkv_proj = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.o_proj = nn.Linear(dim, dim)
        table_rows = (2 * config.window_size - 1) ** 2
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows, num_heads))  # [(2M-1)^2, heads]
        self.register_buffer("relative_position_index", relative_position_index(config.window_size), persistent=False)

    def relative_position_bias(self, window_size: int) -> torch.Tensor:
        """The bias B [1, heads, m*m, m*m] of an m x m window, read from the table."""
        if window_size == self.window_size:
            index = self.relative_position_index  # [M*M, M*M]
        else:  # a map smaller than the window: the offsets of an m-window are a subset of the table's
            index = relative_position_index(window_size, self.window_size).to(self.relative_position_index.device)
        bias = self.relative_position_bias_table[index]  # [m*m, m*m, heads]
        return bias.permute(2, 0, 1).unsqueeze(0)  # [1, heads, m*m, m*m]

    def forward(
        self, windows: torch.Tensor, window_size: int, shift_mask: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend within each window.

        Args:
            windows: [batch * num_windows, m * m, dim] tokens, window by window.
            shift_mask: [num_windows, m * m, m * m] SW-MSA mask, or None for W-MSA.
            output_attentions: compute with eager attention and return the probabilities.
        Returns:
            [batch * num_windows, m * m, dim], and the probabilities [batch * num_windows, heads, m * m, m * m] when
            `output_attentions` is set or attention runs eager (None otherwise).
        """
        batch_windows, tokens, dim = windows.shape
        query, key, value = split_heads(linear(self.qkv_proj, windows), 3, self.num_heads)  # 3 x [B*nW, H, m*m, d]
        bias = self.relative_position_bias(window_size).to(windows.dtype)  # [1, H, m*m, m*m]
        if shift_mask is not None:
            num_windows = shift_mask.shape[0]
            bias = bias.unsqueeze(1) + shift_mask[None, :, None]  # [1, nW, H, m*m, m*m]
            bias = bias.expand(batch_windows // num_windows, -1, -1, -1, -1)  # [B, nW, H, m*m, m*m]
            bias = bias.reshape(batch_windows, self.num_heads, tokens, tokens)  # [B*nW, H, m*m, m*m]
        attn_output, attn_weights = attend(self, query, key, value, bias, output_attentions)  # [B*nW, m*m, H, d]
        attn_output = attn_output.reshape(batch_windows, tokens, dim)  # [B*nW, m*m, H, d] -> [B*nW, m*m, dim]
        return linear(self.o_proj, attn_output), attn_weights


class VtxSwinBlock(GradientCheckpointingLayer):
    """One Swin block (equation 3): x + DropPath((S)W-MSA(LN(x))), then x + DropPath(MLP(LN(x))).

    Args:
        dim: channels C of the stage.
        num_heads: attention heads of the stage.
        shift_size: 0 for W-MSA, M / 2 for SW-MSA.
        drop_path: stochastic depth rate of this block.
    """

    def __init__(self, config: VtxSwinConfig, dim: int, num_heads: int, shift_size: int, drop_path: float):
        super().__init__()
        self.window_size = config.window_size
        self.shift_size = shift_size
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = VtxSwinAttention(config, dim, num_heads)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = VtxMLP(dim, int(dim * config.mlp_ratio), config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path = VtxSwinDropPath(drop_path)
        self.shift_masks = BoundedTensorCache()  # SW-MSA masks by (size, window, shift, dtype, device); see fast_paths

    def forward(
        self, hidden_states: torch.Tensor, grid: tuple[int, int], output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[batch, h * w, dim] on an (h, w) grid -> same shape, and the attention probabilities (see
        `VtxSwinAttention`).

        Every size is spelled out from the window counts (no -1, padding as whole windows minus the map), so that
        `torch.export` with a symbolic image size proves the reshapes at once instead of searching for a proof.
        """
        height, width = grid
        batch, _, dim = hidden_states.shape
        window, shift = effective_window(grid, self.window_size, self.shift_size)
        rows, cols = (height + window - 1) // window, (width + window - 1) // window  # windows, padding included
        padded_height, padded_width, num_windows = rows * window, cols * window, batch * rows * cols
        features = self.layernorm_before(hidden_states).view(batch, height, width, dim)  # [B, h, w, C]
        if not fits_whole_windows(height, width, window):  # (F.pad would copy the map even for zero padding)
            features = F.pad(features, (0, 0, 0, padded_width - width, 0, padded_height - height))  # [B, Hp, Wp, C]
        if shift:  # cyclic shift
            features = torch.roll(features, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(features, window).reshape(num_windows, window * window, dim)  # [B*nW, m*m, C]
        mask = self.shift_mask(padded_height, padded_width, window, shift, features.dtype, features.device)
        attended, attn_weights = self.attention(windows, window, mask, output_attentions)
        attended = attended.view(num_windows, window, window, dim)  # [B*nW, m*m, C] -> [B*nW, m, m, C]
        features = window_reverse(attended, window, padded_height, padded_width)  # [B, Hp, Wp, C]
        if shift:  # reverse cyclic shift
            features = torch.roll(features, shifts=(shift, shift), dims=(1, 2))
        features = features[:, :height, :width].reshape(batch, height * width, dim)  # crop the padding
        hidden_states = hidden_states + self.drop_path(self.dropout(features))
        mlp_output = self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states + self.drop_path(mlp_output), attn_weights

    def shift_mask(
        self, height: int, width: int, window_size: int, shift_size: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor | None:
        """The SW-MSA mask for a padded (height, width) map (`shifted_window_attention_mask`), None for W-MSA."""
        if shift_size == 0:
            return None
        return self.shift_masks.get(
            (height, width, window_size, shift_size, dtype, device),
            lambda: shifted_window_attention_mask(height, width, window_size, shift_size, dtype, device),
        )


class VtxSwinPatchMerging(nn.Module):
    """Patch merging: concatenate each 2x2 group of neighbours (4C), LayerNorm, linear to 2C; the resolution
    halves (odd sizes are padded)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, hidden_states: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        """[batch, h * w, C] -> [batch, ceil(h/2) * ceil(w/2), 2C] and the new grid."""
        height, width = grid
        batch, _, dim = hidden_states.shape
        rows, cols = (height + 1) // 2, (width + 1) // 2
        features = hidden_states.view(batch, height, width, dim)  # [B, h, w, C]
        features = F.pad(features, (0, 0, 0, 2 * cols - width, 0, 2 * rows - height))  # [B, 2r, 2c, C], even sizes
        features = features.view(batch, rows, 2, cols, 2, dim)  # [B, r, row parity, c, column parity, C]
        # neighbours (0,0), (1,0), (0,1), (1,1) of each 2x2 group, in the reference's order (column parity major)
        merged = features.permute(0, 1, 3, 4, 2, 5).reshape(batch, rows * cols, 4 * dim)  # [B, r*c, 4C]
        new_grid = (rows, cols)
        return linear(self.reduction, self.norm(merged)), new_grid


class VtxSwinStage(nn.Module):
    """One stage: its blocks (alternating W-MSA and SW-MSA), then the patch merging that ends every stage but the
    last.

    Args:
        index: the stage's place, from 0; its width is embed_dim * 2^index.
        drop_paths: the stochastic depth rate of each of its blocks.
    """

    def __init__(self, config: VtxSwinConfig, index: int, drop_paths: list[float]):
        super().__init__()
        dim = config.embed_dim * 2**index
        self.blocks = nn.ModuleList(
            VtxSwinBlock(
                config,
                dim,
                config.num_heads[index],
                0 if block % 2 == 0 else config.window_size // 2,
                drop_paths[block],
            )
            for block in range(config.depths[index])
        )
        is_last = index == len(config.depths) - 1
        self.downsample = None if is_last else VtxSwinPatchMerging(dim)

    def forward(
        self, hidden_states: torch.Tensor, grid: tuple[int, int], output_attentions: bool = False
    ) -> tuple[torch.Tensor, tuple[int, int], torch.Tensor, tuple[torch.Tensor | None, ...]]:
        """Run the blocks on [batch, h * w, C] tokens of an (h, w) grid, then merge patches.

        Returns:
            the stage's output [batch, h' * w', C'] on its grid (h', w') (halved and 2C after a patch merging), the
            blocks' output [batch, h * w, C] before the merging, and each block's attention probabilities (see
            `VtxSwinAttention`).
        """
        attentions = ()
        for block in self.blocks:
            hidden_states, attn_weights = block(hidden_states, grid, output_attentions)
            attentions += (attn_weights,)
        before_downsampling = hidden_states
        if self.downsample is not None:
            hidden_states, grid = self.downsample(hidden_states, grid)
        return hidden_states, grid, before_downsampling, attentions


class VtxSwinPreTrainedModel(SwitchableAttentionMixin, VtxHubMixin, PreTrainedModel):
    """Weight initialisation and the class-level contract shared by the Swin models."""

    config: VtxSwinConfig
    base_model_prefix = "swin"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _input_embed_layer = "patch_embeddings"  # get/set_input_embeddings find `embeddings.patch_embeddings`
    supports_gradient_checkpointing = True
    _no_split_modules = ["VtxSwinEmbeddings", "VtxSwinBlock"]
    _supports_sdpa = True
    _supports_flash_attn = False  # the bias + shift mask is an arbitrary additive mask
    _supports_flex_attn = False
    _can_compile_fullgraph = True

    def _init_weights(self, module: nn.Module) -> None:
        """Truncated-normal linear weights and bias tables, rebuilt relative position index, zero mask token."""
        super()._init_weights(module)
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, VtxSwinAttention):
            init.trunc_normal_(module.relative_position_bias_table, std=self.config.initializer_range)
            init.copy_(module.relative_position_index, relative_position_index(module.window_size))
        elif isinstance(module, VtxSwinEmbeddings):
            if module.mask_token is not None:
                init.zeros_(module.mask_token)
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)


class VtxSwinModel(VtxSwinPreTrainedModel):
    """The bare Swin encoder: final token states, their average (the pooled representation), and per-stage maps."""

    def __init__(
        self,
        config: VtxSwinConfig,
        add_pooling_layer: bool = True,
        use_mask_token: bool = False,
        add_final_layernorm: bool = True,
    ):
        """`add_pooling_layer=False` skips the average pooling (for heads that do not pool); `use_mask_token` adds
        SimMIM's learned mask token; `add_final_layernorm=False` leaves out the LayerNorm on the last stage (the
        backbone normalises each feature map itself, and an unused layer would trouble DDP)."""
        super().__init__(config)
        self.embeddings = VtxSwinEmbeddings(config, use_mask_token=use_mask_token)
        total = sum(config.depths)
        rates = [config.drop_path_rate * block / max(total - 1, 1) for block in range(total)]  # linear in depth
        starts = [sum(config.depths[:index]) for index in range(len(config.depths))]
        self.stages = nn.ModuleList(
            VtxSwinStage(config, index, rates[start : start + depth])
            for index, (start, depth) in enumerate(zip(starts, config.depths, strict=True))
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if add_final_layernorm else None
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.BoolTensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_hidden_states_before_downsampling: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> VtxSwinModelOutput | tuple:
        """Encode an image batch of any size.

        Args:
            pixel_values: [batch, num_channels, height, width] normalised pixels.
            bool_masked_pos: [batch, num_patches], True where a patch is replaced by the mask token.
            interpolate_pos_encoding: with absolute position embeddings, resize them to the image's patch grid.
            output_attentions: also return every block's attention probabilities (computed with eager attention
                for this call, whatever the implementation).
            output_hidden_states_before_downsampling: record each stage's states before its patch merging (the
                backbone's feature maps at strides 4, 8, 16, 32) instead of after.
            **kwargs: transformers' shared keyword arguments (`TransformersKwargs`, for example the
                `num_items_in_batch` that `Trainer` passes through `VisionEncoderDecoderModel`) are accepted and have
                no effect; any other name raises a `TypeError`.
        Returns:
            `VtxSwinModelOutput`: `last_hidden_state` [batch, tokens, C_last] after the final LayerNorm,
            `pooler_output` [batch, C_last] (their average), hidden states as tokens and as NCHW maps, attentions
            [batch * windows, heads, m*m, m*m] per block (eager only).
        """
        check_forward_kwargs(self, kwargs)
        output_attentions, output_hidden_states = output_flags(self.config, output_attentions, output_hidden_states)
        hidden_states, grid = self.embeddings(pixel_values, bool_masked_pos, interpolate_pos_encoding)

        all_hidden_states = (hidden_states,) if output_hidden_states else ()
        all_maps = (to_feature_map(hidden_states, grid),) if output_hidden_states else ()
        all_attentions = ()
        for stage in self.stages:
            grid_before = grid
            hidden_states, grid, before_downsampling, attentions = stage(hidden_states, grid, output_attentions)
            all_attentions += attentions if output_attentions else ()
            if output_hidden_states:
                recorded, recorded_grid = (
                    (before_downsampling, grid_before)
                    if output_hidden_states_before_downsampling
                    else (hidden_states, grid)
                )
                all_hidden_states += (recorded,)
                all_maps += (to_feature_map(recorded, recorded_grid),)
        sequence_output = self.layernorm(hidden_states) if self.layernorm is not None else hidden_states
        pooled = sequence_output.mean(dim=1) if self.add_pooling_layer else None  # [B, C_last]
        output = VtxSwinModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden_states or None,
            reshaped_hidden_states=all_maps or None,
            attentions=all_attentions or None,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


class VtxSwinForImageClassification(ImageClassificationHead, VtxSwinPreTrainedModel):
    """Swin with a linear classifier on the average of the final token states; `forward` as in
    `heads.ImageClassificationHead`, with the hidden states also as NCHW maps (`reshaped_hidden_states`)."""

    classifier_output = VtxSwinImageClassifierOutput

    def __init__(self, config: VtxSwinConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.swin = VtxSwinModel(config)
        self.classifier = linear_classifier(config.hidden_size, config.num_labels)
        self.post_init()


class VtxSwinForMaskedImageModeling(MaskedImageModelingHead, VtxSwinPreTrainedModel):
    """SimMIM (Xie et al. 2022) on Swin: masked patches get a learned token; a 1x1 convolution + pixel shuffle
    reconstructs the pixels from the last stage; the loss is the L1 error on masked pixels. `forward` as in
    `heads.MaskedImageModelingHead`: the reconstruction is the last grid times `encoder_stride`, and the hidden
    states come also as NCHW maps (`reshaped_hidden_states`)."""

    reconstruction_output = VtxSwinMaskedImageModelingOutput

    def __init__(self, config: VtxSwinConfig):
        super().__init__(config)
        self.swin = VtxSwinModel(config, add_pooling_layer=False, use_mask_token=True)
        self.decoder = simmim_decoder(config.hidden_size, config.encoder_stride, config.num_channels)
        self.post_init()

    def patch_layout(self, pixel_values: torch.Tensor) -> tuple[tuple[int, int], int]:
        """The (rows, cols) patch grid of these images (partial patches counted) and the patch side."""
        patch = self.config.patch_size
        return (-(-pixel_values.shape[2] // patch), -(-pixel_values.shape[3] // patch)), patch

    def token_map(self, last_hidden_state: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """The last stage's tokens as a feature map [B, C, rows, cols] (each stage pads to whole windows)."""
        stride = self.config.encoder_stride
        last_grid = (-(-pixel_values.shape[2] // stride), -(-pixel_values.shape[3] // stride))
        return to_feature_map(last_hidden_state, last_grid)


class VtxSwinBackbone(BackboneMixin, VtxSwinPreTrainedModel):
    """Swin as a backbone for detection and segmentation heads (`AutoBackbone`): NCHW feature maps of the stages
    in `config.out_features` ("stem" at stride 4, "stage1".."stage4" at strides 4, 8, 16, 32), each normalised
    by a LayerNorm of its own."""

    def __init__(self, config: VtxSwinConfig):
        super().__init__(config)
        self.num_features = [config.embed_dim] + [config.embed_dim * 2**i for i in range(len(config.depths))]
        self.swin = VtxSwinModel(config, add_pooling_layer=False, add_final_layernorm=False)
        self.hidden_states_norms = nn.ModuleDict(
            {stage: nn.LayerNorm(channels) for stage, channels in zip(self.out_features, self.channels, strict=True)}
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BackboneOutput | tuple:
        """Feature maps [batch, C_stage, H / stride, W / stride] for each requested stage. `kwargs` as in
        `VtxSwinModel.forward`."""
        outputs = self.swin(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=True,
            output_hidden_states_before_downsampling=True,
            **kwargs,
        )
        feature_maps = ()
        for stage, feature_map in zip(self.stage_names, outputs.reshaped_hidden_states, strict=True):
            if stage in self.out_features:
                normed = self.hidden_states_norms[stage](feature_map.permute(0, 2, 3, 1))  # NCHW -> NHWC, norm C
                feature_maps += (normed.permute(0, 3, 1, 2).contiguous(),)  # NHWC -> NCHW
        wants_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output = BackboneOutput(
            feature_maps=feature_maps,
            hidden_states=outputs.reshaped_hidden_states if wants_hidden else None,
            attentions=outputs.attentions,
        )
        return output if resolve_return_dict(self.config, return_dict) else output.to_tuple()


__all__ = [
    "MASKED_LOGIT",
    "VtxSwinBackbone",
    "VtxSwinForImageClassification",
    "VtxSwinForMaskedImageModeling",
    "VtxSwinImageClassifierOutput",
    "VtxSwinMaskedImageModelingOutput",
    "VtxSwinModel",
    "VtxSwinPreTrainedModel",
    "relative_position_index",
    "shifted_region_ids",
    "shifted_window_attention_mask",
    "window_partition",
    "window_reverse",
]
