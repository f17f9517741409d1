"""What every shipped metric module tells `evaluate` about itself."""

import sys
from typing import Any

import evaluate


def metric_info(module_name: str, features: Any, **links: Any) -> evaluate.MetricInfo:
    """The `MetricInfo` of the shipped metric defined in `module_name`: its description is the module's docstring,
    its citation the module's `_CITATION` (when it has one) and its arguments the module's `_KWARGS_DESCRIPTION`.

    Args:
        features: the `datasets.Features` (or list of them) the metric accepts.
        **links: `homepage`, `reference_urls`, ... as `evaluate.MetricInfo` takes them.
    """
    module = sys.modules[module_name]
    return evaluate.MetricInfo(
        description=module.__doc__,
        citation=getattr(module, "_CITATION", ""),
        inputs_description=module._KWARGS_DESCRIPTION,
        features=features,
        **links,
    )
