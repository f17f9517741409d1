"""Tiny Transformer configs and batches shared by the Transformer tests."""

import torch

from hf_visiontx import VtxTransformerConfig

VOCAB_SIZE = 99
PAD, BOS, EOS = 0, 1, 2
# The sizes of the tiny models, shared with the transformers oracles the tests compare against (Marian).
TINY_SIZES = dict(vocab_size=VOCAB_SIZE, d_model=32, max_position_embeddings=64) | {
    f"{stack}_{field}": value
    for stack in ("encoder", "decoder")
    for field, value in (("layers", 2), ("attention_heads", 4), ("ffn_dim", 37))
}


def tiny_transformer_config(**overrides) -> VtxTransformerConfig:
    """Hidden 32, 2+2 layers, 4 heads, vocabulary 99: small enough for CPU tests, wide enough to be meaningful."""
    dropouts = dict(dropout=0.1, attention_dropout=0.1, activation_dropout=0.1)
    return VtxTransformerConfig(**(TINY_SIZES | dropouts | overrides))


def padded_source_batch(seed: int = 0, batch: int = 3, length: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ids ending in EOS with right padding of different lengths per row, and the matching mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB_SIZE, (batch, length), generator=generator)
    lengths = [length - 3 * (row % 3) for row in range(batch)]  # 9, 6, 3, 9, ...
    attention_mask = torch.zeros(batch, length, dtype=torch.long)
    for row, row_length in enumerate(lengths):
        attention_mask[row, :row_length] = 1
        input_ids[row, row_length - 1] = EOS
        input_ids[row, row_length:] = PAD
    return input_ids, attention_mask


def target_labels(seed: int = 1, batch: int = 3, length: int = 6) -> torch.Tensor:
    """Labels with -100 on the padded tail of some rows."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(3, VOCAB_SIZE, (batch, length), generator=generator)
    labels[1, 4:] = -100
    return labels
