"""Datasets built from real MNIST and Fashion-MNIST (``nnlens.realdata``), as ``nnlens.data.Dataset``.

- ``mnist``, ``fashion_mnist``: 10 classes, (N, 1, 28, 28), the official 60,000 / 10,000 split;
  ``n_train`` / ``n_test`` take class-balanced subsets drawn with ``seed``; pixels /255, then
  standardized with the training set's mean and std (as ``digits``).
- ``mnist01``, ``fmnist_tshirt_trouser``: the binary setups of the eNTK paper's code
  (github pnnl/projection_ntk, ``scripts/smallmodeltrain/Analyze_multiple_NTK_{MLP,CNN}_MNIST2.py`` and
  ``Analyze_multiple_NTK_CNN_FMNIST2.py``; arXiv 2305.14585): class 0 vs class 1 (digits 0/1; T-shirt/top
  vs trouser), the first 5000 images of each class in the training file and the first 980 (MNIST) or
  1000 (Fashion-MNIST) of each class in the test file, class 0's block then class 1's, labels 0/1,
  pixels x/255 in [0, 1] and *not* standardized, exactly as those scripts feed their models. Smaller
  ``n_train`` / ``n_test`` keep the first n/2 of each class (the same construction, nested); ``seed``
  does not change the data (the paper varies only the network's seed over one fixed subset).
- ``clutter_mnist``: cluttered translated MNIST (Mnih, Heess, Graves & Kavukcuoglu 2014, "Recurrent
  models of visual attention", arXiv:1406.6247; construction of github google-deepmind/mnist-cluttered):
  on a ``size`` x ``size`` black canvas (40 by default; the paper's 60 with ``size=60``), ``n_dist``
  distractors (``dist_w`` x ``dist_w`` crops at random positions of random other digits of the same
  split) are added at random positions, then the 28x28 digit at a uniformly random position,
  intensities clipped to [0, 1]; then standardized. Training
  canvases use training digits and test canvases test digits; everything is drawn from ``seed``.
"""
from __future__ import annotations

import numpy as np
import torch

from . import realdata
from .dataset import Dataset
from .dataset import standardize as _standardize
from .dataset import stratified_take as _stratified_take

NAMES = ("mnist", "fashion_mnist", "mnist01", "fmnist_tshirt_trouser", "clutter_mnist")
# Mnih et al. use 60x60 with 4 distractors of 8x8. 40x40 costs study 01's ResNet 2.25x less per image and
# still defeats raw-pixel kNN (measured, seed 0, 1000 test canvases, ResNet-18 width 8, 15 epochs SGD-m):
#   40x40, 1000 train: kNN(k=10) 0.307, network 0.774;  2000 train: kNN 0.403, network 0.911
#   60x60, 1000 train: kNN(k=10) 0.176, network 0.786
CLUTTER_SIZE = 40        # canvas side
CLUTTER_DIST = 4         # distractors per canvas
CLUTTER_DIST_W = 8       # distractor side
CLUTTER_DEFAULT_N = (5000, 1000)   # n_train, n_test when 0 is asked (a generator has no "all")
# the binary setups of pnnl/projection_ntk: (base set, per-class train, per-class test)
BINARY = {"mnist01": ("mnist", 5000, 980), "fmnist_tshirt_trouser": ("fashion_mnist", 5000, 1000)}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


def _tensor(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)


def ten_class(name: str, n_train: int = 0, n_test: int = 0, seed: int = 0, root=None) -> Dataset:
    """``mnist`` or ``fashion_mnist``: (N, 1, 28, 28), the official split, class-balanced subsets by ``seed``."""
    a = realdata.arrays(name, root)
    rng = np.random.default_rng(seed)
    tr = _stratified_take(a["y_train"], n_train, rng)
    te = _stratified_take(a["y_test"], n_test, rng)
    xt, xs = _standardize(_tensor(a["x_train"][tr]), _tensor(a["x_test"][te]))
    meta = {"seed": seed, "source": realdata.base(name).source, "pixels": "x/255, standardized (train mean, std)"}
    if name == "fashion_mnist":
        meta["classes"] = FASHION_CLASSES
    return Dataset(name, xt, torch.from_numpy(a["y_train"][tr].astype(np.int64)), xs,
                   torch.from_numpy(a["y_test"][te].astype(np.int64)), 10, meta)


