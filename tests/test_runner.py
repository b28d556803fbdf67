"""The notebook runner: papermill into staging, scrubbed, merged only on success."""
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nnlens import paths
from nnlens.workbook import runner

BODY = """
from nnlens import report
from nnlens.studies import profiles
import matplotlib.pyplot as plt
import pandas as pd
profile, out = profiles.start(profile, outputs)
report.use_style()
fig, ax = plt.subplots(); ax.plot([0, 1, 2], [1, 0, 2]); out.savefig(fig, "00_demo")
out.save_table(pd.DataFrame({"x": [0.5, 1.25]}), "00_demo")
ledger = report.Ledger("01", profile, out)
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
    params = nbformat.v4.new_code_cell('profile = "default"\noutputs = ""')
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
    executed = runner.run(nb, profile="smoke", jupyter_kernel="python3")
    files = _published(final)
    assert {"figures/00_demo.png", "figures/00_demo.pdf", "tables/00_demo.csv", "tables/00_demo.md",
            "claims/01.csv", "claims.md", "notebooks/00_demo.ipynb"} <= {str(p) for p in files}
    text = executed.read_text()
    assert "profile is smoke" in text and "start_time" not in text and "duration" not in text
    runner.run(nb, profile="smoke", jupyter_kernel="python3")
    again = _published(final)
    assert again == files
    assert not (final / ".staging" / "00_demo").exists()


def test_notebooks_read_published_bench_results(tmp_path, final):
    (final / "bench").mkdir(parents=True)
    (final / "bench" / "ntk.csv").write_text("method,seconds\nstructured,0.5\n")
    body = BODY + "\nassert (out.bench / 'ntk.csv').read_text().startswith('method')\n"
    runner.run(_notebook(tmp_path / "00_demo.ipynb", body), profile="smoke", jupyter_kernel="python3")
    assert (final / "bench" / "ntk.csv").read_text() == "method,seconds\nstructured,0.5\n"


def test_failure_leaves_previous_reports_intact(tmp_path, final):
    good = _notebook(tmp_path / "00_demo.ipynb", BODY)
    runner.run(good, profile="smoke", jupyter_kernel="python3")
    before = _published(final)
    bad = _notebook(tmp_path / "00_demo.ipynb",
                    BODY.replace('[1, 0, 2]', '[5, 5, 5]') + "\nraise ValueError('boom in the study')\n")
    with pytest.raises(SystemExit) as e:
        runner.run(bad, profile="smoke", jupyter_kernel="python3")
    msg = str(e.value)
    assert "00_demo.ipynb failed" in msg and "ValueError: boom in the study" in msg and "unchanged" in msg
    assert _published(final) == before
    assert (final / ".failed" / "00_demo.ipynb").exists()
    # the next good run: .failed/ cleared, threads pinned and recorded, files readable (umask mode)
    old = os.umask(0o022)
    try:
        times = {}
        executed = runner.run(_notebook(tmp_path / "00_demo.ipynb", MANIFEST), profile="smoke",
                              jupyter_kernel="python3", threads=1, timings=times)
    finally:
        os.umask(old)
    assert not (final / ".failed").exists()
    assert "threads 1 1" in executed.read_text()
    man = json.loads((final / "manifests" / "01.json").read_text())
    assert man["torch"]["threads"] == 1 and man["torch"]["nnlens_threads"] == "1"
    assert {"cpu", "cores", "ram_gib", "gpu"} <= set(man["machine"]) and man["torch"]["build"] in ("cpu", "cuda")
    assert len(man["data"]["clutter"]["digits.csv.gz"]) == 64       # sha256 of the file clutter is drawn from
    assert "wall" not in json.dumps(man) and times["threads"] == 1 and times["wall_s"] > 0
    for p in _published(final):
        assert stat.S_IMODE((final / p).stat().st_mode) == 0o644, p


def test_cli_rejects_unknown_profile_in_one_line():
    out = subprocess.run([sys.executable, "-m", "nnlens.workbook.runner", "run", "x.ipynb", "--profile", "huge"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown profile 'huge'; valid profiles: smoke, default, paper"


def test_make_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "-C", str(paths.ROOT), "help"], capture_output=True, text=True)
    for target in ("reproduce", "test", "bench", "lab", "clean", "setup"):
        assert target in out.stdout


# ------------------------------------------------------------------ reliability (issue 13)
MANIFEST = BODY + """
import os, torch
report.write_manifest(out, "01", profile, seeds=[0], config=profiles.load("01", profile))
print("threads", os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads())
"""


def test_published_files_get_the_umask_mode(tmp_path):
    import os
    import stat

    from nnlens import _io

    old = os.umask(0o022)
    try:
        assert stat.S_IMODE(_io.write_text(tmp_path / "a.md", "x\n").stat().st_mode) == 0o644
        os.umask(0o027)
        assert stat.S_IMODE(_io.write_bytes(tmp_path / "b.bin", b"x").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_publish_is_all_or_nothing(tmp_path, monkeypatch):
    final, staging = tmp_path / "final", tmp_path / "final" / ".staging" / "00_demo"
    old = {"claims.md": "old ledger", "claims/01.csv": "old rows", "figures/00_demo.png": "old figure"}
    new = {"claims.md": "new ledger", "claims/01.csv": "new rows", "figures/00_demo.png": "new figure",
           "tables/00_demo.csv": "a new table"}
    for root, files in ((final, old), (staging, new)):
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    before = _published(final)
    real = os.replace

    def full_disk(src, dst):
        if Path(dst) == final / "claims.md":                    # the last file of the publish
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        runner.publish(staging, final)
    assert _published(final) == before                              # rows, figure back; the new table gone
    monkeypatch.setattr(os, "replace", real)
    for rel, text in new.items():                                   # a failed publish used up its staging
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text)
    runner.publish(staging, final)
    assert {str(k): v.decode() for k, v in _published(final).items()} == new
    assert not (final / ".staging" / ".backup-00_demo").exists()


def test_publish_retires_the_study_files_its_new_run_no_longer_writes(tmp_path, monkeypatch):
    final, staging = tmp_path / "final", tmp_path / "final" / ".staging" / "03_demo"
    old = {"figures/03_kept.png": "old", "figures/03_gone.png": "old code's figure",
           "tables/03_gone.csv": "old code's table", "figures/04_other.png": "another study's"}
    for root, files in ((final, old), (staging, {"figures/03_kept.png": "new"})):
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    before = _published(final)
    real = os.replace

    def fails_on_last(src, dst):
        if Path(dst) == final / "figures" / "03_kept.png":
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", fails_on_last)
    with pytest.raises(OSError):
        runner.publish(staging, final, study="03")
    assert _published(final) == before                              # the retired files are back too
    monkeypatch.setattr(os, "replace", real)
    (staging / "figures").mkdir(parents=True, exist_ok=True)
    (staging / "figures" / "03_kept.png").write_text("new")
    runner.publish(staging, final, study="03")
    assert {str(k): v.decode() for k, v in _published(final).items()} == {
        "figures/03_kept.png": "new", "figures/04_other.png": "another study's"}


def test_unwritable_reports_fail_before_running_in_one_message(tmp_path, final, monkeypatch):
    from nnlens.workbook import preflight

    def denied(*a, **k):                                             # root ignores chmod, so simulate it
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "mkstemp", denied)
    with pytest.raises(SystemExit, match=r"cannot write to .*final \(Permission denied\); nothing was run"):
        runner.run(_notebook(tmp_path / "00_demo.ipynb", BODY), profile="smoke", jupyter_kernel="python3")
    assert runner.reproduce("smoke", "01", jupyter_kernel="python3") == 1
    monkeypatch.undo()
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: shutil_usage(free=10 * 2**20))
    assert "only 10 MB free" in preflight.check_writable(tmp_path)


def shutil_usage(free):
    import collections

    return collections.namedtuple("usage", "total used free")(10**12, 0, free)


def test_reproduce_lists_missing_data_runs_the_rest_and_fails_at_the_end(tmp_path, final, monkeypatch, capsys):
    from nnlens.workbook import preflight

    monkeypatch.setattr(paths, "RAW", tmp_path / "raw")             # no CIFAR-10 here
    nbs = {"01": _notebook(tmp_path / "01_demo.ipynb", "raise RuntimeError('must not run')"),
           "03": _notebook(tmp_path / "03_demo.ipynb", BODY.replace("01", "03"))}
    monkeypatch.setattr(runner, "study_notebooks", lambda: nbs)
    assert preflight.missing_data("03", "paper") == [] and preflight.missing_data("05", "paper") == []
    rc = runner.reproduce("paper", "01,03", jupyter_kernel="python3", threads=1)
    out, err = capsys.readouterr()
    assert rc == 1
    assert "missing data at profile paper; skipping 01, running 03" in err
    assert "cifar10 is not in" in err and "cifar-10-python.tar.gz" in err and "(needed by 01)" in err
    assert "not reproduced: 01 (skipped: data missing)" in err
    assert (final / "notebooks" / "03_demo.ipynb").exists() and not (final / "notebooks" / "01_demo.ipynb").exists()
    assert "total wall time" in out and "03     ran" in out
    timings = json.loads((final / "timings.json").read_text())
    assert timings["studies"]["03"]["threads"] == 1 and timings["studies"]["03"]["wall_s"] > 0
    # up to date: same sources and threads; stale when a source is newer or the thread count differs
    assert runner.up_to_date("03", "paper", 1)
    assert not runner.up_to_date("03", "paper", 2)
    monkeypatch.setattr(runner, "newest_source", lambda nb, final: time.time() + 60)
    assert not runner.up_to_date("03", "paper", 1)


def test_select_accepts_one_study_or_a_list():
    assert runner.select("02") == ["02"] and runner.select("2") == ["02"]
    assert runner.select("01,03") == ["01", "03"] and runner.select("01 03") == ["01", "03"]
    assert runner.select("") == list(runner.study_notebooks())
    with pytest.raises(ValueError, match="unknown study 09; valid studies: 01, 02, 03, 04, 05"):
        runner.select("09")


# ------------------------------------------------------------------ the terminal (issue 25): one error, nothing else
MAIN = """
import sys
from pathlib import Path
from nnlens import paths
from nnlens.workbook import runner
root = Path({root!r})
paths.RAW = root.parent / "raw"                    # no downloaded data here, whatever the machine has
runner.final_reports_dir = lambda profile: root / profile
notebooks = {notebooks!r}
if notebooks:
    runner.study_notebooks = lambda: {{k: Path(v) for k, v in notebooks.items()}}
