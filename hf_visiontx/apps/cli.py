"""The `hf-visiontx` command line."""

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from ..export.ctranslate2 import QUANTIZATIONS
from ..modeling.families import FAMILIES
from ..training.options import CAPTIONER_ENCODERS
from ..training.recipes import RUN_NAMES, run_task
from .errors import debugging, error_line


def _analyze(args: argparse.Namespace) -> None:
    from transformers import AutoConfig

    from ..analysis import write_analysis, write_swin_model_pictures
    from ..hub.locations import check_model_location

    writers = {"attention": write_analysis, "windows": write_swin_model_pictures}  # `Family.analysis` -> writer
    check_model_location("`model_dir`", args.model_dir)
    model_type = AutoConfig.from_pretrained(args.model_dir).model_type
    # Other ViT-like models (transformers' ViT, DeiT) share our ViT's outputs: the attention analysis reads them.
    analysis = {f.model_type: f.analysis for f in FAMILIES}.get(model_type, "attention")
    if analysis is None:
        drawn = [f.model_type for f in FAMILIES if f.analysis]
        raise ValueError(f"`model_dir` {args.model_dir} holds a {model_type!r} model; `analyze` draws {drawn} models.")
    for path in writers[analysis](args.model_dir, args.image, args.out):
        print(path)


def _caption(args: argparse.Namespace) -> None:
    from .inference import caption

    captions = caption(
        args.model,
        args.images,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    for path, text in zip(args.images, captions, strict=True):
        print(f"{path}: {text}")


def _classify(args: argparse.Namespace) -> None:
    from .inference import classify

    for path, predictions in zip(
        args.images, classify(args.model, args.images, args.top_k, args.batch_size), strict=True
    ):
        print(path)
        for prediction in predictions:
            print(f"  {prediction['score']:7.2%}  {prediction['label']}")


def _convert(args: argparse.Namespace) -> None:
    from ..convert import convert_checkpoint

    out_dir = convert_checkpoint(args.src_dir, args.out_dir)
    print(f"converted {args.src_dir} -> {out_dir}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(
        output_dir=args.output_dir,
        families=args.only or list(RUN_NAMES),
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
    )
    run_demo(settings)


def _export(args: argparse.Namespace) -> None:
    from ..export import export_ctranslate2, export_onnx

    if args.to == "onnx":
        if args.quantization is not None:
            raise ValueError("`--quantization` applies to `--to ctranslate2` only.")
        report = export_onnx(args.model, args.out_dir)
        print(
            f"exported {args.model} -> {report.path} (outputs {', '.join(report.outputs)}; ONNX Runtime agrees with "
            f"PyTorch to {report.max_abs_difference:.1e})"
        )
        return
    report = export_ctranslate2(args.model, args.out_dir, quantization=args.quantization or "none")
    quantized = (
        f"; {report.quantization} weights reproduce {report.quantized_agreement:.1%} of them"
        if report.quantized_agreement is not None
        else ""
    )
    print(
        f"exported {args.model} -> {report.path} (CTranslate2; fp32 greedy tokens identical to generate() on "
        f"{report.sentences} probe sentences, {report.tokens} tokens{quantized})"
    )


def _generate(args: argparse.Namespace) -> None:
    from .inference import generate_text

    continuations = generate_text(
        args.model,
        args.prompts,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        num_beams=args.num_beams,
        seed=args.seed,
    )
    for prompt, continuation in zip(args.prompts, continuations, strict=True):
        print(f"{prompt} -> {continuation}")


def _hub_token(args: argparse.Namespace) -> str | None:
    """The token of `push`/`pull`: `--token` or the first line of `--token-file`; None (HF_TOKEN or the stored
    login) when neither is given."""
    from ..hub import read_token_file

    return read_token_file(args.token_file) if args.token_file is not None else args.token


def _add_hub_options(command: argparse.ArgumentParser) -> None:
    """`--token` or `--token-file`, and `--timeout`, of `push` and `pull`."""
    token = command.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        help="Hub token (default: HF_TOKEN or the stored login); sent to the Hub only, never printed or saved. "
        "A token on the command line is visible to other users of the machine (process list) and stays in "
        "the shell history: prefer HF_TOKEN or --token-file",
    )
    token.add_argument("--token-file", type=Path, help="read the Hub token from the first line of this file")
    command.add_argument(
        "--timeout",
        type=float,
        help="seconds each Hub request may wait for an answer (default: HF_VISIONTX_HUB_TIMEOUT, else 30); "
        "a step that fails for a passing reason is tried HF_VISIONTX_HUB_TRIES times (default 3)",
    )


def _push(args: argparse.Namespace) -> None:
    from ..hub import push

    commit = push(
        args.model_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        token=_hub_token(args),
        timeout=args.timeout,
    )
    print(f"pushed {args.model_dir} to {args.repo_id} (revision {args.revision or 'main'}, commit {commit})")


