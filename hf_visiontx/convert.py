"""Load published checkpoints into our classes: transformers models in, hf_visiontx models out.

    from transformers import MarianMTModel
    from hf_visiontx.convert import from_transformers

    ours = from_transformers(MarianMTModel.from_pretrained("Helsinki-NLP/opus-mt-de-en"))

`convert_checkpoint(src_dir, out_dir)` does the same from a saved directory (the `hf-visiontx convert` command).
Every converter maps weights one to one (fused projections are the separate matrices stacked), so outputs agree
with the source model to float rounding.
"""

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    MarianConfig,
    MarianModel,
    MarianMTModel,
    PreTrainedModel,
    SwinConfig,
    SwinForImageClassification,
    SwinForMaskedImageModeling,
    SwinModel,
    ViTConfig,
    ViTForImageClassification,
    ViTForMaskedImageModeling,
    ViTModel,
)

from .checkpoint_files import verify_safetensors_files
from .modeling import (
    VtxSwinConfig,
    VtxSwinForImageClassification,
    VtxSwinForMaskedImageModeling,
    VtxSwinModel,
    VtxTransformerConfig,
    VtxTransformerForConditionalGeneration,
    VtxTransformerModel,
    VtxViTConfig,
    VtxViTForImageClassification,
    VtxViTForMaskedImageModeling,
    VtxViTModel,
)

# Files written by `save_pretrained` of a model; everything else in a checkpoint directory (tokenizer, vocabularies,
# README) is copied unchanged by `convert_checkpoint`.
MODEL_FILE_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "*.bin", "*.index.json", "*.h5",
                       "*.msgpack", "*.ckpt")


def marian_to_vtx_config(config: MarianConfig) -> VtxTransformerConfig:
    """Our configuration for a Marian one: concatenated sinusoids, Marian's activation, logits bias, no smoothing."""
    if config.decoder_vocab_size != config.vocab_size:
        raise ValueError(
            f"This Marian model has separate source ({config.vocab_size}) and target ({config.decoder_vocab_size}) "
            "vocabulary sizes; VtxTransformerConfig has one `vocab_size` for both, so it cannot be converted."
        )
    if config.share_encoder_decoder_embeddings and not config.tie_word_embeddings:
        raise ValueError(
            "This Marian model shares source/target embeddings but not the output projection; "
            "VtxTransformerConfig supports sharing only together with `tie_word_embeddings=True`."
        )
    return VtxTransformerConfig(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads,
        decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_dim=config.encoder_ffn_dim,
        decoder_ffn_dim=config.decoder_ffn_dim,
        activation_function=config.activation_function,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        max_position_embeddings=config.max_position_embeddings,
        position_encoding_layout="concatenated",
        layer_norm_placement="post",
        layer_norm_eps=1e-5,
        scale_embedding=config.scale_embedding,
        share_encoder_decoder_embeddings=config.share_encoder_decoder_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        lm_head_bias=True,
        label_smoothing=0.0,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        use_cache=config.use_cache,
    )


def _stack_projections(source: dict, sources: list[str], target: str) -> dict[str, torch.Tensor]:
    """Separate projections (e.g. q/k/v) -> one fused projection whose output rows are theirs, stacked."""
    fused = {}
    for kind in ("weight", "bias"):
        parts = [source[f"{name}.{kind}"] for name in sources if f"{name}.{kind}" in source]
        if parts:
            fused[f"{target}.{kind}"] = torch.cat(parts, dim=0)  # [parts * d_out, ...]
    return fused


def _marian_attention(source: dict, src: str, dst: str, is_cross_attention: bool) -> dict[str, torch.Tensor]:
    """Separate q/k/v/out projections -> our fused `qkv_proj` (or `q_proj` + `kv_proj`) and `o_proj`."""
    if is_cross_attention:
        weights = _stack_projections(source, [f"{src}.q_proj"], f"{dst}.q_proj")
        weights |= _stack_projections(source, [f"{src}.k_proj", f"{src}.v_proj"], f"{dst}.kv_proj")
    else:
        weights = _stack_projections(source, [f"{src}.{n}_proj" for n in "qkv"], f"{dst}.qkv_proj")
    return weights | _copy(source, f"{src}.out_proj", f"{dst}.o_proj")


def _copy(source: dict, src: str, dst: str) -> dict[str, torch.Tensor]:
    return {f"{dst}.{kind}": source[f"{src}.{kind}"] for kind in ("weight", "bias")}


