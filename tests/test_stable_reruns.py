"""Byte-stable reruns: what made two runs from an empty cache differ, one test per cause.

Measured at smoke (two full runs, each from an empty cache): the reports differed in 01_vstar.png/pdf
(stripplot's jitter from numpy's unseeded global RNG), 04_cells and 04_lr_search (a cpu_s column),
the executed notebooks 02 (a table of LDS seconds) and 04 (printed CPU seconds); study 05's
benchmark timings differ by nature (``bench/`` is an input that ``make bench`` writes once).
"""
import hashlib
import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from nnlens import report  # noqa: E402
from nnlens.studies import s04_anova  # noqa: E402
from nnlens.workbook import runner  # noqa: E402


def _draw() -> str:
    report.use_style()
    df = pd.DataFrame({"x": np.repeat(np.arange(5), 3), "y": np.arange(15) % 7 * 1.0, "g": list("abc") * 5})
    fig, ax = plt.subplots(1, 2)
    sns.lineplot(data=df, x="x", y="y", ax=ax[0])                    # a bootstrapped 95% CI band
    sns.stripplot(data=df, x="g", y="y", jitter=0.2, ax=ax[1])      # jitter from np.random
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_plots_with_bootstrap_bands_and_jitter_are_the_same_every_time():
    np.random.seed(123)             # whatever ran before: use_style seeds what the plots draw
    first = _draw()
    np.random.rand(5)
    assert _draw() == first


def test_study04_cells_table_carries_no_times():
    df = pd.DataFrame({"arm": "steps", "optimizer": "sgdm", "batch": 64, "lr": 0.1, "updates": 8,
                       s04_anova.RESPONSE: [0.5, 0.6], "final_acc": [0.5, 0.6], "finite": True,
                       "seed": [0, 1], "cpu_seconds": [1.25, 3.5], "grad_evals_per_update": 1.0,
                       "clip_fraction": 0.0, "hessian_nonpositive": 0.0})
    table = s04_anova.cells(df)
    assert not [c for c in table.columns if "cpu" in c or "second" in c]
    assert s04_anova.cpu_seconds(df) == 4.75                         # the cost still goes to timings.json


BODY = """
import pandas as pd
from nnlens.studies import profiles
profile, out = profiles.start(profile, outputs)
out.record_seconds("demo step, CPU s", 1.0 + 1.25)
out.save_table(pd.DataFrame({"x": [0.5]}), "01_demo")
print("done")
"""


def test_recorded_seconds_go_to_timings_never_into_published_files(tmp_path, monkeypatch):
    final = tmp_path / "final"
    monkeypatch.setattr(runner, "final_reports_dir", lambda profile: final)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\noutputs = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_demo.ipynb")
    times = {}
    runner.run(tmp_path / "01_demo.ipynb", profile="smoke", jupyter_kernel="python3", threads=1, timings=times)
    assert times["steps"] == {"demo step, CPU s": round(2.25, 1)}
    published = [p for p in final.rglob("*") if p.is_file()]
    assert (final / "tables" / "01_demo.csv").exists()
    assert not [p for p in published if "seconds" in p.name]
    assert "2.25" not in json.dumps([p.read_text() for p in published if p.suffix in (".csv", ".md", ".ipynb")])
