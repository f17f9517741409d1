"""Our models inside transformers' composite models.

- ViT and Swin as the image encoder of a `VisionEncoderDecoderModel` with a transformers text decoder (GPT-2),
  through forward, backward, generation, save/reload and a `Trainer` run (which passes `num_items_in_batch` down
  to the encoder); Swin with our Transformer decoder (`VtxTransformerForCausalLM`) too, saved and reloaded (the
  captioner's own tests are in test_captioner.py).
- `VtxSwinBackbone` in UperNet, DETR, Conditional DETR and Mask2Former. Saved by their own `save_pretrained`, every
  composite reloads in a fresh process that imports hf_visiontx first; saved by `save_composite`, it also loads with
  `trust_remote_code=True` in a process where hf_visiontx cannot be imported.
"""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from transformers import (
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    DetrConfig,
    DetrForObjectDetection,
    GPT2Config,
    GPT2LMHeadModel,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Trainer,
    TrainingArguments,
    UperNetConfig,
    UperNetForSemanticSegmentation,
    VisionEncoderDecoderModel,
)

from hf_visiontx import VtxSwinModel, VtxTransformerConfig, VtxTransformerForCausalLM, VtxViTModel
from hf_visiontx.hub import save_composite
from support.launch import environment
from support.remote_code import REFUSE_HF_VISIONTX
from support.swin_tester import tiny_swin_config
from support.vit_tester import pixel_batch, tiny_vit_config

VOCAB_SIZE, PAD, BOS, EOS = 50, 0, 1, 2


def image_captioner(family: str) -> VisionEncoderDecoderModel:
    """Our tiny `family` encoder ("vit" or "swin") with a tiny GPT-2 decoder attending to it."""
    torch.manual_seed(0)
    if family == "vit":
        encoder = VtxViTModel(tiny_vit_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    else:
        encoder = VtxSwinModel(
            tiny_swin_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0)
        )
    decoder = GPT2LMHeadModel(
        GPT2Config(
            n_embd=24,
            n_layer=2,
            n_head=4,
            vocab_size=VOCAB_SIZE,
            n_positions=32,
            add_cross_attention=True,
            is_decoder=True,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
    )
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id = BOS, PAD
    model.generation_config.decoder_start_token_id = BOS
    model.generation_config.pad_token_id = PAD
    model.generation_config.eos_token_id = EOS
    return model


def our_image_captioner() -> VisionEncoderDecoderModel:
    """Our tiny Swin encoder (32 channels at the end) with our tiny Transformer decoder attending to it."""
    torch.manual_seed(0)
    encoder = VtxSwinModel(
        tiny_swin_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0)
    )
    decoder_config = VtxTransformerConfig(
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=32,
        dropout=0.0,
        is_decoder=True,
        add_cross_attention=True,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
    )
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=VtxTransformerForCausalLM(decoder_config))
    model.config.decoder_start_token_id, model.config.pad_token_id = BOS, PAD
    return model


def caption_labels(batch: int = 3, length: int = 5) -> torch.Tensor:
    labels = torch.randint(3, VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(1))
    labels[1, 3:] = -100
    return labels


class _Captions(Dataset):
    def __init__(self):
        self.pixels, self.labels = pixel_batch(batch=4), caption_labels(batch=4)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_our_encoders_serve_a_vision_encoder_decoder_model(tmp_path, family):
    model = image_captioner(family)
    pixels, labels = pixel_batch(), caption_labels()
    outputs = model(pixel_values=pixels, labels=labels, num_items_in_batch=torch.tensor(13))
    outputs.loss.backward()
    encoder_grads = [p.grad for p in model.encoder.parameters()]
    assert torch.isfinite(outputs.loss) and all(g is not None for g in encoder_grads)
    model.eval()
    with torch.no_grad():
        tokens = model.generate(pixels, max_new_tokens=4, do_sample=False)
        beams = model.generate(pixels, max_new_tokens=4, num_beams=2)
        uncached = model.generate(pixels, max_new_tokens=4, do_sample=False, use_cache=False)
    assert tokens.shape[0] == beams.shape[0] == 3 and torch.equal(tokens, uncached)
    model.save_pretrained(tmp_path)
    reloaded = VisionEncoderDecoderModel.from_pretrained(tmp_path).eval()
    assert type(reloaded.encoder) is type(model.encoder)
    with torch.no_grad():
        assert torch.equal(reloaded.generate(pixels, max_new_tokens=4, do_sample=False), tokens)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vit", "swin"])
def test_trainer_fine_tunes_a_vision_encoder_decoder_model_with_our_encoder(tmp_path, family):
    model = image_captioner(family)
    encoder_before = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    result = Trainer(model=model, args=args, train_dataset=_Captions()).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [name for name, p in model.encoder.named_parameters() if not torch.equal(p, encoder_before[name])]
    assert changed, "the encoder did not train"


# --- composites saved and reloaded in a fresh process --------------------------------------------------------


def swin_backbone_config(stages: int):
    """A tiny four-stage Swin whose backbone returns the last `stages` stages."""
    names = ["stage1", "stage2", "stage3", "stage4"]
    return tiny_swin_config(
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        embed_dim=8,
        window_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0,
        out_features=names[-stages:],
    )


def detr_fields() -> dict:
    return dict(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=5,
        num_labels=3,
    )