def _marian_stack_state_dict(source: dict, config: MarianConfig, src: str, dst: str) -> dict[str, torch.Tensor]:
    """Map the layers of MarianModel (keys under `src`) to VtxTransformerModel (keys under `dst`)."""
    state = {}
    for stack, num_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(num_layers):
            s, d = f"{src}{stack}.layers.{i}", f"{dst}{stack}.layers.{i}"
            state |= _marian_attention(source, f"{s}.self_attn", f"{d}.self_attn", is_cross_attention=False)
            state |= _copy(source, f"{s}.self_attn_layer_norm", f"{d}.self_attn_layer_norm")
            if stack == "decoder":
                state |= _marian_attention(source, f"{s}.encoder_attn", f"{d}.encoder_attn", is_cross_attention=True)
                state |= _copy(source, f"{s}.encoder_attn_layer_norm", f"{d}.encoder_attn_layer_norm")
            state |= _copy(source, f"{s}.fc1", f"{d}.mlp.fc1")
            state |= _copy(source, f"{s}.fc2", f"{d}.mlp.fc2")
            state |= _copy(source, f"{s}.final_layer_norm", f"{d}.final_layer_norm")
    state[f"{dst}encoder.embed_tokens.weight"] = source[f"{src}encoder.embed_tokens.weight"]
    state[f"{dst}decoder.embed_tokens.weight"] = source[f"{src}decoder.embed_tokens.weight"]
    return state


def _from_marian(model: MarianModel | MarianMTModel) -> VtxTransformerModel | VtxTransformerForConditionalGeneration:
    config = marian_to_vtx_config(model.config)
    source = model.state_dict()
    if isinstance(model, MarianMTModel):
        ours = VtxTransformerForConditionalGeneration(config)
        state = _marian_stack_state_dict(source, model.config, src="model.", dst="model.")
        state["lm_head.weight"] = source["lm_head.weight"]
        state["lm_head.bias"] = source["final_logits_bias"][0]  # [1, V] -> [V]
        ours.generation_config = copy.deepcopy(model.generation_config)
    else:
        ours = VtxTransformerModel(config)
        state = _marian_stack_state_dict(source, model.config, src="", dst="")
    ours.load_state_dict(state, strict=True)
    return ours.to(model.dtype).train(model.training)


def _square_patch_size(patch_size: int | list | tuple) -> int:
    """The side of square patches, given as an int or a (height, width) pair; other shapes cannot convert."""
    if isinstance(patch_size, int):
        return patch_size
    if len(patch_size) == 2 and patch_size[0] == patch_size[1]:
        return int(patch_size[0])
    raise ValueError(f"Unsupported patch_size {patch_size!r}: only square patches convert.")


def vit_to_vtx_config(config: ViTConfig, has_pooler: bool) -> VtxViTConfig:
    """Our configuration for a transformers ViT one ([CLS] pooling; the pre-logits layer when it has one)."""
    return VtxViTConfig(
        image_size=config.image_size,
        patch_size=_square_patch_size(config.patch_size),
        num_channels=config.num_channels,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        qkv_bias=config.qkv_bias,
        pooling="cls",
        use_pooler=has_pooler,
        pooler_act=config.pooler_act,
        encoder_stride=config.encoder_stride,
        id2label=config.id2label,
        label2id=config.label2id,
        problem_type=config.problem_type,
    )


def _from_vit(model: ViTModel | ViTForImageClassification | ViTForMaskedImageModeling) -> PreTrainedModel:
    if isinstance(model, ViTModel) and model.pooler is not None and model.config.pooler_output_size != (
        model.config.hidden_size
    ):
        raise ValueError("ViT pooler_output_size differs from hidden_size; VtxViTConfig's pre-logits keep the width.")
    base = model if isinstance(model, ViTModel) else model.vit
    config = vit_to_vtx_config(model.config, has_pooler=base.pooler is not None)
    ours = {
        ViTModel: VtxViTModel,
        ViTForImageClassification: VtxViTForImageClassification,
        ViTForMaskedImageModeling: VtxViTForMaskedImageModeling,
    }[type(model)](config)
    prefix = "" if isinstance(model, ViTModel) else "vit."
    source = model.state_dict()
    state = {
        key.replace("pooler.dense.", "pooler.0."): value
        for key, value in source.items()
        if not any(f".attention.{name}_proj." in key for name in "qkv")
    }
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}layers.{i}.attention"
        state |= _stack_projections(source, [f"{layer}.{n}_proj" for n in "qkv"], f"{layer}.qkv_proj")
    ours.load_state_dict(state, strict=True)
    return ours.to(model.dtype).train(model.training)


def swin_to_vtx_config(config: SwinConfig) -> VtxSwinConfig:
    """Our configuration for a transformers Swin one."""
    return VtxSwinConfig(
        image_size=config.image_size,
        patch_size=_square_patch_size(config.patch_size),
        num_channels=config.num_channels,
        embed_dim=config.embed_dim,
        depths=config.depths,
        num_heads=config.num_heads,
        window_size=config.window_size,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        drop_path_rate=config.drop_path_rate,
        hidden_act=config.hidden_act,
        use_absolute_embeddings=config.use_absolute_embeddings,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        encoder_stride=config.encoder_stride,
        id2label=config.id2label,
        label2id=config.label2id,
        problem_type=config.problem_type,
    )


