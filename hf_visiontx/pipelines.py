"""Pipeline tasks that transformers 5 removed: `seq2seq-translation` and `image-captioning`.

transformers 5 removed its `translation` and `text2text-generation` pipelines (and `text-generation` silently
returns wrong text for encoder-decoder models); it also refuses the old task names, so importing hf_visiontx
registers this one under a new name:

    translator = pipeline("seq2seq-translation", model="path/to/model")
    translator(["siebenundachtzig", "dreihundertzwölf"], batch_size=16, num_beams=4)
    # [{"translation_text": "eighty-seven"}, {"translation_text": "three hundred and twelve"}]

It also removed `image-to-text`, and `pipeline("image-to-text")` now builds its chat-model `image-text-to-text`
pipeline instead (the redirect happens before the task registry is read, so a pipeline registered as
"image-to-text" is never reached). Image captioners (`VisionEncoderDecoderModel`, for example the one
`hf-visiontx train captioner` saves) get this one:

    captioner = pipeline("image-captioning", model="path/to/captioner")
    captioner(["digits.png", pil_image], num_beams=4)
    # [{"generated_text": "three hundred twelve"}, {"generated_text": "eighty-seven"}]
"""

from collections.abc import Iterable
from typing import Any

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoModelForSeq2SeqLM, Pipeline
from transformers.image_utils import load_image
from transformers.pipelines import PIPELINE_REGISTRY

TRANSLATION_TASK = "seq2seq-translation"
CAPTIONING_TASK = "image-captioning"


def checked_texts(texts: str | Iterable[str]) -> list[str]:
    """`texts` (a string or a sequence of them) as a list of strings to translate.

    Raises:
        TypeError: an item is not a string, or there is none.
        ValueError: a text is empty or only whitespace: there would be nothing to translate, and a model given only
            the end-of-sequence token still generates something (naming the text's index).
    """
    texts = [texts] if isinstance(texts, str) else list(texts)
    bad = next((text for text in texts if not isinstance(text, str)), None)
    if bad is not None or not texts:
        given = "an empty sequence" if not texts else f"a {type(bad).__name__} ({bad!r})"
        raise TypeError(f"`texts` must be a string or a non-empty sequence of strings, got {given}.")
    blank = next((index for index, text in enumerate(texts) if not text.strip()), None)
    if blank is not None:
        raise ValueError(f"`texts`[{blank}] is {texts[blank]!r}: there is nothing to translate.")
    return texts


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
        results = super().__call__(checked_texts(texts), **kwargs)
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


class ImageCaptioningPipeline(Pipeline):
    """Caption images with an image-to-text encoder-decoder (`VisionEncoderDecoderModel`) that has an image processor
    and a tokenizer.

    Call it with one image or a list of them (PIL images, or paths / URLs that `transformers.image_utils.load_image`
    opens); it returns one `{"generated_text": ...}` dict per image (a list of them per image with
    `num_return_sequences > 1`). Generation parameters (`num_beams`, `max_new_tokens`, `do_sample`, ...) can be given
    when the pipeline is built or on each call.
    """

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.model.config.is_encoder_decoder or self.model.main_input_name != "pixel_values":
            raise ValueError(
                f"The image-captioning pipeline needs an image encoder-decoder model (pixel_values in, text out); "
                f"{type(self.model).__name__} is not one."
            )
        for name, component in (("image_processor", self.image_processor), ("tokenizer", self.tokenizer)):
            if component is None:
                raise ValueError(
                    f"The image-captioning pipeline needs a {name}: pass `{name}=` or save one with the model."
                )

    def _sanitize_parameters(self, timeout: float | None = None, **generate_kwargs: Any):
        preprocess_params = {} if timeout is None else {"timeout": timeout}
        return preprocess_params, generate_kwargs, {}

    def __call__(
        self, images: str | Image.Image | Iterable[str | Image.Image], **kwargs: Any
    ) -> list[dict[str, str]] | list[list[dict[str, str]]]:
        """Caption `images`: one image (a PIL image, a path or a URL) or a sequence of them."""
        images = [images] if isinstance(images, (str, Image.Image)) else list(images)
        bad = next((image for image in images if not isinstance(image, (str, Image.Image))), None)
        if bad is not None or not images:
            given = "an empty sequence" if not images else f"a {type(bad).__name__} ({bad!r})"
            raise TypeError(
                f"`images` must be an image (PIL image, path or URL) or a non-empty sequence of them, got {given}."
            )
        results = super().__call__(images, **kwargs)
        return [result[0] if len(result) == 1 else result for result in results]

    def preprocess(self, image: str | Image.Image, timeout: float | None = None) -> dict[str, torch.Tensor]:
        pixel_values = self.image_processor(images=load_image(image, timeout=timeout), return_tensors="pt")
        return {"pixel_values": pixel_values["pixel_values"].to(self.dtype)}

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any) -> dict[str, torch.Tensor]:
        batch_size = model_inputs["pixel_values"].shape[0]
        generated = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # [batch * num_return_sequences, len] -> [batch, num_return_sequences, len]
        return {"output_ids": generated.reshape(batch_size, -1, generated.shape[-1])}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> list[dict[str, str]]:
        return [
            {"generated_text": self.tokenizer.decode(ids, skip_special_tokens=True).strip()}
            for ids in model_outputs["output_ids"][0]
        ]


# task -> (pipeline class, Auto class of its models, input type)
PIPELINES = {
    TRANSLATION_TASK: (TranslationPipeline, AutoModelForSeq2SeqLM, "text"),
    CAPTIONING_TASK: (ImageCaptioningPipeline, AutoModelForImageTextToText, "image"),
}


def register_pipelines() -> None:
    """Register the `seq2seq-translation` and `image-captioning` tasks with transformers' pipeline registry
    (idempotent)."""
    for task, (pipeline_class, auto_class, input_type) in PIPELINES.items():
        registered = PIPELINE_REGISTRY.supported_tasks.get(task)
        if registered is None or registered["impl"] is not pipeline_class:
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=auto_class, type=input_type
            )
