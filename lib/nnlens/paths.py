"""Every fixed path of the workbook, anchored at the repository root.

Nothing here depends on the caller's working directory: a notebook run with
``--cwd notebooks``, a test run from ``/tmp`` and ``make`` all see the same folders.
Where a run's reports go is not a path here but a value, ``report.Outputs``, passed down
from the runner or the notebook's first cell. The one environment variable the library
reads is ``NNLENS_CACHE``: where trained models, kernels and sweep results are cached.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RAW = DATA / "raw"
NOTEBOOKS = ROOT / "notebooks"
BENCHMARKS = ROOT / "benchmarks"
REPORTS = ROOT / "reports"                      # published results: written by the runner only
INTERACTIVE = ROOT / ".scratch" / "interactive"  # outputs of notebooks run by hand, one folder per profile


def show(p) -> str:
    """``p`` relative to the repository root when it is inside it (for messages), else as given."""
    try:
        return str(Path(p).relative_to(ROOT))
    except ValueError:
        return str(p)


def published_dir(profile: str) -> Path:
    """Where ``make reproduce`` publishes ``profile``: ``reports/``, or ``reports/<profile>/``."""
    return REPORTS if profile == "default" else REPORTS / profile


def cache_dir() -> Path:
    """Cache of trained models, kernels and features (git-ignored): ``NNLENS_CACHE`` or ``data/cache``."""
    p = Path(os.environ.get("NNLENS_CACHE", DATA / "cache"))
    p.mkdir(parents=True, exist_ok=True)
    return p
