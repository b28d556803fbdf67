"""One training loop for every study.

``fit(spec, ds, cfg)`` builds the model from ``spec`` (``models.build``) under
``cfg.seed``, trains it with the optimizer named in ``cfg`` at any batch size up to
full batch (``batch_size=0``: plain full-batch gradient descent with ``sgd``),
with cross-entropy or MSE (one-hot for labels, plain for regression targets),
records per-epoch train/test loss and accuracy (NaN for regression), and caches
the result in ``data/cache/train/`` under a hash of (spec, data, cfg, and the source
of the training code: ``cache_key``), written atomically. A second call with the same inputs
loads the cache. ``on_epoch``
(uncached runs only) is called with the model before the first step and after
every epoch, which is how study 03 takes its weight snapshots. Training stops at
the first epoch whose training loss is not finite (``FitResult.diverged``).
The caller's global RNG is left as it was (``utils.seeded``).

Threads: ``fit`` trains on one torch/BLAS thread (``utils.one_thread``, the caller's setting
restored after), so a published number never depends on the machine's thread count (measured
before: study 01's networks reached test accuracy 0.786/0.776/0.685 with 1 thread and
0.722/0.736/0.710 with 2). Parallelism comes from processes: ``fit_many(jobs, n_jobs)`` trains
several (spec, data, config) jobs in ``n_jobs`` worker processes (``sweeps.run``) through the
cache and returns the same ``FitResult``s, in order, as a loop of ``fit`` would.

Optimizers: ``optimizers.OPTIMIZERS`` (first and second order; re-exported here).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _io, cache, models, paths, sweeps, utils
from .optimizers import OPTIMIZERS, OptimizerInfo, make_optimizer, optimizer_log  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgdm"
    lr: float = 0.05
    epochs: int = 10
    batch_size: int = 128          # 0 = full batch
    seed: int = 0
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"       # "cosine", "warmup_cosine" (linear warm-up over the first epoch) or "constant"
    loss: str = "ce"               # "ce" (cross-entropy) or "mse" (regression / one-hot)


@dataclass
class FitResult:
    model: nn.Module
    history: pd.DataFrame          # one row per epoch: epoch, train_loss, train_acc, test_loss, test_acc
    key: str
    cached: bool

    @property
    def final(self) -> dict:
        return self.history.iloc[-1].to_dict()

    @property
    def diverged(self) -> bool:
        """Whether training stopped early at a non-finite training loss."""
        return bool(len(self.history) and not np.isfinite(self.history["train_loss"].iloc[-1]))


def effective_batch(n: int, batch: int | None) -> int:
    """The batch size actually used for ``n`` examples: 0, None or >= n means full batch."""
    return n if not batch or batch <= 0 or batch >= n else int(batch)


def loss_fn(kind: str):
    """The loss by name: "ce" (cross-entropy) or "mse" (against one-hot labels when y is long)."""
    if kind == "ce":
        return F.cross_entropy
    if kind == "mse":
        def mse(out, y):
            target = F.one_hot(y, out.shape[1]).to(out.dtype) if y.dtype == torch.long else y
            return F.mse_loss(out, target)
        return mse
    raise ValueError(f"unknown loss {kind!r}; valid losses: ce, mse")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce",
             batch_size: int = 1024) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` in eval mode on (x, y); accuracy is NaN for regression targets."""
    out = utils.forward(model, x, batch_size)                       # (N, C) logits or (N,) predictions
    y = y.to(out.device)
    acc = float((out.argmax(1) == y).double().mean()) if y.dtype == torch.long and out.dim() == 2 else math.nan
    return float(loss_fn(loss)(out, y)), acc


