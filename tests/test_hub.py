"""push_to_hub / from_pretrained round trips against the in-memory Hub of hub_server.py.

conftest.py imports transformers with HF_HUB_OFFLINE=1, and huggingface_hub reads HF_ENDPOINT only once, when it
is first imported; so every client operation runs in a subprocess whose environment points at the local server.
The pushes all happen in one subprocess and the pulls in another, to keep the number of interpreter starts low.
"""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load, load_file, save_file
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_visiontx import (
    VtxSwinForImageClassification,
    VtxTransformerForConditionalGeneration,
    VtxViTForImageClassification,
)
from hf_visiontx.data import train_tokenizer
from hf_visiontx.modeling.card_text import CARD_MARKER
from support.hub_server import HubServer, run_client
from support.remote_code import REFUSE_HF_VISIONTX, REMOTE_LOAD_SCRIPT  # for processes where hf_visiontx is absent
from support.swin_tester import tiny_swin_config
from support.transformer_tester import padded_source_batch, tiny_transformer_config
from support.vit_tester import tiny_vit_config

pytestmark = pytest.mark.slow  # client processes against the local Hub server

TOKEN = "hf_local_test_token"
TEXTS = ["the cat sat on the mat", "a dog ate the bone", "the bird sang a song", "cats and dogs and birds"] * 4

FAMILIES = {  # family -> (model class, tiny config, Auto class, repo)
    "transformer": (
        VtxTransformerForConditionalGeneration,
        tiny_transformer_config,
        "AutoModelForSeq2SeqLM",
        "user/tiny-transformer",
    ),
    "vit": (VtxViTForImageClassification, tiny_vit_config, "AutoModelForImageClassification", "user/tiny-vit"),
    "swin": (VtxSwinForImageClassification, tiny_swin_config, "AutoModelForImageClassification", "user/tiny-swin"),
}
PRIVATE_REPO = "user/private-swin"
SAVED_AND_PUSHED_REPO = "user/saved-and-pushed-vit"

PUSH_SCRIPT = """
import json, sys
import hf_visiontx, transformers
from huggingface_hub import HfApi
from transformers import AutoTokenizer
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

api, shas = HfApi(), {}
for step in json.loads(sys.argv[1]):
    model = getattr(transformers, step["auto"]).from_pretrained(step["dir"])
    if step.get("via_save_pretrained"):
        model.save_pretrained(step["dir"] + "-pushed", push_to_hub=True, repo_id=step["repo"])
    else:
        model.push_to_hub(step["repo"], private=step.get("private", False))
    if "tokenizer" in step:
        AutoTokenizer.from_pretrained(step["tokenizer"]).push_to_hub(step["repo"])
    if "processor" in step:
        ViTImageProcessorPil.from_pretrained(step["processor"]).push_to_hub(step["repo"])
    shas.setdefault(step["repo"], []).append(api.model_info(step["repo"]).sha)
    if "tag" in step:
        api.create_tag(step["repo"], tag=step["tag"])
json.dump(shas, open(sys.argv[2], "w"))
"""

PULL_SCRIPT = """
import json, sys
import hf_visiontx, transformers
from huggingface_hub.errors import RepositoryNotFoundError
from safetensors.torch import save_file
from transformers import AutoImageProcessor, AutoTokenizer

results = {}
for step in json.loads(sys.argv[1]):
    kwargs = {k: step[k] for k in ("revision", "token") if k in step}
    try:
        model = getattr(transformers, step["auto"]).from_pretrained(step["repo"], **kwargs)
    except (RepositoryNotFoundError, OSError) as error:
        results[step["name"]] = {"error": type(error).__name__}
        continue
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, step["out"])
    result = {"class": type(model).__name__}
    if step.get("tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(step["repo"], **kwargs)
        result["input_ids"] = tokenizer("the cat and the bird")["input_ids"]
    if step.get("processor"):
        processor = AutoImageProcessor.from_pretrained(step["repo"], **kwargs)
        result["processor"] = [type(processor).__name__, dict(processor.size), list(processor.image_mean)]
    results[step["name"]] = result
json.dump(results, open(sys.argv[2], "w"))
"""


