"""Adding a study is one package and one notebook (README, "Adding a study"); nothing else changes.

In a temporary copy of the repository, a toy study 09 (``studies/s09_toy/`` and
``notebooks/09_toy.ipynb``) is discovered by ``profiles.studies()``, loads at the smoke profile,
runs through the runner (``reproduce``, a temporary reports folder: the copy's) and appears on the
site, while every other file of the copy keeps its bytes.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nnlens import paths

TOY = {
    "__init__.py": '''"""Study 09: a toy study (tests/test_add_a_study.py); notebook ``09_toy``."""
from .claims import claims
from .config import PROFILES, Study09
from .figures import plot_line
from .runs import run

__all__ = ["PROFILES", "Study09", "claims", "plot_line", "run"]
''',
    "config.py": '''"""Study 09's settings."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Study09:
    """A toy study."""

    n: int = 100          # points on the line
    slope: float = 2.0    # the line's slope


PROFILES = {"smoke": {"n": 10}, "paper": {"n": 1000}}
''',
    "runs.py": '''"""Study 09's driver: a straight line and its fitted slope."""
import numpy as np
import pandas as pd

from .config import Study09


def run(cfg: Study09) -> pd.DataFrame:
    x = np.arange(cfg.n, dtype=float)
    return pd.DataFrame({"x": x, "y": cfg.slope * x})
''',
    "claims.py": '''"""Study 09's claim: the fitted slope is the configured one."""
import numpy as np
import pandas as pd

from ...report import Row, Threshold
from .config import Study09

# a noiseless line: only float rounding separates the fitted slope from the configured one
SLOPE_ERR = Threshold("SLOPE_ERR", "|fitted - configured slope|", "<=", 1e-9, "float64 rounding of a noiseless fit")


def claims(df: pd.DataFrame, cfg: Study09) -> list[Row]:
    err = abs(np.polyfit(df["x"], df["y"], 1)[0] - cfg.slope)
    return [Row.judge("09.1", "the fitted slope is the configured one", err, SLOPE_ERR, kind="control")]
''',
    "figures.py": '''"""Study 09's figure."""
import matplotlib.pyplot as plt


def plot_line(df):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(df["x"], df["y"])
    ax.set(xlabel="x", ylabel="y", title="a line")
    return fig
''',
}

NOTEBOOK = [
    ("markdown", "# 09 · A toy study\n\n**Question.** Does a fitted line have the slope it was drawn with?"),
    ("parameters", 'profile = "default"\noutputs = ""'),
    ("code", 'from nnlens import report\nfrom nnlens.studies import profiles\n'
             'from nnlens.studies import s09_toy as study\n\n'
             'profile, out = profiles.start(profile, outputs)\ncfg = profiles.load("09", profile)\n'
             'report.use_style()\nledger = report.Ledger("09", profile, out)\ncfg'),
    ("markdown", "## The line"),
    ("code", 'df = study.run(cfg)\nout.save_table(df, "09_line")\n'
             'fig = study.plot_line(df)\nout.savefig(fig, "09_line");'),
    ("markdown", "## Claims"),
    ("code", 'ledger.extend(study.claims(df, cfg))\nledger.save()\n'
             'report.write_manifest(out, "09", profile, seeds=[0], config=cfg)\nledger'),
]

COPIED = ("lib", "notebooks", "benchmarks", "Makefile", "pyproject.toml", "requirements.lock", "README.md")


def _files(root: Path) -> dict[str, bytes]:
    """Every file of the copy but its outputs and bytecode."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not {"reports", ".scratch", "__pycache__"} & set(p.relative_to(root).parts)}


def _add_toy_study(repo: Path) -> None:
    pkg = repo / "lib" / "nnlens" / "studies" / "s09_toy"
    pkg.mkdir()
    for name, text in TOY.items():
        (pkg / name).write_text(text)
    nb = nbformat.v4.new_notebook()
    for kind, source in NOTEBOOK:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        if kind == "parameters":
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, repo / "notebooks" / "09_toy.ipynb")


def _python(repo: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNLENS_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(repo / "lib"), NNLENS_CACHE=str(repo / ".scratch" / "cache"), NNLENS_PROGRESS="0")
    return subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


SCRIPT = """
import sys
from nnlens import paths
from nnlens.studies import profiles
from nnlens.workbook import runner, site
assert str(paths.ROOT.resolve()) == {repo!r}, paths.ROOT
assert list(profiles.studies())[-1] == "09" and profiles.studies()["09"] == "s09_toy", profiles.studies()
cfg = profiles.load("09", "smoke")
assert type(cfg).__name__ == "Study09" and cfg.n == 10 and profiles.load("09", "paper").n == 1000
assert profiles.notebook("09").name == "09_toy.ipynb" and runner.select("09") == ["09"]
print("found", ", ".join(profiles.studies()), flush=True)
rc = runner.main(["reproduce", "--profile", "smoke", "--study", "09", "--kernel", "python3", "--threads", "1"])
if rc == 0:
    site.build(paths.published_dir("smoke"))
sys.exit(rc)
"""


def test_a_toy_study_is_one_package_and_one_notebook(tmp_path):
    repo = (tmp_path / "repo").resolve()
    for name in COPIED:
        src = paths.ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, repo / name)
    before = _files(repo)
    _add_toy_study(repo)
    added = set(_files(repo)) - set(before)
    assert added == {*(f"lib/nnlens/studies/s09_toy/{n}" for n in TOY), "notebooks/09_toy.ipynb"}

    # one process: discovery, the runner (its kernel is another), the site
    ran = _python(repo, "-c", SCRIPT.format(repo=str(repo)))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("found 01, 02, 03, 04, 05, 09\n"), ran.stdout
    smoke = repo / "reports" / "smoke"                          # the copy's reports: a temporary folder
    assert (smoke / "notebooks" / "09_toy.ipynb").is_file() and (smoke / "figures" / "09_line.png").is_file()
    assert (smoke / "tables" / "09_line.csv").is_file() and (smoke / "manifests" / "09.json").is_file()
    claims = (smoke / "claims.md").read_text()
    assert "## Study 09" in claims and "| 09.1 | control |" in claims and "| holds |" in claims
    assert (smoke / "site" / "09_toy.html").is_file()
    assert "09_toy.html" in (smoke / "site" / "index.html").read_text()

    after = _files(repo)
    assert set(after) == set(before) | added
    assert [f for f in before if after[f] != before[f]] == []    # adding and running it touched no other file


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
