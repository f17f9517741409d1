"""Where a model argument points: a saved directory or a Hub repository id, told apart before anything is loaded, so
that a mistyped path is reported as a missing directory rather than as a malformed repo id, and damaged or pickled
weights in a directory are named before a loader trips over them."""

import os
from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .files import verify_safetensors_files
from .transfer import PICKLE_SUFFIXES


def is_repo_id(text: str) -> bool:
    """Whether `text` is a valid Hub repository id ("name" or "namespace/name")."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def check_model_location(label: str, model: str | os.PathLike) -> None:
    """Raise an error naming the argument (`label`, for example "`model`" or "`from_model` (--from)") when `model`
    is meant as a local directory that cannot hold a saved model; a Hub repo id passes.

    `model` is meant as a directory when it exists, is a `Path`, starts with ".", "~" or "/", or is not a valid
    Hub repo id. A directory must hold safetensors weights, each readable (a truncated or corrupted file is named).

    Raises:
        FileNotFoundError: there is no such directory.
        NotADirectoryError: it is a file.
        ValueError: the directory has no safetensors weights, or a damaged weight file.
    """
    text = os.fspath(model)
    path = Path(text)
    if path.is_dir():
        _check_weights(label, path)
        return
    if path.exists():
        raise NotADirectoryError(f"{label} {text} is a file; a saved model is a directory (config.json and weights).")
    if isinstance(model, Path) or text.startswith((".", "~", os.sep)) or not is_repo_id(text):
        hub = "" if is_repo_id(text) else f", and {text!r} is not a valid Hub repo id (name or namespace/name)"
        raise FileNotFoundError(f"{label} {text}: no such directory{hub}.")


def _check_weights(label: str, directory: Path) -> None:
    """A `ValueError` naming `label` unless the saved model in `directory` (one with config.json) has readable
    safetensors weights; a pickled checkpoint is named, as what hf_visiontx does not load."""
    try:
        weights = verify_safetensors_files(directory)
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error
    if not weights and (directory / "config.json").is_file():
        pickled = sorted(path.name for path in directory.iterdir() if path.name.endswith(PICKLE_SUFFIXES))
        found = f", only {', '.join(pickled)}, which hf_visiontx does not unpickle" if pickled else ""
        raise ValueError(
            f"{label} {directory} holds no safetensors weights (model.safetensors or model.safetensors.index.json)"
            f"{found}."
        )
