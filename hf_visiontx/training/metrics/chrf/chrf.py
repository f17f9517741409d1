"""chrF (Popović 2015) and chrF++ as computed by sacreBLEU: character n-gram F-score.

Shipped with hf_visiontx so that it loads offline:
`hf_visiontx.training.metrics.load_metric("chrf")`. Same inputs and output keys as the Hub's `chrf` metric.
"""

import evaluate
from sacrebleu.metrics import CHRF

from hf_visiontx.training.metrics.info import metric_info
from hf_visiontx.training.metrics.references import TEXT_METRIC_FEATURES, reference_streams

_CITATION = """@inproceedings{popovic-2015-chrf,
    title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
    author = "Popovi{\\'c}, Maja",
    booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
    year = "2015",
    pages = "392--395",
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the translations to score.
    references (list of str, or list of list of str): the reference(s) of each translation; every translation
        needs the same number of references.
    char_order (int): character n-gram order (6).
    word_order (int): word n-gram order (0 = chrF, 2 = chrF++).
    beta (int): weight of recall against precision (2).
    lowercase (bool): lowercase before scoring.
    whitespace (bool): count whitespace in character n-grams.
    eps_smoothing (bool): smooth as sacreBLEU 2.x's default (False) or as chrF++.py/NLTK/Moses (True).
Returns:
    score (float, 0-100), char_order, word_order, beta.
Example:
    >>> load_metric("chrf").compute(predictions=["the cat sat"], references=["the cat sat"])["score"]
    100.0
"""


class Chrf(evaluate.Metric):
    """Corpus chrF / chrF++ with sacreBLEU."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            __name__, features=TEXT_METRIC_FEATURES, homepage="https://github.com/mjpost/sacreBLEU#chrf--chrf"
        )

    def _compute(
        self,
        predictions,
        references,
        char_order=CHRF.CHAR_ORDER,
        word_order=CHRF.WORD_ORDER,
        beta=CHRF.BETA,
        lowercase=False,
        whitespace=False,
        eps_smoothing=False,
    ):
        chrf = CHRF(
            char_order=char_order,
            word_order=word_order,
            beta=beta,
            lowercase=lowercase,
            whitespace=whitespace,
            eps_smoothing=eps_smoothing,
        )
        output = chrf.corpus_score(predictions, reference_streams(references))
        return {"score": output.score, "char_order": char_order, "word_order": word_order, "beta": beta}
