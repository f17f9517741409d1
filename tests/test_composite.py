"""Our models inside transformers' composite models: ViT and Swin as the image encoder of a
`VisionEncoderDecoderModel` with a transformers text decoder (GPT-2), through forward, backward, generation,
save/reload and a `Trainer` run (which passes `num_items_in_batch` down to the encoder)."""

import pytest
import torch
from swin_tester import tiny_swin_config
from torch.utils.data import Dataset
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainingArguments,
    VisionEncoderDecoderModel,
)
from vit_tester import pixel_batch, tiny_vit_config

from hf_visiontx import VtxSwinModel, VtxViTModel

VOCAB_SIZE, PAD, BOS, EOS = 50, 0, 1, 2


def image_captioner(family: str) -> VisionEncoderDecoderModel:
    """Our tiny `family` encoder ("vit" or "swin") with a tiny GPT-2 decoder attending to it."""
    torch.manual_seed(0)
    if family == "vit":
        encoder = VtxViTModel(tiny_vit_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    else:
        encoder = VtxSwinModel(tiny_swin_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                                drop_path_rate=0.0))
    decoder = GPT2LMHeadModel(GPT2Config(n_embd=24, n_layer=2, n_head=4, vocab_size=VOCAB_SIZE, n_positions=32,
                                         add_cross_attention=True, is_decoder=True, bos_token_id=BOS,
                                         eos_token_id=EOS, pad_token_id=PAD))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id = BOS, PAD
    model.generation_config.decoder_start_token_id = BOS
    model.generation_config.pad_token_id = PAD
    model.generation_config.eos_token_id = EOS
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


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_trainer_fine_tunes_a_vision_encoder_decoder_model_with_our_encoder(tmp_path, family):
    model = image_captioner(family)
    encoder_before = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, learning_rate=1e-2, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    result = Trainer(model=model, args=args, train_dataset=_Captions()).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [name for name, p in model.encoder.named_parameters() if not torch.equal(p, encoder_before[name])]
    assert changed, "the encoder did not train"
