"""The paper's kGLM fitted out of core: mini-batches of kernel rows streamed from disk.

``StreamedSGDKGLM`` is ``surrogates.SGDKGLM`` (the recipe of Engel et al. 2023, arXiv 2305.14585,
github pnnl/projection_ntk: ``SGDClassifier(loss="log_loss", penalty="l2", alpha, class_weight=
"balanced")``, one-vs-rest on the rows of the normalized train x train kernel) for kernels that do
not fit in memory, e.g. the 60,000 x 60,000 train block of ``ntk.kernel_to_disk``'s MNIST kernel
(14.4 GB in float32). It reads ``batch_rows`` kernel rows at a time from any array that slices
(a ``zarr.Array``, a numpy memmap, a dask array) and feeds them to scikit-learn's
``SGDClassifier.partial_fit``: the same estimator, loss, penalty and learning-rate schedule as
``fit``, one SGD pass per call. Nothing is hand-written but the loop over batches and two things
``partial_fit`` does not do itself:

- ``class_weight="balanced"`` is refused by ``partial_fit`` (it sees one batch), so the weights
  n / (C n_c) are computed from all training labels up front (``compute_class_weight``) and
  passed as a dict -- the weights ``fit`` would use;
- epochs: each epoch visits the row batches in a seeded random order (``shuffle=True``; the
  estimator also shuffles the rows within a batch) or in order (``shuffle=False``, which with
  ``epochs=1`` is exactly ``SGDClassifier(max_iter=1, shuffle=False).fit`` on the whole block).

There is no convergence test: ``epochs`` passes are made, and each pass reads the training block
once (its bytes from disk or the page cache). ``logits`` streams the test x train block the same
way, so nothing of size N_test x N_train is held in memory. Faithfulness is ``surrogates.
faithfulness`` on the returned logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.utils.class_weight import compute_class_weight
from threadpoolctl import threadpool_limits

from .surrogates import _LinearKernelModel
from .utils import to_numpy


def _window(K, rows, cols) -> tuple[range, slice]:
    """The row range and column slice of ``K`` that hold the kernel block (None: all)."""
    n_rows, n_cols = K.shape[:2]
    r = range(n_rows)[rows] if rows is not None else range(n_rows)
    c = cols if cols is not None else slice(0, n_cols)
    if r.step != 1 or (c.step or 1) != 1:
        raise ValueError(f"rows and cols must be contiguous slices, got {rows!r} and {cols!r}")
    return r, c


def row_batches(K, rows=None, cols=None, batch_rows: int = 2048, order=None):
    """Yield (start, block) with block = K[rows][start:start + batch_rows, cols] as a numpy array.

    K: a 2-D array that slices (numpy, zarr, dask); rows, cols: slices of K (None: all);
    order: the batch numbers to visit (None: all, in order). Start is relative to ``rows``."""
    r, c = _window(K, rows, cols)
    starts = list(range(0, len(r), batch_rows))
    for b in (range(len(starts)) if order is None else order):
        s = starts[b]
        yield s, np.asarray(K[r.start + s:r.start + min(s + batch_rows, len(r)), c])


@dataclass
class StreamedSGDKGLM(_LinearKernelModel):
    """``SGDKGLM`` by mini-batches of kernel rows (module docstring). After ``fit``: ``W`` (C, N_train), ``b`` (C,).

    alpha: the L2 penalty; epochs: passes over the training rows; batch_rows: rows per
    ``partial_fit`` call (a multiple of the store's chunk edge reads whole chunks); shuffle: seeded
    batch order per epoch (and rows within a batch); scale: kernel values are divided by it
    (``surrogates.paper_scale``'s std for raw kernels; 1 for normalized ones); n_jobs: threads of
    the one-vs-rest fits.
    """

    alpha: float = 1e-4
    epochs: int = 5
    batch_rows: int = 2048
    shuffle: bool = True
    scale: float = 1.0
    seed: int = 0
    n_jobs: int = 1

    def fit(self, K, y, rows=None, cols=None,
            on_epoch: Callable[[int, StreamedSGDKGLM], None] | None = None) -> StreamedSGDKGLM:
        """K: the kernel (rows ``rows``, columns ``cols`` are the train x train block); y: (N_train,) labels.

        ``on_epoch(epoch, self)``: called after every epoch (1, 2, ...) with ``W``, ``b`` of that epoch."""
        y = to_numpy(y, np.int64)
        r, c = _window(K, rows, cols)
        n_cols = len(range(K.shape[1])[c])
        if len(r) != len(y) or n_cols != len(y):
            raise ValueError(f"the train block is {len(r)} x {n_cols} but there are {len(y)} labels")
        classes = np.unique(y)
        weights = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=y)))
        model = SGDClassifier(loss="log_loss", penalty="l2", alpha=self.alpha, class_weight=weights,
                              shuffle=self.shuffle, random_state=self.seed, n_jobs=self.n_jobs)
        rng = np.random.default_rng(self.seed)
        n_batches = -(-len(r) // self.batch_rows)
        with threadpool_limits(1):
            for epoch in range(1, self.epochs + 1):
                order = rng.permutation(n_batches) if self.shuffle else None
                for s, block in row_batches(K, rows, cols, self.batch_rows, order):
                    model.partial_fit(block / self.scale if self.scale != 1 else block, y[s:s + len(block)],
                                      classes=classes)
                self._store(model)
                if on_epoch is not None:
                    on_epoch(epoch, self)
        return self

    def logits(self, K_test, rows=None, cols=None) -> np.ndarray:
        """(N_test, C) logits K_test @ W.T + b, K_test's rows streamed (``rows``/``cols``: its test x train block)."""
        step = min(self.batch_rows, 512)                       # float64 copies of at most 512 rows
        parts = [to_numpy(block) / self.scale @ self.W.T + self.b for _, block in row_batches(K_test, rows, cols, step)]
        return np.concatenate(parts)
