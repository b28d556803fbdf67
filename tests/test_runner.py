"""The notebook runner: papermill into staging, scrubbed, merged only on success."""
import subprocess
import sys

import nbformat
import pytest

from nnlens import paths, runner

BODY = """
from nnlens import profiles, plots, reports
import matplotlib.pyplot as plt
import pandas as pd
profile = profiles.resolve(profile)
plots.use_style()
fig, ax = plt.subplots(); ax.plot([0, 1, 2], [1, 0, 2]); plots.savefig(fig, "00_demo")
reports.save_table(pd.DataFrame({"x": [0.5, 1.25]}), "00_demo")
ledger = reports.Ledger("01", profile)
ledger.claim("01.1", "demo claim", value=0.5, threshold=">= 0.4", holds=True)
ledger.save()
print("profile is", profile)
"""


def _published(final):
    """Every published file under ``final`` (not the runner's .staging/ and .failed/)."""
    return {p.relative_to(final): p.read_bytes() for p in final.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(final).parts)}


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def final(tmp_path, monkeypatch):
    out = tmp_path / "final"
    monkeypatch.setattr(runner, "final_reports_dir", lambda profile: out)
    return out


def test_success_merges_outputs_and_rerun_is_byte_identical(tmp_path, final):
    nb = _notebook(tmp_path / "00_demo.ipynb", BODY)
    executed = runner.run(nb, profile="smoke", kernel="python3")
    files = _published(final)
    assert {"figures/00_demo.png", "figures/00_demo.pdf", "tables/00_demo.csv", "tables/00_demo.md",
            "claims/01.csv", "claims.md", "notebooks/00_demo.ipynb"} <= {str(p) for p in files}
    text = executed.read_text()
    assert "profile is smoke" in text and "start_time" not in text and "duration" not in text
    runner.run(nb, profile="smoke", kernel="python3")
    again = _published(final)
    assert again == files
    assert not (final / ".staging" / "00_demo").exists()


def test_notebooks_read_published_bench_results(tmp_path, final):
    (final / "bench").mkdir(parents=True)
    (final / "bench" / "ntk.csv").write_text("method,seconds\nstructured,0.5\n")
    body = BODY + "\nfrom nnlens import paths\nassert (paths.bench_dir() / 'ntk.csv').read_text().startswith('method')\n"
    runner.run(_notebook(tmp_path / "00_demo.ipynb", body), profile="smoke", kernel="python3")
    assert (final / "bench" / "ntk.csv").read_text() == "method,seconds\nstructured,0.5\n"


def test_failure_leaves_previous_reports_intact(tmp_path, final):
    good = _notebook(tmp_path / "00_demo.ipynb", BODY)
    runner.run(good, profile="smoke", kernel="python3")
    before = _published(final)
    bad = _notebook(tmp_path / "00_demo.ipynb",
                    BODY.replace('[1, 0, 2]', '[5, 5, 5]') + "\nraise ValueError('boom in the study')\n")
    with pytest.raises(SystemExit) as e:
        runner.run(bad, profile="smoke", kernel="python3")
    msg = str(e.value)
    assert "00_demo.ipynb failed" in msg and "ValueError: boom in the study" in msg and "unchanged" in msg
    assert _published(final) == before
    assert (final / ".failed" / "00_demo.ipynb").exists()


def test_cli_rejects_unknown_profile_in_one_line():
    out = subprocess.run([sys.executable, "-m", "nnlens.runner", "run", "x.ipynb", "--profile", "huge"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown profile 'huge'; valid profiles: smoke, default, paper"


def test_make_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "-C", str(paths.ROOT), "help"], capture_output=True, text=True)
    for target in ("reproduce", "test", "bench", "lab", "clean", "setup"):
        assert target in out.stdout
