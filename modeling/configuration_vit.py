"""Configuration of the Vision Transformer.

Paper: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
https://arxiv.org/abs/2010.11929. Ti and S sizes from Touvron et al. 2021 (DeiT), https://arxiv.org/abs/2012.12877.

Presets are named as in the paper: "b/16" is ViT-Base with 16x16 patches. "r50+b/16" is the paper's hybrid: a
BiT ResNet-50 (its first three stages, stage 3 with 9 blocks) produces a stride-16 feature map whose 1x1 "patches"
are the tokens.
"""

from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .config_checks import check_field_types, check_positive, check_probabilities, check_type
from .families import auto_map
from .image_size import ImageSizeMixin

POOLING_TYPES = ("cls", "mean")

# Table 1 of the paper (B, L, H) and of DeiT (Ti, S): width, depth, heads, MLP size.
_SIZES = {
    "ti": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
    "s": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "b": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "l": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "h": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "intermediate_size": 5120},
}


def bit_backbone_config(depths: tuple[int, ...] = (3, 4, 9), width: int = 64, num_groups: int = 32) -> dict:
    """The `backbone_config` of a hybrid ViT: a BiT ResNet (weight-standardised convolutions + GroupNorm).

    The paper's R50 hybrid keeps ResNet-50's first three stages and gives stage 3 nine blocks (the blocks of the
    removed stage 4 move there), for an output stride of 16. GroupNorm replaces BatchNorm (BiT, Kolesnikov et al.
    2020) because it does not depend on the batch, which transfers better.

    Args:
        depths: bottleneck blocks per stage; the feature map's stride is 4 * 2 ** (len(depths) - 1).
        width: channels of the stem; stage i has 4 * width * 2 ** i output channels.
        num_groups: GroupNorm groups; must divide `width`.
    """
    return {"depths": list(depths), "width": width, "num_groups": num_groups}


def check_backbone_config(backbone: dict) -> None:
    """Raise a `ValueError` unless `backbone` is a `bit_backbone_config`: positive integer `depths` (a list),
    `width` and `num_groups`, with `num_groups` dividing `width`."""
    if set(backbone) != {"depths", "width", "num_groups"}:
        raise ValueError(
            f"`backbone_config` must be a dict with `depths`, `width` and `num_groups` (see bit_backbone_config), "
            f"got {backbone!r}."
        )
    for key, expected in (("depths", list[int] | tuple[int, ...]), ("width", int), ("num_groups", int)):
        check_type(f"backbone_config['{key}']", backbone[key], expected)
    if not backbone["depths"] or min(backbone["depths"]) <= 0 or min(backbone["width"], backbone["num_groups"]) <= 0:
        raise ValueError(
            f"`backbone_config` needs at least one stage and positive block counts, width and num_groups, got "
            f"{backbone!r}."
        )
    if backbone["width"] % backbone["num_groups"] != 0:
        raise ValueError(
            f"`backbone_config` width ({backbone['width']}) must be divisible by num_groups ({backbone['num_groups']})."
        )


def _presets() -> dict[str, dict[str, Any]]:
    presets = {}
    for size, fields in _SIZES.items():
        for patch in (14, 16, 32):
            presets[f"{size}/{patch}"] = {**fields, "patch_size": patch}
    presets["r50+b/16"] = {**_SIZES["b"], "patch_size": 1, "backbone_config": bit_backbone_config()}
    return presets


VIT_PRESETS: dict[str, dict[str, Any]] = _presets()


