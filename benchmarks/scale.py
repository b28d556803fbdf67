"""Kernels at data-set scale: the exact trNTK of a 10-class MNIST MLP over all 70,000 points, out of core.

    .venv/bin/python benchmarks/scale.py [--smoke] [--keep] [--sections kernel,projection,peak]

Writes three tables under reports/bench/ (``--out`` redirects them), each with the run's
load average (the machine is shared: a loaded machine lowers every rate):

- ``scale.csv``: section ``kernel`` -- ``ntk.kernel_to_disk`` of the cosine-normalized trNTK of
  784-3x512-10 (trained here, or loaded from the training cache) over the 60,000 train + 10,000 test
  images: wall time, useful FLOPs (``benchmarks/ntk.py``'s ``useful_flops``), GFLOP/s, fraction of the
  same run's peak (``workers`` single-thread sgemms side by side, measured before and after; the higher
  is the peak), bytes written (kernel, diagonal, markers and the per-input factors, deleted at the end);
  ``kglm`` -- ``StreamedSGDKGLM`` (the paper's SGD recipe, alpha 1e-4) fitted on the 60,000 x 60,000
  train rows streamed from the store, test accuracy and Kendall tau against the network per epoch;
  ``tau`` -- the same recipe in memory on a subset (the first ``sub_train`` train and ``sub_test`` test
  points; projecting all 70,000 would cost more than the exact kernel, see below): the exact kernel
  (read from the store) beside the projected trNTKs at K = 1024 ... 10240 (Khatri-Rao and LoGra's
  kron at every K; the dense R only up to ``dense_tau_max_k``, its P K cost per input being the limit).
- ``scale_projection.csv``: section ``cost`` -- exact, dense, kron, khatri_rao and TRAK 0.3.2's CPU
  ``BasicProjector`` (pNTK, the smallest N: it needs the (N, P) gradients) kernels on N test images,
  single-threaded, seconds and relative Frobenius error against the exact kernel; ``error`` -- that
  error against K for each projection and seed.
- ``scale_peak.csv``: the structured trNTK/pNTK of the MLP, the small CNN and the ResNet-18 as a
  fraction of single-thread sgemm (useful FLOPs counted by ``useful_flops_model``: forward, backward
  passes to every layer output but the first, and per layer the route the engine takes -- Gram
  products per block pair, or per-example gradients formed once and paired -- plus the inner products
  of the autodiff-handled parameters; for the MLP it equals ``benchmarks/ntk.py``'s count, checked).

MNIST: ``nnlens.data.load("mnist")`` -- all 60,000 + 10,000 images in the seed-0 shuffled order, x/255
standardized with the train pixels' mean and std (``nnlens.realsets``); when the files are missing,
``nnlens.realdata``'s error says how to fetch them (``make data``). ``--smoke``: every section on
synthetic data (its test).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import shutil
import threading
import time
from pathlib import Path

os.environ.setdefault("NNLENS_PROGRESS", "0")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from nnlens import _io, data, models, ntk, paths, surrogates, train, utils  # noqa: E402
from nnlens.ntk import factors  # noqa: E402
from nnlens.surrogates_stream import StreamedSGDKGLM  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_ntk", Path(__file__).with_name("ntk.py"))
bench_ntk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ntk)                     # its useful_flops and sgemm timing, not a copy


@dataclasses.dataclass(frozen=True)
class Config:
    n_train: int = 60000
    n_test: int = 10000
    width: int = 512
    depth: int = 3
    train_epochs: int = 10
    block: int = 2048
    workers: int = 2
    kglm_epochs: int = 5
    sub_train: int = 4000
    sub_test: int = 1000
    ks: tuple = (1024, 2048, 4096, 10240)
    dense_tau_max_k: int = 1024
    cost_n: tuple = (48, 1000)
    cost_ks: tuple = (1024, 10240)
    dense_cost_max_nk: int = 1_100_000                  # dense projection cost rows only up to N K (P N K FLOPs)
    err_n: int = 48
    err_ks: tuple = (256, 1024, 4096, 10240)
    err_seeds: int = 2
    peak_n: tuple = (("mlp", 1000, 256), ("cnn", 500, 256), ("resnet18", 64, 32))   # model, N, block
    resnet_width: int = 16
    reps: int = 2
    synthetic: bool = False


SMOKE = Config(n_train=300, n_test=100, width=32, depth=2, train_epochs=1, block=64, kglm_epochs=2, sub_train=120,
               sub_test=40, ks=(64, 256), dense_tau_max_k=64, cost_n=(16,), cost_ks=(64,), err_n=16, err_ks=(16, 64),
               err_seeds=1, peak_n=(("mlp", 64, 32), ("cnn", 16, 8), ("resnet18", 4, 2)), resnet_width=4, reps=1,
               synthetic=True)

# ----------------------------------------------------------------------------- data and network
def load_mnist(cfg: Config) -> data.Dataset:
    """``nnlens.data.load("mnist")`` (N, 1, 28, 28), or synthetic data of that shape (smoke); the MLP flattens."""
    if cfg.synthetic:
        g, n = torch.Generator().manual_seed(0), cfg.n_train + cfg.n_test
        x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
        return data.Dataset("synthetic", x[:cfg.n_train], y[:cfg.n_train], x[cfg.n_train:], y[cfg.n_train:], 10)
    return data.load("mnist")


def network(cfg: Config, ds: data.Dataset) -> torch.nn.Module:
    """The trained MLP 784-depth x width-10 (train.fit: SGD with momentum, cosine schedule; cached)."""
    spec = {"name": "mlp", "in_dim": 784, "n_classes": 10, "width": cfg.width, "depth": cfg.depth}
    with utils.seeded(0):
        torch.set_num_threads(cfg.workers)
        res = train.fit(spec, ds, train.TrainConfig(optimizer="sgdm", lr=0.05, epochs=cfg.train_epochs,
                                                    batch_size=128), progress=False, device="cpu")
    return res.model.eval()


# ----------------------------------------------------------------------------- rates and FLOPs
def sgemm_rate(parallel: int = 1, n: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of ``parallel`` single-thread n x n sgemms side by side (benchmarks/ntk.py's sgemm), best of reps."""
    torch.set_num_threads(1)
    calls = [bench_ntk.prepare({"method": "sgemm", "n": n}, None, None) for _ in range(parallel)]
    best = math.inf
    for _ in range(reps):
        threads = [threading.Thread(target=c) for c in calls]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return parallel * 2 * n ** 3 / best / 1e9


