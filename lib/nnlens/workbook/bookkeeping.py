"""What ``make reproduce`` keeps track of around the notebooks it runs (used by ``nnlens.workbook.runner``).

- ``ensure_bench``: the benchmark a study reads (study 05: ``bench/ntk.csv``), run first when missing or stale;
- ``newest_source`` / ``load_timings`` / ``save_timings``: what the up-to-date rule compares, and the
  wall and CPU seconds of every study (``timings.json``, the one published file that changes per rerun);
- ``index``: ``claims.md`` and the report index ``README.md`` of a reports folder;
- ``stages``: the terminal's progress over a notebook, one stage per Markdown cell (its first words);
- ``environ``, ``cpu_children``: small process helpers; ``OneLineParser``, ``positive_threads``: the command
  line's one-line errors.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

from .. import _io, paths
from ..report import ledger
from ..studies import profiles
from . import preflight

TIMINGS = "timings.json"
SOURCES = ("pyproject.toml", "requirements.lock")


@contextlib.contextmanager
def environ(**changes: str | None):
    """Set (or, with None, unset) environment variables for the block; restore them after."""
    before = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        yield
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def cpu_children() -> float:
    """CPU seconds (user + system) of every child process that has ended so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ensure_bench(study: str, profile: str, final: Path, threads: int) -> None:
    """Run the study's benchmark first when its table is missing or stale (study 05 reads ``bench/ntk.csv``).

    A study package that reads a benchmark names it (``BENCHMARK = "ntk"``: ``benchmarks/ntk.py``) and
    says whether a table fits its config (``bench_ready(cfg, profile, bench_dir)``). The table is stale
    when it does not fit, or is older than the benchmark script or the NTK engine it times. The
    benchmark runs in its own process with ``threads`` threads and writes ``bench/`` atomically."""
    if study not in profiles.studies():          # a notebook run by path that is no study's
        return
    pkg = profiles.package(study)
    name = getattr(pkg, "BENCHMARK", None)
    if not name:
        return
    script, table = paths.BENCHMARKS / f"{name}.py", final / "bench" / f"{name}.csv"
    sources = [script, *(paths.ROOT / "lib" / "nnlens" / "ntk").glob("*.py")]
    fresh = table.exists() and table.stat().st_mtime >= max(f.stat().st_mtime for f in sources if f.exists())
    if fresh and pkg.bench_ready(profiles.load(study, profile), profile, table.parent):
        return
    print(f"[{study}] {paths.show(table)} is missing or stale: running benchmarks/{name}.py --profile {profile} "
          f"first (`make bench` does this ahead of time)", flush=True)
    env = {**os.environ, **preflight.thread_env(threads), "PYTHONPATH": str(paths.ROOT / "lib")}
    r = subprocess.run([sys.executable, str(script), "--profile", profile, "--out", str(table.parent)],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"error: benchmarks/{name}.py --profile {profile} failed (exit {r.returncode}): {last}\n"
                         f"  the reports in {paths.show(final)}/ are unchanged")


def newest_source(nb: Path, final: Path) -> float:
    """Newest mtime of what a study's outputs depend on: its notebook, the library, the pinned
    environment, and the published ``bench/`` results that notebooks read (``make bench``)."""
    files = [nb, *(paths.ROOT / s for s in SOURCES), *(paths.ROOT / "lib" / "nnlens").rglob("*.py"),
             *(final / "bench").glob("*")]
    return max(f.stat().st_mtime for f in files if f.is_file())


def load_timings(final: Path) -> dict:
    try:
        return json.loads((final / TIMINGS).read_text())
    except (OSError, ValueError):
        return {}


def save_timings(final: Path, profile: str, ran: dict[str, dict], total: float) -> None:
    doc = load_timings(final)
    doc["profile"] = profile
    doc.setdefault("studies", {}).update(ran)
    doc["studies"] = dict(sorted(doc["studies"].items()))
    doc["last_reproduce_wall_s"] = round(total, 1)
    with contextlib.suppress(OSError):        # timings are a record, never a reason to fail a good run
        _io.write_text(final / TIMINGS, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def index(final: Path, profile: str) -> Path:
    """Rebuild ``claims.md`` and ``README.md`` (the index of figures, tables and notebooks) in ``final``."""
    _io.write_text(final / "claims.md", ledger.claims_md_text(final / "claims"))
    lines = [f"# Reports ({profile} profile)", "",
             "Regenerated by `make reproduce`; see [claims.md](claims.md) for every row and its verdict, "
             "and [site/index.html](site/index.html) for the report site.", ""]
    for nbp in sorted((final / "notebooks").glob("*.ipynb")):
        study = nbp.stem[:2]
        lines += [f"## {nbp.stem}", "", f"- executed notebook: [notebooks/{nbp.name}](notebooks/{nbp.name})"]
        for t in sorted((final / "tables").glob(f"{study}_*.md")):
            lines.append(f"- table: [{t.stem}](tables/{t.name}) ([csv](tables/{t.stem}.csv))")
        for f in sorted((final / "figures").glob(f"{study}_*.png")):
            lines.append(f"- figure: [{f.stem}](figures/{f.name})")
        lines.append("")
    return _io.write_text(final / "README.md", "\n".join(lines))


def _stage_name(markdown: str, width: int = 48) -> str:
    """The first words of a Markdown cell, without heading marks, links or emphasis, cut at ``width``."""
    text = " ".join(markdown.split())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)           # [label](url) -> label
    text = re.sub(r"[#*_`>]+", "", text).strip()
    text = re.split(r"(?<=[.:;])\s", text, maxsplit=1)[0].rstrip(".:;")
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def stages(nb) -> dict[int, str]:
    """{cell index: the stage it belongs to}: the first words of the Markdown cell it is or that is above it."""
    out, current = {}, ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.strip():
            current = _stage_name(cell.source)
        out[i] = current
    return out


@contextlib.contextmanager
def stage_descriptions(nb_path: Path, label: str):
    """While papermill runs ``nb_path``, its cell bar's description names the stage (``label · stage``).

    Papermill asks ``NotebookExecutionManager.get_cell_description(cell)`` at every cell start; this
    answers from the notebook's own Markdown instead of a ``papermill_description`` comment."""
    import nbformat
    from papermill.engines import NotebookExecutionManager

    nb = nbformat.read(nb_path, as_version=4)
    by_id = {nb.cells[i].get("id"): s for i, s in stages(nb).items()}
    original = NotebookExecutionManager.get_cell_description

    def describe(self, cell, escape_str="papermill_description="):
        stage = by_id.get(cell.get("id"), "")
        return f"{label} · {stage}" if stage else label

    NotebookExecutionManager.get_cell_description = describe
    try:
        yield
    finally:
        NotebookExecutionManager.get_cell_description = original


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``error: ...``), not the usage text first."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def positive_threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threads must be a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"threads must be a positive integer, got {text!r}")
    return n
