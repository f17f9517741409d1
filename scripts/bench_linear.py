"""Per-call time of `fast_paths.linear` inside `few_row_linears` (oneDNN on the weight as it is, the default, and on
a packed copy, `PACK_WEIGHTS`) against `F.linear` (MKL) at the sizes a Transformer-base decoder multiplies while generating: 1 to 128 rows (batch x beams) by its projection and output
matrices. Each layer is called on enough distinct weights (about 150 MB, as one decoding step reads) that they
come from memory, not from cache. The few-row columns time oneDNN at every row count; the last column says which
of the two `linear` takes on this CPU (`fast_paths._onednn_faster`: on an Intel CPU, F.linear up to a few rows).

    python scripts/bench_linear.py                  # d_model 512, d_ff 2048, vocabulary 32000, 2 threads
    python scripts/bench_linear.py --threads 4

With `--many-rows` it times instead the many-row path (`fast_paths.ONEDNN_LINEARS`) at the projections of ViT-B/16,
Swin-T and a Transformer-base encoder, batch 1 and 8: `F.linear` against oneDNN's matmul, and for the MLP's first
projection `F.linear` then the in-place GELU against oneDNN with the GELU fused; the last column says whether the
path takes the call (`MANY_ROW_LEAST_WORK`). Every call writes a fresh output, as in a model.

    python scripts/bench_linear.py --many-rows
"""

import argparse
from functools import partial

import torch
import torch.nn.functional as F
from benchmarking import best_times
from transformers.activations import ACT2FN

from hf_visiontx.modeling import fast_paths
from hf_visiontx.modeling.fast_paths import FEW_ROWS_MAX, few_row_linears, linear

WEIGHT_BYTES_PER_CALL = 150_000_000


