"""Study 01's drivers: PCA surrogates and neural collapse (arXiv 2309.15328).

A CIFAR-style ResNet-18 is trained to (near) zero training error, once per network seed
(``cfg.seeds``; the data split stays at ``cfg.seed``). Each tapped layer (stem, the eight
residual blocks, the pooled penultimate layer) is read on the full, unpooled maps
(``cfg.pool = 0``), PCA is fitted on its training activations (randomized SVD for wide
layers), and three probes are trained on its first k principal components
(``nnlens.probes``):

- kNN and NCC on every k = 1..``k_max`` (and at k = 100 and on all features for 01.2);
- a linear SVM (standardized PCs, ``LinearSVC`` run to convergence, C chosen per layer by
  stratified cross-validation on the training split at k = ``k_max``) on a log-spaced integer
  sub-grid of 1..``k_max`` (``SVM_KS``): one SVM per k costs ~50 kNN/NCC paths.

Neural collapse (NC1-NC4) is measured per layer (``nnlens.collapse``).

Cost at default (seed 0, CPU-s on one thread): the SVM on all features was 95 of 116 s of probing per
seed (liblinear's dual on up to 12800 columns); it is now solved on the span of the training rows
(``probes.svm_predict_wide``, the same iterates: 21 s), and the seeds are probed in 2 processes.

Steps the notebook calls in order: ``load_data(cfg)``, ``run(cfg, ds)`` (trains and probes every
seed), ``vstar(results, cfg)``, then ``claims.claims(results, cfg)``; figures are in ``figures``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import collapse, data, features, models, probes, train, utils
from .config import Study01, networks

# v* (01.1) = the least cumulative explained variance at which some probe comes within NEAR_NETWORK of the
# network's test accuracy on the integer k grid ("high-accuracy classification", the paper's words).
NEAR_NETWORK = 0.05
# 01.2 compares kNN and NCC on the first K_DETERMINE PCs with all features ("the first ~100 PCs").
K_DETERMINE = 100

SVM_KS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)   # the SVM's k sub-grid (capped at k_max and the rank)
# 01.3 compares each probe at its best k: beyond k_max every probe is also scored at these k (capped at the
# rank) and on all features (kNN, NCC; the SVM too when cfg.svm_all), so no probe is capped at k_max.
EXTRA_KS = (K_DETERMINE, 256)


# ------------------------------------------------------------------ drivers
def load_data(cfg: Study01) -> tuple[data.Dataset, float]:
    """The study's data set (split at ``cfg.seed``) and the test accuracy of kNN (k = ``cfg.knn_k``) on raw pixels."""
    ds = data.load(cfg.dataset, cfg.n_train, cfg.n_test, cfg.seed)
    raw_knn = probes.knn_accuracy(ds.x_train, ds.y_train, ds.x_test, ds.y_test, cfg.knn_k)
    return ds, raw_knn


def train_config(cfg: Study01, seed: int) -> train.TrainConfig:
    return train.TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size,
                             seed=seed, weight_decay=cfg.weight_decay, schedule=cfg.schedule)


def train_network(cfg: Study01, ds, seed: int) -> train.FitResult:
    """The ResNet-18 of width ``cfg.width`` trained on ``ds`` with network seed ``seed`` (cached by ``train.fit``)."""
    spec = models.spec_for("resnet18", ds, width=cfg.width)
    return train.fit(spec, ds, train_config(cfg, seed), progress=False)


def layer_features(model, ds, pool: int = 0) -> dict:
    """Activations of every tap on train and test, and the network's predictions.

    Returns {"train": {layer: (N, D)}, "test": {layer: (M, D)}, "pred_train": (N,), "pred_test": (M,),
    "net_train_acc", "net_test_acc"}.
    """
    tr = features.activations(model, ds.x_train, pool=pool, include_logits=True)
    te = features.activations(model, ds.x_test, pool=pool, include_logits=True)
    pred_train, pred_test = tr.pop("logits").argmax(1), te.pop("logits").argmax(1)
    return {"train": tr, "test": te, "pred_train": pred_train, "pred_test": pred_test,
            "net_train_acc": float((pred_train == ds.y_train).float().mean()),
            "net_test_acc": float((pred_test == ds.y_test).float().mean())}


def _paired(pred_a, pred_b, y) -> dict:
    """acc(a) - acc(b) on the same test points and its paired standard error (discordant pairs)."""
    a, b = (np.asarray(pred_a) == y).astype(float), (np.asarray(pred_b) == y).astype(float)
    diff = a - b
    return {"diff": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(len(diff)))}


