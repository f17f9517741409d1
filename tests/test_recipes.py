"""Training recipes: the papers' optimisers and schedules, as the Trainer builds them."""

import math

import pytest
from transformers import Trainer

from hf_visiontx import VtxViTForImageClassification
from hf_visiontx.training import TrainOptions
from hf_visiontx.training.loop import training_arguments
from hf_visiontx.training.recipes import model_config, paper_learning_rate, recipe
from support.vit_tester import tiny_vit_config


def built_optimizer_and_schedule(family: str, tmp_path, total_steps: int = 1000):
    settings = recipe(family)
    args = training_arguments(TrainOptions(family, output_dir=tmp_path), settings, "accuracy")
    trainer = Trainer(model=VtxViTForImageClassification(tiny_vit_config()), args=args, eval_dataset=[])
    trainer.create_optimizer_and_scheduler(num_training_steps=total_steps)
    return settings, trainer.optimizer, trainer.lr_scheduler


def learning_rate_at(scheduler, step: int) -> float:
    return scheduler.base_lrs[0] * scheduler.lr_lambdas[0](step)


def test_transformer_recipe_is_the_papers(tmp_path):
    settings, optimizer, scheduler = built_optimizer_and_schedule("transformer", tmp_path)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9 and group["weight_decay"] == 0.0
    peak, warmup = settings.learning_rate, settings.warmup_steps
    assert learning_rate_at(scheduler, warmup // 2) == pytest.approx(peak / 2)  # linear warmup
    assert learning_rate_at(scheduler, warmup) == pytest.approx(peak)
    assert learning_rate_at(scheduler, 4 * warmup) == pytest.approx(peak / 2)  # inverse square root decay
    assert model_config("transformer").label_smoothing == 0.1


def test_transformer_preset_uses_the_papers_peak_learning_rate():
    assert paper_learning_rate(512, 4000) == pytest.approx(512**-0.5 * 4000**-0.5)
    base = recipe("transformer", preset="base")
    assert base.learning_rate == pytest.approx(6.988e-4, rel=1e-3) and base.warmup_steps == 4000
    assert model_config("transformer", "big").d_model == 1024


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_vision_recipes_are_adamw_with_warmup_and_cosine_decay(family, tmp_path):
    settings, optimizer, scheduler = built_optimizer_and_schedule(family, tmp_path)
    decayed = [group for group in optimizer.param_groups if group["weight_decay"] > 0]
    assert decayed and decayed[0]["weight_decay"] == 0.05 and decayed[0]["betas"] == (0.9, 0.999)
    warmup = math.ceil(settings.warmup_steps * 1000)
    assert learning_rate_at(scheduler, warmup) == pytest.approx(settings.learning_rate)
    assert learning_rate_at(scheduler, (1000 + warmup) // 2) == pytest.approx(settings.learning_rate / 2)
    assert learning_rate_at(scheduler, 1000) == pytest.approx(0.0, abs=1e-12)


def test_vision_presets_scale_the_learning_rate_with_the_batch():
    assert recipe("vit", preset="b/16").learning_rate == pytest.approx(5e-4 * 64 / 512)  # DeiT
    assert recipe("swin", preset="tiny").learning_rate == pytest.approx(1e-3 * 64 / 1024)  # Swin
    assert model_config("swin").drop_path_rate > 0 and model_config("swin", "tiny").drop_path_rate == 0.2
    assert model_config("vit", "b/16", image_size=64).image_size == 64


def test_overrides_replace_recipe_fields_and_none_keeps_them():
    settings = recipe("vit", epochs=3, batch_size=None, learning_rate=0.01)
    assert (settings.epochs, settings.batch_size, settings.learning_rate) == (3, recipe("vit").batch_size, 0.01)
    assert recipe("swin", fine_tuning=True).learning_rate < recipe("swin").learning_rate
    with pytest.raises(ValueError, match=r"`family` must be one of \('transformer', 'vit', 'swin', 'lm'\), got 'gpt'"):
        recipe("gpt")
