"""Study 05's drivers: the NTK engine (torchNTK, Engel et al. 2022, arXiv 2205.12372).

How fast, how memory-hungry and how exact ``nnlens.ntk`` is against the autodiff
Jacobian-contraction method, and whether it removes torchNTK's limits (single output, no
biases, no convolutions). The timings come from ``benchmarks/ntk.py`` (``make bench``), which
writes ``reports/bench/ntk.csv``; this module reads that table, adds the float64 checks of
what torchNTK does not cover, and judges the claims.

Steps the notebook calls in order:

1. ``load_bench(cfg, profile, out.bench)``: the benchmark table of this profile and config
   (``make reproduce`` runs ``benchmarks/ntk.py`` first when it is missing or stale).
2. ``table(df, section)``, ``layerwise_memory``, ``projection_cost``, ``projection_error``: the
   tables the notebook shows, all cut from that table.
3. ``limit_checks(seed)``: float64 structured-vs-autodiff checks (multi-output, biases, CNNs,
   layer-wise parts).
4. ``claims.claims({"bench": df, "limits": limits}, cfg)``: one ledger row per claim.

Figures (``figures``): ``plot_scaling`` (time and memory against N, width, depth), ``plot_projection`` (error
against K, projection cost).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pandas as pd
import torch

from ... import models, ntk, paths, utils
from .config import Study05

SECTIONS = ("headline", "n", "width", "depth", "cnn_n", "proj_cost", "sgemm", "peak_fraction", "agreement",
            "projection", "wall")


# ------------------------------------------------------------------ the benchmark table
def config_id(cfg) -> str:
    """A short hash of a Study05 config: the benchmark table records the config it was made with."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


def _usable(path, cfg, profile) -> bool:
    if not path.exists():
        return False
    df = pd.read_csv(path)
    return ("profile" in df and "config" in df and set(df["profile"]) == {profile}
            and set(df["config"]) == {config_id(cfg)} and set(SECTIONS) <= set(df["section"]))


def bench_ready(cfg: Study05, profile: str, bench_dir: Path) -> bool:
    """Whether ``bench_dir/ntk.csv`` was made at ``profile`` with ``cfg`` by this benchmark (its sections)."""
    return _usable(Path(bench_dir) / "ntk.csv", cfg, profile)


def load_bench(cfg: Study05, profile: str, bench_dir: Path) -> pd.DataFrame:
    """The benchmark table ``bench_dir/ntk.csv`` made at ``profile`` with ``cfg``.

    ``make reproduce`` runs ``benchmarks/ntk.py`` first when the table is missing or stale, and
    ``make bench`` makes it on its own; a table from another profile or config is an error that
    says which command makes the right one."""
    path = Path(bench_dir) / "ntk.csv"
    if not _usable(path, cfg, profile):
        state = "is missing" if not path.exists() else "was made at another profile, config or benchmark version"
        raise FileNotFoundError(
            f"{paths.show(path)} {state}: run `python benchmarks/ntk.py --profile {profile} --out "
            f"{paths.show(path.parent)}` (or `make bench` for the default profile) and run this notebook again")
    return pd.read_csv(path)


_COLUMNS = {                                            # the columns each section's table shows
    "headline": ["model", "width", "depth", "n", "n_run", "kind", "method", "extrapolated", "seconds", "seconds_run",
                 "peak_mb", "kernel_mb", "rel_err"],
    "extrap_check": ["model", "width", "depth", "n", "n_run", "kind", "method", "extrapolated", "seconds",
                     "seconds_run"],
    "big_n": ["model", "width", "depth", "n", "kind", "method", "seconds", "peak_mb", "kernel_mb"],
    "peak_fraction": ["model", "width", "depth", "n", "kind", "threads", "seconds", "useful_gflop", "gflops",
                      "peak_gflops", "peak_fraction"],
    "agreement": ["model", "kind", "method", "n", "rel_err"],
}


def _ints(t: pd.DataFrame) -> pd.DataFrame:
    """Sizes and counts as integers (the long CSV stores them as floats beside other sections' NaN)."""
    for c in ("width", "depth", "n", "n_run", "threads", "proj_dim"):
        if c in t and t[c].notna().all():
            t[c] = t[c].astype(int)
    return t


def table(df, section: str) -> pd.DataFrame:
    """The rows of one benchmark section with the columns that matter for it."""
    out = _ints(df[df.section == section][[c for c in _COLUMNS[section] if c in df]].reset_index(drop=True))
    if section == "big_n":
        out["extra_beyond_kernel_mb"] = out["peak_mb"] - out["kernel_mb"]
    return out


def layerwise_memory(df) -> pd.DataFrame:
    """Peak memory of the layer-wise Jacobian contraction over the whole one, at the inputs they ran on."""
    mem = df[df.section.isin(["width", "depth", "n"]) & df.method.isin(["jac_contract", "jac_layer"])]
    out = (mem.groupby(["width", "depth", "n_run", "method"])["peak_mb_run"].first()
           .unstack("method").reset_index())
    out.columns.name = None
    out["layer_over_full"] = out["jac_layer"] / out["jac_contract"]
    return _ints(out)


