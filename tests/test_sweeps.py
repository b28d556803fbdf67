"""sweeps: joblib and a real dask.distributed cluster give the same table; resume skips finished jobs.

Also the AdaHessian/SophiaH Hutchinson fix of train.py (a Rademacher probe that is really ±1).
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnlens import sweeps, train
from nnlens.studies.s04_anova import train_job

TINY = dict(dataset="digits", model="mlp", width=8, depth=1, epochs=1, eval_every=1, n_train=100, n_val=20,
            n_test=50, split="test", lr=0.1)   # study 04's training job (nnlens.studies.s04_anova.train_job)
TIMES = ["seconds", "cpu_seconds"]


def poly(x: int, y: float, counter: str = "", sleep: float = 0.0) -> dict:
    """A cheap job; appends one line per call to ``counter`` and raises once the number
    of calls exceeds the limit written in ``<counter>.fail`` (when that file exists)."""
    if counter:
        with open(counter, "a") as f:          # O_APPEND: safe from two processes
            f.write("1\n")
        limit = Path(counter + ".fail")
        if limit.exists() and _calls(counter) > int(limit.read_text()):
            raise RuntimeError("simulated crash")
    time.sleep(sleep)
    return {"z": x * x + y, "w": float(np.sin(x + y))}


def _calls(counter) -> int:
    p = Path(counter)
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_product_is_full_factorial_last_axis_fastest():
    assert sweeps.product(a=[1, 2], b="xy") == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                                  {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.fixture(scope="module")
def dask_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_backends_give_the_same_table(dask_address, monkeypatch):
    grid = sweeps.product(x=[1, 2, 3], y=[0.5, 1.5]) + [
        {**TINY, "optimizer": o, "batch_size": 32, "seed": s} for o in ("sgdm", "adahessian") for s in (0, 1)]
    grid_poly, grid_train = grid[:6], grid[6:]
    ref_p = sweeps.run(poly, grid_poly, backend="sequential")
    ref_t = sweeps.run(train_job, grid_train, backend="sequential").drop(columns=TIMES)
    assert list(ref_p.columns) == ["x", "y", "z", "w"] and list(ref_p["z"]) == [1.5, 2.5, 4.5, 5.5, 9.5, 10.5]
    for kw in ({"backend": "joblib", "n_jobs": 2}, {"backend": "dask", "address": dask_address}):
        assert sweeps.run(poly, grid_poly, **kw).equals(ref_p)
        out = sweeps.run(train_job, grid_train, **kw).drop(columns=TIMES)
        assert out.equals(ref_t), kw
    monkeypatch.setenv(sweeps.SCHEDULER_ENV, dask_address)   # backend="auto" follows the env var
    assert sweeps.run(poly, grid_poly).equals(ref_p)


def test_resume_skips_finished_jobs(tmp_path):
    store, counter = tmp_path / "store", tmp_path / "calls.txt"
    grid = [{"x": x, "y": 0.0, "counter": str(counter)} for x in range(6)]
    Path(str(counter) + ".fail").write_text("3")              # the 4th call crashes the sweep
    with pytest.raises(RuntimeError, match="simulated crash"):
        sweeps.run(poly, grid, backend="sequential", store=store)
    assert sorted(json.loads(p.read_text())["params"]["x"] for p in store.glob("*.json")) == [0, 1, 2]
    Path(str(counter) + ".fail").unlink()
    counter.unlink()
    df = sweeps.run(poly, grid, backend="joblib", n_jobs=2, store=store)
    assert _calls(counter) == 3                               # only x = 3, 4, 5 were computed
    assert list(df["z"]) == [x * x for x in range(6)]
    counter.unlink()
    assert sweeps.run(poly, grid, backend="sequential", store=store).equals(df)
    assert _calls(counter) == 0                               # everything came from the store


KILLED_SWEEP = """
import sys
sys.path.insert(0, {tests!r})
from test_sweeps import poly
from nnlens import sweeps
grid = [{{"x": x, "y": 0.0, "counter": {counter!r}, "sleep": 0.3}} for x in range(8)]
sweeps.run(poly, grid, backend="sequential", store={store!r})
"""


def test_sweep_killed_part_way_resumes_without_redoing_finished_jobs(tmp_path):
    store, counter = tmp_path / "store", tmp_path / "calls.txt"
    script = KILLED_SWEEP.format(tests=str(Path(__file__).parent), counter=str(counter), store=str(store))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while len(list(store.glob("[!.]*.json"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)                          # no clean-up: a power cut, an OOM kill
    proc.wait()
    done = sorted(json.loads(p.read_text())["params"]["x"] for p in store.glob("[!.]*.json"))
    assert 3 <= len(done) < 8 and done == list(range(len(done)))   # every stored job is whole
    counter.unlink()
    grid = [{"x": x, "y": 0.0, "counter": str(counter), "sleep": 0.3} for x in range(8)]
    df = sweeps.run(poly, grid, backend="sequential", store=store)
    assert _calls(counter) == 8 - len(done)                   # finished jobs were not redone
    assert list(df["z"]) == [x * x for x in range(8)]


def test_bad_backend_and_missing_address(monkeypatch):
    monkeypatch.delenv(sweeps.SCHEDULER_ENV, raising=False)
    with pytest.raises(ValueError, match="valid backends"):
        sweeps.run(poly, [{"x": 1, "y": 1}], backend="ray")
    with pytest.raises(ValueError, match=sweeps.SCHEDULER_ENV):
        sweeps.run(poly, [{"x": 1, "y": 1}], backend="dask")


@pytest.mark.parametrize("name", ["adahessian", "sophiah"])
def test_hutchinson_probe_estimates_the_hessian_diagonal(name):
    torch.manual_seed(0)
    a = torch.randn(5, 5)
    hess = a @ a.T + torch.eye(5)                              # dense: row sums differ from the diagonal
    w = torch.nn.Parameter(torch.randn(5))
    opt = train.make_optimizer([w], train.TrainConfig(optimizer=name, lr=0.1))
    loss = 0.5 * w @ hess @ w
    loss.backward(create_graph=True)
    opt.zero_hessian(opt.param_groups, opt.state)
    opt.compute_hutchinson_hessian(opt.param_groups, opt.state, num_samples=4000, distribution="rademacher")
    est = opt.state[w]["hessian"]
    assert torch.allclose(est, hess.diagonal(), atol=0.35 * float(hess.abs().max()) / 2)
    assert not torch.allclose(est, hess.sum(1), atol=0.5)     # what the package's constant -1 probe gives
