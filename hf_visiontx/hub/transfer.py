"""Push a saved model directory to the Hub and pull one back: the API behind `hf-visiontx push` and `pull`.

Both talk to the endpoint in `HF_ENDPOINT` (the public Hub by default) through huggingface_hub and fail with a
`HubOperationError` that says what went wrong and what to do about it. The guarantees:

- a push is one commit (weights, config, code, tokenizer or image processor, card): it lands whole or not at all;
- a pull downloads into a staging folder next to the target and moves it into place only when complete;
- weights travel as safetensors only: files that loading may unpickle are neither uploaded nor downloaded;
- nothing from outside the pushed folder is uploaded: a link that leads out of it is refused;
- no request waits forever: each has a timeout, a step that fails for a passing reason is tried again a few times
  (`network.py`), and the last failure names the step, the repository and the number of tries;
- the token is sent to the Hub and nowhere else: it is never printed, logged or written to a file.
"""

import functools
import http
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from ..modeling.hub_mixin import README
from .cards import refreshed_card
from .files import check_links_stay_inside, new_folder, verify_safetensors_files
from .network import (
    TIMEOUT_ENV,
    TRIES_ENV,
    HubGaveUp,
    HubLimits,
    bounded_requests,
    httpx,
    hub_limits,
    status_of,
    with_tries,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
"""Files that loading may unpickle (torch checkpoints, pickles, joblib dumps, NumPy arrays of objects): neither
uploaded nor downloaded."""

T = TypeVar("T")
logger = logging.getLogger(__name__)


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
    timeout: float | None = None,
    tries: int | None = None,
) -> str:
    """Upload the model saved in `directory` to `repo_id` in one commit and return the new commit's id.

    The repository is created when missing (`private` applies then) and the branch `revision` too. The card
    (README.md) is refreshed with the usage snippet for `repo_id`, keeping recorded datasets and metrics, unless it
    was written by hand. Links to files outside `directory` are refused; a link to a file inside it uploads that
    file's content.

    Args:
        directory: a directory written by `save_pretrained` (plus the tokenizer or image processor).
        repo_id: "user/name" on the Hub.
        private: create the repository as private.
        revision: branch to commit to (default: main).
        token: a Hub token with write access; `HF_TOKEN` or the stored login when None.
        commit_message: the commit title.
        timeout: seconds each request may wait for the Hub (default: `HF_VISIONTX_HUB_TIMEOUT`, else 30).
        tries: how often a step that fails for a passing reason is tried (default: `HF_VISIONTX_HUB_TRIES`, else 3).
    """
    directory = Path(directory)
    transfer = _Transfer(repo_id, revision, token, hub_limits(timeout, tries), pushing=True)
    files, config = _files_to_push(directory)
    architecture = (config.get("architectures") or ["model"])[0]
    card = _card_for(directory, repo_id)
    operations = [CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path)) for path in files]
    operations.append(CommitOperationAdd(path_in_repo=README, path_or_fileobj=card.encode("utf-8")))
    api = HfApi(token=token)
    with bounded_requests(transfer.limits.timeout):
        transfer.run(
            f"create the repository {repo_id}", lambda: api.create_repo(repo_id, private=private, exist_ok=True)
        )
        if revision is not None:
            transfer.run(
                f"create the branch {revision!r} of {repo_id}",
                lambda: api.create_branch(repo_id, branch=revision, exist_ok=True),
            )
        commit = transfer.run(
            f"commit to {repo_id}",
            lambda: api.create_commit(
                repo_id,
                operations=operations,
                revision=revision,
                commit_message=commit_message or f"Upload {architecture} with hf_visiontx",
            ),
            sends_commit=True,
        )
    return commit.oid


