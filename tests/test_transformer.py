"""The encoder-decoder Transformer: paper sizes, mechanics, loss, generation and errors."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import AutoModel, AutoModelForSeq2SeqLM
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.generation.configuration_utils import CompileConfig
from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

from hf_visiontx import VtxTransformerConfig, VtxTransformerForConditionalGeneration, VtxTransformerModel
from hf_visiontx.modeling.modeling_transformer import label_smoothed_cross_entropy, sinusoidal_position_table
from support.model_tester_mixin import ModelTesterMixin
from support.transformer_tester import (
    BOS,
    EOS,
    PAD,
    VOCAB_SIZE,
    padded_source_batch,
    target_labels,
    tiny_transformer_config,
)


def tiny_model(seed: int = 0, **overrides) -> VtxTransformerForConditionalGeneration:
    torch.manual_seed(seed)
    return VtxTransformerForConditionalGeneration(tiny_transformer_config(**overrides)).eval()


class TestTransformerCommon(ModelTesterMixin):
    """The shared checks on the paper's configuration (post-LN, shared embeddings, interleaved sinusoids)."""

    model_classes = (VtxTransformerModel, VtxTransformerForConditionalGeneration)
    auto_classes = {VtxTransformerModel: AutoModel, VtxTransformerForConditionalGeneration: AutoModelForSeq2SeqLM}
    config_overrides: dict = {}

    def make_config(self, **overrides):
        return tiny_transformer_config(**(self.config_overrides | overrides))

    def make_inputs(self, config, model_class):
        input_ids, attention_mask = padded_source_batch()
        labels = target_labels()
        if model_class is VtxTransformerModel:
            decoder_input_ids = labels.masked_fill(labels == -100, PAD)
            return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class TestPreLNSeparateEmbeddingsCommon(TestTransformerCommon):
    """The same checks on the options: pre-LN, separate source/target embeddings, Marian's layout and bias."""

    config_overrides = {
        "layer_norm_placement": "pre",
        "share_encoder_decoder_embeddings": False,
        "position_encoding_layout": "concatenated",
        "activation_function": "silu",
        "lm_head_bias": True,
    }


# --- configuration and sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "paper_count", "tolerance"), [("base", 65e6, 0.04), ("big", 213e6, 0.02)])
def test_presets_match_the_paper_parameter_counts(preset, paper_count, tolerance):
    config = VtxTransformerConfig.from_preset(preset, vocab_size=37000)
    with torch.device("meta"):
        model = VtxTransformerForConditionalGeneration(config)
    count = sum(p.numel() for p in model.parameters())  # shared embeddings count once
    assert abs(count - paper_count) / paper_count <= tolerance, f"{preset}: {count / 1e6:.1f}M parameters"


