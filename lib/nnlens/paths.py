"""Every path of the workbook, anchored at the repository root.

Nothing here depends on the caller's working directory: a notebook run with
``--cwd notebooks``, a test run from ``/tmp`` and ``make`` all see the same
folders. Two environment variables redirect outputs:

- ``NNLENS_REPORTS``: where figures, tables, claims and manifests go. Only the
  notebook runner (``make reproduce``) publishes: it points this at a staging
  folder that it then moves into ``reports/``. ``make test`` points it at a
  scratch folder. When it is unset -- a notebook opened in JupyterLab and run by
  hand, at any profile -- outputs go to ``.scratch/interactive/<profile>/`` and
  ``reports/`` is never touched (``use_profile`` says so in one line).
- ``NNLENS_CACHE``: where trained models and kernels are cached.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RAW = DATA / "raw"
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"                      # published results: written by the runner only
INTERACTIVE = ROOT / ".scratch" / "interactive"  # outputs of notebooks run by hand, one folder per profile

_ours: str | None = None  # the NNLENS_REPORTS value that use_profile set for an interactive run


def publishing() -> bool:
    """True when a caller (the runner, ``make test``, ``make bench``) chose where outputs go."""
    value = os.environ.get("NNLENS_REPORTS")
    return bool(value) and value != _ours


def show(p) -> str:
    """``p`` relative to the repository root when it is inside it (for messages), else as given."""
    try:
        return str(Path(p).relative_to(ROOT))
    except ValueError:
        return str(p)


def published_dir(profile: str) -> Path:
    """Where ``make reproduce`` publishes ``profile`` (the runner's layout)."""
    return REPORTS if profile == "default" else REPORTS / profile


def use_profile(profile: str) -> Path:
    """Point an interactive run's outputs at ``.scratch/interactive/<profile>/``; returns the reports root.

    Every notebook calls this through ``profiles.resolve`` right after its parameters.
    When a caller set ``NNLENS_REPORTS`` nothing changes. Otherwise (a notebook run by
    hand) the scratch folder is exported as ``NNLENS_REPORTS``, so subprocesses (the
    study 05 benchmark) write there too, it starts with a copy of the published
    ``bench/`` inputs when there are any (as the runner's staging folder does), and one
    line says where the outputs go. Running again at another profile moves them along.
    """
    global _ours
    if publishing():
        return reports_dir()
    target = INTERACTIVE / profile
    os.environ["NNLENS_REPORTS"] = _ours = str(target)
    target.mkdir(parents=True, exist_ok=True)
    bench = published_dir(profile) / "bench"
    if bench.is_dir() and not (target / "bench").exists():
        shutil.copytree(bench, target / "bench")
    print(f"exploring at profile {profile!r}: outputs go to {show(target)}/ -- reports/ is published "
          "only by `make reproduce`")
    return target


def cache_dir() -> Path:
    """Cache of trained models, kernels and features (git-ignored)."""
    p = Path(os.environ.get("NNLENS_CACHE", DATA / "cache"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def reports_dir() -> Path:
    """Root of the report outputs: ``NNLENS_REPORTS``, else the interactive scratch folder.

    Never ``reports/`` by default: only a caller that sets ``NNLENS_REPORTS`` publishes."""
    value = os.environ.get("NNLENS_REPORTS")
    p = Path(value) if value else INTERACTIVE / (os.environ.get("NNLENS_PROFILE") or "default")
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
