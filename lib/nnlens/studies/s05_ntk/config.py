"""Study 05's settings: the NTK engine (arXiv 2205.12372, torchNTK).

``Study05`` holds the default profile (every field documented where it is declared);
``PROFILES`` the smoke and paper profiles as overrides of it. ``studies.profiles.load("05", name)``
checks and applies them.
"""
from __future__ import annotations

from dataclasses import dataclass


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
    baseline_direct_n: int = 256              # the pNTK baseline also timed directly here (0 = skip): checks scaling
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


PROFILES: dict[str, dict] = {
    "smoke": dict(n_grid=(20, 40), cnn_n_grid=(16, 32), width_grid=(32, 64), depth_grid=(1, 2),
                  proj_dims=(16, 64, 256), proj_n=16, proj_seeds=2, head_width=64, head_depth=2, head_n=64,
                  cnn_width=4, cnn_n=32, big_n=0, baseline_max_n=32, baseline_direct_n=48, baseline_block=16,
                  autodiff_max_n=40, agree_n=16, isolate=False, repeats=1, proj_cost_n=8, proj_cost_k=64,
                  sgemm_n=256),
    "default": {},
    "paper": dict(n_grid=(1000, 5000, 20000), cnn_n_grid=(1000, 5000), width_grid=(512, 1024, 2048),
                  depth_grid=(1, 2, 4, 8), proj_dims=(256, 1024, 4096, 10240), baseline_max_n=512,
                  baseline_direct_n=1024, autodiff_max_n=1000, agree_n=64),
}
