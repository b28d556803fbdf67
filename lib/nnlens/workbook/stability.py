"""Stability of the verdicts: rerun the studies with the nuisances varied, and tabulate every row.

``python -m nnlens.workbook.stability --profile default`` (``make stability``) reruns the selected
studies (all by default) once per rerun below, each into its own scratch reports folder
(``.scratch/stability/<profile>/<rerun>/``, never ``reports/``) with its own empty cache (so a
rerun trains everything again; ``--shared-cache`` reuses ``NNLENS_CACHE`` instead), and writes
``stability.csv`` into the published reports of the profile (``--out`` elsewhere): one line per
claim row and rerun, with its verdict and value (``report.ledger.STABILITY_COLUMNS``). The
published ``claims.md`` is rebuilt from it: ``report.ledger.load_claims`` merges the file, shows
each row's reruns, and reports a paper claim whose verdict changes between runs as inconclusive.

Reruns (``RERUNS``): ``threads=2`` (the published setting, the reference), ``threads=1`` (every
study; since every training and sweep job runs on one thread, no number should move), and
``seed+1``: a seed-like config field of the study set to its default + 1, passed to the
notebook's kernel as a config override (``NNLENS_OVERRIDES``, read by ``studies.profiles.start``):

- 01 ``seed`` (data split, randomized PCA, the SVM's CV folds);
- 02 ``lds_seed`` (LDS subsets and TRAK's projection);
- 03 ``seed`` (data, teacher direction, init and batch order);
- 04 has no seed-like field (its seeds are counts from fixed offsets): threads only;
- 05's ``seed`` is an input of its benchmark (``bench/ntk.csv``, made by ``benchmarks/ntk.py``
  without overrides), so the notebook refuses a config that differs from it: threads only.

What the configs lack to vary every nuisance the ledger names: 02's kGLM optimizer
``random_state`` and its kernels' projection seed follow the training seed (no field of their
own); 01's network seeds are the tuple ``seeds`` (a rerun with other seeds retrains everything);
04 has no seed offset; 05's seed would need the benchmark rerun with it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import _io, paths
from ..report import ledger
from ..studies import profiles
from . import preflight, runner

SCRATCH = paths.ROOT / ".scratch" / "stability"
SEED_FIELDS = {"01": "seed", "02": "lds_seed", "03": "seed"}   # one seed-like field per study


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
        name = SEED_FIELDS.get(s)
        if name is not None:
            out[s] = {name: int(getattr(profiles.load(s, profile), name)) + step}
    return out


def reruns(profile: str, studies: list[str]) -> list[Rerun]:
    """The reruns of ``RERUNS``: the reference, one thread, and the seed-like fields + 1."""
    return [Rerun(f"threads={preflight.DEFAULT_THREADS}", "threads"), Rerun("threads=1", "threads", 1),
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
              kernel: str = "nnlens", shared_cache: bool = False, which: list[str] | None = None) -> Path:
    """Run every rerun, write ``stability.csv`` (into ``out``, default the published reports of
    ``profile``) and rebuild ``claims.md`` beside it when claims are published there; returns the file."""
    picked = runner.select(studies)
    scratch = Path(scratch) if scratch else SCRATCH / profile
    plan = [r for r in reruns(profile, picked) if not which or r.name in which]
    folders = {r.name: (r, run_rerun(r, profile, picked, scratch, kernel, shared_cache)) for r in plan}
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
    args = ap.parse_args(argv)
    try:
        profiles.validate_profile(args.profile)
        runner.select(args.study)
    except profiles.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    which = [w for w in args.reruns.replace(",", " ").split()] or None
    stability(args.profile, args.study, out=Path(args.out) if args.out else None,
              scratch=Path(args.scratch) if args.scratch else None, kernel=args.kernel,
              shared_cache=args.shared_cache, which=which)
    return 0


if __name__ == "__main__":
    sys.exit(main())
