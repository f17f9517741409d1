"""Packaging for hf_visiontx: the package itself plus `modeling/`, installed as `hf_visiontx.modeling`."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
ONNX = ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"]
CTRANSLATE2 = ["ctranslate2>=4.5"]  # binary wheels (CPU; CUDA on Linux), needs numpy and pyyaml only

setup(
    name="hf_visiontx",
    version="0.1.0",
    description=(
        "The encoder-decoder Transformer, ViT and Swin written from scratch as first-class Hugging Face models."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "hf_visiontx",
        "hf_visiontx.analysis",
        "hf_visiontx.apps",
        "hf_visiontx.convert",
        "hf_visiontx.data",
        "hf_visiontx.export",
        "hf_visiontx.hub",
        "hf_visiontx.modeling",
        "hf_visiontx.training",
        "hf_visiontx.training.metrics",
    ],
    package_dir={"hf_visiontx": "hf_visiontx", "hf_visiontx.modeling": "modeling"},
    # The evaluate metric modules (metrics/<name>/<name>.py) are loaded by path, not imported: data files.
    package_data={"hf_visiontx.training.metrics": ["*/*.py"]},
    install_requires=[
        # torch first: install the CPU wheel yourself (`pip install torch==2.13.0`) before this package, or an
        # unpinned resolver may pick a multi-GB CUDA build.
        "torch>=2.6",
        "transformers>=5.24,<6",
        "accelerate>=1.0",
        "datasets>=3.0",
        "evaluate>=0.4.3",
        "huggingface-hub>=1.0",
        "safetensors>=0.4.3",
        "tokenizers>=0.21",
        "Pillow>=10.0",
        "num2words>=0.5.13",
        "scikit-learn>=1.3",
        "sacrebleu>=2.4",
    ],
    extras_require={
        "plots": ["matplotlib>=3.7"],
        # ONNX export (torch's dynamo exporter needs onnxscript) and ONNX Runtime to run the exported graphs
        "onnx": ONNX,
        # CTranslate2 export of the Transformer, and CTranslate2 to run it
        "ctranslate2": CTRANSLATE2,
        # The test suite runs every optional path, so nothing is skipped: plots, ONNX, CTranslate2, PEFT's LoRA and
        # torchao's quantizers (client libraries users bring to our models), the linter/formatter CI runs first, and
        # pytest-xdist, which runs the suite on every CPU.
        "test": [
            "pytest>=8.0",
            "pytest-xdist>=3.5",
            "matplotlib>=3.7",
            "peft>=0.17",
            "torchao>=0.14",
            "ruff==0.17.6",
            *ONNX,
            *CTRANSLATE2,
        ],
    },
    entry_points={"console_scripts": ["hf-visiontx = hf_visiontx.apps.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
