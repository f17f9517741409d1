"""The Transformer's decoder as a language model (`VtxTransformerForCausalLM`), against GPT-2 as the oracle.

A tiny random `GPT2LMHeadModel` converted with `from_transformers` gives the same logits (left padding included),
the same greedy, beam and sampled tokens, the same loss; its cross-attention variant the same logits with an
encoder output. Then the model's own contract: presets, positions, caches, `logits_to_keep`, gradient
checkpointing, saving and the Auto classes, and clear errors.
"""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    BertModel,
    DynamicCache,
    EncoderDecoderCache,
    EncoderDecoderModel,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainingArguments,
)

from hf_visiontx import (
    VtxTransformerConfig,
    VtxTransformerForCausalLM,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
)
from hf_visiontx.convert import from_transformers
from hf_visiontx.hub import write_model_card

VOCAB, PAD, BOS, EOS = 99, 0, 1, 2


def tiny_gpt2(seed: int = 0, **overrides) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    fields = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=BOS, eos_token_id=EOS)
    return GPT2LMHeadModel(GPT2Config(**(fields | {"pad_token_id": PAD} | overrides))).eval()


def tiny_causal_config(**overrides) -> VtxTransformerConfig:
    fields = dict(
        vocab_size=VOCAB,
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=4,
        decoder_ffn_dim=37,
        max_position_embeddings=64,
        dropout=0.0,
        attention_dropout=0.0,
        label_smoothing=0.0,
    )
    return VtxTransformerConfig(**(fields | overrides))


