"""Interpolation curves, the named barrier definitions, and the barrier modulo permutation.

Notation: endpoint states θ_a, θ_b (``state_dict`` dictionaries, parameters and buffers), the path
``θ_λ = (1 − λ) θ_a + λ θ_b`` (λ = 0 is model a), a metric ``L(λ) = L(θ_λ)`` on a grid ``0 = λ_1 < … < λ_K = 1``.

Barrier definitions (GUIDE §6; the papers disagree, so always name the one used):

- ``linear`` (default; Frankle et al., Entezari et al.): ``sup_λ [L(θ_λ) − ((1−λ) L(θ_a) + λ L(θ_b))]``. The
  endpoints are on the grid and contribute 0, so it is ≥ 0; it is 0 for a loss convex in θ.
- ``midpoint`` (Ito et al. Table 1): ``L(θ_½) − ½ (L(θ_a) + L(θ_b))``; needs λ = ½ on the grid; can be < 0.
- accuracy versions flip the sign (the drop below the linear baseline): ``sup_λ [((1−λ) A_a + λ A_b) − A(θ_λ)]``
  and ``½ (A_a + A_b) − A(θ_½)``. Raw ``L(θ_½)`` is not a barrier.

The baseline ``(1−λ) L_a + λ L_b`` is computed like ``torch.lerp`` (exact at λ ∈ {0, 1} and when L_a = L_b),
and the states likewise with ``torch.lerp``, so identical endpoints give a barrier of exactly 0.

:func:`evaluate_path` evaluates the model *functionally* (``torch.func.functional_call``) on interpolated
states; it never copies the model per λ. With ``vectorize=True`` a chunk of interpolated states is stacked
along a leading λ axis and ``torch.func.vmap`` runs the chunk in one call; ``False`` loops over λ. Measured on
a 2-core CPU (see :data:`AUTO_VECTORIZE`), the loop is faster except for tiny networks, so ``"auto"``
vectorises on CUDA only.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from . import calibration, renorm
from ._validate import check_bool, check_choice, check_int
from .permutation import permute_model

__all__ = ["InterpolationCurve", "MatcherOutcome", "PermutationBarrier", "barrier", "barrier_modulo_permutation",
           "evaluate_path", "excess", "interpolate_states"]

State = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

KINDS = ("linear", "midpoint")
METRICS = ("loss", "accuracy", "calibrated_loss")
LOSSES = ("cross_entropy", "mse")
BN_MODES = ("interpolate", "reset")
#: ``vectorize="auto"`` uses vmap on these device types only. Measured on the project's 2-core CPU (torch 2.13,
#: 1000 inputs, 25 λ, one thread, best of 5–15 runs, CPU time): 784-512-512-512-10 MLP (float32) loop 0.91 s vs
#: vmap 1.34 s; TwoLayerNet d=50, m=256 (float64) loop 0.040 s vs vmap 0.119 s; d=100, m=1024 0.36 s vs 0.55 s;
#: only a tiny d=10, m=16 net favours vmap (0.0058 s vs 0.0067 s). Batched matmuls are FLOP-bound on CPU, so
#: stacking λ buys nothing there. CUDA is listed on the usual kernel-launch argument, not measured here.
AUTO_VECTORIZE = frozenset({"cuda"})
#: Default bound on the number of interpolated parameter entries held at once (λ chunk × parameters).
CHUNK_ELEMENTS = 2 ** 26


# ----------------------------------------------------------------------------------------------- validation
def _as_vector(name: str, values: object) -> torch.Tensor:
    """A finite, non-empty, real 1-D sequence as a float64 CPU tensor ``(K,)``."""
    if isinstance(values, torch.Tensor):
        t = values.detach().cpu()
    elif isinstance(values, (np.ndarray, Sequence)) and not isinstance(values, (str, bytes)):
        arr = np.asarray(values)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(arr.copy())
    else:
        raise TypeError(f"{name} must be a 1-D tensor, array or sequence of numbers, got {type(values).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got {t.dtype}")
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf: {t.tolist()}")
    return t


def _check_lambdas(lambdas: object) -> torch.Tensor:
    """λ grid ``(K,)``: finite, strictly increasing, within [0, 1], with both endpoints 0 and 1."""
    lam = _as_vector("lambdas", lambdas)
    if bool((lam < 0).any()) or bool((lam > 1).any()):
        raise ValueError(f"lambdas must lie in [0, 1], got {lam.tolist()}")
    if lam.numel() > 1 and not bool((lam[1:] > lam[:-1]).all()):
        raise ValueError(f"lambdas must be strictly increasing, got {lam.tolist()}")
    if lam[0] != 0 or lam[-1] != 1:
        raise ValueError(f"lambdas must include the endpoints 0 and 1, got {lam.tolist()}")
    return lam


def _check_state(name: str, state: object) -> Mapping[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise TypeError(f"{name} must be a non-empty state_dict mapping, got {type(state).__name__}")
    for key, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{key!r}] must be a tensor, got {type(t).__name__}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}[{key!r}] contains NaN or inf")
    return state


def _check_pair(state_a: object, state_b: object) -> tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]:
    """Two states with the same keys, and per key the same shape, dtype and device."""
    a, b = _check_state("state_a", state_a), _check_state("state_b", state_b)
    if set(a) != set(b):
        raise ValueError(f"state_a and state_b have different keys: only in a {sorted(set(a) - set(b))}, "
                         f"only in b {sorted(set(b) - set(a))}")
    for key in a:
        ta, tb = a[key], b[key]
        if ta.shape != tb.shape or ta.dtype != tb.dtype or ta.device != tb.device:
            raise ValueError(f"state entry {key!r} differs: {tuple(ta.shape)} {ta.dtype} {ta.device} in a vs "
                             f"{tuple(tb.shape)} {tb.dtype} {tb.device} in b")
    return a, b


def _check_lam_scalar(lam: object) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number or a 1-D tensor, got {type(lam).__name__}")
    if not math.isfinite(float(lam)) or not 0 <= float(lam) <= 1:
        raise ValueError(f"lam must be finite and in [0, 1], got {lam}")
    return float(lam)


# ----------------------------------------------------------------------------------------------- interpolation
def interpolate_states(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                       lam: float | torch.Tensor) -> State:
    """The interpolated state θ_λ = (1 − λ) θ_a + λ θ_b, or K of them stacked.

    Args:
        state_a, state_b: ``state_dict``-like mappings with equal keys, shapes, dtypes and devices.
        lam: a float λ ∈ [0, 1], or a 1-D tensor ``(K,)`` of λ's in [0, 1] (rounded to each entry's dtype).

    Returns a new state; each floating entry of shape ``s`` becomes ``s`` (float λ) or ``(K, *s)`` (tensor λ),
    computed with ``torch.lerp`` (exactly θ_a at λ = 0, θ_b at λ = 1). Non-floating entries (BatchNorm's
    ``num_batches_tracked``) are taken from ``state_a`` (repeated K times for tensor λ). Inputs are not modified.
    """
    a, b = _check_pair(state_a, state_b)
    if isinstance(lam, torch.Tensor):
        lam_k = _as_vector("lam", lam)
        if bool((lam_k < 0).any()) or bool((lam_k > 1).any()):
            raise ValueError(f"lam must lie in [0, 1], got {lam_k.tolist()}")
        return _stack_interpolations(a, b, lam_k)
    w = _check_lam_scalar(lam)
    return {k: torch.lerp(a[k], b[k], w) if a[k].is_floating_point() else a[k].clone() for k in a}


def _stack_interpolations(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], lam: torch.Tensor) -> State:
    """``lam (K,)`` float64 → the K interpolated states stacked along a new leading axis."""
    out: State = {}
    for key, ta in a.items():
        if ta.is_floating_point():
            w = lam.to(ta.dtype).to(ta.device).view(-1, *([1] * ta.dim()))
            out[key] = torch.lerp(ta.unsqueeze(0), b[key].unsqueeze(0), w)
        else:
            out[key] = ta.unsqueeze(0).expand(lam.numel(), *ta.shape).clone()
    return out


# ----------------------------------------------------------------------------------------------- barriers
def excess(values: object, lambdas: object, *, higher_is_better: bool = False) -> torch.Tensor:
    """Per-λ excess over the linear baseline, ``(K,)`` float64.

    ``L(λ) − ((1−λ) L(0) + λ L(1))`` for a loss; the sign is flipped for a metric where higher is better
    (accuracy), so a positive excess is always "worse than the baseline". ``values (K,)`` and ``lambdas (K,)``
    as in :func:`barrier`.
    """
    lam = _check_lambdas(lambdas)
    v = _as_vector("values", values)
    if v.shape != lam.shape:
        raise ValueError(f"values must have one entry per lambda ({lam.numel()}), got {v.numel()}")
    check_bool("higher_is_better", higher_is_better)
    v0, v1 = v[0], v[-1]
    baseline = torch.where(lam < 0.5, v0 + lam * (v1 - v0), v1 - (1 - lam) * (v1 - v0))
    gap = v - baseline
    return -gap if higher_is_better else gap


def barrier(values: object, lambdas: object, kind: str = "linear", *, higher_is_better: bool = False) -> float:
    """A named barrier of the curve ``values (K,)`` over the grid ``lambdas (K,)`` (see the module docstring).

    Args:
        values: finite metric values L(θ_λ), one per λ.
        lambdas: strictly increasing, in [0, 1], including 0 and 1 (and ½ for ``kind="midpoint"``).
        kind: ``"linear"`` (sup over the grid of the excess) or ``"midpoint"`` (the excess at λ = ½).
        higher_is_better: True for accuracy-like metrics (sign flipped).
    """
    check_choice("kind", kind, KINDS)
    gap = excess(values, lambdas, higher_is_better=higher_is_better)
    if kind == "linear":
        return float(gap.max())
    half = (_check_lambdas(lambdas) == 0.5).nonzero()
    if half.numel() == 0:
        raise ValueError("kind='midpoint' needs lambda = 0.5 exactly on the grid (e.g. an odd-length linspace)")
    return float(gap[half[0, 0]])


@dataclass(frozen=True)
class InterpolationCurve:
    """Metrics along θ_λ on a λ grid; every field is a float64 CPU tensor ``(K,)`` (or None).

    Attributes:
        lambdas: strictly increasing grid in [0, 1] with both endpoints.
        losses: mean loss per λ.
        accuracies: fraction correct per λ (classification), else None.
        calibrated_losses: mean NLL after temperature scaling with ``temperatures`` (fitted on a held-out
            split, applied to the evaluation split), else None.
        temperatures: fitted temperature T(λ) > 0 per λ, else None.

    The ``calibrated_loss`` barrier calibrates every point, endpoints included (Ito et al. protocol (ii)); for
    protocol (i), calibrating only the merged models, pass ``calibrated_losses`` with the raw endpoint losses
    ``losses[[0, -1]]`` put back to the module-level :func:`barrier`.
    """

    lambdas: torch.Tensor
    losses: torch.Tensor
    accuracies: torch.Tensor | None = None
    calibrated_losses: torch.Tensor | None = None
    temperatures: torch.Tensor | None = None

    def __post_init__(self) -> None:
        lam = _check_lambdas(self.lambdas)
        object.__setattr__(self, "lambdas", lam)
        for name in ("losses", "accuracies", "calibrated_losses", "temperatures"):
            value = getattr(self, name)
            if value is None:
                continue
            v = _as_vector(name, value)
            if v.shape != lam.shape:
                raise ValueError(f"{name} must have one entry per lambda ({lam.numel()}), got {v.numel()}")
            object.__setattr__(self, name, v)
        if (self.calibrated_losses is None) != (self.temperatures is None):
            raise ValueError("calibrated_losses and temperatures must be given together")
        if self.temperatures is not None and not bool((self.temperatures > 0).all()):
            raise ValueError(f"temperatures must be > 0, got {self.temperatures.tolist()}")
        if self.accuracies is not None and not bool(((self.accuracies >= 0) & (self.accuracies <= 1)).all()):
            raise ValueError(f"accuracies must lie in [0, 1], got {self.accuracies.tolist()}")

    def values(self, metric: str = "loss") -> torch.Tensor:
        """The ``(K,)`` values of ``metric`` ∈ {"loss", "accuracy", "calibrated_loss"}."""
        check_choice("metric", metric, METRICS)
        v = {"loss": self.losses, "accuracy": self.accuracies, "calibrated_loss": self.calibrated_losses}[metric]
        if v is None:
            raise ValueError(f"this curve has no {metric} values (accuracy needs int64 labels; calibrated_loss "
                             f"needs calibration_split)")
        return v

    def excess(self, metric: str = "loss") -> torch.Tensor:
        """Per-λ excess over the linear baseline ``(K,)`` (sign flipped for accuracy); see :func:`excess`."""
        return excess(self.values(metric), self.lambdas, higher_is_better=metric == "accuracy")

    def barrier(self, kind: str = "linear", metric: str = "loss") -> float:
        """The ``kind`` barrier ("linear" or "midpoint") of ``metric``; see :func:`barrier`."""
        return barrier(self.values(metric), self.lambdas, kind, higher_is_better=metric == "accuracy")


# ----------------------------------------------------------------------------------------------- data
def _as_xy(name: str, split: object) -> tuple[Any, Any]:
    """``(x, y)`` from a pair or from an object with ``.x`` and ``.y`` (``lmcnb.data.Split``)."""
    if isinstance(split, (tuple, list)) and len(split) == 2:
        return split[0], split[1]
    if hasattr(split, "x") and hasattr(split, "y"):
        return split.x, split.y
    raise TypeError(f"{name} must be an (x, y) pair or have .x and .y, got {type(split).__name__}")


def _check_xy(name: str, x: object, y: object, loss: str | LossFn, dtype: torch.dtype,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``x (n, *)`` of the states' dtype and device, targets ``y (n, …)`` matching ``loss``."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: x and y must be torch.Tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name}: x must be a non-empty (n, *) tensor, got shape {tuple(x.shape)}")
    if x.dtype != dtype or x.device != device:
        raise TypeError(f"{name}: x must have the states' dtype {dtype} on {device}, got {x.dtype} on {x.device}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: x contains NaN or inf")
    if y.dim() < 1 or y.shape[0] != x.shape[0] or y.device != device:
        raise ValueError(f"{name}: y must have n={x.shape[0]} rows on {device}, got shape {tuple(y.shape)} on "
                         f"{y.device}")
    if loss == "cross_entropy" and (y.dtype != torch.long or y.dim() != 1):
        raise TypeError(f"{name}: cross_entropy labels y must be int64 (torch.long) of shape (n,), got {y.dtype} "
                        f"{tuple(y.shape)}")
    if loss == "cross_entropy" and int(y.min()) < 0:
        raise ValueError(f"{name}: labels must be >= 0, got min {int(y.min())}")
    if loss == "mse" and y.dtype != dtype:
        raise TypeError(f"{name}: mse targets y must have the states' dtype {dtype}, got {y.dtype}")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name}: y contains NaN or inf")
    return x, y


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    size = x.shape[0] if batch_size is None else batch_size
    return zip(x.split(size), y.split(size))


# ----------------------------------------------------------------------------------------------- forward
def _forward(model: nn.Module, stacked: State, fixed: State, x: torch.Tensor, vectorize: bool) -> torch.Tensor:
    """Outputs ``(k, bs, *out)`` of ``model`` under each of the k stacked floating states (``fixed``: the others)."""
    def call(params: State, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **fixed}, (xb,), strict=True)

    if vectorize:
        return vmap(call, in_dims=(0, None))(stacked, x)
    k = next(iter(stacked.values())).shape[0]
    return torch.stack([call({n: t[i] for n, t in stacked.items()}, x) for i in range(k)])


def _per_sample_loss(out: torch.Tensor, y: torch.Tensor, loss: str | LossFn) -> torch.Tensor:
    """Per-sample losses ``(k, bs)`` from outputs ``out (k, bs, *out)`` and targets ``y (bs, …)``."""
    k, bs = out.shape[:2]
    if loss == "cross_entropy":
        if out.dim() != 3:
            raise ValueError(f"cross_entropy needs model outputs (n, C), got {tuple(out.shape[1:])}")
        if int(y.max()) >= out.shape[2]:
            raise ValueError(f"label {int(y.max())} is out of range for a model with {out.shape[2]} outputs")
        return F.cross_entropy(out.flatten(0, 1), y.repeat(k), reduction="none").view(k, bs)
    if loss == "mse":
        if out.shape[1:] != y.shape:
            raise ValueError(f"mse targets {tuple(y.shape)} do not match model outputs {tuple(out.shape[1:])}")
        return (out - y).pow(2).reshape(k, bs, -1).mean(dim=2)
    values = loss(out.flatten(0, 1), y.expand(k, *y.shape).flatten(0, 1))
    if not isinstance(values, torch.Tensor) or values.shape != (k * bs,):
        raise ValueError(f"a callable loss must return per-sample losses of shape ({k * bs},), got "
                         f"{tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__}")
    return values.view(k, bs)


def _is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    return out.dim() == 3 and y.dtype == torch.long and y.dim() == 1


# ----------------------------------------------------------------------------------------------- path evaluation
@dataclass
class _Path:
    """Everything :func:`evaluate_path` needs per λ chunk (a private, validated bundle)."""

    model: nn.Module  # the working copy, eval mode
    state_a: Mapping[str, torch.Tensor]
    state_b: Mapping[str, torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    loss: str | LossFn
    batch_size: int | None
    vectorize: bool
    calibration: tuple[torch.Tensor, torch.Tensor] | None
    bn_inputs: torch.Tensor | Iterable | None
    bn_batch_size: int | None
    temperature_bounds: tuple[float, float]
    sums: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def chunk(self, lam: torch.Tensor) -> None:
        """Evaluate the λ's of ``lam (k,)`` and append per-λ sums to ``self.sums``."""
        stacked = _stack_interpolations(self.state_a, self.state_b, lam)
        fixed = {n: t[0] for n, t in stacked.items() if not t.is_floating_point()}
        stacked = {n: t for n, t in stacked.items() if t.is_floating_point()}
        if self.bn_inputs is not None:
            stacked, fixed = self._reset_bn(stacked, fixed)
        temps = self._temperatures(stacked, fixed) if self.calibration is not None else None
        self._accumulate(stacked, fixed, temps)

    def _reset_bn(self, stacked: State, fixed: State) -> tuple[State, State]:
        """Per λ: load θ_λ into the working copy, re-estimate its BatchNorm statistics, read them back."""
        buffers = {n for n, _ in self.model.named_buffers()}
        stacked = {n: t.clone() for n, t in stacked.items()}
        for i in range(next(iter(stacked.values())).shape[0]):
            self.model.load_state_dict({**{n: t[i] for n, t in stacked.items()}, **fixed})
            renorm.reset_bn_(self.model, self.bn_inputs, batch_size=self.bn_batch_size)
            new = self.model.state_dict()
            for n in buffers & set(stacked):
                stacked[n][i] = new[n]
            fixed = {n: new[n].clone() for n in fixed}
        self.model.eval()
        return stacked, fixed

    def _temperatures(self, stacked: State, fixed: State) -> torch.Tensor:
        """Temperatures ``(k,)`` fitted on the calibration split's logits ``(k, n_cal, C)``."""
        x_cal, y_cal = self.calibration
        logits = torch.cat([_forward(self.model, stacked, fixed, xb, self.vectorize)
                            for xb, _ in _batches(x_cal, y_cal, self.batch_size)], dim=1)
        if not _is_classification(logits, y_cal):
            raise ValueError(f"calibration needs (n, C) logits and int64 labels, got outputs "
                             f"{tuple(logits.shape[1:])} and labels {y_cal.dtype}")
        return calibration.fit_temperatures(logits, y_cal, bounds=self.temperature_bounds)

    def _accumulate(self, stacked: State, fixed: State, temps: torch.Tensor | None) -> None:
        k = next(iter(stacked.values())).shape[0]
        zero = torch.zeros(k, dtype=torch.float64, device=self.x.device)
        loss_sum, correct, cal_sum, classification = zero.clone(), zero.clone(), zero.clone(), False
        for xb, yb in _batches(self.x, self.y, self.batch_size):
            out = _forward(self.model, stacked, fixed, xb, self.vectorize)
            loss_sum += _per_sample_loss(out, yb, self.loss).double().sum(dim=1)
            classification = _is_classification(out, yb)
            if classification:
                correct += (out.argmax(dim=2) == yb).double().sum(dim=1)
            if temps is not None:
                cal_sum += calibration.calibrated_nll(out, yb, temps) * yb.shape[0]
        n = self.x.shape[0]
        self.sums.setdefault("losses", []).append(loss_sum / n)
        if classification:
            self.sums.setdefault("accuracies", []).append(correct / n)
        if temps is not None:
            self.sums.setdefault("calibrated_losses", []).append(cal_sum / n)
            self.sums.setdefault("temperatures", []).append(temps)


