"""`compute_metrics` functions for `Trainer`, computed with the metrics shipped in `hf_visiontx.training.metrics`,
and the per-token losses a language model's perplexity is computed from."""

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
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


IGNORED_TOKEN = -100  # labels (and `token_losses`) at padding; also what `Trainer` pads predictions with


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of each next-token prediction of a causal LM, -100 where there is none to score.

    A `Trainer`'s `preprocess_logits_for_metrics`: it keeps one number per token instead of the whole vocabulary's
    logits, and is the plain negative log-likelihood whatever label smoothing the training loss uses.

    Args:
        logits: [batch, len, vocab] next-token logits at each position.
        labels: [batch, len] the input ids, -100 at padding (position t is scored on predicting `labels[:, t + 1]`).

    Returns:
        [batch, len - 1] losses (>= 0) of predicting tokens 1 .. len - 1, -100 where the label is -100.
    """
    targets = labels[:, 1:]  # [B, L-1]
    losses = F.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(),  # [B, L-1, V] -> [B, V, L-1], as cross_entropy wants classes second
        targets,
        ignore_index=IGNORED_TOKEN,
        reduction="none",
    )  # [B, L-1]
    return losses.masked_fill(targets == IGNORED_TOKEN, IGNORED_TOKEN)


def perplexity_metrics() -> Callable[[EvalPrediction], dict[str, float]]:
    """Perplexity: exp of the mean loss per predicted token over the whole split (from `token_losses`)."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        losses = np.asarray(prediction.predictions, dtype=np.float64)
        scored = losses[losses >= 0]  # -100 marks padding and the label padding between batches
        return {"perplexity": float(np.exp(scored.mean()))}

    return compute