def left_padded_prompts(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three prompts of 9, 6 and 3 tokens, left-padded to 9, and their mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = attention_mask[2, :6] = 0
    return input_ids.masked_fill(attention_mask == 0, PAD), attention_mask


def generation_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """The positions `generate()` gives a left-padded prompt: counted from its first real token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


# --- GPT-2 as the oracle ---------------------------------------------------------------------------------------


def test_converted_gpt2_gives_the_same_logits_with_left_padding():
    reference = tiny_gpt2()
    ours = from_transformers(reference).eval()
    assert isinstance(ours, VtxTransformerForCausalLM)
    input_ids, attention_mask = left_padded_prompts()
    positions = generation_positions(attention_mask)
    with torch.no_grad():
        expected = reference(input_ids, attention_mask=attention_mask, position_ids=positions).logits
        actual = ours(input_ids, attention_mask=attention_mask, position_ids=positions).logits
        unpadded = ours(input_ids[2:, 6:]).logits  # the third prompt alone
    assert (actual - expected).abs().max() <= 1e-5
    assert (actual[2:, 6:] - unpadded).abs().max() <= 1e-5  # left padding changes nothing


@pytest.mark.parametrize(
    "generate_kwargs",
    [
        {"do_sample": False},
        {"num_beams": 3},
        {"do_sample": True, "top_k": 8},
        {"do_sample": False, "cache_implementation": "static"},
    ],
    ids=["greedy", "beam", "sampling", "static-cache"],
)
def test_converted_gpt2_generates_the_same_tokens(generate_kwargs):
    reference = tiny_gpt2(seed=1)
    ours = from_transformers(reference).eval()
    input_ids, attention_mask = left_padded_prompts(seed=1)
    kwargs = {"attention_mask": attention_mask, "max_new_tokens": 12, **generate_kwargs}
    torch.manual_seed(3)
    expected = reference.generate(input_ids, **{k: v for k, v in kwargs.items() if k != "cache_implementation"})
    torch.manual_seed(3)
    actual = ours.generate(input_ids, **kwargs)
    assert torch.equal(actual, expected)
    assert actual.shape[1] > input_ids.shape[1]


def test_converted_gpt2_gives_the_same_loss_and_gradients_flow():
    reference = tiny_gpt2(seed=2)
    ours = from_transformers(reference)
    input_ids, attention_mask = left_padded_prompts(seed=2)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    expected = reference(input_ids, attention_mask=attention_mask, labels=labels).loss
    actual = ours(input_ids, attention_mask=attention_mask, labels=labels).loss
    assert abs(actual.item() - expected.item()) <= 1e-5
    actual.backward()
    assert ours.lm_head.weight.grad is not None and ours.model.decoder.layers[0].mlp.fc1.weight.grad.abs().sum() > 0


def test_converted_gpt2_with_cross_attention_attends_to_the_encoder_output_the_same_way():
    reference = tiny_gpt2(seed=4, add_cross_attention=True)
    ours = from_transformers(reference).eval()
    assert ours.config.add_cross_attention and ours.model.decoder.layers[0].encoder_attn is not None
    input_ids, attention_mask = left_padded_prompts(seed=4)
    encoder_states = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(5))
    encoder_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    inputs = dict(
        attention_mask=attention_mask,
        position_ids=generation_positions(attention_mask),
        encoder_hidden_states=encoder_states,
        encoder_attention_mask=encoder_mask,
    )
    with torch.no_grad():
        expected = reference(input_ids, **inputs).logits
        actual = ours(input_ids, **inputs).logits
        other_encoder = ours(input_ids, **(inputs | {"encoder_hidden_states": encoder_states.flip(0)})).logits
    assert (actual - expected).abs().max() <= 1e-5
    assert (actual - other_encoder).abs().max() > 1e-3  # the encoder output is read


def test_gpt2_options_ours_does_not_compute_are_refused_by_name():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx=True"):
        from_transformers(tiny_gpt2(scale_attn_by_inverse_layer_idx=True))


# --- the model's own contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "millions"), [("gpt2", 124.44), ("gpt2-medium", 354.82)])
def test_gpt2_presets_have_gpt2s_sizes(preset, millions):
    with torch.device("meta"):
        model = VtxTransformerForCausalLM(VtxTransformerConfig.from_preset(preset))
    assert abs(model.num_parameters() / 1e6 - millions) / millions < 0.01
    assert model.config.is_decoder and not model.config.is_encoder_decoder
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight


def test_paper_decoder_sizes_build_a_language_model_without_encoder_or_cross_attention():
    with torch.device("meta"):
        model = VtxTransformerForCausalLM(VtxTransformerConfig.from_preset("base"))
    names = [name for name, _ in model.named_parameters()]
    assert not any("encoder" in name for name in names)
    assert sum(".self_attn.qkv_proj.weight" in name for name in names) == 6


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_left_padded_prompts_generate_what_each_prompt_generates_alone(positions):
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(
        tiny_causal_config(position_embedding_type=positions, layer_norm_placement="pre")
    ).eval()
    model.generation_config.pad_token_id = PAD
    input_ids, attention_mask = left_padded_prompts(seed=6)
    batched = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, do_sample=False)
    for row in range(3):
        prompt = input_ids[row : row + 1, attention_mask[row] == 1]
        alone = model.generate(prompt, max_new_tokens=6, do_sample=False)
        assert torch.equal(batched[row, -6:], alone[0, -6:])


def test_cached_decoding_equals_a_full_forward_and_logits_to_keep_slices():
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config()).eval()
    input_ids = torch.randint(3, VOCAB, (2, 8))
    with torch.no_grad():
        full = model(input_ids).logits
        first = model(input_ids[:, :5], use_cache=True)
        assert isinstance(first.cache, DynamicCache) and first.cache.get_seq_length() == 5
        rest = model(input_ids[:, 5:], cache=first.cache).logits
        last = model(input_ids, logits_to_keep=1).logits
    torch.testing.assert_close(rest, full[:, 5:])
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last, full[:, -1:])


@pytest.mark.parametrize("model_class", [VtxTransformerForCausalLM, VtxTransformerForConditionalGeneration])
def test_static_cache_is_sized_for_the_decoder_when_the_stacks_differ(model_class):
    """transformers sizes caches by `num_hidden_layers` / `num_attention_heads`: they are the decoder's."""
    torch.manual_seed(0)
    config = tiny_causal_config(
        encoder_layers=1, decoder_layers=3, encoder_attention_heads=8, decoder_attention_heads=2
    )
    model = model_class(config).eval()
    assert (config.num_hidden_layers, config.num_attention_heads) == (3, 2)
    input_ids = torch.randint(3, VOCAB, (2, 5))
    static = model.generate(input_ids, max_new_tokens=5, do_sample=False, cache_implementation="static")
    assert torch.equal(static, model.generate(input_ids, max_new_tokens=5, do_sample=False))
    assert not config.is_decoder and config.is_encoder_decoder  # the causal LM marked a copy, not this config


def test_a_plain_cache_with_encoder_states_becomes_an_encoder_decoder_cache():
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config(add_cross_attention=True)).eval()
    input_ids, encoder_states = torch.randint(3, VOCAB, (2, 6)), torch.randn(2, 4, 32)
    with torch.no_grad():
        full = model(input_ids, encoder_hidden_states=encoder_states).logits
        first = model(input_ids[:, :4], encoder_hidden_states=encoder_states, cache=DynamicCache(), use_cache=True)
        rest = model(input_ids[:, 4:], encoder_hidden_states=encoder_states, cache=first.cache).logits
    assert isinstance(first.cache, EncoderDecoderCache)
    torch.testing.assert_close(rest, full[:, 4:])


