"""Study 02's paper-number job: train one of the eNTK paper's binary setups at several seeds and measure, per seed,
what its analysis scripts measure (github pnnl/projection_ntk, ``scripts/smallmodeltrain/
Analyze_multiple_NTK_{MLP_MNIST2,CNN_MNIST2,CNN_FMNIST2}.py`` and ``experiments/create_table_metrics.ipynb``).

Its own module (a ``sweeps.run`` job, keyed by this module's code), so editing the rows in ``paper_numbers`` keeps
the cached trainings. What the scripts do, copied here:

- the exact eNTK of the trained network (one output, so the trace over outputs is the eNTK itself; summed over
  every parameter) on [test, train]; then normalized: K_train / sqrt(diag K_train diag K_train^T) and
  K_test,train / sqrt(diag K_test diag K_train^T) (cosine kernel);
- kGLM: ``SGDClassifier(loss="log_loss", penalty="l2", alpha=1e-4, fit_intercept=True, class_weight="balanced")``
  on the normalized train Gram, its test logit K1 w + b; kSVM: ``svm.SVC(kernel="precomputed",
  probability=True)``, its test ``predict_proba[:, 1]`` (the scripts seed numpy's global RNG with the network's
  seed before both; we pass ``random_state=seed``);
- network accuracies: sigmoid(model(x)) rounded, against the labels, on the training slice and the test slice;
- τ (``make_no_forward_fit`` / ``make_no_forward_fitSVM``): Kendall's τ-b between the surrogate's output and the
  network's float32 sigmoid output p, after dropping points where p is exactly 0 or 1 or the surrogate's output
  is exactly 0 or 1. For the kGLM the surrogate's output is ``softmax_numpy(logits)`` = exp(l) / Σ_test exp(l),
  a monotone map of the logits taken over the whole test vector in float64: when a logit exceeds ~709 the
  exponential overflows, every output becomes 0 or NaN, τ is NaN and the paper's table drops that seed (its mean
  is over the seeds with a finite τ). Both are reproduced exactly, and the seed's ``tau_*`` is NaN then.
"""
from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from scipy.stats import kendalltau
from sklearn import svm
from sklearn.linear_model import SGDClassifier

from ... import data, ntk
from . import paper_models

# Processes for the per-seed records (kernel, kGLM, kSVM): 1 in the studies; the CLI's --jobs on a machine with
# spare cores (the kSVM's Platt scaling on a 10,000-point kernel is CPU minutes per seed). Seeds are independent,
# so the records do not depend on it.
SURROGATE_JOBS = 1

# Batch-4 steps are too small for intra-op threads: on the shared 2-core machine (load ~9) 2 threads cost 10-40x
# the CPU time of 1 (measured, 2-seed ensemble: MLP 112 vs 2.8 ms/step, MNIST2 CNN 383 vs 14, FMNIST2 CNN 213 vs 23).
TRAIN_THREADS = 1
STANDIN = "digits01_28"      # the smoke profile's stand-in: sklearn digits 0/1 upsampled to 1x28x28 in [0, 1]


@functools.lru_cache(maxsize=2)
def load_binary(dataset: str, n_train: int, n_test: int):
    """(x_train, y_train, x_test, y_test) as the scripts feed them: (N, 1, 28, 28) float32 in [0, 1], labels 0./1.

    ``dataset``: ``mnist01``, ``fmnist_tshirt_trouser`` (the scripts' slice; 0 = all 10,000 / 1,960 or 2,000) or
    ``STANDIN`` (sklearn's 8x8 digits 0 and 1, rescaled to [0, 1] and upsampled bilinearly to 28x28: not MNIST)."""
    if dataset == STANDIN:
        ds = data.load("digits01", n_train, n_test, seed=0)
        lo, hi = float(ds.x_train.min()), float(ds.x_train.max())
        up = lambda x: F.interpolate((x - lo) / (hi - lo), size=(28, 28), mode="bilinear",  # noqa: E731
                                     align_corners=False).clamp(0, 1)
        xs = (up(ds.x_train), up(ds.x_test))
    else:
        ds = data.load(dataset, n_train, n_test, seed=0)
        xs = (ds.x_train, ds.x_test)
    return (xs[0].float().contiguous(), ds.y_train.float(), xs[1].float().contiguous(), ds.y_test.float())