def pull(
    repo_id: str,
    directory: str | Path,
    *,
    revision: str | None = None,
    token: str | None = None,
    timeout: float | None = None,
    tries: int | None = None,
) -> Path:
    """Download `repo_id` (at `revision`) into the new directory `directory` and return it.

    Only safetensors weights and the small files next to them are fetched: files that loading may unpickle
    (`PICKLE_SUFFIXES`) are skipped with a warning, and a repository whose only weights are pickled is refused.
    Every file comes from the one commit that `revision` names when the pull starts. `directory` must not exist yet
    (or be empty): the files are downloaded into a staging folder next to it, which is moved into place only when
    complete, so on any failure nothing is left behind.

    `timeout` and `tries` are as for `push`.
    """
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise HubOperationError(f"`directory` {directory} already exists and is not empty; pull into a new one.")
    transfer = _Transfer(repo_id, revision, token, hub_limits(timeout, tries), pushing=False)
    api = HfApi(token=token)
    with bounded_requests(transfer.limits.timeout):
        info = transfer.run(
            f"read the file list of {repo_id}", lambda: api.model_info(repo_id, revision=revision, files_metadata=False)
        )
        sizes = {entry.rfilename: entry.size for entry in info.siblings}
        _refuse_pickled_only(repo_id, list(sizes))
        skipped = [name for name in sizes if _is_pickle(name)]
        if skipped:
            logger.warning(
                "pull %s: skipped %s: loading such files may unpickle them, which can run arbitrary code.",
                repo_id,
                ", ".join(skipped),
            )
        with new_folder(directory) as staging:
            headers = build_hf_headers(token=token)
            for name, size in sizes.items():
                if name in skipped:
                    continue
                url = hf_hub_url(repo_id, name, revision=info.sha or revision, endpoint=constants.ENDPOINT)
                download = functools.partial(_download, url, _staged_path(staging, name, repo_id), headers, size)
                transfer.run(f"download {name} of {repo_id}", download, file=name)
            verify_safetensors_files(staging)
    return directory


def read_token_file(path: str | Path) -> str:
    """The Hub token written on the first line of the file `path` (so that it never appears on a command line).

    Raises:
        FileNotFoundError: when `path` is not a file.
        ValueError: when its first line is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`--token-file` {path} does not exist or is not a file.")
    lines = path.read_text(encoding="utf-8").splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"`--token-file` {path} is empty: write the token on its first line.")
    return token


@dataclass(frozen=True)
class _Transfer:
    """One push or pull: the repository it talks to and its limits, for running its steps and naming failures."""

    repo_id: str
    revision: str | None
    token: str | None
    limits: HubLimits
    pushing: bool

    def run(self, what: str, step: Callable[[], T], *, file: str | None = None, sends_commit: bool = False) -> T:
        """Run one step (`what`: "download config.json of user/name") with its tries; failures become a
        `HubOperationError` that says what failed, after how many tries, and what to do."""
        with _hub_errors(self, what, file, sends_commit):
            return with_tries(step, self.limits.tries)


def _is_pickle(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def _staged_path(staging: Path, name: str, repo_id: str) -> Path:
    """Where the repository file `name` goes in `staging`; a name that would land outside it is refused."""
    path = staging / name
    if not path.resolve().is_relative_to(staging.resolve()):
        raise HubOperationError(f"{repo_id} lists a file named {name!r}, which would be written outside the folder.")
    return path


def _download(url: str, path: Path, headers: dict[str, str], size: int | None) -> None:
    """GET `url` into `path`, written afresh on each try; a short download is a broken connection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with get_session().stream("GET", url, headers=headers) as response, path.open("wb") as file:
        if response.is_error:
            response.read()  # the error's details are in the body
            hf_raise_for_status(response)
        for chunk in response.iter_bytes(1 << 20):
            file.write(chunk)
        received = file.tell()
    if size is not None and received != size:
        raise httpx.RemoteProtocolError(f"the download of {path.name} stopped after {received} of {size} bytes")


