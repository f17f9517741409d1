"""Speed and memory of our three families against their peers, side by side in one process, as one table.

Every implementation of a family holds the same weights (ours converted from the transformers model, timm's
mapped in when timm is installed) and the outputs are checked to agree before anything is timed. Workloads:

- ViT-B/16 and Swin-T inference at 224 px, batch 1 and 8, fp32, through each model's forward (images/s);
- Transformer-base generation of exactly 64 tokens from 32 source tokens through `generate()`, as users call it:
  greedy at batch 1 and 16, beam 4 at batch 1, against transformers' MarianMTModel (generated tokens/s);
- GPT-2 small as a language model (our `VtxTransformerForCausalLM` converted from `GPT2LMHeadModel`): 64 tokens
  continuing a 32-token prompt, greedy at batch 1 and 8, against transformers' GPT2LMHeadModel (generated tokens/s);
- one training step (forward, backward, AdamW) of ViT-S/16 and Swin-T at 224 px, batch 8, and of Transformer-base
  on 32 source and 32 target tokens, batch 16 (steps/s).

For each implementation the table gives its rate (best of `--repeats` calls after a warm-up; implementations
take turns), for ours the ratio to the fastest peer and the same ratio taken round by round (median, lowest and
highest: on a shared machine the best-of rates of two implementations can come from different spells, the calls
of one round run back to back), the share of the machine's limit it reaches (inference and training: the fp32 matmul
rate, from the FLOPs of the workload as torch's flop counter counts them, over the time; generation: the memory
read rate with one thread or `--threads`, whichever is higher, from the bytes of the weights each decoding step
reads), the peak of resident memory during one call above what was resident before it, and how its result agrees
with ours (compiled rows also give their first call, which compiles). `bench_memory.py` measures the peaks in separate processes.

    python scripts/bench.py                          # everything
    python scripts/bench.py --only vit --repeats 3   # workloads whose name contains "vit" (case-insensitive)
    python scripts/bench.py --compile                # adds ours under torch.compile (inductor; slow to compile)
    python scripts/bench.py --int8                   # adds ours in int8 (torchao dynamic; torch.ao's), and agreement
    python scripts/bench.py --int8 --compile         # also generation in torchao's weight-only int8, compiled
    python scripts/bench.py --engines                # adds ours exported to CTranslate2 and ONNX Runtime (see
                                                     # bench_engines.py; needs the ctranslate2 and onnx extras)
    python scripts/bench.py --json > bench.json      # the same rows as JSON
"""

import argparse
import contextlib
import copy
import json
import platform
import statistics
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cache, partial

import torch
import torch.nn.functional as F
from bench_engines import onnx_runtime_calls, translator_calls
from bench_models import gpt2_models, logits_of, marian_models, swin_models, vit_models
from benchmarking import (
    counted_flops,
    eager_attention,
    frozen_compiled,
    matmul_gflops,
    peak_memory_mib,
    read_bandwidth_gbs,
    round_times,
    steady_allocator,
    torch_ao_int8,
    torchao_int8,
)
from transformers import CompileConfig

OURS = "ours"
INT8 = f"{OURS} int8"  # torchao's dynamic int8 on every linear layer: approximate, its agreement is reported
INT8_TORCH_AO = f"{INT8} torch.ao"  # torch's older `quantize_dynamic` (fbgemm, eager), for comparison
INT8_WEIGHT_ONLY_COMPILED = f"{INT8} weight-only compiled"  # generation with --int8 --compile: torchao's weight-only


@dataclass
class Workload:
    """One thing to measure, and every implementation of it."""

    unit: str  # what `items` counts per second: "img/s", "tok/s", "steps/s"
    items: int  # units of work in one call
    calls: dict[str, Callable[[], object]]  # implementation -> one call
    inference: bool
    count_flops: Callable[[], int]  # FLOPs of one call (ours, eager attention)
    check: Callable[[dict[str, object]], dict[str, str]]  # how each result agrees with ours; raises when an exact
    # implementation disagrees
    streamed_bytes: int | None = None  # generation: bytes of weights one call reads from memory (all its steps)


@dataclass
class Row:
    """The measurement of one implementation of one workload."""

    workload: str
    implementation: str
    seconds: float
    rate: float
    unit: str
    vs_fastest_peer: float | None  # ours only: our rate over the fastest peer's
    per_round: dict[str, float] | None  # ours only: "median", "low" and "high" of the same ratio taken round by
    # round (the two calls of a round run back to back, so a slow spell of the machine hits both)
    limit_share: str  # share of the machine's limit: "84% mm" (fp32 matmul rate) or "61% bw" (memory read rate)
    agreement: str  # with ours: max logit difference, share of equal tokens, or loss difference
    first_call_seconds: float  # the warm-up call: a compile for compiled implementations
    peak_mib: float | None = None


