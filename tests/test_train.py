from dataclasses import replace

import numpy as np
import pytest
import torch

from nnlens import data, features, models, train


@pytest.fixture(scope="module")
def digits():
    return data.digits(n_train=400, n_test=200, seed=0)


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet18"])
def test_models_output_shapes_and_taps(name):
    ds = data.clutter(8, 4) if name != "mlp" else data.digits(n_train=8, n_test=4)
    spec = models.spec_for(name, ds, width=4) if name != "mlp" else models.spec_for(name, ds, width=16)
    m = models.build(spec).eval()
    assert m(ds.x_train).shape == (8, 10)
    acts = features.activations(m, ds.x_train, pool=2, include_logits=True)
    assert set(acts) == set(m.taps) | {"logits"}
    assert all(a.shape[0] == 8 and a.dim() == 2 for a in acts.values())
    assert torch.allclose(acts["logits"], m(ds.x_train), atol=1e-5)


def test_resnet_taps_are_stem_blocks_and_penultimate():
    m = models.ResNet18(in_channels=1, width=4)
    assert m.taps[0] == "stem" and m.taps[-1] == "pool" and len(m.taps) == 10


def test_build_rejects_bad_specs():
    with pytest.raises(ValueError, match="valid models"):
        models.build({"name": "vgg"})
    with pytest.raises(ValueError, match="bad arguments for model 'mlp'"):
        models.build({"name": "mlp", "depthh": 2})
    with pytest.raises(KeyError, match="valid taps"):
        features.activations(models.MLP(4, 2), torch.zeros(1, 4), taps=["nope"])


def test_fit_learns_records_history_and_caches(digits):
    spec = models.spec_for("mlp", digits, width=64, depth=1)
    cfg = train.TrainConfig(optimizer="adam", lr=1e-2, epochs=5, batch_size=64)
    r = train.fit(spec, digits, cfg)
    assert not r.cached
    assert list(r.history["epoch"]) == [1, 2, 3, 4, 5]
    assert r.final["train_acc"] > 0.9 and r.final["test_acc"] > 0.85
    again = train.fit(spec, digits, cfg)
    assert again.cached and again.key == r.key
    for a, b in zip(r.model.parameters(), again.model.parameters()):
        assert torch.equal(a.detach().cpu(), b.detach().cpu())
    other = train.TrainConfig(optimizer="adam", lr=1e-2, epochs=5, batch_size=64, seed=1)
    assert train.fit(spec, digits, other).key != r.key


def test_fit_is_deterministic_without_cache(digits):
    spec = models.spec_for("mlp", digits, width=32, depth=1)
    cfg = train.TrainConfig(optimizer="sgdm", lr=0.05, epochs=2, batch_size=32)
    a = train.fit(spec, digits, cfg, cache=False)
    b = train.fit(spec, digits, cfg, cache=False)
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


@pytest.mark.parametrize("opt", sorted(train.OPTIMIZERS))
def test_every_optimizer_trains_full_batch_and_minibatch(opt, digits):
    spec = models.spec_for("mlp", digits, width=32, depth=1)
    torch.manual_seed(0)
    loss0, _ = train.evaluate(models.build(spec), digits.x_train, digits.y_train)
    for bs in (0, 100):
        cfg = train.TrainConfig(optimizer=opt, lr=0.01 if opt != "lbfgs" else 0.5, epochs=3, batch_size=bs,
                                schedule="constant")
        r = train.fit(spec, digits, cfg, cache=False)
        assert torch.isfinite(torch.tensor(r.history["train_loss"].to_numpy())).all()
        assert r.history["train_loss"].iloc[-1] < loss0, (opt, bs, loss0, r.history)


