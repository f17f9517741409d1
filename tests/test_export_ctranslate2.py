"""`hf-visiontx export MODEL OUT --to ctranslate2`: the Transformer as a CTranslate2 model that translates like
`generate()`."""

import importlib.util

import ctranslate2
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_visiontx import VtxTransformerForCausalLM, VtxTransformerForConditionalGeneration, VtxViTModel
from hf_visiontx.apps.cli import main
from hf_visiontx.export import ctranslate2 as ctranslate2_export
from hf_visiontx.export import export_ctranslate2
from support.transformer_tester import VOCAB_SIZE, tiny_transformer_config
from support.vit_tester import tiny_vit_config

SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0-3, as our tokenizers number them
TEXTS = ["w5 w17 w33 w60", "w98 w4", "w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20"]
# The paper's model (post-LN, interleaved sinusoids, shared and tied embeddings, ReLU), and one with every other
# option CTranslate2's spec has to take: pre-LN with final LayerNorms, learned positions, GELU, separate source and
# target embeddings, an untied output projection with a bias, other head and layer counts per stack.
VARIANTS = {
    "paper": {},
    "options": dict(
        layer_norm_placement="pre",
        position_embedding_type="learned",
        activation_function="gelu",
        share_encoder_decoder_embeddings=False,
        tie_word_embeddings=False,
        lm_head_bias=True,
        encoder_attention_heads=2,
        decoder_layers=3,
    ),
}


def word_tokenizer() -> PreTrainedTokenizerFast:
    """One token per word of the tiny vocabulary ("w4" ... "w98" after the special tokens), `</s>` appended as our
    tokenizers append it."""
    words = [*SPECIAL, *(f"w{index}" for index in range(len(SPECIAL), VOCAB_SIZE))]
    tokenizer = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def saved_translator(directory, **overrides):
    """A tiny translator saved with its tokenizer. An untied output projection gets large random weights, so that
    greedy search does not repeat one token (random models do)."""
    torch.manual_seed(0)
    model = VtxTransformerForConditionalGeneration(tiny_transformer_config(**overrides)).eval()
    if not model.config.tie_word_embeddings:
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, 1.0)
            if model.lm_head.bias is not None:
                model.lm_head.bias.normal_(0.0, 1.0)
    model.save_pretrained(directory)
    tokenizer = word_tokenizer()
    tokenizer.save_pretrained(directory)
    return model, tokenizer


