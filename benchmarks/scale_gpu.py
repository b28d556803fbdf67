"""The exact trNTK of the 10-class MNIST MLP over all 70,000 points on one GPU, in memory.

    python benchmarks/scale_gpu.py [--smoke] [--device cuda] [--out reports/bench]

``benchmarks/scale.py``'s kernel section (the cosine-normalized trNTK of 784-3x512-10 over the 60,000
train + 10,000 test images, out of core on 2 CPU cores) on a CUDA device instead: the (70,000)^2
float32 kernel (19.6 GB) fits in an H200's memory, so it is one ``ntk.kernel`` call. Writes
``scale_gpu.csv``: seconds (after a warm-up call, synchronized), useful FLOPs (``benchmarks/ntk.py``'s
``useful_flops``, the count of the CPU rows), GFLOP/s against the same run's fp32 sgemm rate (TF32 off,
as the kernel runs), peak device memory, and the relative Frobenius error of a random 1,000 x 1,000
sub-block against the CPU float64 kernel of the same points (the slow reference). The network is
trained as ``scale.py`` trains it (SGD with momentum, lr 0.05, 10 epochs, batch 128, seed 0), on the
device. ``--smoke``: synthetic data, small sizes, any device (its test).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

os.environ.setdefault("NNLENS_PROGRESS", "0")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from nnlens import _io, data, ntk, paths, train, utils  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_ntk", Path(__file__).with_name("ntk.py"))
bench_ntk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ntk)                     # its useful_flops, not a copy

WIDTH, DEPTH = 512, 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sgemm_rate(device: torch.device, n: int, reps: int = 5) -> float:
    """GFLOP/s of an n x n x n float32 matrix product on ``device`` (best of ``reps`` after a warm-up)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def dataset(smoke: bool) -> data.Dataset:
    """MNIST (flattened, standardized by the library's loader), or small synthetic data (smoke)."""
    if smoke:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(700, 784, generator=g), torch.randint(0, 10, (700,), generator=g)
        return data.Dataset("synthetic", x[:600], y[:600], x[600:], y[600:], 10)
    ds = data.load("mnist")
    flat = lambda t: t.reshape(len(t), -1)                                         # noqa: E731
    return data.Dataset("mnist", flat(ds.x_train), ds.y_train, flat(ds.x_test), ds.y_test, 10)


def run(smoke: bool, device: torch.device, block: int, n_check: int) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False                                  # fp32, as the CPU rows
    ds = dataset(smoke)
    spec = {"name": "mlp", "in_dim": 784, "n_classes": 10, "width": 32 if smoke else WIDTH, "depth": DEPTH}
    t0 = time.perf_counter()
    with utils.seeded(0):
        fit = train.fit(spec, ds, train.TrainConfig(optimizer="sgdm", lr=0.05, epochs=1 if smoke else 10,
                                                    batch_size=128), progress=False, device=str(device))
    train_s = time.perf_counter() - t0
    model = fit.model.eval()
    x = torch.cat([ds.x_train, ds.x_test])                                         # (N, 784)
    n = len(x)
    ntk.kernel(model, x[:2 * block], kind="trntk", normalize=True, batch_size=block, device=device)   # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    t0 = time.perf_counter()
    K = ntk.kernel(model, x, kind="trntk", normalize=True, batch_size=block, device=device)   # (N, N)
    _sync(device)
    sec = time.perf_counter() - t0
    peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    idx = torch.from_numpy(np.sort(np.random.default_rng(0).choice(n, n_check, replace=False)))
    ref = ntk.kernel(model.cpu(), x[idx], kind="trntk", normalize=True, device="cpu", dtype=torch.float64)
    err = utils.rel_error(K[idx.to(K.device)][:, idx.to(K.device)].double().cpu().numpy(), ref.numpy())
    flops = bench_ntk.useful_flops(spec["width"], DEPTH, n, "trntk", block)
    peak = sgemm_rate(device, 512 if smoke else 8192)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return dict(section="kernel_gpu", device=name, model=f"mlp 784-{DEPTH}x{spec['width']}-10", kind="trntk",
                normalize=True, n=n, block=block, seconds=sec, useful_gflop=flops / 1e9, gflops=flops / sec / 1e9,
                sgemm_gflops=peak, peak_fraction=flops / sec / 1e9 / peak, peak_memory_bytes=peak_mem,
                kernel_bytes=n * n * 4, rel_err_vs_cpu_f64=err, n_check=n_check, train_seconds=train_s,
                net_test_acc=float(fit.final.get("test_acc", np.nan)), torch=torch.__version__)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="synthetic data, small sizes")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--block", type=int, default=0, help="kernel block (default 8192; smoke 128)")
    ap.add_argument("--out", default=str(paths.REPORTS / "bench"), help="folder of scale_gpu.csv")
    args = ap.parse_args(argv)
    row = run(args.smoke, torch.device(args.device), args.block or (128 if args.smoke else 8192),
              100 if args.smoke else 1000)
    print({k: row[k] for k in ("seconds", "gflops", "peak_fraction", "rel_err_vs_cpu_f64")}, flush=True)
    out = Path(args.out) / "scale_gpu.csv"
    _io.write_text(out, pd.DataFrame([row]).to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