def state_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def assert_same_state(path: Path, expected: dict[str, torch.Tensor]) -> None:
    loaded = load_file(path)
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN}) as server:
        yield server


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """Push every family (model + tokenizer/processor), a second ViT version, a tag and a private repo."""
    root = tmp_path_factory.mktemp("push")
    models, steps = {}, []
    tokenizer = train_tokenizer(TEXTS, vocab_size=40)
    tokenizer.save_pretrained(root / "tokenizer")
    processor = ViTImageProcessorPil(
        size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.2, 0.2]
    )
    processor.save_pretrained(root / "processor")
    for seed, (family, (model_class, make_config, auto_name, repo)) in enumerate(FAMILIES.items()):
        torch.manual_seed(seed)
        model = model_class(make_config()).eval()
        model.save_pretrained(root / family)
        models[family] = model
        step = {"auto": auto_name, "dir": str(root / family), "repo": repo}
        step |= (
            {"tokenizer": str(root / "tokenizer")}
            if family == "transformer"
            else {"processor": str(root / "processor")}
        )
        if family == "vit":
            step["tag"] = "v1"
        steps.append(step)
    # A second ViT version with changed weights, pushed after the tag.
    torch.manual_seed(10)
    vit_v2 = VtxViTForImageClassification(tiny_vit_config()).eval()
    vit_v2.save_pretrained(root / "vit_v2")
    steps.append({"auto": "AutoModelForImageClassification", "dir": str(root / "vit_v2"), "repo": FAMILIES["vit"][3]})
    steps.append(
        {"auto": "AutoModelForImageClassification", "dir": str(root / "swin"), "repo": PRIVATE_REPO, "private": True}
    )
    steps.append(
        {
            "auto": "AutoModelForImageClassification",
            "dir": str(root / "vit"),
            "repo": SAVED_AND_PUSHED_REPO,
            "via_save_pretrained": True,
        }
    )
    run_client(PUSH_SCRIPT, json.dumps(steps), root / "shas.json", hub=hub, hf_home=root / "hf_home", token=TOKEN)
    shas = json.loads((root / "shas.json").read_text())
    states = {family: state_of(model) for family, model in models.items()} | {"vit_v2": state_of(vit_v2)}
    return {"models": models, "states": states, "shas": shas, "tokenizer": tokenizer, "processor": processor}


@pytest.fixture(scope="module")
def pulled(hub, pushed, tmp_path_factory):
    """Load everything back in one fresh process with an empty HF_HOME and no HF_TOKEN."""
    root = tmp_path_factory.mktemp("pull")
    first_vit = pushed["shas"][FAMILIES["vit"][3]][0]
    steps = [
        {
            "name": family,
            "auto": auto_name,
            "repo": repo,
            "out": str(root / f"{family}.safetensors"),
            "tokenizer": family == "transformer",
            "processor": family != "transformer",
        }
        for family, (_, _, auto_name, repo) in FAMILIES.items()
    ]
    vit_repo = FAMILIES["vit"][3]
    steps += [
        {
            "name": "vit_at_sha",
            "auto": "AutoModelForImageClassification",
            "repo": vit_repo,
            "revision": first_vit,
            "out": str(root / "vit_at_sha.safetensors"),
        },
        {
            "name": "vit_at_tag",
            "auto": "AutoModelForImageClassification",
            "repo": vit_repo,
            "revision": "v1",
            "out": str(root / "vit_at_tag.safetensors"),
        },
        {
            "name": "private_without_token",
            "auto": "AutoModelForImageClassification",
            "repo": PRIVATE_REPO,
            "out": str(root / "private_without_token.safetensors"),
        },
        {
            "name": "private_with_token",
            "auto": "AutoModelForImageClassification",
            "repo": PRIVATE_REPO,
            "token": TOKEN,
            "out": str(root / "private_with_token.safetensors"),
        },
    ]
    run_client(PULL_SCRIPT, json.dumps(steps), root / "results.json", hub=hub, hf_home=root / "hf_home")
    return {"root": root, "results": json.loads((root / "results.json").read_text())}


