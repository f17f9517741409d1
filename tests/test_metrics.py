"""The evaluate metric modules shipped in hf_visiontx.training.metrics load offline and compute the right values."""

import pytest
import sacrebleu

from hf_visiontx.training.metrics import load_metric, shipped_metrics


def test_the_shipped_metrics_are_listed():
    assert shipped_metrics() == ["accuracy", "chrf", "exact_match", "sacrebleu"]


def test_accuracy_against_hand_computed_values():
    accuracy = load_metric("accuracy")
    assert accuracy.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2]) == {"accuracy": 0.75}
    assert accuracy.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2], normalize=False) == {"accuracy": 3.0}
    weighted = accuracy.compute(predictions=[0, 1], references=[0, 0], sample_weight=[3.0, 1.0])
    assert weighted["accuracy"] == pytest.approx(0.75)


def test_sacrebleu_matches_sacrebleu_and_takes_one_or_several_references():
    bleu = load_metric("sacrebleu")
    predictions = ["the cat sat on the mat", "a dog barked loudly today"]
    references = ["the cat sat on a mat", "a dog barked today"]
    result = bleu.compute(predictions=predictions, references=references)
    expected = sacrebleu.corpus_bleu(predictions, [references])
    assert result["score"] == pytest.approx(expected.score)
    assert result["counts"] == expected.counts and result["sys_len"] == 11 and result["ref_len"] == 10
    # With a second reference per prediction equal to the prediction, every n-gram matches.
    several = bleu.compute(
        predictions=predictions, references=[[r, p] for r, p in zip(references, predictions, strict=True)]
    )
    assert several["score"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="same number of references"):
        bleu.compute(predictions=predictions, references=[["a"], ["b", "c"]])


def test_chrf_matches_sacrebleu():
    chrf = load_metric("chrf")
    predictions, references = ["einundzwanzig", "zweihundert"], ["einundzwanzig", "dreihundert"]
    result = chrf.compute(predictions=predictions, references=references)
    assert result["score"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references]).score)
    assert 0 < result["score"] < 100 and (result["char_order"], result["word_order"], result["beta"]) == (6, 0, 2)
    plus = chrf.compute(predictions=predictions, references=references, word_order=2)
    assert plus["score"] == pytest.approx(sacrebleu.corpus_chrf(predictions, [references], word_order=2).score)


def test_exact_match_against_hand_computed_values():
    exact_match = load_metric("exact_match")
    assert exact_match.compute(predictions=["a b", "c", "D"], references=["a b", "d", "d"]) == {
        "exact_match": pytest.approx(1 / 3)
    }
    assert exact_match.compute(predictions=["a b", "c", "D"], references=["a b", "d", "d"], ignore_case=True) == {
        "exact_match": pytest.approx(2 / 3)
    }


def test_an_unknown_metric_offline_names_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"'no_such_metric' is not shipped .*accuracy, chrf, exact_match"):
        load_metric("no_such_metric")
