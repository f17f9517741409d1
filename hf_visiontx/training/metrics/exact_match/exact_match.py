"""Exact match: the fraction of predictions identical to their reference string.

Shipped with hf_visiontx so that it loads offline:
`hf_visiontx.training.metrics.load_metric("exact_match")`. Same inputs and output key as the Hub's `exact_match`
metric (its `ignore_case` option; no regexes).
"""

import datasets
import evaluate
import numpy as np

from hf_visiontx.training.metrics.info import metric_info

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted strings.
    references (list of str): reference strings.
    ignore_case (bool): compare lowercased strings.
Returns:
    exact_match (float): in [0, 1].
Example:
    >>> load_metric("exact_match").compute(predictions=["a b", "c"], references=["a b", "d"])
    {'exact_match': 0.5}
"""


class ExactMatch(evaluate.Metric):
    """Share of predictions that equal their reference exactly."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            __name__,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, ignore_case=False):
        if ignore_case:
            predictions = [prediction.lower() for prediction in predictions]
            references = [reference.lower() for reference in references]
        return {"exact_match": float(np.mean([p == r for p, r in zip(predictions, references, strict=True)]))}