def test_presets_carry_the_paper_hyperparameters():
    base, big = VtxTransformerConfig.from_preset("base"), VtxTransformerConfig.from_preset("big", dropout=0.2)
    assert (base.d_model, base.encoder_ffn_dim, base.encoder_attention_heads, base.encoder_layers) == (512, 2048, 8, 6)
    assert (big.d_model, big.encoder_ffn_dim, big.encoder_attention_heads, big.dropout) == (1024, 4096, 16, 0.2)
    assert base.label_smoothing == 0.1 and base.layer_norm_placement == "post" and base.activation_function == "relu"
    with pytest.raises(ValueError, match="Unknown Transformer preset 'huge'"):
        VtxTransformerConfig.from_preset("huge")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"d_model": 30, "encoder_attention_heads": 4},
            r"`d_model` \(30\) must be divisible by `encoder_attention_heads`",
        ),
        ({"decoder_attention_heads": 5}, r"must be divisible by `decoder_attention_heads` \(5\)"),
        ({"position_encoding_layout": "rotary"}, "position_encoding_layout"),
        ({"layer_norm_placement": "middle"}, "layer_norm_placement"),
        ({"dropout": 1.5}, r"`dropout` must be in \[0, 1\)"),
        ({"activation_function": "nope"}, "activation_function"),
        ({"pad_token_id": 99}, r"`pad_token_id` \(99\) must lie in \[0, vocab_size=99\)"),
        ({"encoder_layers": 0}, "`encoder_layers` must be a positive integer"),
    ],
)
def test_invalid_configs_fail_when_built(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_transformer_config(**overrides)


# --- mechanics -----------------------------------------------------------------------------------------------


def test_interleaved_sinusoids_follow_the_paper_formula():
    table = sinusoidal_position_table(50, 16, "interleaved")
    for pos, i in [(0, 0), (3, 1), (17, 5), (49, 7)]:
        angle = pos / 10000 ** (2 * i / 16)
        assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_concatenated_sinusoids_match_marian():
    marian = MarianSinusoidalPositionalEmbedding(40, 24).create_weight()
    torch.testing.assert_close(sinusoidal_position_table(40, 24, "concatenated"), marian, atol=1e-6, rtol=0)


def test_sinusoid_table_is_not_saved(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert not [key for key in keys if "embed_positions" in key]
    assert "model.encoder.embed_tokens.weight" in keys and "lm_head.weight" not in keys  # tied: saved once


def test_embeddings_are_scaled_by_sqrt_d_model_and_positions_added():
    model = tiny_model(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    input_ids, attention_mask = padded_source_batch()
    with torch.no_grad():
        encoded = model.get_encoder()(input_ids, attention_mask, output_hidden_states=True)
    embedding = model.get_input_embeddings()
    expected = F.embedding(input_ids, embedding.weight) * math.sqrt(32) + sinusoidal_position_table(64, 32)[:9]
    torch.testing.assert_close(encoded.hidden_states[0], expected)
    assert embedding.scale == math.sqrt(32)  # the scale lives in the embedding: its output is what inputs_embeds takes


def test_source_target_and_output_embeddings_are_shared_when_configured():
    shared = tiny_model()
    assert shared.model.decoder.embed_tokens.weight is shared.model.encoder.embed_tokens.weight
    assert shared.lm_head.weight is shared.model.encoder.embed_tokens.weight
    separate = tiny_model(share_encoder_decoder_embeddings=False)
    assert separate.model.decoder.embed_tokens.weight is not separate.model.encoder.embed_tokens.weight
    assert separate.lm_head.weight is separate.model.decoder.embed_tokens.weight


def test_post_ln_and_pre_ln_place_layer_norms_differently():
    post, pre = tiny_model(), tiny_model(layer_norm_placement="pre")
    assert post.model.encoder.layer_norm is None and pre.model.encoder.layer_norm is not None
    pre.load_state_dict(post.state_dict(), strict=False)  # same weights, different wiring
    input_ids, attention_mask = padded_source_batch()
    with torch.no_grad():
        post_out = post.get_encoder()(input_ids, attention_mask).last_hidden_state
        pre_out = pre.get_encoder()(input_ids, attention_mask).last_hidden_state
    # post-LN output rows are normalised (LayerNorm with unit weight, zero bias); pre-LN output is not
    torch.testing.assert_close(post_out.mean(-1), torch.zeros(3, 9), atol=1e-5, rtol=0)
    assert not torch.allclose(pre_out, post_out)


def test_padding_does_not_change_the_outputs_of_real_tokens():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    decoder_input_ids = torch.tensor([[BOS, 5, 6], [BOS, 7, 8], [BOS, 9, 10]])
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        alone = model(input_ids=input_ids[2:, :3], decoder_input_ids=decoder_input_ids[2:]).logits
    torch.testing.assert_close(batched[2:], alone, atol=1e-5, rtol=1e-5)


# --- loss ----------------------------------------------------------------------------------------------------


def test_label_smoothed_loss_matches_the_definition():
    model = tiny_model(label_smoothing=0.1)
    input_ids, attention_mask = padded_source_batch()
    labels = target_labels()
    with torch.no_grad():
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    log_probs = outputs.logits.log_softmax(-1)
    keep = labels != -100
    nll = -log_probs[keep].gather(-1, labels[keep][:, None]).squeeze(-1)
    uniform = -log_probs[keep].mean(-1)
    expected = ((1 - 0.1) * nll + 0.1 * uniform).mean()
    torch.testing.assert_close(outputs.loss, expected)


def test_loss_is_normalised_by_num_items_in_batch():
    model = tiny_model(label_smoothing=0.0)
    input_ids, attention_mask = padded_source_batch()
    labels = target_labels()
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=40).loss
    summed = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
    torch.testing.assert_close(loss, summed / 40)
    torch.testing.assert_close(label_smoothed_cross_entropy(logits, labels), summed / (labels != -100).sum())


def test_decoder_inputs_from_labels_are_shifted_right():
    model = tiny_model()
    labels = torch.tensor([[5, 6, EOS], [7, EOS, -100]])
    shifted = model.prepare_decoder_input_ids_from_labels(labels)
    assert shifted.tolist() == [[BOS, 5, 6], [BOS, 7, EOS]]
    input_ids, _ = padded_source_batch(batch=2)
    with torch.no_grad():
        implicit = model(input_ids=input_ids, labels=labels).logits
        explicit = model(input_ids=input_ids, decoder_input_ids=shifted).logits
    torch.testing.assert_close(implicit, explicit)


# --- generation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "generate_kwargs",
    [
        {"do_sample": False},
        {"num_beams": 3, "num_return_sequences": 3},
        {"do_sample": True, "top_k": 20},
    ],
    ids=["greedy", "beam", "sampling"],
)
def test_generation_gives_the_same_tokens_with_and_without_cache(generate_kwargs):
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    runs = []
    for use_cache in (True, False):
        torch.manual_seed(7)
        runs.append(
            model.generate(
                input_ids, attention_mask=attention_mask, max_new_tokens=12, use_cache=use_cache, **generate_kwargs
            )
        )
    assert runs[0].shape[1] > 5
    assert torch.equal(runs[0], runs[1])


def test_static_cache_gives_the_same_tokens_as_the_dynamic_cache():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    dynamic = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=10)
    static = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=10, cache_implementation="static")
    assert torch.equal(dynamic, static)
    beams = dict(num_beams=2, num_return_sequences=2, max_new_tokens=10)
    assert torch.equal(
        model.generate(input_ids, attention_mask=attention_mask, **beams),
        model.generate(input_ids, attention_mask=attention_mask, cache_implementation="static", **beams),
    )


