"""One plotting style, and byte-stable figure files.

``use_style()`` sets the seaborn theme every notebook uses (call it explicitly:
importing this module changes nothing, not even the matplotlib backend). ``savefig(fig, name)``
writes ``figures/<name>.png`` and ``figures/<name>.pdf`` with fixed metadata (no
timestamps, no version strings), atomically, so a rerun writes the same bytes
(``report.Outputs.savefig`` writes into a run's ``figures/``).

Figures show inline: this module leaves the backend to matplotlib, so a Jupyter
kernel uses its inline backend (JupyterLab shows the figure; papermill embeds it in
the executed notebook as an image/png output) and a script or test without a display
falls back to Agg by itself. ``savefig`` does not close the figure, so the inline
backend displays it once at the end of the cell (a cell ends with
``out.savefig(fig, "name");`` -- the semicolon keeps the returned paths quiet).

Random draws in plots are seeded by ``use_style()``, so a rerun draws the same picture: seaborn's
bootstrap confidence bands (``errorbar=("ci", ...)``, the default of lineplot, pointplot and
relplot) take seed 0 when a call gives none (seaborn 0.13 draws them from fresh OS entropy
otherwise), and numpy's legacy global RNG, which stripplot's jitter uses, is seeded to 0
(study 01's ``01_vstar`` figure differed between two runs because of that jitter).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .. import _io

PALETTE = "colorblind"
_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}


def use_style(context: str = "notebook") -> None:
    """The workbook's one style: seaborn ``whitegrid``, colour-blind palette, fixed DPI, seeded draws."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    _seed_plot_randomness()
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


def _seed_plot_randomness(seed: int = 0) -> None:
    """Seaborn's bootstraps default to ``seed`` (once patched), and numpy's legacy global RNG is seeded."""
    from seaborn import _statistics

    boot = _statistics.bootstrap
    if not getattr(boot, "nnlens_seeded", False):
        def bootstrap(*args, **kwargs):
            if kwargs.get("seed") is None and kwargs.get("random_seed") is None:
                kwargs["seed"] = seed
            return boot(*args, **kwargs)

        bootstrap.nnlens_seeded = True
        _statistics.bootstrap = bootstrap
    np.random.seed(seed)      # stripplot's jitter draws from np.random.uniform


class SavedFigure(tuple):
    """The (png, pdf) paths of a saved figure.

    Its repr names the files, not where they are, so a notebook cell that ends with
    ``out.savefig(...)`` shows the same output on every machine and in staging.
    """

    def __new__(cls, png: Path, pdf: Path):
        return super().__new__(cls, (png, pdf))

    def __repr__(self) -> str:
        return f"saved figures/{self[0].name} and figures/{self[1].name}"


def savefig(fig, name: str, directory: Path, close: bool = False) -> SavedFigure:
    """Write ``fig`` as PNG and PDF into ``directory`` (a run's ``figures/``); returns both paths.

    The figure stays open (so a notebook displays it) unless ``close=True``; the files
    do not depend on the backend that shows it: the face colour is fixed to white here
    because the inline backend may otherwise make the saved background transparent."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"figure name must be a plain file stem like '01_accuracy_vs_k', got {name!r}")
    out = Path(directory)
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    with _io.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata=_PNG_META, facecolor="white")
    with _io.atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata=_PDF_META, facecolor="white")
    if close:
        plt.close(fig)
    return SavedFigure(png, pdf)