def _check_model_states(model: object, state_a: object, state_b: object) -> tuple[Mapping, Mapping]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    a, b = _check_pair(state_a, state_b)
    own = model.state_dict()
    if set(own) != set(a):
        raise ValueError(f"states do not fit {type(model).__name__}: missing {sorted(set(own) - set(a))}, "
                         f"unexpected {sorted(set(a) - set(own))}")
    bad = [k for k in own if own[k].shape != a[k].shape]
    if bad:
        raise ValueError(f"states do not fit {type(model).__name__}: shapes differ for {bad}")
    if not any(t.is_floating_point() for t in a.values()):
        raise ValueError("states have no floating-point entries to interpolate")
    return a, b


def _resolve_vectorize(vectorize: object, device: torch.device) -> bool:
    if isinstance(vectorize, bool):
        return vectorize
    if vectorize == "auto":
        return device.type in AUTO_VECTORIZE
    raise ValueError(f"vectorize must be 'auto', True or False, got {vectorize!r}")


def _check_bn(model: nn.Module, bn: object, bn_inputs: object) -> torch.Tensor | Iterable | None:
    check_choice("bn", bn, BN_MODES)
    if bn == "interpolate":
        if bn_inputs is not None:
            raise ValueError("bn_inputs is only used with bn='reset'")
        return None
    if not renorm.has_batchnorm(model):
        raise ValueError(f"bn='reset' needs a model with BatchNorm; {type(model).__name__} has none")
    if bn_inputs is None:
        raise ValueError("bn='reset' needs bn_inputs (training inputs to re-estimate BatchNorm statistics)")
    if isinstance(bn_inputs, Iterator):
        raise TypeError("bn_inputs must be a tensor or a re-iterable collection of batches (it is used once per "
                        "lambda), not a one-shot iterator")
    return bn_inputs