# name: (build, Auto class, output compared, extra inputs)
COMPOSITES = {
    "upernet": (
        lambda: UperNetForSemanticSegmentation(
            UperNetConfig(
                backbone_config=swin_backbone_config(4), hidden_size=16, auxiliary_in_channels=32, num_labels=3
            )
        ),
        "AutoModelForSemanticSegmentation",
        "logits",
        {},
    ),
    "detr": (
        lambda: DetrForObjectDetection(DetrConfig(backbone_config=swin_backbone_config(1), **detr_fields())),
        "AutoModelForObjectDetection",
        "logits",
        {},
    ),
    "conditional-detr": (
        lambda: ConditionalDetrForObjectDetection(
            ConditionalDetrConfig(backbone_config=swin_backbone_config(1), **detr_fields())
        ),
        "AutoModelForObjectDetection",
        "logits",
        {},
    ),
    "mask2former": (
        lambda: Mask2FormerForUniversalSegmentation(
            Mask2FormerConfig(
                backbone_config=swin_backbone_config(4),
                hidden_dim=32,
                feature_size=32,
                mask_feature_size=32,
                encoder_layers=1,
                decoder_layers=2,
                num_attention_heads=2,
                dim_feedforward=16,
                encoder_feedforward_dim=16,
                num_queries=5,
                num_labels=3,
            )
        ),
        "AutoModelForUniversalSegmentation",
        "class_queries_logits",
        {},
    ),
    "vision-encoder-decoder": (
        lambda: image_captioner("vit"),
        "AutoModelForImageTextToText",
        "logits",
        {"decoder_input_ids": torch.tensor([[BOS, 5, 6]])},
    ),
    "vision-encoder-decoder-ours": (
        our_image_captioner,
        "AutoModelForImageTextToText",
        "logits",
        {"decoder_input_ids": torch.tensor([[BOS, 5, 6]])},
    ),
}

RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch, transformers
    from safetensors.torch import load_file, save_file

    cases, import_first = json.load(open(sys.argv[1])), sys.argv[2] == "import"
    if import_first:
        import hf_visiontx  # registers our model types: the documented route for plain saved composites
    else:  # before any remote code registers our model types in this process
        for case in cases:
            try:
                getattr(transformers, case["class"]).from_pretrained(case["plain"])
            except (KeyError, ValueError):  # the nested model type is unknown: transformers has no route here
                pass
            else:
                raise AssertionError(case["class"] + " loaded a nested hf_visiontx model without its code")
    for case in cases:
        if import_first:
            model = getattr(transformers, case["class"]).from_pretrained(case["plain"])
        else:
            model = getattr(transformers, case["auto"]).from_pretrained(case["portable"], trust_remote_code=True)
            assert not any(name.split(".")[0] == "hf_visiontx" for name in sys.modules)
        inputs = load_file(case["inputs"])
        with torch.no_grad():
            output = model.eval()(**inputs)[case["output"]]
        save_file({"output": output.contiguous()}, case["result"])
    """
)


@pytest.fixture(scope="module")
def saved_composites(tmp_path_factory):
    """Every composite saved twice (`save_pretrained`, `save_composite`), with inputs and expected outputs."""
    root = tmp_path_factory.mktemp("composites")
    cases = {}
    for name, (build, auto_class, output_name, extra) in COMPOSITES.items():
        torch.manual_seed(0)
        model = build().eval()
        inputs = {"pixel_values": pixel_batch(batch=1), **extra}
        with torch.no_grad():
            expected = model(**inputs)[output_name]
        model.save_pretrained(root / name / "plain")
        save_composite(model, root / name / "portable")
        save_file(inputs, root / name / "inputs.safetensors")
        cases[name] = dict(
            plain=str(root / name / "plain"),
            portable=str(root / name / "portable"),
            inputs=str(root / name / "inputs.safetensors"),
            output=output_name,
            result=str(root / name / "result.safetensors"),
            auto=auto_class,
            **{"class": type(model).__name__, "expected": expected},
        )
    return root, cases


def reload_in_a_fresh_process(root, cases: dict, mode: str) -> dict[str, torch.Tensor]:
    manifest = root / f"{mode}.json"
    manifest.write_text(json.dumps([{k: v for k, v in case.items() if k != "expected"} for case in cases.values()]))
    script = (REFUSE_HF_VISIONTX if mode == "refuse" else "") + RELOAD_SCRIPT
    result = subprocess.run(
        [sys.executable, "-c", script, str(manifest), mode],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return {name: load_file(case["result"])["output"] for name, case in cases.items()}


@pytest.mark.slow
def test_plain_saved_composites_reload_where_hf_visiontx_is_imported_first(saved_composites):
    root, cases = saved_composites
    for name, output in reload_in_a_fresh_process(root, cases, "import").items():
        torch.testing.assert_close(output, cases[name]["expected"], msg=name)


@pytest.mark.slow
def test_composites_saved_with_their_code_load_where_hf_visiontx_cannot_be_imported(saved_composites):
    root, cases = saved_composites
    for name, output in reload_in_a_fresh_process(root, cases, "refuse").items():
        torch.testing.assert_close(output, cases[name]["expected"], msg=name)


def test_save_composite_refuses_what_it_cannot_help(tmp_path):
    with pytest.raises(ValueError, match="holds no hf_visiontx model"):
        save_composite(GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=10)), tmp_path)
    with pytest.raises(ValueError, match="already writes its code"):
        save_composite(VtxViTModel(tiny_vit_config()), tmp_path)
