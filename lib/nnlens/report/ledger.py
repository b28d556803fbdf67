"""The claims ledger: one row per claim a study checks, joined into ``claims.md``.

A row says what it is (``kind``) and what was found (``verdict``):

- kinds: ``paper claim`` (a claim of the paper), ``paper number`` (a value printed in a paper,
  ours beside it), ``beyond the paper``, ``control`` (a check that the setup is sound), and
  ``engineering target`` (a speed or memory goal of this workbook);
- verdicts: ``holds``, ``does not hold``, ``inconclusive`` (the design cannot detect the effect:
  the row's ``note`` gives the minimum detectable effect) and ``untestable`` (a precondition is
  unmet: the ``note`` says which). Neither of the last two is ever reported as "does not hold".

A threshold is data, not a sentence: ``Threshold(name, quantity, op, value, reason)`` compares a
number and renders its own text, so the number compared and the number printed cannot drift
apart. Its ``reason`` names the noise it was calibrated on (a simulated null of the same shape,
the spread of reruns, or a power calculation). ``Row.judge`` builds a row from one.

``Ledger(study, profile, out)`` collects one study's rows; ``save()`` writes ``claims/<study>.csv``
under ``out`` and rebuilds ``claims.md`` there, counted by kind and verdict.

Reruns: ``stability.csv`` beside the claims folder (written by ``workbook.stability``: each row's
verdict and value in reruns with a nuisance varied -- thread count, a seed) is merged by
``load_claims`` into a ``stability`` column, which ``claims.md`` and the site show as "reruns".
The one rule (``apply_stability``): a paper claim whose verdict changes between the published run
and its reruns is reported as ``inconclusive``, its note listing every run's verdict and value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _io
from .outputs import Outputs
from .tables import fmt, to_markdown

KINDS = ("paper claim", "paper number", "beyond the paper", "control", "engineering target")
VERDICTS = ("holds", "does not hold", "inconclusive", "untestable")
STABILITY_FILE = "stability.csv"
STABILITY_COLUMNS = ["profile", "rerun", "nuisance", "id", "kind", "verdict", "value"]
CLAIM_COLUMNS = ["id", "kind", "statement", "value", "threshold", "verdict", "note", "reason", "profile"]
_OPS = {"<=": "≤", "<": "<", ">=": "≥", ">": ">", "in": "in", "outside": "outside"}


@dataclass(frozen=True)
class Threshold:
    """A named cut: ``quantity op value`` (``op`` one of <=, <, >=, >, in [lo, hi], outside [lo, hi]).

    ``reason`` says why this value, and on what noise it was calibrated; ``unit`` is printed after
    the value (``" s"``, ``"x"``, ``" GB"``)."""
    name: str
    quantity: str
    op: str
    value: float | tuple[float, float]
    reason: str
    unit: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"threshold {self.name}: op must be one of {', '.join(_OPS)}, got {self.op!r}")
        if (self.op in ("in", "outside")) != isinstance(self.value, tuple):
            raise ValueError(f"threshold {self.name}: 'in'/'outside' take a (lo, hi) pair, the others one number")
        if not self.reason:
            raise ValueError(f"threshold {self.name}: give the reason for its value (the noise it rests on)")

    def check(self, x: float) -> bool:
        """Whether ``x`` passes (NaN never does)."""
        x = float(x)
        if math.isnan(x):
            return False
        v = self.value
        return {"<=": lambda: x <= v, "<": lambda: x < v, ">=": lambda: x >= v, ">": lambda: x > v,
                "in": lambda: v[0] <= x <= v[1], "outside": lambda: not v[0] <= x <= v[1]}[self.op]()

    def text(self) -> str:
        """``|TAD| ≤ 0.02``: the quantity, the comparison and the value, as the ledger prints them."""
        v = (f"[{_num(self.value[0])}, {_num(self.value[1])}]" if isinstance(self.value, tuple)
             else _num(self.value))
        return f"{self.quantity} {_OPS[self.op]} {v}{self.unit}"

    def __str__(self) -> str:
        return self.text()


def _num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e4 else f"{x:.3g}"


@dataclass(frozen=True)
class Row:
    """One claim's verdict, before a ledger attaches the profile.

    ``value``: the measured number (printed in the ledger's float format) or a sentence with the
    numbers in it. ``threshold``: a ``Threshold`` (or, for a compound test, a sentence naming its
    parts). ``verdict``: one of ``VERDICTS`` (a bool means holds / does not hold). ``note``: for
    ``inconclusive`` the minimum detectable effect, for ``untestable`` the unmet precondition."""
    id: str
    statement: str
    value: object
    threshold: Threshold | str
    verdict: str | bool
    kind: str = "paper claim"
    note: str = ""
    reasons: tuple = field(default=())   # the reasons of the thresholds behind a compound test

    def __post_init__(self) -> None:
        verdict = self.verdict
        if isinstance(verdict, (bool, np.bool_)):
            object.__setattr__(self, "verdict", "holds" if verdict else "does not hold")
        elif verdict not in VERDICTS:
            raise ValueError(f"claim {self.id}: verdict must be one of {', '.join(VERDICTS)} or a bool, "
                             f"got {verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.verdict in ("inconclusive", "untestable") and not self.note:
            raise ValueError(f"claim {self.id}: an {self.verdict} row says why in its note "
                             "(the minimum detectable effect, or the unmet precondition)")

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    @property
    def reason(self) -> str:
        parts = [f"{self.threshold.name}: {self.threshold.reason}"] if isinstance(self.threshold, Threshold) else []
        return " ".join(parts + list(self.reasons))

    @classmethod
    def judge(cls, id: str, statement: str, measured: float, threshold: Threshold, *, detail: str = "",
              kind: str = "paper claim", note: str = "") -> "Row":
        """A row whose verdict is ``threshold.check(measured)``; ``detail`` follows the number."""
        value = fmt(float(measured)) + (f" ({detail})" if detail else "")
        return cls(id, statement, value, threshold, threshold.check(measured), kind=kind, note=note)


class Ledger:
    """The claims of one study at one profile, written under ``out``.

    >>> ledger = Ledger("01", "default", Outputs("/tmp/reports"))
    >>> t = Threshold("GAP_MIN", "gap", ">=", 0.25, "the raw-kNN gap of the paper's data")
    >>> ledger.extend([Row.judge("01.0", "the network beats raw kNN", 0.3, t, kind="control")])
    """

    def __init__(self, study: str, profile: str, out: Outputs):
        self.study = str(study).zfill(2)
        self.profile = profile
        self.out = out
        self.rows: dict[str, dict] = {}

    def add(self, row: Row) -> dict:
        if not isinstance(row, Row):
            raise TypeError(f"Ledger takes report.Row items, got {type(row).__name__}")
        if not str(row.id).startswith(self.study + "."):
            raise ValueError(f"claim id {row.id!r} must start with the study number {self.study!r}, "
                             f"e.g. '{self.study}.1'")
        value = row.value if isinstance(row.value, str) else fmt(row.value)
        threshold = row.threshold.text() if isinstance(row.threshold, Threshold) else str(row.threshold)
        self.rows[row.id] = {"id": row.id, "kind": row.kind, "statement": row.statement, "value": value,
                             "threshold": threshold, "verdict": row.verdict, "note": row.note,
                             "reason": row.reason, "profile": self.profile}
        return self.rows[row.id]

    def claim(self, id: str, statement: str, value, threshold, holds, kind: str = "paper claim",
              note: str = "") -> dict:
        """One row from its parts (``holds`` a bool or a verdict); same ids replace earlier rows."""
        if not isinstance(holds, (bool, np.bool_, str)):
            raise TypeError(f"claim {id}: holds must be a bool or a verdict, got {type(holds).__name__}")
        return self.add(Row(str(id), statement, value, threshold, holds, kind=kind, note=note))

    def extend(self, rows) -> "Ledger":
        """Add the ``Row``s a study's ``claims`` function returned (same ids replace earlier rows)."""
        for r in rows:
            self.add(r)
        return self

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(list(self.rows.values()), columns=CLAIM_COLUMNS)
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


def _verdict_cell(verdict: str, note: str) -> str:
    cell = verdict if verdict == "holds" else f"**{verdict}**"
    return f"{cell}: {note}" if note else cell


def _claims_markdown(df: pd.DataFrame) -> str:
    view = pd.DataFrame({
        "claim": df["id"], "kind": df["kind"], "statement": df["statement"], "measured": df["value"],
        "threshold": df["threshold"],
        "verdict": [_verdict_cell(v, n) for v, n in zip(df["verdict"], df["note"])],
    })
    if "stability" in df and (df["stability"] != "").any():
        view["reruns"] = df["stability"]
    return to_markdown(view)


def load_claims(*directories: Path) -> pd.DataFrame:
    """Every study's claim rows from the ``*.csv`` files of ``directories`` (claims folders).

    With several folders a study's file in a later folder replaces the one in an earlier folder
    (the runner builds ``claims.md`` from the published claims overlaid with the staged ones).
    """
    files = {}
    for d in (Path(d) for d in directories):
        for p in sorted(d.glob("*.csv")) if d.is_dir() else []:
            files[p.name] = p
    frames = [pd.read_csv(files[k], dtype=str, keep_default_na=False) for k in sorted(files)]
    if not frames:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    if "holds" in df and "verdict" not in df:          # a ledger written before row kinds and verdicts
        df["verdict"] = df["holds"].map(lambda s: "holds" if str(s).lower() == "true" else "does not hold")
    for c in CLAIM_COLUMNS:
        if c not in df:
            df[c] = "paper claim" if c == "kind" else ""
    stab = [Path(d).parent / STABILITY_FILE for d in directories if (Path(d).parent / STABILITY_FILE).is_file()]
    if stab:
        df = apply_stability(df, pd.read_csv(stab[-1], dtype=str, keep_default_na=False))
    return df.sort_values("id", key=lambda s: s.map(_id_key)).reset_index(drop=True)


def apply_stability(df: pd.DataFrame, reruns: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``stability`` column from ``reruns`` (rows of ``stability.csv``) and the rerun rule.

    Per row (matched on id and profile): "threads=1: holds (0.73); seed=1: ...". A paper claim whose
    verdict is not the same in the published run and in every rerun becomes ``inconclusive``, its
    note giving each run's verdict and value (the published note follows)."""
    df = df.copy()
    df["stability"] = ""
    if not len(reruns):
        return df
    for i, row in df.iterrows():
        mine = reruns[(reruns["id"] == row["id"]) & (reruns["profile"] == row["profile"])]
        if not len(mine):
            continue
        df.at[i, "stability"] = "; ".join(f"{r.rerun}: {r.verdict} ({r.value})" for r in mine.itertuples())
        if row["kind"] == "paper claim" and len(set(mine["verdict"]) | {row["verdict"]}) > 1:
            runs = f"published: {row['verdict']} ({row['value']}); " + df.at[i, "stability"]
            df.at[i, "note"] = f"the verdict changes between reruns ({runs})" + (
                f"; published note: {row['note']}" if row["note"] else "")
            df.at[i, "verdict"] = "inconclusive"
    return df


def counts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows per kind (in ``KINDS`` order) and verdict, with a total column."""
    table = pd.crosstab(df["kind"], df["verdict"]).reindex(index=[k for k in KINDS if k in set(df["kind"])],
                                                           columns=list(VERDICTS), fill_value=0)
    table["rows"] = table.sum(axis=1)
    return table


def summary_line(df: pd.DataFrame) -> str:
    """``6 of 20 paper claims hold (3 inconclusive, 1 untestable); 16 of 17 engineering targets; ...``."""
    parts = []
    for kind, r in counts(df).iterrows():
        noun = {"paper claim": "paper claims", "paper number": "paper numbers", "control": "controls",
                "beyond the paper": "rows beyond the paper", "engineering target": "engineering targets"}[kind]
        extra = ", ".join(f"{int(r[v])} {v}" for v in ("inconclusive", "untestable") if r[v])
        parts.append(f"{int(r['holds'])} of {int(r['rows'])} {noun} hold" + (f" ({extra})" if extra else ""))
    return "; ".join(parts) + "." if parts else "no rows."


def claims_md_text(*directories: Path) -> str:
    """The text of ``claims.md`` from the claim rows in ``directories`` (``load_claims``)."""
    df = load_claims(*directories)
    profiles = ", ".join(sorted(set(df["profile"]))) if len(df) else "-"
    text = (
        "# Claims ledger\n\n"
        "Every claim the workbook checks, with what was measured and the threshold it was checked\n"
        "against. Each row has a kind (paper claim, paper number, beyond the paper, control, engineering\n"
        "target) and one of four verdicts: holds, does not hold, inconclusive (the design cannot detect the\n"
        "effect; the note gives the minimum detectable effect) or untestable (a precondition is unmet).\n"
        "Regenerated by `make reproduce`; do not edit by hand.\n\n"
        f"Profile: {profiles}. {summary_line(df) if len(df) else 'no rows.'}\n\n"
    )
    if len(df):
        text += to_markdown(counts(df), index=True) + "\n"
    for study, part in df.groupby(df["id"].str.split(".").str[0], sort=True):
        text += f"## Study {study}\n\n" + _claims_markdown(part) + "\n"
        reasons = [(i, r) for i, r in zip(part["id"], part["reason"]) if r]
        if reasons:
            text += "Why each threshold:\n\n" + "".join(f"- {i}: {r}\n" for i, r in reasons) + "\n"
    return text


def build_claims_md(out: Outputs) -> Path:
    """Join all studies' claim rows of ``out`` into ``out.root/claims.md`` (one row per claim)."""
    return _io.write_text(out.root / "claims.md", claims_md_text(out.claims))
