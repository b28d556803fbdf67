"""Run study notebooks headless with papermill, safely; ``make reproduce`` is ``reproduce`` here.

``python -m nnlens.workbook.runner reproduce --profile default --study 02`` runs study 02
(``--study 01,03`` a list; no ``--study``: all five; ``--threads 2`` the torch/BLAS
threads; ``--force`` reruns up-to-date studies; ``--site`` rebuilds the HTML site after, but not after
Ctrl-C nor when nothing is published). ``make reproduce STUDY=02 THREADS=2`` calls exactly this.
"Kernel" here is the Jupyter kernel the notebooks run in (``--kernel nnlens``), never an NTK.
``python -m nnlens.workbook.runner run notebooks/01_pca_surrogates.ipynb`` runs one notebook by path.
A bad argument (``--threads abc``), an unknown profile or study: one line, exit 2, nothing written.

Before anything runs (``reproduce``): the reports folder must take files (one
message and exit 1 if not), and every selected study's data must be on disk
(``preflight.missing_data``): everything missing is listed in one message, the
studies that need nothing missing still run, and the exit status is 1 at the end.
A study that fails does not stop the others either; it is named at the end (exit 1).
A study is up to date (skipped) when its executed notebook is newer than the
notebook, every ``lib/nnlens`` source, ``pyproject.toml``, ``requirements.lock`` and
the published ``bench/`` results, and it ran with the same thread count (the timestamp
rule ``make`` would apply; the executed notebook carries the run's start time, so a
source edited during a run makes it stale).

One study:

1. The notebook runs with papermill (``-p profile ...``, ``--cwd notebooks``; on a terminal a bar
   names the stage: the first words of the Markdown cell above the running cell) into a
   staging folder, in a kernel pinned to ``threads`` threads (``preflight.thread_env``); the
   notebook's ``outputs`` parameter sends figures, tables, claims and manifests there too. Staging
   starts with a copy of the published ``bench/`` results, which notebooks only read.
2. Success: volatile metadata (timestamps, durations) is scrubbed so a rerun is
   byte-identical, ``claims.md`` is rebuilt in staging from the published claims
   overlaid with the staged ones, and every staged file is moved into the reports
   folder. Publishing is all or nothing: if a move fails (full disk, read-only
   folder, Ctrl-C) every file already moved is put back as it was, so ``claims.md``
   is never half-updated. A ``.failed/`` copy of the notebook is removed.
3. Failure: nothing in the reports folder changes; one message names the cell and
   the error, and the partly executed notebook is kept in ``.failed/`` there (with
   the kernel's stderr, ``<notebook>.kernel.log``, which never reaches the terminal).
4. Ctrl-C: staging is removed, one line says nothing was published for the study.

Wall and CPU seconds of every study go to ``timings.json`` in the reports folder,
the only published file that changes from rerun to rerun; the end of ``reproduce``
prints them with the total. ``python -m nnlens.workbook.runner index`` rebuilds
``claims.md`` and the report index ``README.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from .. import _io, paths
from ..report import ledger
from ..report.outputs import SECONDS_FILE
from ..studies import profiles
from . import preflight
from .bookkeeping import (
    TIMINGS,
    OneLineParser,
    cpu_children,
    ensure_bench,
    environ,
    index,
    load_timings,
    newest_source,
    positive_threads,
    save_timings,
    stage_descriptions,
)
from .publish import publish, scrub, stderr_to

__all__ = ["run", "reproduce", "select", "up_to_date", "publish", "index", "main"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during one study; staging has been removed and nothing was published for it."""


def final_reports_dir(profile: str) -> Path:
    """Where ``profile`` is published (``paths.published_dir``; tests point it elsewhere)."""
    return paths.published_dir(profile)


def study_notebooks() -> dict[str, Path]:
    """{"01": notebooks/01_pca_surrogates.ipynb, ...}: every study package's notebook (``profiles.studies``)."""
    return {s: profiles.notebook(s) for s in profiles.studies()}


def select(studies) -> list[str]:
    """Study ids from "02", "2", "01,03", "01 03", a list, or nothing (all)."""
    known = study_notebooks()
    if isinstance(studies, str):
        studies = studies.replace(",", " ").split()
    picked = [str(s).strip().zfill(2) for s in (studies or [])] or list(known)
    bad = [s for s in picked if s not in known]
    if bad:
        raise profiles.ProfileError(f"unknown study {', '.join(bad)}; valid studies: {', '.join(known)}")
    return list(dict.fromkeys(picked))


