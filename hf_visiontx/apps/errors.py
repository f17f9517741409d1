"""How the command line reports a failure: one line that says what went wrong, never a traceback (unless asked for
with `HF_VISIONTX_DEBUG=1`)."""

import os
import pickle

from PIL import Image
from safetensors import SafetensorError

DEBUG_VARIABLE = "HF_VISIONTX_DEBUG"
"""Set to 1 (or any value but 0) to let a failing command raise with its traceback instead of printing one line."""

# The errors hf_visiontx's own checks raise, with messages that name the argument: printed as they are.
CHECKED_ERRORS = (ValueError, OSError, ImportError)

# Errors of the libraries underneath whose message says what failed once their type is named: damaged weights, a
# pickle that does not load safely, an image larger than Pillow's decompression-bomb limit, memory exhausted.
LIBRARY_ERRORS = (SafetensorError, pickle.UnpicklingError, Image.DecompressionBombError, MemoryError)


def debugging() -> bool:
    """Whether `HF_VISIONTX_DEBUG` asks for tracebacks."""
    return os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0")


def error_line(error: Exception) -> str:
    """The one line that reports `error`: its message (its lines joined), after its type unless it is one of ours,
    and for an error of no anticipated kind, how to see the traceback."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if isinstance(error, MemoryError):
        message = f"out of memory {message}".strip()
    if isinstance(error, CHECKED_ERRORS) and message:
        return message
    described = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if isinstance(error, (*CHECKED_ERRORS, *LIBRARY_ERRORS)):
        return described
    return f"{described} (run with {DEBUG_VARIABLE}=1 for the traceback)"
