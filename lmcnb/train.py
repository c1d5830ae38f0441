"""Training: many small MLPs at once (stacked ``bmm``), and one SGD recipe for any classifier.

**Recipe** (both paths, PyTorch ``torch.optim.SGD`` semantics): at step ``t`` of ``T``, with minibatch loss
``L_t`` (mean over the minibatch),

    g_t = ∇L_t(θ_t) + wd · θ_t                      (coupled L2 weight decay, biases included)
    v_t = g_t if t = 0 else μ v_{t-1} + g_t         (momentum buffer, no dampening)
    θ_{t+1} = θ_t − η_t · (g_t + μ v_t if nesterov else v_t)

with ``η_t`` from :meth:`TrainConfig.lr_at` (constant, cosine or linear-warmup + cosine). Every epoch draws a
fresh order ``torch.randperm(n, generator=g)`` from a ``torch.Generator`` seeded once with the run's seed; batch
``j`` is ``order[j·bs : (j+1)·bs]`` (the last one may be smaller unless ``drop_last``).

**Stacked MLPs.** :func:`stack_mlps` puts ``B`` MLPs of the same depth into one :class:`StackedMLP` whose layer
``k`` weight is ``(B, h_{k+1}, h_k)`` and bias ``(B, h_{k+1})``; the forward pass is ``torch.baddbmm`` on inputs
``(B, n, h_0)`` (each model its own minibatch). Models of different hidden widths are padded to the largest
width: padded units have zero incoming and outgoing weights and zero bias, their gradients are masked to zero, so
they stay exactly zero under momentum and weight decay and every model computes exactly its unpadded function.
:func:`train_mlps` trains the stack; model ``b`` draws its minibatch order from its own generator seeded with
``seeds[b]``, so its result equals :func:`train_classifier` on that model alone with the same seed (up to float
rounding; tested). Optional per-model ``lrs`` / ``weight_decays`` override ``config.lr`` / ``config.weight_decay``
model by model (each schedule scales its model's own peak lr), so a learning-rate × weight-decay × seed sweep is
one batched run.

Out of scope: data augmentation (train on the tensors you pass), mixed precision, distributed training.
Non-finite losses are not an error: they are recorded in the history so that divergent learning rates show.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from ._validate import check_bool, check_choice, check_int, check_real
from .models import MLP

SCHEDULES = ("constant", "cosine", "warmup_cosine")
LOSSES = ("cross_entropy", "mse")
INITS = ("linear_default", "kaiming_uniform", "kaiming_normal", "lecun_normal")

Widths = tuple[int, ...]


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    """SGD recipe shared by :func:`train_mlps` and :func:`train_classifier` (validated on construction).

    Attributes:
        epochs: passes over the data; give exactly one of ``epochs`` and ``steps``.
        steps: optimiser steps ``T`` (epochs are repeated, the last one possibly cut short).
        batch_size: minibatch size per model.
        lr: peak learning rate η (> 0, finite).
        momentum: μ ∈ [0, 1) (0.9 as in Ferbach et al. and Git Re-Basin).
        weight_decay: coupled L2 coefficient wd ≥ 0 (added to the gradient, biases included; Ito et al.).
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        schedule: ``"constant"``, ``"cosine"`` (η·½(1+cos(πt/T))) or ``"warmup_cosine"`` (linear warmup over
            ``⌊warmup·T⌋`` steps, then cosine to 0 over the rest).
        warmup: warmup fraction in [0, 1); must be 0 unless ``schedule == "warmup_cosine"``.
        seed: default data-order seed (``train_classifier``: the seed; ``train_mlps``: model b uses seed + b).
        loss: ``"cross_entropy"`` (int64 labels, mean over the batch) or ``"mse"`` (float targets, mean of
            squared errors over batch and outputs, no ½).
        drop_last: drop the last incomplete minibatch of every epoch (needed for BatchNorm when
            ``n mod batch_size == 1``).
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    warmup: float = 0.0
    seed: int = 0
    loss: str = "cross_entropy"
    drop_last: bool = False

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"give exactly one of epochs and steps, got epochs={self.epochs}, steps={self.steps}")
        if self.epochs is not None:
            check_int("epochs", self.epochs, 1)
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_real("lr", self.lr, 0.0, low_open=True)
        check_real("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_real("warmup", self.warmup, 0.0, 1.0, high_open=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("loss", self.loss, LOSSES)
        check_bool("nesterov", self.nesterov)
        check_bool("drop_last", self.drop_last)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if self.warmup > 0 and self.schedule != "warmup_cosine":
            raise ValueError(f"warmup={self.warmup} is only used by schedule='warmup_cosine', "
                             f"got schedule={self.schedule!r}")

    def steps_per_epoch(self, n: int) -> int:
        """Minibatches in one pass over ``n`` samples: ``⌈n/bs⌉``, or ``⌊n/bs⌋`` with ``drop_last``."""
        n = check_int("n", n, 1)
        per_epoch = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if per_epoch == 0:
            raise ValueError(f"drop_last=True with n={n} < batch_size={self.batch_size} leaves no minibatch")
        return per_epoch

    def total_steps(self, n: int) -> int:
        """Optimiser steps T for ``n`` training samples."""
        per_epoch = self.steps_per_epoch(n)
        return self.steps if self.steps is not None else self.epochs * per_epoch

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate η_t at step ``0 ≤ t ≤ T`` (``t = T`` gives the schedule's end value).

        cosine: η·½(1 + cos(πt/T)). warmup_cosine with W = ⌊warmup·T⌋: η·(t+1)/W for t < W (the first step is
        not wasted at 0), then η·½(1 + cos(π(t−W)/(T−W))).
        """
        total = check_int("total_steps", total_steps, 1)
        t = check_int("step", step, 0)
        if t > total:
            raise ValueError(f"step must be <= total_steps={total}, got {t}")
        if self.schedule == "constant":
            return float(self.lr)
        warm = math.floor(self.warmup * total) if self.schedule == "warmup_cosine" else 0
        if t < warm:
            return float(self.lr) * (t + 1) / warm
        return float(self.lr) * 0.5 * (1.0 + math.cos(math.pi * (t - warm) / (total - warm)))


@dataclass(frozen=True)
class TrainHistory:
    """What a training run recorded.

    Attributes:
        loss: mean minibatch training loss of every epoch (taken before each step, weighted by batch size),
            float64 on CPU: ``(epochs,)`` for :func:`train_classifier`, ``(epochs, B)`` for stacked training.
        lr: learning rate of every step, ``(T,)`` float64; ``(T, B)`` (model ``b``'s own schedule in column
            ``b``) when stacked training was given per-model ``lrs``.
    """

    loss: torch.Tensor
    lr: torch.Tensor


# ----------------------------------------------------------------------------------------------- stacked MLPs
def _check_widths(widths: object) -> tuple[Widths, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise TypeError("widths must be a non-empty sequence of per-model width tuples (h_0, ..., h_L)")
    for b, w in enumerate(widths):
        if isinstance(w, (str, bytes)) or not isinstance(w, Sequence):
            raise TypeError(f"widths[{b}] must be a sequence (h_0, ..., h_L), got {type(w).__name__}")
    out = tuple(tuple(check_int(f"widths[{b}][{k}]", h, 1) for k, h in enumerate(w)) for b, w in enumerate(widths))
    if any(len(w) < 2 for w in out):
        raise ValueError(f"every model needs at least (in_features, out_features), got {out}")
    if len({len(w) for w in out}) != 1:
        raise ValueError(f"all stacked models need the same depth, got widths {out}")
    if len({(w[0], w[-1]) for w in out}) != 1:
        raise ValueError(f"all stacked models need the same in/out features, got widths {out}")
    return out


class StackedMLP(nn.Module):
    """``B`` ReLU MLPs of equal depth evaluated together with batched matrix products.

    Args:
        widths: per-model widths ``(h_0, h_1, …, h_L)``; all share ``h_0`` (inputs) and ``h_L`` (outputs).
        bias: biases on every layer (as :class:`lmcnb.models.MLP`).
        dtype, device: of the (zero-initialised) parameters; fill them with :func:`stack_mlps`.

    Parameters ``weights.{k}`` ``(B, H_{k+1}, H_k)`` and ``biases.{k}`` ``(B, H_{k+1})`` where ``H_k`` is the
    largest ``h_k``; model ``b``'s real units are the first ``h_k`` rows, the rest is zero padding. When padding
    exists, buffers ``weight_mask{k}`` / ``bias_mask{k}`` (same shapes, 1 on real entries) mask gradients.
    """

    def __init__(self, widths: Sequence[Sequence[int]], *, bias: bool = True, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        check_bool("bias", bias)
        self.widths = _check_widths(widths)
        self.bias = bias
        self.padded_widths = tuple(max(col) for col in zip(*self.widths))
        self.padded = any(w != self.padded_widths for w in self.widths)
        shapes = list(zip(self.padded_widths[1:], self.padded_widths[:-1]))
        kw = {"dtype": dtype, "device": device}
        self.weights = nn.ParameterList(nn.Parameter(torch.zeros(len(self), o, i, **kw)) for o, i in shapes)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(len(self), o, **kw)) for o, _ in shapes if bias)
        if self.padded:
            units = [torch.tensor([[float(j < w[k]) for j in range(h)] for w in self.widths], **kw)
                     for k, h in enumerate(self.padded_widths)]
            for k in range(self.depth):
                self.register_buffer(f"weight_mask{k}", units[k + 1][:, :, None] * units[k][:, None, :])
                self.register_buffer(f"bias_mask{k}", units[k + 1].clone())

    def __len__(self) -> int:
        return len(self.widths)

    @property
    def depth(self) -> int:
        """Number of linear layers L."""
        return len(self.padded_widths) - 1

    def param_list(self) -> list[nn.Parameter]:
        """Weights then biases: ``[weights.0, …, weights.{L-1}, biases.0, …]``."""
        return list(self.weights) + list(self.biases)

    def mask_list(self) -> list[torch.Tensor | None]:
        """Gradient masks aligned with :meth:`param_list` (``None`` everywhere when nothing is padded)."""
        if not self.padded:
            return [None] * len(self.param_list())
        masks = [getattr(self, f"weight_mask{k}") for k in range(self.depth)]
        return masks + ([getattr(self, f"bias_mask{k}") for k in range(self.depth)] if self.bias else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(B, n, h_L)`` for inputs ``(B, n, h_0)`` (one minibatch per model) or shared ``(n, h_0)``."""
        h = self._check_input(x)
        for k, w in enumerate(self.weights):
            wt = w.transpose(1, 2)
            h = torch.baddbmm(self.biases[k].unsqueeze(1), h, wt) if self.bias else torch.bmm(h, wt)
            if k < self.depth - 1:
                h = F.relu(h)
        return h

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        w = self.weights[0]
        if x.dtype != w.dtype or x.device != w.device:
            raise TypeError(f"x must be {w.dtype} on {w.device}, got {x.dtype} on {x.device}")
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(len(self), -1, -1)
        if x.dim() != 3 or x.shape[0] != len(self) or x.shape[2] != self.padded_widths[0]:
            raise ValueError(f"x must be (B={len(self)}, n, {self.padded_widths[0]}) or (n, {self.padded_widths[0]}),"
                             f" got {tuple(x.shape)}")
        return x


def _check_mlps(models: object) -> list[MLP]:
    if isinstance(models, (nn.Module, Mapping)) or not isinstance(models, Sequence) or len(models) == 0:
        raise TypeError("models must be a non-empty sequence of lmcnb.models.MLP")
    for b, m in enumerate(models):
        if not isinstance(m, MLP):
            raise TypeError(f"models[{b}] must be an lmcnb.models.MLP, got {type(m).__name__}")
        if not all(torch.isfinite(p).all() for p in m.parameters()):
            raise ValueError(f"models[{b}] has non-finite parameters")
    ref = models[0].layers[0].weight
    for b, m in enumerate(models):
        w = m.layers[0].weight
        if (w.dtype, w.device, m.bias) != (ref.dtype, ref.device, models[0].bias):
            raise ValueError(f"models[{b}] has dtype/device/bias {(w.dtype, w.device, m.bias)}, models[0] has "
                             f"{(ref.dtype, ref.device, models[0].bias)}")
    return list(models)


def stack_mlps(models: Sequence[MLP], *, pad: bool = False) -> StackedMLP:
    """Stack ``B`` MLPs (copies) into one :class:`StackedMLP`; inputs are not modified.

    Args:
        models: MLPs of equal depth, in/out features, bias flag, dtype and device.
        pad: allow different hidden widths (zero-padded to the largest, see :class:`StackedMLP`); without it
            different widths raise ``ValueError``.
    """
    models = _check_mlps(models)
    check_bool("pad", pad)
    widths = [m.widths for m in models]
    if not pad and len(set(widths)) > 1:
        raise ValueError(f"models have different widths {widths}; pass pad=True to zero-pad them")
    ref = models[0].layers[0].weight
    stacked = StackedMLP(widths, bias=models[0].bias, dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        for b, m in enumerate(models):
            for k, layer in enumerate(m.layers):
                o, i = layer.weight.shape
                stacked.weights[k][b, :o, :i] = layer.weight
                if m.bias:
                    stacked.biases[k][b, :o] = layer.bias
    return stacked


def unstack(stacked: StackedMLP) -> list[MLP]:
    """The ``B`` models of ``stacked`` as new :class:`lmcnb.models.MLP` (padding removed).

    Raises ``ValueError`` if a padded entry is non-zero (the stack would then not equal its models).
    """
    if not isinstance(stacked, StackedMLP):
        raise TypeError(f"stacked must be a StackedMLP, got {type(stacked).__name__}")
    for p, mask in zip(stacked.param_list(), stacked.mask_list()):
        if mask is not None and bool((p.detach() * (1 - mask)).ne(0).any()):
            raise ValueError("stacked has non-zero padded entries; it no longer equals its unpadded models")
    ref = stacked.weights[0]
    out = []
    for b, w in enumerate(stacked.widths):
        with torch.device("meta"):
            m = MLP(w[0], w[1:-1], w[-1], bias=stacked.bias, dtype=ref.dtype)
        m = m.to_empty(device=ref.device)
        with torch.no_grad():
            for k, layer in enumerate(m.layers):
                o, i = layer.weight.shape
                layer.weight.copy_(stacked.weights[k][b, :o, :i])
                if stacked.bias:
                    layer.bias.copy_(stacked.biases[k][b, :o])
        out.append(m)
    return out


def mlp_from_state(state: Mapping[str, torch.Tensor]) -> MLP:
    """A new :class:`lmcnb.models.MLP` holding ``state`` (keys ``layers.{k}.weight`` ``(h_{k+1}, h_k)``, biases
    ``layers.{k}.bias`` on every layer or none); widths, bias flag and dtype are read from the tensors."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping, got {type(state).__name__}")
    depth = sum(1 for k in state if k.startswith("layers.") and k.endswith(".weight"))
    bias = "layers.0.bias" in state
    expected = {f"layers.{k}.{n}" for k in range(depth) for n in (("weight", "bias") if bias else ("weight",))}
    if depth == 0 or set(state) != expected:
        raise ValueError(f"state is not an MLP state: expected keys {sorted(expected)}, got {sorted(state)}")
    shapes = [tuple(state[f"layers.{k}.weight"].shape) for k in range(depth)]
    if any(len(s) != 2 for s in shapes) or any(a[1] != b[0] for a, b in zip(shapes[1:], shapes[:-1])):
        raise ValueError(f"MLP weight shapes must chain (h_{{k+1}}, h_k), got {shapes}")
    w0 = state["layers.0.weight"]
    with torch.device("meta"):
        m = MLP(shapes[0][1], [s[0] for s in shapes[:-1]], shapes[-1][0], bias=bias, dtype=w0.dtype)
    m = m.to_empty(device=w0.device)
    m.load_state_dict(state)
    return m


# ----------------------------------------------------------------------------------------------- init
def _draw_weight(shape: tuple[int, int], init: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (out, in), bias (out,)) in float64 on CPU, drawn from ``g`` for fan-in ``in``."""
    fan_in = shape[1]
    if init == "linear_default":  # nn.Linear: kaiming_uniform_(a=√5) ⇒ U(±1/√fan_in), bias likewise
        bound = 1.0 / math.sqrt(fan_in)
        u = torch.rand(shape[0] * (fan_in + 1), generator=g, dtype=torch.float64).mul_(2 * bound).sub_(bound)
        return u[: shape[0] * fan_in].view(shape), u[shape[0] * fan_in:]
    zero = torch.zeros(shape[0], dtype=torch.float64)
    if init == "kaiming_uniform":  # He: U(±√(6/fan_in)), variance 2/fan_in
        bound = math.sqrt(6.0 / fan_in)
        return torch.rand(shape, generator=g, dtype=torch.float64).mul_(2 * bound).sub_(bound), zero
    if init == "kaiming_normal":  # He: N(0, 2/fan_in)
        return torch.randn(shape, generator=g, dtype=torch.float64).mul_(math.sqrt(2.0 / fan_in)), zero
    # Flax lecun_normal: truncated normal on ±2σ with variance 1/fan_in after truncation
    std = 1.0 / math.sqrt(fan_in) / 0.87962566103423978
    w = torch.empty(shape, dtype=torch.float64)
    return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=g), zero


def init_mlps(widths: Sequence[int] | Sequence[Sequence[int]], B: int, seeds: Sequence[int], *, bias: bool = True,
              init: str = "linear_default", dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> list[MLP]:
    """``B`` freshly initialised MLPs; model ``b`` depends only on ``seeds[b]`` and its widths.

    Args:
        widths: one architecture ``(h_0, …, h_L)`` for all models, or ``B`` of them.
        B: number of models (``len(seeds)``).
        seeds: one non-negative int per model, seeding a private ``torch.Generator`` (the global RNG is
            neither used nor advanced).
        init: ``"linear_default"`` (nn.Linear's own default, Kaiming-uniform with a=√5: weights and biases
            U(±1/√fan_in)), ``"kaiming_uniform"`` (He, U(±√(6/fan_in)), zero biases), ``"kaiming_normal"``
            (N(0, 2/fan_in), zero biases; Ito et al.), ``"lecun_normal"`` (Flax default: truncated normal,
            variance 1/fan_in, zero biases; Ferbach et al.).
        dtype, device: of the parameters (draws are float64 on CPU, then cast).
    """
    B = check_int("B", B, 1)
    check_choice("init", init, INITS)
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) != B:
        raise ValueError(f"seeds must be a sequence of B={B} ints, got {seeds!r}")
    seeds = [check_int(f"seeds[{b}]", s, 0) for b, s in enumerate(seeds)]
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"widths must be a sequence of ints or of width tuples, got {type(widths).__name__}")
    if len(widths) > 0 and all(isinstance(w, numbers.Integral) for w in widths):
        widths = [widths] * B
    per_model = _check_widths(widths)
    if len(per_model) != B:
        raise ValueError(f"widths gives {len(per_model)} architectures for B={B} models")
    return [_init_one(w, s, bias, init, dtype, device) for w, s in zip(per_model, seeds)]


def _init_one(widths: Widths, seed: int, bias: bool, init: str, dtype: torch.dtype,
              device: torch.device | str | None) -> MLP:
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        m = MLP(widths[0], widths[1:-1], widths[-1], bias=bias, dtype=dtype)
    m = m.to_empty(device=device if device is not None else "cpu")
    with torch.no_grad():
        for layer in m.layers:
            w, b = _draw_weight(tuple(layer.weight.shape), init, g)
            layer.weight.copy_(w)
            if bias:
                layer.bias.copy_(b)
    return m


# ----------------------------------------------------------------------------------------------- data
def _check_data(x: object, y: object, loss: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate ``x (n, *)`` and ``y (n,)`` / ``(n, k)``; return them and, for cross-entropy, the largest label."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be torch.Tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"x must be a non-empty (n, *features) tensor, got shape {tuple(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"x must have the model's dtype {dtype}, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or inf")
    if y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have n={x.shape[0]} rows like x, got shape {tuple(y.shape)}")
    if loss == "mse":
        if y.dtype != dtype:
            raise TypeError(f"mse targets y must have the model's dtype {dtype}, got {y.dtype}")
        if y.dim() > 2:
            raise ValueError(f"mse targets y must be (n,) or (n, k), got shape {tuple(y.shape)}")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y contains NaN or inf")
        return x, y, -1
    if y.dtype != torch.int64:
        raise TypeError(f"cross_entropy labels y must be int64 (torch.long) class indices, got {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"cross_entropy labels y must be (n,), got shape {tuple(y.shape)}")
    if int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, got min {int(y.min())}")
    return x, y, int(y.max())


def _check_num_classes(outputs: int, y_max: int) -> None:
    if y_max >= outputs:
        raise ValueError(f"label {y_max} is out of range for a model with {outputs} outputs")


def _check_seeds(seeds: Sequence[int] | None, B: int, config: TrainConfig) -> list[int]:
    if seeds is None:
        return [config.seed + b for b in range(B)]
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) != B:
        raise ValueError(f"seeds must be a sequence of B={B} ints, got {seeds!r}")
    return [check_int(f"seeds[{b}]", s, 0) for b, s in enumerate(seeds)]


def _check_config(config: object) -> TrainConfig:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return config


def _check_per_model(name: str, values: object, B: int, *, positive: bool) -> list[float] | None:
    """``values`` (``None`` or a sequence / 1-D NumPy array of ``B`` finite reals, ``> 0`` if ``positive`` else
    ``>= 0``) as a list of floats."""
    if values is None:
        return None
    if type(values).__module__ == "numpy" and getattr(values, "ndim", None) == 1:
        values = list(values)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be None or a sequence of B={B} real numbers, got {type(values).__name__}")
    if len(values) != B:
        raise ValueError(f"{name} must have one entry per model (B={B}), got {len(values)}")
    return [check_real(f"{name}[{b}]", v, 0.0, low_open=positive) for b, v in enumerate(values)]


def _per_model_schedule(config: TrainConfig, total: int, base_lrs: Sequence[float]) -> torch.Tensor:
    """``(T, B)`` float64: column ``b`` is ``replace(config, lr=base_lrs[b]).lr_at(t, T)`` (the very floats
    :func:`train_classifier` uses with that config)."""
    columns: dict[float, list[float]] = {}
    for lr in base_lrs:
        if lr not in columns:
            own = replace(config, lr=lr)
            columns[lr] = [own.lr_at(t, total) for t in range(total)]
    return torch.tensor([columns[lr] for lr in base_lrs], dtype=torch.float64).T.contiguous()


# ----------------------------------------------------------------------------------------------- loop
def _run_epochs(n: int, config: TrainConfig, seeds: Sequence[int], device: torch.device,
                step: Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor],
                base_lrs: Sequence[float] | None = None, lr_dtype: torch.dtype | None = None) -> TrainHistory:
    """Drive ``step(idx (G, bs) on device, lr) -> losses (G,)`` over T steps with one generator per seed.

    ``lr`` is the float ``config.lr_at(t, T)``, or with ``base_lrs`` (one per model) a ``(G,)`` tensor of
    ``lr_dtype`` on ``device`` holding each model's own schedule (history ``lr`` is then ``(T, G)``).
    """
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    total, per_epoch, bs = config.total_steps(n), config.steps_per_epoch(n), config.batch_size
    if base_lrs is None:
        lrs = [config.lr_at(t, total) for t in range(total)]
        lr_history = torch.tensor(lrs, dtype=torch.float64)
    else:
        lr_history = _per_model_schedule(config, total, base_lrs)
        lrs = lr_history.to(device, lr_dtype).unbind(0)
    epoch_losses, t = [], 0
    while t < total:
        order = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        loss_sum, count = 0.0, 0
        for j in range(min(per_epoch, total - t)):
            idx = order[:, j * bs:(j + 1) * bs]
            loss_sum = loss_sum + step(idx, lrs[t]) * idx.shape[1]
            count, t = count + idx.shape[1], t + 1
        epoch_losses.append((loss_sum / count).detach().to("cpu", torch.float64))
    return TrainHistory(loss=torch.stack(epoch_losses), lr=lr_history)


def _gather(data: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``data[idx]``: rows ``idx`` (any shape) of ``data`` ``(n, *)`` -> ``(*idx.shape, *)`` via ``index_select``
    (much faster than advanced indexing for 2-D ``idx`` on CPU)."""
    return data.index_select(0, idx.reshape(-1)).view(*idx.shape, *data.shape[1:])


def _stacked_loss(out: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-model mean loss ``(B,)`` from outputs ``(B, bs, k)`` and targets ``(B, bs)`` / ``(B, bs, k)``."""
    if loss == "cross_entropy":
        per_sample = F.cross_entropy(out.flatten(0, 1), target.flatten(), reduction="none")
        return per_sample.view(out.shape[:2]).mean(1)
    return (out - target.view(out.shape)).square().flatten(1).mean(1)


def _per_model(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``values`` ``(B,)`` viewed as ``(B, 1, …, 1)`` to broadcast against a stacked parameter ``p``."""
    return values.view(-1, *([1] * (p.dim() - 1)))


@torch.no_grad()
def _sgd_update(params: list[torch.Tensor], grads: Sequence[torch.Tensor], masks: list[torch.Tensor | None],
                bufs: list[torch.Tensor | None], lr: float | torch.Tensor, config: TrainConfig,
                weight_decay: float | torch.Tensor | None = None) -> None:
    """One ``torch.optim.SGD`` step (no dampening) on ``params`` in place; masked entries get zero gradient.

    ``lr`` and ``weight_decay`` (default ``config.weight_decay``) are floats shared by all models or ``(B,)``
    tensors (one per model, the stacked parameters' dtype and device).
    """
    if weight_decay is None:
        weight_decay = config.weight_decay
    for i, (p, g, mask) in enumerate(zip(params, grads, masks)):
        if mask is not None:
            g = g.mul_(mask)
        if isinstance(weight_decay, torch.Tensor):
            g = g.addcmul(p, _per_model(weight_decay, p))
        elif weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if config.momentum != 0:
            if bufs[i] is None:
                bufs[i] = g.clone()
            else:
                bufs[i].mul_(config.momentum).add_(g)
            g = g.add(bufs[i], alpha=config.momentum) if config.nesterov else bufs[i]
        if isinstance(lr, torch.Tensor):
            p.addcmul_(g, _per_model(lr, p), value=-1)
        else:
            p.add_(g, alpha=-lr)


def train_stacked(stacked: StackedMLP, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                  seeds: Sequence[int] | None = None, *, lrs: Sequence[float] | None = None,
                  weight_decays: Sequence[float] | None = None) -> tuple[StackedMLP, TrainHistory]:
    """Train a copy of ``stacked`` (all ``B`` models at once) with the module's SGD recipe.

    Args:
        x: ``(n, *)`` inputs shared by all models, flattened to ``(n, h_0)``, the stack's dtype; moved to its
            device. y: ``(n,)`` int64 labels (cross-entropy) or ``(n,)`` / ``(n, h_L)`` float targets (mse).
        seeds: ``B`` data-order seeds (default ``config.seed + b``).
        lrs: ``B`` peak learning rates (finite, > 0) overriding ``config.lr`` per model; model ``b`` follows
            the schedule of ``dataclasses.replace(config, lr=lrs[b])``. Default: ``config.lr`` for all.
        weight_decays: ``B`` coupled L2 coefficients (finite, >= 0) overriding ``config.weight_decay`` per model.

    With ``lrs`` / ``weight_decays``, model ``b`` equals :func:`train_classifier` with
    ``replace(config, lr=lrs[b], weight_decay=weight_decays[b])`` and ``seed=seeds[b]`` (up to float rounding;
    tested), so a learning-rate × seed sweep runs as one stack.

    Returns the trained stack (padding still exactly zero) and a history with ``loss`` ``(epochs, B)`` and
    ``lr`` ``(T,)``, or ``(T, B)`` (each model's own schedule) when ``lrs`` is given.
    """
    if not isinstance(stacked, StackedMLP):
        raise TypeError(f"stacked must be a StackedMLP, got {type(stacked).__name__}")
    config = _check_config(config)
    base_lrs = _check_per_model("lrs", lrs, len(stacked), positive=True)
    wds = _check_per_model("weight_decays", weight_decays, len(stacked), positive=False)
    stacked = copy.deepcopy(stacked)
    params, masks = stacked.param_list(), stacked.mask_list()
    x, y, y_max = _check_data(x, y, config.loss, params[0].dtype)
    h_in, h_out = stacked.padded_widths[0], stacked.padded_widths[-1]
    if x[0].numel() != h_in:
        raise ValueError(f"x has {x[0].numel()} features per sample, the stacked models take {h_in}")
    if config.loss == "mse" and y[0].numel() != h_out:
        raise ValueError(f"mse targets have {y[0].numel()} values per sample, the models output {h_out}")
    _check_num_classes(h_out, y_max)
    device = params[0].device
    x, y = x.reshape(x.shape[0], h_in).to(device), y.to(device)
    bufs: list[torch.Tensor | None] = [None] * len(params)
    dtype = params[0].dtype
    weight_decay = config.weight_decay if wds is None else torch.tensor(wds, dtype=dtype, device=device)

    def step(idx: torch.Tensor, lr: float | torch.Tensor) -> torch.Tensor:
        losses = _stacked_loss(stacked(_gather(x, idx)), _gather(y, idx), config.loss)
        grads = torch.autograd.grad(losses.sum(), params)
        _sgd_update(params, list(grads), masks, bufs, lr, config, weight_decay)
        return losses.detach()

    history = _run_epochs(x.shape[0], config, _check_seeds(seeds, len(stacked), config), device, step,
                          base_lrs, dtype)
    return stacked, history


def train_mlps(models: Sequence[MLP | Mapping[str, torch.Tensor]], x: torch.Tensor, y: torch.Tensor,
               config: TrainConfig, seeds: Sequence[int] | None = None, *, pad: bool = False,
               lrs: Sequence[float] | None = None,
               weight_decays: Sequence[float] | None = None) -> tuple[list[MLP], TrainHistory]:
    """Train ``B`` MLPs (or MLP state dicts) at once; model ``b`` equals ``train_classifier(models[b], …,
    seed=seeds[b])`` up to float rounding (with ``lrs`` / ``weight_decays``: under the config with
    ``lr=lrs[b]``, ``weight_decay=weight_decays[b]``).

    Args:
        models: ``B`` MLPs or their ``state_dict()``s (not modified). pad: allow different hidden widths.
        x, y, config, seeds, lrs, weight_decays: as :func:`train_stacked`.

    Returns ``B`` new trained MLPs and the history (``loss`` ``(epochs, B)``; ``lr`` ``(T,)`` or ``(T, B)``).
    """
    if isinstance(models, Sequence) and not isinstance(models, (str, bytes)):
        models = [mlp_from_state(m) if isinstance(m, Mapping) else m for m in models]
    trained, history = train_stacked(stack_mlps(models, pad=pad), x, y, config, seeds, lrs=lrs,
                                     weight_decays=weight_decays)
    return unstack(trained), history


# ----------------------------------------------------------------------------------------------- any module
def _classifier_loss(out: torch.Tensor, target: torch.Tensor, loss: str, y_max: int) -> torch.Tensor:
    if loss == "cross_entropy":
        if out.dim() != 2:
            raise ValueError(f"cross_entropy needs model outputs (bs, classes), got {tuple(out.shape)}")
        _check_num_classes(out.shape[1], y_max)
        return F.cross_entropy(out, target)
    if target.numel() != out.numel():
        raise ValueError(f"mse targets {tuple(target.shape)} do not match model outputs {tuple(out.shape)}")
    return F.mse_loss(out, target.reshape(out.shape))


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                     seed: int | None = None,
                     device: torch.device | str | None = None) -> tuple[nn.Module, TrainHistory]:
    """Train a copy of any ``nn.Module`` (MLP, VGG11, ResNet20, …) with ``torch.optim.SGD`` and the schedule.

    The model is in train mode during training (BatchNorm uses batch statistics and updates its running
    statistics) and is returned in eval mode. Only parameters with ``requires_grad`` are optimised. No data
    augmentation: every epoch sees exactly the tensors passed (augment beforehand if needed).

    Args:
        model: not modified; its copy is moved to ``device`` when given.
        x: ``(n, *)`` inputs of the model's dtype; y: ``(n,)`` int64 labels or float targets (see
            :class:`TrainConfig`); both are moved to the model's device.
        seed: data-order seed (default ``config.seed``).

    Returns the trained model and its history (``loss`` ``(epochs,)``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    config = _check_config(config)
    seed = config.seed if seed is None else check_int("seed", seed, 0)
    model = copy.deepcopy(model)
    if device is not None:
        model = model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise ValueError("model has non-finite parameters")
    x, y, y_max = _check_data(x, y, config.loss, trainable[0].dtype)
    x, y = x.to(trainable[0].device), y.to(trainable[0].device)
    opt = torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                          nesterov=config.nesterov)
    model.train()

    def step(idx: torch.Tensor, lr: float) -> torch.Tensor:
        for group in opt.param_groups:
            group["lr"] = lr
        loss = _classifier_loss(model(_gather(x, idx[0])), _gather(y, idx[0]), config.loss, y_max)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach().view(1)

    history = _run_epochs(x.shape[0], config, [seed], x.device, step)
    model.eval()
    return model, TrainHistory(loss=history.loss[:, 0], lr=history.lr)


# ----------------------------------------------------------------------------------------------- cost
def flops_per_step(stacked: StackedMLP, batch_size: int, *, useful: bool = False) -> int:
    """Matmul FLOPs of one training step of ``stacked``: forward + backward ≈ 3 × forward.

    Forward of one layer is ``2 · bs · h_{k+1} · h_k`` multiply-adds per model (biases, ReLU, loss and the
    optimiser update are not counted). ``useful=False`` counts the padded shapes actually computed;
    ``useful=True`` counts each model's own widths.
    """
    if not isinstance(stacked, StackedMLP):
        raise TypeError(f"stacked must be a StackedMLP, got {type(stacked).__name__}")
    bs = check_int("batch_size", batch_size, 1)
    widths = stacked.widths if useful else [stacked.padded_widths] * len(stacked)
    forward = sum(2 * bs * a * b for w in widths for a, b in zip(w[:-1], w[1:]))
    return 3 * forward
