"""Peak memory of one call of each implementation of each `bench.py` workload, each measured in a process of its own.

In one process the peaks of successive workloads interact (the allocator keeps, reuses and returns memory across
them); here a fresh interpreter builds the workload, makes one warm-up call of one implementation (one-time
allocations such as the optimizer's state are not part of a step), then measures the peak of resident memory during
one more call, above what was resident before it (`benchmarking.peak_memory_mib`). Everything a call allocates
counts, packed weight copies included.

    python scripts/bench_memory.py                              # every workload of bench.py
    python scripts/bench_memory.py --only "greedy generation"   # workloads whose name contains this
    python scripts/bench_memory.py --json > memory.json
    python scripts/bench_memory.py --int8 --engines             # bench.py's optional implementations too
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from bench import OURS, argument_parser, workloads
from benchmarking import peak_memory_mib, round_times, steady_allocator


def measure_here(workload_name: str, implementation: str, args: argparse.Namespace) -> float:
    """Build `workload_name`, call `implementation` once to warm up, return the peak MiB of one more call."""
    workload = dict(workloads(args))[workload_name]()
    call = workload.calls[implementation]
    round_times({implementation: call}, repeats=0, inference=workload.inference)  # the warm-up call
    return peak_memory_mib(call, inference=workload.inference, probes=1)


def measure_in_child(workload_name: str, implementation: str) -> float:
    """`measure_here` in a fresh interpreter, with this process's command line (bench.py's options)."""
    command = [sys.executable, str(Path(__file__)), *sys.argv[1:], "--child", workload_name, implementation]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {implementation} on {workload_name!r} failed:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argument_parser(__doc__)  # bench.py's options: the same workloads, sizes and implementations
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        steady_allocator()
        print(measure_here(*args.child, args))
        return
    rows = []
    if not args.json:
        print(f"{'workload':<54} {'implementation':<15} {'peak MiB':>9} {'ours / this':>11}", flush=True)
    for name, build in workloads(args):
        if args.only and args.only.lower() not in name.lower():
            continue
        implementations = list(build().calls)  # the implementations the workload compares, ours first
        peaks = {implementation: measure_in_child(name, implementation) for implementation in implementations}
        for implementation, peak in peaks.items():
            ratio = peaks[OURS] / peak if peak > 0 else float("inf")
            rows.append({"workload": name, "implementation": implementation, "peak_mib": peak, "ours_over": ratio})
            if not args.json:
                label = name if implementation == implementations[0] else ""
                print(f"{label:<54} {implementation:<15} {peak:>9.1f} {ratio:>10.2f}x", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
