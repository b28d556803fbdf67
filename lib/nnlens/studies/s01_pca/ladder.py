"""Study 01's networks beyond the seeds (issue 22): a width ladder for 01.1 and a null for 01.5.

At width 8 the first PC alone carries 9-28% of a layer's variance, so "<= 25% of the variance" means at most 3
components and v* is decided by the width: ``config.networks(cfg)`` adds one network per width of
``cfg.ladder_widths`` and, when ``cfg.long_epochs``, one network at ``cfg.width`` trained longer (a network
whose collapse may start earlier, so that 01.5's last-block guess can fail). Each is trained at network seed
``cfg.seeds[0]`` on the split of ``cfg.seed`` (so the stability reruns move them) and probed on k <= k_max
(``runs.probe_layer(full=False)``). ``table`` gives v* per network, ``trend`` its slope against log2(width),
``network_onsets`` both collapse onsets of every network.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Study01, networks
from .runs import vstar

PAPER_WIDTH = 64
LADDER_COLUMNS = ["network", "width", "epochs", "seeds", "layer", "dim", "k_star", "pcs_share", "v_star",
                  "v_star_sd", "test_acc"]


def best_layer(results: dict, cfg: Study01) -> dict:
    """The layer of least mean v* over the seeds, among layers where every seed has a v* (else NaNs)."""
    vs = vstar(results, cfg)
    dims = results["probes"].groupby("layer")["dim"].first()
    complete = vs.groupby("layer").filter(lambda g: g["v_star"].notna().all())
    if not len(complete):
        return {"layer": None, "dim": np.nan, "k_star": np.nan, "pcs_share": np.nan, "v_star": np.nan,
                "v_star_sd": np.nan, "per_seed": vs.iloc[:0]}
    per_layer = complete.groupby(["depth", "layer"])["v_star"].mean().reset_index()
    layer = per_layer.loc[per_layer["v_star"].idxmin(), "layer"]
    part = complete[complete["layer"] == layer].sort_values("seed")
    dim = int(dims[layer])
    n_pcs = min(dim, cfg.n_train - 1) if cfg.n_train else dim      # the PCs the layer has on the training split
    sd = part["v_star"].std(ddof=1) if len(part) > 1 else np.nan
    return {"layer": layer, "dim": dim, "k_star": float(part["k_star"].mean()),
            "pcs_share": float(part["k_star"].mean() / n_pcs), "v_star": float(part["v_star"].mean()),
            "v_star_sd": sd, "per_seed": part}


def table(results: dict, cfg: Study01) -> pd.DataFrame:
    """v* per network: the main width's rung (its seeds) and every network of ``results["extra"]``.

    Columns: network, width, epochs, seeds (how many), layer of least mean v*, its dim, k* (mean over seeds),
    pcs_share (k* over the layer's number of PCs, min(dim, n_train - 1)), v* (mean) and its sd over seeds, and
    the network's test accuracy (mean). Rows by (epochs, width)."""
    configs = dict(networks(cfg))
    rows = []
    for label, res, c in [(f"width {cfg.width}", results, cfg)] + [
            (label, res, configs[label]) for label, res in results.get("extra", {}).items()]:
        best = best_layer(res, c)
        best.pop("per_seed")
        rows.append({"network": label, "width": c.width, "epochs": c.epochs, "seeds": res["nets"]["seed"].nunique(),
                     **best, "test_acc": float(res["nets"]["test_acc"].mean())})
    out = pd.DataFrame(rows, columns=LADDER_COLUMNS)
    return out.sort_values(["epochs", "width"], kind="stable").reset_index(drop=True)


def rungs(ladder: pd.DataFrame, cfg: Study01) -> pd.DataFrame:
    """The ladder's rows trained for ``cfg.epochs`` (the width ladder proper), by width."""
    return ladder[ladder["epochs"] == cfg.epochs].sort_values("width").reset_index(drop=True)


def trend(ladder: pd.DataFrame, cfg: Study01) -> dict:
    """Least-squares slope of v* against log2(width) over the rungs with a v*, and its value extrapolated to the
    paper's width (reported, never judged: it extends past the widths measured). NaN with fewer than 2 rungs."""
    r = rungs(ladder, cfg).dropna(subset=["v_star"])
    if len(r) < 2:
        return {"slope": np.nan, "at_paper_width": np.nan, "n_rungs": len(r)}
    slope, icpt = np.polyfit(np.log2(r["width"].to_numpy(float)), r["v_star"].to_numpy(float), 1)
    return {"slope": float(slope), "at_paper_width": float(icpt + slope * np.log2(PAPER_WIDTH)), "n_rungs": len(r)}


def network_onsets(results: dict, cfg: Study01) -> pd.DataFrame:
    """Both collapse onsets (``runs.onsets``) of every network: the seeds at ``cfg.width``, then the extras.

    Columns: network, width, epochs, seed, probes, nc1, distance (taps between the two onsets)."""
    configs = dict(networks(cfg))
    parts = [results["onsets"].assign(network=[f"width {cfg.width}, seed {s}" for s in results["onsets"]["seed"]],
                                      width=cfg.width, epochs=cfg.epochs)]
    for label, res in results.get("extra", {}).items():
        parts.append(res["onsets"].assign(network=label, width=configs[label].width, epochs=configs[label].epochs))
    cols = ["network", "width", "epochs", "seed", "probes", "nc1", "distance"]
    out = pd.concat(parts, ignore_index=True)[cols]
    for col in ("probes", "nc1"):                        # no onset: None in every row (the frames mix None and NaN)
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    out["distance"] = pd.to_numeric(out["distance"])
    return out
