"""Scripts for processes that load saved models as remote code, where hf_visiontx cannot be imported."""

import textwrap

# Put first in a script, this makes hf_visiontx unimportable: a meta-path finder refuses it before anything else
# is imported.
REFUSE_HF_VISIONTX = textwrap.dedent(
    """
    import importlib.abc, sys

    class RefuseHfVisiontx(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "hf_visiontx":
                raise ImportError("hf_visiontx is not importable in this process")
            return None

    sys.meta_path.insert(0, RefuseHfVisiontx())
    """
)

REMOTE_LOAD_SCRIPT = REFUSE_HF_VISIONTX + textwrap.dedent(
    """
    import torch, transformers
    from safetensors.torch import load_file, save_file

    model_dir, auto_name, inputs_file, outputs_file, output_name = sys.argv[1:6]
    auto_class = getattr(transformers, auto_name)
    try:
        auto_class.from_pretrained(model_dir)
    except ValueError as error:
        assert "trust_remote_code=True" in str(error), error
    else:
        raise AssertionError("loading custom code without trust_remote_code=True must fail")
    model = auto_class.from_pretrained(model_dir, trust_remote_code=True).eval()
    assert not any(name.split(".")[0] == "hf_visiontx" for name in sys.modules)
    inputs = load_file(inputs_file)
    with torch.no_grad():
        output = model(**inputs)[output_name]
    save_file({"output": output.contiguous()}, outputs_file)
    print(type(model).__module__, type(model).__name__)
    """
)
