"""Faster equivalents of transformers' minimum-length logits processors, used by our `generate()`.

transformers' `MinLengthLogitsProcessor` and `MinNewTokensLengthLogitsProcessor` rebuild the end-of-sequence mask
over the whole vocabulary at every step (`arange` + `isin` + `where`), even once the minimum length is reached: about
0.5 ms per step each for a 32K vocabulary on this project's 2-core CPU, ~6% of a greedy step of a base-size model
at batch 1.
The subclasses here build the mask once per vocabulary size and device, and return the same scores: -inf on the
end-of-sequence ids below the minimum length, a copy of the scores otherwise.
"""

import math

import torch
from transformers import LogitsProcessorList
from transformers.generation.logits_process import MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor


class _CachedEosMask:
    """The boolean [vocab_size] mask of the end-of-sequence ids (`self.eos_token_id`), built on first use."""

    def _eos_mask(self, scores: torch.Tensor) -> torch.Tensor:
        mask = getattr(self, "_cached_eos_mask", None)
        if mask is None or mask.shape[0] != scores.shape[-1] or mask.device != scores.device:
            vocabulary = torch.arange(scores.shape[-1], device=scores.device)  # [V]
            mask = torch.isin(vocabulary, self.eos_token_id.to(scores.device))  # [V]
            self._cached_eos_mask = mask
        return mask

    def _forbid_eos(self, scores: torch.Tensor, too_short: bool) -> torch.Tensor:
        """scores [batch, V] with -inf on the end-of-sequence ids when `too_short`; a copy of them otherwise."""
        return torch.where(self._eos_mask(scores), -math.inf, scores) if too_short else scores.clone()


class CachedMinLengthLogitsProcessor(_CachedEosMask, MinLengthLogitsProcessor):
    """`MinLengthLogitsProcessor` with its end-of-sequence mask built once."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids [batch, length], scores [batch, V] -> processed scores [batch, V]."""
        return self._forbid_eos(scores, input_ids.shape[-1] < self.min_length)


class CachedMinNewTokensLengthLogitsProcessor(_CachedEosMask, MinNewTokensLengthLogitsProcessor):
    """`MinNewTokensLengthLogitsProcessor` with its end-of-sequence mask built once."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids [batch, length], scores [batch, V] -> processed scores [batch, V]."""
        return self._forbid_eos(scores, input_ids.shape[-1] - self.prompt_length_to_skip < self.min_new_tokens)


_CACHED_EQUIVALENTS = {
    MinLengthLogitsProcessor: CachedMinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor: CachedMinNewTokensLengthLogitsProcessor,
}


def with_cached_eos_masks(processors: LogitsProcessorList) -> LogitsProcessorList:
    """Switch, in place, the processors that are exactly transformers' minimum-length ones to the subclasses above
    (same attributes, same outputs); user-supplied subclasses and other processors are left alone."""
    for processor in processors:
        cached = _CACHED_EQUIVALENTS.get(type(processor))
        if cached is not None:
            processor.__class__ = cached
    return processors