def evaluate_path(model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                  lambdas: object, x: torch.Tensor, y: torch.Tensor, loss: str | LossFn = "cross_entropy", *,
                  batch_size: int | None = None, vectorize: bool | str = "auto",
                  calibration_split: object = None, bn: str = "interpolate", bn_inputs: object = None,
                  bn_batch_size: int | None = None, lambda_chunk: int | None = None,
                  temperature_bounds: tuple[float, float] = calibration.DEFAULT_BOUNDS) -> InterpolationCurve:
    """Loss, accuracy and (optionally) calibrated loss of θ_λ for every λ on the grid.

    Args:
        model: the architecture (not modified, its own weights are not used): outputs ``(n, C)`` logits for
            classification or ``(n, …)`` predictions for regression.
        state_a, state_b: endpoint ``state_dict``s of ``model`` (same keys, shapes, dtypes, device).
        lambdas: ``(K,)`` strictly increasing in [0, 1], including 0 and 1.
        x: ``(n, *)`` evaluation inputs of the states' dtype and device; y: ``(n,)`` int64 labels for
            ``cross_entropy``, targets of the model's output shape and dtype for ``mse``.
        loss: ``"cross_entropy"``, ``"mse"`` (squared error averaged over output entries, then over samples), or
            a callable ``(outputs (N, …), targets (N, …)) -> (N,)`` per-sample losses.
        batch_size: evaluation batch size (None: all n at once).
        vectorize: ``True`` stacks a λ chunk and runs it with ``torch.func.vmap``; ``False`` loops over λ;
            ``"auto"`` picks by device (see :data:`AUTO_VECTORIZE`).
        calibration_split: held-out ``(x_cal, y_cal)`` (or an object with ``.x``/``.y``) on which a temperature
            T(λ) is fitted per λ (within ``temperature_bounds``, see :func:`lmcnb.calibration.fit_temperatures`);
            the calibrated NLL is then measured on ``(x, y)``. Needs ``cross_entropy``.
        bn: ``"interpolate"`` (default): eval mode with interpolated running statistics; ``"reset"``: the
            statistics are re-estimated per λ on ``bn_inputs`` (see :func:`lmcnb.renorm.reset_bn`, batches of
            ``bn_batch_size``), in a single working copy of the model.
        lambda_chunk: λ's evaluated at once (default: as many as keep ``chunk × parameters`` ≤
            :data:`CHUNK_ELEMENTS`).

    Returns an :class:`InterpolationCurve`. The model runs in eval mode throughout (dropout off).
    """
    a, b = _check_model_states(model, state_a, state_b)
    lam = _check_lambdas(lambdas)
    if not callable(loss):
        check_choice("loss", loss, LOSSES)
    like = next(t for t in a.values() if t.is_floating_point())
    x, y = _check_xy("(x, y)", x, y, loss, like.dtype, like.device)
    cal = None
    if calibration_split is not None:
        if loss != "cross_entropy":
            raise ValueError(f"calibration_split needs loss='cross_entropy', got {loss!r}")
        cal = _check_xy("calibration_split", *_as_xy("calibration_split", calibration_split), loss, like.dtype,
                        like.device)
    batch_size = check_int("batch_size", batch_size, 1, allow_none=True)
    path = _Path(copy.deepcopy(model).to(like.device).eval(), a, b, x, y, loss, batch_size,
                 _resolve_vectorize(vectorize, like.device), cal, _check_bn(model, bn, bn_inputs),
                 check_int("bn_batch_size", bn_batch_size, 1, allow_none=True),
                 calibration._check_bounds(temperature_bounds))
    numel = sum(t.numel() for t in a.values() if t.is_floating_point())
    chunk = check_int("lambda_chunk", lambda_chunk, 1, allow_none=True) or max(1, CHUNK_ELEMENTS // numel)
    with torch.no_grad():
        for lam_chunk in lam.split(chunk):
            path.chunk(lam_chunk)
    return InterpolationCurve(lam, **{k: torch.cat(v).cpu() for k, v in path.sums.items()})


@dataclass(frozen=True)
class Evaluation:
    """Mean ``loss`` of one model on ``(x, y)`` and its ``accuracy`` (classification) or None."""

    loss: float
    accuracy: float | None


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str | LossFn = "cross_entropy", *,
             batch_size: int | None = None) -> Evaluation:
    """Loss and accuracy of one model, with the same loss conventions as :func:`evaluate_path` (eval mode).

    Args: ``x (n, *)`` inputs of the model's dtype and device; ``y (n,)`` int64 labels for ``cross_entropy``,
    targets of the output shape for ``mse``; ``loss`` as in :func:`evaluate_path`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss):
        check_choice("loss", loss, LOSSES)
    like = next(t for t in model.state_dict().values() if t.is_floating_point())
    x, y = _check_xy("(x, y)", x, y, loss, like.dtype, like.device)
    was_training = model.training
    model.eval()
    loss_sum, correct, classification = 0.0, 0.0, False
    try:
        with torch.no_grad():
            for xb, yb in _batches(x, y, check_int("batch_size", batch_size, 1, allow_none=True)):
                out = model(xb)[None]
                loss_sum += float(_per_sample_loss(out, yb, loss).double().sum())
                classification = _is_classification(out, yb)
                if classification:
                    correct += float((out[0].argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    n = x.shape[0]
    return Evaluation(loss_sum / n, correct / n if classification else None)


# ----------------------------------------------------------------------------------------------- modulo permutation
@dataclass(frozen=True)
class MatcherOutcome:
    """One matcher's result: its ``MatchResult``, the curve between a and the aligned b, and the barrier."""

    match: Any
    curve: InterpolationCurve
    barrier: float


