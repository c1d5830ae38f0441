"""Model families of the book: two-layer teacher/student, MLPs of any depth, VGG-11 and ResNet-20.

Every family has an exact permutation spec in :mod:`lmcnb.permutation` (``spec_for(model)``). Parameter names are
part of that contract: do not rename modules without updating the spec builders.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ._validate import check_choice

OUTPUT_MODES = ("fixed", "trained")


# Not lmcnb._validate.check_int: these constructors accept only a builtin int (no NumPy integers) and say
# "must be positive"; _check_multiplier likewise accepts only int/float.
def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _check_multiplier(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"width_multiplier must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"width_multiplier must be positive and finite, got {value}")
    return float(value)


def _scaled(width: int, multiplier: float) -> int:
    return max(1, int(round(width * multiplier)))


class TwoLayerNet(nn.Module):
    """Two-layer ReLU network f(x) = s · Σ_{i≤m} a_i σ(w_i·x + b_i) (Zhan, Li, Wu 2025 notation).

    Args:
        d: input dimension. m: width (number of hidden neurons).
        output: ``"fixed"`` (a_i = 1, not trained — the reconstructed teacher–student model) or ``"trained"``.
        scale: output scaling s, ``"1"`` or ``"1/m"`` (mean-field).
        bias: hidden biases b_i (default off).
        dtype: parameter dtype; float64 by default because teacher–student barriers reach 1e-8.

    Parameters: ``fc1.weight`` W ∈ R^{m×d}, ``fc1.bias`` (m,) if ``bias``, ``fc2.weight`` a ∈ R^{1×m}.
    Input ``(n, d)``, output ``(n,)``.
    """

    def __init__(self, d: int, m: int, *, output: str = "fixed", scale: str = "1", bias: bool = False,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        _check_positive_int("d", d)
        _check_positive_int("m", m)
        check_choice("output", output, OUTPUT_MODES)
        if scale not in ("1", "1/m"):
            raise ValueError(f"scale must be '1' or '1/m', got {scale!r}")
        self.d, self.m, self.output, self.scale_mode = d, m, output, scale
        self.fc1 = nn.Linear(d, m, bias=bias, dtype=dtype)
        self.fc2 = nn.Linear(m, 1, bias=False, dtype=dtype)
        if output == "fixed":
            with torch.no_grad():
                self.fc2.weight.fill_(1.0)
            self.fc2.weight.requires_grad_(False)

    @property
    def scale(self) -> float:
        return 1.0 if self.scale_mode == "1" else 1.0 / self.m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.fc2(F.relu(self.fc1(x))).squeeze(-1)


def teacher(d: int, M: int, *, generator: torch.Generator | None = None, random_rotation: bool = False,
            dtype: torch.dtype = torch.float64) -> TwoLayerNet:
    """Teacher f*(x) = Σ_{j≤M} σ(w*_j·x) with orthonormal w*_j (e_j, or a random orthonormal frame)."""
    _check_positive_int("M", M)
    if M > _check_positive_int("d", d):
        raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
    net = TwoLayerNet(d, M, output="fixed", dtype=dtype)
    if random_rotation:
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        rows = q.T[:M]
    else:
        rows = torch.eye(d, dtype=torch.float64)[:M]
    with torch.no_grad():
        net.fc1.weight.copy_(rows.to(dtype))
    return net


class MLP(nn.Module):
    """Multi-layer perceptron x ↦ W_L σ(… σ(W_1 x + b_1) …) + b_L with ReLU σ.

    Args:
        in_features: input size (inputs of shape ``(n, *)`` are flattened to ``(n, in_features)``).
        hidden: hidden widths ``(h_1, …, h_{L-1})``; empty gives a linear model.
        out_features: number of outputs (classes).
        bias: biases on every layer (Ito et al.'s LEWC theorem needs ``bias=False``).

    Parameters ``layers.{k}.weight`` of shape ``(h_{k+1}, h_k)``. Output ``(n, out_features)``.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, *, bias: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        widths = [_check_positive_int("in_features", in_features)]
        widths += [_check_positive_int(f"hidden[{i}]", h) for i, h in enumerate(hidden)]
        widths.append(_check_positive_int("out_features", out_features))
        self.widths = tuple(widths)
        self.bias = bias
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=bias, dtype=dtype) for a, b in zip(widths[:-1], widths[1:]))

    @classmethod
    def from_multiplier(cls, in_features: int, base_hidden: Sequence[int], out_features: int,
                        width_multiplier: float = 1.0, **kwargs) -> MLP:
        """MLP whose hidden widths are ``round(h · width_multiplier)``."""
        mult = _check_multiplier(width_multiplier)
        return cls(in_features, [_scaled(h, mult) for h in base_hidden], out_features, **kwargs)

    @property
    def depth(self) -> int:
        """Number of linear layers L."""
        return len(self.layers)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation features of every hidden layer, then the logits: ``L`` tensors ``(n, h_ℓ)``."""
        h = x.flatten(1)
        out = []
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if k < len(self.layers) - 1:
                h = F.relu(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 for 32×32 inputs with a width multiplier (conv widths 64…512 × multiplier).

    ``features`` is a ``Sequential`` of conv (3×3, padding 1) [+ BatchNorm] + ReLU blocks and max-pools;
    ``classifier`` is one linear layer. Input ``(n, in_channels, 32, 32)``, output ``(n, num_classes)``.
    """

    def __init__(self, width_multiplier: float = 1.0, num_classes: int = 10, in_channels: int = 3, *,
                 batchnorm: bool = True) -> None:
        super().__init__()
        mult = _check_multiplier(width_multiplier)
        _check_positive_int("num_classes", num_classes)
        layers: list[nn.Module] = []
        c_in = _check_positive_int("in_channels", in_channels)
        for item in VGG11_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = _scaled(int(item), mult)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=True))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            c_in = c_out
        self.batchnorm = batchnorm
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus shortcut (1×1 conv + BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: bool) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not norm)
        self.bn1 = norm_layer(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=not norm)
        self.bn2 = norm_layer(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=not norm),
                                          norm_layer(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (3 stages × 3 basic blocks, widths 16/32/64 × multiplier) with 1×1-conv shortcuts.

    ``norm=True`` uses BatchNorm (reset/REPAIR it after merging); ``norm=False`` uses biases instead.
    Input ``(n, in_channels, 32, 32)``, output ``(n, num_classes)``.
    """

    BLOCKS_PER_STAGE = 3
    STAGE_WIDTHS = (16, 32, 64)

    def __init__(self, width_multiplier: float = 1.0, num_classes: int = 10, in_channels: int = 3, *,
                 norm: bool = True) -> None:
        super().__init__()
        mult = _check_multiplier(width_multiplier)
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_channels", in_channels)
        widths = [_scaled(w, mult) for w in self.STAGE_WIDTHS]
        self.norm = norm
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=not norm)
        self.bn1 = nn.BatchNorm2d(widths[0]) if norm else nn.Identity()
        stages, c_in = [], widths[0]
        for s, c_out in enumerate(widths):
            blocks = []
            for b in range(self.BLOCKS_PER_STAGE):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride, norm))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            out = stage(out)
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