def useful_flops_model(model, x, kind: str, n: int, block: int) -> float:
    """Useful FLOPs of the symmetric (n, n) structured kernel of ``model`` on inputs like ``x`` (module docstring)."""
    spec = ntk.KINDS[kind]
    feat = factors.Features(model.eval(), spec, structured=True)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.append((name, i[0], o)))
             for name, m in feat.layers.items()]
    with torch.no_grad():
        y = model(x[:1])
    for h in hooks:
        h.remove()
    c = 1 if spec.sum_logits else y.shape[1]                                            # C' backward passes
    sizes = [min(block, n - s) for s in range(0, n, block)]
    pairs = (n * n + sum(b * b for b in sizes)) / 2
    fwd = bwd = gram = 0.0
    for k, (name, inp, out) in enumerate(shapes):
        m = feat.layers[name]
        a, g = factors._layer_ag(m, inp, out.detach()[:, None])                        # (1, T, da), (1, 1, T, dg)
        t, da, dg = a.shape[1], a.shape[2], g.shape[-1]
        macs = t * (da - (m.bias is not None)) * dg                                    # one example's forward
        fwd += 2 * n * macs
        bwd += 2 * n * c * macs if k else 0.0                                          # not through the first layer
        f = factors.choose(factors.Gram(name, a, g.expand(1, c, t, dg)), spec)
        gram += pairs * (2 * t * t * (da + c * dg) if isinstance(f, factors.Gram) else 2 * c * dg * da)
        gram += 0 if isinstance(f, factors.Gram) else 2 * n * c * t * dg * da             # forming the gradients
    rest = sum(p.numel() for q, p in model.named_parameters() if q in feat.rest)
    return float(fwd + bwd + gram + pairs * 2 * c * rest)