def _predict(probe: str, ztr, ytr, zte, cfg: Study01, c: float = 1.0):
    clf = probes._make(probe, cfg.knn_k, c, cfg.seed)
    converged = probes.fit_quietly(clf, ztr, ytr)
    return clf.predict(zte), converged


def probe_layer(x_train, y_train, x_test, y_test, cfg: Study01, full: bool = True) -> dict:
    """PCA of one layer and the three probes on its first k PCs (``full=False``: k <= k_max only, none of the
    extra k, all-feature probes or pairs; the same PCA, so the same rows at k <= k_max).

    x_train (N, D), x_test (M, D). Returns {"rows": tidy rows k, explained_variance, probe, accuracy,
    all_features (True on the rows on all D (centred) features, k = D, variance 1, when D > the PCs kept),
    "scree": (n_pc,) cumulative explained variance, "svm": {C, cv_accuracy, converged}, "pairs": kNN and
    NCC on all features minus on the first K_DETERMINE PCs, paired over test points (01.2)}.
    """
    xtr, xte = utils.to_numpy(x_train, np.float32), utils.to_numpy(x_test, np.float32)
    ytr, yte = np.asarray(y_train).ravel(), np.asarray(y_test).ravel()
    n, d = xtr.shape
    n_pc = min(n - 1, d, max(cfg.k_max, *EXTRA_KS))
    pca = probes.fit_pca(xtr, n_pc, cfg.seed)
    ztr, zte = pca.transform(xtr), pca.transform(xte)                     # (N, n_pc), (M, n_pc)
    cum = np.minimum(np.cumsum(pca.explained_variance_ratio_, dtype=np.float64), 1.0)   # (n_pc,)
    k_top = min(cfg.k_max, n_pc)
    extra = sorted({k for k in EXTRA_KS if k_top < k <= n_pc}) if full else []
    ks = list(range(1, k_top + 1)) + extra
    path = probes.knn_ncc_path(ztr, ytr, zte, yte, ks, cfg.knn_k)
    rows = [{"k": k, "explained_variance": float(cum[k - 1]), "probe": p, "accuracy": float(path[p][i]),
             "all_features": False} for p in ("knn", "ncc") for i, k in enumerate(ks)]
    c, cv_acc, converged = probes.choose_svm_c(ztr[:, :k_top], ytr, cfg.svm_cs, cfg.cv_folds, cfg.seed)
    for k in sorted({k for k in SVM_KS if k <= k_top} | {k_top} | set(extra)):
        pred, ok = _predict("svm", ztr[:, :k], ytr, zte[:, :k], cfg, c)
        converged &= ok
        rows.append({"k": k, "explained_variance": float(cum[k - 1]), "probe": "svm",
                     "accuracy": float(np.mean(pred == yte)), "all_features": False})
    pairs = []
    if full and d > n_pc:                                                 # the probes on all (centred) features
        mu = xtr.mean(0)
        for p in ("knn", "ncc") + (("svm",) if cfg.svm_all else ()):
            if p == "svm" and n < d:     # the same SVM, solved on the span of the training rows (exact, ~d/n faster)
                pred, ok = probes.svm_predict_wide(xtr - mu, ytr, xte - mu, c, cfg.seed)
            else:
                pred, ok = _predict(p, xtr - mu, ytr, xte - mu, cfg, c)
            converged &= ok if p == "svm" else True
            rows.append({"k": d, "explained_variance": 1.0, "probe": p, "accuracy": float(np.mean(pred == yte)),
                         "all_features": True})
            if p != "svm" and n_pc >= K_DETERMINE:
                at100, _ = _predict(p, ztr[:, :K_DETERMINE], ytr, zte[:, :K_DETERMINE], cfg)
                pairs.append({"probe": p, "n_test": len(yte), **_paired(pred, at100, yte)})
    return {"rows": rows, "scree": cum, "svm": {"C": c, "cv_accuracy": cv_acc, "converged": bool(converged)},
            "pairs": pairs}