@pytest.mark.parametrize("model_class", [VtxTransformerForCausalLM, VtxTransformerForConditionalGeneration])
def test_generation_past_the_positions_names_the_generated_text_not_the_input(model_class):
    model = model_class(tiny_causal_config()).eval()
    input_ids = torch.randint(3, VOCAB, (1, 10))
    with pytest.raises(ValueError, match=r"generated text is longer than `max_position_embeddings` \(64\)") as error:
        model.generate(input_ids, max_new_tokens=80, min_new_tokens=80)
    assert "lower `max_new_tokens`" in str(error.value) and "shorten" not in str(error.value)


def test_too_long_inputs_of_a_translator_are_named_by_stack():
    model = VtxTransformerForConditionalGeneration(tiny_causal_config()).eval()
    with pytest.raises(ValueError, match=r"`input_ids` is longer than `max_position_embeddings` \(64\): 65 positions"):
        model(input_ids=torch.randint(3, VOCAB, (1, 65)), labels=torch.randint(3, VOCAB, (1, 5)))
    with pytest.raises(ValueError, match=r"`decoder_input_ids` is longer than `max_position_embeddings` \(64\)"):
        model(input_ids=torch.randint(3, VOCAB, (1, 5)), labels=torch.randint(3, VOCAB, (1, 70)))  # teacher forcing


def test_loss_is_divided_by_num_items_in_batch():
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config())
    input_ids = torch.randint(3, VOCAB, (2, 7))
    mean = model(input_ids, labels=input_ids).loss
    summed = model(input_ids, labels=input_ids, num_items_in_batch=1).loss
    torch.testing.assert_close(summed, mean * 12)  # 2 rows x 6 predicted tokens


def test_shift_labels_are_scored_as_given_instead_of_labels():
    """Sequence-parallel training passes targets already aligned with the positions (`shift_labels`)."""
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config()).eval()
    input_ids = torch.randint(3, VOCAB, (2, 7))
    shifted = torch.nn.functional.pad(input_ids[:, 1:], (0, 1), value=-100)
    from_labels = model(input_ids, labels=input_ids).loss
    torch.testing.assert_close(model(input_ids, shift_labels=shifted).loss, from_labels)
    other_labels = torch.randint(3, VOCAB, (2, 7))
    torch.testing.assert_close(model(input_ids, labels=other_labels, shift_labels=shifted).loss, from_labels)
    with pytest.raises(ValueError, match=r"`shift_labels` must have shape \(batch, sequence_length\) = \(2, 7\)"):
        model(input_ids, shift_labels=shifted[:, :5])


