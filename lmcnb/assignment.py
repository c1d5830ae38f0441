"""Exact linear assignment, the one place where the package solves ``min_π Σ_i C[i, π(i)]`` or reads a plan as π.

Every matcher needs, at its core, an exact linear assignment problem (LAP) on a square matrix: weight and
activation matching maximise a similarity, OT and functional matching minimise a cost (Birkhoff–von Neumann:
between two uniform measures with the same number of atoms the optimal coupling is a permutation). All of them
call :func:`solve`; an optimal-transport plan that should be a permutation is read by :func:`plan_to_permutation`
(never rounded: a fractional coupling is an error). One module, so that a faster solver changes one function.

At paper scale (thousands of units) two more entry points use one compiled shortest-augmenting-path solver
(Jonker–Volgenant / Crouse, the algorithm of ``scipy.optimize.linear_sum_assignment``, compiled with numba):

- :func:`solve_warm` returns the optimal column potentials with the permutation (:class:`Duals`) and accepts
  them back for the next, slightly different matrix: every row whose old column is still its best under the old
  potentials keeps it, only the other rows are re-augmented (weight-matching coordinate descent re-solves each
  layer this way);
- :func:`solve_batch` solves many independent matrices of the same size in a thread pool (the compiled solver
  releases the GIL).

Without numba both fall back to scipy (exact, no warm start, no threads). Square matrices only. Measured
(``benchmarks/bench_assignment.py``): on PCD's similarity matrices the compiled solve is several times faster than
scipy, on uniform random dense matrices it is as fast as scipy (the last few free rows dominate both), and the old
duals rarely beat the cold Jonker–Volgenant start in coordinate descent (every entry of a layer's matrix changes
when a neighbour's permutation does, and optimal duals are degenerate), so ``solve_warm`` uses a start only when
it keeps more rows matched.

Convention: ``perm`` ``(n,)`` pairs row ``i`` with column ``perm[i]`` (for matchers: unit ``i`` of model a with
unit ``perm[i]`` of model b).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._validate import check_bool, check_int, check_tensor

__all__ = ["solve", "solve_warm", "solve_batch", "Duals", "have_compiled_solver", "assignment_value",
           "is_permutation_plan", "plan_to_permutation", "PLAN_TOL"]

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


# ---------------------------------------------------------------------------------------------------------------
# Compiled shortest augmenting path with warm starts (numba when installed; plain Python kernels otherwise)
# ---------------------------------------------------------------------------------------------------------------

def _init_kernel(C: np.ndarray, v: np.ndarray, proposal: np.ndarray, u: np.ndarray, col4row: np.ndarray,
                 row4col: np.ndarray, max_steps: int) -> int:
    """Start of the solve; returns the number of rows left free for the shortest-path phase.

    1. Each row ``i`` keeps ``proposal[i]`` (its best column under ``v`` if ``−1``, a not yet taken one among
       equal bests) when that edge is a best one, ``C_ij − v_j = min_k (C_ik − v_k)``, and the column is not yet
       taken (first row wins).
    2. Jonker–Volgenant's augmenting row reduction on the other rows (at most ``max_steps`` bids): a free row
       takes its best column ``j1`` (a free one among equal bests) and lowers ``v[j1]`` by the gap to its second
       best, displacing the owner;
       afterwards every matched row's edge is still a best one of its row.
    3. ``u_i = C_{i,col(i)} − v_{col(i)}`` for matched rows (row minima: ``(u, v)`` dual feasible, matched edges
       tight), ``u_i = min_k (C_ik − v_k)`` for free ones.
    """
    n = C.shape[0]
    for j in range(n):
        row4col[j] = -1
    free = np.empty(n, np.int64)
    nfree = 0
    for i in range(n):
        best = math.inf
        arg = -1
        for j in range(n):
            r = C[i, j] - v[j]
            if r < best or (r == best and row4col[arg] != -1 and row4col[j] == -1):  # ties: a free column
                best = r
                arg = j
        j = proposal[i]
        if j < 0:
            j = arg
        col4row[i] = -1
        if row4col[j] == -1 and C[i, j] - v[j] == best:
            col4row[i] = j
            row4col[j] = i
        else:
            free[nfree] = i
            nfree += 1
    steps = 0
    for _ in range(2):
        k = 0
        previous = nfree
        nfree = 0
        while k < previous:
            if steps >= max_steps:  # hand the unprocessed rows to the shortest-path phase
                while k < previous:
                    free[nfree] = free[k]
                    nfree += 1
                    k += 1
                break
            steps += 1
            i = free[k]
            k += 1
            umin = math.inf
            usub = math.inf
            j1 = -1
            j2 = -1
            for j in range(n):
                r = C[i, j] - v[j]
                if r < umin or (r == umin and row4col[j1] != -1 and row4col[j] == -1):  # ties: a free column
                    usub = umin
                    j2 = j1
                    umin = r
                    j1 = j
                elif r < usub:
                    usub = r
                    j2 = j
            i0 = row4col[j1]
            lowered = umin < usub and usub < math.inf
            if lowered:
                v[j1] = v[j1] - (usub - umin)
            elif i0 >= 0 and j2 >= 0:
                j1 = j2
                i0 = row4col[j2]
            if i0 >= 0:
                col4row[i0] = -1
            col4row[i] = j1
            row4col[j1] = i
            if i0 >= 0:
                if lowered:
                    k -= 1
                    free[k] = i0
                else:
                    free[nfree] = i0
                    nfree += 1
    for i in range(n):
        j = col4row[i]
        if j >= 0:
            u[i] = C[i, j] - v[j]
        else:
            best = math.inf
            for k in range(n):
                r = C[i, k] - v[k]
                if r < best:
                    best = r
            u[i] = best
    return nfree


def _sap_kernel(C: np.ndarray, u: np.ndarray, v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray) -> int:
    """Augment every free row along a shortest path of reduced costs ``C_ij − u_i − v_j`` (Dijkstra; Crouse's
    algorithm as in scipy's ``linear_sum_assignment``, same order of operations and tie-breaking). Invariants:
    ``(u, v)`` dual feasible for matched rows, matched edges tight. Returns the number of rows scanned."""
    n = C.shape[0]
    spc = np.empty(n)
    path = np.empty(n, np.int64)
    remaining = np.empty(n, np.int64)
    SR = np.zeros(n, np.bool_)
    SC = np.zeros(n, np.bool_)
    scanned = 0
    for cur in range(n):
        if col4row[cur] != -1:
            continue
        for it in range(n):
            remaining[it] = n - it - 1
            spc[it] = math.inf
            SR[it] = False
            SC[it] = False
        num_remaining = n
        min_val = 0.0
        i = cur
        sink = -1
        while sink == -1:
            index = -1
            lowest = math.inf
            SR[i] = True
            scanned += 1
            for it in range(num_remaining):
                j = remaining[it]
                r = min_val + C[i, j] - u[i] - v[j]
                if r < spc[j]:
                    path[j] = i
                    spc[j] = r
                if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                    lowest = spc[j]
                    index = it
            min_val = lowest
            if min_val == math.inf or index < 0:
                return -1  # infeasible (only with infinite costs)
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            SC[j] = True
            num_remaining -= 1
            remaining[index] = remaining[num_remaining]
        u[cur] += min_val
        for i in range(n):
            if SR[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(n):
            if SC[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            k = col4row[i]
            col4row[i] = j
            j = k
            if i == cur:
                break
    return scanned


def _kept_kernel(C: np.ndarray, v: np.ndarray, proposal: np.ndarray) -> int:
    """How many rows step 1 of :func:`_init_kernel` would keep matched (no side effects)."""
    n = C.shape[0]
    taken = np.zeros(n, np.bool_)
    kept = 0
    for i in range(n):
        best = math.inf
        arg = -1
        for j in range(n):
            r = C[i, j] - v[j]
            if r < best or (r == best and taken[arg] and not taken[j]):  # ties: a free column
                best = r
                arg = j
        j = proposal[i]
        if j < 0:
            j = arg
        if not taken[j] and C[i, j] - v[j] == best:
            taken[j] = True
            kept += 1
    return kept


_KERNELS: dict[str, Any] = {}
#: Bids of the augmenting row reduction per row of the matrix before the shortest-path phase takes over.
ARR_STEPS = 8


def have_compiled_solver() -> bool:
    """Whether numba is importable, so that :func:`solve_warm` / :func:`solve_batch` run compiled (else scipy)."""
    return _kernels() is not None


def _kernels() -> tuple[Callable, Callable, Callable] | None:
    if "init" not in _KERNELS:
        try:
            import numba
        except ImportError:
            _KERNELS["init"] = _KERNELS["sap"] = _KERNELS["kept"] = None
        else:
            jit = numba.njit(cache=True, nogil=True)
            _KERNELS["init"], _KERNELS["sap"] = jit(_init_kernel), jit(_sap_kernel)
            _KERNELS["kept"] = jit(_kept_kernel)
    if _KERNELS["init"] is None:
        return None
    return _KERNELS["init"], _KERNELS["sap"], _KERNELS["kept"]


@dataclass(frozen=True, eq=False)
class Duals:
    """An optimal assignment with its dual certificate, to warm-start the next :func:`solve_warm`.

    Attributes:
        perm: ``(n,)`` int64 NumPy array, row ``i`` → column ``perm[i]``.
        v: ``(n,)`` float64 column potentials of the minimisation form (of ``−C`` when ``maximize``); with
            ``u_i = min_j (C_ij − v_j)`` every ``perm`` edge is tight, which certifies optimality.
        maximize: the sense of the problem they solve (a start must come from a solve of the same sense).
        augmented: rows left for the shortest-path phase after the start and the row reduction.
        scanned: rows scanned by the shortest-path searches (the solver's work, in units of ``n`` operations).
        warm: whether the solve that produced them started from a previous certificate (see
            :func:`solve_warm`).
    """

    perm: np.ndarray
    v: np.ndarray
    maximize: bool
    augmented: int = 0
    scanned: int = 0
    warm: bool = False

    def permute_rows(self, q: torch.Tensor | np.ndarray) -> "Duals":
        """The same certificate after the rows are re-indexed, new row ``k`` = old row ``q[k]`` (the column
        potentials ``v`` are unchanged; row ``k`` is matched to the old row ``q[k]``'s column)."""
        q = np.asarray(q.cpu() if isinstance(q, torch.Tensor) else q, dtype=np.int64)
        n = self.v.shape[0]
        if q.shape != (n,) or not np.array_equal(np.sort(q), np.arange(n)):
            raise ValueError(f"q must be a permutation of {n} rows, got shape {q.shape}")
        return Duals(self.perm[q], self.v, self.maximize, self.augmented, self.scanned, self.warm)


def _all_finite(C: torch.Tensor) -> bool:
    """Whether every entry is finite (a finite sum proves it cheaply; NaN/inf always poison the sum)."""
    return bool(torch.isfinite(C.sum())) or bool(torch.isfinite(C).all())


def _float64_copy(C: torch.Tensor, maximize: bool) -> np.ndarray:
    """A row-major float64 CPU copy of ``C`` (negated if ``maximize``: the solver minimises)."""
    R = C.detach().to("cpu", torch.float64, memory_format=torch.contiguous_format, copy=True).numpy()
    if maximize:
        np.negative(R, out=R)
    return R


def _solve_min(R: np.ndarray, v: np.ndarray | None, proposal: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
    """Compiled solve of ``min`` on the float64 matrix ``R``; returns ``(perm, v, augmented, scanned, warm)``.

    With a start ``(v, proposal)`` it is used only if it keeps more rows matched in step 1 of
    :func:`_init_kernel` than the cold start (``v = 0``, row argmins); ``warm`` says which one ran."""
    init, sap, kept = _kernels()
    n = R.shape[0]
    cold_v, cold_p = np.zeros(n), np.full(n, -1, np.int64)
    warm = v is not None and kept(R, v.astype(np.float64), proposal.astype(np.int64)) > kept(R, cold_v, cold_p)
    v = v.astype(np.float64, copy=True) if warm else cold_v
    proposal = proposal.astype(np.int64, copy=True) if warm else cold_p
    u, col4row, row4col = np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64)
    free = init(R, v, proposal, u, col4row, row4col, ARR_STEPS * n)
    scanned = sap(R, u, v, col4row, row4col)
    if scanned < 0:
        raise ValueError("the assignment problem is infeasible (infinite costs)")
    return col4row, v, int(free), int(scanned), bool(warm)


def solve_warm(C: torch.Tensor, maximize: bool = False, *, start: Duals | None = None
               ) -> tuple[torch.Tensor, Duals]:
    """Exact LAP like :func:`solve`, returning the dual certificate and optionally warm-started from one.

    ``start`` (the :class:`Duals` of an earlier solve of the same sense and size, rows and columns in this
    matrix's order, see :meth:`Duals.permute_rows`): its potentials ``v`` are kept, ``u_i = min_j (C_ij − v_j)`` makes
    them dual feasible for the new ``C``, every row whose old column is still tight keeps it, and only the
    other rows are augmented (``Duals.augmented``). Without a start: ``v = 0``, each row proposes its best
    column, the first row to claim a column keeps it, and the rest are augmented. Either way the result is an
    optimal assignment (the certificate is exact up to float64 rounding); on ties it may differ from scipy's.

    Without numba (:func:`have_compiled_solver`), scipy solves ``C`` and the returned ``Duals`` carry
    ``v = None`` semantics as zeros with ``augmented = n`` (a later start then only proposes the permutation).

    Returns ``(perm, duals)``: ``perm`` LongTensor ``(n,)`` on ``C``'s device.
    """
    if not isinstance(C, torch.Tensor) or not C.is_floating_point() or C.ndim != 2 or C.shape[0] != C.shape[1] \
            or C.numel() == 0:
        C = _check_square("C", C)  # raises the standard message
    if not _all_finite(C):
        raise ValueError("C contains NaN or inf")
    check_bool("maximize", maximize)
    n = C.shape[0]
    if start is not None:
        if not isinstance(start, Duals):
            raise TypeError(f"start must be None or a Duals, got {type(start).__name__}")
        if start.maximize != maximize:
            raise ValueError(f"start comes from a solve with maximize={start.maximize}, this one has "
                             f"maximize={maximize}")
        if start.v.shape != (n,) or start.perm.shape != (n,):
            raise ValueError(f"start is for {start.v.shape[0]} columns, C has {n}")
    R = _float64_copy(C, maximize)
    if _kernels() is None:
        _, cols = linear_sum_assignment(R)
        duals = Duals(cols.astype(np.int64), np.zeros(n), maximize, n, 0, False)
    else:
        cols, v, free, scanned, warm = _solve_min(R, None if start is None else start.v,
                                                  None if start is None else start.perm)
        duals = Duals(cols, v, maximize, free, scanned, warm)
    return torch.as_tensor(duals.perm, dtype=torch.long, device=C.device), duals


def solve_batch(C: torch.Tensor, maximize: bool = False, *, workers: int | None = None) -> torch.Tensor:
    """Exact LAPs of ``B`` independent matrices ``C`` ``(B, n, n)``: ``perm[b] = argmin_π Σ_i C[b, i, π(i)]``.

    Each matrix is solved as :func:`solve_warm` without a start; ``workers`` threads (default: the CPU count)
    share them through a :class:`concurrent.futures.ThreadPoolExecutor` (the compiled solver releases the GIL;
    ``workers=1`` solves them one after another in the calling thread). A CUDA ``C`` is copied to the CPU (no
    GPU solver is shipped: GPU LAP solvers lose to this one on single large matrices, and none was at hand to
    test a batched one). Returns LongTensor ``(B, n)`` on ``C``'s device.
    """
    C = check_tensor("C", C, ndim=3)
    if C.shape[1] != C.shape[2]:
        raise ValueError(f"C must be a batch of square matrices (B, n, n), got shape {tuple(C.shape)}")
    check_bool("maximize", maximize)
    workers = check_int("workers", workers, 1, allow_none=True)
    workers = workers or os.cpu_count() or 1
    mats = [_float64_copy(C[b], maximize) for b in range(C.shape[0])]
    if _kernels() is None:
        one = lambda R: linear_sum_assignment(R)[1].astype(np.int64)  # noqa: E731
    else:
        one = lambda R: _solve_min(R, None, None)[0]  # noqa: E731
    if workers == 1 or len(mats) <= 1:
        perms = [one(R) for R in mats]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(mats))) as pool:
            perms = list(pool.map(one, mats))
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=C.device)
