"""Model cards: the README.md that `save_pretrained` writes next to the weights and `push_to_hub` uploads.

A card has YAML metadata (library_name, pipeline_tag, tags, license, datasets, metrics and a `model-index` with
the evaluation results when they are known), what the architecture is and which paper preset it matches, and a
usage snippet that runs as written once the repository holds the model with its tokenizer or image processor.

This module imports only the standard library and the family table, so it travels with the model files as Hub
remote code.
"""

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .families import family

CARD_MARKER = "<!-- hf_visiontx model card -->"
"""First line of every card written here: a README carrying it may be regenerated; any other is the user's."""

# transformers writes this sentence into the placeholder card of `push_to_hub`; such a card may be replaced too.
TRANSFORMERS_PLACEHOLDER = "This model card has been automatically generated."


def is_generated_card(text: str) -> bool:
    """Whether a card was generated (by us or as transformers' placeholder) and may be regenerated; a card
    without either mark was written by a person and is kept."""
    return CARD_MARKER in text or TRANSFORMERS_PLACEHOLDER in text


# A Hub dataset id ("mnist", "user/name"), as opposed to a free-text description of the data.
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")

# Fields that a preset sets but that do not change the architecture (regularisation of the training recipe).
_RECIPE_FIELDS = {"dropout", "label_smoothing", "drop_path_rate"}


def build_model_card(
    config: Any,
    *,
    num_parameters: int | None = None,
    repo_id: str | None = None,
    datasets: Sequence[str] = (),
    metrics: Mapping[str, float] | None = None,
    base_model: str | None = None,
    tags: Sequence[str] = (),
    license_id: str = "apache-2.0",
) -> str:
    """The README.md text of a model with this `config`.

    Args:
        config: a `VtxTransformerConfig`, `VtxViTConfig` or `VtxSwinConfig`; `config.architectures[0]` picks the
            head (pipeline tag, Auto class, usage snippet).
        num_parameters: shown in the architecture section when given.
        repo_id: the Hub repository (or local directory) that the usage snippet loads from.
        datasets: names of the training datasets (Hub ids or descriptions).
        metrics: evaluation results, metric name -> value; they go into `metrics`, `model-index` and a table.
        base_model: the checkpoint this model was fine-tuned or converted from.
        tags: extra Hub tags.
        license_id: an SPDX-style license id for the YAML metadata.
    """
    declared = family(config.model_type)
    architecture = (config.architectures or [declared.heads[0].name])[0]
    head = declared.head(architecture)
    pipeline_tag, auto_class = head.pipeline_tag, head.auto_class
    preset = matching_preset(config)

    own_tags = ["hf_visiontx", config.model_type, "custom_code"] + (
        [f"preset-{preset.replace('/', '-')}"] if preset else []
    )
    title = repo_id.rstrip("/").split("/")[-1] if repo_id else f"{declared.title}: {architecture}"
    lines = card_header(
        title,
        pipeline_tag,
        own_tags + [tag for tag in tags if tag not in own_tags],
        repo_id or architecture,
        datasets=datasets,
        metrics=metrics,
        base_model=base_model,
        license_id=license_id,
    )
    lines += [
        f"A {declared.title} ([{declared.paper}]({declared.paper_url})) written from scratch in "
        f"[hf_visiontx](https://github.com/hf-visiontx/hf_visiontx): {declared.summary}.",
        "",
    ]
    lines += ["## Architecture", "", f"- head: `{architecture}` (loads with `{auto_class}`)"]
    lines += [f"- preset: `{preset}`" if preset else "- preset: none (custom sizes)"]
    lines += [f"- {fact}" for fact in config.architecture_facts()]
    if num_parameters is not None:
        lines.append(f"- parameters: {num_parameters / 1e6:.2f}M ({num_parameters:,})")
    if base_model:
        lines.append(f"- starting point: `{base_model}`")
    lines += ["", "## Usage", "", "```python", *_usage_snippet(head.usage, auto_class, repo_id, config), "```", ""]
    lines += [
        "The model's code (`configuration_*.py`, `modeling_*.py`) travels with the weights, so "
        "`trust_remote_code=True` loads it where hf_visiontx is not installed; after `import hf_visiontx` the "
        "Auto classes know it without remote code.",
        "",
    ]
    return "\n".join(lines + card_results(datasets, metrics))


def card_header(
    title: str,
    pipeline_tag: str,
    tags: Sequence[str],
    index_name: str,
    *,
    datasets: Sequence[str] = (),
    metrics: Mapping[str, float] | None = None,
    base_model: str | None = None,
    license_id: str = "apache-2.0",
) -> list[str]:
    """The first lines of a card: the YAML metadata (pipeline tag, tags, Hub datasets, metrics and their
    `model-index` entry named `index_name`, base model, license), the generated-card marker and the title."""
    metadata: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": pipeline_tag, "license": license_id}
    metadata["tags"] = list(tags)
    hub_datasets = [name for name in datasets if _HUB_ID.match(name)]
    if hub_datasets:  # the YAML field links Hub datasets; descriptions go to the "Training data" section only
        metadata["datasets"] = hub_datasets
    if metrics:
        metadata["metrics"] = sorted(metrics)
    if base_model:
        metadata["base_model"] = base_model
    if datasets and metrics:
        metadata["model-index"] = [_model_index(index_name, pipeline_tag, datasets[0], metrics)]
    return ["---", *_yaml_lines(metadata), "---", CARD_MARKER, f"# {title}", ""]


