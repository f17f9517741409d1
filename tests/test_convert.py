"""Published-checkpoint conversion: transformers' Marian in, our Transformer out, same numbers."""

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    MarianConfig,
    MarianModel,
    MarianMTModel,
    ViTConfig,
    ViTForImageClassification,
    ViTForMaskedImageModeling,
    ViTModel,
)

from hf_visiontx import (
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
)
from hf_visiontx.apps.cli import main
from hf_visiontx.convert import from_transformers
from hf_visiontx.data import train_tokenizer
from support.memory import bytes_held_after, mlp_inner_bytes
from support.transformer_tester import TINY_SIZES as TINY_TRANSFORMER_SIZES
from support.transformer_tester import padded_source_batch
from support.vit_tester import TINY_SIZES as TINY_VIT_SIZES

MARIAN_PAD = 98  # Marian starts decoding from the pad token, the last id of its vocabulary


def tiny_marian(seed: int = 0, **overrides) -> MarianMTModel:
    torch.manual_seed(seed)
    config = MarianConfig(
        **TINY_TRANSFORMER_SIZES,
        activation_function="swish",
        pad_token_id=MARIAN_PAD,
        decoder_start_token_id=MARIAN_PAD,
        eos_token_id=0,
        forced_eos_token_id=0,
        scale_embedding=True,
        **overrides,
    )
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_()  # published checkpoints have a non-zero bias: make it count
    return model


def marian_batch() -> tuple[torch.Tensor, torch.Tensor]:
    input_ids, attention_mask = padded_source_batch(batch=4)
    input_ids = input_ids.clamp(max=MARIAN_PAD - 1).masked_fill(attention_mask == 0, MARIAN_PAD)
    return input_ids, attention_mask