def _execute(nb: Path, out_nb: Path, staging: Path, profile: str, jupyter_kernel: str, threads: int,
             log: Path) -> None:
    import papermill as pm

    # the parameters (profile, outputs = the staging folder) are the ones that count here, so the variables
    # that stand in for them under nbval are unset; the kernel imports the library this runner runs from
    # (a relative PYTHONPATH would not survive its cwd, notebooks/). NNLENS_PROGRESS=0: the library's own
    # bars would land in the executed notebook (widgets, rates) and break its byte-stability; the terminal
    # gets the runner's bar over the notebook's stages instead.
    pythonpath = os.pathsep.join([str(paths.ROOT / "lib")] + [
        str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    with environ(NNLENS_REPORTS=None, NNLENS_PROGRESS="0", NNLENS_PROFILE=None, PYTHONPATH=pythonpath,
                 **preflight.thread_env(threads)), stderr_to(log) as terminal, stage_descriptions(nb, nb.stem):
        # one bar over the notebook's cells, described by the stage it is in (none when not a terminal)
        bar = {"file": terminal, "desc": f"Starting {nb.stem}: ", "leave": False, "unit": "cell",
               "bar_format": "  {desc}{n_fmt}/{total_fmt} cells [{elapsed}]"} if terminal.isatty() else False
        pm.execute_notebook(str(nb), str(out_nb), parameters={"profile": profile, "outputs": str(staging)},
                            kernel_name=jupyter_kernel, cwd=str(paths.NOTEBOOKS), progress_bar=bar,
                            log_output=False)


def _failure_message(e: Exception, nb: Path, seconds: float, final: Path, kept: Path) -> str:
    """One line that names the cell and the error (the error's own message first), then where things are."""
    cell = getattr(e, "exec_count", None)
    lines = [x for x in str(getattr(e, "evalue", e)).strip().splitlines() if x.strip()] or [""]
    what = f"{getattr(e, 'ename', type(e).__name__)}: {lines[0]}{' …' if len(lines) > 1 else ''}"
    return (f"error: notebook {nb.name} failed{f' in cell [{cell}]' if cell else ''} after {seconds:.1f} s: "
            f"{what}\n  the previous reports in {paths.show(final)}/ are unchanged; "
            f"the partly executed notebook is {paths.show(kept)}")


def _keep_failed(nb: Path, out_nb: Path, log: Path, failed: Path) -> Path:
    failed.mkdir(parents=True, exist_ok=True)
    kept = failed / nb.name
    if out_nb.exists():
        shutil.copy(out_nb, kept)
    if log.exists() and log.stat().st_size:
        shutil.copy(log, failed / log.name)
    return kept


def _publish_run(nb: Path, out_nb: Path, staging: Path, final: Path, start: float, log: Path) -> dict:
    """Scrub the executed notebook, rebuild ``claims.md`` in staging and publish; clear ``.failed/``.
    Returns the step times the notebook recorded (for timings.json only, never published)."""
    scrub(out_nb)
    steps = staging / SECONDS_FILE
    step_s = json.loads(steps.read_text()) if steps.exists() else {}
    steps.unlink(missing_ok=True)
    _io.write_text(staging / "claims.md", ledger.claims_md_text(final / "claims", staging / "claims"))
    try:
        publish(staging, final, study=nb.stem[:2])
    except OSError as e:
        raise SystemExit(f"error: publishing {nb.stem} failed ({e.strerror or e}: {e.filename}); "
                         f"every file was put back, the reports in {paths.show(final)}/ are unchanged") from None
    os.utime(final / "notebooks" / nb.name, (start, start))  # up to date only against sources older than the run
    failed = final / ".failed"
    for stale in (failed / nb.name, failed / log.name):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    with contextlib.suppress(OSError):
        failed.rmdir()                                        # only when empty
    return step_s


def run(notebook: str | Path, profile: str = "default", jupyter_kernel: str = "nnlens",
        threads: int = preflight.DEFAULT_THREADS, timings: dict | None = None) -> Path:
    """Run one notebook into the reports at ``profile`` in the Jupyter kernel ``jupyter_kernel``;
    ``timings`` (if given) gets wall/cpu seconds."""
    profiles.validate_profile(profile)
    nb = Path(notebook).resolve()
    if not nb.exists():
        raise SystemExit(f"error: notebook {notebook} does not exist; notebooks are in {paths.show(paths.NOTEBOOKS)}/")
    final = final_reports_dir(profile)
    problem = preflight.check_writable(final)
    if problem:
        raise SystemExit(f"error: {problem}; nothing was run and the reports are unchanged")
    staging = final / ".staging" / nb.stem     # same file system as final: renames are atomic
    shutil.rmtree(staging, ignore_errors=True)
    out_nb = staging / "notebooks" / nb.name
    log = staging.parent / f"{nb.stem}.kernel.log"   # outside staging: never published
    ensure_bench(nb.stem[:2], profile, final, threads)
    print(f"[{nb.stem}] running at profile {profile} with {threads} threads ...", flush=True)
    start, t0, c0 = time.time(), time.perf_counter(), cpu_children()
    try:
        out_nb.parent.mkdir(parents=True)
        if (final / "bench").is_dir():  # inputs made by `make bench`, read by notebooks (study 05)
            shutil.copytree(final / "bench", staging / "bench")
        try:
            _execute(nb, out_nb, staging, profile, jupyter_kernel, threads, log)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # papermill raises PapermillExecutionError for a failing cell
            if _INTERRUPTED:
                raise KeyboardInterrupt from None   # the kernel saw the Ctrl-C first
            kept = _keep_failed(nb, out_nb, log, final / ".failed")
            raise SystemExit(_failure_message(e, nb, time.perf_counter() - t0, final, kept)) from None
        step_s = _publish_run(nb, out_nb, staging, final, start, log)
    except KeyboardInterrupt:
        raise Interrupted(nb.stem[:2]) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            log.unlink()
        with contextlib.suppress(OSError):
            staging.parent.rmdir()
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    if timings is not None:
        timings.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1), threads=threads, steps=step_s)
    print(f"[{nb.stem}] done in {wall:.1f} s (CPU {cpu:.1f} s) -> {paths.show(final)}/", flush=True)
    return final / "notebooks" / nb.name


