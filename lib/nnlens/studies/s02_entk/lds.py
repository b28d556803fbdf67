"""Study 02 beyond the paper (02.6-02.8): attributions judged against retraining (LDS), with floors and a ceiling.

The linear datamodeling score (Park et al. 2023, arXiv 2303.14186, through ``nnlens.datamodels``) of every
kernel's kGLM attributions and of TRAK, against networks retrained on seeded random halves of the training set.
Three references keep the score honest:

- floors: an attribution that only says "same label as the test point" (``label``) and pixel cosine × same label
  (``pixel``); on a class-balanced task most of the raw LDS is class composition, which these capture;
- the class-partialled LDS: each subset's count of the test point's class partialled out of the Spearman;
- the noise ceiling: ``cfg.lds_replicates`` networks per subset (different initializations); two retrainings
  on the same subset correlate r, so a perfect predictor of the expected margin reaches about √r.

TRAK runs over a grid of ensemble size M, projection K and ridge (``trak_grid``) beside trNTK's kGLM
attributions averaged over M networks; 02.7 compares each at its best setting.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ... import attribution, datamodels, paths, sweeps, train, utils
from . import runs as core
from .config import Study02
from .faith import CI_LEVEL
from .retrain import lds_train_job


def retrain(cfg: Study02) -> pd.DataFrame:
    """Every (subset, replicate) network of the LDS, through ``sweeps.run`` (cached job by job)."""
    grid = [dict(dataset=cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, pool=cfg.pool, model=cfg.model,
                 width=cfg.width, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 weight_decay=cfg.weight_decay, subset=m, subset_seed=cfg.lds_seed, fraction=cfg.lds_fraction,
                 replicate=rep)
            for rep in range(cfg.lds_replicates) for m in range(cfg.lds_subsets)]
    return sweeps.run(lds_train_job, grid, store=paths.cache_dir() / "sweeps" / "02_lds", n_jobs=cfg.lds_jobs)


def floor_scores(ds) -> dict:
    """The floors: "same label" (1 where a training point shares the test point's label) and pixel cosine ×
    same label, (N_test, N_train) each."""
    same = (ds.y_test.numpy()[:, None] == ds.y_train.numpy()[None, :]).astype(np.float64)
    a, b = ds.x_test.flatten(1).double(), ds.x_train.flatten(1).double()
    cos = (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T
    return {"label": same, "pixel": cos.numpy() * same}


def kernel_scores(main_runs: dict, y_test: np.ndarray, name: str, n_models: int) -> np.ndarray:
    """A kernel's cross-validated kGLM margin contributions averaged over the first ``n_models`` networks."""
    per = [attribution.margin_contributions(r["suite"][name][1], r["kglms"][(name, "cv")].W,
                                            r["kglms"][(name, "cv")].b, y_test)
           for r in list(main_runs.values())[:n_models]]
    return np.mean(per, axis=0)


def ensemble(cfg: Study02, s, main_runs: dict) -> list[tuple[torch.nn.Module, float]]:
    """(network, training seconds) for TRAK's largest ensemble: the study's seeds, then seeds 100, 101, ..."""
    nets = [(r["model"], r["train_seconds"]) for r in main_runs.values()]
    for j in range(max(cfg.trak_ensembles) - len(nets)):
        fit = train.fit(s.spec, s.ds, core.train_config(cfg, 100 + j), progress=False)
        nets.append((fit.model, float(fit.final.get("seconds", np.nan))))
    return nets[:max(cfg.trak_ensembles)]


def trak_grid(cfg: Study02, ds, nets: list) -> dict:
    """TRAK scores per (M, K, ridge) of ``cfg``'s grid: {(M, K, ridge): (scores, seconds)}.

    One Rademacher projection (seed ``cfg.lds_seed``) of K_max columns; K uses its first K columns (a
    Rademacher projection of its own; TRAK's scores do not depend on the projection's scale). The ridge is
    λ = ridge × mean diagonal of ΦᵀΦ. Seconds: the ensemble's training time plus its gradient features.
    """
    kmax = max(cfg.trak_proj_dims)
    sums = {(k, lam): 0.0 for k in cfg.trak_proj_dims for lam in cfg.trak_ridges}
    qsum, secs, out = 0.0, 0.0, {}
    x_all = torch.cat([ds.x_train, ds.x_test])
    y_all = torch.cat([ds.y_train, ds.y_test])
    n = len(ds.y_train)
    for m, (net, train_s) in enumerate(nets, start=1):
        t0 = time.perf_counter()
        feats = datamodels.trak_features(net, x_all, y_all, kmax, seed=cfg.lds_seed)     # (N_train + N_test, K)
        for k, lam in sums:
            Phi, phi = feats[:n, :k], feats[n:, :k]
            A = Phi.T @ Phi
            A = A + lam * A.diagonal().mean() * torch.eye(k, dtype=A.dtype)
            sums[(k, lam)] = sums[(k, lam)] + phi @ torch.linalg.lstsq(A, Phi.T).solution
        p = torch.softmax(utils.forward(net, ds.x_train).double(), 1)[torch.arange(n), ds.y_train.long()]
        qsum = qsum + (1 - p)
        secs += train_s + time.perf_counter() - t0
        if m in cfg.trak_ensembles:
            for (k, lam), P in sums.items():
                out[(m, k, lam)] = (((P / m) * (qsum / m)[None, :]).numpy(), secs)
    return out


def _methods_table(preds: dict, actual, cov, n_boot: int) -> tuple[pd.DataFrame, dict]:
    """Raw and class-partialled LDS per method with two-way intervals; and the bootstrap replicates."""
    q = (1 - CI_LEVEL) / 2
    raw = datamodels.lds_two_way(preds, actual, None, n_boot)
    part = datamodels.lds_two_way(preds, actual, cov, n_boot)
    rows = []
    for m, pred in preds.items():
        rows.append({"method": m, "lds": _point(pred, actual, None), "lo": np.nanquantile(raw[m], q),
                     "hi": np.nanquantile(raw[m], 1 - q), "lds_partial": _point(pred, actual, cov),
                     "lo_partial": np.nanquantile(part[m], q), "hi_partial": np.nanquantile(part[m], 1 - q)})
    return pd.DataFrame(rows), {"raw": raw, "partial": part}


def _point(pred, actual, cov) -> float:
    ra = datamodels._centered_ranks(np.asarray(actual, dtype=np.float64))
    v = (datamodels._corr(datamodels._centered_ranks(np.asarray(pred, dtype=np.float64)), ra) if cov is None
         else datamodels.spearman_partial(pred, actual, cov))
    return float(np.nanmean(v))


def _pair(boot: dict, point: dict, a: str, b: str) -> dict:
    q = (1 - CI_LEVEL) / 2
    d = boot[a] - boot[b]
    return {"diff": point[a] - point[b], "lo": float(np.nanquantile(d, q)), "hi": float(np.nanquantile(d, 1 - q))}


def lds_runs(cfg: Study02, s, main_runs: dict) -> dict:
    """The LDS of every attribution method on the 10-class setting, with floors, ceiling and TRAK's cost curve.

    Returns {"table": raw and class-partialled LDS with two-way CIs (subsets × test points) per method,
    "paired": paired differences (raw and partialled), "ceiling": {"r", "ceiling", "lo", "hi"}, "curve": LDS
    against cost per (method, M, K, ridge), "best": each method's best setting, "jobs", "seconds"}.
    """
    ds, kmax, y = s.ds, max(cfg.proj_dims), s.ds.y_test.numpy()
    t0 = time.perf_counter()
    jobs = retrain(cfg)
    t_retrain = time.perf_counter() - t0
    margins = np.array(jobs["margins"].tolist()).reshape(cfg.lds_replicates, cfg.lds_subsets, -1)
    actual = margins[0]                                                             # (M, N_test)
    masks = datamodels.subset_masks(len(ds.y_train), cfg.lds_subsets, cfg.lds_seed, cfg.lds_fraction)
    cov = datamodels.class_counts(masks, ds.y_train.numpy(), y)
    scores = {(f"{k}@{kmax}" if k.startswith("proj_") else k): kernel_scores(main_runs, y, f"{k}@{kmax}"
              if k.startswith("proj_") else k, len(main_runs)) for k in core.LDS_KERNELS}
    scores |= floor_scores(ds)
    t1 = time.perf_counter()
    grid = trak_grid(cfg, ds, ensemble(cfg, s, main_runs))
    t_trak = time.perf_counter() - t1
    curve = _curve(cfg, main_runs, grid, masks, actual, cov, y)
    best = curve.loc[curve.groupby("method")["lds_partial"].idxmax()].set_index("method")
    b = best.loc["trak"]
    study_setting = (len(main_runs), cfg.trak_proj_dim, 0.0)        # the three-model TRAK of the earlier study
    scores["trak"] = grid[study_setting][0] if study_setting in grid else grid[_key(b)][0]
    scores["trak_best"] = grid[_key(b)][0]
    scores["trntk_best"] = kernel_scores(main_runs, y, "trntk", int(best.loc["trntk", "M"]))
    preds = {m: datamodels.predicted_outputs(sc, masks) for m, sc in scores.items()}
    n_boot = min(cfg.n_boot, 200)
    table, boot = _methods_table(preds, actual, cov, n_boot)
    paired = _paired_table(table, boot, kmax)
    return {"table": table, "paired": paired, "ceiling": ceiling(margins, n_boot), "curve": curve, "best": best,
            "jobs": jobs.drop(columns=["margins"]),
            "seconds": {"retraining (sweep)": t_retrain, "TRAK grid (ensemble training and features)": t_trak,
                        "scores and intervals": time.perf_counter() - t1 - t_trak}}


def _key(b) -> tuple:
    return int(b["M"]), int(b["K"]), float(b["ridge"])


def _paired_table(table: pd.DataFrame, boot: dict, kmax: int) -> pd.DataFrame:
    pairs = [("trntk", "em"), ("trntk", "ck"), ("trntk_best", "trak_best"), ("trntk", "trak"),
             (f"proj_trntk@{kmax}", "trntk"), ("trntk", "label"), ("trntk", "pixel")]
    t = table.set_index("method")
    rows = []
    for a, b in pairs:
        raw = _pair(boot["raw"], t["lds"].to_dict(), a, b)
        part = _pair(boot["partial"], t["lds_partial"].to_dict(), a, b)
        rows.append({"a": a, "b": b, **raw, "diff_partial": part["diff"], "lo_partial": part["lo"],
                     "hi_partial": part["hi"]})
    return pd.DataFrame(rows)


def _curve(cfg: Study02, main_runs: dict, grid: dict, masks, actual, cov, y) -> pd.DataFrame:
    """LDS (raw, partialled) against cost: trNTK over its first M networks, TRAK per (M, K, ridge)."""
    rows, secs = [], 0.0
    for m, r in enumerate(main_runs.values(), start=1):
        secs += r["train_seconds"] + r["seconds"]
        pred = datamodels.predicted_outputs(kernel_scores(main_runs, y, "trntk", m), masks)
        rows.append({"method": "trntk", "M": m, "K": np.nan, "ridge": np.nan, "seconds": secs,
                     "lds": _point(pred, actual, None), "lds_partial": _point(pred, actual, cov)})
    for (m, k, lam), (sc, sec) in grid.items():
        pred = datamodels.predicted_outputs(sc, masks)
        rows.append({"method": "trak", "M": m, "K": k, "ridge": lam, "seconds": sec,
                     "lds": _point(pred, actual, None), "lds_partial": _point(pred, actual, cov)})
    return pd.DataFrame(rows)


def ceiling(margins: np.ndarray, n_boot: int) -> dict:
    """The retraining noise ceiling from replicate networks on the same subsets.

    margins: (R, M, N_test). r = mean over test points of the Spearman (over subsets) between replicates 0
    and 1; a perfect predictor of the expected margin reaches about √r against one retraining. Interval: the
    two-way bootstrap of r. Returns {"r", "lo", "hi", "ceiling"}; NaNs with one replicate.
    """
    if margins.shape[0] < 2:
        return {"r": np.nan, "lo": np.nan, "hi": np.nan, "ceiling": np.nan}
    point = _point(margins[1], margins[0], None)
    boot = datamodels.lds_two_way({"r": margins[1]}, margins[0], None, n_boot)["r"]
    q = (1 - CI_LEVEL) / 2
    return {"r": point, "lo": float(np.nanquantile(boot, q)), "hi": float(np.nanquantile(boot, 1 - q)),
            "ceiling": float(np.sqrt(max(point, 0.0)))}
