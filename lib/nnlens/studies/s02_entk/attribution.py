"""Study 02, attribution runs: trigger poisoning (claim 02.5) and the linear datamodeling score (02.6-02.8).

The drivers ``nnlens.studies.s02_entk`` re-exports for the notebook; they reuse its settings,
kGLM recipes and thresholds. Poisoning follows Engel et al. 2023 (arXiv 2305.14585); LDS and
TRAK follow Park et al. 2023 (arXiv 2303.14186), through ``nnlens.datamodels``.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ... import attribution, data, datamodels, models, paths, surrogates, sweeps, train, utils
from . import runs as core


# ------------------------------------------------------------------ poisoning
def poisoning_study(spec: dict, ds, tcfg, *, fraction: float, target: int, trigger_size: int, n_attack: int,
                    topk: int, proj_dim: int, recipes=("cv",), seed: int = 0, Cs=surrogates.C_GRID, folds: int = 3,
                    kinds=("trntk", "pntk", "em", "ck", "gradcos"), chosen: dict | None = None) -> dict:
    """Train on a trigger-poisoned copy of ``ds``, then rank training points for successful attacks.

    Attack success is measured on every triggered test image of a non-target class.
    Attribution is scored only on the first ``n_attack`` triggered images the network
    assigns to the target class (a failed attack has no poisoned cause to find): each
    kernel's kGLM per recipe (fitted to the poisoned training labels the network saw)
    scores training points by their contribution to the target logit.
    Returns {"clean_acc", "attack_success", "n_poison", "n_scored", "rows" (per kernel and
    recipe: mean precision_at_k and auc), "per_image" {(kernel, recipe): {"auc", "precision_at_k"} (n_scored,)}}.
    """
    pds, idx = data.poison(ds, fraction, target, trigger_size, seed)
    model = train.fit(spec, pds, tcfg, progress=False).model
    clean_acc = float((utils.forward(model, ds.x_test).argmax(1) == ds.y_test).float().mean())
    keep = ds.y_test != target
    x_trig = data.add_trigger(ds.x_test[keep], trigger_size, *data.trigger_values(ds))
    pred_trig = utils.forward(model, x_trig).argmax(1)
    success = attribution.attack_success(pred_trig, ds.y_test[keep], target)
    hit = (pred_trig == target).nonzero().flatten()[:n_attack]
    x_att, pred_att = x_trig[hit], pred_trig[hit]
    out = {"clean_acc": clean_acc, "attack_success": success, "n_poison": int(len(idx)), "n_scored": int(len(hit)),
           "rows": [], "per_image": {}}
    if len(hit) == 0:
        return out
    suite = attribution.kernel_suite(model, pds.x_train, pds.y_train, x_att, proj_dims=(proj_dim,), seed=seed,
                                     kinds=kinds, test_labels=pred_att)
    is_poison = np.zeros(len(pds.y_train), bool)
    is_poison[idx] = True
    kglms = core.fit_surrogates(suite, pds.y_train, recipes, seed=seed, Cs=Cs, folds=folds, chosen=chosen)
    for (name, r), kg in kglms.items():
        scores = attribution.contributions(core._recipe_kernels(name, *suite[name], r)[1], kg.W, pred_att.numpy())
        m = {"auc": attribution.detection_auc(scores, is_poison),
             "precision_at_k": attribution.precision_at_k(scores, is_poison, topk)}   # (n_scored,) each
        out["per_image"][(name, r)] = m
        out["rows"].append({"kernel": name, "recipe": r, "precision_at_k": float(m["precision_at_k"].mean()),
                            "auc": float(m["auc"].mean())})
    return out


def poisoning_runs(cfg, s) -> dict:
    """``poisoning_study`` per poisoning seed on setting ``s``.

    Returns {"attack": per seed (clean accuracy, attack success, poisoned and scored points),
    "rows": per (seed, kernel, recipe), "table": mean and std per (kernel, recipe),
    "pairs": ``poisoning_pairs``}.
    """
    kmax = max(cfg.proj_dims)
    chosen: dict = {}          # C per kernel, cross-validated on the first poisoning seed, reused for the others
    runs = [poisoning_study(s.spec, s.ds, core.train_config(cfg, seed), fraction=cfg.poison_fraction,
                            target=cfg.target_class, trigger_size=cfg.trigger_size, n_attack=cfg.n_attack,
                            topk=cfg.topk, proj_dim=kmax, recipes=cfg.poison_recipes, seed=seed, Cs=cfg.kglm_cs,
                            folds=cfg.cv_folds, chosen=chosen)
            for seed in cfg.poison_seeds]
    attack = pd.DataFrame([{"seed": seed} | {k: v for k, v in p.items() if k not in ("rows", "per_image")}
                           for p, seed in zip(runs, cfg.poison_seeds)])
    rows = pd.DataFrame([{"seed": seed, **row} for p, seed in zip(runs, cfg.poison_seeds) for row in p["rows"]])
    table = surrogates.summarize(rows, ["kernel", "recipe"], ["precision_at_k", "auc"])
    return {"attack": attack, "rows": rows, "table": table, "pairs": poisoning_pairs(rows, cfg.poison_recipes)}


def poisoning_pairs(rows: pd.DataFrame, recipes) -> pd.DataFrame:
    """trNTK minus Em and CK per seed (mean over scored images), with a one-sided paired t-test across seeds.

    rows: per (seed, kernel, recipe) with "auc" and "precision_at_k". One row per
    (recipe, metric, baseline): mean difference, its per-seed values and the p-value
    (``scipy.stats.ttest_rel(..., alternative="greater")``; NaN with fewer than two seeds).
    """
    out = []
    for r in recipes:
        g = rows[rows["recipe"] == r].pivot(index="seed", columns="kernel")
        for metric in ("auc", "precision_at_k"):
            for b in ("em", "ck"):
                a_v, b_v = g[metric]["trntk"].to_numpy(), g[metric][b].to_numpy()
                d = a_v - b_v
                if len(d) < 2:
                    p = np.nan
                elif d.std() == 0:                       # t undefined: all seeds agree exactly
                    p = 0.0 if d[0] > 0 else 1.0
                else:
                    p = float(stats.ttest_rel(a_v, b_v, alternative="greater").pvalue)
                out.append({"recipe": r, "metric": metric, "baseline": b, "diff": float(d.mean()), "p_value": p,
                            "per_seed": " ".join(f"{v:+.3f}" for v in d)})
    return pd.DataFrame(out)


# ------------------------------------------------------------------ LDS: attribution judged against retraining
@functools.lru_cache(maxsize=2)
def _lds_data(dataset: str, n_train: int, n_test: int):
    return data.load(dataset, n_train, n_test, seed=0)


def lds_train_job(*, dataset: str, n_train: int, n_test: int, model: str, width: int, epochs: int, batch_size: int,
                  lr: float, weight_decay: float, subset: int, subset_seed: int, fraction: float) -> dict:
    """Train one network on the ``subset``-th random subset of the training set; its test margins.

    A sweep job (``sweeps.run``): plain arguments in, JSON out. The subset is
    ``datamodels.subset_mask(N_train, subset, subset_seed, fraction)``; the network's seed
    (init and batch order) is ``subset_seed * 100_000 + subset``. Returns {"margins": true-class
    margins on the test points (N_test,), "test_acc", "seconds"}.
    """
    t0 = time.perf_counter()
    ds = _lds_data(dataset, n_train, n_test)
    mask = torch.from_numpy(datamodels.subset_mask(len(ds.y_train), subset, subset_seed, fraction))
    sub = dataclasses.replace(ds, x_train=ds.x_train[mask], y_train=ds.y_train[mask])
    spec = models.spec_for(model, ds, width=width)
    tcfg = train.TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                             seed=subset_seed * 100_000 + subset)
    net = train.fit(spec, sub, tcfg, cache=False, progress=False, device="cpu").model
    logits = utils.forward(net, ds.x_test)
    return {"margins": surrogates.true_class_margin(logits, ds.y_test).tolist(),
            "test_acc": float((logits.argmax(1) == ds.y_test).double().mean()), "seconds": time.perf_counter() - t0}


def lds_runs(cfg, s, main_runs: dict) -> dict:
    """The linear datamodeling score of every attribution method on the 10-class setting.

    Retrains ``cfg.lds_subsets`` networks on seeded random halves of the training set
    (``sweeps.run``, ``cfg.lds_jobs`` processes, finished jobs kept in the cache), and scores
    each method's attributions for the test points' true-class margins:
    - every kernel of ``runs.LDS_KERNELS``: the cross-validated kGLM's margin contributions
      (``attribution.margin_contributions``), averaged over the networks of ``cfg.seeds``;
    - TRAK on the same networks as its ensemble (``datamodels.trak_scores``, K = ``cfg.trak_proj_dim``).
    Returns {"per_point": {method: (N_test,) Spearman}, "table": LDS with CI per method,
    "paired": paired differences, "jobs": one row per retrained network, "seconds": cost by step}.
    """
    ds, kmax = s.ds, max(cfg.proj_dims)
    t0 = time.perf_counter()
    grid = [dict(dataset=cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, model=cfg.model, width=cfg.width,
                 epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay, subset=m,
                 subset_seed=cfg.lds_seed, fraction=cfg.lds_fraction) for m in range(cfg.lds_subsets)]
    jobs = sweeps.run(lds_train_job, grid, store=paths.cache_dir() / "sweeps" / "02_lds", n_jobs=cfg.lds_jobs)
    t_retrain = time.perf_counter() - t0
    actual = np.array(jobs["margins"].tolist())                                        # (M, N_test)
    masks = datamodels.subset_masks(len(ds.y_train), cfg.lds_subsets, cfg.lds_seed, cfg.lds_fraction)
    y = ds.y_test.numpy()
    scores = {}
    for k in core.LDS_KERNELS:
        name = f"{k}@{kmax}" if k.startswith("proj_") else k
        per_seed = []
        for r in main_runs.values():
            kg = r["kglms"][(name, "cv")]
            per_seed.append(attribution.margin_contributions(r["suite"][name][1], kg.W, kg.b, y))
        scores[name] = np.mean(per_seed, axis=0)                                       # (N_test, N_train)
    t1 = time.perf_counter()
    scores["trak"] = datamodels.trak_scores([r["model"] for r in main_runs.values()], ds.x_train, ds.y_train,
                                            ds.x_test, ds.y_test, proj_dim=cfg.trak_proj_dim, seed=cfg.lds_seed)
    t_trak = time.perf_counter() - t1
    per_point = {m: datamodels.lds_per_point(sc, masks, actual) for m, sc in scores.items()}
    table = datamodels.lds_table(per_point, cfg.n_boot)
    pairs = [("trntk", "em"), ("trntk", "ck"), ("trntk", "trak"), (f"proj_trntk@{kmax}", "trntk")]
    paired = pd.DataFrame([dict(zip(("a", "b", "diff", "lo", "hi"),
                                    (a, b, *datamodels.paired_lds(per_point[a], per_point[b], cfg.n_boot))))
                           for a, b in pairs])
    return {"per_point": per_point, "table": table, "paired": paired,
            "jobs": jobs.drop(columns=["margins"]),
            "seconds": {"retraining (sweep)": t_retrain, "TRAK features and solve": t_trak,
                        "kernel attributions (kernels reused)": t1 - t0 - t_retrain}}
