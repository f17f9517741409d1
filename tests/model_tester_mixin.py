"""Checks every model family must pass; a family's test class mixes this in and says how to build its models.

A subclass defines:
    model_classes: the model classes to check (base model and heads).
    make_config(**overrides): a tiny config.
    make_inputs(config, model_class): a dict of forward inputs, including the labels the class accepts, with
        padding where the family has it.
"""

import copy

import torch
from torch.utils.data import Dataset
from transformers import AutoConfig, Trainer, TrainingArguments


def output_tensor(outputs) -> torch.Tensor:
    """The tensor a check compares: logits for heads, the last hidden state for base models, the feature maps
    (flattened and joined) for backbones."""
    for name in ("logits", "reconstruction", "last_hidden_state"):
        value = getattr(outputs, name, None)
        if value is not None:
            return value
    feature_maps = getattr(outputs, "feature_maps", None)
    if feature_maps is not None:
        return torch.cat([feature_map.flatten() for feature_map in feature_maps])
    return outputs[0]


def training_loss(outputs) -> torch.Tensor:
    """The head's loss, or for base models and backbones a stand-in that depends on every tensor they output
    (hidden states, pooled output, feature maps, ...)."""
    loss = getattr(outputs, "loss", None)
    if loss is not None:
        return loss
    tensors = []
    for value in outputs.values():
        values = value if isinstance(value, tuple) else (value,)
        tensors += [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return sum(tensor.float().pow(2).mean() for tensor in tensors)


class _RepeatedExample(Dataset):
    """A dataset that yields the rows of one input batch, for a Trainer step."""

    def __init__(self, inputs: dict[str, torch.Tensor]):
        self.inputs = inputs
        self.length = next(iter(inputs.values())).shape[0]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: value[index] for name, value in self.inputs.items()}


class ModelTesterMixin:
    """Round trip, Auto classes, gradients, attention backends, checkpointing, bf16 and a Trainer step."""

    model_classes: tuple = ()
    auto_classes: dict = {}

    def make_config(self, **overrides):
        raise NotImplementedError

    def make_inputs(self, config, model_class) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def build(self, model_class, seed: int = 0, **config_overrides):
        torch.manual_seed(seed)
        return model_class(self.make_config(**config_overrides))

    # --- the checks -------------------------------------------------------------------------------------------

    def test_save_load_round_trip_is_exact(self, tmp_path):
        for model_class in self.model_classes:
            model = self.build(model_class).eval()
            directory = tmp_path / model_class.__name__
            model.save_pretrained(directory)
            assert not list(directory.glob("*.bin")), "weights must be saved as safetensors only"
            reloaded = model_class.from_pretrained(directory).eval()
            original = dict(model.named_parameters()) | dict(model.named_buffers())
            restored = dict(reloaded.named_parameters()) | dict(reloaded.named_buffers())
            assert original.keys() == restored.keys()
            for name, tensor in original.items():
                assert torch.equal(tensor, restored[name]), f"{model_class.__name__}.{name} changed on reload"
            inputs = self.make_inputs(model.config, model_class)
            with torch.no_grad():
                assert torch.equal(output_tensor(model(**inputs)), output_tensor(reloaded(**inputs)))

    def test_auto_classes_resolve_from_saved_directory(self, tmp_path):
        for model_class, auto_class in self.auto_classes.items():
            model = self.build(model_class)
            directory = tmp_path / model_class.__name__
            model.save_pretrained(directory)
            assert type(AutoConfig.from_pretrained(directory)) is type(model.config)
            loaded = auto_class.from_pretrained(directory)
            assert type(loaded) is model_class, f"{auto_class.__name__} gave {type(loaded).__name__}"

    def test_every_trainable_parameter_gets_a_gradient(self):
        for model_class in self.model_classes:
            model = self.build(model_class).train()
            inputs = self.make_inputs(model.config, model_class)
            training_loss(model(**inputs)).backward()
            for name, parameter in model.named_parameters():
                if parameter.requires_grad:
                    assert parameter.grad is not None, f"{model_class.__name__}.{name} got no gradient"
                    assert parameter.grad.abs().sum() > 0, f"{model_class.__name__}.{name} got a zero gradient"

    def test_eager_and_sdpa_give_the_same_outputs(self):
        for model_class in self.model_classes:
            model = self.build(model_class).eval()
            inputs = self.make_inputs(model.config, model_class)
            model.set_attn_implementation("eager")
            with torch.no_grad():
                eager = output_tensor(model(**inputs))
            model.set_attn_implementation("sdpa")
            with torch.no_grad():
                sdpa = output_tensor(model(**inputs))
            torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)

    def test_gradient_checkpointing_gives_the_same_loss_and_gradients(self):
        for model_class in self.model_classes:
            plain = self.build(model_class).train()  # dropout on: the recomputation must replay the same masks
            checkpointed = copy.deepcopy(plain)
            checkpointed.activation_checkpointing_enable()
            assert checkpointed.is_activation_checkpointing
            inputs = self.make_inputs(plain.config, model_class)
            torch.manual_seed(0)
            plain_loss = training_loss(plain(**inputs))
            torch.manual_seed(0)
            checkpointed_loss = training_loss(checkpointed(**inputs))
            plain_loss.backward()
            checkpointed_loss.backward()
            torch.testing.assert_close(checkpointed_loss, plain_loss)
            for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
                torch.testing.assert_close(b.grad, a.grad, msg=lambda m: f"{model_class.__name__}.{name}: {m}")

    def test_bf16_forward_has_no_nan(self):
        for model_class in self.model_classes:
            model = self.build(model_class).eval().to(torch.bfloat16)
            inputs = {
                name: value.to(torch.bfloat16) if value.is_floating_point() else value
                for name, value in self.make_inputs(model.config, model_class).items()
            }
            with torch.no_grad():
                outputs = model(**inputs)
            result = output_tensor(outputs)
            assert result.dtype == torch.bfloat16
            assert torch.isfinite(result).all(), f"{model_class.__name__} bf16 forward produced NaN/inf"
            loss = getattr(outputs, "loss", None)
            assert loss is None or torch.isfinite(loss)

    def test_one_trainer_step_updates_the_weights(self, tmp_path):
        model_class = self.model_classes[-1]  # the task head: it has labels and a loss
        model = self.build(model_class)
        inputs = self.make_inputs(model.config, model_class)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        args = TrainingArguments(
            output_dir=str(tmp_path),
            max_steps=1,
            per_device_train_batch_size=next(iter(inputs.values())).shape[0],
            learning_rate=1e-2,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        result = Trainer(model=model, args=args, train_dataset=_RepeatedExample(inputs)).train()
        assert result.global_step == 1
        assert torch.isfinite(torch.tensor(result.training_loss))
        changed = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])]
        assert len(changed) == len(before), f"unchanged after a step: {sorted(set(before) - set(changed))}"
