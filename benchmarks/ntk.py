"""Study 05 benchmark: NTK methods' time and peak memory against N, width and depth.

    .venv/bin/python benchmarks/ntk.py [--profile smoke|default|paper]

Writes reports/bench/ntk.csv (``--out`` redirects it), one long table that notebook 05
(``nnlens.studies.s05_ntk``) reads. The default profile takes about 5 minutes on 2 quiet cores.

Methods compared in one run (arXiv 2205.12372 is the study; the baseline is the PyTorch
tutorial "Neural Tangent Kernels", torch.func):

- ``structured`` / ``autodiff``: ``ntk.kernel`` with that method.
- ``jac_contract``: the tutorial -- vmap(jacrev(functional_call)) Jacobians of two blocks,
  then an einsum contraction (pNTK uses the Jacobian of the summed logits), in blocks.
- ``jac_layer``: the same, one parameter-owning module at a time (torchNTK's layer-wise
  route: peak memory is the largest layer's Jacobian instead of the whole one).
- ``unavoidable``: the parts of the structured path no method avoids, timed alone.

Memory is the peak resident set size (``ru_maxrss``) of a fresh subprocess per measurement,
minus its RSS after imports, model, inputs and a tiny warm-up call: the extra memory the
computation needed, the kernel included (``kernel_mb`` says how much of it is the kernel).
Baselines too slow for this machine at the target N are timed at ``baseline_max_n`` and
scaled by the number of block pairs (their cost per block pair is constant); such rows
have ``extrapolated=True``, ``seconds_run`` (the time measured at ``n_run``) and no peak
memory. The ``extrap_check`` rows validate the scaling: the same baseline measured directly at
``baseline_direct_n`` next to its extrapolation. Baseline rows also carry ``rel_err``: the
structured kernel's relative Frobenius difference from the baseline kernel on the same inputs.
The ``agreement`` and ``projection`` sections are accuracy (no timing); the last row (section
``wall``) is the run's own wall-clock time. Every row records the profile, the config and the
torch thread count it ran with (``threads``).

Projection cost (section ``proj_cost``, the headline MLP on ``proj_cost_n`` inputs, K =
``proj_cost_k``): ``structured`` (the exact kernel), ``projected`` (``ntk.kernel(proj_dim=K)``,
everything included), ``proj_gemm`` (the same projection GEMMs on the same factors with R
already drawn: what no dense projection avoids) and ``trak_basic`` (TRAK 0.3.2's CPU
``BasicProjector.project`` on the precomputed per-example pNTK gradients (N, P): the projection
step alone). ``rel_err`` of the projected rows is their distance from the exact kernel.

Peak fraction (section ``peak_fraction``): the useful FLOPs of the headline structured MLP
kernels (forward, the backward passes to every layer's output, the Gram products of every
block pair) per second, over this machine's single-thread sgemm rate (``sgemm`` row).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NNLENS_PROGRESS", "0")          # no progress bars inside timed calls

import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call, jacrev, vmap  # noqa: E402

from nnlens import _io, models, ntk, paths, utils  # noqa: E402
from nnlens.ntk import factors, projection  # noqa: E402
from nnlens.studies import profiles, s05_ntk  # noqa: E402
from nnlens.utils import rel_error  # noqa: E402


# ----------------------------------------------------------------------------- baselines
def jac_contract(model, x, kind="trntk", block=32, groups=None):
    """The tutorial's Jacobian contraction, symmetric, in blocks of ``block``: (N, N).

    ``groups``: lists of parameter names differentiated one group at a time (None: all at once).
    """
    model.eval()
    named = dict(model.named_parameters())
    groups = groups or [list(named)]
    buffers = dict(model.named_buffers())
    n = len(x)
    out = x.new_zeros(n, n)
    for names in groups:
        params = {k: named[k].detach() for k in names}
        consts = {**{k: v.detach() for k, v in named.items() if k not in params}, **buffers}

        def f(p, xi):   # f and jac are called in this iteration only: the loop variables they read are current
            y = functional_call(model, (p, consts), (xi.unsqueeze(0),)).squeeze(0)   # noqa: B023  (C,)
            return y.sum(0, keepdim=True) if kind == "pntk" else y

        def jac(xb):
            return [j.flatten(2) for j in vmap(jacrev(f), (None, 0))(params, xb).values()]  # noqa: B023 [(B, C', p)]

        for i in range(0, n, block):
            j1 = jac(x[i:i + block])
            for k in range(i, n, block):
                j2 = j1 if k == i else jac(x[k:k + block])
                blk = sum(torch.einsum("Naf,Maf->NM", a, b) for a, b in zip(j1, j2))   # (B1, B2)
                out[i:i + block, k:k + block] = blk
                out[k:k + block, i:i + block] = blk.T
    return out


def layer_groups(model):
    """Parameter names grouped by the module that owns them."""
    groups = {}
    for name, _ in model.named_parameters():
        groups.setdefault(name.rpartition(".")[0], []).append(name)
    return list(groups.values())


def unavoidable(model, x, kind, bs):
    """The parts of the structured path no method avoids, timed alone: one forward and the same
    backward passes per block of ``bs`` inputs (1 for pNTK, C for trNTK), then exactly the Gram
    products the structured path performs -- for every Linear layer and every block pair (i, j >= i)
    of the symmetric kernel, (A_i A_j^T) o (G_i G_j^T) -- on the real layer inputs and output
    gradients. What it leaves out is the structured path's bookkeeping: hooks, concatenations,
    filling the other triangle and the kernel itself. Linear layers only (MLPs)."""
    layers = [mod for mod in model.modules() if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d))]
    if any(not isinstance(mod, torch.nn.Linear) for mod in layers):
        raise ValueError("unavoidable() times Linear-layer Gram products only (MLPs)")
    ins, outs = [], []

    def hook(mod, i, o):
        ins.append(i[0].detach())
        outs.append(o)
    hooks = [mod.register_forward_hook(hook) for mod in layers]
    feats = []                                                            # per block: [(a, g)] per layer
    try:
        for i in range(0, len(x), bs):
            ins.clear()
            outs.clear()
            y = model(x[i:i + bs])                                        # (B, C)
            rows = [y.sum()] if kind == "pntk" else [y[:, c].sum() for c in range(y.shape[1])]
            grads = [torch.autograd.grad(t, outs, retain_graph=r < len(rows) - 1) for r, t in enumerate(rows)]
            blk = []
            for k, (mod, a) in enumerate(zip(layers, ins)):
                if mod.bias is not None:
                    a = torch.cat([a, a.new_ones(len(a), 1)], 1)          # (B, din + 1)
                blk.append((a, torch.stack([g[k] for g in grads], 1).flatten(1)))   # (B, C' * dout)
            feats.append(blk)
    finally:
        for h in hooks:
            h.remove()
    total = x.new_zeros(())
    for i, fi in enumerate(feats):
        for fj in feats[i:]:                                              # the same upper-triangle blocks
            for (a1, g1), (a2, g2) in zip(fi, fj):
                total += ((a1 @ a2.T) * (g1 @ g2.T)).sum()                # (B1, B2) summed: keeps the work
    return total.reshape(1, 1)


# ----------------------------------------------------------------------------- one measurement
KERNEL_METHODS = ("structured", "autodiff", "projected", "jac_contract", "jac_layer")


def build(spec):
    """Model and inputs of one benchmark spec (seeded)."""
    torch.manual_seed(spec.get("seed", 0))                                # a script: its own global RNG
    if spec["model"] == "none":                                           # sgemm: no model
        return None, torch.zeros(1)
    if spec["model"] == "mlp":
        m = models.MLP(784, 10, width=spec["width"], depth=spec["depth"])
        x = torch.randn(spec["n_run"], 784)
    else:
        m = models.SmallCNN(1, 10, width=spec["width"], image_size=28)
        x = torch.randn(spec["n_run"], 1, 28, 28)
    return m.eval(), x


def compute(spec, model, x):
    m, kind, bs = spec["method"], spec["kind"], spec.get("block", 256)
    if m in ("structured", "autodiff"):
        return ntk.kernel(model, x, kind=kind, method=m, batch_size=bs, device="cpu")
    if m == "projected":
        return ntk.kernel(model, x, kind=kind, proj_dim=spec["proj_dim"], batch_size=bs, device="cpu")
    if m == "unavoidable":
        return unavoidable(model, x, kind, bs)
    groups = layer_groups(model) if m == "jac_layer" else None
    return jac_contract(model, x, kind, block=bs, groups=groups)


def prepare(spec, model, x):
    """The call to time for one spec (set-up that the timing must leave out is done here)."""
    m, k = spec["method"], spec.get("proj_dim")
    if m == "sgemm":
        a, b = torch.randn(spec["n"], spec["n"]), torch.randn(spec["n"], spec["n"])
        return lambda: a @ b
    if m == "proj_gemm":                                  # the GEMMs of ntk.kernel(proj_dim=k), R pre-drawn
        feat = factors.Features(model, ntk.KINDS[spec["kind"]], structured=True)
        fs, fixed = feat(x), {}

        def predrawn(shape, k, seed, index, device, dtype):
            d0, r = projection.view(shape)
            rows = max(1, projection.R_CHUNK // (r * k))
            if (r, rows, k) not in fixed:                  # drawn once, outside the timed calls
                fixed[r, rows, k] = torch.randint(0, 2, (r, rows, k), dtype=dtype) * 2 - 1
            blk = fixed[r, rows, k]
            for r0 in range(0, d0, rows):
                yield r0, min(d0, r0 + rows), blk[:, :min(d0, r0 + rows) - r0]
        for i, shape in feat.shapes.items():
            for _ in predrawn(shape, k, 0, i, "cpu", x.dtype):
                pass
        return lambda: projection.project_factors(fs, k, 0, feat.shapes, chunks=predrawn)
    if m == "trak_basic":                                 # TRAK's CPU projector on precomputed gradients
        from trak.projectors import BasicProjector, ProjectionType
        grads = utils.per_example_grads(model, x, lambda out: out.sum())          # (N, P): pNTK gradients
        proj = BasicProjector(grads.shape[1], k, seed=0, proj_type=ProjectionType.rademacher,
                              device=torch.device("cpu"))
        return lambda: proj.project(grads, model_id=0) / k ** 0.5                 # (N, K)
    return lambda: compute(spec, model, x)


def measure_here(spec) -> dict:
    """Time (best of ``reps``) and extra peak RSS of one spec, in this process.

    With ``spec["check"]`` (baseline rows) the structured kernel is then computed on the same
    inputs and its relative Frobenius difference from the timed kernel is returned as ``rel_err``;
    projected rows get their relative error against the exact kernel.
    """
    torch.set_num_threads(spec.get("threads", 1))
    model, x = build(spec)
    if spec["method"] not in ("sgemm", "proj_gemm", "trak_basic"):
        compute({**spec, "block": 2}, model, x[:2])                      # warm-up (lazy imports, torch.func)
    call = prepare(spec, model, x)
    base = psutil.Process().memory_info().rss
    times = []
    for _ in range(spec.get("reps", 1)):
        k = None
        t0 = time.perf_counter()
        k = call()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB
    out = {"seconds": min(times), "peak_mb": max(0, peak - base) / 2**20, "threads": torch.get_num_threads(),
           "kernel_mb": k.numel() * k.element_size() / 2**20 if spec["method"] in KERNEL_METHODS else 0.0}
    if spec.get("check"):
        s = ntk.kernel(model, x, kind=spec["kind"], method="structured", device="cpu")
        out["rel_err"] = rel_error(s, k)
    if spec["method"] in ("projected", "trak_basic"):
        exact = ntk.kernel(model, x, kind=spec["kind"], device="cpu")
        out["rel_err"] = rel_error(k if spec["method"] == "projected" else k @ k.T, exact)
    return out


def _pairs(n, block):
    b = math.ceil(n / block)
    return b * (b + 1) / 2


def _finish(spec, res) -> dict:
    """One CSV row: a measurement at ``n_run`` inputs, scaled to ``n`` by block pairs when they differ."""
    row = {**spec, **res, "seconds_run": res["seconds"], "peak_mb_run": res["peak_mb"],
           "extrapolated": spec["n_run"] != spec["n"]}
    if row["extrapolated"]:
        row["seconds"] = res["seconds"] * _pairs(spec["n"], spec["block"]) / _pairs(spec["n_run"], spec["block"])
        row["peak_mb"] = float("nan")                            # memory at n was not measured (see peak_mb_run)
    return row


def measure(spec) -> dict:
    """``measure_here`` in a fresh subprocess (so peak RSS belongs to this measurement only)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.get("threads", 1))}
    r = subprocess.run([sys.executable, __file__, "--measure", json.dumps(spec)],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark {spec} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _in_process(spec) -> dict:
    """``measure_here`` without the subprocess (smoke profile): times only, memory not measured."""
    return {**measure_here(spec), "peak_mb": float("nan")}


# ----------------------------------------------------------------------------- sections
def specs(cfg):
    """Every timed measurement of a Study05 config.

    Baselines (``jac_*``) run at ``min(n, baseline_max_n)`` inputs and are scaled to ``n`` by
    block pairs (``extrapolated``); ``autodiff`` runs only up to ``autodiff_max_n``. The
    ``extrap_check`` section measures the pNTK baseline directly at ``baseline_direct_n`` next to
    its extrapolation from ``baseline_max_n``, to validate the scaling.
    """
    out = []

    def add(section, model, width, depth, n, kind, methods, block=None, reps=1, n_run=None, check=False, **extra):
        for m in methods:
            base = m.startswith("jac")
            if m == "autodiff" and n > cfg.autodiff_max_n:
                continue
            b = block or (cfg.baseline_block if base else 256)
            nr = n_run or (min(n, cfg.baseline_max_n) if base else n)
            out.append(dict(section=section, model=model, width=width, depth=depth, n=n, n_run=nr,
                            kind=kind, method=m, block=b, reps=reps, seed=cfg.seed, check=check and base,
                            threads=cfg.threads, **extra))

    w, d, n = cfg.head_width, cfg.head_depth, cfg.head_n
    for kind in ("pntk", "trntk"):
        add("headline", "mlp", w, d, n, kind, ("structured", "unavoidable"), reps=cfg.repeats)
        add("headline", "mlp", w, d, n, kind, ("jac_contract",), check=True)
    add("headline", "cnn", cfg.cnn_width, 0, cfg.cnn_n, "trntk", ("structured",), reps=cfg.repeats)
    add("headline", "cnn", cfg.cnn_width, 0, cfg.cnn_n, "trntk", ("jac_contract",), check=True)
    if cfg.baseline_direct_n > cfg.baseline_max_n:
        nd = cfg.baseline_direct_n
        add("extrap_check", "mlp", w, d, nd, "pntk", ("jac_contract",), check=True)                       # extrapolated
        add("extrap_check", "mlp", w, d, nd, "pntk", ("jac_contract",), n_run=nd)                          # measured
    wl, dl = cfg.width_grid[-1], 2
    for n_ in cfg.n_grid:
        add("n", "mlp", wl, dl, n_, "pntk", ("structured", "autodiff", "jac_contract", "jac_layer"))
    for w_ in cfg.width_grid:
        add("width", "mlp", w_, dl, cfg.n_grid[-1], "pntk", ("structured", "jac_contract", "jac_layer"))
    for d_ in cfg.depth_grid:
        add("depth", "mlp", wl, d_, cfg.n_grid[-1], "pntk", ("structured", "jac_contract", "jac_layer"))
    for n_ in cfg.cnn_n_grid:
        add("cnn_n", "cnn", cfg.cnn_width, 0, n_, "trntk", ("structured", "jac_contract"))
    if cfg.big_n:
        add("big_n", "mlp", cfg.big_width, cfg.big_depth, cfg.big_n, "pntk", ("structured",))
    for kind in ("pntk", "trntk"):
        add("proj_cost", "mlp", w, d, cfg.proj_cost_n, kind, ("structured", "projected", "proj_gemm"),
            reps=cfg.repeats, proj_dim=cfg.proj_cost_k)
    if importlib.util.find_spec("trak") is not None:                     # traker (dev dependency) installed
        add("proj_cost", "mlp", w, d, cfg.proj_cost_n, "pntk", ("trak_basic",), proj_dim=cfg.proj_cost_k)
    add("sgemm", "none", 0, 0, cfg.sgemm_n, "", ("sgemm",), reps=cfg.repeats)
    return out


def agreement(cfg) -> pd.DataFrame:
    """Relative Frobenius difference of each method from the baseline (float32, same inputs).

    The headline's baseline rows already compare the structured kernel with the baseline at
    ``baseline_max_n`` inputs; this adds autodiff and structured on ``agree_n`` inputs."""
    rows = []
    for model_name, width, depth, kind in [("mlp", cfg.head_width, cfg.head_depth, "pntk"),
                                           ("mlp", cfg.head_width, cfg.head_depth, "trntk"),
                                           ("cnn", cfg.cnn_width, 0, "trntk")]:
        spec = dict(model=model_name, width=width, depth=depth, n_run=cfg.agree_n, seed=cfg.seed)
        model, x = build(spec)
        ref = jac_contract(model, x, kind, block=cfg.baseline_block)
        for m in ("structured", "autodiff"):
            k = ntk.kernel(model, x, kind=kind, method=m, device="cpu")
            rows.append(dict(section="agreement", model=model_name, width=width, depth=depth, n=cfg.agree_n,
                             kind=kind, method=m, rel_err=rel_error(k, ref)))
    return pd.DataFrame(rows)


def useful_flops(width, depth, n, kind, block, n_in=784, n_out=10) -> float:
    """FLOPs no exact method avoids for the symmetric (n, n) kernel of the bias MLP n_in-depth x width-n_out.

    Forward (2 din dout per example and layer), the backward passes to every layer's output
    (C' of them: 1 for pNTK, n_out for trNTK; 2 din dout per example, pass and layer but the
    first), and per layer and block pair (i <= j) the Gram products A_i A_j^T and G_i G_j^T
    (2 b_i b_j (din + 1) and 2 b_i b_j C' dout)."""
    dims = [n_in] + [width] * depth + [n_out]
    layers = list(zip(dims[:-1], dims[1:]))                               # (din, dout)
    c = 1 if kind == "pntk" else n_out
    sizes = [min(block, n - s) for s in range(0, n, block)]
    pairs = (n * n + sum(b * b for b in sizes)) / 2                       # sum_{i <= j} b_i b_j
    fwd = n * sum(2 * i * o for i, o in layers)
    bwd = n * c * sum(2 * i * o for i, o in layers[1:])
    gram = pairs * sum(2 * (i + 1) + 2 * c * o for i, o in layers)
    return float(fwd + bwd + gram)


def peak_fraction(cfg, timed) -> pd.DataFrame:
    """The headline structured MLP kernels' useful FLOP rate over the measured sgemm rate."""
    g = timed[timed.section == "sgemm"]
    if not len(g):
        return pd.DataFrame()
    peak = 2 * cfg.sgemm_n ** 3 / float(g["seconds"].iloc[0]) / 1e9
    rows = []
    for kind in ("pntk", "trntk"):
        h = timed[(timed.section == "headline") & (timed.model == "mlp") & (timed.kind == kind)
                  & (timed.method == "structured")]
        flops = useful_flops(cfg.head_width, cfg.head_depth, cfg.head_n, kind, int(h["block"].iloc[0]))
        sec = float(h["seconds"].iloc[0])
        rows.append(dict(section="peak_fraction", model="mlp", width=cfg.head_width, depth=cfg.head_depth,
                         n=cfg.head_n, kind=kind, method="structured", seconds=sec, useful_gflop=flops / 1e9,
                         gflops=flops / sec / 1e9, peak_gflops=peak, peak_fraction=flops / sec / 1e9 / peak,
                         threads=int(h["threads"].iloc[0])))
    return pd.DataFrame(rows)


def projection_error(cfg) -> pd.DataFrame:
    """Relative Frobenius error of proj-trNTK and proj-pNTK against the exact kernel, per K."""
    spec = dict(model="mlp", width=cfg.width_grid[0], depth=2, n_run=cfg.proj_n, seed=cfg.seed)
    model, x = build(spec)
    rows = []
    for kind in ("pntk", "trntk"):
        exact = ntk.kernel(model, x, kind=kind, device="cpu", dtype=torch.float64)
        for k in cfg.proj_dims:
            for s in range(cfg.proj_seeds):
                kp = ntk.kernel(model, x, kind=kind, proj_dim=k, seed=s, device="cpu", dtype=torch.float64)
                rows.append(dict(section="projection", model="mlp", width=spec["width"], depth=2, n=cfg.proj_n,
                                 kind=kind, method="structured", proj_dim=k, seed=s, rel_err=rel_error(kp, exact)))
    return pd.DataFrame(rows)


def run(cfg, log=print) -> pd.DataFrame:
    """Every section of the benchmark for one Study05 config, as one long table.

    Identical measurements (same spec apart from section and target n) run once and are
    reused, e.g. one baseline run at ``baseline_max_n`` serves every N it is scaled to
    (``extrap_check`` runs its own, next to the direct measurement it is compared with). The
    last row (section ``wall``) is this function's own wall-clock time."""
    t0 = time.perf_counter()
    rows, memo = [], {}
    for spec in specs(cfg):
        # extrap_check times its own n_run run right before the direct one (same machine state)
        drop = ("n",) if spec["section"] == "extrap_check" else ("section", "n")
        key = json.dumps({k: v for k, v in spec.items() if k not in drop}, sort_keys=True)
        if key not in memo:
            memo[key] = measure(spec) if cfg.isolate else _in_process(spec)
        row = _finish(spec, memo[key])
        log(f"{row['section']:12s} {row['model']} w={row['width']} d={row['depth']} n={row['n']} {row['kind']:5s} "
            f"{row['method']:12s} {row['seconds']:8.2f}s {row['peak_mb']:8.1f} MB"
            + (f" (extrapolated from n={row['n_run']})" if row["extrapolated"] else "")
            + (f" rel_err={row['rel_err']:.2e}" if "rel_err" in row else ""))
        rows.append(row)
    timed = pd.DataFrame(rows).drop(columns=["reps"])
    df = pd.concat([timed, peak_fraction(cfg, timed), agreement(cfg), projection_error(cfg)], ignore_index=True)
    wall = pd.DataFrame([dict(section="wall", method="total", seconds=time.perf_counter() - t0)])
    return pd.concat([df, wall], ignore_index=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=profiles.PROFILES)
    ap.add_argument("--out", default="", help="folder of the table (default: the profile's published bench/)")
    ap.add_argument("--measure", metavar="SPEC", help="internal: time one JSON spec in this process")
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_here(json.loads(args.measure))))
        return
    cfg = profiles.load("05", args.profile)
    df = run(cfg, log=lambda s: print(s, flush=True))
    df.insert(0, "config", s05_ntk.config_id(cfg))     # notebook 05 reads only a table of its own config
    df.insert(0, "profile", args.profile)
    out = Path(args.out or paths.published_dir(args.profile) / "bench") / "ntk.csv"
    _io.write_text(out, df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    print(f"wrote {out} ({df.loc[df.section == 'wall', 'seconds'].iloc[0]:.0f} s)")


if __name__ == "__main__":
    main()
