"""Write or refresh the model card (README.md) of a saved model directory, e.g. with the metrics of a training run.

The card itself is built by `hf_visiontx.modeling.card_text.build_model_card`, which travels with the model code.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import ModelCard
from safetensors import safe_open
from transformers import AutoConfig

from ..modeling.card_text import build_model_card, is_generated_card
from ..modeling.hub_mixin import README, recorded_card_facts


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
    recorded = {}
    if readme.exists():
        card = ModelCard.load(readme)
        if not is_generated_card(card.content):
            return None
        recorded = recorded_card_facts(card.data)
    given = {"datasets": datasets, "metrics": metrics, "base_model": base_model}
    facts = {**recorded, **{key: value for key, value in given.items() if value is not None}}
    config = AutoConfig.from_pretrained(directory)
    return build_model_card(
        config, num_parameters=count_saved_parameters(directory), repo_id=repo_id or str(directory), **facts
    )


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


__all__ = ["count_saved_parameters", "refreshed_card", "write_model_card"]