def test_server_speaks_the_hub_protocol(hub, pushed):
    assert all(len(shas[0]) == 40 and all(c in "0123456789abcdef" for c in shas[0]) for shas in pushed["shas"].values())
    files = hub.head_files(FAMILIES["transformer"][3])
    assert {".gitattributes", "config.json", "model.safetensors", "tokenizer.json", "modeling_transformer.py"} <= set(
        files
    )
    assert hub.repos[PRIVATE_REPO].private and not hub.repos[FAMILIES["vit"][3]].private
    assert not any(path.endswith(("/xet-write-token/main", "/info/lfs/objects/batch")) for _, path in hub.requests)


@pytest.mark.parametrize("family", FAMILIES)
def test_pushed_model_and_preprocessor_load_back_identically(pushed, pulled, family):
    result = pulled["results"][family]
    expected = pushed["states"]["vit_v2" if family == "vit" else family]
    assert result["class"] == FAMILIES[family][0].__name__
    assert_same_state(pulled["root"] / f"{family}.safetensors", expected)
    if family == "transformer":
        assert result["input_ids"] == pushed["tokenizer"]("the cat and the bird")["input_ids"]
    else:
        processor = pushed["processor"]
        assert result["processor"] == ["ViTImageProcessorPil", dict(processor.size), list(processor.image_mean)]


def test_second_push_makes_a_new_commit_and_old_revisions_stay_reachable(hub, pushed, pulled):
    vit_repo = FAMILIES["vit"][3]
    first, second = pushed["shas"][vit_repo]
    assert first != second and hub.repos[vit_repo].branches["main"] == second
    assert hub.repos[vit_repo].tags == {"v1": first}
    assert not torch.equal(
        pushed["states"]["vit"]["classifier.weight"], pushed["states"]["vit_v2"]["classifier.weight"]
    )
    for name in ("vit_at_sha", "vit_at_tag"):
        assert_same_state(pulled["root"] / f"{name}.safetensors", pushed["states"]["vit"])


def test_private_repo_needs_a_token(pushed, pulled):
    assert pulled["results"]["private_without_token"]["error"] in ("RepositoryNotFoundError", "OSError")
    assert_same_state(pulled["root"] / "private_with_token.safetensors", pushed["states"]["swin"])


def test_cached_download_reloads_offline_without_requests(hub, pushed, pulled, tmp_path):
    steps = [
        {
            "name": family,
            "auto": auto_name,
            "repo": repo,
            "out": str(tmp_path / f"{family}.safetensors"),
            "tokenizer": family == "transformer",
            "processor": family == "vit",
        }
        for family, (_, _, auto_name, repo) in FAMILIES.items()
        if family != "swin"
    ]
    seen = len(hub.requests)
    run_client(
        PULL_SCRIPT,
        json.dumps(steps),
        tmp_path / "results.json",
        hub=hub,
        hf_home=pulled["root"] / "hf_home",
        offline=True,
    )
    assert hub.requests[seen:] == []
    results = json.loads((tmp_path / "results.json").read_text())
    assert_same_state(tmp_path / "transformer.safetensors", pushed["states"]["transformer"])
    assert_same_state(tmp_path / "vit.safetensors", pushed["states"]["vit_v2"])
    assert results["transformer"]["input_ids"] == pulled["results"]["transformer"]["input_ids"]
    assert results["vit"]["processor"] == pulled["results"]["vit"]["processor"]


