"""`hf-visiontx push` / `pull` against the local Hub: round trips, cards with metrics, every fault, token hygiene.

Each phase runs the real CLI entry point (`hf_visiontx.apps.cli.main`) several times in one client process, so that
huggingface_hub reads HF_ENDPOINT afresh (see hub_server.run_client) without one interpreter start per command.
"""

import json
import socket
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import VtxSwinForImageClassification
from hf_visiontx.hub import write_model_card
from hf_visiontx.modeling.card_text import CARD_MARKER
from support.hub_server import HubServer, run_client
from support.swin_tester import tiny_swin_config

TOKEN = "hf_cli_secret_4f1d9c"
BAD_TOKEN = "hf_wrong_secret_77aa01"
REPO = "user/cli-swin"

pytestmark = pytest.mark.slow  # client processes against the local Hub server

CLIENT_SCRIPT = """
import contextlib, io, json, sys
from hf_visiontx.apps.cli import main

results = []
for step in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if "cli" in step:
            code = main(step["cli"])
        else:  # load through the transformers API, as users do
            import transformers
            try:
                getattr(transformers, step["auto"]).from_pretrained(step["load"])
                code = 0
            except OSError as error:
                print(error, file=sys.stderr)
                code = 1
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
json.dump(results, open(sys.argv[2], "w"))
"""


def run_steps(steps: list[dict], tmp: Path, hub: HubServer | str, name: str) -> list[dict]:
    """Run CLI/API steps in one client process; each result has the exit code, stdout, stderr."""
    result = run_client(CLIENT_SCRIPT, json.dumps(steps), tmp / f"{name}.json", hub=hub, hf_home=tmp / "hf_home")
    results = json.loads((tmp / f"{name}.json").read_text())
    for step_result in results:  # what the process printed outside redirect_* (logging) is audited too
        step_result["process_err"] = result.stderr
    return results


def cli(*argv) -> dict:
    return {"cli": [str(arg) for arg in argv]}


