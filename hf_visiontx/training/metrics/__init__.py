"""Evaluation metrics that work offline: `evaluate` modules shipped inside hf_visiontx.

`evaluate.load("accuracy")` fetches the metric's code from the Hugging Face Hub at run time and fails without a
network. hf_visiontx ships its own modules for the metrics it trains with (`accuracy`, `sacrebleu`, `chrf`,
`exact_match`), written as `evaluate.Metric` subclasses that compute with scikit-learn and sacrebleu and return the
same keys as the Hub's. `load_metric` loads a shipped one by path and hands any other name to `evaluate.load`.
"""

from pathlib import Path
from typing import Any

import evaluate

METRICS_DIR = Path(__file__).parent


def shipped_metrics() -> list[str]:
    """Names of the metrics shipped with hf_visiontx (each is `<name>/<name>.py` next to this file)."""
    return sorted(path.parent.name for path in METRICS_DIR.glob("*/*.py") if path.stem == path.parent.name)


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load a metric: a shipped one from its file (no network), any other through `evaluate.load(name)`.

    Args:
        name: a shipped metric ("accuracy", "chrf", "exact_match", "sacrebleu"), or any name or path that
            `evaluate.load` accepts (Hub metrics need the network).
        **kwargs: passed to `evaluate.load` (for example `experiment_id`, `cache_dir`).

    Raises:
        FileNotFoundError: `name` is neither shipped nor loadable by `evaluate.load` (for example offline).
    """
    path = METRICS_DIR / name / f"{name}.py"
    if path.is_file():
        return evaluate.load(str(path), **kwargs)
    try:
        return evaluate.load(name, **kwargs)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Metric {name!r} is not shipped with hf_visiontx ({', '.join(shipped_metrics())}) and evaluate could "
            f"not load it ({error})."
        ) from error


__all__ = ["load_metric", "shipped_metrics"]
