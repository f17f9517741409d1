"""Data: the embedded datasets (number words, counting in words, handwritten digits, digit strings captioned in
words), loading any other source with its checks, held-out counting prompts, and tokenizer training.

    from hf_visiontx.data import digit_strings, digits, number_translation, train_tokenizer
"""

from .captions import digit_strings, load_caption_data
from .images import DIGITS_CLASSES, digits, load_image_classification_data
from .language_modeling import counting_prompts, load_text_data
from .numbers import counting_text, number_in_words, number_translation
from .tokenizers import train_tokenizer
from .translation import load_translation_data

__all__ = [
    "DIGITS_CLASSES",
    "counting_prompts",
    "counting_text",
    "digit_strings",
    "digits",
    "load_caption_data",
    "load_image_classification_data",
    "load_text_data",
    "load_translation_data",
    "number_in_words",
    "number_translation",
    "train_tokenizer",
]
