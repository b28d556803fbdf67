"""Study 02, faithfulness statistics with every source of randomness inside the interval (claims 02.1-02.4).

A number of 02.1-02.4 depends on the network seed, the test points and, for the paper's SGD kGLM recipe, the
optimizer's random_state. ``hier_boot`` resamples all three at once: per bootstrap replicate, the seeds with
replacement, one optimizer draw per chosen seed, and the test points (multinomial weights shared by every
kernel pair, so intervals are comparable). For the deterministic ``cv`` recipe the draw axis has length 1.

- ``paired_tau`` / ``paired_tau_table``: τ(a) − τ(b) on the same test points, per (seed, draw).
- ``tad_table``: TAD = acc(kGLM) − acc(network) per kernel and recipe, with the same interval.
- ``projection_error_draws`` / ``slope_fit``: the relative error of proj-trNTK / proj-pNTK over a K grid with
  several projection matrices per K, its log-log slope with a bootstrap CI over draws, and the range of
  slopes the estimator gives at this design when the error follows K^(-1/2) exactly (``slope_null``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import ntk, surrogates, utils
from .config import Study02

CI_LEVEL = 0.95


def main_setting(sets: dict) -> str:
    """The name of the 10-class setting (the first one of ``runs.settings``)."""
    return next(iter(sets))


def _draws(p: dict, name: str, recipe: str) -> list[int]:
    return sorted(k[2] for k in p if isinstance(k, tuple) and len(k) == 3 and k[:2] == (name, recipe))


def hier_boot(stat: np.ndarray, seed: int = 0, level: float = CI_LEVEL) -> dict:
    """Mean and percentile interval of a statistic resampled over seeds, optimizer draws and test points.

    stat: (S, D, 1 + B), the statistic per network seed s, optimizer draw d and test-point resample
    (index 0: the data itself, 1..B: bootstrap weights). Replicate b takes S seeds with replacement,
    one random draw for each and the b-th test-point resample, and averages. Returns {"diff": mean
    over seeds and draws, "lo", "hi", "sd_draws": mean over seeds of the std over draws}.
    """
    S, D, B1 = stat.shape
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, S, size=(B1 - 1, S))
    d_idx = rng.integers(0, D, size=(B1 - 1, S))
    boot = stat[s_idx, d_idx, np.arange(1, B1)[:, None]].mean(1)            # (B,)
    q = (1 - level) / 2
    sd = float(stat[:, :, 0].std(1, ddof=1).mean()) if D > 1 else 0.0
    return {"diff": float(stat[:, :, 0].mean()), "lo": float(np.quantile(boot, q)),
            "hi": float(np.quantile(boot, 1 - q)), "sd_draws": sd}


def paired_tau(probs: dict, setting: str, seeds, a: str, b: str, recipe: str, weights: np.ndarray) -> dict:
    """τ(a) − τ(b) per seed and optimizer draw on the same test points, with ``hier_boot``'s interval.

    probs: as ``runs.faithfulness_runs`` returns it (true-class margins keyed (kernel, recipe, draw));
    weights: (B, N_test) resample counts (``surrogates.bootstrap_weights``). Returns ``hier_boot``'s dict
    and "per_seed": the mean over draws per seed.
    """
    w = np.vstack([np.ones((1, weights.shape[1])), weights])                # (1 + B, N): row 0 = the data
    stat = []
    for seed in seeds:
        p = probs[(setting, seed)]
        draws = _draws(p, a, recipe)
        stat.append([surrogates.kendall_tau_weighted(p["net"], p[(a, recipe, d)], w)
                     - surrogates.kendall_tau_weighted(p["net"], p[(b, recipe, d)], w) for d in draws])
    stat = np.asarray(stat)                                                  # (S, D, 1 + B)
    return hier_boot(stat) | {"per_seed": stat[:, :, 0].mean(1).tolist()}


def tad_ci(probs: dict, setting: str, seeds, name: str, recipe: str, weights: np.ndarray) -> dict:
    """TAD = acc(kGLM) − acc(network) (a point is right when its true-class margin is > 0), ``hier_boot``."""
    w = np.vstack([np.ones((1, weights.shape[1])), weights])
    stat = []
    for seed in seeds:
        p = probs[(setting, seed)]
        net = (p["net"] > 0).astype(float)
        stat.append([w @ ((p[(name, recipe, d)] > 0).astype(float) - net) / w.shape[1]
                     for d in _draws(p, name, recipe)])
    return hier_boot(np.asarray(stat), seed=1)


def _pairs(name: str, main: str, kmax: int) -> list[tuple[str, str]]:
    if name != main:
        return [("trntk", "trntk0")]
    return [("trntk", k) for k in ("trntk0", "pntk", "em", "ck", "gradcos")] + [(f"proj_trntk@{kmax}", "trntk")]


def paired_tau_table(runs: dict, cfg: Study02, sets: dict) -> pd.DataFrame:
    """Paired τ differences with intervals over seeds × draws × test points, for every recipe.

    One row per (setting, recipe, kernel a, kernel b); the 10-class setting gets trNTK against every
    other kernel and proj-trNTK against trNTK, the binary settings trNTK vs trNTK⁰ only (claim 02.3).
    """
    kmax, main, rows = max(cfg.proj_dims), main_setting(sets), []
    for name, s in sets.items():
        w = surrogates.bootstrap_weights(len(s.ds.y_test), cfg.n_boot, seed=0)
        for r in cfg.recipes:
            for a, b in _pairs(name, main, kmax):
                d = paired_tau(runs["probs"], name, cfg.seeds, a, b, r, w)
                rows.append({"setting": name, "recipe": r, "a": a, "b": b, "diff": d["diff"], "lo": d["lo"],
                             "hi": d["hi"], "sd_draws": d["sd_draws"],
                             "per_seed": " ".join(f"{v:+.3f}" for v in d["per_seed"])})
    return pd.DataFrame(rows)


def tad_table(runs: dict, cfg: Study02, sets: dict, kernels) -> pd.DataFrame:
    """TAD per (setting, kernel, recipe) with its interval over seeds × draws × test points, and whether the
    setting is at the ceiling (network and kGLM right on every test point for every seed and draw)."""
    rows = []
    for name, s in sets.items():
        w = surrogates.bootstrap_weights(len(s.ds.y_test), cfg.n_boot, seed=0)
        for k in kernels:
            for r in cfg.recipes:
                d = tad_ci(runs["probs"], name, cfg.seeds, k, r, w)
                ps = [runs["probs"][(name, seed)] for seed in cfg.seeds]
                ceiling = all((p["net"] > 0).all() and (p[key] > 0).all() for p in ps for key in p
                              if isinstance(key, tuple) and key[:2] == (k, r))
                rows.append({"setting": name, "kernel": k, "recipe": r, "tad": d["diff"], "lo": d["lo"],
                             "hi": d["hi"], "sd_draws": d["sd_draws"], "ceiling": ceiling})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ projection error against K (02.4)
def projection_error_draws(model, x, ks, draws: int, seed0: int = 1) -> list[dict]:
    """Relative Frobenius error of proj-trNTK / proj-pNTK against the exact normalized kernel on ``x``.

    ``draws`` seeded projection matrices (seeds seed0 .. seed0 + draws - 1) per K of ``ks``. Returns rows
    {"kernel", "k", "draw", "rel_error"}.
    """
    rows = []
    for kind in ("trntk", "pntk"):
        exact = ntk.kernel(model, x, kind=kind, normalize=True, progress=False).double().cpu().numpy()
        for k in ks:
            for d in range(draws):
                K = ntk.kernel(model, x, kind=kind, normalize=True, proj_dim=int(k), seed=seed0 + d, progress=False)
                rows.append({"kernel": kind, "k": int(k), "draw": d,
                             "rel_error": utils.rel_error(K.double().cpu().numpy(), exact)})
    return rows


def _slope(logk: np.ndarray, loge: np.ndarray) -> np.ndarray:
    """OLS slopes of loge (..., n) on logk (n,), batched over leading axes."""
    xc = logk - logk.mean()
    return ((loge - loge.mean(-1, keepdims=True)) * xc).sum(-1) / (xc ** 2).sum()


def slope_null(log_sd: np.ndarray, n_draws: int, ks, n_sim: int = 4000, seed: int = 0) -> np.ndarray:
    """Slopes the estimator gives when error = c K^(-1/2) exactly, with the measured per-K spread.

    log_sd: (n_K,) std over draws of log error at each K; each simulated design has ``n_draws`` draws per K
    with log-normal noise of that std. Returns (n_sim,) fitted slopes.
    """
    rng = np.random.default_rng(seed)
    logk = np.repeat(np.log(np.asarray(ks, float)), n_draws)
    noise = rng.normal(size=(n_sim, len(logk))) * np.repeat(np.asarray(log_sd), n_draws)
    return _slope(logk, -0.5 * logk + noise)


def slope_fit(err: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = CI_LEVEL) -> pd.DataFrame:
    """Per kernel: the log-log slope over every (K, draw), its bootstrap CI (draws resampled within each K),
    the central ``level`` range of ``slope_null`` at the measured spread, and √K·error at the smallest and
    largest K (flat under K^(-1/2))."""
    rng = np.random.default_rng(seed)
    q = (1 - level) / 2
    out = []
    for kind, g in err.groupby("kernel", sort=False):
        table = g.pivot(index="k", columns="draw", values="rel_error").sort_index()       # (n_K, D)
        ks, e = table.index.to_numpy(float), np.log(table.to_numpy())
        logk = np.repeat(np.log(ks), e.shape[1])
        pick = rng.integers(0, e.shape[1], size=(n_boot,) + e.shape)
        boot = _slope(logk, np.take_along_axis(e[None], pick, 2).reshape(n_boot, -1))
        null = slope_null(e.std(1, ddof=1), e.shape[1], ks, seed=seed)
        flat = np.sqrt(ks) * np.exp(e).mean(1)
        out.append({"kernel": kind, "slope": float(_slope(logk, e.reshape(-1))), "lo": float(np.quantile(boot, q)),
                    "hi": float(np.quantile(boot, 1 - q)), "null_lo": float(np.quantile(null, q)),
                    "null_hi": float(np.quantile(null, 1 - q)), "sqrtk_err_first": float(flat[0]),
                    "sqrtk_err_last": float(flat[-1]), "n_k": len(ks), "draws": e.shape[1]})
    return pd.DataFrame(out)


def projection_error_table(err: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over projection draws of the relative error per (kernel, K), with the fitted slope."""
    t = err.groupby(["kernel", "k"], as_index=False)["rel_error"].agg(["mean", "std"])
    t["slope"] = t["kernel"].map(slope_fit(err).set_index("kernel")["slope"])
    return t
