"""Interpolation curves, the named barrier definitions and the λ-grid rule (the merge pipeline: :mod:`lmcnb.merge`).

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

One λ-grid rule (:func:`check_lambdas`): a barrier's grid is finite, strictly increasing, within [0, 1] and holds
both endpoints. One curve object (:class:`InterpolationCurve`): named barriers (:meth:`~InterpolationCurve.barriers`)
and values read by λ (:meth:`~InterpolationCurve.at`, :meth:`~InterpolationCurve.midpoint`), never by index.

The path evaluation, the repairs (BatchNorm reset, temperature calibration) and the barrier modulo permutation
live in :mod:`lmcnb.merge`; their old names here (``evaluate_path``, ``evaluate``, ``barrier_modulo_permutation``,
``MatcherOutcome``, ``PermutationBarrier``, ``Evaluation``) are the same objects (``evaluate_path`` now takes an
evaluator and repairs, ``barrier_modulo_permutation`` is :func:`lmcnb.merge.compare`'s old name).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._validate import check_bool, check_choice

__all__ = ["InterpolationCurve", "barrier", "check_lambdas", "check_path_lambdas", "excess", "interpolate_states",
           "linear_baseline",
           # the merge pipeline's names, kept here for existing code (the objects of lmcnb.merge)
           "MatcherOutcome", "PermutationBarrier", "barrier_modulo_permutation", "evaluate_path"]

State = dict[str, torch.Tensor]

KINDS = ("linear", "midpoint")
METRICS = ("loss", "accuracy", "calibrated_loss")
#: What a curve can be read at a λ: the metrics, and the fitted temperature (a value, never a barrier).
VALUES = METRICS + ("temperature",)


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


def check_path_lambdas(lambdas: object, name: str = "lambdas") -> torch.Tensor:
    """The rule of a path's grid (points where θ_λ is evaluated, any order): ``(K,)`` finite, within [0, 1].
    Returns it as a float64 CPU tensor. A barrier's grid obeys the stricter :func:`check_lambdas`."""
    lam = _as_vector(name, lambdas)
    if bool((lam < 0).any()) or bool((lam > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1], got {lam.tolist()}")
    return lam


def check_lambdas(lambdas: object, name: str = "lambdas") -> torch.Tensor:
    """The one λ-grid rule of a barrier: ``(K,)`` finite, strictly increasing, within [0, 1], with both endpoints
    0 and 1. Returns the grid as a float64 CPU tensor (``ValueError``/``TypeError`` naming the rule otherwise)."""
    lam = check_path_lambdas(lambdas, name)
    if lam.numel() > 1 and not bool((lam[1:] > lam[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing, got {lam.tolist()}")
    if lam[0] != 0 or lam[-1] != 1:
        raise ValueError(f"{name} must include the endpoints 0 and 1, got {lam.tolist()}")
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
        lam_k = check_path_lambdas(lam, "lam")
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
def linear_baseline(v0: torch.Tensor, v1: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """The one formula of the linear baseline ``(1 − λ) v0 + λ v1`` of every barrier in the package.

    Computed like ``torch.lerp`` (``v0 + λ (v1 − v0)`` for λ < ½, ``v1 − (1 − λ)(v1 − v0)`` otherwise, unfused), so
    it is exact at λ ∈ {0, 1} and when ``v0 = v1``. Tensors broadcast (e.g. ``v0, v1 (B, 1)`` and ``lam (K,)``
    give ``(B, K)``); ``lam`` must already be in the values' dtype and device.
    """
    return torch.where(lam < 0.5, v0 + lam * (v1 - v0), v1 - (1 - lam) * (v1 - v0))


def excess(values: object, lambdas: object, *, higher_is_better: bool = False) -> torch.Tensor:
    """Per-λ excess over the linear baseline, ``(K,)`` float64.

    ``L(λ) − ((1−λ) L(0) + λ L(1))`` for a loss; the sign is flipped for a metric where higher is better
    (accuracy), so a positive excess is always "worse than the baseline". ``values (K,)`` and ``lambdas (K,)``
    as in :func:`barrier`.
    """
    lam = check_lambdas(lambdas)
    v = _as_vector("values", values)
    if v.shape != lam.shape:
        raise ValueError(f"values must have one entry per lambda ({lam.numel()}), got {v.numel()}")
    check_bool("higher_is_better", higher_is_better)
    gap = v - linear_baseline(v[0], v[-1], lam)
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
    half = (check_lambdas(lambdas) == 0.5).nonzero()
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
        lam = check_lambdas(self.lambdas)
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
        """The ``(K,)`` values of ``metric`` ∈ {"loss", "accuracy", "calibrated_loss", "temperature"}."""
        check_choice("metric", metric, VALUES)
        v = {"loss": self.losses, "accuracy": self.accuracies, "calibrated_loss": self.calibrated_losses,
             "temperature": self.temperatures}[metric]
        if v is None:
            raise ValueError(f"this curve has no {metric} values (accuracy needs int64 labels; calibrated_loss "
                             f"needs the merge.CalibrateTemperature repair)")
        return v

    def excess(self, metric: str = "loss") -> torch.Tensor:
        """Per-λ excess over the linear baseline ``(K,)`` (sign flipped for accuracy); see :func:`excess`."""
        check_choice("metric", metric, METRICS)
        return excess(self.values(metric), self.lambdas, higher_is_better=metric == "accuracy")

    def barrier(self, kind: str = "linear", metric: str = "loss") -> float:
        """The ``kind`` barrier ("linear" or "midpoint") of ``metric``; see :func:`barrier`."""
        check_choice("metric", metric, METRICS)
        return barrier(self.values(metric), self.lambdas, kind, higher_is_better=metric == "accuracy")

    def barriers(self, metric: str = "loss") -> dict[str, float]:
        """Every named barrier of ``metric`` on this grid: ``{"linear": …, "midpoint": …}`` (midpoint only if
        λ = ½ is on the grid)."""
        kinds = KINDS if bool((self.lambdas == 0.5).any()) else ("linear",)
        return {kind: self.barrier(kind, metric) for kind in kinds}

    def at(self, lam: float, metric: str = "loss") -> float:
        """The value of ``metric`` (or ``"temperature"``, the fitted T(λ)) at the grid point λ = ``lam`` (exactly on
        the grid; never read by index)."""
        hit = (self.lambdas == float(lam)).nonzero()
        if hit.numel() == 0:
            raise ValueError(f"lambda = {lam} is not on this curve's grid {self.lambdas.tolist()}")
        return float(self.values(metric)[hit[0, 0]])

    def midpoint(self, metric: str = "loss") -> float:
        """``metric`` at θ_½, the merged model (raw value, not a barrier)."""
        return self.at(0.5, metric)

    def endpoints(self, metric: str = "loss") -> tuple[float, float]:
        """``metric`` at λ = 0 (model a) and λ = 1 (model b)."""
        return self.at(0.0, metric), self.at(1.0, metric)


_MERGE_NAMES = frozenset({"evaluate_path", "evaluate", "Evaluation", "barrier_modulo_permutation", "MatcherOutcome",
                          "PermutationBarrier", "LOSSES", "BN_MODES", "AUTO_VECTORIZE", "CHUNK_ELEMENTS", "LossFn"})


def __getattr__(name: str) -> Any:
    if name in _MERGE_NAMES:  # the path evaluation moved to lmcnb.merge (same objects)
        from . import merge

        return getattr(merge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
