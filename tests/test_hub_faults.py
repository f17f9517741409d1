"""Push and pull against a faulty Hub: one that never answers, answers errors, or fails a few times and then
works; pickle-capable files; links that leave the pushed folder; the token from a file and never shown.

These run in this process: the fixture points huggingface_hub's endpoint constants at the local server (they are
read at import, so they are patched, not set through HF_ENDPOINT) and allows the network again (conftest sets
HF_HUB_OFFLINE). Every request gets 1 s and the waits between tries are shortened, so the tests stay fast.
"""

import logging
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants, set_client_factory
from huggingface_hub.utils import _http as hub_http
from safetensors.torch import save

from hf_visiontx import VtxViTForImageClassification
from hf_visiontx.apps.cli import main
from hf_visiontx.hub import HubOperationError, pull, push
from hf_visiontx.hub import network as hub_network
from support.hub_server import HubServer
from support.vit_tester import tiny_vit_config

TOKEN = "hf_faults_secret_93c1e7"
REPO = "user/faulty"
FILES = {  # the seeded repository: .gitattributes comes first, then these in order
    "config.json": b'{"model_type": "vtx_vit"}',
    "model.safetensors": save({"weight": torch.arange(6.0)}),
    "tokenizer.json": b"{}",
}


@pytest.fixture
def hub(monkeypatch):
    """A local Hub holding REPO, that huggingface_hub talks to; 1 s per request, 3 tries, waits of 10 ms."""
    with HubServer(tokens={TOKEN}) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hub_network, "FIRST_WAIT_S", 0.01)
        monkeypatch.setenv(hub_network.TIMEOUT_ENV, "1")
        monkeypatch.delenv(hub_network.TRIES_ENV, raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        server.seed(REPO, FILES)
        yield server


def requests_for(hub: HubServer, fragment: str) -> int:
    return sum(fragment in path for _, path in hub.requests)


def saved_model(directory: Path) -> Path:
    torch.manual_seed(0)
    VtxViTForImageClassification(tiny_vit_config()).save_pretrained(directory)
    return directory


def assert_nothing_pulled(out: Path) -> None:
    """No `out`, and no staging folder next to it."""
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


# ---- finding 5: nothing hangs; retries are bounded; errors say what they are ------------------------------------


def test_pull_from_a_hub_that_never_answers_gives_up_and_says_so(hub, tmp_path):
    hub.stall("info")
    with pytest.raises(HubOperationError) as caught:
        pull(REPO, tmp_path / "out")
    message = str(caught.value)
    assert "did not answer within 1 s when asked to read the file list of user/faulty (3 tries)" in message
    assert "nothing was written" in message and "--timeout" in message and "HF_VISIONTX_HUB_TIMEOUT" in message
    assert requests_for(hub, f"/api/models/{REPO}") == 3
    assert_nothing_pulled(tmp_path / "out")


def test_pull_whose_download_never_answers_names_the_file(hub, tmp_path):
    hub.stall("resolve", path="model.safetensors")
    with pytest.raises(HubOperationError, match=r"did not answer within 1 s when asked to download model\.safetensors"):
        pull(REPO, tmp_path / "out")
    assert requests_for(hub, "/resolve/") == 2 + 3  # .gitattributes, config.json, then model.safetensors 3 times
    assert_nothing_pulled(tmp_path / "out")


@pytest.mark.parametrize(
    ("kind", "step", "outcome"),
    [
        ("create", "create the repository user/pushed", "no commit was made, so the repository is unchanged"),
        ("commit", "commit to user/pushed", "the commit may or may not have been made"),
    ],
)
def test_push_to_a_hub_that_never_answers_gives_up_and_says_so(hub, tmp_path, kind, step, outcome):
    hub.stall(kind)
    with pytest.raises(HubOperationError) as caught:
        push(saved_model(tmp_path / "model"), "user/pushed", token=TOKEN)
    assert f"did not answer within 1 s when asked to {step} (3 tries); {outcome}" in str(caught.value)
    hub.heal()
    assert "user/pushed" not in hub.repos or set(hub.head_files("user/pushed")) == {".gitattributes"}


@pytest.mark.parametrize(
    ("status", "tries", "fragment"),
    [
        (503, 3, "answered 503 Service Unavailable when asked to download model.safetensors of user/faulty (3 tries)"),
        (502, 3, "answered 502 Bad Gateway when asked to download model.safetensors of user/faulty (3 tries)"),
        (500, 1, "answered 500 Internal Server Error when asked to download model.safetensors of user/faulty;"),
        (404, 1, "model.safetensors was not found in user/faulty at revision main, although the Hub lists it"),
    ],
)
def test_download_errors_are_reported_as_what_they_are(hub, tmp_path, status, tries, fragment):
    hub.fail("resolve", status, path="model.safetensors")
    with pytest.raises(HubOperationError) as caught:
        pull(REPO, tmp_path / "out")
    assert fragment in str(caught.value) and "Cannot reach" not in str(caught.value)
    assert sum(path.endswith("/model.safetensors") for _, path in hub.requests) == tries  # 500 and 404: no retry
    assert_nothing_pulled(tmp_path / "out")


def test_a_hub_that_cannot_be_reached_is_named(hub, tmp_path):
    hub.stop()  # nothing listens on the port any more
    with pytest.raises(HubOperationError, match=r"Cannot reach the Hub at http://127\.0\.0\.1:\d+ to read the file"):
        pull(REPO, tmp_path / "out", tries=2)
    assert_nothing_pulled(tmp_path / "out")


def test_passing_failures_are_tried_again_and_the_transfer_completes(hub, tmp_path):
    hub.fail("info", 503, times=2)
    hub.fail("resolve", 429, times=2, path="model.safetensors")
    out = pull(REPO, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == hub.head_files(REPO)
    assert requests_for(hub, f"/api/models/{REPO}") == 3
    assert sum(path.endswith("/model.safetensors") for _, path in hub.requests) == 3

    hub.fail("create", 504, times=1)
    hub.fail("commit", 502, times=2)
    model = saved_model(tmp_path / "model")
    push(model, "user/pushed", token=TOKEN)
    assert hub.head_files("user/pushed")["model.safetensors"] == (model / "model.safetensors").read_bytes()
    assert len(hub.repos["user/pushed"].commits) == 2  # the initial commit and one push, not one per try


def test_tries_come_from_the_argument_or_the_environment(hub, tmp_path, monkeypatch):
    hub.fail("info", 503)
    with pytest.raises(HubOperationError, match=r"\(1 try\)"):
        pull(REPO, tmp_path / "out", tries=1)
    monkeypatch.setenv(hub_network.TRIES_ENV, "2")
    with pytest.raises(HubOperationError, match=r"\(2 tries\)"):
        pull(REPO, tmp_path / "out")
    assert requests_for(hub, f"/api/models/{REPO}") == 1 + 2


@pytest.mark.parametrize(
    ("kwargs", "environment", "fragment"),
    [
        ({"timeout": 0}, {}, "`timeout` must be a positive number of seconds, got 0"),
        ({"timeout": float("nan")}, {}, "`timeout` must be a positive number of seconds, got nan"),
        ({"tries": 0}, {}, "`tries` must be a whole number of tries, 1 or more, got 0"),
        ({}, {"HF_VISIONTX_HUB_TIMEOUT": "soon"}, "HF_VISIONTX_HUB_TIMEOUT must be a positive number of seconds"),
        ({}, {"HF_VISIONTX_HUB_TRIES": "2.5"}, "HF_VISIONTX_HUB_TRIES must be a whole number of tries"),
    ],
)
def test_bad_limits_are_refused_before_any_request(hub, tmp_path, monkeypatch, kwargs, environment, fragment):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=fragment):
        pull(REPO, tmp_path / "out", **kwargs)
    with pytest.raises(ValueError, match=fragment):
        push(saved_model(tmp_path / "model"), "user/pushed", token=TOKEN, **kwargs)
    assert hub.requests == []


def test_cli_timeout_option(hub, tmp_path, capsys):
    hub.stall("info")
    assert main(["pull", REPO, str(tmp_path / "out"), "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-visiontx pull: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "did not answer within 0.5 s" in err
    assert main(["pull", REPO, str(tmp_path / "out"), "--timeout", "-1"]) == 1
    assert "`timeout` must be a positive number of seconds, got -1.0" in capsys.readouterr().err


def test_the_client_factory_in_place_is_kept_and_put_back(hub, tmp_path):
    made = []

    def factory():
        client = hub_http.default_client_factory()
        made.append(client)
        return client

    set_client_factory(factory)
    try:
        pull(REPO, tmp_path / "out")
        assert made  # the user's factory built the client that pull used
        assert hub_http._GLOBAL_CLIENT_FACTORY is factory
    finally:
        set_client_factory(hub_http.default_client_factory)


# ---- finding 2 (pull): all or nothing ---------------------------------------------------------------------------


def test_pull_failing_midway_leaves_the_target_as_it_was_and_a_rerun_completes(hub, tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # an empty target is allowed, and must stay empty
    hub.fail("resolve", 500, path="config.json")  # the second file
    with pytest.raises(HubOperationError, match=r"config\.json"):
        pull(REPO, out)
    assert list(out.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["out"]
    hub.heal()
    pull(REPO, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == hub.head_files(REPO)
    assert out.stat().st_mode & 0o777 == 0o777 & ~current_umask()  # not the staging folder's private 0700


def test_pull_refuses_a_file_name_that_leaves_the_folder(hub, tmp_path):
    hub.seed("user/escape", {**FILES, "../escaped.txt": b"x"})
    with pytest.raises(HubOperationError, match=r"'\.\./escaped\.txt', which would be written outside the folder"):
        pull("user/escape", tmp_path / "inner" / "out")
    assert not (tmp_path / "inner" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


# ---- finding 11: pickle-capable files, links, tokens ------------------------------------------------------------

PICKLE_CAPABLE = ["a.joblib", "b.npy", "c.npz", "d.pkl", "e.pickle", "f.pt", "g.pth", "h.bin", "i.ckpt", "J.NPY"]


def test_pull_skips_pickle_capable_files_and_says_which(hub, tmp_path, caplog):
    hub.seed("user/mixed", {**FILES, **{name: b"pickle" for name in PICKLE_CAPABLE}})
    with caplog.at_level(logging.WARNING, logger="hf_visiontx.hub.transfer"):
        out = pull("user/mixed", tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == sorted([".gitattributes", *FILES])
    assert not any(name in path for _, path in hub.requests for name in PICKLE_CAPABLE)
    (warning,) = caplog.messages
    assert warning.startswith("pull user/mixed: skipped ") and all(name in warning for name in PICKLE_CAPABLE)


def test_push_refuses_pickle_capable_files(hub, tmp_path):
    model = saved_model(tmp_path / "model")
    (model / "scaler.joblib").write_bytes(b"pickle")
    with pytest.raises(HubOperationError, match=r"pickled files \['scaler\.joblib'\]"):
        push(model, "user/pushed", token=TOKEN)
    assert hub.requests == []


def test_push_refuses_links_that_leave_the_folder(hub, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the Hub")
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, target in [("notes.txt", secret), ("extra", outside), ("README.md", secret)]:
        model = saved_model(tmp_path / f"model-{name}")
        (model / name).unlink(missing_ok=True)
        (model / name).symlink_to(target)
        with pytest.raises(HubOperationError) as caught:
            push(model, "user/pushed", token=TOKEN)
        assert f"{model / name} -> {target}" in str(caught.value) and "outside" in str(caught.value)
    assert hub.requests == [] and "user/pushed" not in hub.repos


def test_push_follows_links_inside_the_folder_and_a_linked_folder(hub, tmp_path):
    model = saved_model(tmp_path / "run-7")
    (model / "notes").mkdir()
    (model / "notes" / "labels.txt").write_text("cat\ndog\n")
    (model / "labels.txt").symlink_to(model / "notes" / "labels.txt")
    (tmp_path / "latest").symlink_to(model)  # the folder itself may be a link
    push(tmp_path / "latest", "user/pushed", token=TOKEN)
    files = hub.head_files("user/pushed")
    assert (
        files["labels.txt"] == b"cat\ndog\n"
        and files["model.safetensors"] == (model / "model.safetensors").read_bytes()
    )


def test_convert_refuses_to_copy_links_that_leave_the_source(tmp_path, capsys):
    from transformers import ViTConfig, ViTModel

    from support.vit_tester import TINY_SIZES

    source, out = tmp_path / "vit", tmp_path / "converted"
    ViTModel(ViTConfig(**TINY_SIZES)).save_pretrained(source)
    (tmp_path / "id_rsa").write_text("private key")
    (source / "vocab.txt").symlink_to(tmp_path / "id_rsa")
    assert main(["convert", str(source), str(out)]) == 1
    err = capsys.readouterr().err
    assert "hf-visiontx convert: error: `src_dir`" in err and f"-> {tmp_path / 'id_rsa'}" in err
    assert not out.exists()
    (source / "vocab.txt").unlink()
    (source / "vocab.txt").symlink_to(source / "config.json")  # inside the source: copied
    assert main(["convert", str(source), str(out)]) == 0
    assert (out / "vocab.txt").read_bytes() == (source / "config.json").read_bytes()


def test_token_from_a_file_is_used_and_never_shown(hub, tmp_path, capsys, caplog):
    model = saved_model(tmp_path / "model")
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\nanything after the first line is ignored\n")
    (tmp_path / "empty").write_text("\n")
    runs = [
        (["push", str(model), "user/pushed", "--token-file", str(token_file)], 0, "pushed "),
        (["pull", "user/pushed", str(tmp_path / "pulled"), "--token-file", str(token_file)], 0, "pulled "),
        (["push", str(model), "user/pushed", "--token-file", str(tmp_path / "missing")], 1, "does not exist"),
        (["push", str(model), "user/pushed", "--token-file", str(tmp_path / "empty")], 1, "is empty"),
        (["push", str(model), "user/pushed", "--token", TOKEN + "x"], 1, "refused the token (401)"),
    ]
    outputs = []
    with caplog.at_level(logging.DEBUG):
        for argv, code, fragment in runs:
            assert main(argv) == code, argv
            captured = capsys.readouterr()
            outputs += [captured.out, captured.err]
            assert fragment in (captured.out if code == 0 else captured.err), captured
        with pytest.raises(SystemExit) as exited:
            main(["push", str(model), "user/pushed", "--token", TOKEN, "--token-file", str(token_file)])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert hub.head_files("user/pushed")["model.safetensors"] == (model / "model.safetensors").read_bytes()
    texts = [*outputs, caplog.text]
    assert not any(TOKEN in text for text in texts)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != token_file]
    assert written and not any(TOKEN.encode() in p.read_bytes() for p in written)
    assert not any(TOKEN.encode() in content for content in hub.head_files("user/pushed").values())
    assert not Path(constants.HF_TOKEN_PATH).exists()  # no login was stored


def test_token_help_warns_about_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(["push", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "visible to other users of the machine" in help_text and "--token-file" in help_text


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