def projection_cost(df) -> pd.DataFrame:
    """Seconds of the exact kernel, the projected one, its GEMMs alone and TRAK's projector, per kind,
    with the ratios the claims judge."""
    p = df[df.section == "proj_cost"]
    t = p.pivot_table(index="kind", columns="method", values="seconds", aggfunc="first")
    t.columns.name = None
    t["proj_over_exact_plus_gemm"] = t["projected"] / (t["structured"] + t["proj_gemm"])
    t["draw_and_rest_s"] = t["projected"] - t["structured"] - t["proj_gemm"]
    if "trak_basic" in t:
        t["trak_over_projected"] = t["trak_basic"] / t["projected"]
    err = p[p.method == "projected"].set_index("kind")["rel_err"]
    t["projected_rel_err"] = err
    first = p.iloc[0]
    t.insert(0, "proj_dim", int(first["proj_dim"]))
    t.insert(0, "n", int(first["n"]))
    t.insert(0, "threads", int(first["threads"]))
    return t.reset_index()[["kind", "threads", "n", "proj_dim"] + [c for c in (
        "structured", "proj_gemm", "projected", "trak_basic", "proj_over_exact_plus_gemm", "draw_and_rest_s",
        "trak_over_projected", "projected_rel_err") if c in t]]


def projection_error(df) -> pd.DataFrame:
    """Mean relative error of the projected kernels against the exact ones, per kind and K."""
    return _ints(df[df.section == "projection"].groupby(["kind", "proj_dim"])["rel_err"].mean().reset_index())


def _t(df, col="seconds", **sel) -> float:
    q = df
    for k, v in sel.items():
        q = q[q[k] == v]
    return float(q[col].iloc[0]) if len(q) else float("nan")


def summary(df) -> dict:
    """The headline numbers the claims judge."""
    h = df[df.section == "headline"]
    out = {}
    for kind in ("pntk", "trntk"):
        s = _t(h, model="mlp", kind=kind, method="structured")
        out[f"mlp_{kind}_speedup"] = _t(h, model="mlp", kind=kind, method="jac_contract") / s
        out[f"mlp_{kind}_baseline_extrapolated"] = bool(_t(h, "extrapolated", model="mlp", kind=kind,
                                                           method="jac_contract"))
        out[f"mlp_{kind}_over_unavoidable"] = s / _t(h, model="mlp", kind=kind, method="unavoidable")
        out[f"mlp_{kind}_rel_err"] = _t(h, "rel_err", model="mlp", kind=kind, method="jac_contract")
    out["cnn_trntk_speedup"] = _t(h, model="cnn", method="jac_contract") / _t(h, model="cnn", method="structured")
    out["cnn_trntk_baseline_extrapolated"] = bool(_t(h, "extrapolated", model="cnn", method="jac_contract"))
    out["cnn_trntk_rel_err"] = _t(h, "rel_err", model="cnn", method="jac_contract")
    out["rel_err_n"] = int(_t(h, "n_run", model="mlp", method="jac_contract"))
    out["agreement_max_rel_err"] = float(df.loc[df.section == "agreement", "rel_err"].max())
    e = df[df.section == "extrap_check"]
    if len(e):
        out["extrap_check_n"] = int(e["n"].iloc[0])
        out["extrap_over_measured"] = _t(e, extrapolated=True) / _t(e, extrapolated=False)
    big = df[df.section == "big_n"]
    if len(big):
        out["big_n_extra_gb"] = float((big["peak_mb"] - big["kernel_mb"]).max() / 1024)
        out["big_n_kernel_gb"] = float(big["kernel_mb"].max() / 1024)
        out["big_n_seconds"] = float(big["seconds"].max())
        out["big_n_width"], out["big_n_depth"] = int(big["width"].iloc[0]), int(big["depth"].iloc[0])
    w = df[df.section == "wall"]
    out["bench_wall_s"] = float(w["seconds"].iloc[0]) if len(w) else float("nan")
    for kind, g in projection_error(df).groupby("kind"):
        out[f"proj_slope_{kind}"] = utils.loglog_slope(g["proj_dim"].astype(float), g["rel_err"])
    cost = projection_cost(df).set_index("kind")
    out["proj_cost"] = cost["proj_over_exact_plus_gemm"].to_dict()
    out["proj_cost_k"], out["proj_cost_n"] = int(cost["proj_dim"].iloc[0]), int(cost["n"].iloc[0])
    if "trak_over_projected" in cost and cost["trak_over_projected"].notna().any():
        out["trak_over_projected"] = float(cost["trak_over_projected"].dropna().iloc[0])
    return out


# ------------------------------------------------------------------ float64 checks
def limit_checks(seed: int = 0) -> dict:
    """float64 relative differences, structured vs autodiff, for what torchNTK's explicit path
    does not cover (multi-output, biases, CNNs), and layer-wise parts vs the total."""
    dt = torch.float64
    with utils.seeded(seed):
        mlp, xm = models.MLP(20, 5, width=16, depth=2, bias=True), torch.randn(12, 20)
        cnn, xc = models.SmallCNN(1, 4, width=3, image_size=8), torch.randn(8, 1, 8, 8)
        res = models.ResNet18(1, 3, width=4), torch.randn(6, 1, 8, 8)

    def rel(model, x, **kw):
        a = ntk.kernel(model, x, method="structured", dtype=dt, device="cpu", **kw)
        b = ntk.kernel(model, x, method="autodiff", dtype=dt, device="cpu", **kw)
        return utils.rel_error(a, b)

    parts = ntk.kernel(*res, layerwise=True, dtype=dt, device="cpu")
    total = ntk.kernel(*res, dtype=dt, device="cpu")
    return {
        "multi_output_entk": rel(mlp, xm, kind="entk"),
        "biases_trntk": rel(mlp, xm, kind="trntk"),
        "cnn_trntk": rel(cnn, xc, kind="trntk"),
        "cnn_entk": rel(cnn, xc, kind="entk"),
        "layerwise_sum": utils.rel_error(sum(parts.values()), total),
        "layerwise_parts": len(parts),
    }
