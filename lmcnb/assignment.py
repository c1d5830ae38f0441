"""Exact linear assignment, the one place where the package solves ``min_π Σ_i C[i, π(i)]`` or reads a plan as π.

Every matcher needs, at its core, an exact linear assignment problem (LAP) on a square matrix: weight and
activation matching maximise a similarity, OT and functional matching minimise a cost (Birkhoff–von Neumann:
between two uniform measures with the same number of atoms the optimal coupling is a permutation). All of them
call :func:`solve`; an optimal-transport plan that should be a permutation is read by :func:`plan_to_permutation`
(never rounded: a fractional coupling is an error). One module, so that a faster solver (warm starts, batches)
changes one function.

Convention: ``perm`` ``(n,)`` pairs row ``i`` with column ``perm[i]`` (for matchers: unit ``i`` of model a with
unit ``perm[i]`` of model b).
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._validate import check_bool, check_tensor

__all__ = ["solve", "assignment_value", "is_permutation_plan", "plan_to_permutation", "PLAN_TOL"]

#: Default tolerance of :func:`is_permutation_plan`, relative to the size (total mass / n) of a plan's entries.
PLAN_TOL = 1e-6


def _check_square(name: str, C: object) -> torch.Tensor:
    C = check_tensor(name, C, ndim=2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be square (n, n) for a permutation, got shape {tuple(C.shape)}")
    return C


def solve(C: torch.Tensor, maximize: bool = False, *, reduced: bool = False) -> torch.Tensor:
    """Exact LAP: ``perm = argmin_π Σ_i C[i, π(i)]`` (``argmax`` if ``maximize``) for a finite square ``C``.

    Two exact strategies (both optimal; on ties or within float64 rounding they may pick different optima):

    - ``reduced=False``: ``scipy.optimize.linear_sum_assignment`` on ``C`` itself (in float64);
    - ``reduced=True`` (the matchers' inner loop): if every row's best column is a different column, that
      assignment attains the bound ``Σ_i best_j`` and is returned at once; otherwise scipy on the row- and
      column-reduced cost (the same optimal assignments up to rounding; about 1.5× faster on PCD's matrices).

    Returns ``perm`` LongTensor ``(n,)`` on ``C``'s device.
    """
    C = _check_square("C", C)
    check_bool("maximize", maximize)
    check_bool("reduced", reduced)
    if not reduced:
        rows, cols = linear_sum_assignment(C.detach().to(device="cpu", dtype=torch.float64).numpy(),
                                           maximize=maximize)
        assert np.array_equal(rows, np.arange(C.shape[0]))  # scipy's contract for square matrices
        return torch.as_tensor(cols, dtype=torch.long, device=C.device)
    n = C.shape[0]
    # One row-major float64 copy on the CPU (C may be a transposed view: row reductions on it are slow).
    R = C.detach().to("cpu", torch.float64, memory_format=torch.contiguous_format, copy=True).numpy()
    best = R.argmax(1) if maximize else R.argmin(1)
    if np.bincount(best, minlength=n).max() == 1:
        return torch.as_tensor(best, dtype=torch.long, device=C.device)
    if maximize:
        np.subtract(R.max(1, keepdims=True), R, out=R)
    else:
        R -= R.min(1, keepdims=True)
    R -= R.min(0, keepdims=True)
    _, cols = linear_sum_assignment(R)
    return torch.as_tensor(cols, dtype=torch.long, device=C.device)


def assignment_value(C: torch.Tensor, perm: torch.Tensor) -> float:
    """``Σ_i C[i, perm[i]]`` in float64, as a Python float (the objective of an assignment)."""
    return float(C.double().gather(1, perm[:, None]).sum())


def is_permutation_plan(P: torch.Tensor, tol: float = PLAN_TOL) -> bool:
    """Whether ``P`` ``(n, n)`` is a permutation matrix scaled by its mass: ``P = (Σ P / n)·Π``.

    The check is ``max |(n / Σ P)·P − Π| ≤ tol`` with ``Π`` the 0/1 permutation matrix of the row argmaxes,
    so ``tol`` is relative to the size of a plan entry. A non-square ``P`` is not a permutation plan.
    """
    P = check_tensor("P", P, ndim=2)
    if isinstance(tol, bool) or not isinstance(tol, Real) or not (0 <= tol < 0.5):
        raise ValueError(f"tol must be a real number in [0, 0.5), got {tol!r}")
    n = P.shape[0]
    if P.shape[1] != n:
        return False
    mass = float(P.double().sum())
    if mass <= 0:
        return False
    Q = P.double() * (n / mass)
    perm = Q.argmax(dim=1)
    if torch.unique(perm).numel() != n:
        return False
    Pi = torch.zeros_like(Q)
    Pi[torch.arange(n, device=P.device), perm] = 1.0
    return float((Q - Pi).abs().max()) <= tol


def plan_to_permutation(P: torch.Tensor, tol: float = PLAN_TOL) -> torch.Tensor:
    """The permutation ``perm`` ``(n,)`` of a permutation plan ``P`` ``(n, n)``: ``P[i, perm[i]] > 0``.

    Raises ``ValueError`` if ``P`` is not a scaled permutation matrix within ``tol`` (see
    :func:`is_permutation_plan`); a genuine fractional coupling is never rounded to a permutation.
    """
    if not is_permutation_plan(P, tol):
        raise ValueError(f"P (shape {tuple(P.shape)}) is not a scaled permutation matrix within tol={tol}")
    return P.argmax(dim=1).to(torch.long)