def cache_key(spec: dict, ds, cfg: TrainConfig) -> str:
    """Hash of what determines a trained model: spec, data content, config, and the code that trains it.

    ``cache.code_hash(__name__)`` covers this module and every nnlens module it imports
    (models, utils, ...), so a change to the training code makes every cached model miss;
    torch's version is in the key too (a new torch can train to different weights).
    """
    doc = json.dumps({"spec": spec, "data": ds.fingerprint, "cfg": dataclasses.asdict(cfg),
                      "code": cache.code_hash(__name__), "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def fit(spec: dict, ds, cfg: TrainConfig, *, cache: bool = True, progress: bool | None = None,
        device: str | torch.device | None = None,
        on_epoch: Callable[[int, nn.Module], None] | None = None, eval_every: int = 1,
        max_grad_evals: int | None = None, readings: int = 1) -> FitResult:
    """Train ``models.build(spec)`` on ``ds`` with ``cfg``; cached by a hash of all three.

    ``ds`` needs x_train, y_train, x_test, y_test (and ``fingerprint`` when cached).
    ``on_epoch(epoch, model)`` is called at epoch 0 (before any step) and after every
    epoch; it needs ``cache=False`` (a cached result has no epochs to call it on).
    ``eval_every=k`` evaluates (one history row, the divergence check) only every k epochs and
    after the last one, for runs whose evaluation costs as much as their steps (full-batch GD);
    it needs ``cache=False`` (a cached history would not say which rows it kept).
    ``max_grad_evals=B`` caps the compute (``GradBudget``: per-example gradient evaluations): training stops
    once B are spent, mid-epoch if needed (``cfg.epochs`` is then only an upper bound), and the history has one
    row per reading, taken after the update that reaches each of ``readings`` equal fractions of B (columns
    ``reading``, ``grad_evals`` and ``updates`` added); it needs ``cache=False`` and ``eval_every=1``. Off by
    default: a run without it trains exactly as before.
    """
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be an int >= 1, got {eval_every!r}")
    if max_grad_evals is not None and (cache or eval_every != 1 or max_grad_evals < 1 or readings < 1):
        raise ValueError("max_grad_evals needs cache=False, eval_every=1, a cap >= 1 and readings >= 1")
    if eval_every != 1 and cache:
        raise ValueError("eval_every needs cache=False: the cache keys full per-epoch histories")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if cfg.batch_size < 0 or cfg.epochs < 0:
        raise ValueError(f"batch_size and epochs must be >= 0, got {cfg.batch_size}, {cfg.epochs}")
    if on_epoch is not None and cache:
        raise ValueError("on_epoch needs cache=False: a cached result is loaded, not trained, so no epoch runs")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # the model's init and every draw below seeded (caller's RNG restored); one thread: the numbers
    # do not depend on the machine's thread count (caller's threads restored)
    with utils.seeded(cfg.seed), utils.one_thread():
        model = models.build(spec)
        if cache:
            key = cache_key(spec, ds, cfg)
            path = paths.cache_dir() / "train" / f"{key}.pt"
            if path.exists():
                blob = torch.load(path, map_location="cpu", weights_only=False)
                model.load_state_dict(blob["state_dict"])
                return FitResult(model.to(device).eval(), pd.DataFrame(blob["history"]), key, True)
        budget = GradBudget(max_grad_evals, readings)
        history = _train(model.to(device), spec, ds, cfg, device, progress, on_epoch, eval_every, budget)
    model.eval()
    if not cache:
        return FitResult(model, history, "", False)
    with _io.atomic_path(path) as tmp:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "history": history.to_dict("list"), "spec": spec, "cfg": dataclasses.asdict(cfg)}, tmp)
    return FitResult(model, history, key, False)


