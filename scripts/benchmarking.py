"""Timing helpers shared by the benchmark scripts: side-by-side, alternating, median."""

import statistics
import time
from collections.abc import Callable

import torch


def median_times(workloads: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, object]]:
    """Median wall time of `repeats` calls of each workload, after one warm-up call each, and its last result.

    The workloads take turns, in alternating order, so that a slow spell of a shared machine hits all alike.
    """
    times = {name: [] for name in workloads}
    with torch.inference_mode():
        results = {name: run() for name, run in workloads.items()}
        for repeat in range(repeats):
            for name in list(workloads)[:: 1 if repeat % 2 == 0 else -1]:
                start = time.perf_counter()
                results[name] = workloads[name]()
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in workloads}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul rate: best GFLOP/s of a size x size x size torch.mm."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