def test_bad_training_config_is_one_clear_error(digits):
    spec = models.spec_for("mlp", digits)
    with pytest.raises(ValueError, match="valid optimizers"):
        train.fit(spec, digits, train.TrainConfig(optimizer="rmsprop"), cache=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        train.fit(spec, digits, {"epochs": 1})


def test_fit_leaves_the_callers_random_stream_alone(digits):
    spec = models.spec_for("mlp", digits, width=16, depth=1)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train.fit(spec, digits, train.TrainConfig(optimizer="sgd", lr=0.1, epochs=1, batch_size=64), cache=False)
    assert torch.equal(torch.rand(3), expected)


def test_on_epoch_sees_init_and_every_epoch_and_regression_targets_work():
    td = data.teacher(64, 8, seed=0)
    spec = {"name": "twolayer", "d": 8, "h": 16, "activation": "tanh", "train_a": False}
    seen = []
    cfg = train.TrainConfig(optimizer="sgd", lr=0.5, epochs=3, batch_size=0, schedule="constant", loss="mse")
    r = train.fit(spec, td, cfg, cache=False, on_epoch=lambda e, m: seen.append((e, m.W.detach().clone())))
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    assert not torch.equal(seen[0][1], seen[-1][1]) and not r.diverged
    assert r.history["train_acc"].isna().all() and (r.history["train_loss"] < 1).all()
    torch.manual_seed(cfg.seed)                                  # same seed -> same W0 (the regimes share it)
    assert torch.equal(models.build(spec).W.detach(), seen[0][1])
    with pytest.raises(ValueError, match="cache=False"):
        train.fit(spec, td, cfg, on_epoch=lambda e, m: None)


def test_eval_every_keeps_training_and_callbacks_but_thins_the_history():
    td = data.teacher(64, 8, seed=0)
    spec = {"name": "twolayer", "d": 8, "h": 16, "activation": "tanh", "train_a": False}
    cfg = train.TrainConfig(optimizer="sgd", lr=0.5, epochs=7, batch_size=0, schedule="constant", loss="mse")
    seen = []
    full = train.fit(spec, td, cfg, cache=False)
    thin = train.fit(spec, td, cfg, cache=False, eval_every=3, on_epoch=lambda e, m: seen.append(e))
    assert seen == list(range(8)) and thin.history["epoch"].tolist() == [3, 6, 7]
    assert torch.equal(full.model.W, thin.model.W)                   # the same training
    assert np.allclose(thin.history["train_loss"], full.history.set_index("epoch").loc[[3, 6, 7], "train_loss"])
    with pytest.raises(ValueError, match="cache=False"):
        train.fit(spec, td, cfg, eval_every=2)


def test_divergence_stops_training_and_is_reported():
    td = data.teacher(64, 8, seed=0)
    spec = {"name": "twolayer", "d": 8, "h": 16, "activation": "relu", "train_a": True}
    cfg = train.TrainConfig(optimizer="sgd", lr=1e6, epochs=20, batch_size=0, schedule="constant", loss="mse")
    r = train.fit(spec, td, cfg, cache=False)
    assert r.diverged and len(r.history) < 20


def _slow_count(monkeypatch):
    """Counts per-example gradient evaluations the obvious way: every loss computed with grad enabled (a
    forward and backward over its batch) and every torch.autograd.grad call (a Hessian-vector product over the
    last batch)."""
    seen = {"n": 0, "last": 0}
    real_loss, real_grad = train.loss_fn, torch.autograd.grad

    def loss_fn(kind):
        f = real_loss(kind)

        def counted(out, y):
            if torch.is_grad_enabled():
                seen["n"] += len(y)
                seen["last"] = len(y)
            return f(out, y)
        return counted

    def grad(*a, **kw):
        seen["n"] += seen["last"]
        return real_grad(*a, **kw)
    monkeypatch.setattr(train, "loss_fn", loss_fn)
    monkeypatch.setattr(torch.autograd, "grad", grad)
    return seen


@pytest.mark.parametrize("opt,bs", [("sgdm", 50), ("adam", 0), ("lbfgs", 50), ("lbfgs", 0), ("adahessian", 50),
                                    ("sophiah", 30)])
def test_gradient_budget_counts_like_the_slow_count_and_stops_at_the_cap(opt, bs, digits, monkeypatch):
    spec = models.spec_for("mlp", digits, width=16, depth=1)
    seen = _slow_count(monkeypatch)
    cap = 2 * len(digits.x_train)                                      # the work of 2 epochs of a first-order run
    cfg = train.TrainConfig(optimizer=opt, lr=0.5 if opt == "lbfgs" else 0.01, epochs=10, batch_size=bs,
                            schedule="constant")
    h = train.fit(spec, digits, cfg, cache=False, max_grad_evals=cap, readings=4).history
    assert h["grad_evals"].iloc[-1] == seen["n"]                       # the fast count is the slow count
    b = train.effective_batch(len(digits.x_train), bs)
    per_step = {"sgdm": 1, "adam": 1, "adahessian": 2, "sophiah": 2, "lbfgs": 4}[opt]   # L-BFGS: one line search
    assert cap <= seen["n"] < cap + per_step * b                       # stopped once spent, within one update
    assert h["reading"].tolist() == [1, 2, 3, 4] and h["grad_evals"].is_monotonic_increasing
    marks = np.arange(1, 5) * cap / 4
    assert (h["grad_evals"].to_numpy() >= marks).all()                 # each reading at or after its mark
    if opt in ("sgdm", "adam"):
        assert h["epoch"].iloc[-1] == 2 and h["grad_evals"].iloc[-1] == cap    # first order: exactly 2 epochs
    if opt == "adahessian":
        assert h["epoch"].iloc[-1] == 1                                # a Hessian-vector product every step


def test_gradient_budget_of_first_order_epochs_is_the_uncapped_run(digits):
    spec = models.spec_for("mlp", digits, width=16, depth=1)
    cfg = train.TrainConfig(optimizer="sgdm", lr=0.05, epochs=3, batch_size=40, schedule="constant")
    plain = train.fit(spec, digits, cfg, cache=False)
    capped = train.fit(spec, digits, replace(cfg, epochs=50), cache=False, max_grad_evals=3 * len(digits.x_train),
                       readings=3)
    assert capped.history["test_acc"].tolist() == plain.history["test_acc"].tolist()
    for a, b in zip(plain.model.parameters(), capped.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_grad_evals"):
        train.fit(spec, digits, cfg, max_grad_evals=10)                # needs cache=False
