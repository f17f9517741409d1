"""The engines users deploy with, as more implementations of the bench's workloads (`bench.py --engines`): our
Transformer exported to CTranslate2 (run in fp32 and, quantized when loaded, in int8) for generation, and our ViT and
Swin exported to ONNX and run by ONNX Runtime for inference. Each is exported by `hf_visiontx.export` from the very
model the bench times as ours (so from the same weights, and checked by the export itself), into a temporary folder,
once per model; each runs on the bench's thread count.

The rows are named "ours ct2", "ours ct2 int8" and "ours ORT": our model, run by another engine. Like ours they get
the ratio to the fastest peer; int8 is approximate (its share of equal tokens is reported), the others must agree
with ours as the peers must.
"""

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, ViTImageProcessorPil

from hf_visiontx.export import export_ctranslate2, export_onnx
from hf_visiontx.export.ctranslate2 import Vocabulary, model_vocabulary, translate_ids

CT2 = "ours ct2"
CT2_INT8 = "ours ct2 int8"
ORT = "ours ORT"


@functools.cache
def _exported(model: torch.nn.Module, to: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    """`model` saved and exported `to` "onnx" or "ctranslate2" in a temporary folder (kept for the process); the
    folder and the export's path."""
    folder = tempfile.TemporaryDirectory(prefix="bench-engines-")
    saved = Path(folder.name) / "model"
    model.save_pretrained(saved)
    if to == "onnx":
        ViTImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(saved)
        return folder, export_onnx(saved, Path(folder.name) / "onnx").path
    _numbered_tokenizer(model.config).save_pretrained(saved)
    return folder, export_ctranslate2(saved, Path(folder.name) / "ct2").path


def _numbered_tokenizer(config) -> PreTrainedTokenizerFast:
    """A tokenizer whose tokens are "t0", "t1", ... (the bench's token ids have no words), with the model's end and
    padding tokens named as such."""
    words = [f"t{index}" for index in range(config.vocab_size)]
    tokenizer = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token=words[-1]))
    named = {"eos_token": words[config.eos_token_id], "pad_token": words[config.pad_token_id]}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **named)


def translator_calls(model: torch.nn.Module, settings: dict, threads: int) -> dict[str, Callable[[], torch.Tensor]]:
    """CTranslate2 (fp32, int8) running the `generate()` call of `settings` (an unpadded batch, exactly
    `min_new_tokens` = `max_new_tokens` new tokens) on `model` exported; each returns what `generate()` does:
    [batch, 1 + new tokens] ids, the decoder start token first."""
    # CTranslate2's own OpenMP runtime (read once, when it loads) would keep its threads spinning after each call,
    # taking the cores from the implementation timed next; torch's runtime was set up before and keeps its policy
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import ctranslate2

    _, path = _exported(model, "ctranslate2")
    vocabulary = model_vocabulary(path.parent / "model", model.config)
    options = dict(
        beam_size=settings["num_beams"],
        max_new_tokens=settings["max_new_tokens"],
        min_decoding_length=settings["min_new_tokens"],
    )
    sources = settings["input_ids"].tolist()
    return {
        name: functools.partial(
            _translate,
            ctranslate2.Translator(str(path), compute_type=compute_type, intra_threads=threads),
            vocabulary,
            sources,
            model.config.decoder_start_token_id,
            options,
        )
        for name, compute_type in ((CT2, "float32"), (CT2_INT8, "int8"))
    }


def _translate(translator, vocabulary: Vocabulary, sources: list[list[int]], start: int, options: dict) -> torch.Tensor:
    """One batch through `translator`, as generate()'s [batch, 1 + new tokens] ids."""
    return torch.tensor([[start, *tokens] for tokens in translate_ids(translator, vocabulary, sources, **options)])


def onnx_runtime_calls(
    model: torch.nn.Module, pixels: torch.Tensor, threads: int
) -> dict[str, Callable[[], torch.Tensor]]:
    """ONNX Runtime running `model` exported to ONNX on `pixels`, `threads` intra-op threads; returns the logits."""
    import onnxruntime

    _, path = _exported(model, "onnx")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {"pixel_values": pixels.numpy()}
    return {ORT: lambda: torch.from_numpy(session.run(["logits"], inputs)[0])}