@dataclass(frozen=True)
class PermutationBarrier:
    """The barrier modulo permutation: ``value = min over matchers`` of the ``kind`` barrier of ``metric``.

    Attributes: ``outcomes`` (matcher name → :class:`MatcherOutcome`, in the given order), ``kind``, ``metric``,
    ``best`` (the first matcher attaining the minimum) and ``value``.
    """

    outcomes: dict[str, MatcherOutcome]
    kind: str
    metric: str
    best: str
    value: float


def _named_matchers(matchers: object) -> dict[str, Callable[..., Any]]:
    """``{name: matcher}`` from a mapping, or from a sequence of matchers named by ``.name`` (or ``__name__``)."""
    if isinstance(matchers, Mapping):
        named = dict(matchers)
        if not all(isinstance(k, str) for k in named):
            raise TypeError(f"matcher names must be str, got {list(named)}")
    elif isinstance(matchers, Sequence) and not isinstance(matchers, (str, bytes)):
        names = [getattr(m, "name", None) or getattr(m, "__name__", None) for m in matchers]
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"each matcher needs a str .name (or pass a dict name → matcher), got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"matcher names must be distinct, got {names}; pass a dict name → matcher")
        named = dict(zip(names, matchers))
    else:
        raise TypeError(f"matchers must be a sequence or a dict of matchers, got {type(matchers).__name__}")
    if not named:
        raise ValueError("matchers must not be empty")
    bad = [n for n, m in named.items() if not callable(m)]
    if bad:
        raise TypeError(f"matchers {bad} are not callable")
    return named


