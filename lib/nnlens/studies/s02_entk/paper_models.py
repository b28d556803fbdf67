"""The paper's three small binary setups (arXiv 2305.14585, github pnnl/projection_ntk,
``scripts/smallmodeltrain/Analyze_multiple_NTK_{MLP_MNIST2,CNN_MNIST2,CNN_FMNIST2}.py``), and a vectorized
multi-seed trainer for them, ready for MNIST / FashionMNIST loaders (not wired in: data come as arguments).

What the paper's scripts do, copied here exactly:

- data: classes 0 and 1, the first 5000 training images of each, the first 980 (MNIST) or 1000 (FashionMNIST)
  test images of each; pixels / 255; labels 0.0 / 1.0;
- init (``NTK_weights``): every Linear and Conv2d weight and bias ~ N(0, 1);
- MLP 784-100-100-100-1: relu(l1(x) / √100), relu(l2 / √100), relu(l3 / 10), then l4 unscaled (the script
  divides the first layer by √100, not √784);
- CNN (WIDTH = 8): conv 1→8W, 8W→4W, 4W→W (3×3, padding 1), each relu(conv) divided by √(8W·9), √(4W·9),
  √(W·9) as written, each followed by relu(avgpool 2); then fc 9W→128 (relu / √128), 128→64 (relu / √64), 64→1;
- loss: MNIST2 MLP and CNN: MSE between sigmoid(output) and the label, SGD lr 1e-3, batch 4, 100 epochs,
  shuffled; FMNIST2 CNN: MSE between the *centred* output f(x) - f_init(x) (a frozen copy of the seed's
  initialization) and the label, with no sigmoid, Adam lr 1e-3, batch 4, 200 epochs, not shuffled
  (``Analyze_multiple_NTK_CNN_FMNIST2.py``: ``output = model(data) - model_init(data)``;
  ``loss = criterion(output.squeeze(), target.squeeze())``);
- evaluation, in all three scripts: the network's output is sigmoid(model(x)) of the *uncentred* model (the
  FMNIST2 script too: it reloads the trained state dict into a plain ``Model`` and never subtracts f_init), a
  point is classified 1 when that is > 0.5; the eNTK is the trained model's (subtracting the frozen f_init
  does not change it).

``train_ensemble`` trains several seeds at once with ``torch.func.stack_module_state`` + ``vmap`` (one
forward/backward for all seeds); each seed keeps its own initialization and batch order, and the result equals
training the seeds one by one (tested on synthetic data).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap


class PaperMLP(nn.Module):
    """The MNIST2 MLP 784-100-100-100-1 of the paper's script."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3, self.l4 = nn.Linear(784, 100), nn.Linear(100, 100), nn.Linear(100, 100), \
            nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(x.shape[0], -1)
        y = F.relu(self.l1(y) / np.sqrt(100))
        y = F.relu(self.l2(y) / np.sqrt(100))
        y = F.relu(self.l3(y) / 10)
        return self.l4(y)


class PaperCNN(nn.Module):
    """The MNIST2 / FMNIST2 CNN of the paper's scripts (WIDTH = 8), for (N, 1, 28, 28) inputs."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(1, 8 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(8 * width, 4 * width, 3, padding=1)
        self.conv5 = nn.Conv2d(4 * width, width, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(width * 9, 128), nn.Linear(128, 64), nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.width
        y = F.relu(self.pool(F.relu(self.conv1(x)) / np.sqrt(8 * w * 9)))
        y = F.relu(self.pool(F.relu(self.conv3(y)) / np.sqrt(4 * w * 9)))
        y = F.relu(self.pool(F.relu(self.conv5(y)) / np.sqrt(w * 9)))
        y = y.reshape(y.shape[0], -1)
        y = F.relu(self.fc1(y)) / np.sqrt(128)
        y = F.relu(self.fc2(y)) / np.sqrt(64)
        return self.fc3(y)


@dataclass(frozen=True)
class PaperSetup:
    """One of the paper's binary setups: model, data slice and training recipe."""
    name: str
    model: str                 # "mlp" or "cnn"
    dataset: str               # "mnist" or "fmnist"
    n_train_per_class: int
    n_test_per_class: int
    optimizer: str             # "sgd" or "adam"
    lr: float
    batch_size: int
    epochs: int
    shuffle: bool
    loss: str = "sigmoid_mse"  # "sigmoid_mse": MSE(sigmoid(f), y); "centred_mse": MSE(f - f_init, y)