# ------------------------------------------------------------------ reproduce
def up_to_date(study: str, profile: str, threads: int) -> bool:
    """Executed notebook newer than every source it depends on, and run with ``threads`` threads."""
    nb = study_notebooks()[study]
    final = final_reports_dir(profile)
    out = final / "notebooks" / nb.name
    if not out.exists() or out.stat().st_mtime < newest_source(nb, final):
        return False
    return load_timings(final).get("studies", {}).get(study, {}).get("threads") == threads


_INTERRUPTED: list[bool] = []


def _on_sigint(signum, frame):
    _INTERRUPTED.append(True)
    signal.default_int_handler(signum, frame)


def _summary(picked: list[str], status: dict, ran: dict, total: float, final: Path) -> list[str]:
    """The table of studies and times, and what was not reproduced; for one study that did not run, nothing
    more than its own error (already printed). Names only files that exist."""
    bad = [s for s in picked if status[s] not in ("ran", "up to date")]
    if len(picked) > 1 or not bad:
        print(f"\n{'study':<6} {'status':<22} {'wall s':>8} {'CPU s':>8}")
        for s in picked:
            e = ran.get(s, {})
            print(f"{s:<6} {status[s]:<22} {e.get('wall_s', ''):>8} {e.get('cpu_s', ''):>8}")
        files = [f"{what}: {paths.show(final / name)}" for what, name in (("claims", "claims.md"), ("times", TIMINGS))
                 if (final / name).is_file()]
        print(f"total wall time {total:.1f} s ({total / 60:.1f} min); reports in {paths.show(final)}/"
              + (f" ({', '.join(files)})" if files else " (unchanged)"))
    if bad and len(picked) > 1:
        print(f"not reproduced: {', '.join(f'{s} ({status[s]})' for s in bad)}", file=sys.stderr)
    return bad


def build_site(final: Path) -> None:
    """The HTML site of what is published (``nnlens.workbook.site``); silent when nothing is."""
    from . import site

    if not any((final / "notebooks").glob("*.ipynb")):
        return
    try:
        page = site.build(final)
    except Exception as e:   # the reports are published; a site that cannot be built is reported, not fatal
        print(f"warning: the site was not rebuilt ({type(e).__name__}: {e})", file=sys.stderr)
        return
    print(f"site: {paths.show(page)}")


