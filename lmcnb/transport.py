"""Optimal transport (OT) between empirical measures of neurons, and Wasserstein distances.

Ferbach, Goujaud, Gidel & Dieuleveut (AISTATS 2024) read the neurons of a layer as the atoms of an empirical
measure, μ̂_A = (1/m) Σ_i δ_{w_i^A} and μ̂_B = (1/m) Σ_i δ_{w_i^B}, with w_i ∈ R^d the incoming weight vector
(row i of W ∈ R^{m×d}). Aligning the two layers is then an OT problem

    W_p^p(μ, ν) = min_{γ ∈ Π(a, b)} Σ_ij γ_ij ‖x_i − y_j‖^p,

and by Birkhoff–von Neumann (their Lemma B.3) the optimal coupling between two uniform measures with the same
number m of atoms can be taken to be a permutation matrix scaled by 1/m, so that

    W_p^p(μ̂_A, μ̂_B) = min_{π ∈ S_m} (1/m) Σ_i ‖w_i^A − w_{π(i)}^B‖^p,

a linear assignment problem solved exactly by :func:`hungarian` (:mod:`lmcnb.assignment`).
General weights or unequal sizes go through POT's exact network simplex (``ot.emd``) or its entropic
solver (Sinkhorn); POT is imported lazily, inside the functions that need it.

The ground norm is Euclidean, or the covariance-weighted norm ‖u‖_Σ = sqrt(uᵀ Σ u) of the deep-network
analysis (Σ = second moment of the previous layer's activations, so that ‖w_A − w_B‖²_Σ is the mean squared
pre-activation error of a matched pair).

Conventions: points are rows, ``X`` is ``(n, d)`` and ``Y`` is ``(m, d)``; a permutation ``perm`` pairs
``X[i]`` with ``Y[perm[i]]``, so ``Y.index_select(0, perm)`` is ``Y`` reordered to align with ``X`` (the
matchers' "permutation to apply to model b").
"""
from __future__ import annotations

import math
import warnings
from numbers import Real
from types import ModuleType

import numpy as np
import torch

from . import assignment
from .assignment import PLAN_TOL, is_permutation_plan, plan_to_permutation
from ._validate import check_bool, check_choice, check_int, check_real, check_tensor

__all__ = [
    "cost_matrix", "hungarian", "ot_plan", "ot_match", "wasserstein", "is_permutation_plan",
    "plan_to_permutation", "pot_permutation",
]

#: Names that lived here before the package was layered; they are experiment pipelines now.
_MOVED = {name: "lmcnb.experiments.ot_rates" for name in (
    "gaussian_sampler", "uniform_sampler", "subspace_sampler", "two_sample_wasserstein", "matching_dimensions")}

#: Relative tolerance on equal total mass of the weights (and on probability weights summing to 1).
MASS_RTOL = 1e-6
METHODS = ("emd", "sinkhorn")
BACKENDS = ("hungarian", "pot")


# ----------------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------------

def _import_ot() -> ModuleType:
    """Import POT lazily; turn a missing install into an ``ImportError`` that says what to install."""
    try:
        import ot
    except ImportError as err:
        raise ImportError(
            "lmcnb.transport needs the Python Optimal Transport package (POT) for this call: "
            "pip install POT (or pip install 'lmcnb[ot]')") from err
    return ot


def _check_tensor(name: str, t: object, ndim: int) -> torch.Tensor:
    """Check that ``t`` is a finite, non-empty floating tensor with ``ndim`` dimensions."""
    return check_tensor(name, t, ndim=ndim)


