"""Configuration of the encoder-decoder Transformer.

Paper: Vaswani et al. 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762

The defaults are the paper's base model (Table 3, row "base"); `from_preset("big")` gives the big model, and
`from_preset("gpt2")` / `from_preset("gpt2-medium")` GPT-2's decoder (pre-LN, learned positions, GELU) for
`VtxTransformerForCausalLM`.
Where transformers' Marian (the closest reference implementation) differs from the paper, the paper is the
default and Marian's behaviour is an option: `position_encoding_layout="concatenated"`,
`activation_function="silu"`, `lm_head_bias=True`, `label_smoothing=0.0`.
"""

from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .config_checks import check_field_types, check_positive, check_probabilities, check_token_ids, check_type
from .families import auto_map

POSITION_ENCODING_LAYOUTS = ("interleaved", "concatenated")
POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned")
LAYER_NORM_PLACEMENTS = ("post", "pre")


def _gpt2_sizes(d_model: int, layers: int, heads: int) -> dict[str, Any]:
    """GPT-2's decoder (Radford et al. 2019) in our fields: pre-LN with a final LayerNorm, learned positions, GELU
    (tanh approximation), unscaled embeddings tied to the output, dropout 0.1 everywhere, no label smoothing."""
    return {
        "vocab_size": 50257,
        "d_model": d_model,
        **{f"{stack}_layers": layers for stack in ("encoder", "decoder")},
        **{f"{stack}_attention_heads": heads for stack in ("encoder", "decoder")},
        **{f"{stack}_ffn_dim": 4 * d_model for stack in ("encoder", "decoder")},
        "max_position_embeddings": 1024,
        "activation_function": "gelu_new",
        "layer_norm_placement": "pre",
        "position_embedding_type": "learned",
        "scale_embedding": False,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "label_smoothing": 0.0,
        "pad_token_id": None,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "decoder_start_token_id": 50256,
    }


# Table 3 of the paper: N (layers), d_model, d_ff, h (heads), P_drop. Label smoothing is 0.1 for both.
TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "base": {
        "d_model": 512,
        "encoder_layers": 6,
        "decoder_layers": 6,
        "encoder_ffn_dim": 2048,
        "decoder_ffn_dim": 2048,
        "encoder_attention_heads": 8,
        "decoder_attention_heads": 8,
        "dropout": 0.1,
        "label_smoothing": 0.1,
    },
    "big": {
        "d_model": 1024,
        "encoder_layers": 6,
        "decoder_layers": 6,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "dropout": 0.3,
        "label_smoothing": 0.1,
    },
    # GPT-2's sizes (Radford et al. 2019, Table 2): 124.4M and 354.8M parameters as `VtxTransformerForCausalLM`.
    "gpt2": _gpt2_sizes(d_model=768, layers=12, heads=12),
    "gpt2-medium": _gpt2_sizes(d_model=1024, layers=24, heads=16),
}


