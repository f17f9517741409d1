"""Tiny Swin configs and batches shared by the Swin tests."""

from hf_visiontx import VtxSwinConfig

NUM_LABELS = 5
# The sizes of the tiny models, shared with the transformers oracles the tests compare against (SwinConfig).
TINY_SIZES = dict(image_size=32, patch_size=2, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4)
TINY_SIZES["encoder_stride"] = 4


def tiny_swin_config(**overrides) -> VtxSwinConfig:
    """Image 32, patch 2 (a 16x16 grid), window 4, two stages (16 then 32 channels), 2 blocks each."""
    dropouts = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, drop_path_rate=0.1)
    return VtxSwinConfig(**(TINY_SIZES | dropouts | {"num_labels": NUM_LABELS} | overrides))
