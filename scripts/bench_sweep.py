"""Cost against image size: FLOPs and seconds per image of our Swin-T and ViT-B/16 over image sides, as a table and
(with `--plot PATH`, needs matplotlib) a picture against image area, where Swin's cost grows linearly and ViT's
with the square of the token count.

    python scripts/bench_sweep.py                              # sides 224, 320, 448, 512, 768
    python scripts/bench_sweep.py --sides 224 448 --plot cost.png
"""

import argparse
from functools import partial

import torch
from bench_models import swin_models, vit_models
from benchmarking import best_times, counted_flops, eager_attention


def sweep(sides: list[int], repeats: int) -> list[tuple[int, dict[str, float], dict[str, float]]]:
    """(side, GFLOP per image, seconds per image) of each model for every image side, printed as it goes."""
    models = {"swin": swin_models()["ours"], "vit": vit_models("b/16")["ours"]}
    options = {"swin": {}, "vit": {"interpolate_pos_encoding": True}}
    rows = []
    print(
        f"{'side':>5} {'area/224^2':>11} {'Swin-T GFLOP':>13} {'ViT-B/16 GFLOP':>15} {'Swin-T s':>9} {'ViT-B/16 s':>11}"
    )
    for side in sides:
        pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        calls = {family: partial(model, pixels, **options[family]) for family, model in models.items()}
        flops = {}
        for family, call in calls.items():
            with eager_attention(models[family]):
                flops[family] = counted_flops(call) / 1e9
        times = {family: seconds for family, (seconds, _) in best_times(calls, repeats).items()}
        rows.append((side, flops, times))
        print(
            f"{side:>5} {(side / 224) ** 2:>11.2f} {flops['swin']:>13.1f} {flops['vit']:>15.1f} "
            f"{times['swin']:>9.3f} {times['vit']:>11.3f}"
        )
    return rows


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
    for axes, (label, value) in zip(figure.subplots(1, 3), panels, strict=True):
        for family, name in (("swin", "Swin-T"), ("vit", "ViT-B/16")):
            axes.plot(
                areas, [value(row, family, area) for row, area in zip(rows, areas, strict=True)], marker="o", label=name
            )
        axes.set_xlabel("image area (in units of 224 x 224)")
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(
        "Swin's cost is proportional to image area (flat cost per area); ViT's cost per area grows "
        "with the token count, as its global attention is quadratic"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[224, 320, 448, 512, 768])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--plot", help="PNG path for the plot (needs matplotlib)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = sweep(args.sides, args.repeats)
    if args.plot:
        plot_sweep(rows, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