def run_seed(cfg: Study01, ds, seed: int, full: bool = True) -> dict:
    """Train one network and probe every layer (``full``: see ``probe_layer``). Frames carry a ``seed`` column."""
    fit = train_network(cfg, ds, seed)
    model = fit.model.cpu().eval()
    feats = layer_features(model, ds, cfg.pool)
    y_tr, y_te = ds.y_train.numpy(), ds.y_test.numpy()
    rows, scree, svm, pairs = [], [], [], []
    with utils.one_thread():
        for depth, (layer, h) in enumerate(feats["train"].items()):
            out = probe_layer(h, y_tr, feats["test"][layer], y_te, cfg, full)
            info = {"seed": seed, "layer": layer, "depth": depth, "dim": h.shape[1]}
            rows += [{**info, **r} for r in out["rows"]]
            scree += [{**info, "k": k + 1, "explained_variance": v} for k, v in enumerate(out["scree"])]
            svm.append({**info, **out["svm"]})
            pairs += [{**info, **r} for r in out["pairs"]]
        nc = collapse.layer_table(feats["train"], ds.y_train, feats["test"], feats["pred_test"],
                                  pred_train=feats["pred_train"])
    nc.insert(0, "seed", seed)
    last = list(feats["train"])[-1]
    net = {"seed": seed, "train_acc": feats["net_train_acc"], "test_acc": feats["net_test_acc"],
           "nc3": collapse.nc3(model.head.weight, feats["train"][last], ds.y_train)}
    return {"net": net, "history": fit.history.drop(columns="seconds").assign(seed=seed),
            "probes": pd.DataFrame(rows), "scree": pd.DataFrame(scree), "svm": pd.DataFrame(svm), "collapse": nc,
            "pairs": pd.DataFrame(pairs, columns=["seed", "layer", "depth", "dim", "probe", "n_test", "diff", "se"])}


def _run_seed_one_thread(cfg: Study01, ds, seed: int, full: bool = True) -> dict:
    with utils.one_thread():
        return run_seed(cfg, ds, seed, full)


def probe_seeds(cfg: Study01, ds, n_jobs: int = 2, extra: tuple = ()) -> list[dict]:
    """``run_seed`` for every seed of ``cfg.seeds`` (networks from the cache), then ``run_seed(c, ds, c.seeds[0],
    full=False)`` for every config ``c`` of ``extra``; each on one thread, in ``n_jobs`` processes: the same
    numbers as a loop (every step runs single-threaded either way), ~n_jobs times sooner."""
    tasks = [(cfg, s, True) for s in cfg.seeds] + [(c, c.seeds[0], False) for c in extra]
    if n_jobs == 1 or len(tasks) == 1:
        return [_run_seed_one_thread(c, ds, s, f) for c, s, f in tasks]
    from joblib import Parallel, delayed

    order = _costliest_first([c for c, _, _ in tasks])
    done = Parallel(n_jobs=min(n_jobs, len(tasks)))(
        delayed(_run_seed_one_thread)(tasks[i][0], ds, tasks[i][1], tasks[i][2]) for i in order)
    out = [None] * len(tasks)
    for i, part in zip(order, done, strict=True):
        out[i] = part
    return out


def _costliest_first(configs: list) -> list[int]:
    """Indices of ``configs`` by decreasing cost (width x epochs: a width-16 network costs ~2.4x a width-8 one per
    epoch): with 2 processes the widest network starts first instead of running alone at the end. Order only
    changes when each finishes, not what it computes (every task runs on one thread)."""
    return sorted(range(len(configs)), key=lambda i: -configs[i].width * configs[i].epochs)


def _frames(parts: list[dict], raw_knn: float) -> dict:
    res = {key: pd.concat([p[key] for p in parts], ignore_index=True)
           for key in ("history", "probes", "scree", "svm", "collapse", "pairs")}
    res["nets"] = pd.DataFrame([p["net"] for p in parts]).assign(raw_knn=raw_knn)
    return res


def run(cfg: Study01, ds, raw_knn: float) -> dict:
    """``run_seed`` for every seed in ``cfg.seeds``; frames concatenated, plus onsets per seed. The networks of
    ``config.networks(cfg)`` (other widths, longer training) are trained and probed beside them: their results
    are under "extra" ({label: results}); ``ladder.table`` and ``ladder.network_onsets`` summarize them."""
    extra = networks(cfg)                         # [(label, config)]
    nets = [(cfg, s) for s in cfg.seeds] + [(c, c.seeds[0]) for _, c in extra]
    jobs = [(models.spec_for("resnet18", ds, width=c.width), ds, train_config(c, s)) for c, s in nets]
    order = _costliest_first([c for c, _ in nets])
    train.fit_many([jobs[i] for i in order], n_jobs=2, progress=False)    # 2 processes, 1 thread each (cached)
    parts = probe_seeds(cfg, ds, n_jobs=2, extra=tuple(c for _, c in extra))
    n = len(cfg.seeds)
    res = _frames(parts[:n], raw_knn)
    res["onsets"] = onsets(res["probes"], res["collapse"], cfg)
    res["chance"] = 1.0 / len(np.unique(ds.y_train.numpy()))
    res["extra"] = {}
    for (label, c), part in zip(extra, parts[n:], strict=True):
        sub = _frames([part], raw_knn)
        sub["onsets"] = onsets(sub["probes"], sub["collapse"], c)
        res["extra"][label] = sub
    return res


