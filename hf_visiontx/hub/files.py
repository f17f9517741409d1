"""The files of a saved model folder: damaged checkpoints are named before anything reads them, links that lead out
of the folder are refused before anything is uploaded or copied, and a new folder is written all or nothing."""

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def new_folder(out_dir: Path) -> Iterator[Path]:
    """Write the new folder `out_dir` all or nothing (the output of `convert`, `pull` and `export`).

    Yields a staging folder next to `out_dir` (so on the same disk) to write into. When the block ends without an
    error, the staging folder gets the permissions `mkdir` would give it (0777 less the umask, not `mkdtemp`'s
    private 0700) and is renamed to `out_dir`, which must not exist or be empty (callers check this first, in their
    own words). The staging folder is removed in every case.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield staging
        umask = os.umask(0)  # reading the umask means setting it; it is put back at once
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        if out_dir.exists():
            out_dir.rmdir()  # empty: an error if not
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
