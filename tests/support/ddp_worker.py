"""Run by test_training_processes.py under `torchrun` or `accelerate launch` (2 CPU processes, gloo).

It calls the library's training entry point unchanged, with one callback that logs the loss of every step and
saves the weights this rank holds after the last optimiser step (before the best checkpoint is reloaded).
Usage: ddp_worker.py OUT_DIR FROM_MODEL IMAGE_FOLDER BATCH_SIZE
"""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file
from transformers import TrainerCallback

from hf_visiontx.training import TrainOptions, train


class RecordEveryRank(TrainerCallback):
    """Log every step; at the last step save this rank's weights and, on rank 0 too, the loss of each step."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir

    def on_step_end(self, args, state, control, **kwargs):
        control.should_log = True

    def on_train_end(self, args, state, control, **kwargs):
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        (self.out_dir / f"losses-rank{args.process_index}.json").write_text(json.dumps(losses))

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == state.max_steps:  # the last step: before the best checkpoint is reloaded
            weights = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
            save_file(weights, self.out_dir / f"weights-rank{args.process_index}.safetensors")


def main() -> None:
    out_dir, from_model, image_folder, batch_size = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    options = TrainOptions(
        "vit",
        output_dir=out_dir / "run",
        dataset=[image_folder],
        from_model=from_model,
        epochs=1,
        batch_size=batch_size,
        learning_rate=1e-3,
        progress=False,
    )
    train(options, callbacks=[RecordEveryRank(out_dir)])


if __name__ == "__main__":
    main()