def onsets(probe_df: pd.DataFrame, nc: pd.DataFrame, cfg: Study01) -> pd.DataFrame:
    """Per seed, where collapse begins: the surrogates' agreement (spread of the three probes at k = k_max,
    the largest k where all three are measured) and NC1 (``collapse.onset``). Layer names or None."""
    rows = []
    for seed, part in nc.groupby("seed", sort=True):
        order = list(part.sort_values("depth")["layer"])
        top = top_k(probe_df[probe_df["seed"] == seed], cfg)
        spread = (top.max(axis=1) - top.min(axis=1)).reindex(order)
        i_p = collapse.onset(spread.to_numpy(), cfg.collapse_tol)
        i_n = collapse.onset(part.sort_values("depth")["nc1"].to_numpy(), cfg.nc1_onset)
        rows.append({"seed": seed, "probes": None if i_p is None else order[i_p],
                     "nc1": None if i_n is None else order[i_n],
                     "distance": None if i_p is None or i_n is None else abs(i_p - i_n)})
    return pd.DataFrame(rows)


def top_k(probe_df: pd.DataFrame, cfg: Study01) -> pd.DataFrame:
    """Accuracy of each probe at k = min(k_max, n_pc) per layer (one seed's rows): index layer, columns probes."""
    df = probe_df[probe_df["k"] <= cfg.k_max]
    k_top = df[df["probe"] == "svm"].groupby("layer")["k"].max()
    at = df[df["k"] == df["layer"].map(k_top)]
    return at.pivot_table(index="layer", columns="probe", values="accuracy")[list(probes.PROBES)]


def vstar(results: dict, cfg: Study01) -> pd.DataFrame:
    """v* per seed and layer: the least cumulative explained variance at which some probe reaches the
    network's test accuracy - NEAR_NETWORK on k = 1..k_max (NaN when none does), with that k and probe."""
    df = results["probes"]
    target = results["nets"].set_index("seed")["test_acc"] - NEAR_NETWORK
    rows = []
    for (seed, depth, layer), part in df[df["k"] <= cfg.k_max].groupby(["seed", "depth", "layer"], sort=True):
        hit = part[part["accuracy"] >= target[seed]].sort_values(["k", "probe"])
        first = hit.iloc[0] if len(hit) else None
        rows.append({"seed": seed, "layer": layer, "depth": depth, "target": target[seed],
                     "v_star": np.nan if first is None else first["explained_variance"],
                     "k_star": np.nan if first is None else first["k"],
                     "probe": None if first is None else first["probe"]})
    return pd.DataFrame(rows)


def determine_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Per seed, layer and probe (kNN, NCC): accuracy at k = K_DETERMINE minus accuracy on all features.

    Only layers with more than K_DETERMINE PCs and dimensions (the others have no k = 100 row)."""
    rows = []
    for (seed, depth, layer, probe), part in df[df["probe"].isin(["knn", "ncc"])].groupby(
            ["seed", "depth", "layer", "probe"], sort=True):
        dim = int(part["dim"].iloc[0])
        at, full = part[(part["k"] == K_DETERMINE) & ~part["all_features"]], part[part["all_features"]]
        if len(at) and len(full) and dim > K_DETERMINE:
            gap = float(at["accuracy"].iloc[0] - full["accuracy"].iloc[0])
            rows.append({"seed": seed, "layer": layer, "depth": depth, "dim": dim, "probe": probe, "gap": gap,
                         "abs_gap": abs(gap)})
    return pd.DataFrame(rows, columns=["seed", "layer", "depth", "dim", "probe", "gap", "abs_gap"])


def summary(results: dict, cfg: Study01) -> pd.DataFrame:
    """Per layer: dim, each probe's accuracy at k = k_max and kNN/NCC on all features, v*, NC1 (mean over seeds)."""
    df = results["probes"]
    top = pd.concat([top_k(p, cfg).assign(seed=s) for s, p in df.groupby("seed")]).groupby(level=0).mean()
    full = df[df["all_features"]].pivot_table(
        index="layer", columns="probe", values="accuracy").add_suffix("_all")
    vs = vstar(results, cfg).groupby("layer")["v_star"].mean()
    nc1 = results["collapse"].groupby("layer")["nc1"].mean()
    dims = df.groupby("layer")[["depth", "dim"]].first()
    out = dims.join(top.drop(columns="seed")).join(full).join(vs).join(nc1).sort_values("depth")
    return out.reset_index()
