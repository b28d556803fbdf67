"""Out-of-core kernels (ntk.kernel_to_disk) against the in-memory engine, resuming, and Dask clusters (float64)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlens import models, ntk
from nnlens.ntk import outofcore
from nnlens.utils import rel_error as rel

F64 = torch.float64


def _mlp():
    torch.manual_seed(0)
    return models.MLP(12, 3, width=8, depth=2), torch.randn(21, 12), torch.randn(10, 12)


def _chunk_bytes(path) -> dict:
    """relative path -> bytes of every file of the stored kernel array (its chunks and metadata)."""
    root = Path(path) / "kernel"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kind", ntk.KINDS)
def test_equals_in_memory_kernel(kind, normalize, tmp_path):
    model, x1, x2 = _mlp()
    for name, args in (("sym", (x1,)), ("cross", (x1, x2))):
        ref = ntk.kernel(model, *args, kind=kind, normalize=normalize, dtype=F64, batch_size=8)
        k = ntk.kernel_to_disk(model, *args, kind=kind, normalize=normalize, dtype=F64, block=8, out=tmp_path / name)
        assert k.shape == tuple(ref.shape) and k.dtype == np.float64
        assert rel(k[:], ref) <= 1e-13
        assert not np.isnan(k[:]).any()


def _conv_bn():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 6 * 6, 3))


@pytest.mark.parametrize("name", ["cnn", "conv_bn"])
def test_conv_and_autodiff_factors(name, tmp_path):
    """Conv layers (im2col factors) and BatchNorm parameters (autodiff Jacobians) go through the store too."""
    torch.manual_seed(0)
    model, x = (models.SmallCNN(1, 3, width=2, image_size=8) if name == "cnn" else _conv_bn()), torch.randn(7, 1, 8, 8)
    ref = ntk.kernel(model, x, kind="trntk", normalize=True, dtype=F64, batch_size=3)
    k = ntk.kernel_to_disk(model, x, kind="trntk", normalize=True, dtype=F64, block=3, out=tmp_path / "k")
    assert rel(k[:], ref) <= 1e-12


@pytest.mark.parametrize("projection", ntk.PROJECTIONS)
def test_projected_kernels_out_of_core(projection, tmp_path):
    """R depends only on the seed and the shapes, so projecting block by block gives the same kernel."""
    model, x1, x2 = _mlp()
    ref = ntk.kernel(model, x1, x2, kind="trntk", proj_dim=40, seed=3, projection=projection, dtype=F64)
    k = ntk.kernel_to_disk(model, x1, x2, kind="trntk", proj_dim=40, seed=3, projection=projection, dtype=F64,
                           block=8, out=tmp_path / "k")
    assert rel(k[:], ref) <= 1e-12
    assert rel(k[:], ntk.kernel(model, x1, x2, kind="trntk", dtype=F64)) > 1e-3      # it is a projection


def test_a_failed_run_resumes_with_only_the_rest_and_the_same_bytes(tmp_path, monkeypatch):
    model, x1, _ = _mlp()
    kw = dict(kind="entk", normalize=True, dtype=F64, block=4, scheduler="sync")          # 6 row blocks, 21 blocks
    clean = ntk.kernel_to_disk(model, x1, out=tmp_path / "clean", **kw)
    write, calls = outofcore._write_block, []

    def failing(*args):
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated kill")
        calls.append(args[1:3])
        write(*args)
    monkeypatch.setattr(outofcore, "_write_block", failing)
    with pytest.raises(KeyboardInterrupt):
        ntk.kernel_to_disk(model, x1, out=tmp_path / "resumed", **kw)
    with pytest.raises(ntk.NTKError, match="incomplete"):
        ntk.open_kernel(tmp_path / "resumed")
    calls.clear()

    def counting(*args):
        calls.append(args[1:3])
        write(*args)
    monkeypatch.setattr(outofcore, "_write_block", counting)
    k = ntk.kernel_to_disk(model, x1, out=tmp_path / "resumed", **kw)
    assert len(calls) == 21 - 5 and len(set(calls)) == len(calls)                      # finished blocks skipped
    assert np.array_equal(k[:], clean[:])
    assert _chunk_bytes(tmp_path / "resumed") == _chunk_bytes(tmp_path / "clean")
    assert not (tmp_path / "resumed" / "factors").exists()                            # removed once complete


KILLED = """
import sys, time, torch
from nnlens import models, ntk
from nnlens.ntk import outofcore
write = outofcore._write_block
def slow(*args):
    write(*args)
    time.sleep(0.15)