def _first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` items of class 0, then of class 1, in file order."""
    idx = [np.flatnonzero(y == c)[:per_class] for c in (0, 1)]
    if min(map(len, idx)) < per_class:
        raise ValueError(f"asked for {per_class} per class; the file has {min(map(len, idx))}")
    return np.concatenate(idx)


def binary(name: str, n_train: int = 0, n_test: int = 0, seed: int = 0, root=None) -> Dataset:
    """``mnist01`` or ``fmnist_tshirt_trouser``: class 0 vs 1 as pnnl/projection_ntk builds it (x/255, in order)."""
    base, per_train, per_test = BINARY[name]
    for n, cap, what in ((n_train, 2 * per_train, "n_train"), (n_test, 2 * per_test, "n_test")):
        if n < 0 or n > cap or n % 2:
            raise ValueError(f"{name}: {what} must be an even number in 0..{cap} (0 = {cap}), got {n}")
    a = realdata.arrays(base, root)
    tr = _first_per_class(a["y_train"], n_train // 2 if n_train else per_train)
    te = _first_per_class(a["y_test"], n_test // 2 if n_test else per_test)
    meta = {"seed": seed, "source": "pnnl/projection_ntk scripts/smallmodeltrain (MNIST2 / FMNIST2)",
            "pixels": "x/255 in [0, 1], not standardized", "order": "class 0 block, then class 1 block"}
    return Dataset(name, _tensor(a["x_train"][tr]), torch.from_numpy(a["y_train"][tr].astype(np.int64)),
                   _tensor(a["x_test"][te]), torch.from_numpy(a["y_test"][te].astype(np.int64)), 2, meta)


def clutter_canvases(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, size: int = CLUTTER_SIZE,
                     n_dist: int = CLUTTER_DIST, dist_w: int = CLUTTER_DIST_W) -> tuple[np.ndarray, np.ndarray]:
    """``n`` cluttered canvases (n, size, size) float32 in [0, 1] and their labels, from digits ``x`` (M, h, w) uint8.

    Digits are taken class-balanced without repetition while ``n`` <= M (``_stratified_take``).
    """
    m, h, w = x.shape
    if size < max(h, w) or not 0 < dist_w <= min(h, w):
        raise ValueError(f"canvas {size} must hold a {h}x{w} digit and 0 < dist_w <= {min(h, w)}, got {dist_w}")
    pick = np.concatenate([_stratified_take(y, min(n - i, m), rng) for i in range(0, n, m)]) if n else np.array([], int)
    src = x.astype(np.float32) / 255.0
    canvas = np.zeros((n, size, size), np.float32)
    rows = np.arange(n)[:, None, None]
    r = np.arange(dist_w)
    for _ in range(n_dist):                                   # distractors first, as mnist-cluttered does
        other = rng.integers(0, m, n)
        sy, sx = rng.integers(0, h - dist_w + 1, n), rng.integers(0, w - dist_w + 1, n)
        ty, tx = rng.integers(0, size - dist_w + 1, n), rng.integers(0, size - dist_w + 1, n)
        patch = src[other[:, None, None], (sy[:, None] + r)[:, :, None], (sx[:, None] + r)[:, None, :]]
        canvas[rows, (ty[:, None] + r)[:, :, None], (tx[:, None] + r)[:, None, :]] += patch
    np.minimum(canvas, 1.0, out=canvas)
    py, px = rng.integers(0, size - h + 1, n), rng.integers(0, size - w + 1, n)
    canvas[rows, (py[:, None] + np.arange(h))[:, :, None], (px[:, None] + np.arange(w))[:, None, :]] += src[pick]
    np.minimum(canvas, 1.0, out=canvas)
    return canvas, y[pick].astype(np.int64)


def clutter_mnist(n_train: int = 0, n_test: int = 0, seed: int = 0, size: int = CLUTTER_SIZE,
                  n_dist: int = CLUTTER_DIST, dist_w: int = CLUTTER_DIST_W, root=None) -> Dataset:
    """Cluttered translated MNIST (N, 1, size, size), standardized; train canvases from training digits."""
    n_train, n_test = n_train or CLUTTER_DEFAULT_N[0], n_test or CLUTTER_DEFAULT_N[1]
    a = realdata.arrays("mnist", root)
    rng = np.random.default_rng([40_000, seed])
    xt, yt = clutter_canvases(a["x_train"], a["y_train"], n_train, rng, size, n_dist, dist_w)
    xs, ys = clutter_canvases(a["x_test"], a["y_test"], n_test, rng, size, n_dist, dist_w)
    xt, xs = _standardize(torch.from_numpy(xt).unsqueeze(1), torch.from_numpy(xs).unsqueeze(1))
    meta = {"seed": seed, "size": size, "n_dist": n_dist, "dist_w": dist_w,
            "source": "MNIST, cluttered as google-deepmind/mnist-cluttered (Mnih et al. 2014)"}
    return Dataset("clutter_mnist", xt, torch.from_numpy(yt), xs, torch.from_numpy(ys), 10, meta)


def load(name: str, n_train: int = 0, n_test: int = 0, seed: int = 0, root=None) -> Dataset:
    """One of ``NAMES`` (``root``: the raw data folder, default ``data/raw``)."""
    if name in ("mnist", "fashion_mnist"):
        return ten_class(name, n_train, n_test, seed, root)
    if name in BINARY:
        return binary(name, n_train, n_test, seed, root)
    if name == "clutter_mnist":
        return clutter_mnist(n_train, n_test, seed, root=root)
    raise ValueError(f"unknown real dataset {name!r}; valid: {', '.join(NAMES)}")