def test_converted_marian_gives_the_same_logits():
    reference = tiny_marian()
    ours = from_transformers(reference)
    assert isinstance(ours, VtxTransformerForConditionalGeneration) and not ours.training
    input_ids, attention_mask = marian_batch()
    decoder_input_ids = torch.randint(1, MARIAN_PAD, (4, 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        actual = ours(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    assert (actual.logits - expected.logits).abs().max() <= 1e-5


@pytest.mark.parametrize(
    "generate_kwargs",
    [{"num_beams": 1}, {"num_beams": 4, "num_return_sequences": 2}],
    ids=["greedy", "beam4"],
)
def test_converted_marian_generates_the_same_tokens(generate_kwargs):
    reference = tiny_marian(seed=1)
    ours = from_transformers(reference)
    input_ids, attention_mask = marian_batch()
    expected = reference.generate(input_ids, attention_mask=attention_mask, max_new_tokens=16, **generate_kwargs)
    actual = ours.generate(input_ids, attention_mask=attention_mask, max_new_tokens=16, **generate_kwargs)
    assert expected.shape[0] == 4 * generate_kwargs.get("num_return_sequences", 1)
    assert torch.equal(actual, expected)


def test_a_training_forward_keeps_less_for_backward_than_marian():
    """The same weights, batch and dropout draws: ours keeps for the backward pass what transformers' Marian keeps
    but for one of the two inner activations of each feed-forward network (SiLU's output, recomputed from its input
    when the backward pass needs it)."""
    reference = tiny_marian().train()
    ours = from_transformers(reference).train()
    input_ids, attention_mask = marian_batch()
    labels = torch.randint(1, MARIAN_PAD, (4, 6), generator=torch.Generator().manual_seed(5))
    batch = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.manual_seed(0)
    _, our_bytes = bytes_held_after(lambda: ours(**batch).loss)
    torch.manual_seed(0)
    _, reference_bytes = bytes_held_after(lambda: reference(**batch).loss)
    inner_bytes = mlp_inner_bytes(ours, lambda: ours(**batch))
    assert inner_bytes > 0.05 * reference_bytes
    assert our_bytes <= reference_bytes - inner_bytes + 16  # the loss's scalars


def test_bare_marian_converts_to_the_bare_model():
    torch.manual_seed(0)
    reference = MarianModel(tiny_marian().config).eval()
    ours = from_transformers(reference)
    assert isinstance(ours, VtxTransformerModel)
    input_ids, attention_mask = marian_batch()
    decoder_input_ids = input_ids[:, :5]
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        actual = ours(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    assert (actual.last_hidden_state - expected.last_hidden_state).abs().max() <= 1e-5


def test_unsupported_models_are_refused_by_name():
    with pytest.raises(TypeError, match="Cannot convert BertModel"):
        from_transformers(
            BertModel(
                BertConfig(
                    hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, vocab_size=50
                )
            )
        )


@pytest.mark.parametrize(("share", "tie"), [(True, False), (False, True), (False, False)])
def test_marian_with_any_embedding_sharing_converts_exactly(share, tie):
    """Shared or separate source/target embeddings, tied or separate output layer: ours shares what the source's
    weights share (transformers 5 ties nothing without `tie_word_embeddings`, whatever the sharing flag says), and
    the logits agree."""
    reference = tiny_marian(seed=3, share_encoder_decoder_embeddings=share, tie_word_embeddings=tie)
    with torch.no_grad():
        reference.lm_head.weight.normal_()  # an output layer of its own differs from the embeddings
        reference.tie_weights()  # ties it back when the config says so
    ours = from_transformers(reference)
    source_shares = reference.model.encoder.embed_tokens.weight is reference.model.decoder.embed_tokens.weight
    assert (ours.config.share_encoder_decoder_embeddings, ours.config.tie_word_embeddings) == (source_shares, tie)
    assert (ours.model.encoder.embed_tokens.weight is ours.model.decoder.embed_tokens.weight) == source_shares
    input_ids, attention_mask = padded_source_batch()
    decoder_input_ids = input_ids[:, :5].clone()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        actual = ours(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    assert (actual.logits - expected.logits).abs().max() <= 1e-5


def test_marian_with_separate_vocabularies_is_refused():
    reference = tiny_marian(share_encoder_decoder_embeddings=False, decoder_vocab_size=120)
    with pytest.raises(ValueError, match="separate source \\(99\\) and target \\(120\\) vocabulary sizes"):
        from_transformers(reference)


def test_cli_converts_a_saved_checkpoint_with_its_tokenizer(tmp_path, capsys):
    reference = tiny_marian(seed=2)
    source_dir, out_dir = tmp_path / "marian", tmp_path / "converted"
    reference.save_pretrained(source_dir)
    train_tokenizer(["ein zwei drei", "one two three"], vocab_size=40, min_frequency=1).save_pretrained(source_dir)
    assert main(["convert", str(source_dir), str(out_dir)]) == 0
    assert "converted" in capsys.readouterr().out
    loaded = AutoModelForSeq2SeqLM.from_pretrained(out_dir)
    assert isinstance(loaded, VtxTransformerForConditionalGeneration)
    assert out_dir.stat().st_mode & 0o777 == source_dir.stat().st_mode & 0o777  # as mkdir made it, not 0700
    assert (
        AutoTokenizer.from_pretrained(out_dir)("ein zwei").input_ids
        == AutoTokenizer.from_pretrained(source_dir)("ein zwei").input_ids
    )
    input_ids, attention_mask = marian_batch()
    assert torch.equal(
        loaded.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8),
        reference.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8),
    )


def test_cli_reports_bad_directories_without_leaving_output(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["convert", str(empty), str(tmp_path / "out")]) == 1
    assert "has no config.json" in capsys.readouterr().err
    (empty / "config.json").write_text("{not json")
    assert main(["convert", str(empty), str(tmp_path / "out")]) == 1
    assert "is not valid JSON" in capsys.readouterr().err
    (empty / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    assert main(["convert", str(empty), str(tmp_path / "out")]) == 1
    assert "supports MarianMTModel" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_cli_refuses_to_overwrite(tmp_path, capsys):
    source_dir, out_dir = tmp_path / "marian", tmp_path / "out"
    tiny_marian().save_pretrained(source_dir)
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    assert main(["convert", str(source_dir), str(out_dir)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out_dir.iterdir()] == ["keep.txt"]


def test_corrupted_weights_give_an_error_and_no_output(tmp_path, capsys):
    source_dir, out_dir = tmp_path / "marian", tmp_path / "out"
    tiny_marian().save_pretrained(source_dir)
    weights = source_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["convert", str(source_dir), str(out_dir)]) == 1
    assert "model.safetensors is truncated or corrupted" in capsys.readouterr().err
    assert not out_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["marian"]


# --- GPT-2 -----------------------------------------------------------------------------------------------------


def test_cli_converts_a_saved_gpt2_with_its_tokenizer(tmp_path, capsys):
    """A saved GPT-2 directory (byte-level BPE tokenizer included) becomes our causal LM: same tokenizer, same
    greedy continuation."""
    texts = ["one two three four five", "six seven eight nine ten"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=280, min_frequency=1, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(tmp_path))
    tokenizer = GPT2Tokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    reference = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=eos,
            eos_token_id=eos,
        )
    )
    source_dir, out_dir = tmp_path / "gpt2", tmp_path / "converted"
    reference.save_pretrained(source_dir)
    tokenizer.save_pretrained(source_dir)
    assert main(["convert", str(source_dir), str(out_dir)]) == 0
    assert "converted" in capsys.readouterr().out
    loaded = AutoModelForCausalLM.from_pretrained(out_dir)
    assert isinstance(loaded, VtxTransformerForCausalLM)
    prompt = AutoTokenizer.from_pretrained(out_dir)("three four", return_tensors="pt")
    assert prompt.input_ids.tolist() == tokenizer("three four", return_tensors="pt").input_ids.tolist()
    assert torch.equal(
        loaded.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=eos),
        reference.eval().generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=eos),
    )


