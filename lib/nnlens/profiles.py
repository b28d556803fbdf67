"""Named scales of every study: ``smoke``, ``default`` and ``paper``.

A profile is one frozen dataclass per study. ``load(study, profile)`` returns
it; ``load(..., **overrides)`` replaces fields after checking names and types.
Anything unknown fails with a message that lists what is valid.

- ``smoke``: tiny slices, for nbval in ``make test`` (each notebook well under a minute).
- ``default``: data that ships with the dependencies; the whole reproduce in minutes on 2 CPU cores.
- ``paper``: the papers' data and model sizes (CIFAR-10, full-width ResNet-18), for a GPU.

Each study owns its own dataclass below; fields are documented where they are declared.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass

PROFILES = ("smoke", "default", "paper")
STUDIES = ("01", "02", "03", "04", "05")


class ProfileError(ValueError):
    """An unknown profile or study, or a bad parameter value."""


# --------------------------------------------------------------------------- 01
@dataclass(frozen=True)
class Study01:
    """PCA surrogates and neural collapse (arXiv 2309.15328)."""

    dataset: str = "clutter"          # "clutter" (digits on a cluttered 32x32 canvas) or "cifar10"
    n_train: int = 3000               # training images (0 = all)
    n_test: int = 1000                # test images (0 = all)
    width: int = 16                   # ResNet-18 base width (64 = the paper's)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgdm"
    weight_decay: float = 5e-4
    seed: int = 0
    k_max: int = 256                  # largest number of PCs on the log grid
    knn_k: int = 10                   # neighbours of the kNN probe
    svm_c: float = 1.0                # C of the linear SVM probe
    pool: int = 4                     # conv taps are average-pooled to pool x pool before PCA (0 = no pooling)
    collapse_tol: float = 0.02        # agreement gap that marks the start of collapse


# --------------------------------------------------------------------------- 02
@dataclass(frozen=True)
class Study02:
    """eNTK surrogates and data attribution (arXiv 2305.14585)."""

    dataset: str = "clutter"
    n_train: int = 1000
    n_test: int = 500
    width: int = 16
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.05
    seeds: tuple = (0, 1, 2)
    proj_dims: tuple = (64, 256, 1024)
    poison_fraction: float = 0.05
    target_class: int = 0
    trigger_size: int = 4
    kglm_c: float = 1.0
    topk: int = 10


# --------------------------------------------------------------------------- 03
@dataclass(frozen=True)
class Study03:
    """Spectral dynamics of linear-width two-layer networks (arXiv 2211.06506)."""

    n: int = 800                      # training samples
    d: int = 400                      # input dimension
    h: int = 600                      # hidden width
    noise: float = 0.1
    steps: int = 300
    lr_small: float = 0.5
    lr_large: float = 8.0
    sgd_batch: int = 64
    adam_lr: float = 1e-3
    snapshots: int = 10
    seed: int = 0


# --------------------------------------------------------------------------- 04
@dataclass(frozen=True)
class Study04:
    """Optimizer variance by ANOVA (arXiv 2307.11684)."""

    dataset: str = "digits"
    model: str = "mlp"
    optimizers: tuple = ("sgdm", "adam", "lbfgs", "adahessian", "shampoo")
    batch_sizes: tuple = (16, 64, 256, 0)   # 0 = full batch
    seeds: int = 10
    epochs: int = 10
    n_jobs: int = 2


# --------------------------------------------------------------------------- 05
@dataclass(frozen=True)
class Study05:
    """The NTK engine (arXiv 2205.12372, torchNTK)."""

    n_grid: tuple = (100, 250, 500, 1000)
    width_grid: tuple = (128, 256, 512)
    depth_grid: tuple = (1, 2, 3, 4)
    proj_dims: tuple = (16, 64, 256, 1024, 4096)
    repeats: int = 3
    seed: int = 0


_CLASSES = {"01": Study01, "02": Study02, "03": Study03, "04": Study04, "05": Study05}

# Per-profile overrides of each study's defaults ("default" = the dataclass defaults).
_OVERRIDES: dict[str, dict[str, dict]] = {
    "01": {
        "smoke": dict(n_train=400, n_test=200, width=4, epochs=3, k_max=32),
        "default": {},
        "paper": dict(dataset="cifar10", n_train=0, n_test=0, width=64, epochs=200, lr=0.1,
                      k_max=2048, pool=0),
    },
    "02": {
        "smoke": dict(n_train=200, n_test=100, width=4, epochs=3, seeds=(0,), proj_dims=(32, 128)),
        "default": {},
        "paper": dict(dataset="cifar10", n_train=0, n_test=0, width=64, epochs=200, lr=0.1,
                      proj_dims=(2560, 5120, 10240)),
    },
    "03": {
        "smoke": dict(n=200, d=100, h=150, steps=40, snapshots=4),
        "default": {},
        "paper": dict(n=2000, d=1000, h=1500, steps=2000, snapshots=20),
    },
    "04": {
        "smoke": dict(optimizers=("sgdm", "adam", "lbfgs"), batch_sizes=(64, 0), seeds=2, epochs=2),
        "default": {},
        "paper": dict(dataset="cifar10", model="resnet18", seeds=10, epochs=50),
    },
    "05": {
        "smoke": dict(n_grid=(20, 40), width_grid=(32, 64), depth_grid=(1, 2), proj_dims=(16, 64), repeats=1),
        "default": {},
        "paper": dict(n_grid=(1000, 5000, 20000), width_grid=(512, 1024, 2048), depth_grid=(1, 2, 4, 8),
                      proj_dims=(256, 1024, 4096, 10240)),
    },
}


def _check_type(study: str, name: str, value, expected) -> None:
    origin = typing.get_origin(expected) or expected
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return  # an int literal is a fine float
    if isinstance(origin, type) and not isinstance(value, origin) or (
        isinstance(value, bool) and origin in (int, float)
    ):
        raise ProfileError(
            f"study {study}: parameter {name!r} must be {getattr(expected, '__name__', expected)}, "
            f"got {type(value).__name__} {value!r}"
        )


def validate_profile(profile: str) -> str:
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def resolve(profile: str = "default") -> str:
    """The profile to use: ``NNLENS_PROFILE`` from the environment wins when set.

    Notebooks call this right after their parameters cell, because nbval cannot
    inject parameters the way papermill does.
    """
    return validate_profile(os.environ.get("NNLENS_PROFILE") or profile)


def load(study: str, profile: str = "default", **overrides):
    """The frozen config of ``study`` ("01".."05") at ``profile``, with ``overrides`` applied."""
    study = str(study).zfill(2)
    if study not in _CLASSES:
        raise ProfileError(f"unknown study {study!r}; valid studies: {', '.join(STUDIES)}")
    validate_profile(profile)
    cls = _CLASSES[study]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {**_OVERRIDES[study][profile], **overrides}
    for name, value in values.items():
        if name not in fields:
            raise ProfileError(
                f"study {study}: unknown parameter {name!r}; valid parameters: {', '.join(fields)}"
            )
        _check_type(study, name, value, hints[name])
    cfg = cls(**values)
    return cfg


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
