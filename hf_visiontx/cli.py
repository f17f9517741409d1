"""The `hf-visiontx` command line."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _analyze(args: argparse.Namespace) -> None:
    from transformers import AutoConfig

    from .analysis import write_analysis
    from .swin_pictures import write_swin_model_pictures

    is_swin = AutoConfig.from_pretrained(args.model_dir).model_type == "vtx_swin"
    write = write_swin_model_pictures if is_swin else write_analysis
    for path in write(args.model_dir, args.image, args.out):
        print(path)


def _convert(args: argparse.Namespace) -> None:
    from .convert import convert_checkpoint

    out_dir = convert_checkpoint(args.src_dir, args.out_dir)
    print(f"converted {args.src_dir} -> {out_dir}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(output_dir=args.output_dir, epochs=args.epochs, train_size=args.train_size)
    run_demo(settings)


def _push(args: argparse.Namespace) -> None:
    from .hub import push

    commit = push(args.model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token)
    print(f"pushed {args.model_dir} to {args.repo_id} (revision {args.revision or 'main'}, commit {commit})")


def _pull(args: argparse.Namespace) -> None:
    from .hub import pull

    directory = pull(args.repo_id, args.out_dir, revision=args.revision, token=args.token)
    print(f"pulled {args.repo_id} (revision {args.revision or 'main'}) into {directory}")


def _swin_windows(args: argparse.Namespace) -> None:
    from .swin_pictures import write_swin_pictures

    for path in write_swin_pictures(args.out, args.height, args.width, args.window, args.shift):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="hf-visiontx", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser(
        "analyze",
        help="plot what a model does with one image: for ViT attention distances, rollout and position-embedding "
        "similarity; for Swin its shifted windows, attention mask and relative position index",
    )
    analyze.add_argument("model_dir", type=Path, help="saved model directory (config, weights, image processor)")
    analyze.add_argument("image", type=Path, help="an image file that Pillow can read")
    analyze.add_argument("--out", type=Path, required=True, help="directory for the three PNG plots")
    analyze.set_defaults(handler=_analyze)

    convert = commands.add_parser(
        "convert", help="convert a saved transformers checkpoint (Marian, ViT, Swin) into hf_visiontx classes"
    )
    convert.add_argument("src_dir", type=Path, help="directory saved with save_pretrained (config.json + weights)")
    convert.add_argument("out_dir", type=Path, help="new directory for the converted model (must not exist)")
    convert.set_defaults(handler=_convert)

    demo = commands.add_parser("demo", help="train, evaluate, save, reload and use a small translation model")
    demo.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--train-size", type=int, default=12000)
    demo.set_defaults(handler=_demo)

    token_help = "Hub token (default: HF_TOKEN or the stored login); sent to the Hub only, never printed or saved"
    push = commands.add_parser(
        "push", help="upload a saved model directory (weights, config, code, tokenizer or image processor, card) "
        "to the Hub in one commit"
    )
    push.add_argument("model_dir", type=Path, help="directory written by save_pretrained")
    push.add_argument("repo_id", help="Hub repository, user/name; created when missing")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", help="branch to commit to (created when missing; default main)")
    push.add_argument("--token", help=token_help)
    push.set_defaults(handler=_push)

    pull = commands.add_parser("pull", help="download a model (safetensors weights only) into a new directory")
    pull.add_argument("repo_id", help="Hub repository, user/name")
    pull.add_argument("out_dir", type=Path, help="new directory for the files (must not exist or be empty)")
    pull.add_argument("--revision", help="branch, tag or commit id (default main)")
    pull.add_argument("--token", help=token_help)
    pull.set_defaults(handler=_pull)

    swin_windows = commands.add_parser(
        "swin-windows", help="draw Swin's shifted windows, cyclic shift, attention mask and relative position index"
    )
    swin_windows.add_argument("--out", type=Path, required=True, help="directory for the two PNG pictures")
    swin_windows.add_argument("--height", type=int, default=8, help="map height in tokens, `height` (%(default)s)")
    swin_windows.add_argument("--width", type=int, default=8, help="map width in tokens, `width` (%(default)s)")
    swin_windows.add_argument("--window", type=int, default=4, help="window side M, `window_size` (%(default)s)")
    swin_windows.add_argument("--shift", type=int, default=2, help="shift s in [0, M), `shift_size` (%(default)s)")
    swin_windows.set_defaults(handler=_swin_windows)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status (errors are printed, not raised)."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, OSError) as error:  # bad input or files: a message, not a traceback
        print(f"hf-visiontx {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
