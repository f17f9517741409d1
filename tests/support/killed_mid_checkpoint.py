"""Run `hf-visiontx ARGS...` in a process that SIGKILLs itself while it writes its second checkpoint.

The kill comes after the checkpoint's model weights and before its optimiser state, RNG states and
trainer_state.json: what a kill at that moment leaves on disk. Usage: killed_mid_checkpoint.py ARGS...
"""

import os
import signal
import sys

from transformers import Trainer

from hf_visiontx.apps.cli import main

save_optimizer_and_scheduler = Trainer._save_optimizer_and_scheduler
checkpoints_begun = []


def save_or_die(self, output_dir):
    checkpoints_begun.append(output_dir)
    if len(checkpoints_begun) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    save_optimizer_and_scheduler(self, output_dir)


if __name__ == "__main__":
    Trainer._save_optimizer_and_scheduler = save_or_die
    sys.exit(main(sys.argv[1:]))
