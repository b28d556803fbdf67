"""Stability of the verdicts: rerun the studies with the nuisances varied, and tabulate every row.

``python -m nnlens.workbook.stability --profile default`` (``make stability``) reruns the selected
studies (all by default) once per rerun below, each into its own scratch reports folder
(``.scratch/stability/<profile>/<rerun>/``, never ``reports/``) with its own empty cache (so a
rerun trains everything again; ``--shared-cache`` reuses ``NNLENS_CACHE`` instead), and writes
``stability.csv`` into the published reports of the profile (``--out`` elsewhere): one line per
claim row and rerun, with its verdict and value (``report.ledger.STABILITY_COLUMNS``). The
published ``claims.md`` is rebuilt from it: ``report.ledger.load_claims`` merges the file, shows
each row's reruns, and reports a paper claim whose verdict changes between runs as inconclusive.

Reruns (``reruns``): ``threads=2`` (the published setting, the reference: the published reports
themselves when every manifest shows they come from the code as it is now, else rerun), ``threads=1``
(every study; since every training and sweep job runs on one thread, no number should move), and
``seed+1``: a seed-like config field of the study set to its default + 1, passed to the
notebook's kernel as a config override (``NNLENS_OVERRIDES``, read by ``studies.profiles.start``):

- 01 ``seed`` (data split, randomized PCA, the SVM's CV folds);
- 02 ``lds_seed`` (LDS subsets and TRAK's projection) and ``nuisance_seed`` (the projection matrices, the
  kGLMs' optimizer random_states and the SVM, apart from the network's training seed);
- 03 ``seed`` (data, teacher direction, init and batch order);
- 04 ``seed_offset`` (every grid and tuning seed moved by 100,000: disjoint seeds, so new inits and batch orders);
- 05's ``seed`` is an input of its benchmark (``bench/ntk.csv``, made by ``benchmarks/ntk.py``
  without overrides), so the notebook refuses a config that differs from it: threads only.

The reruns other than the reference run at once, each in its own process (``--jobs``).
What the configs lack to vary every nuisance the ledger names: 01's network seeds are the tuple
``seeds`` (a rerun with other seeds retrains everything); 05's seed would need the benchmark rerun.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import _io, paths
from ..report import ledger, provenance
from ..studies import profiles
from . import preflight, runner

SCRATCH = paths.ROOT / ".scratch" / "stability"
REFERENCE = f"threads={preflight.DEFAULT_THREADS}"                  # the published setting
SEED_FIELDS = {"01": ("seed",), "02": ("lds_seed", "nuisance_seed"), "03": ("seed",),    # seed-like fields
               "04": ("seed_offset",)}


@dataclass(frozen=True)
class Rerun:
    """One rerun: its name, the nuisance it varies, the thread count, and config overrides per study."""
    name: str
    nuisance: str
    threads: int = preflight.DEFAULT_THREADS
    overrides: dict = field(default_factory=dict)     # {"02": {"lds_seed": 1}}

    def studies(self, picked: list[str]) -> list[str]:
        """The studies this rerun varies something in (a seed rerun skips studies without a seed field)."""
        return [s for s in picked if self.nuisance == "threads" or s in self.overrides]


def seed_overrides(profile: str, studies: list[str], step: int = 1) -> dict[str, dict]:
    """{study: {seed field: its value at ``profile`` + step}} for the studies that have a seed field."""
    out = {}
    for s in studies:
        if s in SEED_FIELDS:
            cfg = profiles.load(s, profile)
            out[s] = {name: int(getattr(cfg, name)) + step for name in SEED_FIELDS[s]}
    return out


def reruns(profile: str, studies: list[str]) -> list[Rerun]:
    """The reruns of ``RERUNS``: the reference, one thread, and the seed-like fields + 1."""
    return [Rerun(REFERENCE, "threads"), Rerun("threads=1", "threads", 1),
            Rerun("seed+1", "seed", overrides=seed_overrides(profile, studies))]


@contextlib.contextmanager
def _rerun_env(folder: Path, cache: Path | None, overrides: dict):
    """The runner publishes into ``folder``; kernels get ``overrides`` (and ``cache``, when given)."""
    before = runner.final_reports_dir
    saved = {k: os.environ.get(k) for k in (profiles.OVERRIDES_ENV, "NNLENS_CACHE")}
    runner.final_reports_dir = lambda profile: folder
    os.environ[profiles.OVERRIDES_ENV] = json.dumps(overrides, sort_keys=True)
    if cache is not None:
        os.environ["NNLENS_CACHE"] = str(cache)
    try:
        yield
    finally:
        runner.final_reports_dir = before
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def run_rerun(rerun: Rerun, profile: str, studies: list[str], scratch: Path, kernel: str = "nnlens",
              shared_cache: bool = False) -> Path:
    """Run ``rerun`` of ``studies`` into ``scratch/<name>/`` (emptied first); returns that folder."""
    folder = scratch / rerun.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bench = paths.published_dir(profile) / "bench"
    if bench.is_dir():                                      # the benchmark tables are inputs (study 05)
        shutil.copytree(bench, folder / "bench")
    cache = None if shared_cache else scratch / ".cache" / rerun.name
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
    picked = rerun.studies(studies)
    with _rerun_env(folder, cache, rerun.overrides):
        print(f"[stability] {rerun.name}: studies {', '.join(picked)} -> {paths.show(folder)}/", flush=True)
        rc = runner.reproduce(profile, picked, kernel, rerun.threads, force=True)
    if rc:
        print(f"[stability] {rerun.name}: some studies failed (exit {rc}); their rows are missing", file=sys.stderr)
    return folder


def published_reference(profile: str, studies: list[str]) -> Path | None:
    """The published reports of ``profile`` when they can stand for the reference rerun (``threads=2``): every
    study in ``studies`` was published from the code as it is now (its manifest's commit is the current one,
    with no local change) at the default thread count, without overrides. Else None (the reference is rerun)."""
    folder, commit = paths.published_dir(profile), provenance.code_commit()
    if commit.endswith("+dirty") or commit == "unknown":
        return None
    timings = runner.load_timings(folder).get("studies", {})
    for s in studies:
        m = folder / "manifests" / f"{s}.json"
        if not m.exists() or not (folder / "claims").is_dir():
            return None
        man = json.loads(m.read_text())
        if (man.get("profile"), man.get("commit")) != (profile, commit) or \
                timings.get(s, {}).get("threads") != preflight.DEFAULT_THREADS:
            return None
    return folder


def _run_parallel(plan: list[Rerun], profile: str, studies: list[str], scratch: Path, kernel: str,
                  shared_cache: bool) -> None:
    """Each rerun of ``plan`` in its own process, all at once (each sets its own environment and reports
    folder, so they cannot share one process); waits for all, then reports the ones that failed."""
    procs = []
    for r in plan:
        cmd = [sys.executable, "-m", "nnlens.workbook.stability", "--profile", profile, "--study", ",".join(studies),
               "--reruns", r.name, "--scratch", str(scratch), "--kernel", kernel, "--run-only"]
        procs.append((r.name, subprocess.Popen(cmd + (["--shared-cache"] if shared_cache else []))))
    failed = [name for name, p in procs if p.wait() != 0]
    if failed:
        print(f"[stability] reruns that exited with an error: {', '.join(failed)}", file=sys.stderr)


def collect(folders: dict[str, tuple[Rerun, Path]]) -> pd.DataFrame:
    """One line per claim row and rerun (``ledger.STABILITY_COLUMNS``) from the reruns' claims folders."""
    frames = []
    for name, (rerun, folder) in folders.items():
        df = ledger.load_claims(folder / "claims")
        if len(df):
            frames.append(df.assign(rerun=name, nuisance=rerun.nuisance))
    if not frames:
        return pd.DataFrame(columns=ledger.STABILITY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[ledger.STABILITY_COLUMNS]


def changed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose verdict differs between reruns: id, kind and "rerun: verdict (value)" per rerun."""
    out = []
    for cid, part in table.groupby("id", sort=False):
        if part["verdict"].nunique() > 1:
            out.append({"id": cid, "kind": part["kind"].iloc[0],
                        "reruns": "; ".join(f"{r.rerun}: {r.verdict} ({r.value})" for r in part.itertuples())})
    return pd.DataFrame(out, columns=["id", "kind", "reruns"])


def stability(profile: str, studies=None, *, out: Path | None = None, scratch: Path | None = None,
              kernel: str = "nnlens", shared_cache: bool = False, which: list[str] | None = None,
              jobs: int = 2, reuse_published: bool = True) -> Path:
    """Run every rerun, write ``stability.csv`` (into ``out``, default the published reports of
    ``profile``) and rebuild ``claims.md`` beside it when claims are published there; returns the file."""
    picked = runner.select(studies)
    scratch = Path(scratch) if scratch else SCRATCH / profile
    plan = [r for r in reruns(profile, picked) if not which or r.name in which]
    folders = {}
    ref = published_reference(profile, picked) if reuse_published else None
    if ref is not None and plan and plan[0].name == REFERENCE:
        print(f"[stability] {REFERENCE}: the published reports ({paths.show(ref)}/, this commit) are the reference")
        folders[REFERENCE] = (plan.pop(0), ref)
    if jobs > 1 and len(plan) > 1:
        _run_parallel(plan, profile, picked, scratch, kernel, shared_cache)
        folders.update({r.name: (r, scratch / r.name) for r in plan})
    else:
        folders.update({r.name: (r, run_rerun(r, profile, picked, scratch, kernel, shared_cache)) for r in plan})
    table = collect(folders)
    out = Path(out) if out else paths.published_dir(profile)
    target = _io.write_text(out / ledger.STABILITY_FILE, table.to_csv(index=False, lineterminator="\n"))
    if (out / "claims").is_dir():
        _io.write_text(out / "claims.md", ledger.claims_md_text(out / "claims"))
    flips = changed(table)
    print(f"[stability] {len(table)} lines ({table['id'].nunique() if len(table) else 0} rows x "
          f"{len(plan)} reruns) -> {paths.show(target)}; verdicts that change between reruns: {len(flips)}")
    if len(flips):
        print(flips.to_string(index=False))
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnlens.workbook.stability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--study", default="", help="study ids, e.g. 02 or 01,03 (default: all)")
    ap.add_argument("--reruns", default="", help="names of the reruns to run, e.g. threads=1,seed+1 (default: all)")
    ap.add_argument("--out", default="", help="folder of stability.csv (default: the profile's published reports)")
    ap.add_argument("--scratch", default="", help=f"reruns' reports (default {paths.show(SCRATCH)}/<profile>)")
    ap.add_argument("--kernel", default="nnlens")
    ap.add_argument("--shared-cache", action="store_true", help="reuse NNLENS_CACHE instead of a fresh cache per rerun")
    ap.add_argument("--jobs", type=int, default=2, help="reruns run at once, each in its own process (default 2)")
    ap.add_argument("--rerun-reference", action="store_true",
                    help="rerun the reference even when the published reports come from this commit")
    ap.add_argument("--run-only", action="store_true", help=argparse.SUPPRESS)   # one rerun, no table (a worker)
    args = ap.parse_args(argv)
    try:
        profiles.validate_profile(args.profile)
        runner.select(args.study)
    except profiles.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    which = [w for w in args.reruns.replace(",", " ").split()] or None
    if args.run_only:
        picked = runner.select(args.study)
        scratch = Path(args.scratch) if args.scratch else SCRATCH / args.profile
        for r in reruns(args.profile, picked):
            if which and r.name in which:
                run_rerun(r, args.profile, picked, scratch, args.kernel, args.shared_cache)
        return 0
    stability(args.profile, args.study, out=Path(args.out) if args.out else None,
              scratch=Path(args.scratch) if args.scratch else None, kernel=args.kernel,
              shared_cache=args.shared_cache, which=which, jobs=args.jobs,
              reuse_published=not args.rerun_reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
