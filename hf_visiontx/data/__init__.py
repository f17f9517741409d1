"""Data: the embedded datasets (number words, handwritten digits), loading any other source with its checks, and
tokenizer training.

    from hf_visiontx.data import digits, number_translation, train_tokenizer
"""

from .images import DIGITS_CLASSES, digits, load_image_classification_data
from .numbers import number_translation
from .tokenizers import train_tokenizer
from .translation import load_translation_data

__all__ = [
    "DIGITS_CLASSES",
    "digits",
    "load_image_classification_data",
    "load_translation_data",
    "number_translation",
    "train_tokenizer",
]
