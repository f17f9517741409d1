"""What every hf_visiontx model adds to `PreTrainedModel` for the Hub: a model card and safetensors-only loading.

- `save_pretrained` writes README.md (see `card_text.py`) unless the directory already has one, and leaves only the
  weight files of the model it saved: an earlier save's `model.safetensors` beside new shards (or an index and
  shards beside a new single file, or a `pytorch_model.bin`) would be loaded or uploaded in place of the new weights.
- `push_to_hub` (and `save_pretrained(..., push_to_hub=True)`) uploads the card with the usage snippet pointing at
  the repository. A card the user wrote on the Hub is kept; ours or transformers' placeholder is regenerated,
  keeping the datasets and evaluation results that the earlier card recorded.
- `from_pretrained` reads safetensors only: unpickling a `pytorch_model.bin` can run arbitrary code, so a
  checkpoint that has nothing else is refused with an explanation. It refuses another model's checkpoint and
  weights whose layer counts differ from the configuration's (`checkpoint_checks.py`).
"""

import os
import tempfile
from pathlib import Path
from typing import Any

from transformers.utils.hub import create_and_tag_model_card, hf_api

from .card_text import build_model_card, is_generated_card
from .checkpoint_checks import check_checkpoint_model_type, check_layer_counts, checkpoint_config

README = "README.md"
# The weight files a save writes, in one file or in shards, and the pickled ones of older saves.
WEIGHT_FILE_PATTERNS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "pytorch_model*.bin",
    "pytorch_model.bin.index.json",
)


class VtxHubMixin:
    """Mixed into each family's `PreTrainedModel` base class, before `PreTrainedModel`."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """`PreTrainedModel.from_pretrained`, restricted to safetensors weights, refusing a checkpoint of another
        `model_type` (unless a `key_mapping` renames its weights) and weights whose layer counts differ from the
        configuration's (see `checkpoint_checks.py`)."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("`use_safetensors=False` is not supported: hf_visiontx models load safetensors only.")
        kwargs["use_safetensors"] = True
        if kwargs.get("key_mapping") is None:
            config_dict = checkpoint_config(pretrained_model_name_or_path, kwargs)
            check_checkpoint_model_type(cls, pretrained_model_name_or_path, config_dict)
        wants_loading_info = kwargs.pop("output_loading_info", False)
        try:
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except OSError as error:
            if "model.safetensors" not in str(error):
                raise
            raise OSError(
                f"{pretrained_model_name_or_path} has no safetensors weights (model.safetensors or "
                "model.safetensors.index.json). hf_visiontx does not unpickle pytorch_model.bin or other pickled "
                "checkpoints, because loading a pickle can run arbitrary code. If you trust the file, load it with "
                "`torch.load(path, weights_only=True)`, pass the state dict to `model.load_state_dict`, and "
                f"`save_pretrained` writes safetensors. ({error})"
            ) from error
        check_layer_counts(model, pretrained_model_name_or_path, loading_info)
        return (model, loading_info) if wants_loading_info else model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, push_to_hub: bool = False, **kwargs: Any):
        """`PreTrainedModel.save_pretrained`, plus README.md (the model card) when the directory has none; weight
        files of an earlier save into the directory that this save did not rewrite are removed."""
        push_arguments = {key: kwargs.pop(key) for key in _PUSH_ARGUMENTS if key in kwargs} if push_to_hub else {}
        earlier_weights = weight_file_versions(save_directory)
        super().save_pretrained(save_directory, *args, **kwargs)
        is_main_process = args[0] if args else kwargs.get("is_main_process", True)
        if is_main_process:
            saved_weights = weight_file_versions(save_directory)
            for path, version in earlier_weights.items():  # what this save did not (re)write is an earlier model's
                if saved_weights.get(path) == version:
                    path.unlink()
        readme = Path(save_directory) / README
        if is_main_process and not readme.exists():
            card = build_model_card(self.config, num_parameters=self.num_parameters(), repo_id=str(save_directory))
            readme.write_text(card, encoding="utf-8")
        if push_to_hub and is_main_process:
            repo_id = push_arguments.pop("repo_id", None) or Path(save_directory).name
            return self._upload_saved_model(save_directory, repo_id, **push_arguments)
        return None

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ):
        """`PreTrainedModel.push_to_hub`, uploading this model's card (one commit: weights, config, code, card)."""
        with tempfile.TemporaryDirectory() as work_dir:
            self.save_pretrained(work_dir, max_shard_size=max_shard_size)
            return self._upload_saved_model(
                work_dir,
                repo_id,
                commit_message=commit_message,
                commit_description=commit_description,
                private=private,
                token=token,
                revision=revision,
                create_pr=create_pr,
                tags=tags,
            )

    def _upload_saved_model(
        self,
        directory: str | os.PathLike,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        tags: list[str] | None = None,
    ):
        repo_id = hf_api().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        remote_card = create_and_tag_model_card(repo_id, tags, token=token)  # the repo's card or a placeholder
        readme = Path(directory) / README
        if is_generated_card(remote_card.content):
            card = build_model_card(
                self.config,
                num_parameters=self.num_parameters(),
                repo_id=repo_id,
                tags=tags or (),
                **recorded_card_facts(remote_card.data),
            )
            readme.write_text(card, encoding="utf-8")
        else:  # a card written by a person: keep it
            remote_card.save(readme)
        return self._upload_modified_files(
            directory,
            repo_id,
            files_timestamps={},
            commit_message=commit_message or "Upload model",
            commit_description=commit_description,
            token=token,
            create_pr=create_pr,
            revision=revision,
        )


_PUSH_ARGUMENTS = (
    "repo_id",
    "commit_message",
    "commit_description",
    "private",
    "token",
    "revision",
    "create_pr",
    "tags",
)


def weight_file_versions(directory: str | os.PathLike) -> dict[Path, tuple[int, int]]:
    """Each weight file in `directory` (`WEIGHT_FILE_PATTERNS`) with its inode and modification time in ns: a file
    that a save writes or replaces gets a new pair."""
    versions = {}
    for pattern in WEIGHT_FILE_PATTERNS:
        for path in Path(directory).glob(pattern):
            status = path.stat()
            versions[path] = (status.st_ino, status.st_mtime_ns)
    return versions


def recorded_card_facts(card_data: Any) -> dict[str, Any]:
    """Datasets, evaluation results and base model that an earlier card recorded, as `build_model_card` kwargs."""
    results = getattr(card_data, "eval_results", None) or []
    base_model = getattr(card_data, "base_model", None)
    datasets = list(getattr(card_data, "datasets", None) or []) or [result.dataset_name for result in results[:1]]
    return {
        "datasets": datasets,
        "metrics": {result.metric_type: result.metric_value for result in results},
        "base_model": base_model[0] if isinstance(base_model, list) and base_model else base_model,
    }


__all__ = ["WEIGHT_FILE_PATTERNS", "VtxHubMixin", "recorded_card_facts", "weight_file_versions"]
