"""Checks every model family must pass; a family's test class mixes this in and says how to build its models.

They cover what transformers' own common model tests expect of its ViT, Swin and Marian (written here from the
behaviour, not copied): save/load, missing, unexpected and tied weights, loading in half precision by every route,
`inputs_embeds`, attention and hidden-state outputs under every attention implementation, gradients and
checkpointing, input embeddings, transformers' shared keyword arguments, module-swapping tools (quantizers, PEFT)
and a Trainer step.

A subclass defines:
    model_classes: the model classes to check (base model and heads).
    make_config(**overrides): a tiny config.
    make_inputs(config, model_class): a dict of forward inputs, including the labels the class accepts, with
        padding where the family has it.
    attention_implementations: the implementations the family supports besides "eager" and "sdpa".
"""

import collections
import copy
import importlib.util
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from transformers import AutoConfig, PreTrainedModel, Trainer, TrainingArguments
from transformers.modeling_layers import GradientCheckpointingLayer

# Largest |half - float32| difference of a forward pass, as a share of the largest |float32| output (at least 1).
# float16 keeps 11 significant bits and bfloat16 8; the tiny random models pass through 2-4 layers.
HALF_PRECISION_TOLERANCE = {torch.float16: 0.01, torch.bfloat16: 0.05}


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


def attention_maps(outputs) -> dict[str, tuple[torch.Tensor, ...]]:
    """Every attention field of an output (`attentions`, `encoder_attentions`, `decoder_attentions`,
    `cross_attentions`) that holds maps."""
    return {name: value for name, value in outputs.items() if name.endswith("attentions") and value}


def without_dropout(config):
    """The config with every dropout and stochastic depth rate at 0 (any family)."""
    for name in list(config.to_dict()):
        if "dropout" in name or name == "drop_path_rate":
            setattr(config, name, 0.0)
    return config


def in_dtype(inputs: dict, dtype: torch.dtype) -> dict:
    """The inputs with floating tensors cast to `dtype`."""
    return {name: value.to(dtype) if value.is_floating_point() else value for name, value in inputs.items()}


