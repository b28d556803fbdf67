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

from . import paths

PROFILES = ("smoke", "default", "paper")
STUDIES = ("01", "02", "03", "04", "05")


class ProfileError(ValueError):
    """An unknown profile or study, or a bad parameter value."""


# --------------------------------------------------------------------------- 01
@dataclass(frozen=True)
class Study01:
    """PCA surrogates and neural collapse (arXiv 2309.15328)."""

    dataset: str = "clutter"          # "clutter" (digits on a cluttered 32x32 canvas) or "cifar10"
    n_train: int = 1000               # training images (0 = all); 1000 (test acc ~0.72, raw kNN 0.43) rather than
                                      # 2000 (~0.88, 0.50) so that 3 seeds fit the 2-core budget
    n_test: int = 1000                # test images (0 = all)
    width: int = 8                    # ResNet-18 base width (64 = the paper's); 8 fits the 2-core budget
    epochs: int = 15                  # zero training error on the default data (train acc 1.000 at 1000 and 2000 images)
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgdm"
    weight_decay: float = 5e-4
    seed: int = 0                     # the data split, randomized PCA and the SVM's CV folds
    seeds: tuple = (0, 1, 2)          # network seeds (init and batch order); claims report their spread
    k_max: int = 64                   # kNN/NCC on every k = 1..k_max PCs (v* of 01.1); the SVM on a log sub-grid
    knn_k: int = 10                   # neighbours of the kNN probe
    svm_cs: tuple = (0.01, 0.1, 1.0)  # C grid of the linear SVM probe, chosen per layer by CV on train
    cv_folds: int = 3                 # stratified folds of that cross-validation
    pool: int = 0                     # conv taps average-pooled to pool x pool before PCA (0 = the full maps)
    collapse_tol: float = 0.02        # surrogates agree when max - min of kNN/NCC/SVM accuracy <= this
    nc1_onset: float = 1.0            # NC1-based onset: first layer from which NC1 stays <= this


# --------------------------------------------------------------------------- 02
@dataclass(frozen=True)
class Study02:
    """eNTK surrogates and data attribution (arXiv 2305.14585)."""

    # The 10-class set: "digits" (8x8; a width-8 SmallCNN reaches ~0.95 test accuracy on 600 images),
    # "clutter" (32x32; a width-8 SmallCNN on 500 images reaches only ~0.35, it needs >= 2000 images and a
    # ResNet for ~0.86, too costly for the kernels and kGLMs on 2 cores) or "cifar10" at paper scale.
    dataset: str = "digits"
    model: str = "cnn"                # "cnn" (SmallCNN) or "resnet18"
    n_train: int = 600                # training images (0 = all 1347); kGLM fits cost ~N_train^2 per iteration
    n_test: int = 300                 # test images (0 = all 450)
    width: int = 8                    # SmallCNN / ResNet-18 base width
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    seeds: tuple = (0, 1, 2)          # training seeds (the data split stays at seed 0)
    proj_dims: tuple = (32, 128, 512)  # K of proj-trNTK / proj-pNTK; kGLMs use the largest
    n_proj_error: int = 200           # training points on which projection error vs K is measured
    binary_dataset: str = "digits01"  # the paper's small binary setting (0 vs 1)
    binary_models: tuple = ("mlp", "cnn")
    mlp_width: int = 64
    binary_width: int = 8             # SmallCNN width on the binary set
    binary_epochs: int = 20
    binary_batch_size: int = 32
    recipes: tuple = ("cv", "sgd_1e-4", "sgd_1e-2")  # kGLM recipes: C by cross-validation; the paper's SGD at α
    kglm_cs: tuple = (0.1, 1.0, 10.0, 100.0)  # the C grid of the cross-validated kGLM (scikit-learn C)
    cv_folds: int = 3                 # stratified folds of that cross-validation (training split only)
    n_boot: int = 1000                # bootstrap resamples of test points for CIs of τ differences
    svm_c: float = 1.0                # C of the kernel SVM
    poison_fraction: float = 0.05     # fraction of the training set poisoned (taken from non-target classes)
    target_class: int = 0
    trigger_size: int = 2             # side of the checkerboard patch, pixels (2 of 8; 4 for 32x32 images)
    n_attack: int = 60                # successful triggered test images ranked for attribution (at most)
    poison_seeds: tuple = (0, 1, 2, 3, 4)  # seeds of the poisoning runs (a paired t-test across them)
    poison_recipes: tuple = ("cv", "sgd_1e-2")  # kGLMs of the poisoning attribution (the paper's used α = 1e-2)
    topk: int = 10                    # precision@k of poisoned training points
    n_explain: int = 3                # test images in the explain-by-example figure
    lds_subsets: int = 50             # LDS: networks retrained on random subsets of the training set
    lds_fraction: float = 0.5         # LDS: each subset's share of the training set
    lds_seed: int = 0                 # LDS: seed of the subsets (and of TRAK's projection)
    lds_jobs: int = 2                 # LDS: parallel training processes
    trak_proj_dim: int = 256          # TRAK's projection dimension K (< N_train, so ΦᵀΦ is invertible)


