"""Where a run's outputs go: one ``Outputs`` value, passed down, never an environment variable.

``Outputs(root)`` names the folders of one run's reports: ``figures/`` (PNG + PDF),
``tables/`` (CSV + Markdown), ``claims/`` (one CSV of ledger rows per study, joined into
``claims.md``), ``manifests/`` (one JSON per study) and ``bench/`` (benchmark CSVs that
notebooks read). It writes nothing until asked, and every write is atomic (``_io``).
``record_seconds(step, s)`` keeps a step's time out of every byte-stable file (``.seconds.json``,
which the runner moves into ``timings.json``).

Who makes it:

- the runner (``make reproduce``) gives each notebook its staging folder as the papermill
  parameter ``outputs``, then publishes the folder into ``reports/`` all or nothing;
- a notebook's first code cell calls ``studies.profiles.start(profile, outputs)``, the one
  place where the environment is read (``NNLENS_PROFILE`` and ``NNLENS_REPORTS``, which nbval
  and ``make test`` set because nbval cannot inject parameters);
- a notebook run by hand gets ``Outputs.interactive(profile)``: ``.scratch/interactive/<profile>/``,
  seeded with a copy of the published ``bench/`` inputs, and one line says so. Only
  ``make reproduce`` publishes into ``reports/``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import _io, paths
from . import figures, tables

SECONDS_FILE = ".seconds.json"   # a run's measured times; the runner moves them into timings.json


@dataclass(frozen=True)
class Outputs:
    """The report folders of one run, rooted at ``root``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def sub(self, name: str) -> Path:
        """``root/name``, created on first use."""
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def figures(self) -> Path:
        return self.sub("figures")

    @property
    def tables(self) -> Path:
        return self.sub("tables")

    @property
    def claims(self) -> Path:
        return self.sub("claims")

    @property
    def manifests(self) -> Path:
        return self.sub("manifests")

    @property
    def bench(self) -> Path:
        return self.sub("bench")

    def savefig(self, fig, name: str, close: bool = False) -> figures.SavedFigure:
        """``figures.savefig`` into ``figures/`` (a notebook cell ends with ``out.savefig(fig, "name");``)."""
        return figures.savefig(fig, name, self.figures, close=close)

    def save_table(self, df: pd.DataFrame, name: str, *, index: bool = False) -> Path:
        """``tables.save_table`` into ``tables/``; returns the CSV path."""
        return tables.save_table(df, name, self.tables, index=index)

    def record_seconds(self, step: str, seconds: float) -> float:
        """Record how long a step took (``"lr search, CPU s"``) in ``root/.seconds.json``.

        Times change from run to run, so they stay out of tables, figures and printed notebook
        output (all byte-stable); the runner moves this file into ``timings.json`` (per study,
        under ``steps``) instead of publishing it. Returns ``seconds``."""
        path = self.root / SECONDS_FILE
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {}
        doc[str(step)] = round(float(seconds), 1)
        self.root.mkdir(parents=True, exist_ok=True)
        _io.write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return seconds

    @classmethod
    def interactive(cls, profile: str, announce: bool = True) -> "Outputs":
        """A hand run's scratch outputs at ``profile``, seeded with the published ``bench/`` inputs."""
        out = cls(paths.INTERACTIVE / profile)
        out.root.mkdir(parents=True, exist_ok=True)
        bench = paths.published_dir(profile) / "bench"
        if bench.is_dir() and not (out.root / "bench").exists():
            shutil.copytree(bench, out.root / "bench")
        if announce:
            print(f"exploring at profile {profile!r}: outputs go to {paths.show(out.root)}/ -- reports/ is "
                  "published only by `make reproduce`")
        return out

    def __repr__(self) -> str:
        return f"Outputs({paths.show(self.root)!r})"
