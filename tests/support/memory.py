"""What a forward pass leaves in memory for the backward pass, counted exactly (no process-wide measurement)."""

from collections.abc import Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from hf_visiontx.modeling.feed_forward import VtxMLP


class _NewStorages(TorchDispatchMode):
    """Records every new storage an operator returns while the mode is on (not a view of or an in-place write to one
    of its inputs: a parameter's transpose is no new memory), by weak reference and size."""

    def __init__(self):
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0  # the most bytes of them alive at once, after any operator

    def alive(self) -> int:
        """The bytes of the recorded storages still alive."""
        return sum(size for reference, size in self.storages.values() if not reference.expired())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs = {
            leaf.untyped_storage()._cdata for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)
        }
        for tensor in tree_leaves(result):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage()._cdata not in inputs:
                storage = tensor.untyped_storage()
                known = self.storages.get(storage._cdata)
                if known is None or known[0].expired():  # an address reused after a free is a new storage
                    self.storages[storage._cdata] = (StorageWeakRef(storage), storage.nbytes())
        self.peak = max(self.peak, self.alive())
        return result


def bytes_held_after(run: Callable[[], object]) -> tuple[object, int]:
    """`run()`'s result and the bytes of the tensors made during the call that are still alive after it: with
    autograd on and the result kept, what the forward pass saved for the backward pass (and the result itself)."""
    mode = _NewStorages()
    with mode:
        result = run()
    return result, mode.alive()


def peak_bytes_during(run: Callable[[], object]) -> int:
    """The most bytes of tensors made during `run()` alive at once (after any operator), for example in a backward
    pass."""
    mode = _NewStorages()
    with mode:
        run()
    return mode.peak


def mlp_inner_bytes(model: torch.nn.Module, run: Callable[[], object]) -> int:
    """The bytes of the inner activations [rows, intermediate_size] that the MLPs of `model` make during `run()`."""
    sizes = []
    hooks = [
        module.fc1.register_forward_hook(lambda layer, inputs, output: sizes.append(output.nbytes))
        for module in model.modules()
        if isinstance(module, VtxMLP)
    ]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return sum(sizes)
