"""Study 02's retraining job for the LDS (``lds.retrain``): its own module, so that editing the LDS analysis
does not change the job's code hash and the cached retrained networks stay valid (``sweeps.run`` keys jobs
by their module's code)."""
from __future__ import annotations

import dataclasses
import functools
import time

import torch

from ... import data, datamodels, models, surrogates, train, utils


def ten_class(dataset: str, n_train: int, n_test: int, pool: int = 1) -> data.Dataset:
    """Study 02's 10-class set: ``data.load`` at split seed 0, average-pooled ``pool`` x ``pool`` and standardized
    again (``data.pooled``). The one builder of that set: ``runs.settings`` (the studied networks, poisoning) and
    every LDS retraining job call it, so all of them see the same tensors."""
    return data.pooled(data.load(dataset, n_train, n_test, seed=0), pool)


@functools.lru_cache(maxsize=2)
def _lds_data(dataset: str, n_train: int, n_test: int, pool: int):
    return ten_class(dataset, n_train, n_test, pool)


def lds_train_job(*, dataset: str, n_train: int, n_test: int, model: str, width: int, epochs: int, batch_size: int,
                  lr: float, weight_decay: float, subset: int, subset_seed: int, fraction: float,
                  replicate: int = 0, pool: int = 1) -> dict:
    """Train one network on the ``subset``-th random subset of the training set; its test margins.

    A sweep job (``sweeps.run``): plain arguments in, JSON out. The data is ``ten_class(dataset, n_train, n_test,
    pool)``; the subset is
    ``datamodels.subset_mask(N_train, subset, subset_seed, fraction)``; the network's seed (init and batch
    order) is ``subset_seed * 100_000 + subset + 50_000 * replicate``. Returns {"margins": true-class margins
    on the test points (N_test,), "test_acc", "seconds"}.
    """
    t0 = time.perf_counter()
    ds = _lds_data(dataset, n_train, n_test, pool)
    mask = torch.from_numpy(datamodels.subset_mask(len(ds.y_train), subset, subset_seed, fraction))
    sub = dataclasses.replace(ds, x_train=ds.x_train[mask], y_train=ds.y_train[mask])
    spec = models.spec_for(model, ds, width=width)
    tcfg = train.TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                             seed=subset_seed * 100_000 + subset + 50_000 * replicate)
    net = train.fit(spec, sub, tcfg, cache=False, progress=False, device="cpu").model
    logits = utils.forward(net, ds.x_test)
    return {"margins": surrogates.true_class_margin(logits, ds.y_test).tolist(),
            "test_acc": float((logits.argmax(1) == ds.y_test).double().mean()), "seconds": time.perf_counter() - t0}


