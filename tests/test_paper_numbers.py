"""Study 02's paper-number rows (issue 24): the paper models' exact eNTK, the paper's τ, the rows' verdicts, the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from nnlens import ntk
from nnlens.studies.s02_entk import Study02
from nnlens.studies.s02_entk import paper_job as pj
from nnlens.studies.s02_entk import paper_models as pm
from nnlens.studies.s02_entk import paper_numbers as pn

ROOT = Path(__file__).resolve().parents[1]


def _slow_entk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """float64 reference: one backward per input, the full gradient flattened, J Jᵀ."""
    m = pm.make_model("mlp" if isinstance(model, pm.PaperMLP) else "cnn", 0).double()
    m.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    rows = []
    for i in range(len(x)):
        m.zero_grad()
        m(x[i:i + 1].double())[0, 0].backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]))
    J = torch.stack(rows)
    return J @ J.T


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_paper_model_kernel_matches_float64_jacobian(kind):
    model = pm.make_model(kind, 3)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    fast = ntk.kernel(model, x, kind="trntk", dtype=torch.float32, device="cpu").double()
    slow = _slow_entk(model, x)
    assert fast.shape == (6, 6)
    torch.testing.assert_close(fast, slow, rtol=2e-4, atol=1e-4 * float(slow.abs().max()))
    K0, K1 = pj.cosine_blocks(slow.numpy(), 2)
    d = np.sqrt(np.diag(slow.numpy()))
    np.testing.assert_allclose(K1, slow.numpy()[:2, 2:] / d[:2, None] / d[None, 2:], rtol=1e-12)
    np.testing.assert_allclose(np.diag(K0), 1.0, rtol=1e-12)


def test_fmnist_setup_trains_the_centred_output():
    s = pm.SETUPS["fmnist2_cnn"]
    assert s.loss == "centred_mse" and s.optimizer == "adam" and not s.shuffle and s.epochs == 200
    assert pm.SETUPS["mnist2_cnn"].loss == "sigmoid_mse"
    out, out0, y = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5]), torch.tensor([1.0, 0.0])
    assert float(pm.loss_value(s, out, out0, y)) == 0.0
    assert float(pm.loss_value(pm.SETUPS["mnist2_cnn"], out, None, y)) > 0.1


def test_paper_tau_drops_saturated_points_and_overflow():
    rng = np.random.default_rng(0)
    logits, p = rng.normal(size=(50, 1)), rng.uniform(0.01, 0.99, size=(50, 1)).astype(np.float32)
    t, n = pj.tau_kglm(logits, p)
    assert n == 50 and t == pytest.approx(kendalltau(logits[:, 0], p[:, 0]).statistic)
    p[:5] = 1.0
    t, n = pj.tau_kglm(logits, p)
    assert n == 45 and t == pytest.approx(kendalltau(logits[5:, 0], p[5:, 0]).statistic)
    logits[7] = 800.0                       # exp overflows: the paper's code gets NaN and drops the seed
    assert np.isnan(pj.tau_kglm(logits, p)[0])
    proba = rng.uniform(size=50)
    proba[10] = 1.0
    assert pj.tau_ksvm(proba, p)[1] == 44


def test_seed_record_scores_the_centred_rule_beside_the_scripts_rule():
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0.0, 1.0] * 6)
    model, init = pm.make_model("cnn", 0), pm.make_model("cnn", 0)
    rec = pj.seed_record(model, x[:8], y[:8], x[8:], y[8:], 0, init=init)
    assert rec["net_test_acc_centred"] == 0.5          # f - f_init = 0 < 0.5: every point called class 0
    assert np.isnan(pj.seed_record(model, x[:8], y[:8], x[8:], y[8:], 0)["net_test_acc_centred"])
    assert set(rec) >= {"kglm_test_acc", "ksvm_test_acc", "tau_kglm", "tau_ksvm", "net_train_acc"}


def _table(setup, col, values, n_train=10_000, epochs=None, dataset="mnist01"):
    epochs = pm.SETUPS[setup].epochs if epochs is None else epochs
    return pd.DataFrame({"setup": setup, "dataset": dataset, "n_train": n_train, "n_test": 1960, "epochs": epochs,
                         col: values})


def test_rows_hold_near_the_paper_and_fail_far_from_it():
    cfg = Study02()
    near = pn.paper_row(_table("mnist2_mlp", "tau_kglm", [0.70, 0.72, 0.71]), cfg, "mnist2_mlp", "tau_kglm")
    far = pn.paper_row(_table("mnist2_mlp", "tau_kglm", [0.50, 0.52, 0.51]), cfg, "mnist2_mlp", "tau_kglm")
    assert near.kind == "paper number" and near.id == "02.13"
    assert near.verdict == "holds" and far.verdict == "does not hold"
    acc = pn.paper_row(_table("fmnist2_cnn", "net_test_acc", [0.9790, 0.9801]), cfg, "fmnist2_cnn", "net_test_acc")
    assert acc.verdict == "holds" and "97.95%" in acc.value
    reduced = pn.paper_row(_table("mnist2_mlp", "tau_kglm", [0.50, 0.52], n_train=200, epochs=1), cfg,
                           "mnist2_mlp", "tau_kglm")
    assert reduced.verdict == "inconclusive" and "200 of the paper's 10000" in reduced.note
    standin = pn.paper_row(_table("mnist2_mlp", "tau_kglm", [0.7, 0.7], dataset=pj.STANDIN), cfg, "mnist2_mlp",
                           "tau_kglm")
    assert standin.verdict == "untestable"
    # the tolerance: 3 SE of the difference with σ = max(ours, paper's sd = 0.0034 √100)
    c = pn.compare(np.array([0.70, 0.72, 0.71]), 0.7077, 0.0034, 100)
    assert c["tol"] == pytest.approx(3 * np.sqrt(0.034 ** 2 / 3 + 0.0034 ** 2))
    # the interval: mean ± t(0.975, n-1) sd / √n, written out
    x = np.array([0.70, 0.72, 0.71])
    half = 4.302652729911275 * x.std(ddof=1) / np.sqrt(3)
    assert (c["lo"], c["hi"]) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)


def test_published_table_keeps_seconds_out():
    t = pd.DataFrame({"setup": ["a", "a", "b"], "seed": [0, 1, 0], "tau_kglm": [0.7, 0.71, 0.8],
                      "kernel_s": [1.0, 2.0, 4.0], "surrogate_s": [0.5, 0.5, 1.0], "train_s_ensemble": [9.0, 9.0, 3.0]})
    table, seconds = pn.split_seconds(t)
    assert list(table.columns) == ["setup", "seed", "tau_kglm"]
    assert sorted(seconds.values()) == [2.0, 7.0, 12.0]      # surrogate 2, kernel 7, training 9 + 3 (once per setup)
    assert pn.split_seconds(table)[1] == {}


def test_cli_runs_at_tiny_size_without_notebook_packages(tmp_path):
    code = ("import sys; from nnlens.studies.s02_entk import paper_numbers as p; "
            f"p.main(['--profile', 'smoke', '--setups', 'mnist2_mlp', '--n-train', '40', '--n-test', '20', "
            f"'--device', 'cpu', '--out', {str(tmp_path)!r}]); "
            "bad = [m for m in ('zarr', 'dask', 'papermill') if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "NNLENS_PROGRESS": "0"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=600)
    per_seed = pd.read_csv(tmp_path / "02_paper_numbers.csv")
    rows = pd.read_csv(tmp_path / "02_paper_rows.csv", dtype={"id": str})
    assert list(per_seed["seed"]) == [0, 1] and per_seed["n_train"].iloc[0] == 40
    assert set(rows["id"]) == {"02.11", "02.12", "02.13", "02.14"} and set(rows["verdict"]) == {"untestable"}


def test_records_do_not_depend_on_the_number_of_processes(monkeypatch):
    from nnlens.studies.s02_entk import paper_job as job
    kw = dict(setup="mnist2_mlp", seeds=[0, 1], dataset=job.STANDIN, n_train=40, n_test=20, epochs=1)
    one = job.paper_job(**kw)["records"]
    monkeypatch.setattr(job, "SURROGATE_JOBS", 2)
    two = job.paper_job(**kw)["records"]
    drop = lambda recs: pd.DataFrame(recs).drop(columns=["kernel_s", "surrogate_s"])   # noqa: E731
    pd.testing.assert_frame_equal(drop(one), drop(two))
