"""Benchmark: study 04's training grid through ``sweeps.run`` (2 local processes) against a plain loop.

Runs the same sub-grid of the default profile (every optimizer and batch size of
the step-matched arm, a few seeds) twice in one process: once as a sequential loop calling
``s04_anova.train_job`` in this process, then through ``sweeps.run`` with joblib's
loky processes (one torch thread each) twice: cold (process start-up included)
and warm (loky reuses its workers, as the notebook's grid does after its lr search). Both must give
the same accuracies. Writes ``reports/bench/sweeps.csv`` (``--out`` redirects it):
trainings per second of each and the speed-up.

    python benchmarks/sweeps.py [--seeds 2] [--n-jobs 2]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from nnlens import _io, paths, sweeps
from nnlens.studies import profiles, s04_anova


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--profile", default="default", help="accepted for `make bench`; the grid is the default one")
    ap.add_argument("--out", default="", help="folder of the table (default: reports/bench)")
    args = ap.parse_args(argv)
    cfg = profiles.load("04", "default")
    lrs = {o: lrs[len(lrs) // 2] for o, lrs in cfg.lr_grid}        # any fixed lr: speed, not accuracy
    budgets = s04_anova.budgets(cfg)
    grid = [s04_anova.job_params(cfg, b, o, lrs[o], s, "test")       # the step-matched arm's cells
            for b in budgets[budgets["arm"] == "steps"].itertuples() for o in cfg.optimizers
            for s in range(args.seeds)]                              # costly small batches first

    torch.set_num_threads(1)                                         # the loop gets one core, like one worker
    t0 = time.perf_counter()
    seq = pd.DataFrame([{**p, **s04_anova.train_job(**p)} for p in grid])
    t_seq = time.perf_counter() - t0

    t0 = time.perf_counter()
    par = sweeps.run(s04_anova.train_job, grid, backend="joblib", n_jobs=args.n_jobs, threads=1)
    t_par = time.perf_counter() - t0

    # loky keeps its workers: a second sweep (the notebook's grid after its lr search) pays no start-up
    t0 = time.perf_counter()
    warm = sweeps.run(s04_anova.train_job, grid, backend="joblib", n_jobs=args.n_jobs, threads=1)
    t_warm = time.perf_counter() - t0

    cols = ["best_acc", "final_acc"]
    same = bool(seq[cols].equals(par[cols]) and seq[cols].equals(warm[cols]))
    n = len(grid)
    row = lambda method, workers, t: {"method": method, "workers": workers, "trainings": n, "seconds": t,  # noqa: E731
                                      "trainings_per_s": n / t, "speedup": t_seq / t, "same_results": same}
    out = pd.DataFrame([row("sequential loop", 1, t_seq),
                        row("sweeps.run joblib, cold (process start-up included)", args.n_jobs, t_par),
                        row("sweeps.run joblib, warm workers", args.n_jobs, t_warm)])
    _io.write_text(Path(args.out or paths.REPORTS / "bench") / "sweeps.csv",
                   out.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    print(out.to_string(index=False))
    if not same:
        raise SystemExit("parallel and sequential runs disagree")
    return out


if __name__ == "__main__":
    main()
