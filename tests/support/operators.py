"""Which operators a run calls, as torch's profiler records them: for tests that a path calls (or no longer calls)
a library's kernel."""

from collections import Counter
from collections.abc import Callable

import torch

LIBRARY_KERNELS = (
    "aten::addmm",
    "aten::mm",
    "aten::bmm",
    "aten::mv",
    "aten::_weight_int8pack_mm",
    "mkldnn::_linear_pointwise",
    "hf_visiontx::few_row_linear",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
)
"""The kernels a decoding step may hand its projections and attention to: the matmuls, ours, sdpa's."""


def profiled_operators(run: Callable[[], object]) -> list[str]:
    """The names of the operators `run()` calls, as torch's profiler records them, one per call."""
    with torch.profiler.profile() as profiler:
        run()
    return [event.name for event in profiler.events()]


def library_calls(operators: list[str]) -> Counter:
    """How often each of `LIBRARY_KERNELS` appears in `operators`."""
    return Counter(name for name in operators if name in LIBRARY_KERNELS)
