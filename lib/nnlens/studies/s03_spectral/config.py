"""Study 03's settings: spectral dynamics of linear-width networks (arXiv 2211.06506).

``Study03`` holds the default profile (every field documented where it is declared);
``PROFILES`` the smoke and paper profiles as overrides of it. ``studies.profiles.load("03", name)``
checks and applies them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Study03:
    """Spectral dynamics of linear-width two-layer networks (arXiv 2211.06506).

    Step sizes of GD/SGD are multiples of the edge of stability n / λmax(NTK at init) of
    full-batch GD on MSE (computed per model and size): "small" = 0.05x (far below the edge),
    "large" = 1.5x (mid catapult window 1x-2x, Lewkowycz et al. 2020: the catapult regime).
    The edge is Θ(n) in this parametrization (N(0, 1) weights, Wx/√d), i.e. a step Θ(1) in the
    paper's units (``studies.s03_runs``). The spike regime is one full-batch step of size
    spike_kappa (hd)^¼ / ‖∇W L(W0)‖op: Ba et al. 2022's η = Θ(1) scaling with a large constant, not their
    η = Θ(√N) step (κ = (hd)^¼, run in the κ sweep). Adam's lr is chosen on ``adam_lrs`` by
    validation error. The width ladder trains (n, d, h) x k / max(ladder) for k in ``ladder``.
    """

    n: int = 800                      # training samples (teacher data; validation, refit, test sets of the same size)
    d: int = 400                      # input dimension
    h: int = 600                      # hidden width (only W is trained; a stays at init)
    noise: float = 0.1
    link: str = "tanh"                # teacher g in y = g(βᵀx) + noise
    activation: str = "tanh"          # student σ: tanh, relu or gelu (models.ACTIVATIONS)
    readout: str = "standard"         # a ~ N(0, 1) ("standard", the paper's) or N(0, 1/h) ("mean_field", f0 ~ 0)
    epochs: int = 100                 # passes over the data (1 GD step, n/batch SGD/Adam steps each)
    lr_small: float = 0.05            # × edge of stability
    lr_large: float = 1.5             # × edge of stability (catapult regime)
    spike_kappa: float = 3.0          # one-step spike: ‖ΔW‖op = kappa (hd)^¼ (Ba et al. 2022's η = Θ(1) scaling)
    kappa_sweep: tuple = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0)   # one-step sweep; (hd)^¼ (their η = Θ(√N) step) is added
    sgd_batch: int = 64               # mini-batch of SGD and Adam at the top size (scaled with k on the ladder)
    adam_lrs: tuple = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)  # Adam's lr grid, chosen by validation error (refit
                                      # readout); wide enough that the choice is interior
    seeds: int = 3                    # seeds (data, teacher direction, init, batch order): seed, seed+1, ...
    ladder: tuple = (1, 2, 4, 8)      # width ladder multipliers; the largest is (n, d, h)
    null_draws: int = 20              # Gaussian matrices behind the heavy-tail null
    edge_draws: int = 2000            # simulated Gaussian matrices per shape behind the outlier edge (99% quantile)
    ks_null_draws: int = 20           # coupled-null draws of W's bulk KS per run (kernels: ks_null_kernel_draws)
    ks_null_kernel_draws: int = 4     # coupled-null draws of the CK / NTK bulk KS per small-step run
    snapshots: int = 5
    fine_ntk_epochs: int = 40         # epochs with the NTK's top eigenvalue recorded (the catapult's window)
    mlp_dataset: str = "mnist"        # real MNIST (28x28, class-balanced subsets of the official split); the smoke
                                      # profile keeps scikit-learn's built-in 8x8 "digits" (no files needed)
    mlp_n_train: int = 1024           # training images (0 = all); first-layer W is (mlp_width, 784) on MNIST
    mlp_n_test: int = 2000            # test images (0 = all)
    mlp_width: int = 256
    mlp_depth: int = 2
    mlp_epochs: int = 60
    mlp_n_kernel: int = 200           # training points on which CK / NTK are computed
    seed: int = 0


PROFILES: dict[str, dict] = {
    "smoke": dict(n=200, d=100, h=150, epochs=20, snapshots=2, seeds=2, ladder=(1, 2), adam_lrs=(0.001, 0.01, 0.1),
                  kappa_sweep=(1.0, 3.0), edge_draws=500, ks_null_draws=5, ks_null_kernel_draws=2,
                  null_draws=20, fine_ntk_epochs=10, mlp_dataset="digits", mlp_n_train=400, mlp_n_test=0,
                  mlp_width=64, mlp_epochs=10, mlp_n_kernel=100),
    "default": {},
    "paper": dict(n=2000, d=1000, h=1500, epochs=2000, snapshots=20, seeds=5, mlp_dataset="clutter",
                  mlp_n_train=0, mlp_n_test=0, mlp_width=1024, mlp_epochs=200,
                  mlp_n_kernel=200),  # (200, 2.1M) Jacobian: 3.4 GB
}
