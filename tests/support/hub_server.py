"""A tiny in-memory Hugging Face Hub for tests: stdlib only (http.server + threading), bound to 127.0.0.1.

It speaks the part of the Hub HTTP protocol that huggingface_hub 2.4 / transformers 5.24 use for `push_to_hub`,
`from_pretrained(..., revision=...)`, `snapshot_download`, tags and private repos. Every file is uploaded in
`regular` mode (inline, base64, in the commit body), so neither LFS nor Xet is ever involved.

    with HubServer(tokens={"hf_secret"}) as hub:
        env["HF_ENDPOINT"] = hub.url
        ...
        assert hub.requests == [...]

Faults are injected per kind of request (`fault_key`): `fail("resolve", 503, times=2, path="config.json")` answers
the next two downloads of config.json with 503, `stall("info")` accepts repo-info requests and never answers them
(until `heal()` or `stop()`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from support.launch import REPO_ROOT

USER = "user"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API_ROUTE = re.compile(
    rf"^/api/models/{_REPO}(?:/(?P<action>revision|tree|preupload|commit|commits|tag|branch|refs)(?:/(?P<rest>.*))?)?$"
)
_RESOLVE_ROUTE = re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
STALL = None  # a Fault's status that means: read the request, never answer


def fault_key(method: str, path: str) -> tuple[str | None, str | None]:
    """The kind of request that `HubServer.fail`/`stall` name, and the file it is about (downloads only):
    "create" (POST /api/repos/create), "info" (GET a repo's info, at a revision or main), "resolve" (a file
    download or its HEAD), or the API action ("preupload", "commit", "tree", ...)."""
    path = urlsplit(path).path
    if path == "/api/repos/create":
        return "create", None
    if match := _RESOLVE_ROUTE.match(path):
        return "resolve", unquote(match["path"])
    if match := _API_ROUTE.match(path):
        return ("info" if match["action"] in (None, "revision") else match["action"]), None
    return None, None


@dataclass
class Fault:
    status: int | None  # STALL: never answer
    times: int | None  # how many requests to spoil before serving normally again; None: until heal()
    path: str | None  # downloads of this file only; None: every request of the kind


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubError(Exception):
    def __init__(
        self, status: int, code: str | None, message: str, commit: str | None = None, body: dict | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.commit, self.body = status, code, message, commit, body


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    files: dict[str, bytes]
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: int = 0

    def resolve(self, revision: str) -> str:
        """Branch, tag or full commit sha -> commit sha; HubError RevisionNotFound otherwise."""
        for refs in (self.branches, self.tags):
            if revision in refs:
                return refs[revision]
        if revision.startswith("refs/heads/") and revision[11:] in self.branches:
            return self.branches[revision[11:]]
        if revision.startswith("refs/tags/") and revision[10:] in self.tags:
            return self.tags[revision[10:]]
        if _SHA.match(revision) and revision in self.commits:
            return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")


class HubServer:
    """In-memory Hub. `start()`/`stop()` or use as a context manager; `url` is the endpoint for HF_ENDPOINT."""

    def __init__(self, tokens: set[str] | frozenset[str] = frozenset()):
        self.tokens = set(tokens)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path with query) of every request received
        self.faults: dict[str, Fault] = {}  # fault_key kind -> what to do instead of answering normally
        self.lock = threading.RLock()
        self._released = threading.Event()  # set to let stalled requests go (heal, stop)
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- repository state --------------------------------------------------------------------------------------
    def _new_sha(self, repo_id: str) -> str:
        return hashlib.sha1(f"{repo_id}:{next(self._counter)}:{time.time_ns()}".encode()).hexdigest()

    def _add_commit(self, repo: Repo, parent: str | None, title: str, message: str, files: dict[str, bytes]) -> str:
        sha = self._new_sha(repo.repo_id)
        repo.commits[sha] = Commit(sha, parent, title, message, files)
        return sha

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        with self.lock:
            repo = Repo(repo_id, private)
            repo.branches["main"] = self._add_commit(
                repo, None, "initial commit", "", {".gitattributes": GITATTRIBUTES}
            )
            self.repos[repo_id] = repo
            return repo

    def seed(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        """Create `repo_id` holding `files` (as a second commit on main) without going through HTTP; its sha."""
        with self.lock:
            repo = self.create_repo(repo_id, private=private)
            parent = repo.branches["main"]
            repo.branches["main"] = self._add_commit(repo, parent, "seed", "", {**repo.commits[parent].files, **files})
            return repo.branches["main"]

    def head_files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        """The files at the head of `branch` of `repo_id`: path -> content."""
        with self.lock:
            repo = self.repos[repo_id]
            return dict(repo.commits[repo.branches[branch]].files)

    def fail(self, kind: str, status: int = 500, *, times: int | None = None, path: str | None = None) -> None:
        """Answer later `kind` requests (see `fault_key`: "commit", "resolve", ...) with `status`, after reading
        them: the next `times` ones (all until `heal()` when None), of file `path` only when given."""
        with self.lock:
            self.faults[kind] = Fault(status, times, path)

    def stall(self, kind: str, *, path: str | None = None) -> None:
        """Read later `kind` requests and never answer them, until `heal()` or `stop()`."""
        with self.lock:
            self._released.clear()
            self.faults[kind] = Fault(STALL, None, path)

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()
            self._released.set()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault that spoils this request, if any (counting it against the fault's `times`)."""
        kind, file = fault_key(method, path)
        with self.lock:
            fault = self.faults.get(kind)
            if fault is None or (fault.path is not None and fault.path != file):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[kind]
            return fault

    def check_write_token(self, token: str | None) -> None:
        if token not in self.tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def get_repo(self, repo_id: str, token: str | None) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token not in self.tokens):
            raise HubError(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
        return repo


class _Handler(BaseHTTPRequestHandler):
    server_hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    # ---- plumbing -----------------------------------------------------------------------------------------------
    def _token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head: bool = False,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers, head=head)

    def _dispatch(self, method: str) -> None:
        hub = self.server_hub
        with hub.lock:
            hub.requests.append((method, self.path))
        body = self._body() if method == "POST" else b""
        fault = hub.take_fault(method, self.path)
        if fault is not None and fault.status is STALL:
            hub._released.wait(timeout=120)
            self.close_connection = True
            return
        try:
            if fault is not None:
                raise HubError(fault.status, None, f"Injected failure of {fault_key(method, self.path)[0]}")
            with hub.lock:
                self._route(method, body)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self._json(error.status, error.body or {"error": error.message}, headers=headers, head=method == "HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    # ---- routes ---------------------------------------------------------------------------------------------------
    def _route(self, method: str, body: bytes) -> None:
        hub = self.server_hub
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        token = self._token()

        if path == "/api/whoami-v2" and method == "GET":
            if token not in hub.tokens:
                raise HubError(401, None, "Invalid user token.")
            return self._json(
                200,
                {
                    "type": "user",
                    "name": USER,
                    "fullname": USER,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                },
            )
        if path == "/api/repos/create" and method == "POST":
            hub.check_write_token(token)
            return self._create_repo(json.loads(body or b"{}"))
        if path == "/api/validate-yaml" and method == "POST":
            return self._json(200, {"errors": [], "warnings": []})

        if match := _RESOLVE_ROUTE.match(path):
            if method not in ("GET", "HEAD"):
                raise HubError(405, None, "Method not allowed")
            return self._resolve(match["repo"], unquote(match["rev"]), unquote(match["path"]), token, method == "HEAD")

        match = _API_ROUTE.match(path)
        if match is None:
            raise HubError(404, None, f"No route for {method} {path}")
        repo = hub.get_repo(unquote(match["repo"]), token)
        action, rest = match["action"], match["rest"]
        if method == "POST":  # every write: preupload, commit, tag, branch
            hub.check_write_token(token)
        if action is None and method == "GET":
            return self._info(repo, "main")
        if action == "revision" and method == "GET" and rest:
            return self._info(repo, unquote(rest))
        if action == "tree" and method == "GET" and rest:
            revision, _, subpath = rest.partition("/")
            return self._tree(repo, unquote(revision), unquote(subpath).strip("/"), query)
        if action == "preupload" and method == "POST" and rest:
            return self._preupload(repo, unquote(rest), json.loads(body or b"{}"))
        if action == "commit" and method == "POST" and rest:
            return self._commit(repo, unquote(rest), body, query)
        if action == "commits" and method == "GET" and rest:
            return self._commits(repo, unquote(rest))
        if action == "tag" and method == "POST" and rest:
            return self._create_ref(repo, repo.tags, unquote(rest), json.loads(body or b"{}"), "tag")
        if action == "branch" and method == "POST" and rest:
            payload = json.loads(body or b"{}")
            payload["tag"] = unquote(rest)
            return self._create_ref(repo, repo.branches, payload.get("startingPoint") or "main", payload, "branch")
        if action == "refs" and method == "GET":
            return self._refs(repo)
        raise HubError(404, None, f"No route for {method} {path}")

    def _create_repo(self, payload: dict) -> None:
        hub = self.server_hub
        name, organization = payload.get("name"), payload.get("organization")
        if payload.get("type") not in (None, "model"):
            raise HubError(400, None, "Only model repos are supported")
        if not name:
            raise HubError(400, None, "Missing name")
        repo_id = f"{organization or USER}/{name}"
        url = f"{hub.url}/{repo_id}"
        if repo_id in hub.repos:
            raise HubError(409, None, "You already created this model repo", body={"error": "exists", "url": url})
        private = payload.get("private") or payload.get("visibility") == "private"
        hub.create_repo(repo_id, private=bool(private))
        self._json(200, {"url": url, "name": repo_id})

    def _info(self, repo: Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        files = repo.commits[sha].files
        self._json(
            200,
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "lastModified": repo.commits[sha].date,
                "siblings": [
                    {"rfilename": p, "size": len(c), "blobId": git_blob_sha1(c)} for p, c in sorted(files.items())
                ],
            },
        )

    def _tree(self, repo: Repo, revision: str, subpath: str, query: dict) -> None:
        sha = repo.resolve(revision)
        files = repo.commits[sha].files
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{subpath}/" if subpath else ""
        if subpath and not any(p.startswith(prefix) for p in files):
            raise HubError(404, "EntryNotFound", f"{subpath} does not exist on {revision}", commit=sha)
        entries, directories = [], set()
        for path, content in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):  # the folders between subpath and the file
                directory = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and directory not in directories:
                    directories.add(directory)
                    entries.append(
                        {
                            "type": "directory",
                            "path": directory,
                            "oid": hashlib.sha1(directory.encode()).hexdigest(),
                            "size": 0,
                        }
                    )
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)})
        self._json(200, entries)

    def _preupload(self, repo: Repo, revision: str, payload: dict) -> None:
        try:
            files = repo.commits[repo.resolve(revision)].files
        except HubError:  # a branch that a create_pr commit will create: nothing is stored there yet
            files = {}
        answer = []
        for item in payload.get("files", []):
            entry = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
            if item["path"] in files:
                entry["oid"] = git_blob_sha1(files[item["path"]])
            answer.append(entry)
        self._json(200, {"files": answer, "commitOid": None})

    def _commit(self, repo: Repo, revision: str, body: bytes, query: dict) -> None:
        # Parse the whole body before touching the repo: a commit is applied entirely or not at all.
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            operations = []
            for line in lines:
                key, value = line["key"], line.get("value", {})
                if key == "header":
                    continue
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise ValueError(f"unsupported encoding {value.get('encoding')!r}")
                    operations.append(("add", value["path"], base64.b64decode(value["content"], validate=True)))
                elif key in ("deletedFile", "deletedFolder"):
                    operations.append((key, value["path"].strip("/"), None))
                else:  # lfsFile etc.: the preupload answer never asks for LFS
                    raise ValueError(f"unsupported commit operation {key!r}")
        except (ValueError, KeyError, TypeError, StopIteration, UnicodeDecodeError) as error:
            raise HubError(400, None, f"Malformed commit payload: {error}") from error

        create_pr = query.get("create_pr", ["0"])[0] in ("1", "true")
        base_sha = repo.resolve(revision)
        parent = header.get("parentCommit")
        if parent and parent != base_sha and not create_pr:
            raise HubError(412, None, f"parentCommit {parent} is not the head of {revision}")
        files = dict(repo.commits[base_sha].files)
        for kind, path, content in operations:
            if kind == "add":
                files[path] = content
            elif kind == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "EntryNotFound", f"{path} does not exist", commit=base_sha)
            else:
                for name in [p for p in files if p.startswith(path + "/")]:
                    del files[name]
        sha = self.server_hub._add_commit(
            repo, base_sha, header.get("summary", ""), header.get("description", ""), files
        )
        answer = {"commitUrl": f"{self.server_hub.url}/{repo.repo_id}/commit/{sha}", "commitOid": sha, "success": True}
        if create_pr:
            repo.pull_requests += 1
            repo.branches[f"refs/pr/{repo.pull_requests}"] = sha
            answer["pullRequestUrl"] = f"{self.server_hub.url}/{repo.repo_id}/discussions/{repo.pull_requests}"
        elif revision in repo.branches or revision.startswith("refs/heads/"):
            repo.branches[revision.removeprefix("refs/heads/")] = sha
        else:
            raise HubError(400, None, f"Can only commit to a branch, not {revision}")
        self._json(200, answer)

    def _commits(self, repo: Repo, revision: str) -> None:
        sha, history = repo.resolve(revision), []
        while sha is not None:
            commit = repo.commits[sha]
            history.append(
                {
                    "id": sha,
                    "title": commit.title,
                    "message": commit.message,
                    "date": commit.date,
                    "authors": [{"user": USER}],
                }
            )
            sha = commit.parent
        self._json(200, history)

    def _create_ref(self, repo: Repo, refs: dict[str, str], revision: str, payload: dict, kind: str) -> None:
        name = payload.get("tag")
        if not name:
            raise HubError(400, None, f"Missing {kind} name")
        if name in refs:
            raise HubError(409, None, f"{kind} {name} already exists")
        refs[name] = repo.resolve(revision)
        self._json(200, {"name": name, "ref": f"refs/{'tags' if kind == 'tag' else 'heads'}/{name}"})

    def _refs(self, repo: Repo) -> None:
        branches = {n: s for n, s in repo.branches.items() if not n.startswith("refs/pr/")}
        self._json(
            200,
            {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in branches.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                "converts": [],
                "pullRequests": [
                    {"name": n, "ref": n, "targetCommit": s}
                    for n, s in repo.branches.items()
                    if n.startswith("refs/pr/")
                ],
            },
        )

    def _resolve(self, repo_id: str, revision: str, path: str, token: str | None, head: bool) -> None:
        repo = self.server_hub.get_repo(repo_id, token)
        sha = repo.resolve(revision)
        content = repo.commits[sha].files.get(path)
        if content is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit=sha)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(content)}"', "Accept-Ranges": "bytes"}
        status, payload = 200, content
        range_header = self.headers.get("range", "")
        if not head and (match := re.match(r"bytes=(\d+)-(\d*)$", range_header)):
            start = int(match[1])
            end = int(match[2]) if match[2] else len(content) - 1
            payload = content[start : end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + len(payload) - 1}/{len(content)}"
        self._send(
            status, payload, content_type="application/octet-stream", headers=headers, head=head, length=len(payload)
        )


def run_client(
    script: str,
    *args,
    hub: HubServer | str,
    hf_home: Path,
    token: str | None = None,
    offline: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter whose huggingface_hub talks to `hub` (a server or an endpoint URL).

    conftest.py imports transformers with HF_HUB_OFFLINE=1, and huggingface_hub reads HF_ENDPOINT only once, when
    it is first imported; so every client operation runs in a subprocess.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(
        HF_ENDPOINT=hub if isinstance(hub, str) else hub.url,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_OFFLINE="1" if offline else "0",
        PYTHONPATH=str(REPO_ROOT),
    )
    if token is not None:
        env["HF_TOKEN"] = token
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=env,
        cwd=hf_home.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result