def approximate(implementation: str) -> bool:
    """Whether an implementation is approximate (int8, ours or an engine's): its agreement is reported, not required."""
    return "int8" in implementation


def close_logits(tolerance: float) -> Callable[[dict[str, object]], dict[str, str]]:
    """A check that every exact implementation's logits are within `tolerance` of ours."""

    def check(results: dict[str, object]) -> dict[str, str]:
        ours, notes = logits_of(results[OURS]).float(), {}
        for name, result in results.items():
            difference = (logits_of(result).float() - ours).abs().max().item()
            if difference > tolerance and not approximate(name):
                raise RuntimeError(f"{name} disagrees with ours: max |logit difference| {difference:.2e}")
            notes[name] = f"max |dlogit| {difference:.0e}"
        return notes

    return check


def same_tokens(results: dict[str, object]) -> dict[str, str]:
    """A check that every exact implementation generated our tokens."""
    notes = {}
    for name, tokens in results.items():
        share = (tokens == results[OURS]).float().mean().item() if tokens.shape == results[OURS].shape else 0.0
        if share < 1 and not approximate(name):
            raise RuntimeError(f"{name} generated other tokens than ours")
        notes[name] = f"{share:.0%} tokens equal"
    return notes


def compiled(model: torch.nn.Module) -> Callable:
    """Ours under torch.compile (inductor), for `--compile`."""
    return torch.compile(model, fullgraph=True)


