"""Push a saved model directory to the Hub and pull one back: the API behind `hf-visiontx push` and `pull`.

Both talk to the endpoint in `HF_ENDPOINT` (the public Hub by default) through huggingface_hub and fail with a
`HubOperationError` that says what went wrong and what to do about it. The guarantees:

- a push is one commit (weights, config, code, tokenizer or image processor, card): it lands whole or not at all;
- a pull downloads into a staging folder next to the target and moves it into place only when complete;
- weights travel as safetensors only: pickled files are neither uploaded nor downloaded;
- the token is sent to the Hub and nowhere else: it is never printed, logged or written to a file.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..modeling.hub_mixin import README
from .cards import refreshed_card
from .files import verify_safetensors_files

try:  # huggingface_hub >= 2 talks HTTP through httpx2, 1.x through httpx
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import TransportError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Weight files that would have to be unpickled to load: refused in both directions."""


class HubOperationError(OSError):
    """A push or pull that failed, with the reason and the next step in the message (never the token)."""


def push(
    directory: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the model saved in `directory` to `repo_id` in one commit and return the new commit's id.

    The repository is created when missing (`private` applies then) and the branch `revision` too. The card
    (README.md) is refreshed with the usage snippet for `repo_id`, keeping recorded datasets and metrics, unless it
    was written by hand.

    Args:
        directory: a directory written by `save_pretrained` (plus the tokenizer or image processor).
        repo_id: "user/name" on the Hub.
        private: create the repository as private.
        revision: branch to commit to (default: main).
        token: a Hub token with write access; `HF_TOKEN` or the stored login when None.
        commit_message: the commit title.
    """
    directory = Path(directory)
    files, config = _files_to_push(directory)
    architecture = (config.get("architectures") or ["model"])[0]
    card = _card_for(directory, repo_id)
    operations = [CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path)) for path in files]
    operations.append(CommitOperationAdd(path_in_repo=README, path_or_fileobj=card.encode("utf-8")))
    api = HfApi(token=token)
    with _hub_errors(repo_id, revision, token, action="push to"):
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations=operations,
            revision=revision,
            commit_message=commit_message or f"Upload {architecture} with hf_visiontx",
        )
    return commit.oid


def pull(repo_id: str, directory: str | Path, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download `repo_id` (at `revision`) into the new directory `directory` and return it.

    Only safetensors weights and the small files next to them are fetched; a repository whose only weights are
    pickled is refused. `directory` must not exist yet (or be empty): nothing is ever overwritten, and on any
    failure nothing is left behind.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise HubOperationError(f"`directory` {directory} already exists and is not empty; pull into a new one.")
    api = HfApi(token=token)
    with _hub_errors(repo_id, revision, token, action="pull from"):
        names = [entry.rfilename for entry in api.model_info(repo_id, revision=revision, files_metadata=False).siblings]
    _refuse_pickled_only(repo_id, names)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        with _hub_errors(repo_id, revision, token, action="pull from"):
            api.snapshot_download(
                repo_id,
                revision=revision,
                local_dir=staging,
                ignore_patterns=[f"*{suffix}" for suffix in PICKLE_SUFFIXES],
            )
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        verify_safetensors_files(staging)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _files_to_push(directory: Path) -> tuple[list[Path], dict]:
    """The top-level files of a saved model and its parsed config.json, checked: intact safetensors weights, no
    pickles, the model code that auto_map names."""
    if not directory.is_dir():
        raise HubOperationError(f"`directory` {directory} does not exist or is not a directory.")
    files = sorted(
        path for path in directory.iterdir() if path.is_file() and not path.name.startswith(".") and path.name != README
    )
    names = [path.name for path in files]
    if "config.json" not in names:
        raise HubOperationError(f"`directory` {directory} has no config.json: save the model with save_pretrained.")
    pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise HubOperationError(
            f"`directory` {directory} holds pickled files {pickles}; hf_visiontx pushes safetensors weights only. "
            "Remove them (save_pretrained writes model.safetensors) and push again."
        )
    try:
        weights = verify_safetensors_files(directory)
    except ValueError as error:
        raise HubOperationError(str(error)) from error
    if not weights:
        raise HubOperationError(f"`directory` {directory} has no *.safetensors weights to push.")
    config = json.loads((directory / "config.json").read_text())
    auto_map = config.get("auto_map") or {}
    missing = sorted({f"{target.split('.')[0]}.py" for target in auto_map.values()} - set(names))
    if missing:
        raise HubOperationError(
            f"`directory` {directory} lacks the model code {missing} that config.json's auto_map names, so it would "
            "not load with trust_remote_code=True; save it again with save_pretrained after `import hf_visiontx`."
        )
    return files, config


def _card_for(directory: Path, repo_id: str) -> str:
    """The README.md to upload: a hand-written card unchanged, ours (or none) rebuilt for `repo_id`."""
    text = refreshed_card(directory, repo_id=repo_id)
    return (directory / README).read_text(encoding="utf-8") if text is None else text


def _refuse_pickled_only(repo_id: str, names: list[str]) -> None:
    if any(name.endswith(".safetensors") for name in names):
        return
    pickles = [name for name in names if name.endswith(PICKLE_SUFFIXES)]
    detail = f"only pickled weights ({', '.join(pickles)})" if pickles else "no weights"
    raise HubOperationError(
        f"{repo_id} has {detail}. hf_visiontx reads safetensors only, because unpickling a file can run arbitrary "
        "code. Ask the owner for model.safetensors, or, if you trust the files, load them with "
        "torch.load(path, weights_only=True) and save_pretrained a safetensors copy."
    )


@contextmanager
def _hub_errors(repo_id: str, revision: str | None, token: str | None, action: str) -> Iterator[None]:
    """Turn huggingface_hub and network failures into a `HubOperationError` with the next step in it."""
    endpoint = constants.ENDPOINT
    try:
        yield
    except RevisionNotFoundError as error:
        raise _error(
            f"Revision {revision!r} was not found in {repo_id}: use a branch, a tag or a full commit "
            "id that exists there.",
            token,
        ) from error
    except RepositoryNotFoundError as error:
        hint = (
            "check the name, or pass a token (--token or HF_TOKEN) if the repository is private"
            if token is None and not os.environ.get("HF_TOKEN")
            else "check the name, and that this token may read it"
        )
        raise _error(
            f"Repository {repo_id} was not found on {endpoint} (or it is private and not visible "
            f"without a token): {hint}.",
            token,
        ) from error
    except EntryNotFoundError as error:
        if isinstance(error, LocalEntryNotFoundError):  # no connection while downloading
            raise _error(
                f"Cannot reach the Hub at {endpoint} to {action} {repo_id}: check the network or HF_ENDPOINT.", token
            ) from error
        raise _error(f"A file is missing in {repo_id}: {error}", token) from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise _error(
                f"The Hub refused the token ({status}) when trying to {action} {repo_id}: pass a valid "
                "token with write access (--token or HF_TOKEN).",
                token,
            ) from error
        if status is not None and status >= 500:
            outcome = (
                "no commit was made, so the repository is unchanged"
                if action.startswith("push")
                else "nothing was written"
            )
            raise _error(
                f"The Hub at {endpoint} failed ({status}) while trying to {action} {repo_id}; {outcome}. "
                "Run the same command again.",
                token,
            ) from error
        raise _error(f"The Hub answered {status} when trying to {action} {repo_id}: {error}", token) from error
    except TransportError as error:
        raise _error(
            f"Cannot reach the Hub at {endpoint} to {action} {repo_id} ({error}): check the network or HF_ENDPOINT.",
            token,
        ) from error


def _error(message: str, token: str | None) -> HubOperationError:
    """A HubOperationError whose message cannot contain the token, whatever the server echoed."""
    for secret in (token, os.environ.get("HF_TOKEN")):
        if secret:
            message = message.replace(secret, "***")
    return HubOperationError(message)


__all__ = ["PICKLE_SUFFIXES", "HubOperationError", "pull", "push"]