def _timed(fn, reps: int = 1):
    """(best seconds of ``reps`` calls, the last result)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


# ----------------------------------------------------------------------------- sections
def kernel_section(cfg: Config, ds, model, out: Path) -> dict:
    """The exact normalized trNTK over train + test, out of core; its cost against the run's sgemm peak."""
    x = torch.cat([ds.x_train, ds.x_test])                                             # (N, 1, 28, 28)
    n = len(x)
    done0 = 0
    if (out / "done").exists():
        import zarr
        done0 = int(np.triu(zarr.open_array(out / "done", mode="r")[:]).sum())
    peak0, load0 = sgemm_rate(cfg.workers), os.getloadavg()[0]
    t0 = time.perf_counter()
    ntk.kernel_to_disk(model, x, kind="trntk", normalize=True, block=cfg.block, workers=cfg.workers, threads=1,
                       device="cpu", out=out, keep_factors=True, progress=not cfg.synthetic)
    sec = time.perf_counter() - t0
    load1, peak1 = os.getloadavg()[0], sgemm_rate(cfg.workers)
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())       # noqa: E731
    written, factor_bytes = size(out), size(out / "factors")
    ntk.drop_factors(out)
    flops = bench_ntk.useful_flops(cfg.width, cfg.depth, n, "trntk", cfg.block)
    nb = math.ceil(n / cfg.block)
    peak = max(peak0, peak1)
    return dict(section="kernel", model=f"mlp 784-{cfg.depth}x{cfg.width}-10", kind="trntk", normalize=True, n=n,
                block=cfg.block, workers=cfg.workers, threads=1, seconds=sec, useful_gflop=flops / 1e9,
                gflops=flops / sec / 1e9, peak_gflops=peak, peak_gflops_before=peak0, peak_gflops_after=peak1,
                peak_fraction=flops / sec / 1e9 / peak, bytes_written=written, kernel_bytes=n * n * 4,
                factor_bytes=factor_bytes, blocks=nb * (nb + 1) // 2, blocks_resumed=done0,
                load_before=load0, load_after=load1)


def kglm_section(cfg: Config, ds, model, store) -> list[dict]:
    """The paper's SGD kGLM on the train rows streamed from the store; accuracy and tau after every epoch."""
    n_tr, n = len(ds.y_train), len(ds.y_train) + len(ds.y_test)
    net = utils.forward(model, ds.x_test)                                               # (N_test, C)
    rows, t0 = [], time.perf_counter()

    def report(epoch, kglm):
        t = time.perf_counter() - t0
        f = surrogates.faithfulness(net, kglm.logits(store, rows=slice(n_tr, n), cols=slice(0, n_tr)), ds.y_test)
        rows.append(dict(section="kglm", kernel="trntk exact", n_train=n_tr, n_test=n - n_tr, epoch=epoch,
                         seconds=t, acc_sur=f["acc_sur"], acc_net=f["acc_net"], tad=f["tad"], tau=f["tau"],
                         load_after=os.getloadavg()[0]))
        print(f"kglm epoch {epoch}: acc {f['acc_sur']:.4f} (net {f['acc_net']:.4f}) tau {f['tau']:.3f} {t:.0f}s",
              flush=True)
    StreamedSGDKGLM(alpha=1e-4, epochs=cfg.kglm_epochs, batch_rows=cfg.block, n_jobs=cfg.workers).fit(
        store, ds.y_train, rows=slice(0, n_tr), cols=slice(0, n_tr), on_epoch=report)
    return rows


