"""Every path of the workbook, anchored at the repository root.

Nothing here depends on the caller's working directory: a notebook run with
``--cwd notebooks``, a test run from ``/tmp`` and ``make`` all see the same
folders. Two environment variables redirect outputs:

- ``NNLENS_REPORTS``: where figures, tables, claims and manifests go
  (``make test`` points it at a scratch folder so the committed ``reports/``
  is never touched; the notebook runner points it at a staging folder).
- ``NNLENS_CACHE``: where trained models and kernels are cached.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RAW = DATA / "raw"
NOTEBOOKS = ROOT / "notebooks"


def cache_dir() -> Path:
    """Cache of trained models, kernels and features (git-ignored)."""
    p = Path(os.environ.get("NNLENS_CACHE", DATA / "cache"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def reports_dir() -> Path:
    """Root of the report outputs (``reports/`` unless ``NNLENS_REPORTS`` is set)."""
    p = Path(os.environ.get("NNLENS_REPORTS", ROOT / "reports"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def _sub(name: str) -> Path:
    p = reports_dir() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def figures_dir() -> Path:
    """PNG and PDF figures."""
    return _sub("figures")


def tables_dir() -> Path:
    """CSV and Markdown tables."""
    return _sub("tables")


def bench_dir() -> Path:
    """Benchmark CSVs written by ``make bench``."""
    return _sub("bench")


def claims_dir() -> Path:
    """One CSV of claim rows per study; ``claims.md`` is built from them."""
    return _sub("claims")


def manifests_dir() -> Path:
    """One JSON manifest per study run."""
    return _sub("manifests")