sys.exit(runner.main({argv!r}))
"""


def _main(root, argv, notebooks=None, **popen):
    """``python -m nnlens.workbook.runner ARGV`` with its reports under ``root/<profile>`` (a subprocess)."""
    code = MAIN.format(root=str(root), notebooks={k: str(v) for k, v in (notebooks or {}).items()}, argv=argv)
    if popen:
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **popen)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "--threads", "abc", "--site"],
     "error: argument --threads: threads must be a positive integer, got 'abc'"),
    (["reproduce", "--profile", "nope", "--site"],
     "error: unknown profile 'nope'; valid profiles: smoke, default, paper"),
    (["reproduce", "--study", "9", "--site"], "error: unknown study 09; valid studies: 01, 02, 03, 04, 05"),
    (["run", "x.ipynb", "--threads", "0"], "error: argument --threads: threads must be a positive integer, got '0'"),
])
def test_a_bad_argument_is_one_line_and_writes_nothing(tmp_path, argv, message):
    out = _main(tmp_path / "reports", argv)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", message + "\n")
    assert not (tmp_path / "reports").exists()                       # no reports/nope/site/, no site rebuilt


def test_site_cli_bad_profile_or_nothing_published_is_one_line(tmp_path):
    site = [sys.executable, "-m", "nnlens.workbook.site"]
    out = subprocess.run(site + ["--profile", "nope"], capture_output=True, text=True)
    assert (out.returncode, out.stderr) == (2, "error: unknown profile 'nope'; valid profiles: smoke, default, paper\n")
    (tmp_path / "empty").mkdir()
    out = subprocess.run(site + ["--reports", str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 1 and len(out.stderr.splitlines()) == 1 and "make reproduce" in out.stderr
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_failed_study_is_one_error_with_the_message_first_and_no_site_error(tmp_path):
    body = BODY.replace('profile, out = profiles.start(profile, outputs)',
                        'profile, out = profiles.start(profile, outputs)\nprofiles.load("01", profile, seeds="abc")')
    nb = _notebook(tmp_path / "00_fail.ipynb", body)
    out = _main(tmp_path / "reports", ["reproduce", "--profile", "smoke", "--kernel", "python3", "--threads", "1",
                                       "--site"], notebooks={"01": nb})
    assert out.returncode == 1, out.stderr
    first = out.stderr.splitlines()[0]
    assert first.startswith("error: notebook 00_fail.ipynb failed in cell [") and first.endswith(
        "ProfileError: study 01: parameter 'seeds' must be tuple, got str 'abc'"), out.stderr
    assert out.stderr.splitlines()[1:] == [
        f"  the previous reports in {tmp_path}/reports/smoke/ are unchanged; the partly executed notebook is "
        f"{tmp_path}/reports/smoke/.failed/00_fail.ipynb"], out.stderr
    assert "[00_fail] running at profile smoke with 1 threads ..." in out.stdout and "total wall" not in out.stdout
    assert "Traceback" not in out.stdout + out.stderr and "no executed notebooks" not in out.stdout + out.stderr
    assert not (tmp_path / "reports" / "smoke" / "site").exists()   # nothing published: no site to build


def test_missing_data_for_one_study_is_one_message_naming_what_to_download(tmp_path):
    out = _main(tmp_path / "reports", ["reproduce", "--profile", "paper", "--study", "01", "--site"])
    assert (out.returncode, out.stdout) == (1, "")
    raw = tmp_path / "raw"
    assert out.stderr.splitlines() == [
        "missing data at profile paper; skipping 01:",
        f"  cifar10 is not in {raw}/cifar-10-batches-py: download https://www.cs.toronto.edu/~kriz/"
        f"cifar-10-python.tar.gz into {raw}/ (it is extracted on first use) (needed by 01)"], out.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())   # no empty paper/


def test_stages_name_the_markdown_above_each_code_cell():
    from papermill.engines import NotebookExecutionManager

    from nnlens.workbook import bookkeeping

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 09 · Title\n\nThe question."), nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_markdown_cell("**Train** the [networks](x.md): three seeds, cached."),
        nbformat.v4.new_code_cell("b = 2"), nbformat.v4.new_code_cell("c = 3")])
    assert bookkeeping.stages(nb) == {0: "09 · Title The question", 1: "09 · Title The question",
                                      2: "Train the networks", 3: "Train the networks", 4: "Train the networks"}
    path = Path(__import__("tempfile").mkdtemp()) / "09_demo.ipynb"
    nbformat.write(nb, path)
    original = NotebookExecutionManager.get_cell_description
    with bookkeeping.stage_descriptions(path, "09_demo"):
        assert NotebookExecutionManager.get_cell_description(None, nb.cells[3]) == "09_demo · Train the networks"
    assert NotebookExecutionManager.get_cell_description is original


def test_ctrl_c_prints_one_line_publishes_nothing_and_builds_no_site(tmp_path):
    import signal

    root = tmp_path / "reports"
    final = root / "smoke"
    (final / "notebooks").mkdir(parents=True)                         # an earlier study is published ...
    _notebook(final / "notebooks" / "01_earlier.ipynb", "x = 1")
    nb = _notebook(tmp_path / "00_sleep.ipynb", "import time\nfor _ in range(900):\n    time.sleep(0.1)\n")
    proc = _main(root, ["reproduce", "--profile", "smoke", "--kernel", "python3", "--site"], notebooks={"01": nb},
                 start_new_session=True)
    staged = final / ".staging" / "00_sleep" / "notebooks" / "00_sleep.ipynb"
    for _ in range(600):                                             # papermill writes it once the kernel runs
        if staged.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert staged.exists(), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)                               # the terminal's Ctrl-C: runner and kernel
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == f"interrupted: nothing published for 01; {final}/ unchanged", err
    assert "Traceback" not in out + err
    assert not (final / ".staging").exists() and not (final / "site").exists()   # ... but no site is rebuilt
    assert sorted(p.name for p in (final / "notebooks").iterdir()) == ["01_earlier.ipynb"]


@pytest.mark.skipif(not (paths.ROOT / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
@pytest.mark.parametrize("target, var, message", [
    ("reproduce", "PROFILE=nope", "error: unknown profile 'nope'; valid profiles: smoke, default, paper"),
    ("reproduce", "THREADS=abc", "error: argument --threads: threads must be a positive integer, got 'abc'"),
    ("reproduce", "STUDY=9", "error: unknown study 09; valid studies: 01, 02, 03, 04, 05"),
    ("site", "PROFILE=nope", "error: unknown profile 'nope'; valid profiles: smoke, default, paper"),
])
def test_make_prints_the_one_error_first_and_writes_nothing(target, var, message):
    # -o: the shared .venv counts as installed (never pip-install from a test); these fail before any run
    out = subprocess.run(["make", "-s", "-o", ".venv/.nnlens-installed", "-C", str(paths.ROOT), target, var],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.splitlines()[0] == message, out.stderr          # then only make's own "Error 2" line
    assert len(out.stderr.splitlines()) == 2 and not (paths.REPORTS / "nope").exists()
