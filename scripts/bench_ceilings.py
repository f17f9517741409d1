"""Where the time of ours goes in the eager fp32 workloads whose share of the machine's limit bench.py prints, and
the highest share each could reach with the kernels it runs on.

- ViT-B/16 and Swin-T inference at 224 px, batch 8: the forward's time, split by torch's profiler into the
  projections (every linear layer, whichever library multiplies it: MKL's addmm, oneDNN's matmul), attention (sdpa)
  and the rest (LayerNorm, residual adds, copies, the patch embedding). The **ceiling** is the share of the fp32
  matmul rate the forward would reach if only its projections took time: the speed of their kernels bounds it.
- Transformer-base greedy generation, batch 1 (bench.py's workload: 64 tokens from 32): the time per token, and
  the **floor**, the time per token of the same `generate()` call on a twin of the model whose every width is 8
  (the same layers, heads, vocabulary and operators, weights of a few KB, so almost nothing to read). The ceiling is
  the share of the memory read rate a step would reach if it read its weights at the full measured rate on top of
  that floor; "weights read at" is the rate the steps' kernels stream the weights at once the floor is taken off.

Ours and the twin (or the plain and the profiled forward) take turns, round by round; best of `--repeats` rounds.

    python scripts/bench_ceilings.py --threads 2 --repeats 5
    python scripts/bench_ceilings.py --only swin
"""

import copy
import time
from collections.abc import Callable

import torch
from bench import argument_parser, generation, image_batch, machine
from bench_models import marian_models, swin_models, vit_models
from benchmarking import eager_attention, matmul_gflops, read_bandwidth_gbs, round_times, steady_allocator
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

PROJECTION_OPERATORS = {"aten::linear", "aten::addmm", "aten::mm", "mkldnn::_linear_pointwise"}
ATTENTION_OPERATORS = {"aten::scaled_dot_product_attention"}
NARROW_WIDTH = 8  # the twin's d_model and feed-forward width: one element per head of Transformer-base's 8


def outermost_seconds(events, names: set[str]) -> float:
    """CPU seconds of the profiled calls of the operators `names`, counting a call inside another of them once."""
    total = 0.0
    for event in events:
        if event.name not in names:
            continue
        parent = event.cpu_parent
        while parent is not None and parent.name not in names:
            parent = parent.cpu_parent
        if parent is None:
            total += event.cpu_time_total / 1e6
    return total


def vision_flops(model: torch.nn.Module, pixels: torch.Tensor) -> dict[str, float]:
    """GFLOP of one forward, under eager attention (the counter does not see inside sdpa): in the projections
    (addmm, mm), in attention (bmm) and in all."""
    with eager_attention(model), FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(pixels)
    counts = {str(operator): flops / 1e9 for operator, flops in counter.get_flop_counts()["Global"].items()}
    return {
        "projections": counts.get("aten.addmm", 0.0) + counts.get("aten.mm", 0.0),
        "attention": counts.get("aten.bmm", 0.0),
        "all": counter.get_total_flops() / 1e9,
    }


def vision_ceiling(name: str, model: torch.nn.Module, pixels: torch.Tensor, repeats: int) -> str:
    """One line: the forward's share of the matmul rate, its time split, and the ceiling its projections allow."""
    flops = vision_flops(model, pixels)
    best_forward, best_split, rate = float("inf"), None, 0.0
    with torch.inference_mode():
        model(pixels)
        for _ in range(repeats):
            rate = max(rate, matmul_gflops(repeats=3))
            start = time.perf_counter()
            model(pixels)
            best_forward = min(best_forward, time.perf_counter() - start)
            start = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                model(pixels)
            profiled_seconds = time.perf_counter() - start
            events = profiled.events()
            split = (
                profiled_seconds,
                outermost_seconds(events, PROJECTION_OPERATORS),
                outermost_seconds(events, ATTENTION_OPERATORS),
            )
            if best_split is None or split[0] < best_split[0]:
                best_split = split
    total, projections, attention = best_split
    rest = total - projections - attention
    return (
        f"{name}: {flops['all']:.1f} GFLOP in {best_forward * 1e3:.0f} ms = {flops['all'] / best_forward / rate:.0%} "
        f"of {rate:.0f} GFLOP/s | profiled {total * 1e3:.0f} ms: projections {projections * 1e3:.0f} ms "
        f"({projections / total:.0%}) at {flops['projections'] / projections / rate:.0%} of the rate, attention "
        f"{attention * 1e3:.0f} ms ({attention / total:.0%}; {flops['attention']:.1f} GFLOP), rest {rest * 1e3:.0f} ms "
        f"({rest / total:.0%}) | ceiling {flops['all'] / projections / rate:.0%}"
    )