def quantized(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ours with torchao's dynamic int8 on every linear layer (`Int8DynamicActivationInt8WeightConfig`:
    weights int8 per row, activations quantised per row at each call), for `--int8`. The vision forward runs it
    compiled with freezing (inductor then runs the int8 matmuls on oneDNN instead of torchao's eager ops);
    generation runs it eager, where the few rows of each decoding step take fbgemm's int8 matmul
    (`fast_paths._int8_linear`)."""
    return torchao_int8(model, "dynamic")


def inference_variants(model: torch.nn.Module, args) -> dict[str, Callable]:
    """The optional variants of ours for inference: compiled (`--compile`), int8 (`--int8`)."""
    variants = {}
    if args.compile:
        variants[f"{OURS} compiled"] = compiled(model)
    if args.int8:
        variants[INT8] = frozen_compiled(quantized(model))
        variants[INT8_TORCH_AO] = torch_ao_int8(model)
    return variants


def image_batch(batch: int) -> torch.Tensor:
    """Random 224 px images."""
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))


def vision_inference(models: dict[str, torch.nn.Module], batch: int, args) -> Workload:
    """Forward passes of image classifiers at 224 px."""
    pixels = image_batch(batch)
    calls = {name: partial(model, pixels) for name, model in (models | inference_variants(models[OURS], args)).items()}
    if args.engines:
        calls |= onnx_runtime_calls(models[OURS], pixels, args.threads)

    def count_flops() -> int:
        with eager_attention(models[OURS]):
            return counted_flops(partial(models[OURS], pixels))

    return Workload("img/s", batch, calls, True, count_flops, close_logits(1e-3))


def classification_loss(model: Callable, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of an image classifier (timm's returns bare logits, so the loss is computed here for all)."""
    return F.cross_entropy(logits_of(model(pixels)), labels)


def seq2seq_loss(model: Callable, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A translation model's own loss, `labels` given."""
    return model(**batch).loss


def training_step(model: Callable, optimizer: torch.optim.Optimizer, loss_fn: Callable, inputs: tuple) -> torch.Tensor:
    """One step: forward, backward, AdamW update; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, *inputs)
    loss.backward()
    optimizer.step()
    return loss.detach()


def training(models: dict[str, torch.nn.Module], loss_fn: Callable, inputs: tuple, args) -> Workload:
    """Training steps of copies of `models` (so all start from the same weights), each with its own AdamW."""
    trained = {name: copy.deepcopy(model).train() for name, model in models.items()}
    forwards = dict(trained)
    if args.compile:
        trained[f"{OURS} compiled"] = copy.deepcopy(models[OURS]).train()
        forwards[f"{OURS} compiled"] = compiled(trained[f"{OURS} compiled"])
    calls = {
        name: partial(training_step, forwards[name], torch.optim.AdamW(model.parameters(), lr=1e-5), loss_fn, inputs)
        for name, model in trained.items()
    }
    with torch.no_grad():  # the same loss from the same weights, before any step
        losses = {name: loss_fn(model.eval(), *inputs) for name, model in models.items()}

    def check(_: dict[str, object]) -> dict[str, str]:
        for name, loss in losses.items():
            if not torch.allclose(loss, losses[OURS], rtol=1e-3, atol=1e-4):
                raise RuntimeError(f"{name}'s loss {loss.item():.6f} differs from ours {losses[OURS].item():.6f}")
        notes = {name: f"loss diff {(loss - losses[OURS]).abs().item():.0e}" for name, loss in losses.items()}
        return {name: notes.get(name, "not checked (compiled)") for name in calls}

    def count_flops() -> int:
        model = copy.deepcopy(models[OURS]).train()
        step = partial(training_step, model, torch.optim.AdamW(model.parameters()), loss_fn, inputs)
        with eager_attention(model):
            return counted_flops(step, inference=False)

    return Workload("steps/s", 1, calls, False, count_flops, check)


def generation(models: dict[str, torch.nn.Module], batch: int, num_beams: int, args) -> Workload:
    """Generate exactly `args.new_tokens` tokens from `args.source_length` source (or prompt) tokens through
    generate()."""
    generator = torch.Generator().manual_seed(batch)
    input_ids = torch.randint(1, args.vocab_size - 1, (batch, args.source_length), generator=generator)
    settings = dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        num_beams=num_beams,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
    )
    calls = {name: partial(model.generate, **settings) for name, model in models.items()}
    if args.engines and models[OURS].config.is_encoder_decoder:
        calls |= translator_calls(models[OURS], settings, args.threads)
    compiled = dict(cache_implementation="static", compile_config=CompileConfig(fullgraph=True, mode="default"))
    if args.int8:  # eager: the decoding steps' int8 matmuls run on fbgemm
        calls[INT8] = partial(quantized(models[OURS]).generate, **settings)
        calls[INT8_TORCH_AO] = partial(torch_ao_int8(models[OURS]).generate, **settings)
    if args.compile:
        calls[f"{OURS} compiled"] = partial(models[OURS].generate, **compiled, **settings)
    if args.int8 and args.compile:  # one-row steps read the int8 weights in the compiled graph's own reductions
        weight_only = torchao_int8(models[OURS], "weight-only")
        calls[INT8_WEIGHT_ONLY_COMPILED] = partial(weight_only.generate, **compiled, **settings)

    def count_flops() -> int:
        with eager_attention(models[OURS]):
            return counted_flops(partial(models[OURS].generate, **settings))

    streamed = decoding_step_bytes(models[OURS]) * args.new_tokens
    return Workload("tok/s", batch * args.new_tokens, calls, True, count_flops, same_tokens, streamed)


def decoding_step_bytes(model: torch.nn.Module) -> int:
    """Bytes of weights one decoding step reads: the decoder's projections (not the cross-attention keys and values,
    projected once per call) and the output layer; the embedding lookup reads one row."""
    layers = [
        layer
        for name, layer in model.get_decoder().named_modules()
        if isinstance(layer, torch.nn.Linear) and not name.endswith("encoder_attn.kv_proj")
    ] + [model.get_output_embeddings()]
    return sum(tensor.numel() * tensor.element_size() for layer in layers for tensor in layer.parameters())


def workloads(args) -> Iterator[tuple[str, Callable[[], Workload]]]:
    """(name, build) of every workload; models are built on first use and shared by a family's workloads."""
    vit_base, vit_small = cache(partial(vit_models, "b/16")), cache(partial(vit_models, "s/16"))
    swin, marian = cache(swin_models), cache(partial(marian_models, args.vocab_size))
    images, labels = image_batch(8), torch.arange(8)
    for batch in (1, 8):
        yield f"ViT-B/16 inference, batch {batch}", lambda b=batch: vision_inference(vit_base(), b, args)
    for batch in (1, 8):
        yield f"Swin-T inference, batch {batch}", lambda b=batch: vision_inference(swin(), b, args)
    for name, batch, beams in (("greedy", 1, 1), ("greedy", 16, 1), ("beam 4", 1, 4)):
        yield (
            f"Transformer-base {name} generation, batch {batch}",
            lambda b=batch, n=beams: generation(marian(), b, n, args),
        )
    gpt2 = cache(gpt2_models)
    for batch in (1, 8):
        yield f"GPT-2 small greedy generation, batch {batch}", lambda b=batch: generation(gpt2(), b, 1, args)
    yield (
        "ViT-S/16 training step, batch 8",
        lambda: training(vit_small(), classification_loss, (images, labels), args),
    )
    yield ("Swin-T training step, batch 8", lambda: training(swin(), classification_loss, (images, labels), args))
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, args.vocab_size - 1, (16, 32), generator=generator)
    text = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": torch.randint(1, args.vocab_size - 1, (16, 32), generator=generator),
    }
    yield (
        "Transformer-base training step, 32x32 tokens, batch 16",
        lambda: training(marian(), seq2seq_loss, (text,), args),
    )


