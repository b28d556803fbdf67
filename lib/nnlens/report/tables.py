"""Tables with one fixed float format, written atomically so reruns give identical bytes.

``save_table(df, name, directory)`` writes ``<name>.csv`` and ``<name>.md`` (GitHub-flavoured
Markdown, the same format as ``to_markdown``); ``fmt`` is the one number format of every
table and ledger cell (4 decimals, scientific below 1e-3 and from 1e6).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _io

FLOAT_FORMAT = "%.4f"


def fmt(x) -> str:
    """A cell as text: yes/no for booleans, the fixed float format for floats, str() otherwise."""
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
        cells = [fmt(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, name: str, directory: Path, *, index: bool = False) -> Path:
    """Write ``df`` as ``directory/<name>.csv`` and ``.md``; returns the CSV path."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save_table needs a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"table name must be a plain file stem like '04_anova', got {name!r}")
    out = Path(directory)
    csv_path = out / f"{name}.csv"
    _io.write_text(csv_path, df.to_csv(index=index, float_format=FLOAT_FORMAT, lineterminator="\n"))
    _io.write_text(out / f"{name}.md", to_markdown(df, index=index))
    return csv_path