# --------------------------------------------------------------------------- 03
@dataclass(frozen=True)
class Study03:
    """Spectral dynamics of linear-width two-layer networks (arXiv 2211.06506).

    Step sizes of GD/SGD are multiples of the edge of stability n / λmax(NTK at init) of
    full-batch GD on MSE (computed per model and size): "small" = 0.05x (far below the edge),
    "large" = 1.5x (mid catapult window 1x-2x, Lewkowycz et al. 2020: the catapult regime).
    The edge is Θ(n) in this parametrization (N(0, 1) weights, Wx/√d), i.e. a step Θ(1) in the
    paper's units (``studies.s03_runs``). The spike regime is one full-batch step of size
    spike_kappa (hd)^¼ / ‖∇W L(W0)‖op (Ba et al. 2022). Adam's lr is chosen on ``adam_lrs`` by
    validation error. The width ladder trains (n, d, h) x k / max(ladder) for k in ``ladder``.
    """

    n: int = 800                      # training samples (teacher data; validation, refit and test sets of the same size)
    d: int = 400                      # input dimension
    h: int = 600                      # hidden width (only W is trained; a stays at init)
    noise: float = 0.1
    link: str = "tanh"                # teacher g in y = g(βᵀx) + noise
    activation: str = "tanh"          # student σ: tanh, relu or gelu (spectra.ACTIVATIONS)
    readout: str = "standard"         # a ~ N(0, 1) ("standard", the paper's) or N(0, 1/h) ("mean_field", f0 ~ 0)
    epochs: int = 100                 # passes over the data (1 GD step, n/batch SGD/Adam steps each)
    lr_small: float = 0.05            # × edge of stability
    lr_large: float = 1.5             # × edge of stability (catapult regime)
    spike_kappa: float = 3.0          # one-step spike: ‖ΔW‖op = kappa (hd)^¼ (Ba et al. 2022)
    sgd_batch: int = 64               # mini-batch of SGD and Adam at the top size (scaled with k on the ladder)
    adam_lrs: tuple = (0.001, 0.01, 0.1)   # Adam's lr grid, chosen by validation error (refit readout)
    seeds: int = 3                    # seeds (data, teacher direction, init, batch order): seed, seed+1, ...
    ladder: tuple = (1, 2, 4, 8)      # width ladder multipliers; the largest is (n, d, h)
    null_draws: int = 20              # Gaussian matrices behind the heavy-tail null
    snapshots: int = 5
    fine_ntk_epochs: int = 40         # epochs with the NTK's top eigenvalue recorded (the catapult's window)
    mlp_dataset: str = "digits"
    mlp_n_train: int = 0              # 0 = all 1347 training digits
    mlp_width: int = 256
    mlp_depth: int = 2
    mlp_epochs: int = 60
    mlp_n_kernel: int = 200           # training points on which CK / NTK are computed
    seed: int = 0


# --------------------------------------------------------------------------- 04
@dataclass(frozen=True)
class Study04:
    """Optimizer variance by ANOVA (arXiv 2307.11684).

    Two arms share one budget, ``epochs``. Primary, step-matched: every batch size gets the
    number of updates that ``epochs`` epochs give the smallest batch. Second, fixed-epoch:
    every batch size trains ``epochs`` epochs (full batch then gets the fewest updates).
    Learning rates are tuned per (arm, optimizer, batch size) on a validation split.
    """

    dataset: str = "digits"           # "digits" (8x8, 1347 train / 450 test) or "cifar10"
    n_train: int = 0                  # training images before the validation split (0 = all)
    n_val: int = 323                  # validation images carved (stratified, fixed) out of them for lr tuning;
                                      # the rest train every model: 1347 - 323 = 1024 = 2^10 at default
    n_test: int = 0                   # test images (0 = all); the response is peak test accuracy
    model: str = "mlp"                # "mlp" or "resnet18"
    width: int = 64                   # MLP hidden width / ResNet-18 base width
    depth: int = 1                    # MLP hidden layers (ignored by resnet18)
    optimizers: tuple = ("sgdm", "adam", "lbfgs", "adahessian", "sophiah")
    batch_sizes: tuple = (16, 64, 256, 0)   # n/64, n/16, n/4 and full batch (0): a x4 log grid of whole batches
    seeds: int = 10                   # seeds per cell: each sets the init and the batch order
    epochs: int = 3                   # the budget: 3 epochs at batch 16 = 192 updates for every batch size
                                      # (step-matched arm); 3 epochs for every batch size (fixed-epoch arm)
    schedule: str = "constant"        # learning-rate schedule of train.fit
    lr_grid: tuple = (("sgdm", (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)),
                      ("adam", (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)),
                      ("lbfgs", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)),
                      ("adahessian", (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)),
                      ("sophiah", (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)))
                                      # per optimizer, a log ladder of learning rates: the search of every cell
                                      # starts at its middle three and walks outwards while the best is at an edge
    tune_seeds: int = 2               # seeds per lr candidate (disjoint from the grid's seeds)
    n_jobs: int = 2                   # local worker processes (1 torch thread each)


