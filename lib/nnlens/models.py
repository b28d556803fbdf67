"""The networks of the studies.

- ``MLP``: fully connected ReLU network (biases on by default).
- ``SmallCNN``: two conv blocks and a linear head.
- ``ResNet18``: the CIFAR-style ResNet-18 (3x3 stem, no max-pool) of He et al. 2016
  with a width multiplier (``width=64`` is the standard one) and any input channels.
- ``TwoLayer``: f(x) = aᵀσ(Wx/√d)/√h, the model of the spectral study (arXiv 2211.06506).

``build(spec)`` makes one from a plain dict, which is what training caches hash.
Every model exposes ``taps``: the names of the modules whose outputs are the
layer-wise representations (``features.activations`` reads them).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, in_dim: int, n_classes: int, width: int = 256, depth: int = 2, bias: bool = True):
        super().__init__()
        dims = [in_dim] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], n_classes, bias=bias)
        self.taps = [f"hidden.{i}" for i in range(depth)] + ["head"]

    def forward(self, x):
        x = x.flatten(1)                                  # (N, D)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)                               # (N, C)


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16, image_size: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        side = image_size // 4
        self.fc = nn.Linear(2 * width * side * side, 4 * width)
        self.head = nn.Linear(4 * width, n_classes)
        self.taps = ["conv1", "conv2", "fc", "head"]

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))              # (N, w, H/2, W/2)
        x = self.pool(F.relu(self.conv2(x)))              # (N, 2w, H/4, W/4)
        x = F.relu(self.fc(x.flatten(1)))                 # (N, 4w)
        return self.head(x)                               # (N, C)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Flatten(nn.Module):
    """Global average pool + flatten, a named module so it can be tapped (the penultimate layer)."""

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, 1).flatten(1)     # (N, C)


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18: stem, 4 stages of 2 BasicBlocks, global pool, linear head."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10, width: int = 64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        stages, cin = [], w
        for cout, stride in [(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]:
            blocks = [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = Flatten()
        self.head = nn.Linear(8 * w, n_classes)
        self.taps = ["stem"] + [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["pool"]

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.pool(x))                    # (N, C)


def _gelu_grad(z):
    """d/dz of z Φ(z) (exact GELU): Φ(z) + z φ(z)."""
    return 0.5 * (1 + torch.erf(z / math.sqrt(2))) + z * torch.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)


# The activations of ``TwoLayer``: name -> (σ, σ'); ``spectra``'s closed-form kernels need both.
ACTIVATIONS = {
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
    "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
    "gelu": (torch.nn.functional.gelu, _gelu_grad),
}


class TwoLayer(nn.Module):
    """f(x) = aᵀσ(Wx/√d)/√h with W (h, d) N(0, 1) and a (h,) N(0, readout_std²) at init."""

    def __init__(self, d: int, h: int, activation: str = "tanh", train_a: bool = True, readout_std: float = 1.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.d, self.h, self.act = d, h, ACTIVATIONS[activation][0]
        self.W = nn.Parameter(torch.randn(h, d))
        self.a = nn.Parameter(torch.randn(h) * readout_std, requires_grad=train_a)   # 1/√h: mean-field readout
        self.taps = []

    def features(self, x):
        return self.act(x @ self.W.T / math.sqrt(self.d))  # (N, h): the conjugate-kernel features

    def forward(self, x):
        return self.features(x) @ self.a / math.sqrt(self.h)  # (N,)


MODELS = {"mlp": MLP, "cnn": SmallCNN, "resnet18": ResNet18, "twolayer": TwoLayer}


def build(spec: dict) -> nn.Module:
    """A model from ``{"name": ..., **kwargs}``; unknown names list the valid ones."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a model spec is a dict with a 'name' key, got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] not in MODELS:
        raise ValueError(f"unknown model {spec['name']!r}; valid models: {', '.join(MODELS)}")
    try:
        return MODELS[spec["name"]](**kwargs)
    except TypeError as e:
        raise ValueError(f"bad arguments for model {spec['name']!r}: {e}") from None


def spec_for(name: str, ds, **kwargs) -> dict:
    """The spec of model ``name`` sized for dataset ``ds`` (input shape, classes)."""
    shape = ds.input_shape
    if name == "mlp":
        return {"name": "mlp", "in_dim": int(math.prod(shape)), "n_classes": ds.n_classes, **kwargs}
    if name == "cnn":
        return {"name": "cnn", "in_channels": shape[0], "n_classes": ds.n_classes, "image_size": shape[-1], **kwargs}
    if name == "resnet18":
        return {"name": "resnet18", "in_channels": shape[0], "n_classes": ds.n_classes, **kwargs}
    raise ValueError(f"unknown model {name!r}; valid models: mlp, cnn, resnet18")
