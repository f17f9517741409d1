"""The Hub and saved folders: push / pull, model cards, composite models that carry our code, and the checks of
checkpoint files.

    from hf_visiontx.hub import pull, push, save_composite, write_model_card
"""

from .cards import write_model_card
from .composite import save_composite
from .transfer import HubOperationError, pull, push, read_token_file

__all__ = ["HubOperationError", "pull", "push", "read_token_file", "save_composite", "write_model_card"]