def tau_section(cfg: Config, ds, model, store) -> list[dict]:
    """Exact against projected trNTK kGLMs (in memory, the paper's recipe) on the first sub_train/sub_test points."""
    n_tr, a, b = len(ds.y_train), cfg.sub_train, cfg.sub_test
    x = torch.cat([ds.x_train[:a], ds.x_test[:b]])
    y_tr, y_te = ds.y_train[:a], ds.y_test[:b]
    net = utils.forward(model, ds.x_test[:b])
    exact = np.concatenate([np.concatenate([store[:a, :a], store[:a, n_tr:n_tr + b]], 1),
                            np.concatenate([store[n_tr:n_tr + b, :a], store[n_tr:n_tr + b, n_tr:n_tr + b]], 1)])
    runs = [("exact", None, 0.0, exact)]
    for k in cfg.ks:
        for proj in ("khatri_rao", "kron", "dense"):
            if proj == "dense" and k > cfg.dense_tau_max_k:
                continue
            sec, kp = _timed(lambda: ntk.kernel(model, x, kind="trntk", normalize=True, proj_dim=k, projection=proj,
                                                device="cpu"))
            runs.append((proj, k, sec, kp.numpy()))
    rows = []
    for proj, k, sec, K in runs:
        sgd = surrogates.SGDKGLM(alpha=1e-4).fit(K[:a, :a], y_tr)
        f = surrogates.faithfulness(net, sgd.logits(K[a:, :a]), y_te)
        rows.append(dict(section="tau", kernel=f"trntk {proj}", proj_dim=k, n_train=a, n_test=b, seconds=sec,
                         rel_err=utils.rel_error(K, exact) if k else 0.0, acc_sur=f["acc_sur"], acc_net=f["acc_net"],
                         tad=f["tad"], tau=f["tau"], load_after=os.getloadavg()[0]))
        print(f"tau {proj} K={k}: tau {f['tau']:.3f} acc {f['acc_sur']:.4f} ({sec:.1f}s)", flush=True)
    return rows


def _trak(model, x, k):
    """TRAK 0.3.2's CPU BasicProjector on the (N, P) pNTK gradients; the kernel z z^T."""
    from trak.projectors import BasicProjector, ProjectionType
    grads = utils.per_example_grads(model, x, lambda out: out.sum())                    # (N, P)
    proj = BasicProjector(grads.shape[1], k, seed=0, proj_type=ProjectionType.rademacher, device=torch.device("cpu"))
    z = proj.project(grads, model_id=0) / k ** 0.5                                      # (N, K)
    return z @ z.T


def projection_cost(cfg: Config, ds, model) -> list[dict]:
    """Exact, dense, kron, Khatri-Rao and TRAK kernels on N test images, one thread: seconds and error."""
    torch.set_num_threads(1)
    rows = []
    for n in cfg.cost_n:
        x = ds.x_test[:n]
        for kind in ("pntk", "trntk"):
            sec, exact = _timed(lambda: ntk.kernel(model, x, kind=kind, device="cpu"), cfg.reps)
            rows.append(dict(section="cost", n=n, kind=kind, method="exact", seconds=sec, rel_err=0.0,
                             load_after=os.getloadavg()[0]))
            for k in cfg.cost_ks:
                for proj in ("dense", "kron", "khatri_rao", "trak_basic"):
                    if (proj == "dense" and n * k > cfg.dense_cost_max_nk) or (
                            proj == "trak_basic" and (kind != "pntk" or n != cfg.cost_n[0])):
                        continue
                    fn = (lambda: _trak(model, x, k)) if proj == "trak_basic" else (
                        lambda: ntk.kernel(model, x, kind=kind, proj_dim=k, projection=proj, device="cpu"))
                    sec_p, kp = _timed(fn, 1 if proj in ("dense", "trak_basic") else cfg.reps)
                    rows.append(dict(section="cost", n=n, kind=kind, method=proj, proj_dim=k, seconds=sec_p,
                                     vs_exact=sec_p / sec, rel_err=utils.rel_error(kp, exact),
                                     load_after=os.getloadavg()[0]))
                    print(f"cost n={n} {kind} {proj} K={k}: {sec_p:.2f}s ({sec_p / sec:.1f}x exact) "
                          f"err {rows[-1]['rel_err']:.3f}", flush=True)
    return rows


def projection_error(cfg: Config, ds, model) -> list[dict]:
    """Relative Frobenius error of each projection against the exact kernel (float64), per K and seed."""
    torch.set_num_threads(cfg.workers)
    x, rows = ds.x_test[:cfg.err_n], []
    for kind in ("pntk", "trntk"):
        exact = ntk.kernel(model, x, kind=kind, device="cpu", dtype=torch.float64)
        for k in cfg.err_ks:
            for proj in ("dense", "kron", "khatri_rao"):
                for s in range(cfg.err_seeds):
                    kp = ntk.kernel(model, x, kind=kind, proj_dim=k, seed=s, projection=proj, device="cpu")
                    rows.append(dict(section="error", n=cfg.err_n, kind=kind, method=proj, proj_dim=k, seed=s,
                                     rel_err=utils.rel_error(kp, exact), load_after=os.getloadavg()[0]))
    return rows


