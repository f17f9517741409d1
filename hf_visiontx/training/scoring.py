"""`compute_metrics` functions for `Trainer`, computed with the metrics shipped in `hf_visiontx.training.metrics`."""

from collections.abc import Callable

import numpy as np
from transformers import EvalPrediction, PreTrainedTokenizerBase

from .metrics import load_metric


def classification_metrics() -> Callable[[EvalPrediction], dict[str, float]]:
    """Accuracy of the arg-max class of the logits."""
    accuracy = load_metric("accuracy")

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        predicted = np.asarray(prediction.predictions).argmax(-1)  # [examples, classes] -> [examples]
        return accuracy.compute(predictions=predicted, references=prediction.label_ids)

    return compute


def translation_metrics(tokenizer: PreTrainedTokenizerBase) -> Callable[[EvalPrediction], dict[str, float]]:
    """sacreBLEU, chrF (0-100) and exact match (0-1) of generated token ids against the label ids.

    For a `Seq2SeqTrainer` with `predict_with_generate=True`; -100 (label and batch padding) is decoded as padding.
    """
    sacrebleu, chrf, exact_match = (load_metric(name) for name in ("sacrebleu", "chrf", "exact_match"))

    def decode(ids: np.ndarray) -> list[str]:
        ids = np.where(ids < 0, tokenizer.pad_token_id, ids)
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        hypotheses, references = decode(prediction.predictions), decode(prediction.label_ids)
        return {
            "sacrebleu": sacrebleu.compute(predictions=hypotheses, references=references)["score"],
            "chrf": chrf.compute(predictions=hypotheses, references=references)["score"],
            **exact_match.compute(predictions=hypotheses, references=references),
        }

    return compute
