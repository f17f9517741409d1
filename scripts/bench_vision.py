"""Vision inference speed: our ViT and Swin against transformers' (and timm's, when installed), side by side.

ViT-B/16 and Swin-T at 224 px, fp32, through each model's forward as users call it. Ours holds the transformers
model's weights, converted, and the outputs are compared. For every model, attention implementation (eager, sdpa)
and batch size the script prints images/s of each implementation, our ratio to each peer, and the achieved GFLOP/s
(FLOPs counted by torch's flop counter) as a share of this machine's measured fp32 matmul rate.

`--sweep` then measures our Swin-T and ViT-B/16 over image sides (224, 320, 448, 512, 768 by default): FLOPs and time
per image, printed as a table and drawn (with `--plot PATH`, needs matplotlib) against the image area, where
Swin's cost grows linearly and ViT's with the square of the token count.

    python scripts/bench_vision.py                       # both models, batch 1 and 8, eager and sdpa
    python scripts/bench_vision.py --models swin --batch-sizes 8 --attention sdpa --repeats 10
    python scripts/bench_vision.py --models --sweep --plot cost.png    # only the sweep
"""

import argparse
from functools import partial

import torch
from benchmarking import matmul_gflops, median_times
from torch.utils.flop_counter import FlopCounterMode
from transformers import SwinConfig, SwinForImageClassification, ViTConfig, ViTForImageClassification

from hf_visiontx.convert import from_transformers


def timm_vit(reference: ViTForImageClassification):
    """timm's vit_base_patch16_224 with the reference's weights, or None when timm is not installed."""
    try:
        import timm
    except ImportError:
        return None
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=1000).eval()
    source = reference.state_dict()
    state = {
        "cls_token": source["vit.embeddings.cls_token"],
        "pos_embed": source["vit.embeddings.position_embeddings"],
        "patch_embed.proj.weight": source["vit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": source["vit.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": source["vit.layernorm.weight"],
        "norm.bias": source["vit.layernorm.bias"],
        "head.weight": source["classifier.weight"],
        "head.bias": source["classifier.bias"],
    }
    for i in range(reference.config.num_hidden_layers):
        src, dst = f"vit.layers.{i}", f"blocks.{i}"
        for kind in ("weight", "bias"):
            state[f"{dst}.attn.qkv.{kind}"] = torch.cat([source[f"{src}.attention.{n}_proj.{kind}"] for n in "qkv"])
            state[f"{dst}.attn.proj.{kind}"] = source[f"{src}.attention.o_proj.{kind}"]
            state[f"{dst}.norm1.{kind}"] = source[f"{src}.layernorm_before.{kind}"]
            state[f"{dst}.norm2.{kind}"] = source[f"{src}.layernorm_after.{kind}"]
            state[f"{dst}.mlp.fc1.{kind}"] = source[f"{src}.mlp.fc1.{kind}"]
            state[f"{dst}.mlp.fc2.{kind}"] = source[f"{src}.mlp.fc2.{kind}"]
    model.load_state_dict(state)
    return model


def timm_swin(ours):
    """timm's swin_tiny_patch4_window7_224 with our Swin-T's weights, or None when timm is not installed."""
    try:
        import timm
    except ImportError:
        return None
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=1000).eval()
    source = ours.state_dict()
    renames = {
        "swin.embeddings.patch_embeddings.projection.": "patch_embed.proj.",
        "swin.embeddings.norm.": "patch_embed.norm.",
        "swin.layernorm.": "norm.",
        "classifier.": "head.fc.",
        ".layernorm_before.": ".norm1.",
        ".layernorm_after.": ".norm2.",
        ".attention.qkv_proj.": ".attn.qkv.",
        ".attention.o_proj.": ".attn.proj.",
        ".attention.relative_position_bias_table": ".attn.relative_position_bias_table",
        "swin.stages.": "layers.",
    }
    state = {}
    for key, value in source.items():
        if key.endswith("relative_position_index"):
            continue
        if ".downsample." in key:  # timm merges patches at the start of the next stage
            stage = int(key.split(".")[2])
            key = key.replace(f"swin.stages.{stage}.downsample.", f"layers.{stage + 1}.downsample.")
        for old, new in renames.items():
            key = key.replace(old, new)
        state[key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not name.endswith(("relative_position_index", "attn_mask")) for name in missing):
        raise RuntimeError(f"timm Swin mapping is off: missing {missing}, unexpected {unexpected}")
    return model


def forward_flops(model: torch.nn.Module, pixel_values: torch.Tensor, **kwargs) -> int:
    """FLOPs of one forward pass as torch's flop counter counts them (matmuls and convolutions), run under eager
    attention: the counter does not see inside CPU sdpa kernels."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(pixel_values, **kwargs)
    finally:
        model.set_attn_implementation(previous)
    return counter.get_total_flops()


def build_models(family: str) -> tuple[dict[str, torch.nn.Module], torch.nn.Module]:
    """The peers of a family ({name: model}) and ours with the transformers peer's weights."""
    torch.manual_seed(0)
    if family == "vit":  # ViT-B/16 at 224 px
        reference = ViTForImageClassification(ViTConfig(num_labels=1000, layer_norm_eps=1e-6)).eval()
    else:  # Swin-T, window 7, 224 px (transformers' defaults are swin-tiny-patch4-window7-224)
        reference = SwinForImageClassification(SwinConfig(num_labels=1000)).eval()
    peers = {"transformers": reference}
    ours = from_transformers(reference).eval()
    timm_model = timm_vit(reference) if family == "vit" else timm_swin(ours)
    if timm_model is not None:
        peers["timm"] = timm_model
    return peers, ours


def compare(family: str, attention_kinds: list[str], batch_sizes: list[int], repeats: int, peak: float) -> None:
    """Print images/s of ours and the peers, the ratios, and our share of the matmul rate."""
    peers, ours = build_models(family)
    print(f"\n{family}: peers {', '.join(peers)}{'' if 'timm' in peers else ' (timm not installed)'}")
    print(f"{'attention':<9} {'batch':>5} {'ours img/s':>11} " + " ".join(f"{p + ' img/s':>18}" for p in peers)
          + " " + " ".join(f"{'vs ' + p:>16}" for p in peers) + f" {'ours GFLOP/s':>13} {'of peak':>8}")
    for attention in attention_kinds:
        for model in (ours, peers["transformers"]):
            model.set_attn_implementation(attention)
        for batch_size in batch_sizes:
            pixels = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(batch_size))
            models = {"ours": ours, **peers}
            results = median_times({name: partial(model, pixels) for name, model in models.items()}, repeats)
            ours_logits = results["ours"][1].logits
            for name in peers:
                peer_logits = results[name][1] if name == "timm" else results[name][1].logits
                difference = (ours_logits - peer_logits).abs().max().item()
                if difference > 1e-3:
                    raise RuntimeError(f"ours and {name} disagree: max |logit difference| {difference:.2e}")
            rates = {name: batch_size / seconds for name, (seconds, _) in results.items()}
            gflops = forward_flops(ours, pixels) / results["ours"][0] / 1e9
            print(f"{attention:<9} {batch_size:>5} {rates['ours']:>11.2f} "
                  + " ".join(f"{rates[p]:>18.2f}" for p in peers) + " "
                  + " ".join(f"{rates['ours'] / rates[p]:>15.2f}x" for p in peers)
                  + f" {gflops:>13.1f} {gflops / peak:>7.0%}")


