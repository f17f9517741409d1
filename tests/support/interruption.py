"""A training run cut short right after its first checkpoint, as a kill between two checkpoints leaves it."""

from collections.abc import Callable

import pytest
from transformers import Trainer


class Killed(BaseException):
    """Raised in place of the kill, right after the first checkpoint is written; a `BaseException`, as a kill is not
    an error that the command line would report."""


def run_killed_after_the_first_checkpoint(monkeypatch: pytest.MonkeyPatch, run: Callable[[], object]) -> None:
    """Call `run` (a training run) with `Trainer._save_checkpoint` ending the run once the first checkpoint is
    complete; the patch is undone afterwards."""
    save_checkpoint = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save_checkpoint(self, *args, **kwargs)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            run()
