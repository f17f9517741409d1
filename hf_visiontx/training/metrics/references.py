"""Input handling shared by the shipped text metrics (sacrebleu, chrf)."""

from collections.abc import Sequence

import datasets

# Each prediction comes with one reference (a string) or several (a list of strings), as in the Hub's metrics.
TEXT_METRIC_FEATURES = [
    datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
    ),
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
]


def reference_streams(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Regroup per-prediction references into sacrebleu's reference streams.

    `references[i]` is the reference of prediction i (a string) or its list of references; sacrebleu wants
    stream j = the j-th reference of every prediction. Every prediction needs the same number of references.

    Raises:
        ValueError: the predictions have different numbers of references.
    """
    per_prediction = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    counts = sorted({len(refs) for refs in per_prediction})
    if len(counts) > 1:
        raise ValueError(f"`references` must give every prediction the same number of references, got counts {counts}.")
    # [predictions][references] -> [references][predictions]
    return [list(stream) for stream in zip(*per_prediction, strict=True)]
