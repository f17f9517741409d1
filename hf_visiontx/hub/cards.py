"""Write or refresh the model card (README.md) of a saved model directory, e.g. with the metrics of a training run.

The card of one of our models is built by `hf_visiontx.modeling.card_text.build_model_card`, which travels with the
model code; the card of an image captioner (transformers' `VisionEncoderDecoderModel` holding our encoder and
decoder) by `build_captioner_card` here.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import ModelCard
from safetensors import safe_open
from transformers import AutoConfig, VisionEncoderDecoderConfig

from ..modeling.card_text import build_model_card, card_header, card_results, is_generated_card
from ..modeling.families import family
from ..modeling.hub_mixin import README, recorded_card_facts

CAPTIONER_PIPELINE_TAG = "image-to-text"  # the Hub's task name; in transformers 5 the pipeline is "image-captioning"


def write_model_card(
    directory: str | Path,
    *,
    repo_id: str | None = None,
    datasets: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    base_model: str | None = None,
) -> Path:
    """(Re)write `directory`/README.md for the model saved there and return its path.

    Arguments left as None keep what the directory's current card recorded (when that card is ours). A card
    written by a person (without hf_visiontx's marker) is never overwritten: a `ValueError` says so.

    Args:
        directory: a directory written by `save_pretrained` (config.json and safetensors weights).
        repo_id: the Hub repository the usage snippet loads from; the directory itself when None.
        datasets: training datasets (Hub ids or short descriptions).
        metrics: evaluation results, metric name -> value.
        base_model: the checkpoint the model was fine-tuned or converted from.
    """
    readme = Path(directory) / README
    text = refreshed_card(directory, repo_id=repo_id, datasets=datasets, metrics=metrics, base_model=base_model)
    if text is None:
        raise ValueError(f"{readme} is a model card written by hand; hf_visiontx does not overwrite it.")
    readme.write_text(text, encoding="utf-8")
    return readme


def hand_written_card(directory: str | Path) -> Path | None:
    """`directory`/README.md when a person wrote it (it has neither hf_visiontx's mark nor transformers'
    placeholder), which `write_model_card` never overwrites; None when there is none or it was generated."""
    readme = Path(directory) / README
    if readme.is_file() and not is_generated_card(readme.read_text(encoding="utf-8")):
        return readme
    return None


def check_card_writable(directory: str | Path, label: str) -> None:
    """Raise a `ValueError` naming the argument (`label`) when `directory` holds a README.md written by hand, which
    `write_model_card` would refuse to replace: a training run calls this first, so that the refusal comes
    before the training rather than after it."""
    readme = hand_written_card(directory)
    if readme is not None:
        raise ValueError(
            f"{label} {directory} holds a README.md written by hand ({readme}), which the trained model's card would "
            "replace; hf_visiontx does not overwrite it: move it away or choose another directory."
        )


def refreshed_card(
    directory: str | Path,
    *,
    repo_id: str | None = None,
    datasets: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    base_model: str | None = None,
) -> str | None:
    """The card text `write_model_card` would write (same arguments), or None when the directory's README.md was
    written by hand."""
    directory = Path(directory)
    readme = directory / README
    if hand_written_card(directory) is not None:
        return None
    recorded = recorded_card_facts(ModelCard.load(readme).data) if readme.exists() else {}
    given = {"datasets": datasets, "metrics": metrics, "base_model": base_model}
    facts = {**recorded, **{key: value for key, value in given.items() if value is not None}}
    config = AutoConfig.from_pretrained(directory)
    build = build_captioner_card if isinstance(config, VisionEncoderDecoderConfig) else build_model_card
    return build(config, num_parameters=count_saved_parameters(directory), repo_id=repo_id or str(directory), **facts)


def build_captioner_card(
    config: VisionEncoderDecoderConfig,
    *,
    num_parameters: int | None = None,
    repo_id: str | None = None,
    datasets: Sequence[str] = (),
    metrics: Mapping[str, float] | None = None,
    base_model: str | None = None,
    license_id: str = "apache-2.0",
) -> str:
    """The README.md text of an image captioner: a `VisionEncoderDecoderModel` whose encoder (ViT or Swin) and
    decoder (`VtxTransformerForCausalLM`) are ours; the arguments are those of `build_model_card`.

    Raises:
        ValueError: the encoder or the decoder is not an hf_visiontx model (naming its model type).
    """
    encoder, decoder = config.encoder, config.decoder
    encoder_family, decoder_family = family(encoder.model_type), family(decoder.model_type)
    title = repo_id.rstrip("/").split("/")[-1] if repo_id else "Image captioner: VisionEncoderDecoderModel"
    height, width = encoder.image_height_width
    lines = card_header(
        title,
        CAPTIONER_PIPELINE_TAG,
        ["hf_visiontx", config.model_type, encoder.model_type, decoder.model_type, "custom_code"],
        repo_id or "VisionEncoderDecoderModel",
        datasets=datasets,
        metrics=metrics,
        base_model=base_model,
        license_id=license_id,
    )
    lines += [
        "An image captioner written with [hf_visiontx](https://github.com/hf-visiontx/hf_visiontx): transformers' "
        f"`VisionEncoderDecoderModel` with a {encoder_family.title} ([{encoder_family.paper}]"
        f"({encoder_family.paper_url})) as the image encoder and the decoder of the {decoder_family.title} "
        f"([{decoder_family.paper}]({decoder_family.paper_url})) as the text decoder, which attends to the "
        "encoder's token states through cross-attention and writes the caption one token at a time.",
        "",
        "## Architecture",
        "",
        "- `VisionEncoderDecoderModel` (loads with `AutoModelForImageTextToText`)",
        f"- encoder `{encoder.architectures[0] if encoder.architectures else encoder_family.heads[0].name}`: "
        + "; ".join(encoder.architecture_facts()),
        "- decoder `VtxTransformerForCausalLM`: " + "; ".join(decoder.architecture_facts()),
        "- loss: `VisionEncoderDecoderModel`'s own cross-entropy (the decoder's label smoothing does not apply)",
    ]
    if num_parameters is not None:
        lines.append(f"- parameters: {num_parameters / 1e6:.2f}M ({num_parameters:,})")
    if base_model:
        lines.append(f"- starting point: `{base_model}`")
    repo = repo_id or "path/to/this/model"
    lines += [
        "",
        "## Usage",
        "",
        "With hf_visiontx installed, its `image-captioning` pipeline (transformers 5 redirects `image-to-text` to its "
        "chat-model `image-text-to-text` pipeline):",
        "",
        "```python",
        "import hf_visiontx  # registers the model types and the pipeline",
        "from transformers import pipeline",
        "",
        f'captioner = pipeline("image-captioning", model="{repo}")',
        'print(captioner("image.png", num_beams=4))  # [{"generated_text": ...}]',
        "```",
        "",
        "Anywhere, with the code that travels with the weights (`trust_remote_code=True`):",
        "",
        "```python",
        "from PIL import Image",
        "from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer",
        "",
        f'repo = "{repo}"',
        "model = AutoModelForImageTextToText.from_pretrained(repo, trust_remote_code=True).eval()",
        "processor = AutoImageProcessor.from_pretrained(repo)",
        "tokenizer = AutoTokenizer.from_pretrained(repo)",
        f'image = Image.new("RGB", ({width}, {height}))  # or Image.open("image.png")',
        'pixel_values = processor(images=image, return_tensors="pt").pixel_values',
        "output_ids = model.generate(pixel_values, num_beams=4)",
        "print(tokenizer.batch_decode(output_ids, skip_special_tokens=True))",
        "```",
        "",
    ]
    return "\n".join(lines + card_results(datasets, metrics))


def count_saved_parameters(directory: str | Path) -> int:
    """Number of values in the safetensors weights of `directory`, read from the file headers only."""
    total = 0
    for path in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118  (safe_open is not a dict)
                count = 1
                for size in weights.get_slice(name).get_shape():
                    count *= size
                total += count
    return total


__all__ = ["build_captioner_card", "count_saved_parameters", "refreshed_card", "write_model_card"]
