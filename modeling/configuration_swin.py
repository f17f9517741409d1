"""Configuration of the Swin Transformer.

Paper: Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
https://arxiv.org/abs/2103.14030. Presets follow its section 3.3 and Table 1: Swin-T, S, B, L with window 7 at
224 px (12 at 384 px) and the stochastic-depth rates of its ImageNet-1K recipe.
"""

from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN
from transformers.backbone_utils import BackboneConfigMixin

from .config_checks import check_field_types, check_positive, check_probabilities
from .families import auto_map
from .image_size import ImageSizeMixin

# Section 3.3: C (embed_dim), layer numbers, heads per stage; drop path from the training recipe (Appendix A2).
SWIN_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24), "drop_path_rate": 0.2},
    "small": {"embed_dim": 96, "depths": (2, 2, 18, 2), "num_heads": (3, 6, 12, 24), "drop_path_rate": 0.3},
    "base": {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32), "drop_path_rate": 0.5},
    "large": {"embed_dim": 192, "depths": (2, 2, 18, 2), "num_heads": (6, 12, 24, 48), "drop_path_rate": 0.2},
}


class VtxSwinConfig(ImageSizeMixin, BackboneConfigMixin, PreTrainedConfig):
    r"""Configuration of [`VtxSwinModel`], its heads and [`VtxSwinBackbone`].

    Args:
        image_size: training resolution (int or (height, width)); any size works at run time.
        patch_size: side of the patches of the patch partition (4: 4x4x3 = 48 values per token).
        num_channels: channels of the input images.
        embed_dim: C, the width of stage 1; stage i has C * 2^(i-1) channels.
        depths: Swin blocks per stage (even: blocks alternate W-MSA and SW-MSA).
        num_heads: attention heads per stage; each must divide its stage's width.
        window_size: M, the side of the attention windows; SW-MSA shifts by M // 2.
        mlp_ratio: MLP hidden size over the block width.
        qkv_bias: bias in the query/key/value projection.
        hidden_dropout_prob: dropout after the embedding and on each residual branch.
        attention_probs_dropout_prob: dropout on attention probabilities.
        drop_path_rate: stochastic depth of the last block; rates grow linearly from 0 over all blocks.
        hidden_act: MLP non-linearity.
        use_absolute_embeddings: add learned absolute position embeddings to the patch embeddings (off in the
            paper's final models, which rely on the relative position bias).
        layer_norm_eps: epsilon of every LayerNorm.
        initializer_range: std of the truncated-normal init of linear layers and the bias tables.
        encoder_stride: upsampling factor of the masked-image-modeling decoder (the total downsampling, 32).
        out_features / out_indices: the stages `VtxSwinBackbone` returns ("stem", "stage1", ..., "stage4").
    """

    model_type = "vtx_swin"
    presets: ClassVar[dict[str, dict[str, Any]]] = SWIN_PRESETS  # the paper's named sizes, see `from_preset`
    attribute_map = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 4
    num_channels: int = 3
    embed_dim: int = 96
    depths: list[int] | tuple[int, ...] = (2, 2, 6, 2)
    num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.1
    hidden_act: str = "gelu"
    use_absolute_embeddings: bool = False
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    encoder_stride: int = 32
    _out_features: list[str] | None = None
    _out_indices: list[int] | None = None

    def __post_init__(self, **kwargs):
        check_field_types(self)
        self.auto_map = {**auto_map(self.model_type), **(getattr(self, "auto_map", None) or {})}
        self.depths, self.num_heads = list(self.depths), list(self.num_heads)
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = list(self.image_size)
        self._validate_fields()
        self.num_layers = len(self.depths)
        self.hidden_size = self.embed_dim * 2 ** (len(self.depths) - 1)  # width of the last stage
        self.stage_names = ["stem"] + [f"stage{index}" for index in range(1, len(self.depths) + 1)]
        self.set_output_features_output_indices(
            out_indices=kwargs.pop("out_indices", None), out_features=kwargs.pop("out_features", None)
        )
        super().__post_init__(**kwargs)

    def _validate_fields(self) -> None:
        """Raise a `ValueError` naming the field when the configuration cannot build a working model."""
        check_positive(
            self,
            (
                "patch_size",
                "num_channels",
                "embed_dim",
                "window_size",
                "encoder_stride",
                "mlp_ratio",
                "layer_norm_eps",
                "initializer_range",
            ),
        )
        if not self.depths or any(depth <= 0 for depth in self.depths):
            raise ValueError(f"`depths` must be a non-empty list of positive block counts, got {self.depths}.")
        if len(self.num_heads) != len(self.depths):
            raise ValueError(
                f"`num_heads` needs one entry per stage: {len(self.depths)} stages (`depths`={self.depths}), "
                f"got {self.num_heads}."
            )
        for stage, heads in enumerate(self.num_heads):
            width = self.embed_dim * 2**stage
            if heads <= 0 or width % heads != 0:
                raise ValueError(
                    f"`num_heads[{stage}]` ({heads}) must divide the width of stage {stage + 1} "
                    f"(embed_dim * 2^{stage} = {width})."
                )
        sizes = [self.image_size] * 2 if isinstance(self.image_size, int) else self.image_size
        if len(sizes) != 2 or any(not isinstance(size, int) or size <= 0 for size in sizes):
            raise ValueError(f"`image_size` must be a positive int or (height, width), got {self.image_size!r}.")
        patch_grid = min(sizes) // self.patch_size
        if self.window_size > patch_grid:
            raise ValueError(
                f"`window_size` ({self.window_size}) must not exceed the patch grid of `image_size` "
                f"({patch_grid} patches of {self.patch_size} px along the shorter side)."
            )
        check_probabilities(self, ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"))
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` {self.hidden_act!r} is unknown; use a key of ACT2FN.")

    @property
    def token_stride(self) -> int:
        """Pixels per token side of the first stage: the patch size."""
        return self.patch_size

    def architecture_facts(self) -> list[str]:
        """One line per defining size of the architecture (for the model card)."""
        height, width = self.image_height_width
        return [
            f"{self.patch_size}x{self.patch_size} patches at {height}x{width} px, embedding width {self.embed_dim}",
            f"stages of {list(self.depths)} blocks with {list(self.num_heads)} heads, window {self.window_size}",
        ]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VtxSwinConfig":
        """Build a configuration of the paper's Swin-T/S/B/L.

        The window is 7 for 224 px images and 12 for 384 px (`image_size=384`), unless `window_size` is given.

        Args:
            name: "tiny", "small", "base" or "large".
            **overrides: any field, for example `num_labels=10, image_size=384`.
        """
        if name not in SWIN_PRESETS:
            raise ValueError(f"Unknown Swin preset {name!r}; choose one of {sorted(SWIN_PRESETS)}.")
        fields = {**SWIN_PRESETS[name], **overrides}
        if "window_size" not in overrides:
            fields["window_size"] = 12 if fields.get("image_size", 224) == 384 else 7
        return cls(**fields)


__all__ = ["SWIN_PRESETS", "VtxSwinConfig"]