def reproduce(profile: str = "default", studies=None, jupyter_kernel: str = "nnlens",
              threads: int = preflight.DEFAULT_THREADS, force: bool = False, site: bool = False) -> int:
    """Run the selected studies (all by default) into the reports; 0 when all ran or were up to date.

    ``site``: rebuild the HTML site at the end (not after Ctrl-C, and not when nothing is published)."""
    profiles.validate_profile(profile)
    picked = select(studies)
    final = final_reports_dir(profile)
    existed = final.exists()
    problem = preflight.check_writable(final)
    if problem:
        print(f"error: {problem}; nothing was run and the reports are unchanged", file=sys.stderr)
        return 1
    try:
        return _reproduce(picked, profile, final, jupyter_kernel, threads, force, site)
    finally:
        if not existed:                    # a run that published nothing leaves no empty reports/<profile>/
            with contextlib.suppress(OSError):
                final.rmdir()


def _reproduce(picked: list[str], profile: str, final: Path, jupyter_kernel: str, threads: int, force: bool,
               site: bool) -> int:
    missing = preflight.check_data(picked, profile)
    status: dict[str, str] = {s: "skipped: data missing" for s in missing}
    ran: dict[str, dict] = {}
    t0 = time.perf_counter()
    notebooks = study_notebooks()
    for s in (s for s in picked if s not in missing):
        if not force and up_to_date(s, profile, threads):
            status[s] = "up to date"
            print(f"[{notebooks[s].stem}] up to date", flush=True)
            continue
        entry: dict = {}
        try:
            run(notebooks[s], profile, jupyter_kernel, threads, timings=entry)
        except Interrupted:
            signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second Ctrl-C must not break the summary
            if ran:
                index(final, profile)
                save_timings(final, profile, ran, time.perf_counter() - t0)
            rest = f"{', '.join(ran)} published before it" if ran else f"{paths.show(final)}/ unchanged"
            print(f"\ninterrupted: nothing published for {s}; {rest}", file=sys.stderr)
            return 130
        except SystemExit as e:
            print(e, file=sys.stderr, flush=True)
            status[s] = "failed"
            continue
        status[s] = "ran"
        ran[s] = entry
    total = time.perf_counter() - t0
    if ran:
        index(final, profile)
        save_timings(final, profile, ran, total)
    bad = _summary(picked, status, ran, total, final)
    if site:
        build_site(final)
    return 1 if bad else 0


# ------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="python -m nnlens.workbook.runner", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    r = sub.add_parser("run", help="run one notebook into the reports")
    r.add_argument("notebook")
    rp = sub.add_parser("reproduce", help="run studies (all, or --study 02 / 01,03) into the reports")
    rp.add_argument("--study", default="", help="study ids, e.g. 02 or 01,03 (default: all)")
    rp.add_argument("--force", action="store_true", help="rerun studies that are up to date")
    rp.add_argument("--site", action="store_true", help="then rebuild the HTML site (not after Ctrl-C)")
    for p in (r, rp):
        p.add_argument("--profile", default="default")
        p.add_argument("--kernel", dest="jupyter_kernel", default="nnlens", help="the Jupyter kernel to run in")
        p.add_argument("--threads", type=positive_threads, default=preflight.DEFAULT_THREADS,
                       help=f"torch/BLAS threads of the kernel (default {preflight.DEFAULT_THREADS})")
    i = sub.add_parser("index", help="rebuild claims.md and the reports index")
    i.add_argument("--profile", default="default")
    b = sub.add_parser("bench", help="run the benchmarks the studies read, when missing or stale")
    b.add_argument("--profile", default="default")
    b.add_argument("--reports", default="", help="reports root whose bench/ to fill (default: the published one)")
    b.add_argument("--threads", type=positive_threads, default=preflight.DEFAULT_THREADS)
    return ap


def _command(args) -> int:
    try:
        if args.cmd == "run":
            run(args.notebook, args.profile, args.jupyter_kernel, args.threads)
        elif args.cmd == "reproduce":
            return reproduce(args.profile, args.study, args.jupyter_kernel, args.threads, args.force, args.site)
        elif args.cmd == "bench":
            root = Path(args.reports) if args.reports else final_reports_dir(args.profile)
            for s in profiles.studies():
                ensure_bench(s, args.profile, root, args.threads)
        else:
            index(final_reports_dir(args.profile), args.profile)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        profiles.validate_profile(args.profile)
        if args.cmd == "reproduce":
            select(args.study)
    except profiles.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not when started with SIGINT ignored
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        return _command(args)
    except KeyboardInterrupt as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        what = f"nothing published for {e.args[0]}" if isinstance(e, Interrupted) and e.args else "nothing published"
        print(f"\ninterrupted: {what}; {paths.show(final_reports_dir(args.profile))}/ unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