def sweep(sides: list[int], repeats: int, plot_path: str | None) -> None:
    """FLOPs and seconds per image of our Swin-T and ViT-B/16 over image sides; optionally plot them."""
    models = {family: build_models(family)[1] for family in ("swin", "vit")}
    rows = []
    print(f"\n{'side':>5} {'area/224^2':>11} {'Swin-T GFLOP':>13} {'ViT-B/16 GFLOP':>15} {'Swin-T s':>9} "
          f"{'ViT-B/16 s':>11}")
    for side in sides:
        pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        calls = {
            "swin": partial(models["swin"], pixels),
            "vit": partial(models["vit"], pixels, interpolate_pos_encoding=True),
        }
        flops = {
            "swin": forward_flops(models["swin"], pixels) / 1e9,
            "vit": forward_flops(models["vit"], pixels, interpolate_pos_encoding=True) / 1e9,
        }
        times = {family: seconds for family, (seconds, _) in median_times(calls, repeats).items()}
        rows.append((side, flops, times))
        print(f"{side:>5} {(side / 224) ** 2:>11.2f} {flops['swin']:>13.1f} {flops['vit']:>15.1f} "
              f"{times['swin']:>9.3f} {times['vit']:>11.3f}")
    if plot_path:
        plot_sweep(rows, plot_path)
        print(f"plot: {plot_path}")


def plot_sweep(rows: list, path: str) -> None:
    """GFLOP per image, GFLOP per unit of area and seconds per image against image area, one line per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(14, 4))
    FigureCanvasAgg(figure)
    areas = [(side / 224) ** 2 for side, _, _ in rows]
    panels = (
        ("GFLOP per image", lambda row, family, area: row[1][family]),
        ("GFLOP per 224x224 of area", lambda row, family, area: row[1][family] / area),
        ("seconds per image", lambda row, family, area: row[2][family]),
    )
    for axes, (label, value) in zip(figure.subplots(1, 3), panels):
        for family, name in (("swin", "Swin-T"), ("vit", "ViT-B/16")):
            axes.plot(areas, [value(row, family, area) for row, area in zip(rows, areas)], marker="o", label=name)
        axes.set_xlabel("image area (in units of 224 x 224)")
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Swin's cost is proportional to image area (flat cost per area); ViT's cost per area grows "
                    "with the token count, as its global attention is quadratic")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["vit", "swin"], choices=["vit", "swin"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--attention", nargs="+", default=["eager", "sdpa"], choices=["eager", "sdpa"])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sweep", action="store_true", help="also measure cost against image size")
    parser.add_argument("--sides", type=int, nargs="+", default=[224, 320, 448, 512, 768])
    parser.add_argument("--plot", help="PNG path for the sweep's plot (needs matplotlib)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads; fp32; measured fp32 matmul {peak:.0f} GFLOP/s")
    for family in args.models:
        compare(family, args.attention, args.batch_sizes, args.repeats, peak)
    if args.sweep:
        sweep(args.sides, max(3, args.repeats // 2), args.plot)


if __name__ == "__main__":
    main()