class VtxTransformerConfig(PreTrainedConfig):
    r"""Configuration of [`VtxTransformerModel`], [`VtxTransformerForConditionalGeneration`] and the decoder alone,
    [`VtxTransformerForCausalLM`] (which reads only the `decoder_*` sizes).

    Args:
        vocab_size: size of the (shared) token vocabulary. The paper used a shared BPE vocabulary of about 37,000.
        d_model: width of every residual stream, embedding and attention output.
        encoder_layers / decoder_layers: number of blocks in each stack (the paper's N).
        encoder_attention_heads / decoder_attention_heads: heads per attention layer (the paper's h);
            `d_model` must be divisible by both.
        encoder_ffn_dim / decoder_ffn_dim: inner width of the position-wise feed-forward network (d_ff).
        activation_function: feed-forward non-linearity, any key of `transformers.activations.ACT2FN`
            ("relu" in the paper, "silu"/"swish" in Marian checkpoints).
        dropout: residual dropout, applied to each sub-layer output and to embeddings + positions (P_drop).
        attention_dropout: dropout on the attention probabilities.
        activation_dropout: dropout after the feed-forward non-linearity.
        max_position_embeddings: the number of positions, the longest sequence either stack accepts.
        position_embedding_type: "sinusoidal" (the paper's fixed encodings, section 3.5) or "learned" (one trained
            vector per position, as GPT-2; the paper found both equally good, Table 3 row E).
        position_encoding_layout: of the sinusoids: "interleaved" (sin on even, cos on odd features, the paper's
            formula) or "concatenated" (all sines then all cosines, as in Marian).
        layer_norm_placement: "post" (LayerNorm after each residual addition, the paper) or "pre" (LayerNorm
            before each sub-layer plus a final LayerNorm per stack, more stable for deep models).
        layer_norm_eps: epsilon of every LayerNorm.
        scale_embedding: multiply token embeddings by sqrt(d_model) (section 3.4 of the paper).
        share_encoder_decoder_embeddings: one embedding matrix for source and target tokens.
        tie_word_embeddings: the output projection reuses the target embedding matrix (section 3.4). The two
            flags are independent: any combination builds, saves and reloads.
        lm_head_bias: add a bias to the output logits (Marian's `final_logits_bias`).
        label_smoothing: epsilon of label-smoothed cross-entropy when `labels` are given (0.1 in the paper).
        pad_token_id / bos_token_id / eos_token_id / decoder_start_token_id: special token ids; the decoder
            starts from `decoder_start_token_id`.
        use_cache: return a key/value cache from the decoder, used by `generate()`.
        is_decoder / add_cross_attention: for `VtxTransformerForCausalLM` (which sets `is_decoder`): its layers attend
            to `encoder_hidden_states` when `add_cross_attention` is set, as the decoder of
            `VisionEncoderDecoderModel` or `EncoderDecoderModel`.
    """

    model_type = "vtx_transformer"
    presets: ClassVar[dict[str, dict[str, Any]]] = TRANSFORMER_PRESETS  # the paper's named sizes, see `from_preset`
    keys_to_ignore_at_inference = ["cache"]
    # transformers sizes key/value caches (static ones included) by `num_hidden_layers` and `num_attention_heads`:
    # they are the decoder's, whose layers the caches serve (Marian's are the encoder's, which breaks its static
    # cache when the stacks differ).
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "decoder_attention_heads",
        "num_hidden_layers": "decoder_layers",
    }

    vocab_size: int = 37000
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    activation_function: str = "relu"
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    max_position_embeddings: int = 1024
    position_embedding_type: str = "sinusoidal"
    position_encoding_layout: str = "interleaved"
    layer_norm_placement: str = "post"
    layer_norm_eps: float = 1e-5
    scale_embedding: bool = True
    share_encoder_decoder_embeddings: bool = True
    tie_word_embeddings: bool = True
    lm_head_bias: bool = False
    label_smoothing: float | int = 0.1
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1
    use_cache: bool = True
    is_encoder_decoder: bool = True
    is_decoder: bool = False
    add_cross_attention: bool = False

    def __post_init__(self, **kwargs):
        check_field_types(self)
        self.auto_map = {**auto_map(self.model_type), **(getattr(self, "auto_map", None) or {})}
        self._validate_fields()
        super().__post_init__(**kwargs)
        if hasattr(self, "initializer_range"):  # no field (the paper's init is used), but transformers' reads it
            check_type("initializer_range", self.initializer_range, float)
            check_positive(self, ("initializer_range",))

    def _validate_fields(self) -> None:
        """Raise a `ValueError` naming the field when the configuration cannot build a working model."""
        check_positive(
            self,
            (
                "vocab_size",
                "d_model",
                "encoder_layers",
                "decoder_layers",
                "encoder_attention_heads",
                "decoder_attention_heads",
                "encoder_ffn_dim",
                "decoder_ffn_dim",
                "max_position_embeddings",
                "layer_norm_eps",
            ),
        )
        for name in ("encoder_attention_heads", "decoder_attention_heads"):
            heads = getattr(self, name)
            if self.d_model % heads != 0:
                raise ValueError(
                    f"`d_model` ({self.d_model}) must be divisible by `{name}` ({heads}): each head gets "
                    f"d_model / heads features."
                )
        if self.d_model % 2 != 0:
            raise ValueError(f"`d_model` must be even for sinusoidal positions (sin/cos pairs), got {self.d_model}.")
        check_probabilities(self, ("dropout", "attention_dropout", "activation_dropout", "label_smoothing"))
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"`position_embedding_type` must be one of {POSITION_EMBEDDING_TYPES}, "
                f"got {self.position_embedding_type!r}."
            )
        if self.position_encoding_layout not in POSITION_ENCODING_LAYOUTS:
            raise ValueError(
                f"`position_encoding_layout` must be one of {POSITION_ENCODING_LAYOUTS}, "
                f"got {self.position_encoding_layout!r}."
            )
        if self.layer_norm_placement not in LAYER_NORM_PLACEMENTS:
            raise ValueError(
                f"`layer_norm_placement` must be one of {LAYER_NORM_PLACEMENTS}, got {self.layer_norm_placement!r}."
            )
        if self.activation_function not in ACT2FN:
            raise ValueError(
                f"`activation_function` {self.activation_function!r} is unknown; use one of {sorted(ACT2FN.keys())}."
            )
        special_ids = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
        check_token_ids(self, special_ids, self.vocab_size)

    def architecture_facts(self) -> list[str]:
        """One line per defining size of the architecture (for the model card)."""
        if self.is_decoder and not self.is_encoder_decoder:
            cross = ", with cross-attention to an encoder" if self.add_cross_attention else ""
            layers = (
                f"decoder only: {self.decoder_layers} layers{cross}, d_model {self.d_model}, "
                f"{self.decoder_attention_heads} heads, feed-forward {self.decoder_ffn_dim} ({self.activation_function})"
            )
        else:
            layers = (
                f"{self.encoder_layers} encoder and {self.decoder_layers} decoder layers, d_model {self.d_model}, "
                f"{self.encoder_attention_heads} heads, feed-forward {self.encoder_ffn_dim} ({self.activation_function})"
            )
        positions = (
            f"{self.position_encoding_layout} sinusoidal"
            if self.position_embedding_type == "sinusoidal"
            else self.position_embedding_type
        )
        return [
            layers,
            f"{self.layer_norm_placement}-LN blocks, {positions} positions up to {self.max_position_embeddings} tokens",
            f"vocabulary of {self.vocab_size} tokens; label smoothing {self.label_smoothing}",
        ]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VtxTransformerConfig":
        """Build the configuration of a named size: the paper's Table 3, or GPT-2's decoder.

        Args:
            name: "base" (about 63M parameters with a 37k vocabulary) or "big" (about 213M); "gpt2" (124.4M as
                `VtxTransformerForCausalLM`) or "gpt2-medium" (354.8M).
            **overrides: any field, applied on top of the preset (for example `vocab_size=32000`).
        """
        if name not in TRANSFORMER_PRESETS:
            raise ValueError(f"Unknown Transformer preset {name!r}; choose one of {sorted(TRANSFORMER_PRESETS)}.")
        return cls(**{**TRANSFORMER_PRESETS[name], **overrides})


__all__ = ["POSITION_EMBEDDING_TYPES", "TRANSFORMER_PRESETS", "VtxTransformerConfig"]