def layers_of(in_features: int, out_features: int) -> torch.nn.ModuleList:
    """As many layers of this shape as fill `WEIGHT_BYTES_PER_CALL`."""
    copies = max(1, WEIGHT_BYTES_PER_CALL // (4 * in_features * out_features))
    return torch.nn.ModuleList(torch.nn.Linear(in_features, out_features) for _ in range(copies))


def ours(layers: torch.nn.ModuleList, inputs: torch.Tensor, packed: bool) -> torch.Tensor:
    """Every layer through the few-row path (the caller holds a `few_row_linears` block open), on packed copies of
    the weights or not."""
    fast_paths.PACK_WEIGHTS = packed
    fast_paths.MKL_FEW_ROWS = False  # oneDNN at every row count
    return [linear(layer, inputs) for layer in layers][-1]


def plain(layers: torch.nn.ModuleList, inputs: torch.Tensor) -> torch.Tensor:
    """Every layer through F.linear."""
    return [F.linear(inputs, layer.weight, layer.bias) for layer in layers][-1]


def many_row_shapes() -> list[tuple[str, int, int, int, bool]]:
    """(model, rows, in, out, whether the MLP's GELU follows) of the projections of ViT-B/16 and Swin-T at 224 px,
    and of a Transformer-base encoder over 32 tokens, at batch 1 and 8; Swin's patch merging included."""
    shapes = []
    for batch in (1, 8):
        rows = batch * 197
        shapes += [(f"ViT-B/16 b{batch}", rows, 768, out, out == 3072) for out in (2304, 768, 3072)]
        shapes.append((f"ViT-B/16 b{batch}", rows, 3072, 768, False))
        for stage, channels in enumerate((96, 192, 384, 768)):
            rows, name = batch * 3136 >> (2 * stage), f"Swin-T b{batch} stage {stage + 1}"
            shapes += [
                (name, rows, channels, out, out == 4 * channels) for out in (3 * channels, channels, 4 * channels)
            ]
            shapes.append((name, rows, 4 * channels, channels, False))
            if stage:
                shapes.append((name + " merging", rows, 2 * channels, channels, False))
        rows = batch * 32
        shapes += [(f"Transformer-base encoder b{batch}", rows, 512, out, False) for out in (1536, 512, 2048)]
        shapes.append((f"Transformer-base encoder b{batch}", rows, 2048, 512, False))
    return shapes


def plain_gelu(layer: torch.nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    """F.linear, then the exact GELU written over its output (the MLP's path without oneDNN)."""
    return torch.ops.aten.gelu_(F.linear(inputs, layer.weight, layer.bias))


def many_rows(repeats: int) -> None:
    """Time the many-row path against F.linear at `many_row_shapes()` and print a row per shape."""
    print(
        f"{'model':>34} {'rows':>6} {'in -> out':>13} {'F.linear us':>12} {'oneDNN us':>10} {'speed-up':>9}"
        f" {'+GELU F us':>11} {'fused us':>9} {'speed-up':>9}  linear takes"
    )
    gelu = ACT2FN["gelu"]
    for model, rows, in_features, out_features, activated in many_row_shapes():
        layer, inputs = torch.nn.Linear(in_features, out_features), torch.randn(rows, in_features)
        workloads = {
            "plain": partial(F.linear, inputs, layer.weight, layer.bias),
            "ours": partial(fast_paths._onednn_linear, inputs, layer.weight, layer.bias),
        }
        if activated:
            workloads["plain gelu"] = partial(plain_gelu, layer, inputs)
            workloads["fused"] = partial(fast_paths.projected_and_activated, layer, gelu, inputs)
        with torch.no_grad():
            timed = best_times(workloads, repeats)
            taken = "oneDNN" if fast_paths._onednn_inference_call(layer, inputs) else "F.linear"
        torch.testing.assert_close(timed["ours"][1], timed["plain"][1], rtol=1e-4, atol=1e-4)
        us = {name: time * 1e6 for name, (time, _) in timed.items()}
        line = (
            f"{model:>34} {rows:>6} {in_features:>5} -> {out_features:<5} {us['plain']:>12.0f} {us['ours']:>10.0f}"
            f" {us['plain'] / us['ours']:>8.2f}x"
        )
        if activated:
            torch.testing.assert_close(timed["fused"][1][1], timed["plain gelu"][1], rtol=1e-4, atol=1e-4)
            line += f" {us['plain gelu']:>11.0f} {us['fused']:>9.0f} {us['plain gelu'] / us['fused']:>8.2f}x"
        else:
            line += " " * 31
        print(f"{line}  {taken}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--many-rows", action="store_true", help="time the many-row path at image-model shapes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--d-ff", type=int, default=2048)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1, 4, 16, FEW_ROWS_MAX, 2 * FEW_ROWS_MAX], help="row counts to time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.many_rows:
        many_rows(args.repeats)
        return
    mkl_few_rows = fast_paths.MKL_FEW_ROWS
    shapes = [
        (args.d_model, args.d_model),
        (args.d_model, 3 * args.d_model),
        (args.d_model, args.d_ff),
        (args.d_ff, args.d_model),
        (args.d_model, args.vocab_size),
    ]
    print(
        f"{'in -> out':>14} {'rows':>5} {'F.linear us':>12} {'few-row us':>11} {'speed-up':>9} {'GB/s':>6} "
        f"{'packed us':>10} {'speed-up':>9}  linear takes"
    )
    for in_features, out_features in shapes:
        layers = layers_of(in_features, out_features)
        for rows in args.rows:
            inputs = torch.randn(rows, in_features)
            with torch.no_grad(), few_row_linears(layers):
                timed = best_times(
                    {
                        "plain": partial(plain, layers, inputs),
                        "ours": partial(ours, layers, inputs, packed=False),
                        "packed": partial(ours, layers, inputs, packed=True),
                    },
                    args.repeats,
                )
            for name in ("ours", "packed"):
                torch.testing.assert_close(timed[name][1], timed["plain"][1], rtol=1e-4, atol=1e-4)
            plain_us, ours_us, packed_us = (timed[name][0] / len(layers) * 1e6 for name in ("plain", "ours", "packed"))
            bandwidth = 4 * in_features * out_features / (ours_us * 1e-6) / 1e9
            fast_paths.MKL_FEW_ROWS = mkl_few_rows
            taken = "oneDNN" if fast_paths._onednn_faster(rows, layers[0].weight) else "F.linear"
            print(
                f"{in_features:>6} -> {out_features:<5} {rows:>5} {plain_us:>12.0f} {ours_us:>11.0f} "
                f"{plain_us / ours_us:>8.2f}x {bandwidth:>6.1f} {packed_us:>10.0f} {plain_us / packed_us:>8.2f}x"
                f"  {taken}",
                flush=True,
            )


if __name__ == "__main__":
    main()
