"""The output directory of a training run: one run at a time, and the checkpoint a run continues from.

- `exclusive_output_dir` holds an OS lock on `output_dir/.hf_visiontx-train.lock` for the whole run: a second run
  into the same directory is refused while the first one lives. The OS releases the lock when the process ends,
  however it ends, so a killed run never leaves the directory locked.
- `checkpoint_to_resume` picks the newest *complete* checkpoint. Trainer writes a checkpoint folder in place and its
  `trainer_state.json` last; a folder without a readable one is what a run killed while writing it leaves, so it is
  skipped, said so, and removed (its step is trained again).
"""

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..hub.files import verify_safetensors_files
from .options import TrainOptions

LOCK_FILE = ".hf_visiontx-train.lock"
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint folder by Trainer._save_checkpoint
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def is_main_launch_process() -> bool:
    """Whether this is the process that writes: always in a single-process run, rank 0 under torchrun or
    accelerate (which set `RANK`)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def exclusive_output_dir(options: TrainOptions) -> Iterator[None]:
    """Hold the lock on `options.output_dir` while the block runs (in the main process of a multi-process run).

    Raises:
        ValueError: another run holds the lock, naming its process id.
    """
    if not is_main_launch_process():
        yield
        return
    options.output_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(options.output_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(descriptor):
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            raise ValueError(
                f"`output_dir` (--output-dir) {options.output_dir} is in use by another `train` run (process "
                f"{holder}); wait for it to end, or choose another --output-dir."
            )
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock; the file stays, so that no two runs ever lock two different files


def _try_lock(descriptor: int) -> bool:
    """Take an exclusive lock on the open file without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def checkpoint_folders(checkpoints_dir: Path) -> tuple[list[Path], list[Path]]:
    """The checkpoint folders in `checkpoints_dir`, complete and incomplete, each in step order."""
    folders = [path for path in checkpoints_dir.iterdir() if _CHECKPOINT_NAME.match(path.name) and path.is_dir()]
    folders.sort(key=lambda path: int(_CHECKPOINT_NAME.match(path.name).group(1)))
    complete = [folder for folder in folders if _is_complete(folder)]
    return complete, [folder for folder in folders if folder not in complete]


def _is_complete(folder: Path) -> bool:
    """Whether Trainer finished writing `folder`: its last file, trainer_state.json, is there and parses."""
    try:
        return "global_step" in json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def checkpoint_to_resume(options: TrainOptions) -> str | None:
    """The checkpoint a run continues from: the newest complete one with `resume`, None for a fresh run.

    Incomplete checkpoint folders (a run killed while writing one) are skipped with a message and removed, so that
    neither this run nor a later one reads them.

    Raises:
        ValueError: `resume` without a complete checkpoint, or with one whose weights are truncated or corrupted
            (naming the file); or a fresh run into a directory that holds a checkpoint (it would mix two runs'
            checkpoints).
    """
    checkpoints = options.checkpoints_dir
    complete, incomplete = checkpoint_folders(checkpoints) if checkpoints.is_dir() else ([], [])
    last = complete[-1] if complete else None
    if options.resume and last is None:
        skipped = f" ({', '.join(map(str, incomplete))} incomplete)" if incomplete else ""
        raise ValueError(
            f"`resume` (--resume): there is no complete checkpoint to resume from in {checkpoints}{skipped}; run "
            "again without --resume to start afresh."
        )
    if not options.resume and last is not None:
        raise ValueError(
            f"`output_dir` (--output-dir) {options.output_dir} already holds the checkpoint {last}; pass --resume "
            "to continue that run, or choose a new --output-dir."
        )
    for folder in incomplete:
        print(
            f"skipping the incomplete checkpoint {folder}: it has no readable {TRAINER_STATE} (the run stopped while "
            "writing it); removing it",
            file=sys.stderr,
        )
        if is_main_launch_process():
            shutil.rmtree(folder, ignore_errors=True)
    if last is None:
        return None
    verify_safetensors_files(last)
    return str(last)


__all__ = ["LOCK_FILE", "checkpoint_folders", "checkpoint_to_resume", "exclusive_output_dir", "is_main_launch_process"]
