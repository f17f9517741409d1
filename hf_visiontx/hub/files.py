"""Checks on the files of a saved model folder: damaged checkpoints are named before anything reads them, and
links that lead out of the folder are refused before anything is uploaded or copied."""

import os
from collections.abc import Iterable
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


def give_new_folder_mode(folder: Path) -> None:
    """Give `folder` the permissions `mkdir` would (0777 less the umask): a staging folder from `tempfile.mkdtemp`
    is private (0700), and the one that is renamed into the user's output must not stay so."""
    umask = os.umask(0)  # reading the umask means setting it; it is put back at once
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def check_links_stay_inside(folder: str | Path, paths: Iterable[str | Path], argument: str) -> None:
    """Refuse symbolic links among `paths` (entries of `folder` about to be uploaded or copied) that lead outside
    `folder`, so that no file from elsewhere on the machine leaves with it. A link to another file inside `folder`
    is fine: its content is used.

    `folder` itself may be a link (a `latest -> run-7` folder, say): what counts is where its files really are.

    Raises:
        ValueError: naming the `argument` (`directory`, `src_dir`), each link and the place it points to.
    """
    root = Path(folder).resolve()
    leaving = []
    for path in map(Path, paths):
        try:
            target = path.resolve()
        except (OSError, RuntimeError):  # a loop of links
            leaving.append(f"{path} -> (a loop of links)")
            continue
        if not target.is_relative_to(root):
            leaving.append(f"{path} -> {target}")
    if leaving:
        raise ValueError(
            f"`{argument}` {folder} holds symbolic links to places outside it: {'; '.join(leaving)}. Files from "
            "outside the folder are neither uploaded nor copied: replace each link with a copy of the file, or "
            "remove it."
        )
