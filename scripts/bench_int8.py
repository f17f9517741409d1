"""int8 through torchao on the demo's trained models: quality and speed against fp32 and transformers' fp32 peers.

Loads the models `hf-visiontx demo` saves (translator, ViT, Swin), quantizes each with torchao's `quantize_` under
each int8 config (weight-only `Int8WeightOnlyConfig`, dynamic `Int8DynamicActivationInt8WeightConfig`, and for the
classifiers the dynamic one under torch.compile with inductor's freezing, the path where inductor puts the int8
matmuls on oneDNN), and prints:

- translation: sacreBLEU on the demo's held-out test split, fp32 and int8, and the difference; greedy batch-1
  generation rate (tokens/s) of ours fp32, ours int8 and transformers' MarianMTModel fp32 holding the same weights,
  with the ratio to Marian;
- ViT and Swin: top-1 agreement of int8 with fp32 on the held-out test digits, the accuracy of each, and images/s of
  ours (fp32 and int8) and of transformers' ViTForImageClassification / SwinForImageClassification fp32 holding the
  same weights, with the ratio to it.

The row "ours int8 torch.ao" is torch's older `torch.ao.quantization.quantize_dynamic` (fbgemm), for comparison.
The demo's models are small (d_model 128, 96 and 64-128): the ratios here are mostly about per-call overhead, not
matmul speed; `python scripts/bench.py --int8` measures the full-size models.

    python scripts/bench_int8.py                          # demo-output/, 2 threads
    python scripts/bench_int8.py /path/to/demo-output --threads 2 --repeats 5 --sentences 40
"""

import argparse
import copy
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import transformers
from bench_models import transformers_twin
from benchmarking import INT8_CONFIGS, frozen_compiled, round_times, steady_allocator, torch_ao_int8, torchao_int8
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    MarianConfig,
    MarianMTModel,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_visiontx.data import digits, load_translation_data
from hf_visiontx.training.metrics import load_metric

FP32 = "ours fp32"


def int8_variants(model: torch.nn.Module, compile_dynamic: bool) -> dict[str, Callable]:
    """The int8 versions of ours that are measured, by row name."""
    variants = {f"ours int8 {config}": torchao_int8(model, config) for config in INT8_CONFIGS}
    if compile_dynamic:
        variants["ours int8 dynamic, compiled"] = frozen_compiled(variants["ours int8 dynamic"])
    return variants | {"ours int8 torch.ao": torch_ao_int8(model)}


