"""FSDP2 training of each family on CPU, run by test_fsdp.py under `torchrun --nproc_per_node 2` (gloo).

Every module whose class is named in the model's `_no_split_modules` becomes its own FSDP unit (the auto-wrap
policy that accelerate's FSDP plugin applies), then the root. Each rank trains on its half of a fixed global batch
with plain SGD; rank 0 saves the gathered full weights and the global mean loss of each step.
"""

import json
import sys

import torch

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
)
from support.swin_tester import tiny_swin_config
from support.transformer_tester import VOCAB_SIZE, tiny_transformer_config
from support.vit_tester import pixel_batch, tiny_vit_config

GLOBAL_BATCH, STEPS, LEARNING_RATE = 4, 3, 0.5
NO_DROPOUT = {
    "vit": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    "swin": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0),
    "transformer": dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0),
}


def build_model(family: str) -> torch.nn.Module:
    """The family's tiny model, seeded, without dropout (so that sharded and unsharded runs can agree)."""
    torch.manual_seed(0)
    if family == "vit":
        return VtxViTForImageClassification(tiny_vit_config(**NO_DROPOUT[family]))
    if family == "swin":
        return VtxSwinForImageClassification(tiny_swin_config(**NO_DROPOUT[family]))
    return VtxTransformerForConditionalGeneration(tiny_transformer_config(**NO_DROPOUT[family]))


def global_batch(family: str) -> dict[str, torch.Tensor]:
    """A fixed batch; text rows have no padding, so every rank's mean loss counts the same number of tokens."""
    generator = torch.Generator().manual_seed(1)
    if family == "transformer":
        return {
            "input_ids": torch.randint(3, VOCAB_SIZE, (GLOBAL_BATCH, 7), generator=generator),
            "labels": torch.randint(3, VOCAB_SIZE, (GLOBAL_BATCH, 5), generator=generator),
        }
    return {
        "pixel_values": pixel_batch(GLOBAL_BATCH, seed=1),
        "labels": torch.randint(0, 5, (GLOBAL_BATCH,), generator=generator),
    }


def train(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[float]:
    """STEPS SGD steps on `batch`; the loss of each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses = []
    for _ in range(STEPS):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.detach())
    return losses


def main(out_dir: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule, fully_shard

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    report = {}
    for family in NO_DROPOUT:
        model = build_model(family)
        units = [module for module in model.modules() if type(module).__name__ in model._no_split_modules]
        unit_classes = sorted({type(module).__name__ for module in units})  # fully_shard renames them FSDP...
        for module in units:
            fully_shard(module)
        fully_shard(model)
        share = GLOBAL_BATCH // world
        batch = {name: tensor[rank * share : (rank + 1) * share] for name, tensor in global_batch(family).items()}
        losses = torch.stack(train(model, batch))
        dist.all_reduce(losses, op=dist.ReduceOp.AVG)
        sharded = all(isinstance(module, FSDPModule) for module in units)
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank == 0:
            save_file({name: tensor.contiguous() for name, tensor in state.items()}, f"{out_dir}/{family}.safetensors")
            report[family] = {"losses": losses.tolist(), "units": unit_classes, "sharded": sharded, "world": world}
    if rank == 0:
        with open(f"{out_dir}/report.json", "w") as file:
            json.dump(report, file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