def same_storage_groups(model: torch.nn.Module) -> set[frozenset[str]]:
    """The groups of state-dict entries that are one tensor (tied weights)."""
    groups = collections.defaultdict(set)
    for name, tensor in model.state_dict().items():
        groups[tensor.untyped_storage().data_ptr()].add(name)
    return {frozenset(group) for group in groups.values() if len(group) > 1}


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
    attention_implementations: tuple[str, ...] = ()

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
            for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters(), strict=True):
                where = f"{model_class.__name__}.{name}"
                torch.testing.assert_close(b.grad, a.grad, msg=lambda m, where=where: f"{where}: {m}")

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

    # --- loading: dtypes, missing, unexpected and tied weights -----------------------------------------------------

    def half_precision_routes(self, model_class, directory, dtype: torch.dtype):
        """(name, load) for each way a user gets a model in `dtype` from a float32 checkpoint in `directory`."""
        return [
            ("from_pretrained(dtype=...)", lambda: model_class.from_pretrained(directory, dtype=dtype)),
            ("from_pretrained(torch_dtype=...)", lambda: model_class.from_pretrained(directory, torch_dtype=dtype)),
            (
                "from_pretrained(dtype='auto') of a half-precision checkpoint",
                lambda: model_class.from_pretrained(directory / str(dtype), dtype="auto"),
            ),
            (".to(dtype)", lambda: model_class.from_pretrained(directory).to(dtype)),
        ]

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
    def test_half_precision_loads_by_every_route_and_matches_float32(self, tmp_path, dtype):
        tolerance = HALF_PRECISION_TOLERANCE[dtype]
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            model.save_pretrained(tmp_path)
            model.to(dtype).save_pretrained(tmp_path / str(dtype))
            model.to(torch.float32)
            inputs = self.make_inputs(model.config, model_class)
            with torch.no_grad():
                reference = model(**inputs)
            scale = max(1.0, output_tensor(reference).abs().max().item())
            for route, load in self.half_precision_routes(model_class, tmp_path, dtype):
                loaded = load().eval()
                where = f"{model_class.__name__} via {route}"
                floating = [t for t in [*loaded.parameters(), *loaded.buffers()] if t.is_floating_point()]
                assert {t.dtype for t in floating} == {dtype}, f"{where}: tensors not all in {dtype}"
                with torch.no_grad():
                    outputs = loaded(**in_dtype(inputs, dtype))
                result = output_tensor(outputs)
                assert result.dtype == dtype, where
                difference = (result.float() - output_tensor(reference)).abs().max().item()
                assert difference <= tolerance * scale, f"{where}: max |{dtype} - float32| = {difference:.3g}"
                if getattr(outputs, "loss", None) is not None:
                    assert torch.isfinite(outputs.loss), where
                    torch.testing.assert_close(outputs.loss.float(), reference.loss, rtol=tolerance, atol=tolerance)

    def test_from_config_builds_in_the_requested_dtype(self):
        for model_class, auto_class in self.auto_classes.items():
            model = auto_class.from_config(self.make_config(), dtype=torch.bfloat16).eval()
            assert type(model) is model_class
            floating = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
            assert {t.dtype for t in floating} == {torch.bfloat16}
            with torch.no_grad():
                result = output_tensor(model(**in_dtype(self.make_inputs(model.config, model_class), torch.bfloat16)))
            assert result.dtype == torch.bfloat16 and torch.isfinite(result).all()

    def test_missing_weights_are_initialised_by_init_weights(self, monkeypatch):
        """A model loaded from no weights at all equals a freshly built one (same seed for `_init_weights`):
        every parameter and buffer is allocated and initialised, none is left on the meta device."""
        initialize = PreTrainedModel._initialize_weights

        def seeded(*args, **kwargs):
            torch.manual_seed(0)
            return initialize(*args, **kwargs)

        monkeypatch.setattr(PreTrainedModel, "_initialize_weights", seeded)
        for model_class in self.model_classes:
            built = model_class(self.make_config())
            loaded = model_class.from_pretrained(None, config=self.make_config(), state_dict={})
            on_meta = [name for name, t in [*loaded.named_parameters(), *loaded.named_buffers()] if t.is_meta]
            assert not on_meta, f"{model_class.__name__}: left on the meta device: {on_meta}"
            expected, actual = built.state_dict(), loaded.state_dict()
            assert expected.keys() == actual.keys()
            different = [name for name in expected if not torch.equal(expected[name], actual[name])]
            assert not different, f"{model_class.__name__}: not initialised as __init__ does: {different}"
            assert same_storage_groups(loaded) == same_storage_groups(built)

    def test_a_checkpoint_without_weights_reports_every_parameter_missing(self, tmp_path):
        for model_class in self.model_classes:
            model = model_class(self.make_config())
            model.save_pretrained(tmp_path)
            save_file({"unrelated": torch.zeros(2)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
            loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
            assert set(info["unexpected_keys"]) == {"unrelated"}
            missing = set(info["missing_keys"])
            assert missing <= set(loaded.state_dict()), f"{model_class.__name__}: unknown keys reported"
            unreported = {name for name, _ in loaded.named_parameters(remove_duplicate=False)} - missing
            assert not unreported, f"{model_class.__name__}: missing weights not reported: {unreported}"
            assert not [name for name, t in loaded.state_dict().items() if t.is_meta]
            with torch.no_grad():
                assert torch.isfinite(
                    output_tensor(loaded.eval()(**self.make_inputs(loaded.config, model_class)))
                ).all()

    def test_a_partial_checkpoint_reports_and_initialises_what_it_lacks(self, tmp_path):
        """The input embedding's first weight (for the Transformer: the source every tied embedding is saved as) is
        removed from the file: it and only it (with what is tied to it) is reported missing, then initialised, and
        the model runs."""
        for model_class in self.model_classes:
            model = model_class(self.make_config())
            model.save_pretrained(tmp_path)
            embedding = next(model.get_input_embeddings().parameters())
            (removed,) = [name for name, t in model.named_parameters() if t is embedding]
            state = load_file(tmp_path / "model.safetensors")
            del state[removed]
            save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
            loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
            tied_to_removed = {name for group in same_storage_groups(model) if removed in group for name in group}
            assert set(info["missing_keys"]) == tied_to_removed | {removed}, model_class.__name__
            reloaded = next(loaded.get_input_embeddings().parameters())
            assert not reloaded.is_meta and torch.isfinite(reloaded).all()
            assert not torch.equal(reloaded, embedding), "the missing weight kept stale values"
            for name, tensor in loaded.state_dict().items():
                if name not in info["missing_keys"]:
                    assert torch.equal(tensor, model.state_dict()[name]), f"{name} was not loaded"
            with torch.no_grad():
                assert torch.isfinite(
                    output_tensor(loaded.eval()(**self.make_inputs(loaded.config, model_class)))
                ).all()

    def test_tied_weights_stay_tied_and_load_without_missing_keys(self, tmp_path):
        for model_class in self.model_classes:
            model = model_class(self.make_config())
            model.save_pretrained(tmp_path)
            loaded, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], f"{model_class.__name__}: {info}"
            assert same_storage_groups(loaded) == same_storage_groups(model)

    # --- inputs and outputs ----------------------------------------------------------------------------------------

    def test_attention_maps_are_returned_under_every_implementation(self):
        """`output_attentions=True` returns the maps whatever the implementation (computed eagerly for that call),
        equal to eager attention's, without switching the model's implementation and without changing its outputs;
        `config.output_attentions` asks for them too."""
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            inputs = self.make_inputs(model.config, model_class)
            model.set_attn_implementation("eager")
            with torch.no_grad():
                eager = model(**inputs, output_attentions=True)
            eager_maps = attention_maps(eager)
            assert eager_maps, f"{model_class.__name__} returned no attention maps"
            for maps in eager_maps.values():
                for probabilities in maps:
                    torch.testing.assert_close(probabilities.sum(-1), torch.ones(probabilities.shape[:-1]))
            for implementation in ("sdpa", *self.attention_implementations):
                model.set_attn_implementation(implementation)
                with torch.no_grad():
                    plain = model(**inputs)
                    with_maps = model(**inputs, output_attentions=True)
                where = f"{model_class.__name__} under {implementation}"
                assert model.config._attn_implementation == implementation, where
                assert not attention_maps(plain), where
                assert attention_maps(with_maps).keys() == eager_maps.keys(), where
                for name, maps in attention_maps(with_maps).items():
                    for ours, reference in zip(maps, eager_maps[name], strict=True):
                        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6, msg=f"{where}: {name}")
                torch.testing.assert_close(output_tensor(with_maps), output_tensor(plain), rtol=1e-5, atol=1e-5)
            config = self.make_config()
            config.output_attentions = True
            model = model_class(without_dropout(config)).eval()
            with torch.no_grad():
                assert attention_maps(model(**self.make_inputs(config, model_class))).keys() == eager_maps.keys()

    def test_hidden_states_are_returned_without_changing_the_outputs(self):
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            inputs = self.make_inputs(model.config, model_class)
            with torch.no_grad():
                plain = model(**inputs)
                outputs = model(**inputs, output_hidden_states=True)
            states = {name: value for name, value in outputs.items() if name.endswith("hidden_states") and value}
            assert states, f"{model_class.__name__} returned no hidden states"
            assert not any(name.endswith("hidden_states") and value for name, value in plain.items())
            for name, value in states.items():
                assert len(value) >= 2 and all(torch.isfinite(state).all() for state in value), name
            torch.testing.assert_close(output_tensor(outputs), output_tensor(plain))

    def test_inputs_embeds_give_the_outputs_of_input_ids(self):
        """The embeddings `get_input_embeddings()` returns, passed as `inputs_embeds` (and `decoder_inputs_embeds`),
        give exactly what the ids give. Text models only."""
        for model_class in self.model_classes:
            if model_class.main_input_name != "input_ids":
                continue
            model = model_class(without_dropout(self.make_config())).eval()
            inputs = self.make_inputs(model.config, model_class)
            if "decoder_input_ids" not in inputs:
                inputs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(inputs.pop("labels"))
            embed = model.get_input_embeddings()
            with torch.no_grad():
                from_ids = model(**inputs)
                embedded = dict(
                    inputs,
                    inputs_embeds=embed(inputs["input_ids"]),
                    decoder_inputs_embeds=model.get_decoder().embed_tokens(inputs["decoder_input_ids"]),
                )
                del embedded["input_ids"], embedded["decoder_input_ids"]
                from_embeds = model(**embedded)
            torch.testing.assert_close(output_tensor(from_embeds), output_tensor(from_ids))

    def test_input_embeddings_can_be_read_and_replaced(self):
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            inputs = self.make_inputs(model.config, model_class)
            embeddings = model.get_input_embeddings()
            assert isinstance(embeddings, torch.nn.Module)
            replacement = copy.deepcopy(embeddings)
            with torch.no_grad():
                before = output_tensor(model(**inputs))
                next(replacement.parameters()).mul_(-1.0)
                model.set_input_embeddings(replacement)
                after = output_tensor(model(**inputs))
            assert model.get_input_embeddings() is replacement
            assert not torch.allclose(before, after), f"{model_class.__name__} does not use the new input embedding"

    def test_transformers_shared_keyword_arguments_are_accepted_and_typos_rejected(self):
        """Wrappers and Trainer pass transformers' shared keyword arguments (`num_items_in_batch`, ...) down; a name
        outside that convention is a clear error, never silently ignored."""
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            inputs = self.make_inputs(model.config, model_class)
            with torch.no_grad():
                expected = output_tensor(model(**inputs))
                assert torch.equal(output_tensor(model(**inputs, num_items_in_batch=torch.tensor(7))), expected)
            with pytest.raises(TypeError, match="output_attention"):
                model(**inputs, output_attention=True)

    # --- tools that touch the modules ------------------------------------------------------------------------------

    def test_dynamic_quantization_converts_every_projection(self):
        """`quantize_dynamic` matches modules by exact type: every projection must be a plain `nn.Linear`."""
        for model_class in self.model_classes:
            model = model_class(without_dropout(self.make_config())).eval()
            linears = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
            assert all(type(model.get_submodule(name)) is torch.nn.Linear for name in linears)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's deprecation notice for torch.ao.quantization
                quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear})
            converted = [
                name
                for name in linears
                if isinstance(quantized.get_submodule(name), torch.ao.nn.quantized.dynamic.Linear)
            ]
            assert converted == linears, f"{model_class.__name__}: not quantized: {set(linears) - set(converted)}"
            inputs = self.make_inputs(model.config, model_class)
            with torch.no_grad():
                reference, result = output_tensor(model(**inputs)), output_tensor(quantized(**inputs))
            assert (result - reference).abs().max() < 0.1 * max(1.0, reference.abs().max().item())

    @pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs peft")
    def test_peft_lora_wraps_every_projection_and_trains_only_the_adapters(self):
        from peft import LoraConfig, get_peft_model

        for model_class in self.model_classes:
            model = model_class(self.make_config())
            names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
            linears = len(names)
            peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=names))
            wrapped = sum(hasattr(module, "lora_A") for module in peft_model.modules())
            assert wrapped == linears, f"{model_class.__name__}: LoRA wrapped {wrapped} of {linears} projections"
            peft_model.train()
            training_loss(peft_model(**self.make_inputs(model.config, model_class))).backward()
            for name, parameter in peft_model.named_parameters():
                assert (parameter.grad is not None) == ("lora_" in name), name

    def test_adapters_train_under_gradient_checkpointing_with_a_frozen_model(self):
        """The PEFT recipe: frozen base weights, gradient checkpointing, `enable_input_require_grads()` hooking the
        input embedding so that gradients flow through the checkpointed layers to a trainable part."""
        for model_class in self.model_classes:
            model = model_class(self.make_config()).train()
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
            model.enable_input_require_grads()
            trainable = [module for module in model.modules() if isinstance(module, torch.nn.Linear)][-1]
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            trainable.weight.requires_grad_(True)
            first_block = next(module for module in model.modules() if isinstance(module, GradientCheckpointingLayer))
            inside = next(first_block.parameters())  # nothing before the first checkpointed block is trainable
            inside.requires_grad_(True)
            training_loss(model(**self.make_inputs(model.config, model_class))).backward()
            assert trainable.weight.grad is not None and inside.grad is not None, model_class.__name__
            model.disable_input_require_grads()
