"""BLEU as computed by sacreBLEU (Post 2018): comparable scores with standard tokenization.

Shipped with hf_visiontx so that it loads offline:
`hf_visiontx.training.metrics.load_metric("sacrebleu")`. Same inputs and output keys as the Hub's `sacrebleu`
metric.
"""

import evaluate
from sacrebleu.metrics import BLEU

from hf_visiontx.training.metrics.info import metric_info
from hf_visiontx.training.metrics.references import TEXT_METRIC_FEATURES, reference_streams

_CITATION = """@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the translations to score.
    references (list of str, or list of list of str): the reference(s) of each translation; every translation
        needs the same number of references.
    smooth_method (str): "exp" (default), "floor", "add-k" or "none".
    smooth_value (float): for "floor" and "add-k".
    lowercase (bool): lowercase before scoring.
    tokenize (str): sacreBLEU tokenizer ("13a" by default, "intl", "char", "zh", "none", ...).
    use_effective_order (bool): ignore n-gram orders with no matches (for sentence-level scores).
Returns:
    score (float, 0-100), counts, totals, precisions (per n-gram order), bp (brevity penalty), sys_len, ref_len.
Example:
    >>> load_metric("sacrebleu").compute(predictions=["hello there general kenobi"],
    ...                                  references=[["hello there general kenobi"]])["score"]
    100.00000000000004
"""


class Sacrebleu(evaluate.Metric):
    """Corpus BLEU with sacreBLEU's standard tokenization."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(__name__, features=TEXT_METRIC_FEATURES, homepage="https://github.com/mjpost/sacreBLEU")

    def _compute(
        self,
        predictions,
        references,
        smooth_method="exp",
        smooth_value=None,
        lowercase=False,
        tokenize=None,
        use_effective_order=False,
    ):
        bleu = BLEU(
            lowercase=lowercase,
            tokenize=tokenize,
            smooth_method=smooth_method,
            smooth_value=smooth_value,
            effective_order=use_effective_order,
        )
        output = bleu.corpus_score(predictions, reference_streams(references))
        return {
            "score": output.score,
            "counts": output.counts,
            "totals": output.totals,
            "precisions": output.precisions,
            "bp": output.bp,
            "sys_len": output.sys_len,
            "ref_len": output.ref_len,
        }