def _train(model, spec, ds, cfg: TrainConfig, device, progress, on_epoch, eval_every: int = 1,
           budget: GradBudget | None = None) -> pd.DataFrame:
    """The loop of ``fit``: one row per epoch (per reading under a cap); stops after a non-finite training loss."""
    opt = make_optimizer(model.parameters(), cfg)  # unknown names fail here, with the valid ones
    info = OPTIMIZERS[cfg.optimizer]
    fn = loss_fn(cfg.loss)
    n = len(ds.x_train)
    bs = effective_batch(n, cfg.batch_size)
    steps_per_epoch = -(-n // bs)
    budget = budget or GradBudget()
    sched = None
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: {', '.join(SCHEDULES)}")
    if cfg.schedule != "constant" and not info.closure:
        sched = _scheduler(opt, cfg.schedule, cfg.epochs * steps_per_epoch, steps_per_epoch)
    g = torch.Generator().manual_seed(cfg.seed)
    x_all, y_all = ds.x_train.to(device), ds.y_train.to(device)
    rows = []
    bar = None
    if utils.progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"{spec['name']}/{cfg.optimizer}", leave=False)
    if on_epoch is not None:
        on_epoch(0, model)
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=g).to(device)
        budget.read = lambda k, epoch=epoch: rows.extend(_reading(model, ds, cfg, epoch, t0, budget, k))
        _steps(model, opt, info, fn, sched, x_all, y_all, perm, bs, budget)
        if budget.cap is not None:                    # capped: the readings came from inside the steps
            if bar is not None:
                bar.update(1)
            if budget.stop:
                break
            continue
        if epoch % eval_every and epoch != cfg.epochs:
            if bar is not None:
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch, model)
            continue
        rows.extend(_reading(model, ds, cfg, epoch, t0))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train=f"{rows[-1]['train_acc']:.3f}", test=f"{rows[-1]['test_acc']:.3f}")
        if not math.isfinite(rows[-1]["train_loss"]):
            break                                 # diverged: later epochs would only carry NaNs
        if on_epoch is not None:
            on_epoch(epoch, model)
    if bar is not None:
        bar.close()
    extra = ["reading", "grad_evals", "updates"] if budget.cap is not None else []
    return pd.DataFrame(rows, columns=["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", *extra])


def _reading(model, ds, cfg: TrainConfig, epoch: int, t0: float, budget=None, k: int = 1) -> list[dict]:
    """The history rows of one evaluation: train and test loss and accuracy (``k`` copies, numbered, under a
    cap: one update can reach several marks); a non-finite training loss stops a capped run."""
    tr_loss, tr_acc = evaluate(model, ds.x_train, ds.y_train, cfg.loss)
    te_loss, te_acc = evaluate(model, ds.x_test, ds.y_test, cfg.loss)
    row = {"epoch": epoch, "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
           "seconds": time.perf_counter() - t0}
    if budget is None:
        return [row]
    budget.stop = budget.stop or not math.isfinite(tr_loss)
    model.train()
    return [{**row, "reading": budget.done - k + j + 1, "grad_evals": budget.spent, "updates": budget.updates}
            for j in range(k)]


