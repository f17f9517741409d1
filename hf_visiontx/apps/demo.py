"""End-to-end demo: train all three families, the Transformer's decoder as a language model and the image captioner
on the embedded data, score them, reload them, use them.

For each run the demo runs exactly what `hf-visiontx train <run> --output-dir demo-output/<run>` runs
(the recipe in `hf_visiontx.training.recipes`, evaluation and a checkpoint every epoch, the best model saved with a model
card), then reloads the saved model through the Auto classes and shows what it does:

- Transformer: German number words -> English ("siebenundachtzig" -> "eighty-seven"), sacreBLEU, chrF and exact
  match on 500 held-out numbers; reloaded with `AutoModelForSeq2SeqLM` / `AutoTokenizer`, translating new input.
- ViT and Swin: scikit-learn's 8x8 digits upscaled to 32x32 RGB, accuracy on 360 held-out images; reloaded with
  `AutoModelForImageClassification` / `AutoImageProcessor`, classifying test images.
- Language model (`lm`, the Transformer's decoder alone): counting in English words, perplexity and next-number
  accuracy on 300 held-out counts; reloaded with `AutoModelForCausalLM` and used through
  `pipeline("text-generation")`, continuing held-out prompts such as "seventeen, eighteen,".
- Captioner (a ViT encoder with the Transformer's decoder): strings of 1-4 handwritten digits captioned in words
  ("three hundred twelve"), sacreBLEU and exact match on 500 held-out images of numbers it never saw; reloaded with
  `AutoModelForImageTextToText` / `AutoImageProcessor` / `AutoTokenizer` and through the `image-captioning`
  pipeline, captioning test images.
"""

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    pipeline,
)

from ..data import digit_strings, digits, load_translation_data
from ..data.captions import DIGIT_STRINGS
from ..data.language_modeling import counting_prompts, load_text_data
from ..pipelines import CAPTIONING_TASK
from ..training import TrainOptions, TrainResult, train
from ..training.language_model import next_number_accuracy
from ..training.recipes import RUN_NAMES, run_task

SHOWCASE = ("siebenundachtzig", "dreihundertzwölf", "neunzehntausendvierhundertsiebenundachtzig")
COUNTING_SHOWCASE = ("seventeen, eighteen,", "ninety-seven, ninety-eight, ninety-nine,")
HEADLINE_METRIC = {  # the test metric the summary shows, per task of a run
    "translation": "sacrebleu",
    "image-classification": "accuracy",
    "text-generation": "next_number_accuracy",
    "image-to-text": "exact_match",
}


@dataclass
class DemoSettings:
    """What the demo runs.

    Args:
        output_dir: each run's model is saved in `output_dir/<run>`.
        families: the runs to train, in order: family names, "lm" and "captioner".
        epochs: override every recipe's number of epochs (None: the recipes').
        seed: seed of every run.
        progress: show progress bars.
    """

    output_dir: Path = Path("demo-output")
    families: Sequence[str] = field(default_factory=lambda: list(RUN_NAMES))
    epochs: int | None = None
    seed: int = 0
    progress: bool = True


