"""Subword tokenizers trained in code with the `tokenizers` library, returned as transformers tokenizers."""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
# Their ids are 0, 1, 2, 3, the defaults of `VtxTransformerConfig` (pad, bos = decoder start, eos).
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
SUBWORD_MODELS = ("bpe", "unigram")


def _subword_model_and_trainer(model: str, vocab_size: int, min_frequency: int):
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
    whitespace with SentencePiece's "▁" word-boundary marker, so decoding restores the spaces exactly.

    Args:
        texts: training sentences (any iterable of strings; consumed once).
        vocab_size: size of the vocabulary, special tokens included.
        model: "bpe" (byte-pair encoding, as in the paper) or "unigram" (SentencePiece's unigram LM).
        min_frequency: BPE merges need at least this many occurrences.
        lowercase: lowercase the text before tokenizing.
        model_max_length: longest input the tokenizer lets through with `truncation=True`.

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3 that appends `</s>` to every
        sequence. `save_pretrained(dir)` then `AutoTokenizer.from_pretrained(dir)` reloads it.
    """
    if model not in SUBWORD_MODELS:
        raise ValueError(f"`model` must be one of {SUBWORD_MODELS}, got {model!r}.")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"`vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
    texts = [text for text in texts]
    if not texts or not any(isinstance(text, str) and text.strip() for text in texts):
        raise ValueError("`texts` must hold at least one non-empty string to train a tokenizer on.")
    bad = next((text for text in texts if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"`texts` must hold strings, found {type(bad).__name__}: {bad!r}.")

    subword_model, trainer = _subword_model_and_trainer(model, vocab_size, min_frequency)
    tokenizer = Tokenizer(subword_model)
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
    )
