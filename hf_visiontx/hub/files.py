"""Checks on saved checkpoint files, so that a damaged file is named before anything reads it."""

from pathlib import Path

from safetensors import SafetensorError, safe_open


def verify_safetensors_files(directory: str | Path) -> list[Path]:
    """Open the header of every `*.safetensors` file in `directory` and return the files.

    safetensors checks that the header parses and that the file is exactly as long as the tensors it declares, so
    a truncated or corrupted file is caught here.

    Raises:
        ValueError: naming the first damaged file and what is wrong with it.
    """
    files = sorted(Path(directory).glob("*.safetensors"))
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as weights:
                weights.keys()
        except SafetensorError as error:
            raise ValueError(f"{path} is truncated or corrupted and cannot be loaded ({error}).") from error
    return files
