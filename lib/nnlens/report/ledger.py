"""Tables, the claims ledger and the run manifest.

- ``save_table(df, name)`` writes ``tables/<name>.csv`` and ``tables/<name>.md``
  with one fixed float format, atomically, so reruns give identical bytes.
- ``Row``: one verdict on one paper claim, as a study's ``claims(results, cfg)``
  returns it (``nnlens.studies``): id (``01.2``), statement, measured value,
  threshold and whether it holds.
- ``Ledger(study, profile)`` collects the rows of one study at one profile
  (``ledger.extend(rows)`` or ``ledger.claim(...)``). ``Ledger.save()`` writes
  ``claims/<study>.csv``; ``build_claims_md()`` joins every study's rows into
  ``claims.md``.
- ``write_manifest(study, profile, seeds)``: profile, seeds, package versions,
  commit, hardware, torch build and threads, data file hashes of a run, as JSON.
"""
from __future__ import annotations

import json
import math
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from . import _io, paths

FLOAT_FORMAT = "%.4f"


def _fmt(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "nan"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.3e}"
        return FLOAT_FORMAT % x
    return str(x)


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table with the fixed float format."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [_fmt(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, name: str, *, index: bool = False, directory: Path | None = None) -> Path:
    """Write ``df`` as ``<name>.csv`` and ``<name>.md``; returns the CSV path."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save_table needs a pandas DataFrame, got {type(df).__name__}")
    out = Path(directory) if directory is not None else paths.tables_dir()
    csv_path = out / f"{name}.csv"
    _io.write_text(csv_path, df.to_csv(index=index, float_format=FLOAT_FORMAT, lineterminator="\n"))
    _io.write_text(out / f"{name}.md", to_markdown(df, index=index))
    return csv_path


# ------------------------------------------------------------------ claims ledger
CLAIM_COLUMNS = ["id", "statement", "value", "threshold", "holds", "profile"]


@dataclass(frozen=True)
class Row:
    """One claim's verdict, before a ledger attaches the profile.

    ``value`` is the measured number (formatted with the ledger's float format) or a
    sentence with the numbers in it; ``threshold`` says what it was checked against
    (the named constant of the study module, with its value).
    """
    id: str
    statement: str
    value: object
    threshold: str
    holds: bool


@dataclass
class Claim:
    id: str
    statement: str
    value: str
    threshold: str
    holds: bool
    profile: str


class Ledger:
    """The claims of one study at one profile.

    >>> ledger = Ledger("01", "default")
    >>> ledger.claim("01.1", "20% of variance suffices", value=0.93, threshold=">= 0.9 accuracy", holds=True)
    """

    def __init__(self, study: str, profile: str):
        self.study = str(study).zfill(2)
        self.profile = profile
        self.rows: list[Claim] = []

    def claim(self, id: str, statement: str, value, threshold: str, holds: bool) -> Claim:
        if not str(id).startswith(self.study + "."):
            raise ValueError(f"claim id {id!r} must start with the study number {self.study!r}, e.g. '{self.study}.1'")
        if not isinstance(holds, (bool, np.bool_)):
            raise TypeError(f"claim {id}: holds must be a bool, got {type(holds).__name__}")
        value_s = value if isinstance(value, str) else _fmt(value)
        row = Claim(str(id), statement, value_s, str(threshold), bool(holds), self.profile)
        self.rows = [r for r in self.rows if r.id != row.id] + [row]
        return row

    def extend(self, rows) -> "Ledger":
        """Add the ``Row``s a study's ``claims`` function returned (same ids replace earlier rows)."""
        for r in rows:
            if not isinstance(r, Row):
                raise TypeError(f"Ledger.extend takes reports.Row items, got {type(r).__name__}")
            self.claim(r.id, r.statement, r.value, r.threshold, r.holds)
        return self

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self.rows], columns=CLAIM_COLUMNS)
        return df.sort_values("id", key=lambda s: s.map(_id_key)).reset_index(drop=True)

    def save(self) -> Path:
        """Write ``claims/<study>.csv`` and rebuild ``claims.md``."""
        target = paths.claims_dir() / f"{self.study}.csv"
        _io.write_text(target, self.frame().to_csv(index=False, lineterminator="\n"))
        build_claims_md()
        return target

    def _repr_markdown_(self) -> str:
        return _claims_markdown(self.frame())