def _check_same(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Require equal dtype and device (nothing is silently cast or moved)."""
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


def _check_points(X: object, Y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two point clouds ``X`` ``(n, d)`` and ``Y`` ``(m, d)``."""
    X = _check_tensor("X", X, 2)
    Y = _check_tensor("Y", Y, 2)
    _check_same("X", X, "Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same dimension d, got X {tuple(X.shape)} and Y {tuple(Y.shape)}")
    return X, Y


def _check_weights(name: str, w: object, size: int, like: torch.Tensor) -> torch.Tensor:
    """Check a weight vector ``(size,)``: floating, finite, non-negative, positive total mass."""
    w = _check_tensor(name, w, 1)
    if w.shape[0] != size:
        raise ValueError(f"{name} must have {size} entries (one per point), got {w.shape[0]}")
    if w.device != like.device:
        raise ValueError(f"{name} must be on device {like.device}, got {w.device}")
    if bool((w < 0).any()):
        i = int(torch.nonzero(w < 0)[0, 0])
        raise ValueError(f"{name} must be non-negative, got {name}[{i}] = {float(w[i])}")
    if float(w.sum()) <= 0:
        raise ValueError(f"{name} must have a positive total mass, got sum {float(w.sum())}")
    return w


def _check_equal_mass(a: torch.Tensor, b: torch.Tensor) -> None:
    """Balanced OT needs Σ a = Σ b (relative tolerance :data:`MASS_RTOL`)."""
    sa, sb = float(a.double().sum()), float(b.double().sum())
    if abs(sa - sb) > MASS_RTOL * max(sa, sb):
        raise ValueError(f"a and b must have the same total mass, got sum(a) = {sa!r} and sum(b) = {sb!r}")


def _check_probability(name: str, w: torch.Tensor) -> None:
    """Weights of a probability measure sum to 1 (tolerance :data:`MASS_RTOL`)."""
    s = float(w.double().sum())
    if abs(s - 1.0) > MASS_RTOL:
        raise ValueError(f"{name} must sum to 1 (a probability measure), got sum {s!r}")


def _to_numpy64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


# ----------------------------------------------------------------------------------------------------------
# Costs
# ----------------------------------------------------------------------------------------------------------

def _psd_sqrt(metric: object, X: torch.Tensor) -> torch.Tensor:
    """Σ^{1/2} ``(d, d)`` of a symmetric positive semi-definite ``metric`` (checked within √eps)."""
    S = _check_tensor("metric", metric, 2)
    _check_same("metric", S, "X", X)
    d = X.shape[1]
    if S.shape != (d, d):
        raise ValueError(f"metric must have shape (d, d) = ({d}, {d}), got {tuple(S.shape)}")
    tol = math.sqrt(torch.finfo(S.dtype).eps) * max(float(S.abs().max()), torch.finfo(S.dtype).tiny)
    if float((S - S.T).abs().max()) > tol:
        raise ValueError("metric must be symmetric (max |Σ - Σᵀ| exceeds √eps · max |Σ|)")
    evals, evecs = torch.linalg.eigh((S + S.T) / 2)
    if float(evals.min()) < -tol * d:
        raise ValueError(f"metric must be positive semi-definite, got eigenvalue {float(evals.min()):.3g}")
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def cost_matrix(X: torch.Tensor, Y: torch.Tensor, p: float = 2, metric: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Ground-cost matrix ``C[i, j] = ‖X[i] − Y[j]‖^p`` (squared Euclidean for the default ``p = 2``).

    Args:
        X: points ``(n, d)``, e.g. the rows of a layer's weight ``W_A ∈ R^{m×d}``.
        Y: points ``(m, d)``, same dtype and device as ``X``.
        p: exponent ``p > 0`` of the norm.
        metric: optional symmetric PSD matrix ``Σ`` ``(d, d)``; then the norm is the covariance-weighted
            (Mahalanobis) ``‖u‖_Σ = sqrt(uᵀ Σ u)``, computed as the Euclidean norm of ``Σ^{1/2} u``.

    Returns:
        ``C`` ``(n, m)`` in the dtype and on the device of ``X``; entries are ``≥ 0``.

    For ``p = 2`` the squared distances use the expansion ``‖x‖² + ‖y‖² − 2⟨x, y⟩`` (one matrix product,
    rounding error ``~ eps·(‖x‖² + ‖y‖²)``, clamped at 0); other ``p`` use exact coordinate differences
    (``torch.cdist`` without the matrix-product shortcut), so small distances keep full relative precision.
    """
    X, Y = _check_points(X, Y)
    p = check_real("p", p, 0, low_open=True)
    if metric is not None:
        root = _psd_sqrt(metric, X)
        X, Y = X @ root, Y @ root
    if p == 2.0:
        sq = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * (X @ Y.T)
        return sq.clamp_(min=0)
    dist = torch.cdist(X, Y, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    return dist.pow(p)


# ----------------------------------------------------------------------------------------------------------
# Solvers
# ----------------------------------------------------------------------------------------------------------

def hungarian(C: torch.Tensor, maximize: bool = False) -> torch.Tensor:
    """Exact linear assignment: ``perm = argmin_π Σ_i C[i, π(i)]`` (:func:`lmcnb.assignment.solve`).

    Args:
        C: square cost matrix ``(n, n)``, finite.
        maximize: maximise ``Σ_i C[i, π(i)]`` instead (for similarity matrices such as ``W_A W_Bᵀ``).

    Returns:
        ``perm`` LongTensor ``(n,)`` on ``C``'s device: ``X[i]`` is paired with ``Y[perm[i]]``.
    """
    return assignment.solve(C, maximize=maximize)


def ot_plan(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor, method: str = "emd",
            reg: float | None = None, num_iter_max: int | None = None, stop_thr: float = 1e-9
            ) -> torch.Tensor:
    """Optimal transport plan ``γ`` between weights ``a`` and ``b`` for the ground cost ``C`` (through POT).

    ``method="emd"``: the exact plan ``argmin_{γ ∈ Π(a, b)} ⟨γ, C⟩`` (network simplex, ``ot.emd``).
    ``method="sinkhorn"``: the entropic plan ``argmin ⟨γ, C⟩ − reg·H(γ)`` (log-domain Sinkhorn,
    ``ot.sinkhorn(..., method="sinkhorn_log")``, stable for small ``reg``).

    Args:
        a: source weights ``(n,)``, non-negative.
        b: target weights ``(m,)``, non-negative, with ``Σ b = Σ a`` (relative tolerance :data:`MASS_RTOL`).
        C: cost ``(n, m)``, e.g. :func:`cost_matrix`; ``a`` and ``b`` on the same device.
        method: ``"emd"`` or ``"sinkhorn"``.
        reg: entropic regularisation ``> 0``; required for Sinkhorn, must be ``None`` for EMD.
        num_iter_max: solver iteration cap (default: POT's, 100000 for EMD, 1000 for Sinkhorn).
        stop_thr: Sinkhorn stopping threshold on the marginal error.

    Returns:
        ``γ`` ``(n, m)`` in ``C``'s dtype and device, with row sums ``a`` and column sums ``b``.

    Raises:
        ImportError: POT is not installed. RuntimeError: EMD did not reach an optimal solution, or Sinkhorn
        produced NaN (increase ``reg``). A Sinkhorn run that stops at ``num_iter_max`` before ``stop_thr``
        keeps POT's ``UserWarning`` ("Sinkhorn did not converge"): its marginals are then only approximate.
    """
    C = _check_tensor("C", C, 2)
    a = _check_weights("a", a, C.shape[0], C)
    b = _check_weights("b", b, C.shape[1], C)
    _check_equal_mass(a, b)
    check_choice("method", method, METHODS)
    if num_iter_max is not None and (isinstance(num_iter_max, bool) or not isinstance(num_iter_max, int)
                                     or num_iter_max < 1):
        raise ValueError(f"num_iter_max must be a positive int or None, got {num_iter_max!r}")
    ot = _import_ot()
    a_np, b_np, C_np = _to_numpy64(a), _to_numpy64(b), _to_numpy64(C)
    if method == "emd":
        if reg is not None:
            raise ValueError(f"reg is only used by method='sinkhorn'; got reg={reg!r} with method='emd'")
        plan = _emd(ot, a_np, b_np, C_np, 100000 if num_iter_max is None else num_iter_max)
    else:
        if isinstance(reg, bool) or not isinstance(reg, Real) or not (math.isfinite(reg) and reg > 0):
            raise ValueError(f"method='sinkhorn' needs a finite reg > 0, got {reg!r}")
        plan = ot.sinkhorn(a_np, b_np, C_np, float(reg), method="sinkhorn_log", stopThr=stop_thr,
                           numItermax=1000 if num_iter_max is None else num_iter_max)
        if not np.isfinite(plan).all():
            raise RuntimeError(f"Sinkhorn produced non-finite values with reg={reg}; increase reg")
    return torch.as_tensor(plan, dtype=C.dtype, device=C.device)


def _emd(ot: ModuleType, a: np.ndarray, b: np.ndarray, C: np.ndarray, num_iter_max: int) -> np.ndarray:
    """``ot.emd`` with the masses already checked; a non-optimal exit is an error, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # turned into the RuntimeError below
        plan, log = ot.emd(a, b, C, numItermax=num_iter_max, log=True, check_marginals=False)
    if log.get("warning") is not None:
        raise RuntimeError(f"POT's EMD solver did not reach an optimum: {log['warning']}")
    return plan


def ot_match(X: torch.Tensor, Y: torch.Tensor, p: float = 2, metric: torch.Tensor | None = None,
             backend: str = "hungarian", check: bool = False) -> torch.Tensor:
    """Optimal matching of two equal-size uniform empirical measures (Birkhoff: the OT plan is a permutation).

    Solves ``min_{π ∈ S_m} Σ_i ‖X[i] − Y[π(i)]‖^p`` (norm weighted by ``metric`` Σ if given).

    Args:
        X: atoms of μ̂_A ``(m, d)``, e.g. rows of ``W_A``.
        Y: atoms of μ̂_B ``(m, d)``, same dtype and device.
        p, metric: ground cost, see :func:`cost_matrix`.
        backend: ``"hungarian"`` (exact assignment, fast path, no POT needed) or ``"pot"`` (``ot.emd`` with
            uniform weights ``1/m``, whose optimal plan is read as a permutation).
        check: also solve with the other backend and raise ``RuntimeError`` unless both reach the same
            optimal cost (relative 1e-9) and the POT plan is a permutation matrix scaled by ``1/m``.

    Returns:
        ``perm`` LongTensor ``(m,)`` with ``X[i] ↔ Y[perm[i]]``; ``Y.index_select(0, perm)`` aligns ``Y`` to ``X``.
    """
    X, Y = _check_points(X, Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError("ot_match needs equal sizes (a permutation); got X with "
                         f"{X.shape[0]} and Y with {Y.shape[0]} points; use ot_plan for unequal sizes")
    check_choice("backend", backend, BACKENDS)
    check_bool("check", check)
    C = cost_matrix(X, Y, p=p, metric=metric)
    perm_h = hungarian(C) if backend == "hungarian" or check else None
    perm_p = pot_permutation(C) if backend == "pot" or check else None
    if check:
        cost_h, cost_p = assignment.assignment_value(C, perm_h), assignment.assignment_value(C, perm_p)
        scale = max(abs(cost_h), abs(cost_p), float(C.abs().max()) * 1e-3)
        if abs(cost_h - cost_p) > 1e-9 * scale:
            raise RuntimeError(f"Hungarian cost {cost_h!r} and POT cost {cost_p!r} differ")
    return perm_h if backend == "hungarian" else perm_p


def pot_permutation(C: torch.Tensor) -> torch.Tensor:
    """Permutation ``(m,)`` read off POT's exact plan (uniform weights ``1/m``) for the cost ``C`` ``(m, m)``
    (:func:`lmcnb.assignment.plan_to_permutation`); ``RuntimeError`` if the plan is not a permutation."""
    C = _check_tensor("C", C, 2)
    m = C.shape[0]
    if C.shape[1] != m:
        raise ValueError(f"pot_permutation needs a square cost matrix (m, m), got {tuple(C.shape)}")
    uniform = torch.full((m,), 1.0 / m, dtype=torch.float64, device=C.device)
    plan = ot_plan(uniform, uniform, C.double(), method="emd")
    if not is_permutation_plan(plan):
        raise RuntimeError("POT's exact plan between equal uniform measures is not a permutation matrix")
    return plan_to_permutation(plan)


def wasserstein(X: torch.Tensor, Y: torch.Tensor, p: float = 2, a: torch.Tensor | None = None,
                b: torch.Tensor | None = None, metric: torch.Tensor | None = None) -> float:
    """Exact Wasserstein distance ``W_p(μ, ν) = (min_{γ ∈ Π(a, b)} Σ_ij γ_ij ‖X[i] − Y[j]‖^p)^{1/p}``.

    ``μ = Σ_i a_i δ_{X[i]}`` and ``ν = Σ_j b_j δ_{Y[j]}``; omitted weights are uniform. With equal sizes and
    uniform weights the Hungarian fast path gives ``W_p^p = min_π (1/m) Σ_i ‖X[i] − Y[π(i)]‖^p`` (no POT
    needed); otherwise POT's exact ``ot.emd`` plan is used.

    Args:
        X: atoms ``(n, d)``; Y: atoms ``(m, d)`` (same dtype and device).
        p: order ``p ≥ 1``.
        a: weights ``(n,)`` of a probability measure (non-negative, summing to 1), default uniform ``1/n``.
        b: weights ``(m,)``, same rules, default uniform ``1/m``.
        metric: optional PSD ``Σ`` ``(d, d)`` for the norm ``‖u‖_Σ`` (see :func:`cost_matrix`).

    Returns:
        ``W_p`` as a Python float (accumulated in float64).
    """
    X, Y = _check_points(X, Y)
    p = check_real("p", p, 1)
    n, m = X.shape[0], Y.shape[0]
    if a is not None:
        a = _check_weights("a", a, n, X)
        _check_probability("a", a)
    if b is not None:
        b = _check_weights("b", b, m, X)
        _check_probability("b", b)
    C = cost_matrix(X, Y, p=p, metric=metric)
    uniform = (a is None or bool((a == a[0]).all())) and (b is None or bool((b == b[0]).all()))
    if n == m and uniform:
        total = assignment.assignment_value(C, hungarian(C)) / n
    else:
        a64 = torch.full((n,), 1.0 / n, dtype=torch.float64, device=X.device) if a is None else a.double()
        b64 = torch.full((m,), 1.0 / m, dtype=torch.float64, device=X.device) if b is None else b.double()
        total = float((ot_plan(a64, b64, C.double(), method="emd") * C.double()).sum())
    return max(total, 0.0) ** (1.0 / p)


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"lmcnb.transport.{name} moved to {_MOVED[name]}.{name} (an experiment pipeline; "
                             f"`from {_MOVED[name]} import {name}`)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
