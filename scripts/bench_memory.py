"""Peak memory of one call of each implementation of each `bench.py` workload, each measured in a process of its own.

In one process the peaks of successive workloads interact (the allocator keeps, reuses and returns memory across
them); here a fresh interpreter builds the workload, makes one warm-up call of one implementation (one-time
allocations such as the optimizer's state are not part of a step), then measures the peak of resident memory during
one more call, above what was resident before it (`benchmarking.peak_memory_mib`). Everything a call allocates
counts, packed weight copies included.

    python scripts/bench_memory.py                              # every workload of bench.py
    python scripts/bench_memory.py --only "greedy generation"   # workloads whose name contains this
    python scripts/bench_memory.py --json > memory.json
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from bench import OURS, workloads
from benchmarking import peak_memory_mib, round_times, steady_allocator


def bench_arguments(extra: list[str]) -> argparse.Namespace:
    """The arguments `bench.workloads` reads, at bench.py's defaults (or as given in `extra`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--engines", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())  # the engines' threads: torch's
    arguments, _ = parser.parse_known_args(extra)
    return arguments


def measure_here(workload_name: str, implementation: str, extra: list[str]) -> float:
    """Build `workload_name`, call `implementation` once to warm up, return the peak MiB of one more call."""
    build = dict(workloads(bench_arguments(extra)))[workload_name]
    workload = build()
    call = workload.calls[implementation]
    round_times({implementation: call}, repeats=0, inference=workload.inference)  # the warm-up call
    return peak_memory_mib(call, inference=workload.inference, probes=1)


def measure_in_child(workload_name: str, implementation: str, threads: int, extra: list[str]) -> float:
    """`measure_here` in a fresh interpreter."""
    command = [sys.executable, str(Path(__file__)), "--child", workload_name, implementation, "--threads", str(threads)]
    result = subprocess.run([*command, *extra], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {implementation} on {workload_name!r} failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def implementations_of(workload_name: str, extra: list[str]) -> list[str]:
    """The implementations a workload compares (ours first), as bench.py builds it."""
    build = dict(workloads(bench_arguments(extra)))[workload_name]
    return list(build().calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the workloads whose name contains this (case-insensitive)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    torch.set_num_threads(args.threads)
    if args.child:
        steady_allocator()
        print(measure_here(*args.child, extra))
        return
    names = [name for name, _ in workloads(bench_arguments(extra))]
    rows = []
    if not args.json:
        print(f"{'workload':<54} {'implementation':<15} {'peak MiB':>9} {'ours / this':>11}", flush=True)
    for name in names:
        if args.only and args.only.lower() not in name.lower():
            continue
        peaks = {
            implementation: measure_in_child(name, implementation, args.threads, extra)
            for implementation in implementations_of(name, extra)
        }
        for implementation, peak in peaks.items():
            ratio = peaks[OURS] / peak if peak > 0 else float("inf")
            rows.append({"workload": name, "implementation": implementation, "peak_mib": peak, "ours_over": ratio})
            if not args.json:
                label = name if implementation == next(iter(peaks)) else ""
                print(f"{label:<54} {implementation:<15} {peak:>9.1f} {ratio:>10.2f}x", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
