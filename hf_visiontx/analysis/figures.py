"""Drawing and writing pictures: matplotlib figures without pyplot, input images, and output folders written
all or nothing."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def require_matplotlib() -> tuple[type, type]:
    """matplotlib's Figure and Agg canvas classes, or an ImportError saying how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("hf_visiontx plots need matplotlib: pip install matplotlib") from error
    return Figure, FigureCanvasAgg


def new_figure(**figure_kwargs: Any) -> Any:
    """A matplotlib Figure drawn by the Agg backend.

    The figure is not registered with pyplot, so no global backend is switched and nothing stays open after
    saving: it is freed like any Python object.
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(**figure_kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """Write `figure` as a PNG to `path` and free its contents; returns the path."""
    path = Path(path)
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
    figure.clear()
    return path


def write_all_or_nothing(out_dir: str | os.PathLike, draw: Callable[[Path], list[Path]]) -> list[Path]:
    """Runs draw(staging_dir) in a temporary directory next to `out_dir`, then moves the files it returns into
    `out_dir` (created if needed, existing files of the same name replaced); returns their new paths.

    A failure while drawing leaves no partial output: the staging directory is removed in every case.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        drawn = draw(staging)
        out_dir.mkdir(exist_ok=True)
        written = []
        for path in drawn:
            written.append(out_dir / path.name)
            os.replace(path, written[-1])
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