def _id_key(claim_id: str):
    study, _, n = str(claim_id).partition(".")
    return (int(study), int(n) if n.isdigit() else 0)


def _claims_markdown(df: pd.DataFrame) -> str:
    view = pd.DataFrame({
        "claim": df["id"],
        "statement": df["statement"],
        "measured": df["value"],
        "threshold": df["threshold"],
        "verdict": df["holds"].map(lambda h: "holds" if h else "**does not hold**"),
    })
    return to_markdown(view)


def load_claims(*directories: Path) -> pd.DataFrame:
    """Every study's claim rows from ``claims/*.csv`` of ``directories`` (default: the reports folder).

    With several folders a study's file in a later folder replaces the one in an earlier folder
    (the runner builds ``claims.md`` from the published claims overlaid with the staged ones).
    """
    dirs = [Path(d) for d in directories] or [paths.claims_dir()]
    files = {}
    for d in dirs:
        for p in sorted(d.glob("*.csv")) if d.is_dir() else []:
            files[p.name] = p
    frames = [pd.read_csv(files[k], dtype=str, keep_default_na=False) for k in sorted(files)]
    if not frames:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    df["holds"] = df["holds"].map(lambda s: str(s).lower() == "true")
    return df.sort_values("id", key=lambda s: s.map(_id_key)).reset_index(drop=True)


def claims_md_text(*directories: Path) -> str:
    """The text of ``claims.md`` from the claim rows in ``directories`` (``load_claims``)."""
    df = load_claims(*directories)
    n_hold = int(df["holds"].sum()) if len(df) else 0
    profiles = ", ".join(sorted(set(df["profile"]))) if len(df) else "-"
    text = (
        "# Claims ledger\n\n"
        "Every paper claim the workbook checks, with what was measured and the threshold it was\n"
        "checked against. A claim that does not hold at this scale is reported as not holding.\n"
        "Regenerated by `make reproduce`; do not edit by hand.\n\n"
        f"Profile: {profiles}. {n_hold} of {len(df)} claims hold.\n\n"
    )
    for study, part in df.groupby(df["id"].str.split(".").str[0], sort=True):
        text += f"## Study {study}\n\n" + _claims_markdown(part) + "\n"
    return text


def build_claims_md() -> Path:
    """Join all studies' claim rows into ``claims.md`` (one row per claim)."""
    return _io.write_text(paths.reports_dir() / "claims.md", claims_md_text())


# ------------------------------------------------------------------ manifest
CODE_PATHS = ("lib", "notebooks", "benchmarks", "pyproject.toml", "requirements.lock")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(paths.ROOT), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _commit() -> str:
    """The last commit that changed the code (not the reports), '+dirty' if the code has local changes.

    Committing regenerated reports therefore does not change the manifest of the next run.
    """
    commit = _git("log", "-1", "--format=%h", "--", *CODE_PATHS) or "unknown"
    dirty = _git("status", "--porcelain", "--", *CODE_PATHS)
    return commit + ("+dirty" if dirty else "")


def package_versions(names=("torch", "torchvision", "numpy", "scipy", "scikit-learn", "statsmodels",
                            "pandas", "matplotlib", "seaborn", "powerlaw", "pytorch-optimizer")) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def write_manifest(study: str, profile: str, seeds, config=None, extra: dict | None = None) -> Path:
    """Record what produced a study's reports: profile, seeds, config, versions, commit, machine, data.

    Also: the hardware (``preflight.machine``: CPU model, cores, RAM, GPU), torch's build
    and the thread count it ran with (``preflight.torch_build``; ``make reproduce`` pins it
    through ``THREADS``), and the sha256 of every data file the config reads
    (``preflight.data_hashes``). Nothing time-dependent is written, so a rerun on the same
    machine leaves identical bytes: wall times go to ``timings.json`` (written by the runner).
    """
    import dataclasses

    from . import preflight

    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    doc = {
        "study": str(study).zfill(2),
        "profile": profile,
        "seeds": list(seeds) if not isinstance(seeds, int) else [seeds],
        "config": cfg,
        "python": platform.python_version(),
        "packages": package_versions(),
        "commit": _commit(),
        "machine": preflight.machine(),
        "torch": preflight.torch_build(),
        "data": preflight.data_hashes(config),
        **(extra or {}),
    }
    target = paths.manifests_dir() / f"{str(study).zfill(2)}.json"
    return _io.write_text(target, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
