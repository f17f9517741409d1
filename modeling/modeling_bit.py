"""The BiT ResNet of Kolesnikov et al. 2020, "Big Transfer (BiT): General Visual Representation Learning", as the
feature extractor of ViT's hybrid variant (Dosovitskiy et al. 2021, section 3.1, "Hybrid Architecture").

Paper: https://arxiv.org/abs/1912.11370

A ResNet whose convolutions are weight-standardised and whose normalisation is GroupNorm. The hybrid ViT cuts its
patches from the ResNet's feature map instead of the image. Reading order: `VtxWeightStandardizedConv2d`,
`VtxBitBottleneck`, `VtxBitResNet`. This file imports only torch, so it travels as Hub remote code with a hybrid
ViT's model file, which imports it.
"""

import torch
import torch.nn.functional as F
from torch import nn


class VtxWeightStandardizedConv2d(nn.Conv2d):
    """A convolution whose kernel is standardised per output channel (zero mean, unit variance) before use.

    Weight standardisation (Qiao et al. 2019) with GroupNorm is what lets BiT's ResNets train and transfer without
    batch statistics.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[batch, in_channels, H, W] -> [batch, out_channels, H / stride, W / stride]."""
        kernel = self.weight.float()  # standardised in float32: half precision loses the small variances
        variance, mean = torch.var_mean(kernel, dim=(1, 2, 3), keepdim=True, correction=0)
        weight = ((kernel - mean) * torch.rsqrt(variance + 1e-8)).to(self.weight.dtype)
        return F.conv2d(hidden_states, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _standardized_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return VtxWeightStandardizedConv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
    )


class VtxBitBottleneck(nn.Module):
    """A ResNet bottleneck block (1x1 reduce, 3x3 with the stride, 1x1 expand) with weight-standardised
    convolutions and GroupNorm; a projection shortcut where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, num_groups: int):
        super().__init__()
        middle = out_channels // 4
        self.conv1 = _standardized_conv(in_channels, middle, 1)
        self.norm1 = nn.GroupNorm(num_groups, middle)
        self.conv2 = _standardized_conv(middle, middle, 3, stride)
        self.norm2 = nn.GroupNorm(num_groups, middle)
        self.conv3 = _standardized_conv(middle, out_channels, 1)
        self.norm3 = nn.GroupNorm(num_groups, out_channels)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _standardized_conv(in_channels, out_channels, 1, stride), nn.GroupNorm(num_groups, out_channels)
            )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[batch, in_channels, H, W] -> [batch, out_channels, H / stride, W / stride]."""
        shortcut = hidden_states if self.shortcut is None else self.shortcut(hidden_states)
        hidden_states = F.relu(self.norm1(self.conv1(hidden_states)))
        hidden_states = F.relu(self.norm2(self.conv2(hidden_states)))
        hidden_states = self.norm3(self.conv3(hidden_states))
        return F.relu(hidden_states + shortcut)


class VtxBitResNet(nn.Module):
    """The hybrid's feature extractor, a BiT ResNet: a stem (7x7 stride-2 convolution, GroupNorm, ReLU, 3x3
    stride-2 max-pool) and stages of bottleneck blocks, the first stage at stride 1 and each later one halving
    the resolution: output stride 4 * 2 ** (stages - 1)."""

    def __init__(self, num_channels: int, depths: list[int], width: int, num_groups: int):
        super().__init__()
        self.stem = nn.Sequential(
            _standardized_conv(num_channels, width, 7, stride=2),
            nn.GroupNorm(num_groups, width),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, in_channels = [], width
        for index, depth in enumerate(depths):
            out_channels = 4 * width * 2**index
            blocks = []
            for block in range(depth):
                stride = 2 if block == 0 and index > 0 else 1
                blocks.append(VtxBitBottleneck(in_channels, out_channels, stride, num_groups))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = in_channels

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[batch, C, H, W] -> feature map [batch, out_channels, H / stride, W / stride]."""
        return self.stages(self.stem(pixel_values))


__all__ = ["VtxBitBottleneck", "VtxBitResNet", "VtxWeightStandardizedConv2d"]
