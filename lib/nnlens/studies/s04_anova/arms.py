"""Study 04's compute-matched and converged arms (issue 22, item 7).

The step-matched arm matches updates, but an update does not cost the same everywhere: L-BFGS's line search
spends about 6 gradient evaluations per update, AdaHessian's Hessian-vector product one more, and at equal
updates full batch does 64x the work of batch 16. Two more arms:

- ``grads`` (``runs.budgets``, ``runs.job_params``): every (optimizer, batch size) cell gets the per-example
  gradient evaluations of ``epochs`` epochs of a first-order optimizer (``train.GradBudget`` counts them), test
  accuracy read at ``epochs`` equal fractions of that budget; the response is the peak reading, as in the other
  arms. Its first-order cells are the ``epochs`` arm's jobs (same key, run once); its second-order cells are
  tuned by ``runs.tune_lr`` like every other arm's (cheap: a capped L-BFGS run costs 1/6 of an epochs-arm one).
- ``converged`` (here): each cell trains up to ``CONVERGED_CAP`` step-matched budgets, reading validation and
  test accuracy as often as the step-matched arm does; it stops after ``PATIENCE`` readings without a strict
  improvement of validation accuracy. The response is the TEST accuracy at the best VALIDATION reading (the
  first, on ties): the test set chooses nothing.

The converged arm's learning rate is the step-matched arm's choice for the cell, not tuned again: tuning it
would run ``tune_seeds`` x 3-5 candidates of these longest trainings per cell, more than the whole arm's grid
(the study's budget allows about +120 CPU-s for both new arms). The step-matched lr is the best at the first
quarter of the cap; a smaller lr that only wins later could be missed, which favours no batch size in advance.

Why ``CONVERGED_CAP`` = 4 (``runs``): the reviewer found batch 16 under-trained at the step-matched budget
(train accuracy 0.93-0.98) and the batch effect's eta^2 falling from 0.605 to 0.27 at 5 budgets; with early
stopping most cells stop before the cap (measured at default, one seed per cell: stops at 256-768 updates, best
readings at 64-768; at 3 budgets, 576 updates, 2 of 20 cells would have been cut while still improving), and 4
budgets cost 24 CPU-s per seed over the 20 cells, so ``converged_seeds`` = 4 fits the study's cost limit. The
cap still binds for some runs (at default 13 of 80, mostly AdaHessian, which improves slowly at its lr): the cells
table's ``stopped_early`` is the share of a cell's runs that the patience, not the cap, ended.
Why ``PATIENCE`` = 3: three readings are one whole step-matched budget (3 x 64 updates at default) without a
gain; a seed's validation accuracy on 1024 images moves by about 0.005-0.01 between readings near the plateau
(binomial sd 0.009 at 0.9), so a shorter patience would stop on noise.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd

from . import runs
from .config import Study04

PATIENCE = 3                 # readings without a strict gain in validation accuracy before stopping (see above)


class _Stop(Exception):
    """Raised from ``on_epoch`` to end a converged run: patience spent, or the loss is not finite."""


def converged_job(*, dataset: str, n_train: int, n_val: int, n_test: int, model: str, width: int, depth: int,
                  optimizer: str, lr: float, batch_size: int, epochs: int, eval_every: int, seed: int,
                  patience: int = PATIENCE, schedule: str = "constant", pool: int = 1) -> dict:
    """Train one model with early stopping on validation accuracy (read every ``eval_every`` epochs, up to
    ``epochs``); ``best_acc`` is the test accuracy at the best validation reading. Also: ``val_acc`` there,
    ``best_update``, ``updates`` trained, ``final_acc`` (test at the last reading), ``curve`` (test), ``val_curve``,
    ``stopped_early`` (False when the cap, not the patience, ended the run: not converged), ``finite`` and the
    costs and optimizer logs of ``runs.train_job``."""
    from ... import models, train

    fit, tune = runs.splits(dataset, n_train, n_val, n_test, pool)
    spec = models.spec_for(model, fit, **({"width": width, "depth": depth} if model == "mlp" else {"width": width}))
    cfg = train.TrainConfig(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            schedule=schedule)
    val, test, finite = [], [], [True]

    def on_epoch(epoch, net):
        if epoch == 0 or epoch % eval_every:
            return
        v_loss, v_acc = train.evaluate(net, tune.x_test, tune.y_test)
        t_acc = train.evaluate(net, fit.x_test, fit.y_test)[1]
        finite[0] = math.isfinite(v_loss)
        val.append(v_acc if finite[0] else 0.0)
        test.append(t_acc if finite[0] else 0.0)
        if not finite[0] or len(val) - 1 - int(np.argmax(val)) >= patience:
            raise _Stop

    cpu0, t0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # create_graph=True reference-cycle warning of Hessian optimizers
        try:                              # eval_every=epochs: fit's own evaluation only at the cap
            train.fit(spec, fit, cfg, cache=False, progress=False, device="cpu", on_epoch=on_epoch,
                      eval_every=epochs)
        except _Stop:
            pass
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    steps = -(-len(fit.x_train) // train.effective_batch(len(fit.x_train), batch_size))
    k = int(np.argmax(val))
    out = runs._result(pd.DataFrame({"seconds": [wall]}), test, k, (k + 1) * eval_every * steps,
                       len(val) * eval_every * steps, finite[0], train.effective_batch(len(fit.x_train), batch_size),
                       cpu, optimizer)
    stopped = len(val) < epochs // eval_every or not finite[0]             # False: the cap ended the run
    return {**out, "best_acc": test[k], "val_acc": val[k], "val_curve": val, "stopped_early": stopped}


def run_converged(cfg: Study04, chosen: pd.DataFrame, *, store=None, address: str = "") -> pd.DataFrame:
    """Every (batch size, optimizer, seed) of the converged arm (``runs.seeds(cfg, "converged")``) with the
    step-matched arm's lr, one row each: arm, the job's params, then ``converged_job``'s results."""
    runs._check(cfg)
    store = (runs.default_store() if store is None else store) / "converged"
    lr = chosen.set_index(["arm", "optimizer", "batch_size"])["lr"]
    b = runs.budgets(cfg)
    plan = [(r, o, s) for r in b[b["arm"] == "converged"].itertuples() for o in cfg.optimizers
            for s in runs.seeds(cfg, "converged")]
    jobs = [{**{k: v for k, v in runs.job_params(cfg, r, o, lr[("steps", o, r.batch_size)], s, "test").items()
                if k != "split"}, "patience": PATIENCE} for r, o, s in plan]
    df = runs._run(cfg, jobs, store, address, fn=converged_job)
    df.insert(0, "arm", "converged")
    return df.sort_values(["batch", "optimizer", "seed"], kind="stable").reset_index(drop=True)


def stack(grid: pd.DataFrame, converged: pd.DataFrame) -> pd.DataFrame:
    """The grid of ``runs.run_grid`` and the converged arm's rows as one frame (arms in ``runs.ARMS`` order)."""
    df = pd.concat([grid, converged], ignore_index=True)
    order = {a: i for i, a in enumerate(runs.ARMS)}
    return df.sort_values("arm", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
