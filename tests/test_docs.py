"""The documentation runs as written: every ```python block of README.md and docs/*.md is executed, and every
`hf-visiontx` command in a ```bash block is parsed by the real argument parser.

Fence conventions (GitHub highlights by the first word of the info string, so these stay highlighted):
- ```python          executed in a fresh interpreter, in an empty temporary working directory, offline (marked
                     `slow`: each starts an interpreter, so the quick lane `-m "not slow"` leaves them out);
- ```python norun    not executed (it needs the Hub, a GPU or files the reader has): compiled, and every name it
                     imports from hf_visiontx must exist;
- ```bash            lines starting with `hf-visiontx` are parsed with `build_parser()`; `python scripts/X.py` and
                     `./scripts/X` lines must name a script that exists, and their `--flags` must appear in it.
Any other fence (```text, the layout tree, tables) is not checked.
"""

import ast
import importlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import hf_visiontx
from hf_visiontx.apps.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SNIPPET_TIMEOUT_S = 300
SNIPPET_JOBS = 2  # snippets run side by side, at most one per CPU
FENCE = re.compile(r"^(\s*)(`{3,})(.*)$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    flags: tuple[str, ...]
    text: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the line of each opening fence."""
    blocks, lines, opened = [], path.read_text(encoding="utf-8").splitlines(), None
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if opened is None:
            if match:
                info = match.group(3).split()
                opened = (number, match.group(1), match.group(2), info[0] if info else "", tuple(info[1:]), [])
        elif match and match.group(2).startswith(opened[2]) and not match.group(3).strip():
            start, indent, _, language, flags, body = opened
            text = "\n".join(
                body_line[len(indent) :] if body_line.startswith(indent) else body_line for body_line in body
            )
            blocks.append(Block(path, start, language, flags, text + "\n"))
            opened = None
        else:
            opened[5].append(line)
    if opened is not None:
        raise ValueError(f"{path}:{opened[0]}: code fence never closed")
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in DOC_FILES for block in fenced_blocks(path)]


def python_params(runnable: bool = True) -> list:
    """The ```python blocks that run (`runnable`) or the ```python norun ones."""
    params = []
    for block in all_blocks():
        if block.language != "python" or ("norun" in block.flags) == runnable:
            continue
        params.append(pytest.param(block, id=block.name))
    return params


@dataclass
class Command:
    block: Block
    line: int
    words: list[str]

    @property
    def name(self) -> str:
        return f"{self.block.path.relative_to(REPO).as_posix()}:{self.line}"


def shell_commands(block: Block) -> list[Command]:
    """The commands of a bash block, continuation lines joined and comments dropped."""
    commands, pending, start = [], "", None
    for offset, line in enumerate(block.text.splitlines(), start=1):
        if not pending:
            start = block.line + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        if words:
            commands.append(Command(block, start, words))
    return commands


def command_params(kind: str) -> list:
    params = []
    for block in all_blocks():
        if block.language not in ("bash", "sh", "shell", "console"):
            continue
        for command in shell_commands(block):
            words = command.words
            if kind == "cli" and words[0] == "hf-visiontx":
                params.append(pytest.param(words[1:], id=command.name))
            elif kind == "script":
                script = (
                    words[1]
                    if words[0] in ("python", "python3") and len(words) > 1
                    else words[0]
                    if words[0].startswith("./scripts/")
                    else None
                )
                if script is not None and script.lstrip("./").startswith("scripts/"):
                    params.append(pytest.param(script, words, id=command.name))
    return params


def test_docs_have_snippets():
    assert (REPO / "docs").is_dir(), "docs/ is missing"
    assert python_params(), "no ```python blocks found in README.md or docs/"
    assert command_params("cli"), "no `hf-visiontx` commands found in README.md or docs/"


def run_snippet(block: Block, jobs: int) -> subprocess.CompletedProcess:
    """Run one snippet as a user would: a new interpreter, an empty working directory, no network."""
    with tempfile.TemporaryDirectory(prefix="hf_visiontx_doc_snippet_") as root:
        root = Path(root)
        (root / "hf_home").mkdir()
        (root / "work").mkdir()
        script = root / "snippet.py"
        script.write_text(block.text, encoding="utf-8")
        package_root = str(Path(hf_visiontx.__file__).resolve().parent.parent)  # the hf_visiontx these tests import
        env = {
            **os.environ,
            "HF_HOME": str(root / "hf_home"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "WANDB_DISABLED": "true",
            "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))  # snippets run side by side
        return subprocess.run(
            [sys.executable, str(script)],
            cwd=root / "work",
            env=env,
            capture_output=True,
            text=True,
            timeout=SNIPPET_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def snippet_results(request) -> dict[str, Future]:
    """Every selected, runnable snippet started at once on a small pool (each mostly waits on its imports), so the
    tests below only collect results; a test's result names its own snippet."""
    blocks = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_python_snippet_runs"
    ]
    jobs = max(1, min(SNIPPET_JOBS, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=jobs)
    yield {block.name: pool.submit(run_snippet, block, jobs) for block in blocks}
    pool.shutdown(wait=True, cancel_futures=True)  # after a failure with -x, the snippets not yet started are dropped


@pytest.mark.slow
@pytest.mark.parametrize("block", python_params())
def test_python_snippet_runs(block: Block, snippet_results: dict[str, Future]):
    result = snippet_results[block.name].result(timeout=SNIPPET_TIMEOUT_S * len(snippet_results))
    assert result.returncode == 0, (
        f"{block.name}: the snippet exited with {result.returncode}\n--- snippet ---\n{block.text}"
        f"--- stderr (last 4000 characters) ---\n{result.stderr[-4000:]}"
    )


@pytest.mark.parametrize("block", python_params(runnable=False))
def test_norun_snippet_compiles_and_imports_what_exists(block: Block):
    """A snippet that needs the Hub or the reader's files still has to be Python, and every name it imports from
    hf_visiontx has to exist."""
    tree = ast.parse(block.text, filename=block.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hf_visiontx":
            module = importlib.import_module(node.module)
            missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
            assert not missing, f"{block.name}: {node.module} has no {missing}"


@pytest.mark.parametrize("argv", command_params("cli"))
def test_cli_command_parses(argv: list[str]):
    """A renamed subcommand or flag makes argparse exit: the documented command would fail the same way."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as error:
        pytest.fail(f"`hf-visiontx {shlex.join(argv)}` does not parse (argparse exited with {error.code})")
    assert callable(args.handler)


def sibling_modules_imported(path: Path) -> list[Path]:
    """The files of the modules the Python script `path` imports from its own folder (as scripts/ does)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return [path.parent / f"{name}.py" for name in sorted(names) if (path.parent / f"{name}.py").is_file()]


@pytest.mark.parametrize(("script", "words"), command_params("script"))
def test_script_command_names_real_flags(script: str, words: list[str]):
    path = REPO / script.removeprefix("./")
    assert path.is_file(), f"{script} does not exist"
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".py":  # options may come from a parser the script imports from a script beside it
        source += "".join(sibling.read_text(encoding="utf-8") for sibling in sibling_modules_imported(path))
    for flag in (word.split("=")[0] for word in words if word.startswith("--")):
        if path.suffix == ".py":
            assert f'"{flag}"' in source, f"{script} has no {flag} option"