# --------------------------------------------------------------------------- 05
@dataclass(frozen=True)
class Study05:
    """The NTK engine (arXiv 2205.12372, torchNTK)."""

    n_grid: tuple = (100, 250, 500, 1000)     # N of the MLP pNTK scaling sweep
    cnn_n_grid: tuple = (100, 250, 500)       # N of the CNN trNTK scaling sweep
    width_grid: tuple = (128, 256, 512)       # MLP widths (depth 2, N = n_grid[-1])
    depth_grid: tuple = (1, 2, 4)             # MLP depths (width = width_grid[-1]); depth 3 is the headline's
    proj_dims: tuple = (16, 64, 256, 1024, 4096)
    proj_n: int = 100                         # inputs of the projection-error sweep
    proj_seeds: int = 3
    head_width: int = 512                     # headline MLP: 784 -> head_depth x head_width -> 10
    head_depth: int = 3
    head_n: int = 1000
    cnn_width: int = 16                       # SmallCNN on 28x28 inputs
    cnn_n: int = 500
    big_n: int = 20000                        # the large-N pNTK run (0 = skip)
    big_width: int = 512                      # its MLP: 784 -> big_depth x big_width -> 10
    big_depth: int = 3
    baseline_max_n: int = 128                 # baselines run at most this N; longer ones are scaled by block pairs
    baseline_direct_n: int = 256              # the pNTK baseline also measured directly here (0 = skip) to validate the scaling
    baseline_block: int = 32                  # Jacobian block of the baselines
    autodiff_max_n: int = 250                 # ntk.kernel(method="autodiff") in the N sweep only up to this N
    agree_n: int = 32                         # inputs of the autodiff/structured agreement check
    isolate: bool = True                      # one subprocess per measurement (peak RSS); False: in-process, no memory
    repeats: int = 3                          # best-of repeats of the headline structured and unavoidable runs
    proj_cost_n: int = 48                     # projection cost: inputs of the headline MLP ...
    proj_cost_k: int = 1024                   # ... projected to this K (exact, projected, GEMM alone, TRAK)
    sgemm_n: int = 2048                       # square sgemm timed for this machine's peak FLOP rate
    threads: int = 1                          # torch threads of every timed measurement (recorded per row)
    seed: int = 0


_CLASSES = {"01": Study01, "02": Study02, "03": Study03, "04": Study04, "05": Study05}