def source_tokens(tokenizer, texts):
    """The token strings of each text (with its `</s>`), and the padded batch generate() takes."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    tokens = [
        tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())
        for ids, mask in zip(batch.input_ids, batch.attention_mask, strict=True)
    ]
    return tokens, batch


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ctranslate2_translates_and_scores_like_our_model(tmp_path, capsys, variant):
    model, tokenizer = saved_translator(tmp_path / "model", **VARIANTS[variant])
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "ct2"), "--to", "ctranslate2"]) == 0
    assert "fp32 greedy tokens identical to generate() on 4 probe sentences" in capsys.readouterr().out
    translator = ctranslate2.Translator(str(tmp_path / "ct2"))
    assert translator.compute_type == "float32"

    tokens, batch = source_tokens(tokenizer, TEXTS)
    results = translator.translate_batch(tokens, beam_size=1, max_decoding_length=20, min_decoding_length=0)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=20, num_beams=1, do_sample=False)
    expected = [tokenizer.convert_ids_to_tokens(row[1:].tolist()) for row in generated]
    expected = [row[: row.index("</s>")] if "</s>" in row else row for row in expected]
    assert [result.hypotheses[0] for result in results] == expected
    if not model.config.tie_word_embeddings:
        assert len({token for row in expected for token in row}) > 5  # a translation, not one token repeated

    # teacher forcing: the log-probability of every target token (and of the end token after them) is ours
    generator = torch.Generator().manual_seed(1)
    targets = torch.randint(len(SPECIAL), VOCAB_SIZE, (len(TEXTS), 7), generator=generator)
    scores = translator.score_batch(tokens, [tokenizer.convert_ids_to_tokens(row.tolist()) for row in targets])
    labels = torch.cat([targets, torch.full((len(TEXTS), 1), model.config.eos_token_id)], dim=1)  # [B, 8]
    with torch.no_grad():
        logits = model(**batch, labels=labels).logits  # [B, 8, V]
    ours = logits.log_softmax(-1).gather(-1, labels[..., None])[..., 0]  # [B, 8]
    theirs = torch.tensor([score.log_probs for score in scores])
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_int8_export_holds_int8_weights_and_reports_its_agreement(tmp_path):
    saved_translator(tmp_path / "model", **VARIANTS["options"])
    report = export_ctranslate2(tmp_path / "model", tmp_path / "ct2", quantization="int8")
    assert report.quantization == "int8" and report.sentences == 4 and report.tokens > 0
    assert 0.0 < report.quantized_agreement <= 1.0
    translator = ctranslate2.Translator(str(tmp_path / "ct2"))
    assert translator.compute_type == "int8_float32"
    tokens, _ = source_tokens(word_tokenizer(), TEXTS)
    results = translator.translate_batch(tokens, beam_size=1, max_decoding_length=8)
    assert all(result.hypotheses[0] for result in results)


def test_an_export_that_translates_otherwise_is_refused_and_not_written(tmp_path, capsys, monkeypatch):
    saved_translator(tmp_path / "model")
    set_stack = ctranslate2_export._set_stack

    def unscaled_embeddings(spec, stack, embeddings_spec):  # a mapping mistake: the sqrt(d_model) scale left out
        set_stack(spec, stack, embeddings_spec)
        spec.scale_embeddings = 1.0

    monkeypatch.setattr(ctranslate2_export, "_set_stack", unscaled_embeddings)
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "ct2"), "--to", "ctranslate2"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-visiontx export: error: CTranslate2's greedy translation of probe sentence")
    assert "differs from generate()'s" in error and "nothing was written" in error
    assert not (tmp_path / "ct2").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["model"]  # no staging folder left behind


def test_export_refuses_what_ctranslate2_cannot_represent(tmp_path, capsys, monkeypatch):
    def refused(model, *options) -> str:
        capsys.readouterr()
        assert main(["export", str(model), str(tmp_path / "out"), "--to", "ctranslate2", *options]) == 1
        error = capsys.readouterr().err
        assert error.count("hf-visiontx export: error: ") == 1 and "Traceback" not in error
        assert not (tmp_path / "out").exists()
        return error.strip().splitlines()[-1]

    VtxViTModel(tiny_vit_config()).save_pretrained(tmp_path / "vit")
    assert "is a 'vtx_vit' model; `export --to ctranslate2` takes vtx_transformer translation models" in refused(
        tmp_path / "vit"
    )
    VtxTransformerForCausalLM(tiny_transformer_config()).save_pretrained(tmp_path / "lm")
    assert "is VtxTransformerForCausalLM; `export --to ctranslate2` takes translation models" in refused(
        tmp_path / "lm"
    )
    saved_translator(tmp_path / "mish", activation_function="mish")
    assert "`activation_function` 'mish' has no CTranslate2 counterpart; CTranslate2 runs relu, gelu" in refused(
        tmp_path / "mish"
    )
    VtxTransformerForConditionalGeneration(tiny_transformer_config()).save_pretrained(tmp_path / "no-tokenizer")
    assert "has no tokenizer to take the vocabulary from" in refused(tmp_path / "no-tokenizer")
    assert "`--quantization` applies to `--to ctranslate2` only" in refused(
        tmp_path / "vit", "--to", "onnx", "--quantization", "int8"
    )
    with pytest.raises(ValueError, match=r"`quantization` must be one of none, int8, .* got 'int4'"):
        export_ctranslate2(tmp_path / "mish", tmp_path / "out", quantization="int4")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("mine")
    assert main(["export", str(tmp_path / "mish"), str(tmp_path / "taken"), "--to", "ctranslate2"]) == 1
    assert "`out_dir`" in capsys.readouterr().err and (tmp_path / "taken" / "mine.txt").read_text() == "mine"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "ctranslate2" else find_spec(name))
    assert "needs ctranslate2: `pip install hf_visiontx[ctranslate2]`" in refused(tmp_path / "mish")
