"""The claims ledger: one row per claim a study checks, joined into ``claims.md``.

- ``Row``: one verdict on one claim, as a study's ``claims(results, cfg)`` returns it: id
  (``01.2``), statement, measured value, threshold and whether it holds.
- ``Ledger(study, profile, out)`` collects the rows of one study at one profile
  (``ledger.extend(rows)`` or ``ledger.claim(...)``). ``Ledger.save()`` writes
  ``claims/<study>.csv`` under ``out`` and rebuilds ``claims.md`` there from every study's rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _io
from .outputs import Outputs
from .tables import fmt, to_markdown

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

    >>> ledger = Ledger("01", "default", Outputs("/tmp/reports"))
    >>> ledger.claim("01.1", "20% of variance suffices", value=0.93, threshold=">= 0.9 accuracy", holds=True)
    """

    def __init__(self, study: str, profile: str, out: Outputs):
        self.study = str(study).zfill(2)
        self.profile = profile
        self.out = out
        self.rows: list[Claim] = []

    def claim(self, id: str, statement: str, value, threshold: str, holds: bool) -> Claim:
        if not str(id).startswith(self.study + "."):
            raise ValueError(f"claim id {id!r} must start with the study number {self.study!r}, e.g. '{self.study}.1'")
        if not isinstance(holds, (bool, np.bool_)):
            raise TypeError(f"claim {id}: holds must be a bool, got {type(holds).__name__}")
        value_s = value if isinstance(value, str) else fmt(value)
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
        target = self.out.claims / f"{self.study}.csv"
        _io.write_text(target, self.frame().to_csv(index=False, lineterminator="\n"))
        build_claims_md(self.out)
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
    """Every study's claim rows from the ``*.csv`` files of ``directories`` (claims folders).

    With several folders a study's file in a later folder replaces the one in an earlier folder
    (the runner builds ``claims.md`` from the published claims overlaid with the staged ones).
    """
    dirs = [Path(d) for d in directories]
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


def build_claims_md(out: Outputs) -> Path:
    """Join all studies' claim rows of ``out`` into ``out.root/claims.md`` (one row per claim)."""
    return _io.write_text(out.root / "claims.md", claims_md_text(out.claims))