# --- ViT -----------------------------------------------------------------------------------------------------


def tiny_reference_vit(model_class, seed: int = 0):
    torch.manual_seed(seed)
    config = ViTConfig(**TINY_VIT_SIZES, encoder_stride=4, num_labels=7, layer_norm_eps=1e-12)
    return model_class(config).eval()


VIT_PAIRS = [
    (ViTModel, VtxViTModel, "pooler_output"),
    (ViTForImageClassification, VtxViTForImageClassification, "logits"),
    (ViTForMaskedImageModeling, VtxViTForMaskedImageModeling, "reconstruction"),
]


@pytest.mark.parametrize(("reference_class", "our_class", "output"), VIT_PAIRS, ids=[p[0].__name__ for p in VIT_PAIRS])
def test_converted_vit_gives_the_same_outputs_at_the_native_size(reference_class, our_class, output):
    reference = tiny_reference_vit(reference_class)
    ours = from_transformers(reference)
    assert type(ours) is our_class
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(pixels), ours(pixels)
    assert (actual[output] - expected[output]).abs().max() <= 1e-5
    if reference_class is ViTModel:
        assert (actual.last_hidden_state - expected.last_hidden_state).abs().max() <= 1e-5


@pytest.mark.parametrize("reference_class", [ViTModel, ViTForImageClassification])
def test_converted_vit_gives_the_same_outputs_at_a_non_square_size(reference_class):
    reference = tiny_reference_vit(reference_class, seed=2)
    ours = from_transformers(reference)
    pixels = torch.randn(2, 3, 24, 44, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(pixels, interpolate_pos_encoding=True)
        actual = ours(pixels, interpolate_pos_encoding=True)
    name = "pooler_output" if reference_class is ViTModel else "logits"
    if reference_class is ViTModel:
        assert actual.last_hidden_state.shape[1] == 1 + 6 * 11
    assert (actual[name] - expected[name]).abs().max() <= 1e-5


def test_converted_vit_keeps_labels_and_converts_from_the_command_line(tmp_path):
    reference = tiny_reference_vit(ViTForImageClassification)
    reference.config.id2label = {i: f"kind {i}" for i in range(7)}
    reference.config.label2id = {f"kind {i}": i for i in range(7)}
    source_dir, out_dir = tmp_path / "vit", tmp_path / "converted"
    reference.save_pretrained(source_dir)
    assert main(["convert", str(source_dir), str(out_dir)]) == 0
    loaded = AutoModelForImageClassification.from_pretrained(out_dir).eval()
    assert isinstance(loaded, VtxViTForImageClassification)
    assert loaded.config.id2label[3] == "kind 3"
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (loaded(pixels).logits - reference(pixels).logits).abs().max() <= 1e-5