def measure(name: str, workload: Workload, repeats: int, peak_gflops: float, bandwidth_gbs: float) -> list[Row]:
    """Time every implementation of `workload` side by side, check they agree, and measure peak memory."""
    warmups = {}
    timed = round_times(workload.calls, repeats, inference=workload.inference, warmups=warmups)
    agreement = workload.check({implementation: result for implementation, (_, result) in timed.items()})
    gflop = workload.count_flops() / 1e9
    best = {implementation: min(times) for implementation, (times, _) in timed.items()}
    rates = {implementation: workload.items / seconds for implementation, seconds in best.items()}
    fastest_peer = max(
        (implementation for implementation in rates if not implementation.startswith(OURS)), key=rates.get
    )
    rows = []
    for implementation, (times, _) in timed.items():
        ours = implementation.startswith(OURS)
        rows.append(
            Row(
                workload=name,
                implementation=implementation,
                seconds=best[implementation],
                rate=rates[implementation],
                unit=workload.unit,
                limit_share=(
                    f"{gflop / best[implementation] / peak_gflops:.0%} mm"
                    if workload.streamed_bytes is None
                    else f"{workload.streamed_bytes / 1e9 / best[implementation] / bandwidth_gbs:.0%} bw"
                ),
                agreement=agreement[implementation],
                first_call_seconds=warmups[implementation],
                vs_fastest_peer=rates[implementation] / rates[fastest_peer] if ours else None,
                per_round=ratio_spread(timed[fastest_peer][0], times) if ours else None,
            )
        )
    for row in rows:  # after all timing: the memory probe changes how the process allocates
        row.peak_mib = peak_memory_mib(workload.calls[row.implementation], inference=workload.inference)
    return rows


def ratio_spread(peer_times: list[float], our_times: list[float]) -> dict[str, float]:
    """Median, lowest and highest of the peer's time over ours, round by round."""
    ratios = sorted(peer / ours for peer, ours in zip(peer_times, our_times, strict=True))
    return {"median": statistics.median(ratios), "low": ratios[0], "high": ratios[-1]}


TABLE_HEADER = (
    f"{'workload':<54} {'implementation':<15} {'rate':>18} {'vs fastest peer':>15} {'per round':>18} "
    f"{'of limit':>9} {'peak MiB':>9}  agreement with ours"
)


def table_lines(rows: list[Row]) -> list[str]:
    """The rows of one workload as table lines (the workload named on the first)."""
    lines = []
    for index, row in enumerate(rows):
        ratio = f"{row.vs_fastest_peer:.2f}x" if row.vs_fastest_peer is not None else ""
        spread = "{median:.2f}x ({low:.2f}-{high:.2f})".format(**row.per_round) if row.per_round is not None else ""
        compile_note = f"; first call {row.first_call_seconds:.1f} s" if "compiled" in row.implementation else ""
        lines.append(
            f"{row.workload if index == 0 else '':<54} {row.implementation:<15} {row.rate:>10.3g} "
            f"{row.unit:<7} {ratio:>15} {spread:>18} {row.limit_share:>9} {row.peak_mib:>9.0f}  "
            f"{row.agreement}{compile_note}"
        )
    return lines


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The command line of bench.py: which workloads, their sizes and optional implementations, how they are timed
    (bench_memory.py takes the same)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the workloads whose name contains this (case-insensitive)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="also time ours under torch.compile (inductor)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also time ours in int8: torchao's dynamic int8 (vision compiled, generation eager) and torch.ao's quantize_dynamic (approximate); with --compile, generation in torchao's weight-only int8 compiled too",
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="also time ours exported to CTranslate2 (Transformer-base, fp32 and int8) and to ONNX Runtime (ViT, Swin)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    return parser


def main() -> None:
    args = argument_parser(__doc__).parse_args()
    torch.set_num_threads(args.threads)
    steady_allocator()
    info = machine() | {"matmul_gflops": round(matmul_gflops(), 1), "read_gbs": round(read_bandwidth_gbs(), 1)}
    if not args.json:
        print(
            f"{info['cpu']}; torch {info['torch']}, {info['threads']} threads, fp32; "
            f"measured fp32 matmul rate {info['matmul_gflops']:.0f} GFLOP/s, "
            f"memory read rate {info['read_gbs']:.1f} GB/s\n{TABLE_HEADER}",
            flush=True,
        )
    rows = []
    for name, build in workloads(args):
        if args.only and args.only.lower() not in name.lower():
            continue
        measured = measure(name, build(), args.repeats, info["matmul_gflops"], info["read_gbs"])
        rows += measured
        if not args.json:
            print("\n".join(table_lines(measured)), flush=True)
    if args.json:
        print(json.dumps({"machine": info, "rows": [asdict(row) for row in rows]}, indent=2))


if __name__ == "__main__":
    main()