class VtxViTConfig(ImageSizeMixin, PreTrainedConfig):
    r"""Configuration of [`VtxViTModel`] and its heads.

    Args:
        image_size: the training resolution, an int (square) or (height, width); the position-embedding grid is
            image_size / token_stride. Other sizes work with `interpolate_pos_encoding=True`.
        patch_size: P, the side of the square patches (on the backbone's feature map for hybrids).
        num_channels: channels of the input images.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: D, depth, heads, MLP size.
        hidden_act: MLP non-linearity (GELU in the paper).
        hidden_dropout_prob: dropout after the patch embedding and each residual branch.
        attention_probs_dropout_prob: dropout on attention probabilities.
        layer_norm_eps: epsilon of every LayerNorm (1e-6 as in the paper's code).
        initializer_range: std of the truncated-normal init of linear layers, the [CLS] token and positions.
        qkv_bias: bias in the query/key/value projection.
        pooling: "cls" (the [CLS] token's final state, the paper's default) or "mean" (global average pooling of
            the patch tokens, the paper's GAP variant).
        use_pooler: add the pre-logits layer (Linear + `pooler_act`) after pooling; the paper uses it for
            pre-training only, so it is off by default (an unused layer would trouble DDP).
        pooler_act: activation of the pre-logits layer.
        encoder_stride: upsampling factor of the masked-image-modeling decoder; must equal `token_stride`.
        backbone_config: None for the plain ViT, or a BiT ResNet configuration (see `bit_backbone_config`) for the
            hybrid, whose feature map replaces the raw pixels as the input of the patch embedding.
    """

    model_type = "vtx_vit"
    presets: ClassVar[dict[str, dict[str, Any]]] = VIT_PRESETS  # the paper's named sizes, see `from_preset`

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    qkv_bias: bool = True
    pooling: str = "cls"
    use_pooler: bool = False
    pooler_act: str = "tanh"
    encoder_stride: int | None = None
    backbone_config: dict | None = None

    def __post_init__(self, **kwargs):
        check_field_types(self)
        if self.backbone_config is not None:
            check_backbone_config(self.backbone_config)
        self.auto_map = {**auto_map(self.model_type), **(getattr(self, "auto_map", None) or {})}
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = list(self.image_size)
        if self.encoder_stride is None:
            self.encoder_stride = self.token_stride
        self._validate_fields()
        super().__post_init__(**kwargs)

    @property
    def token_stride(self) -> int:
        """Pixels per token side: the patch size, times the backbone's output stride for hybrids."""
        if self.backbone_config is None:
            return self.patch_size
        return self.patch_size * 4 * 2 ** (len(self.backbone_config["depths"]) - 1)

    def architecture_facts(self) -> list[str]:
        """One line per defining size of the architecture (for the model card)."""
        height, width = self.image_height_width
        rows, cols = self.grid_size
        stem = "BiT ResNet hybrid stem, " if self.backbone_config else ""
        return [
            f"{stem}{self.patch_size}x{self.patch_size} patches at {height}x{width} px: {rows * cols} tokens + [CLS]",
            f"{self.num_hidden_layers} layers, width {self.hidden_size}, {self.num_attention_heads} heads, "
            f"MLP {self.intermediate_size}; {self.pooling} pooling",
        ]

    def _validate_fields(self) -> None:
        """Raise a `ValueError` naming the field when the configuration cannot build a working model."""
        check_positive(
            self,
            (
                "patch_size",
                "num_channels",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "encoder_stride",
                "layer_norm_eps",
                "initializer_range",
            ),
        )
        sizes = self.image_height_width
        if len(sizes) != 2 or any(not isinstance(s, int) or s <= 0 for s in sizes):
            raise ValueError(f"`image_size` must be a positive int or (height, width), got {self.image_size!r}.")
        if min(sizes) < self.token_stride:
            raise ValueError(f"`image_size` {self.image_size} is smaller than one token ({self.token_stride} pixels).")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"`pooling` must be one of {POOLING_TYPES}, got {self.pooling!r}.")
        for name in ("hidden_act", "pooler_act"):
            if getattr(self, name) not in ACT2FN:
                raise ValueError(f"`{name}` {getattr(self, name)!r} is unknown; use a key of ACT2FN.")
        check_probabilities(self, ("hidden_dropout_prob", "attention_probs_dropout_prob"))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VtxViTConfig":
        """Build a configuration from the paper's Table 1 (and DeiT's Ti/S).

        Args:
            name: "<size>/<patch>" with size ti, s, b, l, h and patch 14, 16 or 32 (for example "b/16", "l/32",
                "h/14"), or "r50+b/16" for the ResNet-50 hybrid.
            **overrides: any field, for example `num_labels=10, image_size=384`.
        """
        if name not in VIT_PRESETS:
            raise ValueError(f"Unknown ViT preset {name!r}; choose one of {sorted(VIT_PRESETS)}.")
        return cls(**{**VIT_PRESETS[name], **overrides})


__all__ = ["VIT_PRESETS", "VtxViTConfig", "bit_backbone_config"]