def _pull(args: argparse.Namespace) -> None:
    from ..hub import pull

    directory = pull(args.repo_id, args.out_dir, revision=args.revision, token=_hub_token(args), timeout=args.timeout)
    print(f"pulled {args.repo_id} (revision {args.revision or 'main'}) into {directory}")


def _swin_windows(args: argparse.Namespace) -> None:
    from ..analysis import write_swin_pictures

    for path in write_swin_pictures(args.out, args.height, args.width, args.window, args.shift):
        print(path)


def _train(args: argparse.Namespace) -> None:
    from ..training import TrainOptions, train

    # The `train` options are named as the fields of TrainOptions (`--from` is stored as `from_model`).
    fields = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainOptions) if field.name in args}
    train(TrainOptions(**fields, progress=not args.no_progress))


def _translate(args: argparse.Namespace) -> None:
    from .inference import translate

    translations = translate(
        args.model, args.texts, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    for text, translation in zip(args.texts, translations, strict=True):
        print(f"{text} -> {translation}")


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a Transformer translator, a ViT / Swin image classifier, the Transformer's decoder as a "
        "language model or an image captioner (embedded data by default), evaluate it, save it with a model card, "
        "optionally push it",
        description="Without --dataset: the Transformer learns German -> English number words, ViT and Swin the "
        "8x8 digits (upscaled), the language model (lm) counting in English words, the captioner strings of 1-4 "
        "digits captioned in words. Each epoch ends with an evaluation and a checkpoint in OUTPUT_DIR/checkpoints; "
        "the best model is saved in OUTPUT_DIR with its tokenizer and/or image processor, metrics.json and "
        "README.md.",
    )
    train.add_argument("family", choices=RUN_NAMES, help=", ".join(f"{name} ({run_task(name)})" for name in RUN_NAMES))
    data = train.add_argument_group("data")
    data.add_argument(
        "--dataset",
        nargs="+",
        metavar="SOURCE",
        help="a `datasets` name, a local folder (an image folder: one sub-folder per class), or CSV / "
        "JSON files (for lm also plain text files, one document per line) as FILE or SPLIT=FILE (train=a.csv "
        "validation=b.csv test=c.csv); missing validation / test splits are carved out of train",
    )
    data.add_argument("--image-column", default="image", help="column with the images or image paths (%(default)s)")
    data.add_argument("--label-column", default="label", help="column with the class ids or names (%(default)s)")
    data.add_argument("--source-column", default="source", help="column with the text to translate (%(default)s)")
    data.add_argument("--target-column", default="target", help="column with its translation (%(default)s)")
    data.add_argument("--caption-column", default="caption", help="column with each image's caption (%(default)s)")
    data.add_argument("--text-column", default="text", help="column with the documents of lm (%(default)s)")
    model = train.add_argument_group("model")
    model.add_argument(
        "--preset",
        help="a paper preset: transformer base|big, vit ti/16 ... h/14, swin tiny ... large, lm gpt2|gpt2-medium "
        "(default: a small model for the embedded data)",
    )
    model.add_argument(
        "--from",
        dest="from_model",
        metavar="MODEL",
        help="fine-tune this saved model directory or Hub id (image models get a new head when the "
        "number of classes differs; lm: a saved causal LM)",
    )
    model.add_argument(
        "--encoder", choices=CAPTIONER_ENCODERS, help="the captioner's image encoder (default: vit); captioner only"
    )
    model.add_argument(
        "--image-size",
        type=int,
        help="image side of a new vision model (default: the preset's); captioner: the digit size of the embedded "
        "data (8), or the side of other images (32)",
    )
    model.add_argument(
        "--vocab-size",
        type=int,
        help="vocabulary of a new Transformer (600 for the small model, 37000 for presets), language model "
        "(byte-level BPE: 400 for the small model, 50257 for presets) or captioner's decoder (80)",
    )
    run = train.add_argument_group("run")
    run.add_argument("--epochs", type=int, help="default: the recipe's")
    run.add_argument("--batch-size", type=int, help="default: the recipe's")
    run.add_argument("--learning-rate", type=float, help="peak learning rate (default: the recipe's)")
    run.add_argument("--output-dir", type=Path, required=True, help="where the model and the checkpoints go")
    run.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT_DIR")
    run.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and order (%(default)s)")
    run.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the trained model to this Hub repository")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)


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

    caption = commands.add_parser("caption", help="caption image files with a saved image captioner")
    caption.add_argument("model", help="saved captioner directory or Hub id (with its tokenizer and image processor)")
    caption.add_argument("images", nargs="+", type=Path, help="image files")
    caption.add_argument("--num-beams", type=int, default=4, help="beam size; 1 = greedy (%(default)s)")
    caption.add_argument("--max-new-tokens", type=int, default=32, help="longest caption, in tokens (%(default)s)")
    caption.add_argument("--batch-size", type=int, default=16, help="images per batch (%(default)s)")
    caption.set_defaults(handler=_caption)

    classify = commands.add_parser("classify", help="the most likely classes of image files")
    classify.add_argument("model", help="saved image classifier directory or Hub id")
    classify.add_argument("images", nargs="+", type=Path, help="image files")
    classify.add_argument("--top-k", type=int, default=5, help="classes to show per image (%(default)s)")
    classify.add_argument("--batch-size", type=int, default=16, help="images per forward pass (%(default)s)")
    classify.set_defaults(handler=_classify)

    convert = commands.add_parser(
        "convert", help="convert a saved transformers checkpoint (Marian, GPT-2, ViT, Swin) into hf_visiontx classes"
    )
    convert.add_argument("src_dir", type=Path, help="directory saved with save_pretrained (config.json + weights)")
    convert.add_argument("out_dir", type=Path, help="new directory for the converted model (must not exist)")
    convert.set_defaults(handler=_convert)

    demo = commands.add_parser(
        "demo",
        help="train the Transformer on number words, ViT and Swin on digits, the language model on counting and "
        "the captioner on digit strings, "
        "score, reload and use them",
    )
    demo.add_argument(
        "--output-dir",
        type=Path,
        default=Path("demo-output"),
        help="each model is saved in OUTPUT_DIR/<run> (%(default)s)",
    )
    demo.add_argument(
        "--only",
        action="append",
        choices=RUN_NAMES,
        help="train only this family or run (repeatable; default: all)",
    )
    demo.add_argument("--epochs", type=int, help="override every recipe's number of epochs")
    demo.add_argument("--seed", type=int, default=0, help="seed of every run (%(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)

    export = commands.add_parser(
        "export",
        help="export a saved ViT or Swin model to ONNX (dynamic batch), checked with ONNX Runtime, or a Transformer "
        "translator to CTranslate2, checked against generate(); needs the onnx or ctranslate2 extra "
        "(pip install hf_visiontx[onnx] / [ctranslate2])",
    )
    export.add_argument(
        "model", type=Path, help="saved model directory (a translator with its tokenizer for CTranslate2)"
    )
    export.add_argument("out_dir", type=Path, help="new directory for the exported model and what it needs to run")
    export.add_argument("--to", choices=["onnx", "ctranslate2"], default="onnx", help="the format (%(default)s)")
    export.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        help="CTranslate2 weight type (default none: fp32); int8 runs int8 on a CPU",
    )
    export.set_defaults(handler=_export)

    generate = commands.add_parser("generate", help="continue prompts with a saved language model")
    generate.add_argument("model", help="saved causal LM directory or Hub id (with its tokenizer)")
    generate.add_argument("prompts", nargs="+", help="texts to continue")
    generate.add_argument("--max-new-tokens", type=int, default=32, help="longest continuation (%(default)s)")
    generate.add_argument("--do-sample", action="store_true", help="sample instead of greedy / beam search")
    generate.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (%(default)s)")
    generate.add_argument("--top-k", type=int, default=50, help="sample from the k likeliest tokens (%(default)s)")
    generate.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (%(default)s)")
    generate.add_argument("--num-beams", type=int, default=1, help="beam size; 1 = greedy (%(default)s)")
    generate.add_argument("--seed", type=int, default=0, help="seed of sampling (%(default)s)")
    generate.set_defaults(handler=_generate)

    push = commands.add_parser(
        "push",
        help="upload a saved model directory (weights, config, code, tokenizer or image processor, card) "
        "to the Hub in one commit",
    )
    push.add_argument("model_dir", type=Path, help="directory written by save_pretrained")
    push.add_argument("repo_id", help="Hub repository, user/name; created when missing")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", help="branch to commit to (created when missing; default main)")
    _add_hub_options(push)
    push.set_defaults(handler=_push)

    pull = commands.add_parser("pull", help="download a model (safetensors weights only) into a new directory")
    pull.add_argument("repo_id", help="Hub repository, user/name")
    pull.add_argument("out_dir", type=Path, help="new directory for the files (must not exist or be empty)")
    pull.add_argument("--revision", help="branch, tag or commit id (default main)")
    _add_hub_options(pull)
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

    _add_train_parser(commands)

    translate = commands.add_parser("translate", help="translate sentences with a saved Transformer")
    translate.add_argument("model", help="saved model directory or Hub id (with its tokenizer)")
    translate.add_argument("texts", nargs="+", help="sentences to translate")
    translate.add_argument("--num-beams", type=int, default=4, help="beam size; 1 = greedy (%(default)s)")
    translate.add_argument("--max-new-tokens", type=int, default=128, help="longest translation (%(default)s)")
    translate.add_argument("--batch-size", type=int, default=16, help="sentences per batch (%(default)s)")
    translate.set_defaults(handler=_translate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status. A failure is printed as one line and returns 1 (with
    `HF_VISIONTX_DEBUG=1` it is raised with its traceback instead); an interruption (Ctrl-C) returns 130."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print(f"hf-visiontx {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debugging():
            raise
        print(f"hf-visiontx {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
