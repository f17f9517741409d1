"""A tiny Transformer trained with Seq2SeqTrainer must actually learn: reversing letter sequences."""

import random

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_visiontx import VtxTransformerConfig, VtxTransformerForConditionalGeneration
from hf_visiontx.data import train_tokenizer

pytestmark = pytest.mark.slow  # a Seq2SeqTrainer run that learns a task

LETTERS = "abcdefghij"


def reversal_pairs(count: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    sources = [" ".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7))) for _ in range(count)]
    return {"source": sources, "target": [" ".join(reversed(s.split())) for s in sources]}


def test_seq2seq_trainer_learns_to_reverse_sequences(tmp_path):
    train, test = reversal_pairs(4000, seed=0), reversal_pairs(100, seed=1)
    tokenizer = train_tokenizer(train["source"], vocab_size=30, min_frequency=1)
    assert len(tokenizer.tokenize("a b c")) == 3  # one token per letter

    def encode(batch):
        return tokenizer(batch["source"], text_target=batch["target"])

    train_set = Dataset.from_dict(train).map(encode, batched=True, remove_columns=["source", "target"])
    test_set = Dataset.from_dict(test).map(encode, batched=True, remove_columns=["source", "target"])
    torch.manual_seed(0)
    config = VtxTransformerConfig(
        vocab_size=len(tokenizer),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_position_embeddings=32,
        dropout=0.0,
        label_smoothing=0.1,
    )
    model = VtxTransformerForConditionalGeneration(config)

    def exact_match(prediction):
        predictions = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
        labels = np.where(prediction.label_ids < 0, tokenizer.pad_token_id, prediction.label_ids)
        decoded = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        expected = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return {"exact_match": float(np.mean([p.strip() == e.strip() for p, e in zip(decoded, expected, strict=True)]))}

    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=64,
        per_device_eval_batch_size=100,
        num_train_epochs=6,
        learning_rate=3e-3,
        warmup_steps=30,
        lr_scheduler_type="cosine",
        predict_with_generate=True,
        generation_max_length=12,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        gradient_accumulation_steps=2,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        compute_metrics=exact_match,
    )
    trainer.train()
    metrics = trainer.evaluate(test_set)
    assert metrics["eval_exact_match"] >= 0.9, metrics
