"""Run from the root of a source checkout, the package's model files are the sibling folder `modeling/`."""

import importlib.util
import sys
from pathlib import Path


def load_checkout_modeling() -> None:
    """Import the repository's top-level `modeling/` folder as `hf_visiontx.modeling` when this package is
    imported from a source checkout.

    An installed package holds `hf_visiontx/modeling/` (setup.py maps the folder there). Run from the root of a
    checkout, Python finds the checkout's `hf_visiontx/` first (the working directory leads `sys.path`), and that
    folder has no `modeling/`: the model files sit beside it.
    """
    package_dir = Path(__file__).parent
    checkout_modeling = package_dir.parent / "modeling" / "__init__.py"
    if (package_dir / "modeling").is_dir() or not checkout_modeling.is_file():
        return
    spec = importlib.util.spec_from_file_location(
        "hf_visiontx.modeling", checkout_modeling, submodule_search_locations=[str(checkout_modeling.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


load_checkout_modeling()