outofcore._write_block = slow
torch.manual_seed(0)
model, x = models.MLP(12, 3, width=8, depth=2), torch.randn(40, 12)
ntk.kernel_to_disk(model, x, kind="trntk", normalize=True, dtype=torch.float64, block=4, out=sys.argv[1], workers=2)
"""


def test_a_killed_process_resumes(tmp_path):
    """SIGKILL part-way (a real kill, mid-write or not), then the same call finishes the kernel."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(outofcore.__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(out)], env=env)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        done = list((out / "done" / "c").rglob("*")) if (out / "done" / "c").exists() else []
        if sum(p.is_file() for p in done) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises(ntk.NTKError, match="incomplete"):
        ntk.open_kernel(out)
    torch.manual_seed(0)
    model, x = models.MLP(12, 3, width=8, depth=2), torch.randn(40, 12)
    k = ntk.kernel_to_disk(model, x, kind="trntk", normalize=True, dtype=F64, block=4, out=out)
    ref = ntk.kernel(model, x, kind="trntk", normalize=True, dtype=F64, batch_size=4)
    assert rel(k[:], ref) <= 1e-13


def test_local_cluster_gives_the_same_array(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    model, x1, _ = _mlp()
    kw = dict(kind="trntk", normalize=True, dtype=F64, block=4)
    local = ntk.kernel_to_disk(model, x1, out=tmp_path / "local", **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        by_arg = ntk.kernel_to_disk(model, x1, out=tmp_path / "arg", scheduler=cluster.scheduler_address, **kw)
        monkeypatch.setenv("NNLENS_DASK_SCHEDULER", cluster.scheduler_address)
        with distributed.get_task_stream(client) as stream:
            by_env = ntk.kernel_to_disk(model, x1, out=tmp_path / "env", **kw)
        ran = {t["key"] if isinstance(t["key"], str) else str(t["key"]) for t in stream.data}
    assert any("_row_task" in key for key in ran)                                      # it ran on the cluster
    assert np.array_equal(by_arg[:], local[:]) and np.array_equal(by_env[:], local[:])
    assert _chunk_bytes(tmp_path / "arg") == _chunk_bytes(tmp_path / "local")


def test_a_store_holds_one_kernel(tmp_path):
    model, x1, x2 = _mlp()
    ntk.kernel_to_disk(model, x1, kind="pntk", dtype=F64, block=8, out=tmp_path / "k")
    with pytest.raises(ntk.NTKError, match="normalize differ"):
        ntk.kernel_to_disk(model, x1, kind="pntk", normalize=True, dtype=F64, block=8, out=tmp_path / "k")
    with pytest.raises(ntk.NTKError, match="x1 differ"):
        ntk.kernel_to_disk(model, x1 + 1, kind="pntk", dtype=F64, block=8, out=tmp_path / "k")
    k = ntk.kernel_to_disk(model, x1, kind="pntk", normalize=True, dtype=F64, block=8, out=tmp_path / "k",
                           overwrite=True)
    assert rel(k[:], ntk.kernel(model, x1, kind="pntk", normalize=True, dtype=F64)) <= 1e-13
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ntk.NTKError, match="not a kernel store"):
        ntk.kernel_to_disk(model, x1, dtype=F64, block=8, out=tmp_path / "other")
    with pytest.raises(ntk.NTKError, match="no kernel store"):
        ntk.open_kernel(tmp_path / "nowhere")
    with pytest.raises(ntk.NTKError, match="workers"):
        ntk.kernel_to_disk(model, x1, out=tmp_path / "w", workers=0)
    with pytest.raises(ntk.NTKError, match="batch_size"):                              # block is checked as one
        ntk.kernel_to_disk(model, x1, out=tmp_path / "b", block=0)


def test_keep_factors_and_a_complete_store_is_not_recomputed(tmp_path, monkeypatch):
    model, x1, x2 = _mlp()
    k = ntk.kernel_to_disk(model, x1, x2, dtype=F64, block=8, out=tmp_path / "k", keep_factors=True)
    assert (tmp_path / "k" / "factors" / "2").exists()
    monkeypatch.setattr(outofcore, "_row_task", None)                                  # would fail if called
    monkeypatch.setattr(outofcore, "_factor_task", None)
    again = ntk.kernel_to_disk(model, x1, x2, dtype=F64, block=8, out=tmp_path / "k", keep_factors=True)
    assert np.array_equal(again[:], k[:])
    ntk.drop_factors(tmp_path / "k")
    assert not (tmp_path / "k" / "factors").exists() and np.array_equal(ntk.open_kernel(tmp_path / "k")[:], k[:])