def show_translations(model_dir: Path, sources: Sequence[str], references: Sequence[str]) -> None:
    """Reload a saved translator through the Auto classes and print its beam-search translations of `sources`
    (marked against `references`) and of the showcase sentences."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    print(f"    reloaded {type(model).__name__} and {type(tokenizer).__name__} from {model_dir}")
    inputs = list(sources) + list(SHOWCASE)
    batch = tokenizer(inputs, return_tensors="pt", padding=True)
    with torch.no_grad():
        generated = model.generate(**batch, num_beams=4, max_new_tokens=48)
    translations = tokenizer.batch_decode(generated, skip_special_tokens=True)
    for source, translation, reference in zip(
        inputs, translations, list(references) + [None] * len(SHOWCASE), strict=True
    ):
        mark = "" if reference is None else ("  ok" if translation == reference else f"  (expected {reference!r})")
        print(f"    {source:>45} -> {translation}{mark}")


def show_classifications(model_dir: Path, count: int = 10) -> None:
    """Reload a saved digit classifier through the Auto classes and print its predictions for the first `count`
    test images."""
    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    print(f"    reloaded {type(model).__name__} and {type(processor).__name__} from {model_dir}")
    test = digits(image_size=max(model.config.image_height_width))["test"].select(range(count))
    pixel_values = processor(images=list(test["image"]), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probabilities = model(pixel_values).logits.softmax(-1)  # [count, classes]
    scores, predicted = probabilities.max(-1)
    for truth, label, score in zip(test["label"], predicted.tolist(), scores.tolist(), strict=True):
        name = model.config.id2label[label]
        mark = "ok" if label == truth else f"wrong (it is a {truth})"
        print(f"    digit {truth}: predicted {name} ({score:.1%})  {mark}")


def show_captions(model_dir: Path, seed: int = 0, count: int = 8) -> None:
    """Reload a saved digit-string captioner through the Auto classes and print its beam-search captions of the first
    `count` test images (marked against the truth), then check that the `image-captioning` pipeline gives the same
    captions."""
    processor = AutoImageProcessor.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    print(
        f"    reloaded {type(model).__name__} ({type(model.encoder).__name__} + {type(model.decoder).__name__}) from {model_dir}"
    )
    digit_size = model.config.encoder.image_height_width[0]
    test = digit_strings(**{**DIGIT_STRINGS, "digit_size": digit_size}, seed=seed)["test"].select(range(count))
    images = list(test["image"])
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        generated = model.generate(pixel_values, num_beams=4)
    captions = [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    for number, truth, text in zip(test["number"], test["caption"], captions, strict=True):
        mark = "ok" if text == truth else f"wrong (it is {truth!r})"
        print(f"    {number:>4}: {text!r}  {mark}")
    piped = [
        output["generated_text"] for output in pipeline(CAPTIONING_TASK, model=str(model_dir))(images, num_beams=4)
    ]
    agreement = "the same captions" if piped == captions else f"other captions: {piped}"
    print(f"    pipeline({CAPTIONING_TASK!r}) gives {agreement}")


def show_continuations(model_dir: Path, seed: int, count: int = 6) -> float:
    """Reload a saved counting language model through `AutoModelForCausalLM`, continue held-out prompts and the
    showcase prompts with `pipeline("text-generation")` (greedy), and return its next-number accuracy on all the
    held-out test prompts."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    print(f"    reloaded {type(model).__name__} and {type(tokenizer).__name__} from {model_dir}")
    prompts, answers = counting_prompts(load_text_data(seed=seed)["test"])
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    shown = prompts[:count] + list(COUNTING_SHOWCASE)
    outputs = generator(shown, max_new_tokens=12, do_sample=False, return_full_text=False)
    for prompt, output, answer in zip(shown, outputs, answers[:count] + [None] * len(COUNTING_SHOWCASE), strict=True):
        continuation = output[0]["generated_text"]
        right = answer is not None and continuation.split(",")[0] == f" {answer}"
        mark = "" if answer is None else ("  ok" if right else f"  (expected {answer!r})")
        print(f"    {prompt} ->{continuation}{mark}")
    accuracy = next_number_accuracy(model, tokenizer, prompts, answers)
    print(f"    next-number accuracy on {len(prompts)} held-out prompts: {accuracy:.1%}")
    return accuracy


def run_demo(settings: DemoSettings) -> dict[str, TrainResult]:
    """Train, score, reload and use each run of `settings.families`; return each run's training result."""
    start = time.perf_counter()
    results, durations = {}, {}
    for step, name in enumerate(settings.families, start=1):
        print(f"[{step}/{len(settings.families)}] training {name} on the embedded data")
        began = time.perf_counter()
        options = TrainOptions(
            name,
            output_dir=settings.output_dir / name,
            epochs=settings.epochs,
            seed=settings.seed,
            progress=settings.progress,
        )
        shutil.rmtree(options.checkpoints_dir, ignore_errors=True)  # a new demo run replaces an earlier one's
        results[name] = train(options)
        durations[name] = time.perf_counter() - began
        task = run_task(name)
        if task == "translation":
            test = _number_test_examples(settings.seed, count=6)
            show_translations(results[name].model_dir, test["source"], test["target"])
        elif task == "text-generation":
            show_continuations(results[name].model_dir, settings.seed)
        elif task == "image-to-text":
            show_captions(results[name].model_dir, settings.seed)
        else:
            show_classifications(results[name].model_dir)
    print("\nrun          test metric        value   seconds")
    for name, result in results.items():
        metric = HEADLINE_METRIC[run_task(name)]
        print(f"{name:<12} {metric:<15} {result.metrics['test'][metric]:>8.4f}   {durations[name]:>7.0f}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return results


def _number_test_examples(seed: int, count: int) -> dict[str, list[str]]:
    test = load_translation_data(seed=seed)["test"].select(range(count))
    return {"source": list(test["source"]), "target": list(test["target"])}
