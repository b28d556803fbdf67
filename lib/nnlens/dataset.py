"""The ``Dataset`` type every loader returns, and the split helpers loaders share.

Kept apart from ``data`` (the registry of named sets) so that the loaders of real data
(``realsets``) and ``data.load`` can both use it without importing each other.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test tensors of one classification dataset.

    x_*: (N, C, H, W) float32 or (N, D); y_*: (N,) int64 in [0, n_classes).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def fingerprint(self) -> str:
        """A content hash of the tensors (keys caches of models trained on it)."""
        h = hashlib.sha256(self.name.encode())
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(t.cpu().numpy()).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, "
                f"test={tuple(self.x_test.shape)}, classes={self.n_classes})")


# ------------------------------------------------------------------ splits
def stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items with classes as balanced as the data allows (n=0: all, shuffled)."""
    if n <= 0 or n >= len(y):
        return rng.permutation(len(y))
    classes = np.unique(y)
    per = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    take, i = [], 0
    while len(take) < n:  # round-robin over classes
        for p in per:
            if i < len(p) and len(take) < n:
                take.append(p[i])
        i += 1
    return rng.permutation(np.array(take))


def standardize(x_train: torch.Tensor, x_test: torch.Tensor):
    mean, std = x_train.mean(), x_train.std().clamp_min(1e-8)
    return (x_train - mean) / std, (x_test - mean) / std
