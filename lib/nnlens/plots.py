"""One plotting style, and byte-stable figure files.

``use_style()`` sets the seaborn theme every notebook uses (call it explicitly:
importing this module changes nothing). ``savefig(fig, name)`` writes
``figures/<name>.png`` and ``figures/<name>.pdf`` with fixed metadata (no
timestamps, no version strings), atomically, so a rerun writes the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # headless by default; notebooks' inline backend still works
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from . import _io, paths  # noqa: E402

PALETTE = "colorblind"
_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}


def use_style(context: str = "notebook") -> None:
    """The workbook's one style: seaborn ``whitegrid``, colour-blind palette, fixed DPI."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    plt.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "figure.autolayout": False,
        "axes.titlesize": "medium",
        "legend.fontsize": "small",
        "svg.hashsalt": "nnlens",
        "pdf.fonttype": 42,
    })


class SavedFigure(tuple):
    """The (png, pdf) paths of a saved figure.

    Its repr names the files, not where they are, so a notebook cell that ends with
    ``plots.savefig(...)`` shows the same output on every machine and in staging.
    """

    def __new__(cls, png: Path, pdf: Path):
        return super().__new__(cls, (png, pdf))

    def __repr__(self) -> str:
        return f"saved figures/{self[0].name} and figures/{self[1].name}"


def savefig(fig, name: str, directory: Path | None = None, close: bool = False) -> SavedFigure:
    """Write ``fig`` as PNG and PDF under ``figures/``; returns both paths."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"figure name must be a plain file stem like '01_accuracy_vs_k', got {name!r}")
    out = Path(directory) if directory is not None else paths.figures_dir()
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    with _io.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata=_PNG_META)
    with _io.atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=_PDF_META)
    if close:
        plt.close(fig)
    return SavedFigure(png, pdf)