def card_results(datasets: Sequence[str], metrics: Mapping[str, float] | None) -> list[str]:
    """The last sections of a card: its training data and its evaluation table (each only when given)."""
    lines = []
    if datasets:
        lines += ["## Training data", "", *[f"- {name}" for name in datasets], ""]
    if metrics:
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in sorted(metrics.items())] + [""]
    return lines


def matching_preset(config: Any) -> str | None:
    """The name of the paper preset whose architecture fields all equal the config's, or None."""
    for name, fields in type(config).presets.items():
        if config.model_type == "vtx_vit" and bool(fields.get("backbone_config")) != bool(config.backbone_config):
            continue  # a plain ViT preset must not match a hybrid, nor the hybrid preset a plain ViT
        if all(_same(getattr(config, key, None), value) for key, value in fields.items() if key not in _RECIPE_FIELDS):
            return name
    return None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, (list, tuple)):
        return isinstance(actual, (list, tuple)) and list(actual) == list(expected)
    return actual == expected


def _usage_snippet(kind: str, auto_class: str, repo_id: str | None, config: Any) -> list[str]:
    """Python lines that load the model from `repo_id` and run it once."""
    load = [f'repo = "{repo_id or "path/to/this/model"}"']
    if kind == "complete":
        max_new_tokens = min(32, config.max_position_embeddings - 1)
        return [
            f"from transformers import AutoTokenizer, {auto_class}",
            "",
            *load,
            "tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)",
            f"model = {auto_class}.from_pretrained(repo, trust_remote_code=True)",
            'prompt = tokenizer("one two three", return_tensors="pt")',
            f"output_ids = model.generate(**prompt, max_new_tokens={max_new_tokens}, do_sample=False)",
            "print(tokenizer.decode(output_ids[0], skip_special_tokens=True))",
        ]
    if kind in ("generate", "encode_text"):
        load = [
            "from transformers import AutoTokenizer, " + auto_class,
            "",
            *load,
            "tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)",
            f"model = {auto_class}.from_pretrained(repo, trust_remote_code=True)",
            'batch = tokenizer(["A short sentence.", "Another one."], return_tensors="pt", padding=True)',
        ]
        if kind == "generate":
            max_new_tokens = min(64, config.max_position_embeddings - 1)
            return [
                *load,
                f"output_ids = model.generate(**batch, num_beams=4, max_new_tokens={max_new_tokens})",
                "print(tokenizer.batch_decode(output_ids, skip_special_tokens=True))",
            ]
        return [
            *load,
            "encoder_states = model.get_encoder()(**batch).last_hidden_state",
            "print(encoder_states.shape)  # (batch, tokens, d_model)",
        ]
    height, width = config.image_height_width
    lines = [
        "import torch",
        "from PIL import Image",
        f"from transformers import AutoImageProcessor, {auto_class}",
        "",
        *load,
        "processor = AutoImageProcessor.from_pretrained(repo)",
        f"model = {auto_class}.from_pretrained(repo, trust_remote_code=True).eval()",
        f'image = Image.new("RGB", ({width}, {height}), (200, 120, 40))  # or Image.open("photo.jpg")',
        'pixel_values = processor(images=image, return_tensors="pt").pixel_values',
    ]
    if kind == "classify":
        return [
            *lines,
            "with torch.no_grad():",
            "    logits = model(pixel_values).logits",
            "print(model.config.id2label[logits.argmax(-1).item()])",
        ]
    if kind == "encode_image":
        return [
            *lines,
            "with torch.no_grad():",
            "    features = model(pixel_values).pooler_output",
            "print(features.shape)  # (1, hidden_size)",
        ]
    if kind == "backbone":
        return [
            *lines,
            "with torch.no_grad():",
            "    feature_maps = model(pixel_values).feature_maps",
            "print([tuple(f.shape) for f in feature_maps])",
        ]
    return [  # reconstruct: SimMIM masked image modeling
        *lines,
        f"bool_masked_pos = torch.rand(1, {math.prod(config.grid_size)}) < 0.6  # True: the token is masked",
        "with torch.no_grad():",
        "    reconstruction = model(pixel_values, bool_masked_pos=bool_masked_pos).reconstruction",
        "print(reconstruction.shape)  # like pixel_values",
    ]


def _model_index(name: str, pipeline_tag: str, dataset: str, metrics: Mapping[str, float]) -> dict[str, Any]:
    return {
        "name": name,
        "results": [
            {
                "task": {"type": pipeline_tag},
                "dataset": {"type": dataset if _HUB_ID.match(dataset) else "custom", "name": dataset},
                "metrics": [
                    {"type": metric, "value": float(value), "name": metric} for metric, value in sorted(metrics.items())
                ],
            }
        ],
    }


def _yaml_lines(value: Any, indent: str = "") -> list[str]:
    """Block-style YAML for dicts, lists and scalars; scalars are written as JSON, which YAML reads unchanged."""
    lines = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list)) and item:
                lines += [f"{indent}{key}:", *_yaml_lines(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {json.dumps(item, ensure_ascii=False)}")
        return lines
    for item in value:  # a non-empty list
        if isinstance(item, (Mapping, list)) and item:
            nested = _yaml_lines(item, indent + "  ")
            lines += [f"{indent}- {nested[0].lstrip()}", *nested[1:]]
        else:
            lines.append(f"{indent}- {json.dumps(item, ensure_ascii=False)}")
    return lines


__all__ = [
    "CARD_MARKER",
    "TRANSFORMERS_PLACEHOLDER",
    "build_model_card",
    "card_header",
    "card_results",
    "is_generated_card",
    "matching_preset",
]
