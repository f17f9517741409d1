"""Measuring helpers shared by the benchmark scripts: side-by-side best times, the machine's matmul rate, FLOPs
and peak memory of one call, and the int8 versions of a model that are measured."""

import contextlib
import copy
import ctypes
import gc
import time
from collections.abc import Callable, Iterator
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_visiontx.modeling import fast_paths


def round_times(
    workloads: dict[str, Callable[[], object]],
    repeats: int,
    inference: bool = True,
    warmups: dict[str, float] | None = None,
) -> dict[str, tuple[list[float], object]]:
    """Wall times of `repeats` rounds, each calling every workload once, after one warm-up call each; and the last
    result of each. `warmups`, when given, receives the time of each warm-up call (a compile, for compiled code).

    The workloads take turns, in alternating order, so that a slow spell of a shared machine hits all alike, and the
    times of one round can be compared with each other. With `inference` the calls run under
    `torch.inference_mode()`; otherwise autograd is on (training steps).
    """
    times = {name: [] for name in workloads}
    with torch.inference_mode() if inference else contextlib.nullcontext():
        results = {}
        for name, run in workloads.items():
            start = time.perf_counter()
            results[name] = run()
            if warmups is not None:
                warmups[name] = time.perf_counter() - start
        for repeat in range(repeats):
            for name in list(workloads)[:: 1 if repeat % 2 == 0 else -1]:
                start = time.perf_counter()
                results[name] = workloads[name]()
                times[name].append(time.perf_counter() - start)
    return {name: (times[name], results[name]) for name in workloads}


def best_times(
    workloads: dict[str, Callable[[], object]], repeats: int, inference: bool = True
) -> dict[str, tuple[float, object]]:
    """Best wall time of each workload over `round_times`' rounds (other processes can only add time to a call),
    and its last result."""
    return {name: (min(times), result) for name, (times, result) in round_times(workloads, repeats, inference).items()}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul rate: best GFLOP/s of a size x size x size product by either library torch holds,
    MKL (`torch.mm`) or oneDNN (its matmul, when this build has it), since the models run on both: a share of the
    rate above 100% would mean the limit was too low."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    products = [partial(torch.mm, a, b)]
    if fast_paths._onednn_linear_available():
        products.append(partial(fast_paths._onednn_linear, a, b, None))  # a @ b^T: the same work
    best = float("inf")
    for product in products:
        product()
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def read_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """The machine's memory read rate as a decoding step can use it: best GB/s of summing a buffer far larger than
    any cache, with one thread or with torch's threads (on some machines one core cannot draw all the bandwidth)."""
    threads = torch.get_num_threads()
    buffer = torch.ones(megabytes * (1 << 20) // 4)
    best = float("inf")
    try:
        for count in sorted({1, threads}):
            torch.set_num_threads(count)
            for _ in range(repeats):
                start = time.perf_counter()
                buffer.sum()
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return buffer.numel() * 4 / best / 1e9


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Run a transformers-style `model` under eager attention for the duration (for the flop counter)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def counted_flops(run: Callable[[], object], inference: bool = True) -> int:
    """FLOPs of one call as torch's flop counter counts them (matmuls and convolutions, forward and backward).

    Run the models under eager attention when counting: the counter does not see inside CPU sdpa kernels.
    """
    with FlopCounterMode(display=False) as counter, torch.inference_mode() if inference else contextlib.nullcontext():
        run()
    return counter.get_total_flops()


_LIBC = ctypes.CDLL("libc.so.6")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_STEADY_MMAP_THRESHOLD = 32 << 20  # glibc's dynamic mmap threshold at its ceiling (64-bit)
_STEADY_TRIM_THRESHOLD = 2 * _STEADY_MMAP_THRESHOLD  # what glibc pairs with it


def steady_allocator() -> None:
    """Put glibc's malloc in the state a long-running process reaches: blocks up to 32 MiB come from the heap and
    are reused, not mapped and unmapped (page faults) on every allocation.

    Call before timing: the memory probe changes these settings, and without a fixed state a workload's timing
    would depend on which workloads were probed before it.
    """
    _LIBC.mallopt(_M_MMAP_THRESHOLD, _STEADY_MMAP_THRESHOLD)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, _STEADY_TRIM_THRESHOLD)


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status ("VmRSS", "VmHWM") in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_memory_mib(run: Callable[[], object], inference: bool = True, probes: int = 2) -> float:
    """The peak of resident memory during one call, above what was resident before it, in MiB (Linux); the least
    of `probes` calls, as the first may still allocate for good (an optimizer's state, a cache).

    During the call every allocation of 64 KiB or more is served by its own mapping and returned to the system when
    freed, so memory freed by an earlier workload is not reused unseen; the kernel's high-water mark is reset before
    the call, and `steady_allocator` restored after it.
    """
    return min(_peak_memory_of_one_call(run, inference) for _ in range(probes))


def _peak_memory_of_one_call(run: Callable[[], object], inference: bool) -> float:
    _LIBC.mallopt(_M_MMAP_THRESHOLD, 1 << 16)
    gc.collect()
    _LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM to the current resident size
    before = _status_mib("VmRSS")
    try:
        with torch.inference_mode() if inference else contextlib.nullcontext():
            run()
        return _status_mib("VmHWM") - before
    finally:
        steady_allocator()


# torchao's int8 configs (classes of `torchao.quantization`, imported only when int8 is measured), by short name
INT8_CONFIGS = {"weight-only": "Int8WeightOnlyConfig", "dynamic": "Int8DynamicActivationInt8WeightConfig"}


def torchao_int8(model: torch.nn.Module, config: str) -> torch.nn.Module:
    """A copy of `model` with every linear layer quantized by torchao's `quantize_` under `config` (a key of
    `INT8_CONFIGS`)."""
    import torchao.quantization

    quantized = copy.deepcopy(model)
    torchao.quantization.quantize_(quantized, getattr(torchao.quantization, INT8_CONFIGS[config])())
    return quantized


def frozen_compiled(model: torch.nn.Module) -> Callable:
    """`model` under torch.compile with inductor's freezing (weights as constants: what lets inductor replace
    torchao's int8 matmuls by oneDNN's quantized linear on CPU). Freezing is set for these calls only."""
    compiled = torch.compile(model)

    def call(*args, **kwargs):
        with torch._inductor.config.patch(freezing=True):
            return compiled(*args, **kwargs)

    return call


def torch_ao_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with torch's `quantize_dynamic` (fbgemm) on its linear layers."""
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