def peak_section(cfg: Config, ds) -> list[dict]:
    """Structured kernels of the MLP, small CNN and ResNet-18 as a fraction of single-thread sgemm."""
    torch.set_num_threads(1)
    peak = sgemm_rate(1, reps=3)
    rows = [dict(model="none", method="sgemm", n=2048, gflops=peak, threads=1)]
    torch.manual_seed(0)
    for name, n, block in cfg.peak_n:
        if name == "mlp":
            model, x = models.MLP(784, 10, width=cfg.width, depth=cfg.depth), torch.randn(n, 784)
            for kind in ("pntk", "trntk"):                                              # the two counts agree
                assert math.isclose(useful_flops_model(model, x, kind, n, block),
                                    bench_ntk.useful_flops(cfg.width, cfg.depth, n, kind, block), rel_tol=1e-12)
        elif name == "cnn":
            model, x = models.SmallCNN(1, 10, width=16, image_size=28), torch.randn(n, 1, 28, 28)
        else:
            model, x = models.ResNet18(3, 10, width=cfg.resnet_width), torch.randn(n, 3, 32, 32)
        model.eval()
        for kind in ("pntk", "trntk"):
            ntk.kernel(model, x[:2], kind=kind, batch_size=2, device="cpu")              # warm-up
            sec, _ = _timed(lambda: ntk.kernel(model, x, kind=kind, batch_size=block, device="cpu"), cfg.reps)
            flops = useful_flops_model(model, x, kind, n, block)
            rows.append(dict(model=name, method="structured", kind=kind, n=n, block=block, threads=1, seconds=sec,
                             params=sum(p.numel() for p in model.parameters()), useful_gflop=flops / 1e9,
                             gflops=flops / sec / 1e9, peak_gflops=peak, peak_fraction=flops / sec / 1e9 / peak))
            print(f"peak {name} {kind} n={n}: {flops / sec / 1e9:.1f} GFLOP/s = {rows[-1]['peak_fraction']:.0%} "
                  f"of {peak:.1f}", flush=True)
    return [{**r, "load_after": os.getloadavg()[0]} for r in rows]


def _write(folder: Path, name: str, rows: list[dict], wall: float) -> None:
    df = pd.concat([pd.DataFrame(rows), pd.DataFrame([dict(section="wall", seconds=wall)])], ignore_index=True)
    out = Path(folder) / name
    _io.write_text(out, df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    print(f"wrote {out}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="every section on synthetic data, small sizes")
    ap.add_argument("--keep", action="store_true", help="keep the kernel store (data/cache/scale/) afterwards")
    ap.add_argument("--sections", default="kernel,projection,peak")
    ap.add_argument("--out", default=str(paths.REPORTS / "bench"), help="folder of the tables (default reports/bench)")
    args = ap.parse_args(argv)
    cfg = SMOKE if args.smoke else Config()
    sections = set(args.sections.split(","))
    ds = load_mnist(cfg)
    model = network(cfg, ds)
    if "kernel" in sections:
        t0, out = time.perf_counter(), paths.cache_dir() / "scale" / ("smoke.zarr" if cfg.synthetic else "mnist.zarr")
        rows = [kernel_section(cfg, ds, model, out)]
        print({k: rows[0][k] for k in ("seconds", "gflops", "peak_fraction", "bytes_written")}, flush=True)
        rows += kglm_section(cfg, ds, model, ntk.open_kernel(out)) + tau_section(cfg, ds, model, ntk.open_kernel(out))
        _write(args.out, "scale.csv", rows, time.perf_counter() - t0)
        if not args.keep:
            shutil.rmtree(out)
    if "projection" in sections:
        t0 = time.perf_counter()
        _write(args.out, "scale_projection.csv", projection_cost(cfg, ds, model) + projection_error(cfg, ds, model),
               time.perf_counter() - t0)
    if "peak" in sections:
        t0 = time.perf_counter()
        _write(args.out, "scale_peak.csv", peak_section(cfg, ds), time.perf_counter() - t0)


if __name__ == "__main__":
    main()