def _from_swin(model: SwinModel | SwinForImageClassification | SwinForMaskedImageModeling) -> PreTrainedModel:
    config = swin_to_vtx_config(model.config)
    ours = {
        SwinModel: VtxSwinModel,
        SwinForImageClassification: VtxSwinForImageClassification,
        SwinForMaskedImageModeling: VtxSwinForMaskedImageModeling,
    }[type(model)](config)
    source = model.state_dict()
    state = {
        key.replace("encoder.layers.", "stages.").replace(
            "attention.relative_position_bias.relative_position_bias_table", "attention.relative_position_bias_table"
        ): value
        for key, value in source.items()
        if not any(f".attention.{name}_proj." in key for name in "qkv")
    }
    prefix = "" if isinstance(model, SwinModel) else "swin."
    for stage, depth in enumerate(config.depths):
        for block in range(depth):
            src = f"{prefix}encoder.layers.{stage}.blocks.{block}.attention"
            dst = f"{prefix}stages.{stage}.blocks.{block}.attention"
            state |= _stack_projections(source, [f"{src}.{n}_proj" for n in "qkv"], f"{dst}.qkv_proj")
    ours.load_state_dict(state, strict=True)
    return ours.to(model.dtype).train(model.training)


CONVERTERS: dict[type, Callable[[PreTrainedModel], PreTrainedModel]] = {
    MarianMTModel: _from_marian,
    MarianModel: _from_marian,
    ViTModel: _from_vit,
    ViTForImageClassification: _from_vit,
    ViTForMaskedImageModeling: _from_vit,
    SwinModel: _from_swin,
    SwinForImageClassification: _from_swin,
    SwinForMaskedImageModeling: _from_swin,
}


def from_transformers(model: PreTrainedModel) -> PreTrainedModel:
    """Convert a transformers model into the equivalent hf_visiontx model, weights included.

    Supported: `MarianMTModel` (Helsinki-NLP/opus-mt-* checkpoints) -> `VtxTransformerForConditionalGeneration`,
    with its generation config; `MarianModel` -> `VtxTransformerModel`; `ViTModel`, `ViTForImageClassification`,
    `ViTForMaskedImageModeling` (google/vit-* and facebook/deit-* checkpoints without distillation token) ->
    `VtxViTModel`, `VtxViTForImageClassification`, `VtxViTForMaskedImageModeling`; `SwinModel`,
    `SwinForImageClassification`, `SwinForMaskedImageModeling` (microsoft/swin-* checkpoints) -> the `VtxSwin*`
    classes.
    """
    converter = CONVERTERS.get(type(model))
    if converter is None:
        supported = ", ".join(cls.__name__ for cls in CONVERTERS)
        raise TypeError(f"Cannot convert {type(model).__name__}; `from_transformers` supports {supported}.")
    return converter(model)


def _load_source_model(src_dir: Path) -> PreTrainedModel:
    config_file = src_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{src_dir} is not a saved model: it has no config.json.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error
    architectures = config.get("architectures") or []
    verify_safetensors_files(src_dir)
    for cls in CONVERTERS:
        if cls.__name__ in architectures:
            return cls.from_pretrained(src_dir)
    model_type = config.get("model_type")
    default_class = {"marian": MarianMTModel, "vit": ViTModel, "swin": SwinModel}.get(model_type)
    if default_class is not None:
        return default_class.from_pretrained(src_dir)
    supported = ", ".join(cls.__name__ for cls in CONVERTERS)
    raise ValueError(
        f"{config_file} describes {architectures or model_type!r}; `hf-visiontx convert` supports {supported}."
    )


def convert_checkpoint(src_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert the transformers checkpoint saved in `src_dir` and save ours to `out_dir`.

    Tokenizer and other non-model files are copied along, so `AutoTokenizer.from_pretrained(out_dir)` loads the
    source's tokenizer. The output is written to a temporary directory first and moved into place at the end: a
    failure leaves no half-written `out_dir`.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"`src_dir` {src_dir} is not a directory.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"`out_dir` {out_dir} already exists and is not empty; choose a new directory.")
    converted = from_transformers(_load_source_model(src_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp") as staging:
        staging = Path(staging)
        converted.save_pretrained(staging)
        for path in src_dir.iterdir():
            if path.is_file() and not any(path.match(pattern) for pattern in MODEL_FILE_PATTERNS):
                shutil.copy2(path, staging / path.name)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
        staging.mkdir()  # leave the (now empty) temporary directory for TemporaryDirectory to clean up
    return out_dir
