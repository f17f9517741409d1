"""Accuracy: the fraction of predictions that equal their reference, computed with scikit-learn.

Shipped with hf_visiontx so that it loads offline:
`hf_visiontx.training.metrics.load_metric("accuracy")`. Same inputs and output key as the Hub's `accuracy` metric
(single-label case).
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score

from hf_visiontx.training.metrics.info import metric_info

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    normalize (bool): return the fraction of correct predictions (True, default) or their count (False).
    sample_weight (list of float): optional weight of each example.
Returns:
    accuracy (float): in [0, 1] with normalize=True, else the (weighted) count of correct predictions.
Example:
    >>> load_metric("accuracy").compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])
    {'accuracy': 0.75}
"""


class Accuracy(evaluate.Metric):
    """Classification accuracy (scikit-learn's `accuracy_score`)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            __name__,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