def test_pushed_model_loads_as_remote_code_without_hf_visiontx(hub, pushed, tmp_path):
    input_ids, attention_mask = padded_source_batch()
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": input_ids[:, :4].clone()}
    save_file(inputs, tmp_path / "inputs.safetensors")
    with torch.no_grad():
        expected = pushed["models"]["transformer"](**inputs)["logits"]
    hf_home = tmp_path / "hf_home"
    result = run_client(
        REMOTE_LOAD_SCRIPT,
        FAMILIES["transformer"][3],
        "AutoModelForSeq2SeqLM",
        tmp_path / "inputs.safetensors",
        tmp_path / "outputs.safetensors",
        "logits",
        hub=hub,
        hf_home=hf_home,
    )
    assert "VtxTransformerForConditionalGeneration" in result.stdout and "hf_visiontx" not in result.stdout
    assert torch.equal(load_file(tmp_path / "outputs.safetensors")["output"], expected)


CARD_EXPECTATIONS = {  # family -> (pipeline_tag, Auto class in the snippet)
    "transformer": ("translation", "AutoModelForSeq2SeqLM"),
    "vit": ("image-classification", "AutoModelForImageClassification"),
    "swin": ("image-classification", "AutoModelForImageClassification"),
}


def pushed_card(hub: HubServer, repo_id: str) -> ModelCard:
    return ModelCard(hub.head_files(repo_id)["README.md"].decode())


def python_block(card: ModelCard) -> str:
    return card.content.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_pushed_model_card_has_metadata_and_describes_the_model(hub, pushed, family):
    repo_id, (pipeline_tag, auto_name) = FAMILIES[family][3], CARD_EXPECTATIONS[family]
    card = pushed_card(hub, repo_id)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == pipeline_tag
    assert card.data.license == "apache-2.0"
    assert {"hf_visiontx", f"vtx_{family}", "custom_code"} <= set(card.data.tags)
    assert CARD_MARKER in card.content and f"# {repo_id.split('/')[1]}" in card.content
    assert f"head: `{FAMILIES[family][0].__name__}`" in card.content and "preset: none" in card.content
    parameters = pushed["models"][family].num_parameters()
    assert f"({parameters:,})" in card.content
    snippet = python_block(card)
    assert f'repo = "{repo_id}"' in snippet and f"{auto_name}.from_pretrained(repo, trust_remote_code=True)" in snippet


SNIPPET_SCRIPT = (
    REFUSE_HF_VISIONTX
    + """
import contextlib, io, json
outputs = {}
for name, code in json.loads(sys.argv[1]).items():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    outputs[name] = printed.getvalue()
json.dump(outputs, open(sys.argv[2], "w"))
"""
)


def test_model_card_usage_snippets_run_as_written_without_hf_visiontx(hub, pushed, tmp_path):
    snippets = {family: python_block(pushed_card(hub, FAMILIES[family][3])) for family in ("transformer", "vit")}
    run_client(SNIPPET_SCRIPT, json.dumps(snippets), tmp_path / "out.json", hub=hub, hf_home=tmp_path / "hf_home")
    printed = json.loads((tmp_path / "out.json").read_text())
    assert "[y/N]" not in printed["transformer"]  # no trust_remote_code prompt: the snippet answers it
    translations = json.loads(printed["transformer"].replace("'", '"'))
    assert isinstance(translations, list) and len(translations) == 2  # two sentences in, two translations out
    model = pushed["models"]["vit"]
    assert printed["vit"].strip() in model.config.id2label.values()


def test_save_pretrained_with_push_to_hub_uploads_our_card(hub, pushed):
    files = hub.head_files(SAVED_AND_PUSHED_REPO)
    card = ModelCard(files["README.md"].decode())
    assert CARD_MARKER in card.content and f'repo = "{SAVED_AND_PUSHED_REPO}"' in card.content
    weights = load(files["model.safetensors"])
    assert weights.keys() == pushed["states"]["vit"].keys()
    assert all(torch.equal(weights[name], tensor) for name, tensor in pushed["states"]["vit"].items())
