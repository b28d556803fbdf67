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