def save_swin(directory: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = VtxSwinForImageClassification(tiny_swin_config()).eval()
    model.save_pretrained(directory)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(directory)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A Hub, two versions of a Swin model on disk, a pickle-only repo, and the first phase of commands."""
    tmp = tmp_path_factory.mktemp("hub_cli")
    hub = HubServer(tokens={TOKEN}).start()
    v1, v2 = tmp / "swin_v1", tmp / "swin_v2"
    states = {"v1": save_swin(v1, seed=0), "v2": save_swin(v2, seed=1)}
    write_model_card(v1, datasets=["sklearn-digits"], metrics={"accuracy": 0.981})
    pickled = tmp / "pickled"
    save_swin(pickled, seed=2)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")  # stands in for a pickled checkpoint
    config = (pickled / "config.json").read_bytes()
    hub.seed("user/pickled-only", {"config.json": config, "pytorch_model.bin": b"not really a pickle"})
    out = tmp / "pulled"
    steps = [
        cli("push", v1, REPO, "--token", BAD_TOKEN),  # 0 bad token
        cli("push", v1, REPO, "--private", "--token", TOKEN),  # 1 private push
        cli("pull", REPO, out / "no_token"),  # 2 private, no token
        cli("pull", REPO, out / "v1", "--token", TOKEN),  # 3 pull
        cli("pull", "user/missing", out / "missing", "--token", TOKEN),  # 4 no such repo
        cli("pull", REPO, out / "bad_revision", "--revision", "v9", "--token", TOKEN),  # 5 no such revision
        cli("push", v2, REPO, "--revision", "dev", "--token", TOKEN),  # 6 push to a branch
        cli("pull", REPO, out / "dev", "--revision", "dev", "--token", TOKEN),  # 7 pull the branch
        cli("push", pickled, "user/cli-pickle", "--token", TOKEN),  # 8 local pickles
        cli("pull", "user/pickled-only", out / "pickled"),  # 9 pickle-only repo
        cli("pull", REPO, out / "v1", "--token", TOKEN),  # 10 target not empty
        {"load": "user/pickled-only", "auto": "AutoModelForImageClassification"},  # 11 API refuses too
    ]
    first = run_steps(steps, tmp, hub, "phase1")
    yield {"hub": hub, "tmp": tmp, "v1": v1, "v2": v2, "out": out, "states": states, "first": first, "outputs": []}
    hub.stop()


def assert_fails(result: dict, *fragments: str) -> None:
    assert result["code"] == 1, result
    assert result["err"].startswith("hf-visiontx ") and "Traceback" not in result["err"], result["err"]
    for fragment in fragments:
        assert fragment in result["err"], (fragment, result["err"])


def assert_same_weights(directory: Path, expected: dict[str, torch.Tensor]) -> None:
    loaded = load_file(directory / "model.safetensors")
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_push_and_pull_round_trip_private_repo_and_branch(session):
    first, out, hub = session["first"], session["out"], session["hub"]
    assert first[1]["code"] == 0 and f"pushed {session['v1']} to {REPO}" in first[1]["out"]
    assert hub.repos[REPO].private
    assert first[3]["code"] == 0
    assert_same_weights(out / "v1", session["states"]["v1"])
    pushed_files = set(hub.head_files(REPO))
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "modeling_swin.py",
        "configuration_swin.py",
    } <= pushed_files
    assert sorted(path.name for path in (out / "v1").iterdir()) == sorted(pushed_files)  # no staging leftovers
    assert first[6]["code"] == 0 and first[7]["code"] == 0
    assert_same_weights(out / "dev", session["states"]["v2"])
    assert hub.head_files(REPO)["model.safetensors"] == (session["v1"] / "model.safetensors").read_bytes()


def test_pushed_card_keeps_the_recorded_metrics_and_points_at_the_repo(session):
    card = ModelCard(session["hub"].head_files(REPO)["README.md"].decode())
    assert CARD_MARKER in card.content and f'repo = "{REPO}"' in card.content
    assert card.data.pipeline_tag == "image-classification" and card.data.datasets == ["sklearn-digits"]
    assert card.data.metrics == ["accuracy"]
    result = card.data.eval_results[0]
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("accuracy", 0.981, "sklearn-digits")
    assert "| accuracy | 0.981 |" in card.content


def test_clear_errors_for_tokens_repos_and_revisions(session):
    first, out = session["first"], session["out"]
    assert_fails(first[0], "refused the token (401)", REPO, "--token-file or HF_TOKEN")
    assert_fails(first[2], f"Repository {REPO} was not found", "private", "pass a token")
    assert_fails(first[4], "Repository user/missing was not found")
    assert_fails(first[5], "Revision 'v9' was not found in user/cli-swin")
    assert_fails(first[10], "already exists and is not empty")
    for name in ("no_token", "missing", "bad_revision"):
        assert not (out / name).exists()
    assert sorted(p.name for p in out.iterdir()) == ["dev", "v1"]  # no staging folders left behind


def test_pickled_weights_are_refused_both_ways(session):
    first = session["first"]
    assert_fails(first[8], "pickled files ['pytorch_model.bin']", "safetensors weights only")
    assert "user/cli-pickle" not in session["hub"].repos
    assert_fails(first[9], "user/pickled-only has only pickled weights (pytorch_model.bin)", "arbitrary code")
    assert first[11]["code"] == 1 and "does not unpickle pytorch_model.bin" in first[11]["err"]
    assert not (session["out"] / "pickled").exists()


def test_failed_push_leaves_the_repo_unchanged_and_a_retry_succeeds(session):
    hub, tmp = session["hub"], session["tmp"]
    repo = hub.repos[REPO]
    head, commits = repo.branches["main"], len(repo.commits)
    hub.fail("commit", 500)
    try:
        failed = run_steps([cli("push", session["v2"], REPO, "--token", TOKEN)], tmp, hub, "phase2")
    finally:
        hub.heal()
    session["outputs"] += failed
    assert_fails(
        failed[0],
        "answered 500 Internal Server Error when asked to commit to user/cli-swin;",
        "no commit was made, so the repository is unchanged",
        "again",
    )
    assert repo.branches["main"] == head and len(repo.commits) == commits
    retried = run_steps([cli("push", session["v2"], REPO, "--token", TOKEN)], tmp, hub, "phase3")
    session["outputs"] += retried
    assert retried[0]["code"] == 0 and repo.branches["main"] != head
    assert hub.head_files(REPO)["model.safetensors"] == (session["v2"] / "model.safetensors").read_bytes()


def test_unreachable_server_is_named(session):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    steps = [cli("push", session["v1"], REPO, "--token", TOKEN), cli("pull", REPO, session["out"] / "offline")]
    results = run_steps(steps, session["tmp"], endpoint, "phase4")
    session["outputs"] += results
    for result in results:
        assert_fails(result, f"Cannot reach the Hub at {endpoint}", "HF_ENDPOINT")
    assert not (session["out"] / "offline").exists()


def test_token_is_never_printed_logged_or_written(session):
    texts = [r[key] for r in session["first"] + session["outputs"] for key in ("out", "err", "process_err")]
    assert texts and not any(secret in text for text in texts for secret in (TOKEN, BAD_TOKEN))
    files = [path for path in session["tmp"].rglob("*") if path.is_file()]
    assert files and not any(
        TOKEN.encode() in path.read_bytes() or BAD_TOKEN.encode() in path.read_bytes() for path in files
    )
    assert not (session["tmp"] / "hf_home" / "token").exists()
    for repo in session["hub"].repos.values():
        for commit in repo.commits.values():
            assert not any(TOKEN.encode() in content for content in commit.files.values())