def _files_to_push(directory: Path) -> tuple[list[Path], dict]:
    """The top-level files of a saved model and its parsed config.json, checked: no link that leads out of the
    directory, intact safetensors weights, no pickles, the model code that auto_map names."""
    if not directory.is_dir():
        raise HubOperationError(f"`directory` {directory} does not exist or is not a directory.")
    files = sorted(
        path for path in directory.iterdir() if path.is_file() and not path.name.startswith(".") and path.name != README
    )
    try:  # every top-level entry, folders too: a link that leaves is refused, not silently left behind
        check_links_stay_inside(directory, [p for p in directory.iterdir() if not p.name.startswith(".")], "directory")
    except ValueError as error:
        raise HubOperationError(str(error)) from error
    names = [path.name for path in files]
    if "config.json" not in names:
        raise HubOperationError(f"`directory` {directory} has no config.json: save the model with save_pretrained.")
    pickles = [name for name in names if _is_pickle(name)]
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
    pickles = [name for name in names if _is_pickle(name)]
    detail = f"only pickled weights ({', '.join(pickles)})" if pickles else "no weights"
    raise HubOperationError(
        f"{repo_id} has {detail}. hf_visiontx reads safetensors only, because unpickling a file can run arbitrary "
        "code. Ask the owner for model.safetensors, or, if you trust the files, load them with "
        "torch.load(path, weights_only=True) and save_pretrained a safetensors copy."
    )


@contextmanager
def _hub_errors(transfer: _Transfer, what: str, file: str | None, sends_commit: bool) -> Iterator[None]:
    """Turn huggingface_hub and network failures of one step into a `HubOperationError` that names the repository,
    what failed and after how many tries, what it left behind, and the next step."""
    repo_id, token, endpoint = transfer.repo_id, transfer.token, constants.ENDPOINT
    outcome = "no commit was made, so the repository is unchanged" if transfer.pushing else "nothing was written"
    try:
        yield
    except HubGaveUp as gave_up:
        error, tries = gave_up.__cause__, f"{gave_up.tries} {'try' if gave_up.tries == 1 else 'tries'}"
        status = status_of(error)
        if isinstance(error, httpx.ConnectError):
            raise _error(
                f"Cannot reach the Hub at {endpoint} to {what} ({error}; {tries}); {outcome}. Check the network or "
                "HF_ENDPOINT.",
                token,
            ) from error
        if sends_commit and status is None:  # the request may have arrived; its answer did not
            outcome = "the commit may or may not have been made (it is whole either way), so pushing again is safe"
        if isinstance(error, httpx.TimeoutException):
            raise _error(
                f"The Hub at {endpoint} did not answer within {transfer.limits.timeout:g} s when asked to {what} "
                f"({tries}); {outcome}. Check the network, or allow more time with --timeout or {TIMEOUT_ENV} "
                f"(more tries: {TRIES_ENV}).",
                token,
            ) from error
        if status is not None:
            raise _error(
                f"The Hub at {endpoint} answered {_status_text(status)} when asked to {what} ({tries}); {outcome}. "
                "Run the same command again later.",
                token,
            ) from error
        raise _error(
            f"The connection to the Hub at {endpoint} broke when asked to {what} ({error}; {tries}); {outcome}. "
            "Run the same command again.",
            token,
        ) from error
    except RevisionNotFoundError as error:
        raise _error(
            f"Revision {transfer.revision!r} was not found in {repo_id}: use a branch, a tag or a full commit "
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
    except HfHubHTTPError as error:
        status = status_of(error)
        if status in (401, 403):
            raise _error(
                f"The Hub refused the token ({status}) when asked to {what}: pass a valid token with "
                f"{'write' if transfer.pushing else 'read'} access (--token, --token-file or HF_TOKEN).",
                token,
            ) from error
        if status == 404 and file is not None:
            raise _error(
                f"{file} was not found in {repo_id} at revision {transfer.revision or 'main'}, although the Hub lists "
                f"it (404 Not Found); {outcome}. Run the same command again; if it fails the same way, tell the "
                "repository's owner.",
                token,
            ) from error
        advice = "Run the same command again later." if status is not None and status >= 500 else str(error)
        raise _error(
            f"The Hub at {endpoint} answered {_status_text(status)} when asked to {what}; {outcome}. {advice}",
            token,
        ) from error


def _status_text(status: int | None) -> str:
    """`503 Service Unavailable`, or the bare number for a status that HTTP does not name."""
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _error(message: str, token: str | None) -> HubOperationError:
    """A HubOperationError whose message cannot contain the token, whatever the server echoed."""
    for secret in (token, os.environ.get("HF_TOKEN")):
        if secret:
            message = message.replace(secret, "***")
    return HubOperationError(message)


__all__ = ["PICKLE_SUFFIXES", "HubOperationError", "pull", "push", "read_token_file"]
