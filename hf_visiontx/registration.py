"""Registration of every hf_visiontx config, model and tokenizer with transformers' Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedTokenizerFast

from .modeling import VtxTransformerConfig, VtxTransformerForConditionalGeneration, VtxTransformerModel


def register_auto_classes() -> None:
    """Make `AutoConfig`, `AutoModel*` and `AutoTokenizer` resolve our model types; calling it twice is harmless."""
    AutoConfig.register(VtxTransformerConfig.model_type, VtxTransformerConfig, exist_ok=True)
    AutoModel.register(VtxTransformerConfig, VtxTransformerModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(VtxTransformerConfig, VtxTransformerForConditionalGeneration, exist_ok=True)
    AutoTokenizer.register(VtxTransformerConfig, tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)