SETUPS = {
    "mnist2_mlp": PaperSetup("mnist2_mlp", "mlp", "mnist", 5000, 980, "sgd", 1e-3, 4, 100, True),
    "mnist2_cnn": PaperSetup("mnist2_cnn", "cnn", "mnist", 5000, 980, "sgd", 1e-3, 4, 100, True),
    "fmnist2_cnn": PaperSetup("fmnist2_cnn", "cnn", "fmnist", 5000, 1000, "adam", 1e-3, 4, 200, False,
                              "centred_mse"),
}


def loss_value(setup: PaperSetup, out: torch.Tensor, out_init: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """The setup's training loss of outputs ``out`` (B,) (``out_init``: the initial network's, for the centred
    loss) against labels ``y``."""
    if setup.loss == "centred_mse":
        return ((out - out_init - y) ** 2).mean()
    return ((torch.sigmoid(out) - y) ** 2).mean()


def ntk_init(m: nn.Module) -> None:
    """The scripts' ``NTK_weights``: every Linear / Conv2d weight and bias ~ N(0, 1)."""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.normal_(m.weight)
        if m.bias is not None:
            nn.init.normal_(m.bias)


def make_model(kind: str, seed: int) -> nn.Module:
    """The paper's model ``kind`` ("mlp" or "cnn") at ``seed``, N(0, 1)-initialized as its scripts do."""
    torch.manual_seed(seed)
    model = {"mlp": PaperMLP, "cnn": PaperCNN}[kind]()
    model.apply(ntk_init)
    return model


def binary_slice(x: torch.Tensor, y: torch.Tensor, n_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scripts' data slice: the first ``n_per_class`` images of class 0, then of class 1; x / 255 if it is
    uint8 (N, 28, 28) -> (N, 1, 28, 28) float32; labels 0.0 / 1.0."""
    parts = [(x[y == c][:n_per_class], torch.full((min(n_per_class, int((y == c).sum())),), float(c)))
             for c in (0, 1)]
    xs = torch.cat([p[0] for p in parts])
    xs = xs.float() / 255.0 if xs.dtype == torch.uint8 else xs.float()
    return xs.reshape(-1, 1, 28, 28), torch.cat([p[1] for p in parts])


def _orders(n: int, seeds, epochs: int, shuffle: bool) -> torch.Tensor:
    """(S, epochs, n) per-seed batch orders (a seeded permutation per epoch, or 0..n-1 without shuffling)."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s) + 1_000_003)
        out.append(torch.stack([torch.randperm(n, generator=g) if shuffle else torch.arange(n)
                                for _ in range(epochs)]))
    return torch.stack(out)


def train_ensemble(setup: PaperSetup, seeds, x: torch.Tensor, y: torch.Tensor, epochs: int | None = None,
                   batch_size: int | None = None, device: str = "cpu", graph: bool | None = None) -> list[nn.Module]:
    """Train ``setup``'s model at every seed of ``seeds`` at once (vmap over stacked parameters).

    x: (N, 1, 28, 28); y: (N,) 0.0 / 1.0. Loss: ``loss_value`` (MSE of sigmoid(output), or of the centred
    output f - f_init, against y), the setup's optimizer
    (SGD without momentum, or Adam with torch's defaults) at its lr; ``epochs`` / ``batch_size`` default to the
    setup's. Returns one trained module per seed (on the CPU); equals training each seed alone in the same batch
    order. On a CUDA ``device`` the step (gradients and update, all in place) is captured once as a CUDA graph
    and replayed (``graph`` None: on CUDA only): batch-4 steps are launch-bound, and a replay costs one launch
    instead of a few hundred.
    """
    epochs = setup.epochs if epochs is None else epochs
    bs = setup.batch_size if batch_size is None else batch_size
    dev = torch.device(device)
    graph = dev.type == "cuda" if graph is None else graph
    models = [make_model(setup.model, s) for s in seeds]
    params, buffers = stack_module_state(models)
    params = {k: v.detach().to(dev) for k, v in params.items()}
    buffers = {k: v.to(dev) for k, v in buffers.items()}
    x, y = x.to(dev), y.to(dev)
    base = copy.deepcopy(models[0]).to("meta")
    init = {k: v.detach().clone() for k, v in params.items()}     # f_init of the centred loss (frozen)

    def loss(p, b, p0, xb, yb):
        out = functional_call(base, (p, b), (xb,)).squeeze(-1)
        out0 = functional_call(base, (p0, b), (xb,)).squeeze(-1) if setup.loss == "centred_mse" else None
        return loss_value(setup, out, out0, yb)

    grads = vmap(grad(loss), in_dims=(0, 0, 0, 0, 0))
    step_grad = lambda p, b, xb, yb: grads(p, b, init, xb, yb)  # noqa: E731
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in params.items()}
    t = torch.zeros((), device=dev)                                        # steps taken (Adam's bias correction)
    orders = _orders(len(y), seeds, epochs, setup.shuffle).to(dev)         # (S, epochs, N)

    def step(idx):                                                         # idx: (S, B); everything in place
        g = step_grad(params, buffers, x[idx], y[idx])
        with torch.no_grad():
            t.add_(1)
            for k, v in params.items():
                v.sub_(setup.lr * _direction(setup.optimizer, g[k], state[k], t))

    run = _graphed(step, (len(seeds), bs), dev) if graph else step
    t0 = time.perf_counter()
    for e in range(epochs):
        for i in range(0, len(y), bs):
            idx = orders[:, e, i:i + bs]                                   # (S, B)
            (run if idx.shape[1] == bs else step)(idx)                     # a short last batch runs eagerly
        if dev.type == "cuda" and (e + 1) % 10 == 0:                       # a line per 10 epochs on a GPU machine
            print(f"{setup.name}: epoch {e + 1}/{epochs}, {time.perf_counter() - t0:.0f} s", flush=True)
    out = []
    for j, m in enumerate(models):
        m.load_state_dict({k: v[j].detach().cpu().clone() for k, v in params.items()}
                          | {k: v[j].cpu() for k, v in buffers.items()})
        out.append(m)
    return out


def _graphed(step, shape: tuple, dev: torch.device, warmup: int = 3):
    """``step(idx)`` as a replayed CUDA graph over a static (S, B) index buffer. The first ``warmup`` calls run
    eagerly on a side stream (real training steps: capture needs allocations and lazy setup done), then one
    capture; capture records kernels without running them, so no step is lost or repeated."""
    idx_buf = torch.zeros(shape, dtype=torch.long, device=dev)
    calls, holder = [0], {}

    def run(idx):
        if calls[0] < warmup:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                step(idx)
            torch.cuda.current_stream().wait_stream(s)
        else:
            if "g" not in holder:
                holder["g"] = torch.cuda.CUDAGraph()
                with torch.cuda.graph(holder["g"]):
                    step(idx_buf)
            idx_buf.copy_(idx)
            holder["g"].replay()
        calls[0] += 1
    return run


def _direction(optimizer: str, g: torch.Tensor, st: tuple, t, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-8) -> torch.Tensor:
    """The update direction: the gradient (SGD) or Adam's bias-corrected m / (√v + eps) (``state`` updated);
    ``t``, the step count after this step, is an int or a 0-d tensor (a tensor keeps a captured graph valid)."""
    if optimizer == "sgd":
        return g
    m, v = st
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    return (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)


def train_one(setup: PaperSetup, seed: int, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor,
              batch_size: int | None = None) -> nn.Module:
    """The slow reference: one seed with ``torch.optim`` in the batch order ``order`` (epochs, N)."""
    bs = setup.batch_size if batch_size is None else batch_size
    model = make_model(setup.model, seed)
    model_init = make_model(setup.model, seed).requires_grad_(False)
    opt = (torch.optim.SGD(model.parameters(), setup.lr) if setup.optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), setup.lr))
    for e in range(order.shape[0]):
        for i in range(0, len(y), bs):
            idx = order[e, i:i + bs]
            opt.zero_grad()
            out0 = model_init(x[idx]).squeeze(-1) if setup.loss == "centred_mse" else None
            loss_value(setup, model(x[idx]).squeeze(-1), out0, y[idx]).backward()
            opt.step()
    return model