def barrier_modulo_permutation(model_a: nn.Module, model_b: nn.Module,
                               matchers: Sequence[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
                               x: torch.Tensor, y: torch.Tensor, lambdas: object, data_for_matching: object = None,
                               kind: str = "linear", metric: str = "loss", **path_kwargs: Any) -> PermutationBarrier:
    """The minimum over ``matchers`` of the barrier between model a and model b aligned by each matcher.

    ``matchers`` is a sequence of matchers (named by their ``.name``, e.g. ``matching.WeightMatching()``) or a
    dict ``name → matcher`` (to compare several settings of one matcher class). Each is called as
    ``matcher(model_a, model_b, data=data_for_matching)`` and returns a ``MatchResult`` whose ``.perms`` are
    applied to model b (``permutation.permute_model``); the path from a to the aligned b is evaluated with
    :func:`evaluate_path` (``path_kwargs``: loss, batch_size, vectorize, calibration_split, bn, bn_inputs, …).
    Matching data should not be the evaluation data ``(x, y)``. The result is an upper bound on the barrier
    minimised over *all* permutations (equal to it only if some matcher finds the optimal alignment).
    """
    for m in (model_a, model_b):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models must be nn.Modules, got {type(m).__name__}")
    if type(model_a) is not type(model_b):
        raise TypeError(f"models must share an architecture, got {type(model_a).__name__} and "
                        f"{type(model_b).__name__}")
    check_choice("kind", kind, KINDS)
    check_choice("metric", metric, METRICS)
    if metric == "calibrated_loss" and path_kwargs.get("calibration_split") is None:
        raise ValueError("metric='calibrated_loss' needs calibration_split=(x_cal, y_cal)")
    named = _named_matchers(matchers)
    state_a = model_a.state_dict()
    outcomes: dict[str, MatcherOutcome] = {}
    for name, matcher in named.items():
        match = matcher(model_a, model_b, data=data_for_matching)
        if not hasattr(match, "perms"):
            raise TypeError(f"matcher {name!r} returned {type(match).__name__}, which has no .perms")
        aligned = permute_model(model_b, match.perms)
        curve = evaluate_path(model_a, state_a, aligned.state_dict(), lambdas, x, y, **path_kwargs)
        outcomes[name] = MatcherOutcome(match, curve, curve.barrier(kind, metric))
    best = min(outcomes, key=lambda n: outcomes[n].barrier)
    return PermutationBarrier(outcomes, kind, metric, best, outcomes[best].barrier)
