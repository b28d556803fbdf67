"""The Makefile works from a checkout whose path has a space in it (issue 13): real targets, not `make -n`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nnlens import paths

PROBE_TEST = '''
import os
from pathlib import Path

import nnlens

REPORTS = os.environ["NNLENS_REPORTS"]          # as make set it, before conftest points it at tmp_path


def test_paths_with_a_space():
    here = Path(__file__).resolve().parents[1]
    assert " " in str(here)
    assert Path(nnlens.__file__).resolve().is_relative_to(here / "lib")
    assert Path(REPORTS) == here / ".scratch" / "reports" and (here / ".scratch").is_dir()
'''

PROBE_NB = '''
from pathlib import Path
import pandas as pd
import nnlens
from nnlens import paths, report
from nnlens.studies import profiles
profile, out = profiles.start(profile, outputs)
assert " " in str(paths.ROOT) and Path(nnlens.__file__).resolve().is_relative_to(paths.ROOT / "lib")
out.save_table(pd.DataFrame({"x": [1.5]}), "03_probe")
ledger = report.Ledger("03", profile, out)
ledger.claim("03.1", "probe", value=1.5, threshold=">= 1", holds=True)
ledger.save()
'''


def _copy_checkout(dst: Path) -> None:
    """Tracked and untracked-but-not-ignored files, mtimes kept (so make sees the same ages)."""
    out = subprocess.run(["git", "-C", str(paths.ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True)
    for rel in filter(None, out.stdout.decode().split("\0")):
        src = paths.ROOT / rel
        if src.is_file() and not rel.startswith("reports/"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


@pytest.mark.skipif(shutil.which("make") is None or not (paths.ROOT / ".venv" / "bin" / "python").exists(),
                    reason="needs make and the project's .venv")
def test_make_targets_work_in_a_folder_with_a_space(tmp_path):
    repo = tmp_path / "a b" / "nnlens"
    _copy_checkout(repo)
    os.symlink((paths.ROOT / ".venv").resolve(), repo / ".venv")
    (repo / "tests" / "test_probe_space.py").write_text(PROBE_TEST)
    for nb in (repo / "notebooks").glob("03_*.ipynb"):      # study 03's notebook becomes the probe
        nb.unlink()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\noutputs = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(PROBE_NB)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, repo / "notebooks" / "03_probe.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNLENS_") and k != "PYTHONPATH"}
    # -o: the shared .venv counts as installed (never pip-install from a test)
    make = ["make", "-o", ".venv/.nnlens-installed", "-C", str(repo)]
    unit = subprocess.run(make + ["test-unit", "TESTS=tests/test_probe_space.py"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "1 passed" in unit.stdout
    rep = subprocess.run(make + ["reproduce", "PROFILE=smoke", "STUDY=03", "THREADS=1", "KERNEL=python3"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    smoke = repo / "reports" / "smoke"
    assert (smoke / "notebooks" / "03_probe.ipynb").exists() and (smoke / "tables" / "03_probe.csv").exists()
    assert "03     ran" in rep.stdout and "total wall time" in rep.stdout
    again = subprocess.run(make + ["reproduce", "PROFILE=smoke", "STUDY=03", "THREADS=1", "KERNEL=python3"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "03     up to date" in again.stdout, again.stdout + again.stderr
    clean = subprocess.run(make + ["clean"], env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and not (repo / ".scratch").exists() and not smoke.exists(), clean.stderr
    assert sys.executable  # the test itself ran under this interpreter; make used .venv/bin/python