class GradBudget:
    """Per-example gradient evaluations a training spends, against an optional cap (``fit(max_grad_evals=...)``).

    Counting: a forward and backward pass over a batch of b examples is b evaluations; every closure call of a
    closure optimizer (L-BFGS: its line search evaluates the loss and gradient several times per update) is one
    such pass; every Hessian-vector product of a Hutchinson optimizer (AdaHessian every step, SophiaH on its
    estimate steps; ``hvp_count``) is b more: Pearlmutter's trick computes Hv as the gradient of g . v, one more
    backward pass through the graph of the gradient, which costs about what the gradient did (a small constant
    times a forward pass), so it counts as one more gradient evaluation. A step starts only while budget is left;
    L-BFGS's evaluations per step are capped at what is left (``max_eval``), but one strong-Wolfe line search
    cannot be cut, so its last update can overrun the cap by a few evaluations (``spent`` records what was used).
    """

    def __init__(self, cap: int | None = None, readings: int = 1):
        self.cap, self.readings, self.spent, self.done, self.stop, self.updates = cap, readings, 0, 0, False, 0
        self.read = None                          # set by the loop: read(k) takes k readings of the model now

    @property
    def exhausted(self) -> bool:
        return self.stop or (self.cap is not None and self.spent >= self.cap)

    def add(self, n: int) -> None:
        """Count one update's ``n`` evaluations, then take the readings whose marks (cap x j / readings) it reached."""
        self.spent += n
        self.updates += 1
        if self.cap is None:
            return
        k = min(self.readings, self.spent * self.readings // self.cap) - self.done
        if k > 0:
            self.done += k
            self.read(k)

    def limit(self, opt, batch: int) -> None:
        """Cap a closure optimizer's evaluations in its next step at the whole batches left."""
        if self.cap is not None:
            default = getattr(opt, "_max_eval", None) or opt.param_groups[0]["max_eval"]
            opt._max_eval = default
            opt.param_groups[0]["max_eval"] = max(1, min(default, (self.cap - self.spent) // batch))


SCHEDULES = ("cosine", "warmup_cosine", "constant")


def _scheduler(opt, schedule: str, total: int, warmup: int):
    """Cosine decay over ``total`` steps; ``warmup_cosine`` first rises linearly from lr/10 over ``warmup``
    steps (one epoch), the standard cure for the early loss spikes of SGD with momentum at a large lr."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR
    if schedule == "cosine" or total <= warmup:
        return cosine(opt, T_max=max(1, total))
    rise = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(opt, [rise, cosine(opt, T_max=total - warmup)], milestones=[warmup])


def _steps(model, opt, info: OptimizerInfo, fn, sched, x_all, y_all, perm, bs: int,
           budget: GradBudget | None = None) -> None:
    """One epoch of optimizer steps over the minibatches ``perm[i:i + bs]`` (a closure for L-BFGS-like ones),
    counting gradient evaluations in ``budget`` and stopping when it is spent."""
    budget = budget or GradBudget()
    for i in range(0, len(perm), bs):
        if budget.exhausted:
            return
        idx = perm[i:i + bs]
        xb, yb = x_all[idx], y_all[idx]
        if info.closure:
            calls = [0]

            def closure(xb=xb, yb=yb, calls=calls):
                calls[0] += 1
                opt.zero_grad()
                loss = fn(model(xb), yb)
                loss.backward()
                return loss
            budget.limit(opt, len(idx))
            opt.step(closure)
            budget.add(calls[0] * len(idx))
        else:
            hvp0 = getattr(opt, "hvp_count", 0)
            opt.zero_grad()
            loss = fn(model(xb), yb)
            loss.backward(create_graph=info.create_graph)
            opt.step()
            if sched is not None:
                sched.step()
            budget.add((1 + getattr(opt, "hvp_count", 0) - hvp0) * len(idx))


def _fit_job(spec: dict, ds, cfg: TrainConfig) -> dict:
    """One job of ``fit_many`` in a worker process: train into the cache, return the key."""
    return {"key": fit(spec, ds, cfg, progress=False).key}


def fit_many(jobs, *, n_jobs: int = 2, progress: bool | None = None,
             device: str | torch.device | None = None) -> list[FitResult]:
    """``[fit(spec, ds, cfg) for spec, ds, cfg in jobs]``, trained in ``n_jobs`` processes.

    Each job trains single-threaded in a worker (``sweeps.run``, joblib processes) into the cache;
    the results are then loaded here from the cache, in the order of ``jobs``, so they are the
    ``FitResult``s a loop of ``fit`` returns (the same numbers: every fit runs on one thread).
    Jobs already cached are not sent to a worker. ``n_jobs=1`` is the plain loop.
    """
    jobs = [(spec, ds, cfg) for spec, ds, cfg in jobs]
    todo = [dict(spec=s, ds=d, cfg=c) for s, d, c in jobs
            if not (paths.cache_dir() / "train" / f"{cache_key(s, d, c)}.pt").exists()]
    if len(todo) > 1 and n_jobs > 1:
        sweeps.run(_fit_job, todo, backend="joblib", n_jobs=min(n_jobs, len(todo)), threads=1)
    return [fit(s, d, c, progress=progress, device=device) for s, d, c in jobs]
