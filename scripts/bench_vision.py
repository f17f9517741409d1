"""Vision inference speed: our ViT against transformers' ViT (and timm's, when installed), side by side.

ViT-B/16 at 224 px, fp32, through each model's forward as users call it. Ours holds the transformers model's
weights, converted, and the outputs are compared. For every attention implementation (eager, sdpa) and batch size
the script prints images/s of each implementation, our ratio to each peer, and the achieved GFLOP/s (FLOPs counted
by torch's flop counter) as a share of this machine's measured fp32 matmul rate.

    python scripts/bench_vision.py                       # batch 1 and 8, eager and sdpa
    python scripts/bench_vision.py --batch-sizes 8 --attention sdpa --repeats 10
"""

import argparse
from functools import partial

import torch
from benchmarking import matmul_gflops, median_times
from torch.utils.flop_counter import FlopCounterMode
from transformers import ViTConfig, ViTForImageClassification

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


def forward_flops(model, pixel_values: torch.Tensor) -> int:
    """FLOPs of one forward pass, as torch's flop counter counts them (matmuls and convolutions)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(pixel_values)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--attention", nargs="+", default=["eager", "sdpa"], choices=["eager", "sdpa"])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    reference = ViTForImageClassification(ViTConfig(num_labels=1000, layer_norm_eps=1e-6)).eval()  # ViT-B/16, 224
    ours = from_transformers(reference).eval()
    peers = {"transformers": reference}
    timm_model = timm_vit(reference)
    if timm_model is not None:
        peers["timm"] = timm_model
    peak = matmul_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads; ViT-B/16 224 px fp32; measured fp32 matmul "
          f"{peak:.0f} GFLOP/s; peers: {', '.join(peers)}{'' if timm_model else ' (timm not installed)'}")
    header = f"{'attention':<9} {'batch':>5} {'ours img/s':>11} " + " ".join(f"{p + ' img/s':>18}" for p in peers)
    print(header + " " + " ".join(f"{'vs ' + p:>16}" for p in peers) + f" {'ours GFLOP/s':>13} {'of peak':>8}")
    for attention in args.attention:
        for model in (ours, reference):
            model.set_attn_implementation(attention)
        for batch_size in args.batch_sizes:
            pixels = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(batch_size))
            models = {"ours": ours, **peers}
            results = median_times({name: partial(model, pixels) for name, model in models.items()}, args.repeats)
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


if __name__ == "__main__":
    main()