def narrow_twin(model: torch.nn.Module, width: int = NARROW_WIDTH) -> torch.nn.Module:
    """`model`'s architecture with d_model and the feed-forward width set to `width` (random weights): the same
    layers, heads, vocabulary and generation settings, so the same operators run, on almost no weight bytes."""
    config = copy.deepcopy(model.config)
    config.d_model = config.encoder_ffn_dim = config.decoder_ffn_dim = width
    twin = type(model)(config).eval()
    twin.generation_config = copy.deepcopy(model.generation_config)
    return twin


def greedy_ceiling(name: str, model: torch.nn.Module, args, read_gbs: float) -> str:
    """One line: greedy batch 1's share of the read rate, its floor per token, and the ceiling that floor allows."""
    workload = generation({"ours": model}, 1, 1, args)
    twin = generation({"ours": narrow_twin(model)}, 1, 1, args)
    calls: dict[str, Callable[[], object]] = {"model": workload.calls["ours"], "twin": twin.calls["ours"]}
    timed = round_times(calls, args.repeats)
    seconds, floor = (min(timed[call][0]) / args.new_tokens for call in calls)  # per token
    weight_bytes = workload.streamed_bytes / args.new_tokens  # per step
    reading = weight_bytes / (read_gbs * 1e9)  # seconds a step needs to read its weights at the measured rate
    return (
        f"{name}: {seconds * 1e3:.2f} ms/token for {weight_bytes / 1e6:.0f} MB of weights = "
        f"{reading / seconds:.0%} of {read_gbs:.1f} GB/s | floor (width-{NARROW_WIDTH} twin) {floor * 1e3:.2f} "
        f"ms/token; weights read at {weight_bytes / (seconds - floor) / 1e9:.1f} GB/s | ceiling "
        f"{reading / (reading + floor):.0%}"
    )


def main() -> None:
    parser = argument_parser(__doc__)  # bench.py's: its workloads' sizes, `--only`, `--repeats`, `--threads`
    args = parser.parse_args()
    if args.compile or args.int8 or args.engines or args.json:
        parser.error(
            "bench_ceilings.py measures ours in eager fp32 and prints lines: --compile, --int8, --engines "
            "and --json do not apply"
        )
    torch.set_num_threads(args.threads)
    steady_allocator()
    read_gbs = read_bandwidth_gbs()
    print(f"{machine()['cpu']}; torch {torch.__version__}, {args.threads} threads, fp32", flush=True)
    pixels = image_batch(8)
    ceilings = {
        "ViT-B/16 inference, batch 8": lambda: vision_ceiling(
            "ViT-B/16 b8", vit_models("b/16")["ours"], pixels, args.repeats
        ),
        "Swin-T inference, batch 8": lambda: vision_ceiling("Swin-T b8", swin_models()["ours"], pixels, args.repeats),
        "Transformer-base greedy generation, batch 1": lambda: greedy_ceiling(
            "Transformer-base greedy b1", marian_models(args.vocab_size)["ours"], args, read_gbs
        ),
    }
    for name, line in ceilings.items():
        if not args.only or args.only.lower() in name.lower():
            print(line(), flush=True)


if __name__ == "__main__":
    main()
