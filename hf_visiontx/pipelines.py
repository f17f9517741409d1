"""A `seq2seq-translation` pipeline task for sequence-to-sequence models.

transformers 5 removed its `translation` and `text2text-generation` pipelines (and `text-generation` silently
returns wrong text for encoder-decoder models); it also refuses the old task names, so importing hf_visiontx
registers this one under a new name:

    translator = pipeline("seq2seq-translation", model="path/to/model")
    translator(["siebenundachtzig", "dreihundertzwölf"], batch_size=16, num_beams=4)
    # [{"translation_text": "eighty-seven"}, {"translation_text": "three hundred and twelve"}]
"""

from collections.abc import Iterable
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TRANSLATION_TASK = "seq2seq-translation"


class TranslationPipeline(Pipeline):
    """Translate strings with any encoder-decoder model that has a tokenizer and `generate()`.

    Call it with one string or a list of strings; it returns one `{"translation_text": ...}` dict per input (a list
    of them per input with `num_return_sequences > 1`). Generation parameters (`num_beams`, `max_new_tokens`,
    `do_sample`, ...) can be given when the pipeline is built or on each call. `truncation=True` cuts sources
    longer than the tokenizer's `model_max_length`.
    """

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.model.config.is_encoder_decoder:
            raise ValueError(
                f"The translation pipeline needs an encoder-decoder model; {type(self.model).__name__} is not one."
            )
        if self.tokenizer is None:
            raise ValueError(
                "The translation pipeline needs a tokenizer: pass `tokenizer=` or save one with the model."
            )

    def _sanitize_parameters(
        self, truncation: bool | None = None, clean_up_tokenization_spaces: bool | None = None, **generate_kwargs: Any
    ):
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params = {}
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def __call__(self, texts: str | Iterable[str], **kwargs: Any) -> list[dict[str, str]] | list[list[dict[str, str]]]:
        """Translate `texts` (a string, or any sequence of strings such as a list or a dataset column)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        bad = next((text for text in texts if not isinstance(text, str)), None)
        if bad is not None or not texts:
            given = "an empty sequence" if not texts else f"a {type(bad).__name__} ({bad!r})"
            raise TypeError(f"`texts` must be a string or a non-empty sequence of strings, got {given}.")
        results = super().__call__(texts, **kwargs)
        return [result[0] if len(result) == 1 else result for result in results]

    def preprocess(self, text: str, truncation: bool = False) -> dict[str, torch.Tensor]:
        return self.tokenizer(text, truncation=truncation, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any) -> dict[str, torch.Tensor]:
        batch_size = model_inputs["input_ids"].shape[0]
        generated = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # [batch * num_return_sequences, len] -> [batch, num_return_sequences, len]
        return {"output_ids": generated.reshape(batch_size, -1, generated.shape[-1])}

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], clean_up_tokenization_spaces: bool = False
    ) -> list[dict[str, str]]:
        return [
            {
                "translation_text": self.tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
            }
            for ids in model_outputs["output_ids"][0]
        ]


def register_pipelines() -> None:
    """Register the `seq2seq-translation` task with transformers' pipeline registry (idempotent)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TRANSLATION_TASK)
    if registered is not None and registered["impl"] is TranslationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TRANSLATION_TASK, pipeline_class=TranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )
