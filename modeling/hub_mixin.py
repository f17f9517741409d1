"""What every hf_visiontx model adds to `PreTrainedModel` for the Hub: a model card and safetensors-only loading.

- `save_pretrained` writes README.md (see `card_text.py`) unless the directory already has one, and leaves only the
  weight files of the model it saved: an earlier save's `model.safetensors` beside new shards (or an index and
  shards beside a new single file, or a `pytorch_model.bin`) would be loaded or uploaded in place of the new weights.
- A save is all or nothing (`staged_directory`): the files are written into a staging folder inside the target
  and moved into place only once all of them are complete, so a full disk or a failing write leaves the earlier
  model as it was. While the files are moved, the directory has no `config.json`: a save killed in that instant
  leaves a folder that refuses to load, never a mixture of two models that loads.
- `push_to_hub` (and `save_pretrained(..., push_to_hub=True)`) uploads the card with the usage snippet pointing at
  the repository. A card the user wrote on the Hub is kept; ours or transformers' placeholder is regenerated,
  keeping the datasets and evaluation results that the earlier card recorded.
- `from_pretrained` reads safetensors only: unpickling a `pytorch_model.bin` can run arbitrary code, so a
  checkpoint that has nothing else is refused with an explanation. It refuses another model's checkpoint and
  weights whose layer counts differ from the configuration's (`checkpoint_checks.py`), and a local folder without
  config.json (transformers would load the weights into a default configuration).
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
CONFIG = "config.json"
# The staging folders of `staged_directory`, inside the directory being saved; one left by a killed save is removed
# by the next save there (`push` uploads only the directory's files, not its folders).
STAGING_PREFIX = ".hf_visiontx-saving-"


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
        if kwargs.get("config") is None:
            refuse_folder_without_config(pretrained_model_name_or_path, kwargs.get("subfolder", ""))
        if kwargs.get("key_mapping") is None:
            config_dict = checkpoint_config(pretrained_model_name_or_path, kwargs)
            check_checkpoint_model_type(cls, pretrained_model_name_or_path, config_dict)
            kwargs["key_mapping"] = cls.checkpoint_key_mapping(config_dict)
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

    @classmethod
    def checkpoint_key_mapping(cls, checkpoint_config: dict[str, Any] | None) -> dict[str, str] | None:
        """Renames (`key_mapping` of `from_pretrained`) under which this class reads a checkpoint of its model type
        saved by another head, given that checkpoint's config.json; None when the names already match."""
        return None

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, push_to_hub: bool = False, **kwargs: Any):
        """`PreTrainedModel.save_pretrained`, plus README.md (the model card) when the directory has none; all or
        nothing, and weight files of an earlier save into the directory are removed (see `staged_directory`)."""
        push_arguments = {key: kwargs.pop(key) for key in _PUSH_ARGUMENTS if key in kwargs} if push_to_hub else {}
        is_main_process = args[0] if args else kwargs.get("is_main_process", True)
        if not is_main_process:  # the main process writes the files
            return super().save_pretrained(save_directory, *args, **kwargs)
        with staged_directory(save_directory) as staging:
            super().save_pretrained(staging, *args, **kwargs)
            if not (Path(save_directory) / README).exists():
                card = build_model_card(self.config, num_parameters=self.num_parameters(), repo_id=str(save_directory))
                (staging / README).write_text(card, encoding="utf-8")
        if push_to_hub:
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


@contextmanager
def staged_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Save into `directory` all or nothing: yields an empty staging folder (inside `directory`, so on the same
    filesystem) to write the new files into; when the block ends without an error they replace their namesakes in
    `directory` (`commit_staged_files`), and the staging folder is removed either way.

    A full disk or any error while the files are written leaves `directory` as it was.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for abandoned in directory.glob(f"{STAGING_PREFIX}*"):  # left by a save that was killed
        shutil.rmtree(abandoned, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
    try:
        yield staging
        commit_staged_files(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def commit_staged_files(staging: Path, directory: Path) -> None:
    """Move every file written in `staging` to the same place in `directory`, replacing what is there, and remove
    the weight files (`WEIGHT_FILE_PATTERNS`) of `directory` that the staged save did not write.

    Only renames within one filesystem, so no disk space is needed. `config.json` goes first out of the way and
    last into place: the directory is a loadable model only before and after. If a move fails, the moves made so
    far are undone and the error is raised.
    """
    new_files = sorted(path.relative_to(staging) for path in staging.rglob("*") if path.is_file())
    stale_weights = sorted(
        {path.relative_to(directory) for pattern in WEIGHT_FILE_PATTERNS for path in directory.glob(pattern)}
        - set(new_files)
    )
    replaced = staging / f"{STAGING_PREFIX}replaced"  # where the files being replaced wait until the end
    config = Path(CONFIG)
    journal: list[tuple[Path, Path | None]] = []  # (path in `directory`, where its earlier file went or None)

    def set_aside(name: Path) -> None:
        if (directory / name).exists():
            (replaced / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(directory / name, replaced / name)
            journal.append((directory / name, replaced / name))

    def put_in_place(name: Path) -> None:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, directory / name)
        journal.append((directory / name, None))

    try:
        if config in new_files:
            set_aside(config)
        for name in new_files:
            if name != config:
                set_aside(name)
                put_in_place(name)
        for name in stale_weights:
            set_aside(name)
        if config in new_files:
            put_in_place(config)
    except BaseException:
        for target, backup in reversed(journal):
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(backup, target)
        raise


def refuse_folder_without_config(path: str | os.PathLike, subfolder: str = "") -> None:
    """Raise `OSError` when `path` is a local directory without config.json: transformers would build a default
    config and load the weights into it, while the folder is not a saved model, or one whose save was killed while
    its files were moved into place (see `commit_staged_files`)."""
    folder = Path(path) / subfolder
    if folder.is_dir() and not (folder / CONFIG).is_file():
        raise OSError(
            f"{folder} has no {CONFIG}: it is not a saved model, or a save into it was interrupted. Save the model "
            "into it again, or pass `config=` to load these weights with a configuration you choose."
        )


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


__all__ = [
    "STAGING_PREFIX",
    "WEIGHT_FILE_PATTERNS",
    "VtxHubMixin",
    "commit_staged_files",
    "recorded_card_facts",
    "refuse_folder_without_config",
    "staged_directory",
]
