"""Figures: importing nnlens.report leaves the backend alone, savefig is byte-stable and keeps the figure
displayable, and a notebook run in a real kernel embeds each figure once as an image/png output."""
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # this test process has no display; the kernel test below uses the kernel's own backend
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402

from nnlens import paths, report  # noqa: E402


def test_importing_the_report_wing_keeps_the_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import nnlens.report; "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(paths.ROOT / "lib"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_savefig_keeps_the_figure_open_and_writes_the_same_bytes_twice(tmp_path):
    report.use_style()
    fig, ax = plt.subplots()
    ax.plot(np.arange(5), np.arange(5) ** 2)
    png, pdf = report.savefig(fig, "00_open", tmp_path)
    assert plt.fignum_exists(fig.number), "savefig must leave the figure for the notebook to display"
    first = png.read_bytes(), pdf.read_bytes()
    report.savefig(fig, "00_open", tmp_path)
    assert (png.read_bytes(), pdf.read_bytes()) == first
    report.savefig(fig, "00_open", tmp_path, close=True)
    assert not plt.fignum_exists(fig.number)


def test_a_kernel_embeds_each_saved_figure_once(tmp_path, monkeypatch, out):
    """The kernel's inline backend shows the figure at the end of the cell; the file is written too."""
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", str(paths.ROOT / "lib"))  # the kernel imports this checkout's nnlens
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"from nnlens import report\nimport matplotlib.pyplot as plt\nreport.use_style()\n"
        f"out = report.Outputs({str(out.root)!r})\n"
        "fig, ax = plt.subplots(); ax.plot([0, 1, 2], [1, 0, 2])\nout.savefig(fig, '00_inline');"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0]);\n"
                                  "out.savefig(fig, '00_second');\nprint('text after')")]
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, [o.get("output_type") for o in cell.outputs]
    assert (out.figures / "00_inline.png").is_file() and (out.figures / "00_second.pdf").is_file()
