"""nnlens.realsets and their registration in nnlens.data / preflight, on tiny IDX files in tmp_path."""
import dataclasses

import numpy as np
import pytest
import torch

from nnlens import data, paths, realdata, realsets
from nnlens.workbook import preflight


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """Tiny MNIST and Fashion-MNIST in torchvision's layout under tmp_path/raw (also as paths.RAW)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "raw"
    for name, folder in (("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")):
        arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
                  "train-labels-idx1-ubyte": (np.arange(60) * 7 % 10).astype(np.uint8),
                  "t10k-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
                  "t10k-labels-idx1-ubyte": (np.arange(30) * 3 % 10).astype(np.uint8)}
        files = {f: realdata.to_idx(a) for f, a in arrays.items()}
        (root / folder / "raw").mkdir(parents=True)
        for f, b in files.items():
            (root / folder / "raw" / f).write_bytes(b)
        s = realdata.SETS[name]
        md5s = {f: realdata.md5(b) for f, b in files.items()}
        monkeypatch.setitem(realdata.SETS, name, dataclasses.replace(s, md5=md5s))
    monkeypatch.setattr(paths, "RAW", root)
    return root


def test_ten_class_sets_are_standardized_balanced_and_seeded(raw):
    full = data.load("mnist")
    assert full.x_train.shape == (60, 1, 28, 28) and full.x_test.shape == (30, 1, 28, 28) and full.n_classes == 10
    assert abs(float(full.x_train.mean())) < 1e-5 and abs(float(full.x_train.std()) - 1) < 1e-3
    a, b = data.load("fashion_mnist", 20, 10, seed=1), data.load("fashion_mnist", 20, 10, seed=1)
    assert torch.equal(a.x_train, b.x_train) and a.fingerprint == b.fingerprint
    assert np.bincount(a.y_train.numpy(), minlength=10).tolist() == [2] * 10
    assert a.fingerprint != data.load("fashion_mnist", 20, 10, seed=2).fingerprint
    assert a.meta["classes"][:2] == ("T-shirt/top", "Trouser")


def test_binary_sets_follow_the_papers_construction(raw):
    arr = realdata.arrays("mnist", raw)
    ds = data.load("mnist01", 8, 4)
    assert ds.n_classes == 2 and ds.y_train.tolist() == [0] * 4 + [1] * 4 and ds.y_test.tolist() == [0, 0, 1, 1]
    first0 = np.flatnonzero(arr["y_train"] == 0)[:4]
    first1 = np.flatnonzero(arr["y_train"] == 1)[:4]
    expect = np.concatenate([arr["x_train"][first0], arr["x_train"][first1]]).astype(np.float32) / 255
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(expect))            # x/255, file order, no standardizing
    assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1
    assert torch.equal(data.load("mnist01", 8, 4, seed=5).x_train, ds.x_train)  # seed: network only
    f = data.load("fmnist_tshirt_trouser", 6, 2)
    assert f.y_train.tolist() == [0, 0, 0, 1, 1, 1] and f.name == "fmnist_tshirt_trouser"
    with pytest.raises(ValueError, match="even number"):
        data.load("mnist01", 7, 2)
    with pytest.raises(ValueError, match="the file has 6"):             # the tiny file has 6 zeros
        data.load("mnist01", 14, 2)


def test_paper_sizes_are_the_default():
    assert realsets.BINARY == {"mnist01": ("mnist", 5000, 980), "fmnist_tshirt_trouser": ("fashion_mnist", 5000, 1000)}


def test_clutter_is_deterministic_sized_and_from_disjoint_splits(raw):
    a = realsets.clutter_mnist(50, 20, seed=3, size=60, n_dist=3, root=raw)
    b = data.load("clutter_mnist", 50, 20, seed=3)                             # the defaults: 40x40, 4 distractors
    assert a.x_train.shape == (50, 1, 60, 60) and a.x_test.shape == (20, 1, 60, 60)
    assert b.x_train.shape == (50, 1, 40, 40) and b.meta["n_dist"] == realsets.CLUTTER_DIST == 4
    again = realsets.clutter_mnist(50, 20, seed=3, size=60, n_dist=3, root=raw)
    assert torch.equal(a.x_train, again.x_train) and torch.equal(a.y_test, again.y_test)
    assert not torch.equal(a.x_train, realsets.clutter_mnist(50, 20, seed=4, size=60, n_dist=3, root=raw).x_train)
    assert np.bincount(a.y_train.numpy(), minlength=10).tolist() == [5] * 10
    assert abs(float(a.x_train.mean())) < 1e-5


def test_clutter_canvas_holds_the_digit_and_the_distractors():
    x = np.zeros((10, 28, 28), np.uint8)
    x[:, 10:18, 10:18] = 255                                                   # every digit: one 8x8 white block
    y = np.arange(10)
    clean, labels = realsets.clutter_canvases(x, y, 10, np.random.default_rng(0), size=50, n_dist=0)
    assert clean.shape == (10, 50, 50) and sorted(labels.tolist()) == list(range(10))
    assert (clean.sum((1, 2)) == 64).all() and clean.max() == 1                # the digit, intact, somewhere
    cluttered, _ = realsets.clutter_canvases(x, y, 10, np.random.default_rng(0), size=50, n_dist=6)
    assert (cluttered.sum((1, 2)) >= 64).all() and cluttered.max() <= 1 and cluttered.sum() > clean.sum()
    many, lab = realsets.clutter_canvases(x, y, 25, np.random.default_rng(1), size=28, n_dist=1)
    assert many.shape == (25, 28, 28) and np.bincount(lab).min() >= 2                 # n > M: cycles the digits
    with pytest.raises(ValueError, match="must hold"):
        realsets.clutter_canvases(x, y, 2, np.random.default_rng(0), size=20)


def test_missing_real_data_names_files_in_data_load_and_preflight(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RAW", tmp_path / "nothing")
    with pytest.raises(data.DataMissingError, match="t10k-labels-idx1-ubyte .md5 27ae3e4e"):
        data.load("mnist01")
    assert data.files("fmnist_tshirt_trouser") == []
    from nnlens.studies import profiles

    cfg = profiles.load("01", "default")
    monkeypatch.setattr(profiles, "load", lambda s, p: dataclasses.replace(cfg, dataset="clutter_mnist"))
    (msg,) = preflight.missing_data("01", "default")
    assert msg.startswith("mnist is not in") and "still run" in msg
    monkeypatch.setattr(realdata, "_run", lambda cmd, cwd: "offline")
    (problem,) = preflight.fetch_data("01", "default", log=lambda m: None)
    assert "could not be fetched (offline" in problem


def test_preflight_lists_the_four_files_when_present(raw):
    files = data.files("clutter_mnist")
    assert [f.name for f in files] == list(realdata.FILES) and files[0].parent == raw / "MNIST" / "raw"


def test_dataset_names_are_registered():
    assert set(realsets.NAMES) <= set(data.DATASETS) and set(realsets.NAMES) == set(realdata.BASE)
    with pytest.raises(ValueError, match="valid datasets: digits, digits01, clutter, cifar10, mnist,"):
        data.load("mnist3")