def rates(calls: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Items per second of each call (which returns how many items it made), best of `repeats` rounds."""
    timed = round_times(calls, repeats)
    return {name: result / min(times) for name, (times, result) in timed.items()}


def print_rates(rate: dict[str, float], unit: str, peer: str) -> None:
    for name, value in rate.items():
        print(f"  {name:<30} {value:>9.1f} {unit}   {value / rate[peer]:.2f}x {peer}")


# --- translation ------------------------------------------------------------------------------------------------


def marian_twin(ours: torch.nn.Module) -> MarianMTModel:
    """transformers' MarianMTModel with our translator's sizes and weights (its sinusoid tables replaced by ours,
    whose layout is the paper's)."""
    c = ours.config
    config = MarianConfig(
        vocab_size=c.vocab_size,
        d_model=c.d_model,
        **{
            f"{stack}_{f}": getattr(c, f"{stack}_{f}")
            for stack in ("encoder", "decoder")
            for f in ("layers", "attention_heads", "ffn_dim")
        },
        activation_function=c.activation_function,
        max_position_embeddings=c.max_position_embeddings,
        scale_embedding=c.scale_embedding,
        pad_token_id=c.pad_token_id,
        eos_token_id=c.eos_token_id,
        bos_token_id=c.bos_token_id,
        decoder_start_token_id=c.decoder_start_token_id,
        forced_eos_token_id=None,
        tie_word_embeddings=c.tie_word_embeddings,
    )
    torch.manual_seed(0)
    marian = transformers_twin(ours, MarianMTModel(config))
    with torch.no_grad():
        for stack in ("encoder", "decoder"):
            table = getattr(ours.model, stack).embed_positions.table  # [positions, d_model]
            getattr(marian.model, stack).embed_positions.weight.copy_(table)
    marian.generation_config = copy.deepcopy(ours.generation_config)
    return marian


def translations(model, tokenizer, sources: list[str], batch_size: int = 64) -> list[str]:
    """Greedy translations (the model's generation settings) of `sources`."""
    texts = []
    for start in range(0, len(sources), batch_size):
        batch = tokenizer(sources[start : start + batch_size], return_tensors="pt", padding=True)
        with torch.inference_mode():
            generated = model.generate(**batch, num_beams=1, do_sample=False)
        texts += [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    return texts


def tokens_one_by_one(model, encoded: list[dict[str, torch.Tensor]]) -> int:
    """Translate each encoded sentence alone (greedy, batch 1); the number of tokens generated."""
    return sum(model.generate(**inputs, num_beams=1, do_sample=False).shape[1] - 1 for inputs in encoded)


def translation(model_dir: Path, args) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ours = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    models = {FP32: ours} | int8_variants(ours, compile_dynamic=False) | {"Marian fp32": marian_twin(ours)}
    test = load_translation_data(seed=args.seed)["test"]
    sacrebleu = load_metric("sacrebleu")
    print(f"translation ({model_dir}, {len(test)} held-out sentences, greedy)")
    outputs = {name: translations(model, tokenizer, list(test["source"])) for name, model in models.items()}
    bleu = {
        name: sacrebleu.compute(predictions=texts, references=list(test["target"]))["score"]
        for name, texts in outputs.items()
    }
    for name, score in bleu.items():
        same = sum(a == b for a, b in zip(outputs[name], outputs[FP32], strict=True)) / len(test)
        print(f"  {name:<30} sacreBLEU {score:6.2f} ({score - bleu[FP32]:+.2f} vs fp32), {same:.1%} same translations")
    encoded = [tokenizer(text, return_tensors="pt") for text in test["source"][: args.sentences]]
    calls = {name: partial(tokens_one_by_one, model, encoded) for name, model in models.items()}
    print(f"  greedy batch 1, {args.sentences} sentences one by one:")
    print_rates(rates(calls, args.repeats), "tok/s", "Marian fp32")


# --- image classification ---------------------------------------------------------------------------------------


def classifier_twin(ours: torch.nn.Module, config_class: type, model_class: type, fields: str) -> torch.nn.Module:
    """transformers' `model_class` with our classifier's sizes and weights: the config fields named in `fields` (the
    same names in both configs) and the labels copied over."""
    c = ours.config
    config = config_class(
        **{name: getattr(c, name) for name in fields.split()}, id2label=c.id2label, label2id=c.label2id
    )
    return transformers_twin(ours, model_class(config))


VIT_FIELDS = (
    "image_size patch_size num_channels hidden_size num_hidden_layers num_attention_heads intermediate_size "
    "hidden_act layer_norm_eps qkv_bias"
)
SWIN_FIELDS = (
    "image_size patch_size num_channels embed_dim depths num_heads window_size mlp_ratio qkv_bias hidden_act "
    "use_absolute_embeddings layer_norm_eps"
)
vit_twin = partial(classifier_twin, config_class=ViTConfig, model_class=ViTForImageClassification, fields=VIT_FIELDS)
swin_twin = partial(
    classifier_twin, config_class=SwinConfig, model_class=SwinForImageClassification, fields=SWIN_FIELDS
)


def classify(model: Callable, batches: list[torch.Tensor]) -> torch.Tensor:
    """Predicted classes of all images, [images]."""
    return torch.cat([model(pixels).logits.argmax(-1) for pixels in batches])


def images_per_call(model: Callable, batches: list[torch.Tensor]) -> int:
    for pixels in batches:
        model(pixels)
    return sum(len(pixels) for pixels in batches)


def image_classification(model_dir: Path, twin: Callable, args) -> None:
    processor = AutoImageProcessor.from_pretrained(model_dir)
    ours = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    peer = twin(ours)
    compiled = {"ours fp32, compiled": frozen_compiled(ours)}  # what compiling alone gains
    models = {FP32: ours} | compiled | int8_variants(ours, compile_dynamic=True) | {"transformers fp32": peer}
    test = digits(image_size=max(ours.config.image_height_width), seed=args.seed)["test"]
    pixels = processor(images=list(test["image"]), return_tensors="pt")["pixel_values"]
    batches = list(pixels.split(args.batch_size))
    labels = torch.tensor(test["label"])
    accuracy = load_metric("accuracy")
    with torch.inference_mode():
        difference = (peer(pixels).logits - ours(pixels).logits).abs().max().item()
        predicted = {name: classify(model, batches) for name, model in models.items()}
    print(
        f"{type(ours).__name__} ({model_dir}, {len(test)} held-out digits; transformers' peer: max |dlogit| "
        f"{difference:.0e})"
    )
    for name, classes in predicted.items():
        agreement = (classes == predicted[FP32]).float().mean().item()
        score = accuracy.compute(predictions=classes, references=labels)["accuracy"]
        print(f"  {name:<30} accuracy {score:.2%}, top-1 agreement with fp32 {agreement:.2%}")
    calls = {name: partial(images_per_call, model, batches) for name, model in models.items()}
    print(f"  inference in batches of {args.batch_size}:")
    print_rates(rates(calls, args.repeats), "img/s", "transformers fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo_output", nargs="?", default="demo-output", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=40, help="sentences translated one by one per timed call")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass when timing")
    parser.add_argument("--seed", type=int, default=0, help="the demo's seed (its held-out splits)")
    parser.add_argument("--only", choices=["transformer", "vit", "swin"], help="one model only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated|torch.quantize_per_tensor")
    steady_allocator()
    print(f"torch {torch.__version__}, {args.threads} threads")
    if args.only in (None, "transformer"):
        translation(args.demo_output / "transformer", args)
    if args.only in (None, "vit"):
        image_classification(args.demo_output / "vit", vit_twin, args)
    if args.only in (None, "swin"):
        image_classification(args.demo_output / "swin", swin_twin, args)


if __name__ == "__main__":
    main()
