"""Tiny ViT configs and batches shared by the ViT tests."""

import torch

from hf_visiontx import VtxViTConfig

NUM_LABELS = 5
# The sizes of the tiny models, shared with the transformers oracles the tests compare against (ViTConfig).
TINY_SIZES = dict(image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
TINY_SIZES["intermediate_size"] = 37


def tiny_vit_config(**overrides) -> VtxViTConfig:
    """Image 32, patch 4 (an 8x8 grid), hidden 32, 2 layers, 4 heads."""
    dropouts = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return VtxViTConfig(**(TINY_SIZES | dropouts | {"num_labels": NUM_LABELS} | overrides))


def pixel_batch(batch: int = 3, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def masked_positions(batch: int, num_patches: int, seed: int = 0) -> torch.Tensor:
    """About half the patches masked, at least one per image."""
    mask = torch.rand(batch, num_patches, generator=torch.Generator().manual_seed(seed)) < 0.5
    mask[:, 0] = True
    return mask
