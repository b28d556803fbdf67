"""Study 04's drivers: optimizer variance by ANOVA (arXiv 2307.11684).

"Minibatching offers improved generalization performance for second order
optimizers": the same model trained many times, peak test accuracy as the
response of a two-factor ANOVA with interaction (optimizer x batch size).

Design (``config.Study04``). One budget, ``epochs``, in four arms:

- ``steps`` (primary): every batch size gets the same number of updates, the
  updates ``epochs`` epochs give the smallest batch (3 x 64 = 192 at default), and
  test accuracy is read at the same update counts (every 64 updates). Step-matched
  rather than trained to convergence with early stopping: the audit's confound is
  the number of updates, which this removes exactly, at a cost known in advance;
  full-batch gradient descent converges slowly, so a run to convergence would make
  the cost of a full-batch cell open-ended and depend on a noisy stopping rule.
- ``epochs`` (second, labelled): every batch size trains ``epochs`` epochs, as the
  paper and the earlier version of this study did; full batch then gets the fewest
  updates (3, against 192 at batch 16).

- ``grads`` and ``converged`` (issue 22: compute is not matched by updates): every cell gets the same
  per-example gradient evaluations, or trains to early stopping on validation; ``arms`` explains both.

The smallest batch's cells are the same trainings in the first two arms (one run each), and the grads arm's
first-order cells are the fixed-epoch arm's.
Learning rates are tuned per (arm, optimizer, batch size) on a validation split
carved from the training set (``n_val`` images, stratified), with ``tune_seeds``
seeds that are not the grid's seeds, by the same response (peak accuracy at the
arm's evaluation points) measured on validation. The test set is never used to
choose anything.

The notebook calls, in order: ``tune_lr(cfg)``, ``run_grid(cfg, chosen)``, ``arms.run_converged(cfg, chosen)``,
``arms.stack``, then ``analysis``'s ``cells(df)``, ``analyze(df, cfg)``, ``tables(results)``, ``claims(results, cfg)``;
the figures are in ``s04_figures``. Trainings go through ``sweeps.run`` (local processes or a Dask
cluster; finished jobs resume from a store keyed by this module's job function).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from ... import paths, sweeps, utils
from .config import Study04

ALPHA = 0.05                 # significance level of every test (the paper's)
FULL_BATCH_MAJORITY = 0.5    # 04.2 "largely the worst": full batch worst for more than half of the optimizers
N_BOOT = 1000                # bootstrap resamples of the seeds behind 04.2's support
SEED_STRIDE = 100_000        # seed_offset k moves every grid and tuning seed by k x this (disjoint seed sets)
TUNE_SEED0 = 1000            # tuning seeds are 1000, 1001, ...: disjoint from the grid's 0..seeds-1, so no
                             # response is measured on a run that chose its own learning rate

ARMS = ("steps", "epochs", "grads", "converged")
TUNED = ARMS[:3]             # arms whose lr is tuned; ``converged`` reuses the step-matched choice (arms.py says why)
ARM_LABELS = {"steps": "step-matched (primary)", "epochs": "fixed epochs (second arm)",
              "grads": "gradient-evaluation-matched", "converged": "early-stopped on validation"}
CONVERGED_CAP = 4            # the converged arm trains up to this many step-matched budgets (arms.py says why)
RESPONSE = "best_acc"


# --------------------------------------------------------------------------- data and the training job
@functools.lru_cache(maxsize=4)
def splits(dataset: str, n_train: int, n_val: int, n_test: int, pool: int = 1):
    """(fit, tune): two ``data.Dataset`` views of one fixed split (images average-pooled ``pool`` x ``pool``,
    then standardized again with the training set's mean and std, when ``pool`` > 1).

    ``fit`` trains on the training part and tests on the test set; ``tune`` trains on the
    same training part and "tests" on the validation part: ``n_val`` images carved out
    of the training split, stratified by class, with a fixed seed.
    """
    from sklearn.model_selection import train_test_split

    from ... import data
    from ... import dataset as dset

    ds = data.load(dataset, n_train, n_test, seed=0)     # one fixed split: seeds vary init and batch order only
    if pool > 1:
        xt, xs = dset.standardize(*(torch.nn.functional.avg_pool2d(x, pool) for x in (ds.x_train, ds.x_test)))
        ds = replace(ds, x_train=xt, x_test=xs)
    y = ds.y_train.numpy()
    if not 0 < n_val <= len(y) // 2:
        raise ValueError(f"n_val must be between 1 and half the {len(y)} training images, got {n_val}")
    tr, va = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=0)
    fit = replace(ds, x_train=ds.x_train[tr], y_train=ds.y_train[tr])
    tune = replace(fit, x_test=ds.x_train[va], y_test=ds.y_train[va])
    return fit, tune


def train_job(*, dataset: str, n_train: int, n_val: int, n_test: int, split: str, model: str, width: int,
              depth: int, optimizer: str, lr: float, batch_size: int, epochs: int, eval_every: int, seed: int,
              schedule: str = "constant", pool: int = 1, grad_budget: int = 0) -> dict:
    """Train one model and summarize its accuracy curve on ``split`` ("test" or "val").

    The seed sets the initialization and the minibatch order (``train.fit``). Accuracy is
    read after every ``eval_every``-th epoch only (``curve``; ``train.fit(eval_every=...)``: the readings
    in between would cost as much as the steps at full batch); ``best_acc`` is its maximum (0 for
    a reading with a non-finite training loss and after it), ``best_update`` the number of updates there, ``final_acc``
    its last point. Also: total ``updates``, ``finite`` final training loss, effective
    ``batch``, the wall ``seconds`` of training and its ``cpu_seconds`` (the cost of the job); the
    gradient evaluations per update (L-BFGS's line search spends several; 1 for the others) and, for
    SophiaH, the mean share of clipped coordinates and of coordinates whose Hessian average is <= 0.
    ``grad_budget`` > 0 caps the training at that many per-example gradient evaluations (``train.GradBudget``)
    and reads accuracy at ``epochs // eval_every`` equal fractions of it instead of at epochs.
    """
    from ... import models, train

    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if epochs % eval_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of eval_every ({eval_every})")
    fit, tune = splits(dataset, n_train, n_val, n_test, pool)
    ds = fit if split == "test" else tune
    kwargs = {"width": width, "depth": depth} if model == "mlp" else {"width": width}
    spec = models.spec_for(model, ds, **kwargs)
    cfg = train.TrainConfig(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            schedule=schedule)
    cpu0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # create_graph=True reference-cycle warning of Hessian optimizers
        cap = dict(max_grad_evals=grad_budget, readings=epochs // eval_every, eval_every=1) if grad_budget else {}
        h = train.fit(spec, ds, cfg, cache=False, progress=False, device="cpu",
                      **(cap or {"eval_every": eval_every})).history
    cpu = time.process_time() - cpu0                          # this process's CPU: the job's cost on any machine load
    at = h["reading"] * eval_every if grad_budget else h["epoch"]
    acc = dict(zip(at, h["test_acc"].where(np.isfinite(h["train_loss"]), 0.0).fillna(0.0), strict=False))
    marks = range(eval_every, epochs + 1, eval_every)
    curve = [float(acc.get(e, 0.0)) for e in marks]           # a diverged run stops early: 0 afterwards
    n = len(ds.x_train)
    bs = train.effective_batch(n, batch_size)
    steps = -(-n // bs)
    k = int(np.argmax(curve))
    if grad_budget:
        done = len(h) == len(curve) and bool(np.isfinite(h["train_loss"]).all())
        upd = [int(u) for u in h["updates"]] + [0] * (len(curve) - len(h))
        return _result(h, curve, k, upd[k], upd[-1] if done else int(h["updates"].iloc[-1]), done, bs, cpu, optimizer)
    finite = bool(math.isfinite(h["train_loss"].iloc[-1])) and int(h["epoch"].iloc[-1]) == epochs
    return _result(h, curve, k, (k + 1) * eval_every * steps, epochs * steps, finite, bs, cpu, optimizer)


def _result(h, curve: list, k: int, best_update: int, updates: int, finite: bool, bs: int, cpu: float,
            optimizer: str) -> dict:
    """``train_job``'s summary of one run (its docstring lists the keys)."""
    from ... import train

    log = np.asarray(train.optimizer_log(optimizer), dtype=float)       # SophiaH's clip shares, L-BFGS's evaluations
    clip = log.reshape(-1, 2).mean(0) if optimizer == "sophiah" and log.size else (math.nan, math.nan)
    evals = float(log.mean()) if optimizer == "lbfgs" and log.size else 1.0
    return {"best_acc": max(curve), "final_acc": curve[-1], "best_update": best_update,
            "updates": updates, "finite": finite,
            "batch": bs, "curve": curve, "seconds": float(h["seconds"].iloc[-1]), "cpu_seconds": cpu,
            "grad_evals_per_update": evals, "clip_fraction": float(clip[0]), "hessian_nonpositive": float(clip[1])}


# --------------------------------------------------------------------------- design
def _check(cfg) -> None:
    if not isinstance(cfg, Study04):
        raise TypeError(f"cfg must be a Study04 (studies.profiles.load('04', profile)), got {type(cfg).__name__}")


def orders(cfg: Study04) -> tuple[list[str], list[str]]:
    """(first-order, second-order) optimizers of ``cfg.optimizers``, by ``train.OPTIMIZERS``."""
    from ... import train

    _check(cfg)
    return ([o for o in cfg.optimizers if train.OPTIMIZERS[o].order == 1],
            [o for o in cfg.optimizers if train.OPTIMIZERS[o].order == 2])


def budgets(cfg: Study04) -> pd.DataFrame:
    """One row per (arm, batch size): effective batch, epochs, eval_every (epochs between readings), updates.

    ``steps``: ``k = round(steps_per_epoch(smallest) / steps_per_epoch(b))`` epochs per reading,
    ``epochs * k`` epochs, so every batch size gets ``epochs * steps_per_epoch(smallest)``
    updates (exactly when the batch sizes divide n, as at default). ``epochs``: ``epochs``
    epochs and a reading after each. ``grads``: the per-example gradient evaluations of the ``epochs`` arm's
    first-order runs (``grad_evals`` = epochs x n), read at ``epochs`` equal fractions of it (``updates`` is what a
    first-order optimizer gets; second-order ones get fewer). ``converged``: ``CONVERGED_CAP`` times the ``steps``
    budget, read as often, an upper bound (``arms.converged_job`` stops early).
    """
    from ... import train

    _check(cfg)
    n = len(splits(cfg.dataset, cfg.n_train, cfg.n_val, cfg.n_test, cfg.pool)[0].x_train)
    eff = {b: train.effective_batch(n, b) for b in cfg.batch_sizes}
    steps = {b: -(-n // eff[b]) for b in cfg.batch_sizes}
    s_min = steps[min(cfg.batch_sizes, key=lambda b: eff[b])]
    rows = []
    for arm in ARMS:
        for b in cfg.batch_sizes:
            k = max(1, round(s_min / steps[b])) if arm in ("steps", "converged") else 1
            m = CONVERGED_CAP if arm == "converged" else 1
            rows.append({"arm": arm, "batch_size": b, "batch": eff[b], "epochs": cfg.epochs * k * m, "eval_every": k,
                         "updates": cfg.epochs * k * m * steps[b], "grad_evals": cfg.epochs * k * m * n})
    return pd.DataFrame(rows)


def job_params(cfg: Study04, budget, optimizer: str, lr: float, seed: int, split: str) -> dict:
    """The ``train_job`` keyword arguments of one training: ``budget`` is a row of ``budgets(cfg)``.

    In the ``grads`` arm a second-order optimizer gets the cap ``grad_budget``; a first-order one spends exactly
    one evaluation per example, so its job is the ``epochs`` arm's, the same key, run once (``sweeps.job_key``).
    """
    from ... import train

    cap = budget.arm == "grads" and train.OPTIMIZERS[optimizer].order == 2
    return dict(**({"grad_budget": int(budget.grad_evals)} if cap else {}), dataset=cfg.dataset, n_train=cfg.n_train,
                n_val=cfg.n_val, n_test=cfg.n_test, split=split,
                model=cfg.model, width=cfg.width, depth=cfg.depth, optimizer=optimizer, lr=float(lr),
                batch_size=int(budget.batch_size), epochs=int(budget.epochs), eval_every=int(budget.eval_every),
                seed=int(seed), schedule=cfg.schedule, pool=cfg.pool)


def _run(cfg: Study04, jobs: list[dict], store, address: str, fn=None) -> pd.DataFrame:
    """Run the distinct jobs once (both arms share the smallest batch's) and return one row per job.

    ``sweeps.run`` gives each worker process one thread but leaves an in-process run
    (``n_jobs=1``) on torch's default; these models are so small that a second thread only
    spins (15x the CPU per training measured on 2 busy cores), so in-process runs get one too.
    """
    fn = fn or train_job                                      # the job function (``arms.converged_job`` too)
    unique = list({sweeps.job_key(fn, j): j for j in jobs}.values())
    with utils.one_thread():
        df = sweeps.run(fn, unique, store=store, address=address, n_jobs=cfg.n_jobs, threads=1)
    by_key = {sweeps.job_key(fn, j): r for j, r in zip(unique, df.to_dict("records"), strict=False)}
    return pd.DataFrame([by_key[sweeps.job_key(fn, j)] for j in jobs])


def default_store():
    """Where finished sweep jobs are kept (resumable; keys include the job's module and name)."""
    return paths.cache_dir() / "sweeps" / "04"


# --------------------------------------------------------------------------- drivers
def tune_lr(cfg: Study04, *, store=None, address: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (arm, optimizer, batch size): the lr with the best mean validation response.

    For each cell, a walk on the optimizer's ladder in ``cfg.lr_grid``: start with its middle
    three candidates; while the best (mean over ``tune_seeds`` seeds of peak validation
    accuracy, ties to the smaller lr) is at the edge of what was tried and the ladder goes
    on, try the next one out. All cells advance together, each round one parallel sweep.
    Returns (every candidate tried: arm, optimizer, batch_size, batch, updates, grad_budget (the cap of a
    gradient-matched second-order run, else 0), lr, val_mean, val_sd,
    chosen, cpu_s (CPU seconds of its trainings; the smallest batch's appear in both arms, counted
    in each); the chosen lr per cell with ``at_edge`` when it is the ladder's end).
    """
    _check(cfg)
    store = (default_store() if store is None else store) / "tune"
    ladders = dict(cfg.lr_grid)
    missing = [o for o in cfg.optimizers if o not in ladders]
    if missing:
        raise ValueError(f"cfg.lr_grid has no candidates for {missing}; add a ladder of learning rates for each")
    unsorted = [o for o in cfg.optimizers if list(ladders[o]) != sorted(set(ladders[o]))]
    if unsorted:
        raise ValueError(f"cfg.lr_grid ladders must be increasing without repeats; fix those of {unsorted}")
    seeds = [TUNE_SEED0 + SEED_STRIDE * cfg.seed_offset + i for i in range(cfg.tune_seeds)]
    cells = [(b, o) for b in budgets(cfg).itertuples() for o in cfg.optimizers if b.arm in TUNED]
    tried = {}
    for b, o in cells:
        mid = len(ladders[o]) // 2
        tried[(b.arm, b.batch_size, o)] = set(range(max(0, mid - 1), min(len(ladders[o]), mid + 2)))
    done: dict = {}
    scores: dict = {}
    costs: dict = {}
    while True:
        todo = [(b, o, i) for b, o in cells for i in sorted(tried[(b.arm, b.batch_size, o)])
                if (b.arm, b.batch_size, o, i) not in scores]
        if not todo:
            break
        jobs = [job_params(cfg, b, o, ladders[o][i], s, "val") for b, o, i in todo for s in seeds]
        out = _run(cfg, jobs, store, address)
        acc = out[RESPONSE].to_numpy().reshape(len(todo), len(seeds))
        cpu = out["cpu_seconds"].to_numpy().reshape(len(todo), len(seeds)).sum(1)
        for (b, o, i), a, c in zip(todo, acc, cpu, strict=False):
            scores[(b.arm, b.batch_size, o, i)] = a
            costs[(b.arm, b.batch_size, o, i)] = c
        _advance(cells, tried, scores, ladders, done)
    return _lr_tables(cfg, scores, costs, done, ladders)


def _advance(cells, tried: dict, scores: dict, ladders: dict, done: dict) -> None:
    """One step of every cell's walk: try the next lr out when the best is at an edge, else mark it done."""
    for b, o in cells:
        key = (b.arm, b.batch_size, o)
        idx = sorted(tried[key])
        best = max(idx, key=lambda i: (scores[(*key, i)].mean(), -i))
        if best == idx[0] and best > 0:
            tried[key].add(best - 1)
        elif best == idx[-1] and best < len(ladders[o]) - 1:
            tried[key].add(best + 1)
        else:
            done[key] = best


def _lr_tables(cfg: Study04, scores: dict, costs: dict, done: dict, ladders: dict):
    """(every candidate tried, the chosen lr per cell) from the walk's scores."""
    budget = budgets(cfg).set_index(["arm", "batch_size"])
    second = orders(cfg)[1]
    rows = []
    for (arm, bs, o, i), acc in scores.items():
        cap = int(budget.loc[(arm, bs), "grad_evals"]) if arm == "grads" and o in second else 0
        rows.append({"arm": arm, "optimizer": o, "batch_size": bs, "batch": int(budget.loc[(arm, bs), "batch"]),
                     "updates": int(budget.loc[(arm, bs), "updates"]), "grad_budget": cap, "lr": ladders[o][i],
                     "val_mean": float(acc.mean()),
                     "val_sd": float(acc.std(ddof=1)) if len(acc) > 1 else math.nan,
                     "chosen": done[(arm, bs, o)] == i, "cpu_s": float(costs[(arm, bs, o, i)])})
    table = pd.DataFrame(rows)
    table["arm"] = pd.Categorical(table["arm"], ARMS)
    table["optimizer"] = pd.Categorical(table["optimizer"], list(cfg.optimizers))
    table = table.sort_values(["arm", "optimizer", "batch", "lr"]).reset_index(drop=True)
    chosen = table[table["chosen"]].drop(columns=["chosen", "cpu_s", "updates", "grad_budget"]).reset_index(drop=True)
    chosen["at_edge"] = [lr in (ladders[o][0], ladders[o][-1]) and len(ladders[o]) > 1
                         for o, lr in zip(chosen["optimizer"], chosen["lr"], strict=False)]
    for t in (table, chosen):
        t["arm"], t["optimizer"] = t["arm"].astype(str), t["optimizer"].astype(str)
    return table, chosen


def seeds(cfg: Study04, arm: str) -> range:
    """The grid seeds of ``arm``: ``seeds`` per cell in the first two arms, ``arm_seeds`` in ``grads`` and
    ``converged_seeds`` in ``converged``, all moved by ``seed_offset`` (the new arms' seeds are the first of the
    others', so shared jobs run once)."""
    n = {"grads": cfg.arm_seeds, "converged": cfg.converged_seeds}.get(arm, cfg.seeds)
    return range(SEED_STRIDE * cfg.seed_offset, SEED_STRIDE * cfg.seed_offset + n)


def run_grid(cfg: Study04, chosen: pd.DataFrame, *, store=None, address: str = "") -> pd.DataFrame:
    """Every (tuned arm, batch size, optimizer, seed) training with the cell's tuned lr, scored on test.

    One row each: arm, the job's params, then ``train_job``'s results.
    """
    _check(cfg)
    store = (default_store() if store is None else store) / "grid"
    lr = chosen.set_index(["arm", "optimizer", "batch_size"])["lr"]
    plan = [(b, o, s) for b in budgets(cfg).itertuples() if b.arm in TUNED for o in cfg.optimizers
            for s in seeds(cfg, b.arm)]
    jobs = [job_params(cfg, b, o, lr[(b.arm, o, b.batch_size)], s, "test") for b, o, s in plan]
    df = _run(cfg, jobs, store, address)
    df.insert(0, "arm", [b.arm for b, _, _ in plan])
    order = {a: i for i, a in enumerate(ARMS)}
    return df.sort_values(["arm", "batch", "optimizer", "seed"], key=lambda c: c.map(order) if c.name == "arm" else c,
                          kind="stable").reset_index(drop=True)