# Per-profile overrides of each study's defaults ("default" = the dataclass defaults).
_OVERRIDES: dict[str, dict[str, dict]] = {
    "01": {
        "smoke": dict(n_train=300, n_test=150, width=4, epochs=3, k_max=16, seeds=(0, 1), svm_cs=(0.1, 1.0)),
        "default": {},
        # paper: CIFAR-10, full-width ResNet-18, unpooled maps, on 10000 training images (not 50000): every
        # tap's unpooled activations are held at once, ~330k floats per image at width 64, ~13 GB for 10000.
        "paper": dict(dataset="cifar10", n_train=10000, n_test=0, width=64, epochs=200, lr=0.1),
    },
    "02": {
        "smoke": dict(n_train=160, n_test=80, width=4, epochs=3, seeds=(0,), proj_dims=(16, 64),
                      n_proj_error=80, binary_models=("mlp",), mlp_width=32, binary_epochs=5, n_attack=40,
                      topk=5, n_explain=2, recipes=("cv", "sgd_1e-4"), kglm_cs=(1.0,), n_boot=100,
                      poison_seeds=(0, 1), lds_subsets=6, lds_jobs=1, trak_proj_dim=64),
        "default": {},
        "paper": dict(dataset="cifar10", model="resnet18", n_train=0, n_test=0, width=64, epochs=200, lr=0.1,
                      proj_dims=(2560, 5120, 10240), n_proj_error=2000, n_attack=1000, binary_epochs=50,
                      trigger_size=4),
    },
    "03": {
        "smoke": dict(n=200, d=100, h=150, epochs=20, snapshots=2, seeds=2, ladder=(1, 2), adam_lrs=(0.01, 0.1),
                      null_draws=20, fine_ntk_epochs=10, mlp_n_train=400, mlp_width=64, mlp_epochs=10,
                      mlp_n_kernel=100),
        "default": {},
        "paper": dict(n=2000, d=1000, h=1500, epochs=2000, snapshots=20, seeds=5, mlp_dataset="clutter",
                      mlp_width=1024, mlp_epochs=200, mlp_n_kernel=200),  # (200, 2.1M) Jacobian: 3.4 GB
    },
    "04": {
        "smoke": dict(n_train=300, n_val=44, n_test=200, width=32, optimizers=("sgdm", "adam", "lbfgs", "adahessian"),
                      batch_sizes=(64, 0), seeds=3, epochs=2, tune_seeds=2, n_jobs=1,  # in-process: no worker start-up
                      lr_grid=(("sgdm", (0.03, 0.1, 0.3)), ("adam", (0.003, 0.01)), ("lbfgs", (1.0,)),
                               ("adahessian", (0.1, 0.3)))),
        "default": {},
        "paper": dict(dataset="cifar10", model="resnet18", width=64, n_train=10000, n_val=1808,
                      batch_sizes=(32, 128, 512, 2048, 0), epochs=5, n_jobs=1),
    },
    "05": {
        "smoke": dict(n_grid=(20, 40), cnn_n_grid=(16, 32), width_grid=(32, 64), depth_grid=(1, 2),
                      proj_dims=(16, 64, 256), proj_n=16, proj_seeds=2, head_width=64, head_depth=2, head_n=64,
                      cnn_width=4, cnn_n=32, big_n=0, baseline_max_n=32, baseline_direct_n=48, baseline_block=16,
                      autodiff_max_n=40, agree_n=16, isolate=False, repeats=1, proj_cost_n=8, proj_cost_k=64,
                      sgemm_n=256),
        "default": {},
        "paper": dict(n_grid=(1000, 5000, 20000), cnn_n_grid=(1000, 5000), width_grid=(512, 1024, 2048),
                      depth_grid=(1, 2, 4, 8), proj_dims=(256, 1024, 4096, 10240), baseline_max_n=512,
                      baseline_direct_n=1024, autodiff_max_n=1000, agree_n=64),
    },
}


def _is(value, kind: type) -> bool:
    """isinstance, except that a bool is not an int and an int is a fine float."""
    if isinstance(value, bool) and kind in (int, float):
        return False
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _check_type(study: str, name: str, value, expected, default=None) -> None:
    """``value`` must have the field's type; a tuple's items must have the type of the default's items."""
    origin = typing.get_origin(expected) or expected
    if isinstance(origin, type) and not _is(value, origin):
        raise ProfileError(
            f"study {study}: parameter {name!r} must be {getattr(expected, '__name__', expected)}, "
            f"got {type(value).__name__} {value!r}"
        )
    kinds = {type(d) for d in default} if isinstance(default, tuple) and default else set()
    if isinstance(value, tuple) and len(kinds) == 1 and (kind := kinds.pop()) is not tuple:
        wrong = [v for v in value if not _is(v, kind)]
        if wrong:
            raise ProfileError(
                f"study {study}: parameter {name!r} must be a tuple of {kind.__name__}, "
                f"got {type(wrong[0]).__name__} {wrong[0]!r} in {value!r}"
            )


def validate_profile(profile: str) -> str:
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def resolve(profile: str = "default") -> str:
    """The profile to use: ``NNLENS_PROFILE`` from the environment wins when set.

    Notebooks call this right after their parameters cell, because nbval cannot
    inject parameters the way papermill does. Outside the runner and the tests
    (``NNLENS_REPORTS`` unset) it also sends the outputs to a scratch folder
    (``paths.use_profile``), so exploring never overwrites the published reports.
    """
    resolved = validate_profile(os.environ.get("NNLENS_PROFILE") or profile)
    paths.use_profile(resolved)  # a notebook run by hand writes to .scratch/interactive/<profile>/, and says so
    return resolved


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
        _check_type(study, name, value, hints[name], fields[name].default)
    cfg = cls(**values)
    return cfg

