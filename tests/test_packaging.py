"""The package imports from a non-editable install, from the root of a source checkout (whose `hf_visiontx/`
shadows the installed one and has no `modeling/` of its own), and from anywhere else."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support.launch import REPO_ROOT

# Imports the package with the given path first on sys.path and no site hooks (so no editable-install finder), the
# way a plain `pip install .` leaves the interpreter; prints where the package and its model files came from.
IMPORT_SCRIPT = """
import sys
sys.path[:0] = sys.argv[1:]
import hf_visiontx
from transformers import AutoConfig
assert type(AutoConfig.for_model("vtx_vit")) is hf_visiontx.VtxViTConfig
print(hf_visiontx.__file__)
print(hf_visiontx.modeling.__file__)
"""


def import_locations(cwd: Path, *path: str) -> list[Path]:
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_SCRIPT, *path, site_packages],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [Path(line).resolve() for line in result.stdout.split()]


@pytest.mark.slow
def test_a_source_checkout_imports_from_its_root_without_an_install(tmp_path):
    package, model_files = import_locations(REPO_ROOT, "")
    assert package == REPO_ROOT / "hf_visiontx" / "__init__.py"
    assert model_files == REPO_ROOT / "modeling" / "__init__.py"


@pytest.mark.slow
def test_a_non_editable_install_imports_from_the_checkout_root_and_elsewhere(tmp_path):
    # pip builds in the source folder: install from a copy, so that the checkout stays clean.
    source = tmp_path / "source"
    leave_out = shutil.ignore_patterns(".git", ".venv", "build", "demo-output", "__pycache__", "*.egg-info")
    shutil.copytree(REPO_ROOT, source, ignore=leave_out)
    target = tmp_path / "installed"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*install, "--target", str(target), str(source)], check=True, capture_output=True, timeout=600)
    assert (target / "hf_visiontx" / "modeling" / "modeling_vit.py").is_file()
    assert (target / "hf_visiontx" / "training" / "metrics" / "accuracy" / "accuracy.py").is_file()
    assert (target / "hf_visiontx" / "export" / "ctranslate2.py").is_file()
    # From the root the checkout shadows the install (the working directory leads sys.path), as with any package.
    package, model_files = import_locations(REPO_ROOT, "", str(target))
    assert (package, model_files) == (REPO_ROOT / "hf_visiontx" / "__init__.py", REPO_ROOT / "modeling" / "__init__.py")
    package, model_files = import_locations(tmp_path, str(target))
    assert model_files == (target / "hf_visiontx" / "modeling" / "__init__.py").resolve()
    assert package == (target / "hf_visiontx" / "__init__.py").resolve()
