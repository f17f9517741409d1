"""Subword tokenizers trained in code with the `tokenizers` library, returned as transformers tokenizers.

Two conventions, one per use:

- translation ("bpe", "unigram"): SentencePiece-style "▁" word boundaries; the post-processor appends `</s>` to
  every sequence (sources end with it, and so do the targets the decoder learns to stop with).
- language modelling ("byte_bpe"): GPT-2's byte-level BPE, so any text (any script, emoji, tabs, several spaces)
  encodes without `<unk>` and decodes back exactly (except the special tokens' own strings, such as a literal
  "</s>", which are read as those tokens); the post-processor prepends `<s>` (the context every document
  and every prompt starts from), and training appends `</s>` to each document so that the model learns to stop
  (`generate()` stops at `eos_token_id`). Prompts are not given a `</s>`: the model is to continue them. Padding
  (`<pad>`, never a learned target) goes on the left, as batched generation with a decoder-only model needs.
"""

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
# Their ids are 0, 1, 2, 3, the defaults of `VtxTransformerConfig` (pad, bos = decoder start, eos).
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
SUBWORD_MODELS = ("bpe", "unigram", "byte_bpe")


def _subword_model_and_trainer(model: str, vocab_size: int, min_frequency: int):
    if model == "byte_bpe":  # the 256 byte symbols are all in the vocabulary: nothing is ever unknown
        return models.BPE(), trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    if model == "bpe":
        return models.BPE(unk_token=UNK_TOKEN), trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
    return models.Unigram(), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token=UNK_TOKEN, show_progress=False
    )


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    model: str = "bpe",
    min_frequency: int = 2,
    lowercase: bool = False,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a subword tokenizer on `texts` and wrap it for transformers.

    The paper shares one BPE vocabulary between source and target: pass both sides' texts. Words are split on
    whitespace with SentencePiece's "▁" word-boundary marker, so decoding restores the spaces exactly. For a
    language model, `model="byte_bpe"` learns GPT-2's byte-level BPE instead (see the module docstring).

    Args:
        texts: training sentences (any iterable of strings; consumed once).
        vocab_size: size of the vocabulary, special tokens (and for "byte_bpe" the 256 bytes) included.
        model: "bpe" (byte-pair encoding, as in the paper), "unigram" (SentencePiece's unigram LM) or "byte_bpe"
            (byte-level BPE for language modelling).
        min_frequency: BPE merges need at least this many occurrences.
        lowercase: lowercase the text before tokenizing.
        model_max_length: longest input the tokenizer lets through with `truncation=True`.

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3. "bpe" and "unigram" append `</s>`
        to every sequence; "byte_bpe" prepends `<s>` and pads on the left. `save_pretrained(dir)` then
        `AutoTokenizer.from_pretrained(dir)` reloads it.
    """
    if model not in SUBWORD_MODELS:
        raise ValueError(f"`model` must be one of {SUBWORD_MODELS}, got {model!r}.")
    reserved = len(SPECIAL_TOKENS) + (len(pre_tokenizers.ByteLevel.alphabet()) if model == "byte_bpe" else 0)
    if vocab_size <= reserved:
        what = "special tokens and 256 bytes" if model == "byte_bpe" else "special tokens"
        raise ValueError(f"`vocab_size` must exceed the {reserved} {what}, got {vocab_size}.")
    texts = [text for text in texts]
    if not texts or not any(isinstance(text, str) and text.strip() for text in texts):
        raise ValueError("`texts` must hold at least one non-empty string to train a tokenizer on.")
    bad = next((text for text in texts if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"`texts` must hold strings, found {type(bad).__name__}: {bad!r}.")

    subword_model, trainer = _subword_model_and_trainer(model, vocab_size, min_frequency)
    tokenizer = Tokenizer(subword_model)
    if model == "byte_bpe":
        return _byte_level_tokenizer(tokenizer, trainer, texts, lowercase, model_max_length)
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    return _transformers_tokenizer(tokenizer, model_max_length)


def _byte_level_tokenizer(
    tokenizer: Tokenizer, trainer: trainers.BpeTrainer, texts: list[str], lowercase: bool, model_max_length: int
) -> PreTrainedTokenizerFast:
    """Train `tokenizer` (a BPE model) as GPT-2's byte-level BPE and wrap it for language modelling: `<s>` first,
    padding on the left, text decoded exactly as written (no Unicode normalisation, no space clean-up)."""
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return _transformers_tokenizer(tokenizer, model_max_length, padding_side="left", clean_up_tokenization_spaces=False)


def _transformers_tokenizer(tokenizer: Tokenizer, model_max_length: int, **options: Any) -> PreTrainedTokenizerFast:
    """`tokenizer` wrapped for transformers with our special tokens (`<pad>`, `<s>`, `</s>`, `<unk>`) and `options`."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        **options,
    )
