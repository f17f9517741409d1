"""The models the benchmarks compare, each family with one set of weights: a random transformers model, ours
converted from it, and timm's (when installed) with the same weights mapped in."""

import importlib

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_visiontx.convert import from_transformers

# transformers' ViTConfig sizes of the presets the benchmarks use (the paper's B/16; DeiT's S/16)
VIT_SIZES = {
    "b/16": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "s/16": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
}
TIMM_VIT_NAMES = {"b/16": "vit_base_patch16_224", "s/16": "vit_small_patch16_224"}


def _timm():
    """The timm module, or None when it is not installed."""
    try:
        import timm
    except ImportError:
        return None
    return timm


def vit_models(size: str) -> dict[str, torch.nn.Module]:
    """ViT at 224 px with a 1000-class head: transformers', ours and timm's (when installed), same weights."""
    torch.manual_seed(0)
    config = ViTConfig(num_labels=1000, layer_norm_eps=1e-6, **VIT_SIZES[size])
    reference = ViTForImageClassification(config).eval()
    models = {"ours": from_transformers(reference).eval(), "transformers": reference}
    timm = _timm()
    if timm is not None:
        models["timm"] = timm_vit(timm, TIMM_VIT_NAMES[size], reference)
    return models


def swin_models() -> dict[str, torch.nn.Module]:
    """Swin-T (window 7, 224 px, 1000 classes): transformers', ours and timm's (when installed), same weights."""
    torch.manual_seed(0)
    reference = SwinForImageClassification(SwinConfig(num_labels=1000)).eval()
    models = {"ours": from_transformers(reference).eval(), "transformers": reference}
    timm = _timm()
    if timm is not None:
        models["timm"] = timm_swin(timm, models["ours"])
    return models


def marian_models(vocab_size: int) -> dict[str, torch.nn.Module]:
    """The Transformer-base sizes (d_model 512, 6+6 layers, 8 heads, d_ff 2048; the opus-mt checkpoints use these,
    with SiLU) as transformers' MarianMTModel and as ours, same weights."""
    config = MarianConfig(
        vocab_size=vocab_size,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        activation_function="swish",
        max_position_embeddings=512,
        pad_token_id=vocab_size - 1,
        decoder_start_token_id=vocab_size - 1,
        eos_token_id=0,
        forced_eos_token_id=None,
        scale_embedding=True,
    )
    torch.manual_seed(0)
    marian = MarianMTModel(config).eval()
    return {"ours": from_transformers(marian).eval(), "transformers": marian}


def gpt2_models() -> dict[str, torch.nn.Module]:
    """GPT-2 small (124M parameters: 12 layers, d_model 768, 12 heads, 50,257 tokens) as transformers'
    GPT2LMHeadModel and as ours (`VtxTransformerForCausalLM`), same weights."""
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config()).eval()
    gpt2.generation_config.pad_token_id = gpt2.config.eos_token_id
    ours = from_transformers(gpt2).eval()
    ours.generation_config.pad_token_id = gpt2.config.eos_token_id
    return {"ours": ours, "transformers": gpt2}


def timm_vit(timm, name: str, reference: ViTForImageClassification) -> torch.nn.Module:
    """timm's ViT `name` holding the weights of a transformers ViTForImageClassification."""
    model = timm.create_model(name, pretrained=False, num_classes=reference.config.num_labels).eval()
    source = reference.state_dict()
    state = {
        "cls_token": source["vit.embeddings.cls_token"],
        "pos_embed": source["vit.embeddings.position_embeddings"],
        "patch_embed.proj.weight": source["vit.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": source["vit.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": source["vit.layernorm.weight"],
        "norm.bias": source["vit.layernorm.bias"],
        "head.weight": source["classifier.weight"],
        "head.bias": source["classifier.bias"],
    }
    for i in range(reference.config.num_hidden_layers):
        src, dst = f"vit.layers.{i}", f"blocks.{i}"
        for kind in ("weight", "bias"):
            state[f"{dst}.attn.qkv.{kind}"] = torch.cat([source[f"{src}.attention.{n}_proj.{kind}"] for n in "qkv"])
            state[f"{dst}.attn.proj.{kind}"] = source[f"{src}.attention.o_proj.{kind}"]
            state[f"{dst}.norm1.{kind}"] = source[f"{src}.layernorm_before.{kind}"]
            state[f"{dst}.norm2.{kind}"] = source[f"{src}.layernorm_after.{kind}"]
            state[f"{dst}.mlp.fc1.{kind}"] = source[f"{src}.mlp.fc1.{kind}"]
            state[f"{dst}.mlp.fc2.{kind}"] = source[f"{src}.mlp.fc2.{kind}"]
    model.load_state_dict(state)
    return model


def timm_swin(timm, ours: torch.nn.Module) -> torch.nn.Module:
    """timm's swin_tiny_patch4_window7_224 holding the weights of our Swin-T."""
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=1000).eval()
    renames = {
        "swin.embeddings.patch_embeddings.projection.": "patch_embed.proj.",
        "swin.embeddings.norm.": "patch_embed.norm.",
        "swin.layernorm.": "norm.",
        "classifier.": "head.fc.",
        ".layernorm_before.": ".norm1.",
        ".layernorm_after.": ".norm2.",
        ".attention.qkv_proj.": ".attn.qkv.",
        ".attention.o_proj.": ".attn.proj.",
        ".attention.relative_position_bias_table": ".attn.relative_position_bias_table",
        "swin.stages.": "layers.",
    }
    state = {}
    for key, value in ours.state_dict().items():
        if ".downsample." in key:  # timm merges patches at the start of the next stage
            stage = int(key.split(".")[2])
            key = key.replace(f"swin.stages.{stage}.downsample.", f"layers.{stage + 1}.downsample.")
        for old, new in renames.items():
            key = key.replace(old, new)
        state[key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not name.endswith(("relative_position_index", "attn_mask")) for name in missing):
        raise RuntimeError(f"timm Swin mapping is off: missing {missing}, unexpected {unexpected}")
    return model


def transformers_twin(ours: torch.nn.Module, reference: torch.nn.Module) -> torch.nn.Module:
    """`reference` (a transformers model whose config matches ours) holding our weights.

    hf_visiontx.convert maps transformers' weights to ours by copying and stacking them; run on a reference whose
    every weight element holds its own index (float64, exact), it shows where each of our elements comes from, and
    the elements are put back there. Elements that none of ours comes from (a zero logits bias) keep their values.
    """
    converter = importlib.import_module(f"hf_visiontx.convert.{reference.config.model_type}")
    flat = torch.cat([tensor.flatten().float() for tensor in reference.state_dict().values()])  # [elements]
    reference = reference.double()
    offset = 0
    with torch.no_grad():
        for tensor in reference.state_dict().values():  # tied weights share one storage: its last indices win
            tensor.copy_(torch.arange(offset, offset + tensor.numel(), dtype=torch.float64).view_as(tensor))
            offset += tensor.numel()
        indices = converter.convert_state_dict(reference, converter.convert_config(reference))
        reference = reference.float()
        sources = reference.state_dict()
        for name, tensor in ours.state_dict().items():
            if name in indices:
                flat[indices[name].flatten().long()] = tensor.flatten().float()
        offset = 0
        for tensor in sources.values():
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()
    return reference.eval()


def logits_of(output) -> torch.Tensor:
    """The logits of a transformers/hf_visiontx output, or timm's plain tensor."""
    return output if isinstance(output, torch.Tensor) else output.logits