def test_the_decoder_serves_an_encoder_decoder_model_with_a_text_encoder(tmp_path):
    """`EncoderDecoderModel`: a BERT encoder (width 24) with our decoder (width 32): transformers adds the projection,
    computes the loss, generates with the cached cross-attention, saves and reloads."""
    torch.manual_seed(0)
    encoder = BertModel(
        BertConfig(vocab_size=VOCAB, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    decoder = VtxTransformerForCausalLM(tiny_causal_config(add_cross_attention=True))
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id = BOS, PAD, EOS
    input_ids, labels = torch.randint(3, VOCAB, (2, 6)), torch.randint(3, VOCAB, (2, 4))
    loss = model(input_ids=input_ids, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss) and decoder.model.decoder.layers[0].encoder_attn.kv_proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        cached = model.generate(input_ids, max_new_tokens=5, do_sample=False)
        uncached = model.generate(input_ids, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape[1] > 1
    model.save_pretrained(tmp_path)
    reloaded = EncoderDecoderModel.from_pretrained(tmp_path).eval()
    assert type(reloaded.decoder) is VtxTransformerForCausalLM
    assert torch.equal(reloaded.generate(input_ids, max_new_tokens=5, do_sample=False), cached)


def test_trainer_finds_labels_as_the_only_label_and_evaluates(tmp_path):
    """`Trainer` takes every named forward parameter with "label" in it for a label each batch must hold: only
    `labels` may be one (`shift_labels` is a keyword), or evaluation passes no label ids to the metrics."""
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config())
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(3, VOCAB, (4, 6))]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to=[], use_cpu=True)
    seen = {}

    def metrics(prediction):
        seen["labels"] = prediction.label_ids
        return {}

    trainer = Trainer(model=model, args=args, eval_dataset=rows, compute_metrics=metrics)
    assert trainer.label_names == ["labels"]
    assert trainer.evaluate()["eval_loss"] > 0
    assert seen["labels"].shape == (4, 6)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config()).train()
    input_ids = torch.randint(3, VOCAB, (2, 7))
    model(input_ids, labels=input_ids).loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(input_ids, labels=input_ids).loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], msg=name)


def test_saved_model_reloads_through_auto_model_for_causal_lm_with_its_card(tmp_path):
    torch.manual_seed(0)
    model = VtxTransformerForCausalLM(tiny_causal_config()).eval()
    model.save_pretrained(tmp_path)
    write_model_card(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(reloaded) is VtxTransformerForCausalLM and reloaded.config.is_decoder
    input_ids = torch.randint(3, VOCAB, (1, 5))
    assert torch.equal(reloaded.generate(input_ids, max_new_tokens=5), model.generate(input_ids, max_new_tokens=5))
    card = (tmp_path / "README.md").read_text()
    assert 'pipeline_tag: "text-generation"' in card and "AutoModelForCausalLM.from_pretrained(" in card
    assert "decoder only: 2 layers" in card


@pytest.mark.parametrize("head", [VtxTransformerForConditionalGeneration, VtxTransformerModel])
@pytest.mark.parametrize("shared", [False, True])
def test_the_decoder_of_a_translation_model_loads_into_the_language_model(tmp_path, head, shared):
    """The causal LM names its weights `model.decoder.*` as the encoder-decoder model does. With shared embeddings
    the saved file holds the decoder's token embedding under the encoder's name only: it must be read from there,
    not left random."""
    torch.manual_seed(0)
    translator = head(tiny_causal_config(share_encoder_decoder_embeddings=shared))
    translator.save_pretrained(tmp_path)
    language_model = VtxTransformerForCausalLM.from_pretrained(tmp_path)
    decoder = translator.get_decoder()
    assert torch.equal(language_model.model.decoder.layers[1].mlp.fc2.weight, decoder.layers[1].mlp.fc2.weight)
    assert torch.equal(language_model.model.decoder.embed_tokens.weight, decoder.embed_tokens.weight)
    assert torch.equal(language_model.lm_head.weight, decoder.embed_tokens.weight)  # tied


def test_bad_inputs_are_named():
    model = VtxTransformerForCausalLM(tiny_causal_config()).eval()
    input_ids = torch.randint(3, VOCAB, (2, 5))
    with pytest.raises(ValueError, match=r"no cross-attention layers.*add_cross_attention=True"):
        model(input_ids, encoder_hidden_states=torch.randn(2, 3, 32))
    with pytest.raises(ValueError, match=r"`position_ids` must have shape \(2, 5\) or \(1, 5\)"):
        model(input_ids, position_ids=torch.arange(4)[None])
    with pytest.raises(ValueError, match="`position_ids` must hold integer positions"):
        model(input_ids, position_ids=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"`attention_mask` must have shape \(2, 5\)"):
        model(input_ids, attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"`input_ids` is longer than `max_position_embeddings` \(64\): 65 positions"):
        model(torch.randint(3, VOCAB, (1, 65)))
    with pytest.raises(ValueError, match="leave `logits_to_keep` at 0"):
        model(input_ids, labels=input_ids, logits_to_keep=1)
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.full((1, 3), VOCAB))
    with pytest.raises(ValueError, match="`position_embedding_type` must be one of"):
        tiny_causal_config(position_embedding_type="rotary")