def cosine_blocks(K: np.ndarray, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The scripts' normalization of the [test, train] kernel: (K0 train x train, K1 test x train), float64."""
    K = np.asarray(K, dtype=np.float64)
    K0, K1, d2 = K[n_test:, n_test:], K[:n_test, n_test:], np.diag(K)[:n_test]
    d0 = np.diag(K0)
    return K0 / np.sqrt(d0)[:, None] / np.sqrt(d0)[None, :], K1 / np.sqrt(d2)[:, None] / np.sqrt(d0)[None, :]


def tau_kglm(logits: np.ndarray, p_nn: np.ndarray) -> tuple[float, int]:
    """τ of ``make_no_forward_fit``: (τ, points kept); NaN when exp overflows (see the module docstring)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.exp(np.asarray(logits, np.float64)) / np.sum(np.exp(np.asarray(logits, np.float64)))
    return _tau(X, p_nn)


def tau_ksvm(proba1: np.ndarray, p_nn: np.ndarray) -> tuple[float, int]:
    """τ of ``make_no_forward_fitSVM``: the kSVM's class-1 probability against the network's sigmoid output."""
    return _tau(np.asarray(proba1, np.float64), p_nn)


def _tau(X: np.ndarray, Y: np.ndarray) -> tuple[float, int]:
    X, Y = X.reshape(-1), np.asarray(Y).reshape(-1)
    keep = ~((Y == 1.0) | (Y == 0) | (X == 0) | (X == 1.0))
    X, Y = X[keep], Y[keep]
    if len(X) < 2 or np.isnan(X).any() or np.isnan(Y).any():
        return float("nan"), int(keep.sum())
    return float(kendalltau(X, Y).statistic), int(keep.sum())


def surrogates(K: np.ndarray, y_train: np.ndarray, y_test: np.ndarray, p_nn: np.ndarray, seed: int) -> dict:
    """The paper's kGLM and kSVM on the [test, train] eNTK ``K``: their test accuracies and τ."""
    K0, K1 = cosine_blocks(K, len(y_test))
    glm = SGDClassifier(loss="log_loss", penalty="l2", alpha=1e-4, fit_intercept=True, class_weight="balanced",
                        random_state=seed).fit(K0, y_train)
    logits = K1 @ glm.coef_.T + glm.intercept_
    with warnings.catch_warnings():      # scikit-learn >= 1.9 deprecates probability=True; it is the paper's recipe
        warnings.simplefilter("ignore", FutureWarning)
        ksvm = svm.SVC(kernel="precomputed", probability=True, random_state=seed).fit(K0, y_train)
    t_glm, n_glm = tau_kglm(logits, p_nn)
    t_svm, n_svm = tau_ksvm(ksvm.predict_proba(K1)[:, 1], p_nn)
    return {"kglm_test_acc": float((glm.predict(K1) == y_test).mean()),
            "ksvm_test_acc": float((ksvm.predict(K1) == y_test).mean()),
            "tau_kglm": t_glm, "tau_kglm_points": n_glm, "tau_ksvm": t_svm, "tau_ksvm_points": n_svm,
            "kglm_iters": int(glm.n_iter_)}


def seed_record(model: torch.nn.Module, x_tr, y_tr, x_te, y_te, seed: int, device: str = "cpu",
                init: torch.nn.Module | None = None) -> dict:
    """One trained network's row: network accuracies, exact eNTK, kGLM / kSVM accuracies and τ.

    ``init``: the seed's initial network, for a setup trained on the centred output: then
    ``net_test_acc_centred`` (f - f_init > 0.5, the rule its training targets imply) is recorded beside the
    scripts' uncentred rule, as a diagnostic (no row uses it)."""
    model = model.eval()
    with torch.no_grad():
        out_te = model(x_te)
        p_te, p_tr = torch.sigmoid(out_te), torch.sigmoid(model(x_tr))   # float32, as the scripts
        centred = (float(((out_te - init(x_te))[:, 0] > 0.5).float().eq(y_te).float().mean())
                   if init is not None else float("nan"))
    t0 = time.perf_counter()
    K = ntk.kernel(model, torch.cat([x_te, x_tr]), kind="trntk", device=device, dtype=torch.float32,
                   progress=False).cpu().numpy()
    t_kernel = time.perf_counter() - t0
    rec = {"seed": int(seed), "net_train_acc": float(((p_tr[:, 0] > 0.5).float() == y_tr).float().mean()),
           "net_test_acc": float(((p_te[:, 0] > 0.5).float() == y_te).float().mean()), "net_test_acc_centred": centred}
    rec |= surrogates(K, y_tr.numpy(), y_te.numpy(), p_te.numpy(), seed)
    return rec | {"kernel_s": t_kernel, "surrogate_s": time.perf_counter() - t0 - t_kernel}


def paper_job(*, setup: str, seeds: list, dataset: str, n_train: int, n_test: int, epochs: int,
              device: str = "cpu") -> dict:
    """A ``sweeps.run`` job: train ``setup`` (a ``paper_models.SETUPS`` key) at ``seeds`` at once for ``epochs`` on
    ``dataset``'s first ``n_train`` / ``n_test`` images (0 = the scripts' full slice), then one ``seed_record`` per
    seed (kernels on ``device``, with the caller's threads; training with ``TRAIN_THREADS``).
    Returns {"records": [...], "train_s": seconds of the ensemble training}."""
    x_tr, y_tr, x_te, y_te = load_binary(dataset, n_train, n_test)
    t0, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        nets = paper_models.train_ensemble(paper_models.SETUPS[setup], [int(s) for s in seeds], x_tr, y_tr,
                                           epochs=epochs, device=device)
    finally:
        torch.set_num_threads(threads)
    train_s = time.perf_counter() - t0
    spec = paper_models.SETUPS[setup]
    inits = [paper_models.make_model(spec.model, int(s)).eval() if spec.loss == "centred_mse" else None
             for s in seeds]
    records = Parallel(n_jobs=SURROGATE_JOBS)(delayed(seed_record)(m, x_tr, y_tr, x_te, y_te, s, device, i)
                                              for m, s, i in zip(nets, seeds, inits))
    return {"records": records, "train_s": train_s, "n_train": len(y_tr), "n_test": len(y_te)}