@pytest.mark.slow  # an inductor compile
def test_compiled_static_cache_generation_gives_the_same_tokens():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    eager = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8)
    compile_config = CompileConfig(fullgraph=True, mode="default")  # fullgraph: any graph break is an error
    compiled = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=8,
        cache_implementation="static",
        compile_config=compile_config,
    )
    assert torch.equal(compiled, eager)


def test_step_by_step_cached_logits_equal_the_full_forward():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    decoder_input_ids = torch.randint(3, VOCAB_SIZE, (3, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        encoder_outputs = model.get_encoder()(input_ids, attention_mask)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        steps = []
        for t in range(7):
            out = model(
                encoder_outputs=encoder_outputs,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids[:, t : t + 1],
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cross_attention_keys_and_values_are_projected_once_per_generation():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    calls = []
    hooks = [
        layer.encoder_attn.kv_proj.register_forward_hook(lambda *_: calls.append(1))
        for layer in model.model.decoder.layers
    ]
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, min_new_tokens=8)
    for hook in hooks:
        hook.remove()
    assert generated.shape[1] == 9
    assert len(calls) == len(model.model.decoder.layers)


def test_generation_config_is_saved_with_ids_and_a_length_limit(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert (saved["decoder_start_token_id"], saved["pad_token_id"], saved["eos_token_id"]) == (BOS, PAD, EOS)
    assert 0 < saved["max_new_tokens"] < 64
    config = json.loads((tmp_path / "config.json").read_text())
    assert "num_beams" not in config and "max_new_tokens" not in config


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_generate_returns_attentions_under_every_implementation(implementation):
    model = tiny_model()
    model.set_attn_implementation(implementation)
    input_ids, attention_mask = padded_source_batch()
    settings = dict(attention_mask=attention_mask, max_new_tokens=4, min_new_tokens=4, return_dict_in_generate=True)
    out = model.generate(input_ids, output_attentions=True, **settings)
    assert model.config._attn_implementation == implementation  # the call did not switch the model
    assert len(out.cross_attentions) == 4 and len(out.cross_attentions[0]) == 2
    assert out.cross_attentions[0][0].shape == (3, 4, 1, 9)
    assert out.decoder_attentions[2][1].shape == (3, 4, 1, 3) and len(out.encoder_attentions) == 2
    # no attention mass on padded source positions
    assert out.cross_attentions[1][0][2, :, :, 3:].abs().max() == 0
    assert torch.equal(out.sequences, model.generate(input_ids, **settings).sequences)
    model.set_attn_implementation("eager")
    reference = model.generate(input_ids, output_attentions=True, **settings)
    for ours, theirs in zip(out.cross_attentions, reference.cross_attentions, strict=True):
        torch.testing.assert_close(torch.stack(ours), torch.stack(theirs), rtol=1e-5, atol=1e-6)


# --- conformance: what transformers' own seq2seq models do ---------------------------------------------------


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("tie", [True, False])
def test_every_tying_combination_builds_saves_and_reloads(tmp_path, share, tie):
    """The tying rules are decided once (`_tied_weights_keys`, read from the config) and applied the same way at
    construction, save and load; the flags may also be set on a config after it is built."""
    config = tiny_transformer_config(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    config.share_encoder_decoder_embeddings, config.tie_word_embeddings = share, tie
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(config).eval()
    encoder, decoder = model.model.encoder.embed_tokens.weight, model.model.decoder.embed_tokens.weight
    assert (encoder is decoder) == share
    assert (model.lm_head.weight is decoder) == tie
    model.save_pretrained(tmp_path)
    reloaded, info = VtxTransformerForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (reloaded.model.encoder.embed_tokens.weight is reloaded.model.decoder.embed_tokens.weight) == share
    assert (reloaded.lm_head.weight is reloaded.model.decoder.embed_tokens.weight) == tie
    input_ids, attention_mask = padded_source_batch()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask, labels=target_labels()).logits
        actual = reloaded(input_ids=input_ids, attention_mask=attention_mask, labels=target_labels()).logits
    assert torch.equal(actual, expected)


def test_resizing_the_vocabulary_resizes_every_embedding_and_the_output():
    for share in (True, False):
        model = tiny_model(share_encoder_decoder_embeddings=share)
        model.resize_token_embeddings(120)
        assert model.config.vocab_size == 120
        assert model.model.encoder.embed_tokens.num_embeddings == model.model.decoder.embed_tokens.num_embeddings == 120
        assert model.lm_head.out_features == 120 and model.lm_head.weight is model.model.decoder.embed_tokens.weight
        input_ids, attention_mask = padded_source_batch()
        input_ids[0, 0], labels = 110, target_labels()
        labels[0, 0] = 115
        with torch.no_grad():
            outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        assert outputs.logits.shape == (3, 6, 120) and torch.isfinite(outputs.loss)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_checkpoints_generate(tmp_path, dtype):
    """The route that crashed: a float32 checkpoint loaded in half precision (the sinusoid table stayed float32)."""
    tiny_model().save_pretrained(tmp_path)
    model = VtxTransformerForConditionalGeneration.from_pretrained(tmp_path, dtype=dtype)
    assert model.model.encoder.embed_positions.table.dtype == dtype
    input_ids, attention_mask = padded_source_batch()
    for settings in (dict(do_sample=False), dict(num_beams=3), dict(do_sample=True, top_k=5)):
        tokens = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=5, **settings)
        assert tokens.shape[0] == 3 and ((tokens >= 0) & (tokens < VOCAB_SIZE)).all()


def test_past_key_values_is_accepted_as_the_deprecated_name_of_cache():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    decoder_input_ids = torch.tensor([[BOS, 5], [BOS, 6], [BOS, 7]])
    batch = dict(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, use_cache=True
    )
    with torch.no_grad():
        expected = model(**batch, cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
        for model_or_base in (model, model.model):
            with pytest.warns(FutureWarning, match="`past_key_values` is deprecated"):
                outputs = model_or_base(**batch, past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            assert outputs.cache.get_seq_length() == 2
    assert torch.equal(model.lm_head(outputs.last_hidden_state), expected.logits)


def test_get_encoder_follows_the_modality_contract():
    """The text encoder for the default (text) modality; no image, video or audio encoder, so the model itself, as
    transformers' text-only models answer; an unknown modality is an error."""
    model = tiny_model()
    assert model.get_encoder() is model.model.encoder and model.model.get_encoder() is model.model.encoder
    assert model.get_decoder() is model.model.decoder
    for modality in ("image", "video", "audio"):
        assert model.get_encoder(modality=modality) is model
    with pytest.raises(ValueError, match="modality"):
        model.get_encoder(modality="smell")


# --- errors --------------------------------------------------------------------------------------------------


def test_token_ids_outside_the_vocabulary_are_named():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    with pytest.raises(ValueError, match=r"`input_ids` holds token ids outside the vocabulary.*\[0, 99\)"):
        model(input_ids=input_ids + 99, attention_mask=attention_mask, labels=target_labels())
    with pytest.raises(ValueError, match="`decoder_input_ids` holds token ids outside"):
        model(input_ids=input_ids, decoder_input_ids=torch.tensor([[BOS, -4]] * 3))
    with pytest.raises(ValueError, match=r"`labels` holds token ids outside .* -100 or ids"):
        model(input_ids=input_ids, labels=torch.tensor([[5, 100]] * 3))
    with pytest.raises(ValueError, match="`input_ids` must hold integer token ids"):
        model(input_ids=input_ids.float(), labels=target_labels())


def test_mismatched_attention_masks_are_named():
    model = tiny_model()
    input_ids, attention_mask = padded_source_batch()
    with pytest.raises(ValueError, match=r"`attention_mask` must have shape \(3, 9\).*got \(3, 8\)"):
        model(input_ids=input_ids, attention_mask=attention_mask[:, :8], labels=target_labels())
    with pytest.raises(ValueError, match=r"`decoder_attention_mask` must have shape \(3, 6\)"):
        model(input_ids=input_ids, labels=target_labels(), decoder_attention_mask=torch.ones(3, 5))


def test_generate_without_a_source_is_a_clear_error():
    with pytest.raises(ValueError, match="generate\\(\\) needs a source sentence"):
        tiny_model().generate(max_new_tokens=3)


def test_sequences_longer_than_the_position_table_are_named():
    with pytest.raises(ValueError, match=r"longer than `max_position_embeddings` \(64\)"):
        tiny_model()(input_ids=torch.full((1, 65), 5), labels=torch.full((1, 3), 5))


def test_unknown_forward_arguments_are_rejected():
    input_ids, _ = padded_source_batch()
    with pytest.raises(TypeError, match="decoder_input_id"):
        tiny_model()(input_ids=input_ids, decoder_input_id=input_ids)


def test_models_without_a_loss_accept_labels_as_transformers_wrappers_pass_them():
    """`Seq2SeqTrainer` hands `labels` to `generate()`, and `VisionEncoderDecoderModel.generate` hands them on to its
    encoder: a bare model ignores them, as transformers' own do; a misspelt name still fails."""
    from hf_visiontx import VtxSwinModel, VtxViTModel
    from support.swin_tester import tiny_swin_config
    from support.vit_tester import pixel_batch, tiny_vit_config

    for model in (VtxViTModel(tiny_vit_config()).eval(), VtxSwinModel(tiny_swin_config()).eval()):
        pixels = pixel_batch()
        with torch.no_grad():
            expected = model(pixels).last_hidden_state
            torch.testing.assert_close(model(pixels, labels=torch.tensor([1, 2, 3])).last_hidden_state, expected)
        with pytest.raises(TypeError, match="'label'"):
            model(pixels, label=torch.tensor([1, 2, 3]))


def test_the_three_families_share_one_dropout_idiom():
    """Dropout on hidden states is an `nn.Dropout` module in every family (attention dropout is the attention
    function's argument), with the configured probabilities."""
    from hf_visiontx import VtxSwinModel, VtxViTModel
    from support.swin_tester import tiny_swin_config
    from support.vit_tester import tiny_vit_config

    config = tiny_transformer_config(dropout=0.3, activation_dropout=0.2)
    models = [VtxTransformerModel(config), VtxViTModel(tiny_vit_config()), VtxSwinModel(tiny_swin_config())]
    for model in models:
        for name, module in model.named_modules():
            assert not isinstance(getattr(module, "dropout", None), float), f"{type(model).__name__}.{name}"
    transformer = models[0]
    assert transformer.encoder.dropout.p == transformer.decoder.layers[0].dropout.p == 0.3
    assert transformer.decoder.layers[0].mlp.dropout.p == 0.2
