"""Run study notebooks headless with papermill, safely.

``python -m nnlens.runner run notebooks/01_pca_surrogates.ipynb --profile default``

1. The notebook runs with papermill (``-p profile ...``, ``--cwd notebooks``)
   into a staging folder; ``NNLENS_REPORTS`` points the library's figures,
   tables, claims and manifests there too. The staging folder starts with a
   copy of the published ``bench/`` results, which ``make bench`` makes and
   notebooks only read.
2. Success: volatile metadata (timestamps, durations) is scrubbed so a rerun is
   byte-identical, then every staged file is moved into the reports folder
   (one atomic rename per file) and ``claims.md`` is rebuilt.
3. Failure: nothing in the reports folder changes; one message names the cell
   and the error, and the partly executed notebook is kept in ``.failed/`` there.

``python -m nnlens.runner index`` rebuilds ``claims.md`` and the report index ``README.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import _io, paths, profiles

VOLATILE_KEYS = ("start_time", "end_time", "duration", "exception")


@contextlib.contextmanager
def _environ(**changes: str | None):
    """Set (or, with None, unset) environment variables for the block; restore them after."""
    before = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        yield
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _show(p: Path) -> str:
    """``p`` relative to the repository root when it is inside it."""
    try:
        return str(p.relative_to(paths.ROOT))
    except ValueError:
        return str(p)


def final_reports_dir(profile: str) -> Path:
    return paths.ROOT / "reports" if profile == "default" else paths.ROOT / "reports" / profile


def scrub(nb_path: Path) -> None:
    """Remove papermill's timestamps and durations and the kernel's execution metadata."""
    nb = json.loads(nb_path.read_text())
    pm = nb.get("metadata", {}).get("papermill", {})
    for k in VOLATILE_KEYS:
        pm.pop(k, None)
    pm.pop("input_path", None)
    pm.pop("output_path", None)
    for cell in nb.get("cells", []):
        md = cell.get("metadata", {})
        if "injected-parameters" in md.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a random id for this cell
        md.pop("execution", None)
        for k in VOLATILE_KEYS:
            md.get("papermill", {}).pop(k, None)
    _io.write_text(nb_path, json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def _merge(staging: Path, final: Path) -> list[Path]:
    moved = []
    for src in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = src.relative_to(staging)
        if rel == Path("claims.md"):
            continue  # rebuilt from all studies below
        dst = final / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        moved.append(dst)
    return moved


def run(notebook: str | Path, profile: str = "default", kernel: str = "nnlens") -> Path:
    import papermill as pm

    profiles.validate_profile(profile)
    nb = Path(notebook).resolve()
    if not nb.exists():
        raise SystemExit(f"error: notebook {notebook} does not exist; notebooks are in {paths.NOTEBOOKS}")
    final = final_reports_dir(profile)
    staging = final / ".staging" / nb.stem     # same file system as final: renames are atomic
    failed = final / ".failed"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    out_nb = staging / "notebooks" / nb.name
    out_nb.parent.mkdir(parents=True)
    if (final / "bench").is_dir():  # inputs made by `make bench`, read by notebooks (study 05)
        shutil.copytree(final / "bench", staging / "bench")
    print(f"[{nb.stem}] running at profile {profile} ...", flush=True)
    t0 = time.perf_counter()
    # papermill's -p profile is the one that counts here, so NNLENS_PROFILE is unset
    with _environ(NNLENS_REPORTS=str(staging), NNLENS_PROGRESS="0", NNLENS_PROFILE=None):
        try:
            pm.execute_notebook(str(nb), str(out_nb), parameters={"profile": profile}, kernel_name=kernel,
                                cwd=str(paths.NOTEBOOKS), progress_bar=False, log_output=False)
        except Exception as e:  # papermill raises PapermillExecutionError for a failing cell
            failed.mkdir(parents=True, exist_ok=True)
            kept = failed / nb.name
            if out_nb.exists():
                shutil.copy(out_nb, kept)
            shutil.rmtree(staging, ignore_errors=True)
            cell = getattr(e, "exec_count", None)
            what = f"{getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', e)}"
            raise SystemExit(
                f"error: notebook {nb.name} failed{f' in cell [{cell}]' if cell else ''} after "
                f"{time.perf_counter() - t0:.1f} s: {what}\n"
                f"  the previous reports in {_show(final)}/ are unchanged; "
                f"the partly executed notebook is {_show(kept)}"
            ) from None
    scrub(out_nb)
    _merge(staging, final)
    shutil.rmtree(staging, ignore_errors=True)
    with _environ(NNLENS_REPORTS=str(final)):
        from . import reports

        reports.build_claims_md()
    print(f"[{nb.stem}] done in {time.perf_counter() - t0:.1f} s -> {_show(final)}/", flush=True)
    return final / "notebooks" / nb.name


def index(profile: str = "default") -> Path:
    """Rebuild ``claims.md`` and ``README.md`` (the index of figures, tables and notebooks)."""
    from . import reports

    final = final_reports_dir(profile)
    with _environ(NNLENS_REPORTS=str(final)):
        reports.build_claims_md()
    lines = [f"# Reports ({profile} profile)", "",
             "Regenerated by `make reproduce`; see [claims.md](claims.md) for every paper claim and its verdict.", ""]
    for nbp in sorted((final / "notebooks").glob("*.ipynb")):
        study = nbp.stem[:2]
        lines += [f"## {nbp.stem}", "", f"- executed notebook: [notebooks/{nbp.name}](notebooks/{nbp.name})"]
        for t in sorted((final / "tables").glob(f"{study}_*.md")):
            lines.append(f"- table: [{t.stem}](tables/{t.name}) ([csv](tables/{t.stem}.csv))")
        for f in sorted((final / "figures").glob(f"{study}_*.png")):
            lines.append(f"- figure: [{f.stem}](figures/{f.name})")
        lines.append("")
    return _io.write_text(final / "README.md", "\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnlens.runner", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one notebook into the reports")
    r.add_argument("notebook")
    r.add_argument("--profile", default="default")
    r.add_argument("--kernel", default="nnlens")
    i = sub.add_parser("index", help="rebuild claims.md and the reports index")
    i.add_argument("--profile", default="default")
    args = ap.parse_args(argv)
    try:
        profiles.validate_profile(args.profile)
    except profiles.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cmd == "run":
        try:
            run(args.notebook, args.profile, args.kernel)
        except SystemExit as e:
            print(e, file=sys.stderr)
            return 1
    else:
        index(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
