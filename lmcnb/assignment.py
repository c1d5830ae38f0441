"""Exact linear assignment, the one place where the package solves ``min_π Σ_i C[i, π(i)]`` or reads a plan as π.

Every matcher needs, at its core, an exact linear assignment problem (LAP) on a square matrix: weight and
activation matching maximise a similarity, OT and functional matching minimise a cost (Birkhoff–von Neumann:
between two uniform measures with the same number of atoms the optimal coupling is a permutation). All of them
call :func:`solve`; an optimal-transport plan that should be a permutation is read by :func:`plan_to_permutation`
(never rounded: a fractional coupling is an error). One module, so that a faster solver changes one function.

At paper scale (thousands of units) two more entry points use one compiled shortest-augmenting-path solver
(Jonker–Volgenant / Crouse, the algorithm of ``scipy.optimize.linear_sum_assignment``, compiled with numba):

- :func:`solve_warm` returns the optimal column potentials with the permutation (:class:`Duals`) and accepts
  them back for the next, slightly different matrix: the re-solve runs on the candidate edges those potentials
  select (each row's few best columns and its old one), priced against the dense matrix until the certificate
  holds everywhere (weight-matching coordinate descent re-solves each layer this way);
- :func:`solve_batch` solves many independent matrices of the same size in a thread pool (the compiled solver
  releases the GIL).

Without numba both fall back to scipy (exact, no warm start, no threads). Square matrices only. Measured
(``benchmarks/bench_assignment.py``): on PCD's similarity matrices the compiled solve is several times faster than
scipy, on uniform random dense matrices it is as fast as scipy (the last few free rows dominate both); a dense
solve from the old duals is no faster than the cold Jonker–Volgenant start in coordinate descent (every entry of
a layer's matrix changes when a neighbour's permutation does, and optimal duals are degenerate), but the columns
they rank first per row hold the new optimum, which the candidate-edge re-solve exploits.

Convention: ``perm`` ``(n,)`` pairs row ``i`` with column ``perm[i]`` (for matchers: unit ``i`` of model a with
unit ``perm[i]`` of model b).
"""
from __future__ import annotations

import heapq
import math
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._validate import check_bool, check_choice, check_int, check_tensor

__all__ = ["solve", "solve_warm", "solve_sparse", "solve_batch", "Duals", "have_compiled_solver", "assignment_value",
           "is_permutation_plan", "plan_to_permutation", "PLAN_TOL"]

#: Default tolerance of :func:`is_permutation_plan`, relative to the size (total mass / n) of a plan's entries.
PLAN_TOL = 1e-6


def _check_square(name: str, C: object) -> torch.Tensor:
    C = check_tensor(name, C, ndim=2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be square (n, n) for a permutation, got shape {tuple(C.shape)}")
    return C


def solve(C: torch.Tensor, maximize: bool = False, *, reduced: bool = False) -> torch.Tensor:
    """Exact LAP: ``perm = argmin_π Σ_i C[i, π(i)]`` (``argmax`` if ``maximize``) for a finite square ``C``
    (NaN / ±inf entries raise ``ValueError``).

    Two exact strategies (both optimal; on ties or within float64 rounding they may pick different optima):

    - ``reduced=False``: ``scipy.optimize.linear_sum_assignment`` on ``C`` itself (in float64);
    - ``reduced=True`` (the matchers' inner loop): if every row's best column is a different column, that
      assignment attains the bound ``Σ_i best_j`` and is returned at once; otherwise scipy on the row- and
      column-reduced cost (the same optimal assignments up to rounding; about 1.5× faster on PCD's matrices).

    Returns ``perm`` LongTensor ``(n,)`` on ``C``'s device.
    """
    _check_finite("C", C)
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

#: Columns per block of the row scans: a block is scanned entry by entry only if its minimum (four independent
#: running minima, no loop-carried chain of compares) can change the scan's state; same results, ~2-3x faster.
#: The warm re-solve's scans use residue classes of at most this many columns instead (:func:`_class_mins`).
SCAN_BLOCK = 64


def _block_min(C: np.ndarray, v: np.ndarray, i: int, j0: int, j1: int) -> float:
    """``min_{j0 ≤ j < j1} (C_ij − v_j)`` (exact: a minimum does not round)."""
    m0 = m1 = m2 = m3 = math.inf
    j = j0
    while j + 4 <= j1:
        r0 = C[i, j] - v[j]
        r1 = C[i, j + 1] - v[j + 1]
        r2 = C[i, j + 2] - v[j + 2]
        r3 = C[i, j + 3] - v[j + 3]
        m0 = r0 if r0 < m0 else m0
        m1 = r1 if r1 < m1 else m1
        m2 = r2 if r2 < m2 else m2
        m3 = r3 if r3 < m3 else m3
        j += 4
    while j < j1:
        r0 = C[i, j] - v[j]
        m0 = r0 if r0 < m0 else m0
        j += 1
    m0 = m0 if m0 < m1 else m1
    m2 = m2 if m2 < m3 else m3
    return m0 if m0 < m2 else m2


def _class_mins(C: np.ndarray, v: np.ndarray, i: int, nc: int, out: np.ndarray) -> None:
    """``out[c] = min_{j ≡ c (mod nc)} (C_ij − v_j)`` for ``c < nc`` (exact): row ``i``'s minimum over each
    residue class of columns, in one pass over the row in slices of ``nc`` columns, every class a lane of an
    elementwise running minimum (the compiler vectorises it; a loop-carried scalar minimum it does not)."""
    n = C.shape[1]
    row = C[i]
    for c in range(nc):
        out[c] = math.inf
    for j0 in range(0, n, nc):
        rt = row[j0:j0 + nc]
        vt = v[j0:j0 + nc]
        for c in range(rt.shape[0]):
            r = rt[c] - vt[c]
            out[c] = r if r < out[c] else out[c]


def _scan_classes(n: int) -> int:
    """Residue classes of the warm row scans: ``⌈n / SCAN_BLOCK⌉``, each at most :data:`SCAN_BLOCK` columns."""
    return (n + SCAN_BLOCK - 1) // SCAN_BLOCK


def _row_best(C: np.ndarray, v: np.ndarray, i: int, row4col: np.ndarray) -> tuple[float, int]:
    """Row ``i``'s best reduced cost ``min_j (C_ij − v_j)`` and a column attaining it, ``(best, arg)``; among
    equal bests a free column (``row4col[j] == −1``) wins over a taken one, else the first. ``arg = −1`` only if
    the row has no entry below ``+inf`` (the public entry points reject non-finite costs before this runs).

    Blocks of :data:`SCAN_BLOCK` columns whose minimum can neither lower ``best`` nor tie it while ``arg`` is
    taken are skipped: they cannot change ``(best, arg)`` in the entry-by-entry scan."""
    n = C.shape[1]
    best = math.inf
    arg = -1
    for j0 in range(0, n, SCAN_BLOCK):
        j1 = min(j0 + SCAN_BLOCK, n)
        m = _block_min(C, v, i, j0, j1)
        if not (m < best or (m == best and arg >= 0 and row4col[arg] != -1)):
            continue
        for j in range(j0, j1):
            r = C[i, j] - v[j]
            if r < best or (r == best and arg >= 0 and row4col[arg] != -1 and row4col[j] == -1):
                best = r
                arg = j
    return best, arg


def _row_best_two(C: np.ndarray, v: np.ndarray, i: int, row4col: np.ndarray) -> tuple[float, int, float, int]:
    """Row ``i``'s best and second-best reduced costs with their columns, ``(umin, j1, usub, j2)``, as the
    augmenting row reduction of :func:`_init_kernel` bids: among equal bests a free column wins over a taken one
    (the displaced one becomes the second best). Blocks whose minimum can change neither are skipped."""
    n = C.shape[1]
    umin = math.inf
    usub = math.inf
    j1 = -1
    j2 = -1
    for b0 in range(0, n, SCAN_BLOCK):
        b1 = min(b0 + SCAN_BLOCK, n)
        m = _block_min(C, v, i, b0, b1)
        if not (m < usub or m == umin):
            continue
        for j in range(b0, b1):
            r = C[i, j] - v[j]
            if r < umin or (r == umin and j1 >= 0 and row4col[j1] != -1 and row4col[j] == -1):  # ties: free
                usub = umin
                j2 = j1
                umin = r
                j1 = j
            elif r < usub:
                usub = r
                j2 = j
    return umin, j1, usub, j2


def _hand_over(free: np.ndarray, k: int, previous: int, nfree: int) -> int:
    """The augmenting row reduction's step budget is spent: the unprocessed free rows ``free[k:previous]`` join the
    rows left to the shortest paths, ``free[:nfree]``; returns their new count."""
    while k < previous:
        free[nfree] = free[k]
        nfree += 1
        k += 1
    return nfree


def _bid(v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, free: np.ndarray, i: int, umin: float, j1: int,
         usub: float, j2: int, k: int, nfree: int) -> tuple[int, int]:
    """One bid of Jonker–Volgenant's augmenting row reduction: free row ``i`` (taken from ``free[k − 1]``), best
    reduced cost ``umin`` at ``j1``, second best ``usub`` at ``j2``, takes ``j1`` and lowers ``v[j1]`` by the gap
    ``usub − umin`` (its edge then ties the second best); without a gap it takes ``j2`` instead when ``j1`` is
    taken and ``j2`` exists. The displaced owner bids next (``free[k − 1]``) after a lowering, else it waits for the
    next pass (``free[nfree]``). Returns the new ``(k, nfree)``."""
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
    return k, nfree


def _jit_helper(fn: Callable) -> Callable:
    """``fn`` compiled by numba when it is installed (so that the kernels compiled in :func:`_kernels` can call
    it), else ``fn`` itself (the plain-Python kernels of the tests call it either way)."""
    try:
        import numba
    except ImportError:
        return fn
    return numba.njit(cache=True, nogil=True)(fn)


_block_min = _jit_helper(_block_min)
_class_mins = _jit_helper(_class_mins)
_scan_classes = _jit_helper(_scan_classes)
_row_best = _jit_helper(_row_best)
_row_best_two = _jit_helper(_row_best_two)
_hand_over = _jit_helper(_hand_over)
_bid = _jit_helper(_bid)


def _augment(path: np.ndarray, row4col: np.ndarray, col4row: np.ndarray, sink: int, cur: int) -> None:
    """Flip the alternating path that ends at the free column ``sink`` back to row ``cur`` (``path[j]``: the row
    from which column ``j`` was reached): every row on it takes the column it reached, ``cur`` becomes matched."""
    j = sink
    while True:
        i = path[j]
        row4col[j] = i
        k = col4row[i]
        col4row[i] = j
        j = k
        if i == cur:
            break


_augment = _jit_helper(_augment)


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
        best, arg = _row_best(C, v, i, row4col)
        j = proposal[i]
        if j < 0:
            j = arg
        col4row[i] = -1
        if j >= 0 and row4col[j] == -1 and C[i, j] - v[j] == best:
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
                nfree = _hand_over(free, k, previous, nfree)
                break
            steps += 1
            i = free[k]
            k += 1
            umin, j1, usub, j2 = _row_best_two(C, v, i, row4col)
            k, nfree = _bid(v, col4row, row4col, free, i, umin, j1, usub, j2, k, nfree)
    for i in range(n):
        j = col4row[i]
        if j >= 0:
            u[i] = C[i, j] - v[j]
        else:
            u[i] = _block_min(C, v, i, 0, n)
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
        _augment(path, row4col, col4row, sink, cur)
    return scanned


def _kept_kernel(C: np.ndarray, v: np.ndarray, proposal: np.ndarray) -> tuple[int, int]:
    """How many rows step 1 of :func:`_init_kernel` would keep matched from the start ``(v, proposal)`` and from
    the cold start (``v = 0``, row argmins), ``(kept_start, kept_cold)``, in one pass over the rows (the second
    scan of a row reads it from cache); no side effects."""
    n = C.shape[0]
    owner = np.full(n, -1, np.int64)
    owner_cold = np.full(n, -1, np.int64)
    zeros = np.zeros(n)
    kept = 0
    kept_cold = 0
    for i in range(n):
        best, arg = _row_best(C, v, i, owner)
        j = proposal[i]
        if j < 0:
            j = arg
        if j >= 0 and owner[j] == -1 and C[i, j] - v[j] == best:
            owner[j] = i
            kept += 1
        best, j = _row_best(C, zeros, i, owner_cold)
        if j >= 0 and owner_cold[j] == -1:
            owner_cold[j] = i
            kept_cold += 1
    return kept, kept_cold


_KERNELS: dict[str, Any] = {}
#: Bids of the augmenting row reduction per row of the matrix before the shortest-path phase takes over.
ARR_STEPS = 8


def have_compiled_solver() -> bool:
    """Whether numba is importable, so that :func:`solve_warm` / :func:`solve_batch` run compiled (else scipy)."""
    return _kernels() is not None


def _compiled(names: tuple[str, ...], fns: tuple[Callable, ...], *, fallback: bool = False
              ) -> tuple[Callable, ...] | None:
    """The kernels ``fns``, kept in ``_KERNELS`` under ``names`` and compiled by numba on first use; without numba
    ``None`` (the callers fall back to scipy) or, with ``fallback``, the plain-Python functions. Tests put
    plain-Python kernels under the same names to run the solvers uncompiled."""
    if names[0] not in _KERNELS:
        try:
            import numba
        except ImportError:
            _KERNELS.update({n: (f if fallback else None) for n, f in zip(names, fns)})
        else:
            jit = numba.njit(cache=True, nogil=True)
            _KERNELS.update({n: jit(f) for n, f in zip(names, fns)})
    if _KERNELS[names[0]] is None:
        return None
    return tuple(_KERNELS[n] for n in names)


def _kernels() -> tuple[Callable, Callable, Callable] | None:
    return _compiled(("init", "sap", "kept"), (_init_kernel, _sap_kernel, _kept_kernel))


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

    @classmethod
    def proposal(cls, perm: torch.Tensor | np.ndarray, maximize: bool = False) -> "Duals":
        """A start that only proposes an assignment, row ``i`` → column ``perm[i]``, with zero potentials
        ``v = 0``: :func:`solve_warm` then re-solves on each row's best columns plus its proposed one (cheaper
        than the cold start when the proposal is nearly optimal, e.g. PCD's current permutation)."""
        perm = np.asarray(perm.cpu() if isinstance(perm, torch.Tensor) else perm, dtype=np.int64)
        if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(perm.shape[0])):
            raise ValueError(f"perm must be a permutation of range(n), got shape {perm.shape}")
        return cls(perm.copy(), np.zeros(perm.shape[0]), check_bool("maximize", maximize))


def _all_finite(C: torch.Tensor) -> bool:
    """Whether every entry is finite (a finite sum proves it cheaply; NaN/inf always poison the sum)."""
    return bool(torch.isfinite(C.sum())) or bool(torch.isfinite(C).all())


def _check_finite(name: str, C: object) -> None:
    """Raise ``ValueError`` naming the count and the first position of NaN / ±inf entries of ``C`` (anything but
    a non-empty floating tensor is left to the shape and type checks)."""
    if not isinstance(C, torch.Tensor) or not C.is_floating_point() or C.numel() == 0 or _all_finite(C):
        return
    bad = ~torch.isfinite(C)
    first = tuple(int(k) for k in torch.nonzero(bad)[0])
    raise ValueError(f"{name} must be finite: {int(bad.sum())} NaN or infinite entries, the first "
                     f"{name}[{', '.join(map(str, first))}] = {float(C[first])} (forbidden pairs need a large "
                     f"finite cost)")


def _float64_copy(C: torch.Tensor, maximize: bool) -> np.ndarray:
    """A row-major float64 CPU copy of ``C`` (negated if ``maximize``: the solver minimises)."""
    R = C.detach().to("cpu", torch.float64, memory_format=torch.contiguous_format, copy=True).numpy()
    if maximize:
        np.negative(R, out=R)
    return R


def _min_matrix(C: torch.Tensor, maximize: bool) -> np.ndarray:
    """A row-major CPU matrix the kernels read for ``min``: ``C`` itself when it is a contiguous float32/float64
    CPU tensor and ``not maximize`` (read only, no copy), ``−C`` in ``C``'s dtype (exact) when ``maximize``, a
    float64 copy for any other dtype or device. The kernels compute in float64 either way (``C_ij − v_j`` with
    float64 ``v``), so the solve is the same as on a float64 copy."""
    C = C.detach()
    if C.device.type != "cpu" or C.dtype not in (torch.float32, torch.float64):
        return _float64_copy(C, maximize)
    if maximize:
        return torch.neg(C, out=torch.empty(C.shape, dtype=C.dtype)).numpy()
    return C.contiguous().numpy()


def _solve_min(R: np.ndarray, v: np.ndarray | None, proposal: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
    """Compiled solve of ``min`` on the matrix ``R`` (float32 or float64, computed in float64); returns
    ``(perm, v, augmented, scanned, warm)``.

    With a start ``(v, proposal)``: a re-solve on the candidate edges that the start's potentials select
    (:func:`_solve_warm_sparse_min`), ``warm = True``. Without one (or without the warm kernels): the dense solve
    from the cold start (``v = 0``, row argmins)."""
    init, sap, kept = _kernels()
    n = R.shape[0]
    if v is not None and _warm_kernels() is not None:
        perm, v_new, freed, scanned = _solve_warm_sparse_min(R, v, proposal)
        return perm, v_new, freed, scanned, True
    cold_v, cold_p = np.zeros(n), np.full(n, -1, np.int64)
    if v is not None:
        kept_start, kept_cold = kept(R, v.astype(np.float64), proposal.astype(np.int64))
    warm = v is not None and kept_start > kept_cold
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
    them dual feasible for the new ``C``, every row whose old column is still tight keeps it, and the other rows
    (``Duals.augmented``) are augmented on candidate edges, each row's :data:`WARM_K` best columns under ``v`` and
    its old one, with pricing against the dense matrix (:func:`_solve_warm_sparse_min`; the old columns form a
    perfect matching inside the candidates, so an augmenting path always exists there). Without a start: ``v = 0``,
    each row proposes its best column, the first row to claim a column keeps it, and the rest are augmented.
    Either way the result is an optimal assignment (the certificate is exact up to float64 rounding); on ties it
    may differ from scipy's. A float32 or float64 CPU ``C`` is read in place (negated copy if ``maximize``), the
    arithmetic is float64.

    Without numba (:func:`have_compiled_solver`), scipy solves ``C`` and the returned ``Duals`` carry
    ``v = None`` semantics as zeros with ``augmented = n`` (a later start then only proposes the permutation).

    Returns ``(perm, duals)``: ``perm`` LongTensor ``(n,)`` on ``C``'s device.
    """
    if not isinstance(C, torch.Tensor) or not C.is_floating_point() or C.ndim != 2 or C.shape[0] != C.shape[1] \
            or C.numel() == 0:
        C = _check_square("C", C)  # raises the standard message
    _check_finite("C", C)
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
    R = _min_matrix(C, maximize)
    if _kernels() is None:
        _, cols = linear_sum_assignment(R)
        duals = Duals(cols.astype(np.int64), np.zeros(n), maximize, n, 0, False)
    else:
        cols, v, free, scanned, warm = _solve_min(R, None if start is None else start.v,
                                                  None if start is None else start.perm)
        duals = Duals(cols, v, maximize, free, scanned, warm)
    return torch.as_tensor(duals.perm, dtype=torch.long, device=C.device), duals


#: ``solve_batch``'s methods: the dense compiled solver (:func:`solve_warm`) or the sparse one (:func:`solve_sparse`).
BATCH_METHODS = ("dense", "sparse")


def _solve_one(R: np.ndarray, method: str) -> np.ndarray:
    """One minimisation matrix of a batch, by ``method`` (scipy when numba is not installed)."""
    if _kernels() is None:
        return linear_sum_assignment(R)[1].astype(np.int64)
    if method == "sparse":
        return _solve_sparse_min(R, SPARSE_K)[0]
    return _solve_min(R, None, None)[0]


def solve_batch(C: torch.Tensor, maximize: bool = False, *, workers: int | None = None, method: str = "dense",
                processes: bool = False) -> torch.Tensor:
    """Exact LAPs of ``B`` independent matrices ``C`` ``(B, n, n)``: ``perm[b] = argmin_π Σ_i C[b, i, π(i)]``.

    Each matrix is solved as :func:`solve_warm` without a start (``method="dense"``) or as :func:`solve_sparse`
    (``method="sparse"``: candidate edges priced out against the dense matrix, much faster where the optimum
    lives on few cheap edges per row, e.g. teacher–student functional costs; exact either way). ``workers``
    (default: the CPU count) threads share them through a :class:`concurrent.futures.ThreadPoolExecutor` (the
    compiled solvers release the GIL), or with ``processes=True`` as many worker processes (a
    :class:`concurrent.futures.ProcessPoolExecutor`, forked where the platform allows: each matrix is pickled to
    its worker, which pays off only when a solve costs much more than the copy); ``workers=1`` solves them one
    after another in the calling thread. A CUDA ``C`` is copied to the CPU (no GPU solver is shipped: GPU LAP
    solvers lose to this one on single large matrices, and none could be tested here). Returns LongTensor
    ``(B, n)`` on ``C``'s device.
    """
    _check_finite("C", C)
    C = check_tensor("C", C, ndim=3)
    if C.shape[1] != C.shape[2]:
        raise ValueError(f"C must be a batch of square matrices (B, n, n), got shape {tuple(C.shape)}")
    check_bool("maximize", maximize)
    workers = check_int("workers", workers, 1, allow_none=True)
    method = check_choice("method", method, BATCH_METHODS)
    check_bool("processes", processes)
    workers = workers or os.cpu_count() or 1
    mats = [_float64_copy(C[b], maximize) for b in range(C.shape[0])]
    if workers == 1 or len(mats) <= 1:
        perms = [_solve_one(R, method) for R in mats]
    elif processes:
        import multiprocessing
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(max_workers=min(workers, len(mats)), mp_context=ctx) as pool:
            perms = list(pool.map(_solve_one, mats, [method] * len(mats)))
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(mats))) as pool:
            perms = list(pool.map(_solve_one, mats, [method] * len(mats)))
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=C.device)


# ---------------------------------------------------------------------------------------------------------------
# Sparse shortest augmenting paths on candidate edges, with a dense pricing certificate (solve_sparse)
# ---------------------------------------------------------------------------------------------------------------

def _sparse_sap_kernel(data: np.ndarray, indptr: np.ndarray, indices: np.ndarray, u: np.ndarray, v: np.ndarray,
                       col4row: np.ndarray, row4col: np.ndarray) -> int:
    """:func:`_sap_kernel` restricted to the candidate edges ``S`` (row ``i``'s columns are
    ``indices[indptr[i]:indptr[i + 1]]``, their costs ``R_ij`` in ``data`` at the same positions, see
    :func:`_edge_costs`), Dijkstra with a binary heap (among equal distances a free column first).
    Preconditions: ``R_ij − u_i − v_j ≥ 0`` on ``S``, matched edges in ``S`` and tight. Returns the rows scanned,
    or ``−(1 + row)`` for the first free row without an augmenting path inside ``S`` (the state is then as it was
    before that row)."""
    n = u.shape[0]
    spc = np.full(n, math.inf)
    path = np.full(n, -1, np.int64)
    SC = np.zeros(n, np.bool_)
    touched = np.empty(n, np.int64)
    srows = np.empty(n, np.int64)
    scanned = 0
    for cur in range(n):
        if col4row[cur] != -1:
            continue
        ntouched = 0
        nsr = 0
        heap = [(0.0, 0, 0)]
        heap.pop()
        min_val = 0.0
        i = cur
        sink = -1
        while sink == -1:
            srows[nsr] = i
            nsr += 1
            scanned += 1
            for e in range(indptr[i], indptr[i + 1]):
                j = indices[e]
                if SC[j]:
                    continue
                r = min_val + data[e] - u[i] - v[j]
                if r < spc[j]:
                    if spc[j] == math.inf:
                        touched[ntouched] = j
                        ntouched += 1
                    spc[j] = r
                    path[j] = i
                    heapq.heappush(heap, (r, 0 if row4col[j] == -1 else 1, j))
            j = -1
            while len(heap) > 0:
                d, _, jj = heapq.heappop(heap)
                if not SC[jj] and d == spc[jj]:
                    j = jj
                    min_val = d
                    break
            if j < 0:
                for t in range(ntouched):
                    spc[touched[t]] = math.inf
                    SC[touched[t]] = False
                return -(1 + cur)
            SC[j] = True
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
        u[cur] += min_val
        for t in range(1, nsr):
            i = srows[t]
            u[i] += min_val - spc[col4row[i]]
        for t in range(ntouched):
            j = touched[t]
            if SC[j]:
                v[j] -= min_val - spc[j]
        _augment(path, row4col, col4row, sink, cur)
        for t in range(ntouched):
            spc[touched[t]] = math.inf
            SC[touched[t]] = False
    return scanned


def _sparse_repair_kernel(R: np.ndarray, data: np.ndarray, indptr: np.ndarray, indices: np.ndarray, u: np.ndarray,
                          v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, tight_tol: float) -> int:
    """Make ``(u, v)`` feasible on ``S`` (edge costs ``data``, as :func:`_sparse_sap_kernel`; the matched edge's
    cost read from the dense ``R``) exactly, ``u_i = min_{j ∈ S_i} (R_ij − v_j)``, free every row whose
    matched edge is no longer tight within ``tight_tol`` relative to ``|R_ij| + |v_j| + |R_ik| + |v_k|``, ``k`` the
    row's best column (float64 rounding of both reduced costs and of the incremental dual updates; measured
    relative to the matched edge alone, a best column of much larger magnitude freed the row after every
    augmentation, forever), and give a free row its best column when that column is
    free (a tight edge: the greedy start). Returns the number of free rows."""
    n = R.shape[0]
    free = 0
    for i in range(n):
        best = math.inf
        arg = -1
        cost = math.inf
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            r = data[e] - v[j]
            if r < best or (r == best and arg >= 0 and row4col[arg] != -1 and row4col[j] == -1):
                best = r
                arg = j
                cost = data[e]
        u[i] = best
        j = col4row[i]
        if j >= 0 and R[i, j] - v[j] - best > tight_tol * (abs(R[i, j]) + abs(v[j]) + abs(cost) + abs(v[arg])):
            col4row[i] = -1
            row4col[j] = -1
        if col4row[i] == -1 and arg >= 0 and row4col[arg] == -1:  # a free tight column: take it
            col4row[i] = arg
            row4col[arg] = i
        if col4row[i] == -1:
            free += 1
    return free


def _sparse_price_kernel(R: np.ndarray, u: np.ndarray, v: np.ndarray, mask: np.ndarray) -> int:
    """Pricing: add to ``mask`` (the candidate set) every edge outside it with ``R_ij − v_j < u_i`` (negative
    reduced cost: ``(u, v)`` not dual feasible there). Returns how many were added (0: the certificate holds)."""
    n = R.shape[0]
    added = 0
    for i in range(n):
        ui = u[i]
        for j in range(n):
            if R[i, j] - v[j] < ui and not mask[i, j]:
                mask[i, j] = True
                added += 1
    return added


def _edge_costs(R: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The costs ``R_ij`` of the CSR edges ``(indptr, indices)`` in their order, float64 (exact for a float32
    ``R``): the sparse kernels read them in sequence instead of one scattered entry of ``R`` per edge."""
    rows = np.repeat(np.arange(R.shape[0]), np.diff(indptr))
    return R[rows, indices].astype(np.float64, copy=False)


def _mask_to_csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, indices)`` of a boolean ``(n, n)`` mask, columns in increasing order within a row."""
    rows, cols = np.nonzero(mask)
    indptr = np.zeros(mask.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int64)


def _keys_kernel(R: np.ndarray, w: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """``rows[i] = Σ_j R_ij w_j`` and ``cols[j] = Σ_i R_ij w_i``, each summed in one fixed order (identical rows or
    columns of ``R`` give bit-identical keys)."""
    n, m = R.shape
    for j in range(m):
        cols[j] = 0.0
    for i in range(n):
        acc = 0.0
        wi = w[i]
        for j in range(m):
            x = R[i, j]
            acc += x * w[j]
            cols[j] += x * wi
        rows[i] = acc


def _classes_from_keys(R: np.ndarray, key: np.ndarray, axis: int) -> np.ndarray:
    """``cls[i]``: the representative of the class of rows (``axis=0``) or columns (``axis=1``) of ``R`` exactly
    identical to ``i``, grouped by ``key`` and verified entry by entry (a key collision only splits a class)."""
    n = key.shape[0]
    order = np.argsort(key, kind="stable")
    cls = np.arange(n)
    sk = key[order]
    bounds = np.flatnonzero(np.diff(sk) != 0) + 1
    for group in np.split(order, bounds):
        if group.size < 2:
            continue
        reps: list[int] = []
        for s in group:
            line = R[s] if axis == 0 else R[:, s]
            for r in reps:
                if np.array_equal(line, R[r] if axis == 0 else R[:, r]):
                    cls[s] = r
                    break
            else:
                if len(reps) < 4:
                    reps.append(int(s))
    return cls


def _insert(bufv: np.ndarray, bufj: np.ndarray, k: int, r: float, j: int) -> None:
    """Insert ``(r, j)`` into the ascending buffer of the ``k`` smallest (its last entry is dropped)."""
    t = k - 1
    while t > 0 and bufv[t - 1] > r:
        bufv[t] = bufv[t - 1]
        bufj[t] = bufj[t - 1]
        t -= 1
    bufv[t] = r
    bufj[t] = j


_insert = _jit_helper(_insert)


def _class_lists(cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(size, start, mem)``: class ``c`` (its representative's index) has ``size[c]`` members
    ``mem[start[c]:start[c] + size[c]]``."""
    n = cls.shape[0]
    size = np.zeros(n, np.int64)
    for j in range(n):
        size[cls[j]] += 1
    start = np.zeros(n + 1, np.int64)
    for j in range(n):
        start[j + 1] = start[j] + size[j]
    fill = start[:n].copy()
    mem = np.empty(n, np.int64)
    for j in range(n):
        c = cls[j]
        mem[fill[c]] = j
        fill[c] += 1
    return size, start, mem


_class_lists = _jit_helper(_class_lists)


def _candidate_kernel(red: np.ndarray, rowcls: np.ndarray, colcls: np.ndarray, k: int, mask: np.ndarray) -> None:
    """Mark in ``mask`` each row's ``k`` smallest entries of ``red`` among representative columns
    (``colcls[j] == j``) and each column's ``k`` smallest among representative rows; then a row (column) that
    marked the representative of a class of identical columns (rows) gets ``k`` members of that class, a window
    that moves with the row (column), so that a plateau such as the dead neurons is spread over the other side
    instead of joining every row (or filling every row's ``k`` slots)."""
    n = red.shape[0]
    bufv = np.empty(k)
    bufj = np.empty(k, np.int64)
    cv = np.full((n, k), math.inf)
    ci = np.full((n, k), -1, np.int64)
    for i in range(n):
        for t in range(k):
            bufv[t] = math.inf
            bufj[t] = -1
        rep_row = rowcls[i] == i
        for j in range(n):
            r = red[i, j]
            if colcls[j] == j and r < bufv[k - 1]:
                _insert(bufv, bufj, k, r, j)
            if rep_row and r < cv[j, k - 1]:
                _insert(cv[j], ci[j], k, r, i)
        for t in range(k):
            if bufj[t] >= 0:
                mask[i, bufj[t]] = True
    for j in range(n):
        for t in range(k):
            if ci[j, t] >= 0:
                mask[ci[j, t], j] = True
    csize, cstart, cmem = _class_lists(colcls)
    for i in range(n):
        for c in range(n):
            if csize[c] > 1 and mask[i, c]:
                for t in range(min(k, csize[c])):
                    mask[i, cmem[cstart[c] + (i * k + t) % csize[c]]] = True
    rsize, rstart, rmem = _class_lists(rowcls)
    for c in range(n):
        if rsize[c] > 1:
            for j in range(n):
                if mask[c, j]:
                    for t in range(min(k, rsize[c])):
                        mask[rmem[rstart[c] + (j * k + t) % rsize[c]], j] = True


def _candidate_mask(R: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first candidate set and duals: ``u = `` row minima, ``v = `` column minima of ``R − u``; each row's
    ``k`` smallest reduced costs and each column's ``k`` smallest, chosen among class representatives of
    exactly identical columns (rows), a chosen representative bringing ``k`` members of its class, a different
    window for each row (a plateau of identical columns such as dead neurons otherwise fills every row's ``k``
    slots, or joins every row). Returns ``(mask, u, v)``."""
    keys, cand = _kernels_extra()
    n = R.shape[0]
    u = R.min(1)
    red = R - u[:, None]
    v = red.min(0)
    red -= v
    rk, ck = np.empty(n), np.empty(n)
    keys(red, np.random.default_rng(0).random(n) + 0.5, rk, ck)
    rowcls, colcls = _classes_from_keys(red, rk, 0), _classes_from_keys(red, ck, 1)
    mask = np.zeros((n, n), np.bool_)
    cand(red, rowcls, colcls, min(k, n), mask)
    return mask, u, v


def _kernels_extra() -> tuple[Callable, Callable]:
    return _compiled(("keys", "cand"), (_keys_kernel, _candidate_kernel), fallback=True)


#: Candidate edges per row and per column in :func:`solve_sparse`'s first candidate set.
SPARSE_K = 8
#: Rounds (candidate growth, pricing, rounding repairs) after which :func:`solve_sparse` hands over to the dense
#: compiled solver (a safety net: the rounds are bounded by the candidate set reaching the dense matrix anyway).
SPARSE_MAX_ROUNDS = 64


def _sparse_kernels() -> tuple[Callable, Callable, Callable] | None:
    return _compiled(("sparse", "repair", "price"), (_sparse_sap_kernel, _sparse_repair_kernel, _sparse_price_kernel))


def _solve_sparse_min(R: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """:func:`solve_sparse` on the float64 minimisation matrix ``R``; ``(perm, v, rounds, candidates, scanned)``."""
    sap, repair, price = _sparse_kernels()
    n = R.shape[0]
    mask, u, v = _candidate_mask(R, k)
    tight_tol = 8 * np.finfo(np.float64).eps  # relative: rounding of the incremental dual updates only
    col4row, row4col = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    rounds = scanned = 0
    while True:
        rounds += 1
        if rounds > SPARSE_MAX_ROUNDS:  # never seen; the dense solver is exact on anything finite
            perm, v, _, scanned, _ = _solve_min(R, None, None)
            return perm, v, rounds, n * n, scanned
        indptr, indices = _mask_to_csr(mask)
        data = _edge_costs(R, indptr, indices)
        repair(R, data, indptr, indices, u, v, col4row, row4col, tight_tol)
        status = sap(data, indptr, indices, u, v, col4row, row4col)
        if status < 0:  # Hall's condition fails inside S: widen the rows of the failed search
            # every row gets k more of its best columns under the current v (cheap, and it always grows S)
            k = min(2 * k, n)
            red = R - v[None, :]
            top = np.argpartition(red, k - 1, axis=1)[:, :k] if k < n else None
            if top is None:
                mask[:] = True
            else:
                mask[np.repeat(np.arange(n), k), top.ravel()] = True
            continue
        scanned += status
        repair(R, data, indptr, indices, u, v, col4row, row4col, tight_tol)
        if (col4row < 0).any():
            continue  # rounding freed a row: augment it again (no new edges needed)
        if price(R, u, v, mask) == 0:
            return col4row, v, rounds, int(indptr[-1]), scanned


def solve_sparse(C: torch.Tensor, maximize: bool = False, *, k: int = SPARSE_K) -> tuple[torch.Tensor, Duals]:
    """Exact LAP like :func:`solve_warm`, by shortest augmenting paths on a sparse candidate set priced out
    against the dense matrix (column generation); the answer carries the same dual certificate.

    1. ``u`` = row minima, ``v`` = column minima of ``C − u``; the candidate edges are each row's ``k`` and each
       column's ``k`` smallest reduced costs, where a plateau of exactly identical columns (rows), such as the dead
       neurons of a teacher–student functional cost (:func:`lmcnb.papers.teacher_student.functional_cost`), is
       represented by one member and brings the whole class.
    2. Dijkstra on the candidate edges only (a binary heap, a few edges per row: the few-types structure of the
       teacher–student costs makes these searches short). When a free row has no augmenting path inside the set
       (Hall's condition fails there), every row gets ``k`` more of its best columns (``k`` doubling).
    3. Pricing: ``u_i = min_{j∈S_i}(C_ij − v_j)``; every edge outside the set with ``C_ij − u_i − v_j < 0`` joins it
       and step 2 resumes from the current matching and duals. When none is left, ``(u, v)`` is dual feasible
       on the whole matrix and the matched edges are tight (within ``8 eps (|C_ij| + |u_i| + |v_j|)`` per edge,
       float64 rounding of the dual updates): the assignment is optimal, like scipy's (on ties it may be another optimum).

    Worst case (no structure) the set grows to the dense matrix; it is never wrong, only slower.
    ``Duals.augmented`` is the number of pricing rounds, ``Duals.scanned`` the rows scanned by the searches.
    Without numba, scipy solves ``C`` (as :func:`solve_warm`). Returns ``(perm, duals)``.
    """
    _check_finite("C", C)
    C = _check_square("C", C)
    check_bool("maximize", maximize)
    k = check_int("k", k, 1)
    n = C.shape[0]
    R = _float64_copy(C, maximize)
    if _sparse_kernels() is None:
        _, cols = linear_sum_assignment(R)
        duals = Duals(cols.astype(np.int64), np.zeros(n), maximize, n, 0, False)
    else:
        cols, v, rounds, _, scanned = _solve_sparse_min(R, k)
        duals = Duals(cols, v, maximize, rounds, scanned, False)
    return torch.as_tensor(duals.perm, dtype=torch.long, device=C.device), duals


# ---------------------------------------------------------------------------------------------------------------
# Warm re-solves on candidate edges chosen by the previous duals (solve_warm with a start)
# ---------------------------------------------------------------------------------------------------------------

#: Candidate columns per row (besides its proposal) in a warm re-solve of :func:`solve_warm`.
WARM_K = 8


def _warm_candidates_kernel(C: np.ndarray, v: np.ndarray, proposal: np.ndarray, k: int, indices: np.ndarray,
                            floor: np.ndarray, i0: int, i1: int) -> None:
    """For rows ``i0 ≤ i < i1``: row ``i``'s ``k`` smallest ``C_ij − v_j`` and its proposal into
    ``indices[i(k+1) : (i+1)(k+1)]`` (the proposal may repeat one of them); ``floor[i]`` = the ``k``-th smallest,
    a lower bound of ``C_ij − v_j`` on every column left out. Two passes over a row: the minima of its
    :func:`_scan_classes` residue classes of columns (:func:`_class_mins`, vectorised), then entry by entry only
    the classes whose minimum is at most the ``k``-th smallest class minimum (``k`` classes hold an entry at most
    that, so no other class holds one of the ``k`` smallest)."""
    n = C.shape[0]
    nc = _scan_classes(n)
    cmin = np.empty(nc)
    kb = min(k, nc)
    topb = np.empty(kb)
    topj = np.empty(kb, np.int64)
    bufv = np.empty(k)
    bufj = np.empty(k, np.int64)
    for i in range(i0, i1):
        _class_mins(C, v, i, nc, cmin)
        for t in range(kb):
            topb[t] = math.inf
            topj[t] = -1
        for c in range(nc):
            if cmin[c] < topb[kb - 1]:
                _insert(topb, topj, kb, cmin[c], c)
        bound = topb[kb - 1] if kb == k else math.inf
        for t in range(k):
            bufv[t] = math.inf
            bufj[t] = -1
        for c in range(nc):
            if cmin[c] > bound or not cmin[c] < bufv[k - 1]:
                continue
            for j in range(c, n, nc):
                r = C[i, j] - v[j]
                if r < bufv[k - 1]:
                    _insert(bufv, bufj, k, r, j)
        floor[i] = bufv[k - 1]
        base = i * (k + 1)
        for t in range(k):
            indices[base + t] = bufj[t]
        indices[base + k] = proposal[i]


def _warm_price_kernel(C: np.ndarray, u: np.ndarray, v: np.ndarray, floor: np.ndarray, indptr: np.ndarray,
                       indices: np.ndarray, out_i: np.ndarray, out_j: np.ndarray, priced: np.ndarray, i0: int,
                       i1: int) -> int:
    """Pricing of the rows ``i0 ≤ i < i1`` whose ``u_i`` exceeds ``floor[i]`` (the others are dual feasible off
    the candidate set: ``v`` only decreases during the solve, so ``C_ij − v_j ≥ floor[i] ≥ u_i`` there): every
    column outside the set with ``C_ij − v_j < u_i`` is written to ``(out_i, out_j)`` in row order while capacity
    lasts, ``priced[i]`` marks the rows scanned. Returns the number of such edges (more than the capacity: call
    again with more room)."""
    n = C.shape[0]
    nc = _scan_classes(n)
    cmin = np.empty(nc)
    cap = out_i.shape[0]
    count = 0
    for i in range(i0, i1):
        ui = u[i]
        priced[i] = ui > floor[i]
        if not priced[i]:
            continue
        _class_mins(C, v, i, nc, cmin)
        for c in range(nc):
            if not cmin[c] < ui:
                continue
            for j in range(c, n, nc):
                if C[i, j] - v[j] < ui:
                    inside = False
                    for e in range(indptr[i], indptr[i + 1]):
                        if indices[e] == j:
                            inside = True
                            break
                    if not inside:
                        if count < cap:
                            out_i[count] = i
                            out_j[count] = j
                        count += 1
    return count


def _warm_merge_kernel(indptr: np.ndarray, indices: np.ndarray, out_i: np.ndarray, out_j: np.ndarray, count: int,
                       new_indptr: np.ndarray, new_indices: np.ndarray) -> None:
    """The CSR candidate set ``(indptr, indices)`` with the ``count`` edges ``(out_i, out_j)`` appended to their
    rows, into ``(new_indptr, new_indices)``."""
    n = indptr.shape[0] - 1
    extra = np.zeros(n, np.int64)
    for t in range(count):
        extra[out_i[t]] += 1
    new_indptr[0] = 0
    for i in range(n):
        new_indptr[i + 1] = new_indptr[i] + indptr[i + 1] - indptr[i] + extra[i]
    fill = np.empty(n, np.int64)
    for i in range(n):
        s = new_indptr[i]
        for e in range(indptr[i], indptr[i + 1]):
            new_indices[s] = indices[e]
            s += 1
        fill[i] = s
    for t in range(count):
        i = out_i[t]
        new_indices[fill[i]] = out_j[t]
        fill[i] += 1


def _warm_reduce_kernel(data: np.ndarray, indptr: np.ndarray, indices: np.ndarray, floor: np.ndarray,
                        v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, max_steps: int) -> int:
    """Jonker–Volgenant's augmenting row reduction (as in :func:`_init_kernel`) on the candidate edges: each free
    row bids for its best candidate column ``j1`` (a free one among equal bests), lowers ``v[j1]`` by the gap
    to its second best, ``min(second best candidate, floor[i])`` (``floor[i]`` bounds every left-out column
    from below, so the bidder's new minimum stays at most all of them: a bid creates no pricing violation),
    and displaces the owner, which bids next; a row whose best candidate is not below ``floor[i]`` is left to
    the searches. Two passes over the free rows, at most ``max_steps`` bids. ``v`` only decreases (every
    floor stays valid), the bidder's edge ties its new row minimum and no other matched edge loses tightness
    (only column ``j1``'s reduced costs rise). Edge costs ``data`` as :func:`_sparse_sap_kernel`. Returns the
    rows left free for the shortest paths."""
    n = v.shape[0]
    free = np.empty(n, np.int64)
    nfree = 0
    for i in range(n):
        if col4row[i] == -1:
            free[nfree] = i
            nfree += 1
    steps = 0
    for _ in range(2):
        k = 0
        previous = nfree
        nfree = 0
        while k < previous:
            if steps >= max_steps:  # hand the unprocessed rows to the shortest-path phase
                nfree = _hand_over(free, k, previous, nfree)
                break
            steps += 1
            i = free[k]
            k += 1
            umin = usub = math.inf
            j1 = j2 = -1
            for e in range(indptr[i], indptr[i + 1]):
                j = indices[e]
                if j == j1 or j == j2:  # the proposal may repeat a candidate column
                    continue
                r = data[e] - v[j]
                if r < umin or (r == umin and j1 >= 0 and row4col[j1] != -1 and row4col[j] == -1):
                    usub = umin
                    j2 = j1
                    umin = r
                    j1 = j
                elif r < usub:
                    usub = r
                    j2 = j
            if usub > floor[i]:  # a left-out column may be the true second best
                if not umin < floor[i]:
                    free[nfree] = i
                    nfree += 1
                    continue
                usub = floor[i]
                j2 = -1
            k, nfree = _bid(v, col4row, row4col, free, i, umin, j1, usub, j2, k, nfree)
    return nfree


#: Rows from which the warm row scans (candidate selection, pricing) are split over ``torch.get_num_threads()``
#: threads (below, thread hand-offs cost more than the scans).
SCAN_THREADS_MIN_N = 1024
_SCAN_POOL: dict[str, Any] = {}


def _scan_parts(n: int) -> list[tuple[int, int]]:
    """The row ranges ``[i0, i1)`` of the warm row scans of an ``n``-row matrix: one per torch thread (the
    threads PyTorch's own products use; the scans run between them) from :data:`SCAN_THREADS_MIN_N` rows, else
    one. Each row's result depends on that row alone, so the split never changes a result."""
    t = max(1, min(torch.get_num_threads(), n)) if n >= SCAN_THREADS_MIN_N else 1
    bounds = [n * c // t for c in range(t + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _on_parts(fn: Callable[[int, int, int], Any], parts: list[tuple[int, int]]) -> list[Any]:
    """``[fn(c, i0, i1) for c, (i0, i1) in enumerate(parts)]``: the first part in this thread, the others in a
    thread pool kept for the process (the compiled kernels release the GIL; a forked child makes its own pool)."""
    if len(parts) == 1:
        return [fn(0, *parts[0])]
    pool = _SCAN_POOL.get("pool")
    if pool is None or _SCAN_POOL["pid"] != os.getpid() or _SCAN_POOL["workers"] < len(parts) - 1:
        if pool is not None and _SCAN_POOL["pid"] == os.getpid():
            pool.shutdown(wait=False)
        pool = ThreadPoolExecutor(max_workers=len(parts) - 1, thread_name_prefix="lmcnb-scan")
        _SCAN_POOL.update(pool=pool, pid=os.getpid(), workers=len(parts) - 1)
    futures = [pool.submit(fn, c, *part) for c, part in enumerate(parts) if c]
    first = fn(0, *parts[0])
    return [first] + [f.result() for f in futures]


def _price_parts(price: Callable, R: np.ndarray, u: np.ndarray, v: np.ndarray, floor: np.ndarray,
                 indptr: np.ndarray, indices: np.ndarray, priced: np.ndarray, buffers: list[tuple[np.ndarray, ...]],
                 parts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The pricing kernel over ``parts`` (:func:`_on_parts`), each part into its own ``buffers[c]`` (grown when
    too small): the violated edges ``(out_i, out_j)`` in row order, as one scan of all rows would list them."""
    def part(c: int, i0: int, i1: int) -> int:
        out_i, out_j = buffers[c]
        count = price(R, u, v, floor, indptr, indices, out_i, out_j, priced, i0, i1)
        if count > out_i.shape[0]:
            buffers[c] = out_i, out_j = np.empty(2 * count, np.int64), np.empty(2 * count, np.int64)
            count = price(R, u, v, floor, indptr, indices, out_i, out_j, priced, i0, i1)
        return count
    counts = _on_parts(part, parts)
    return (np.concatenate([b[0][:m] for b, m in zip(buffers, counts)]),
            np.concatenate([b[1][:m] for b, m in zip(buffers, counts)]))


def _warm_kernels() -> tuple[Callable, Callable, Callable, Callable] | None:
    return _compiled(("wcand", "wprice", "wmerge", "wreduce"),
                     (_warm_candidates_kernel, _warm_price_kernel, _warm_merge_kernel, _warm_reduce_kernel))


def _solve_warm_sparse_min(R: np.ndarray, v: np.ndarray, proposal: np.ndarray, k: int = WARM_K
                           ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Exact re-solve of ``min`` on ``R`` from a start ``(v, proposal)`` (a permutation), on candidate edges:
    each row's ``k`` best columns under ``v`` and its proposal. Returns ``(perm, v, freed, scanned)`` (``freed``:
    rows whose proposal was not tight at the start). The proposal edges are a perfect matching inside the
    candidate set, so every free row has an augmenting path there (Hall's condition holds in the set).

    1. ``u_i = min_{j∈S_i} (R_ij − v_j)`` (the row's dense minimum), the proposal kept where it is tight;
    2. the free rows bid on the candidate edges (:func:`_warm_reduce_kernel`, each bid capped at ``floor_i``), then
       Dijkstra on them (:func:`_sparse_sap_kernel`) for the rows still free; both only lower ``v``;
    3. pricing only where needed: a row with ``u_i ≤ floor_i`` is dual feasible on every column outside the set
       (``R_ij − v_j`` only grew since ``floor_i`` bounded it); the other rows are scanned densely, their
       violated edges join the set, ``floor_i = u_i``, and 1–2 resume from the current matching and duals.
    Stops when no row is violated: ``(u, v)`` dual feasible on the whole matrix, matched edges tight (within
    ``8 eps`` relative, as :func:`solve_sparse`), the assignment optimal. After :data:`SPARSE_MAX_ROUNDS` rounds
    (never seen since the repair tolerance counts both edges' magnitudes) the dense cold solve takes over."""
    sap, repair, _ = _sparse_kernels()
    cand, price, merge, reduce = _warm_kernels()
    n = R.shape[0]
    k = min(k, n)
    v = v.astype(np.float64, copy=True)
    col4row = proposal.astype(np.int64, copy=True)
    row4col = np.empty(n, np.int64)
    row4col[col4row] = np.arange(n)
    indices, floor = np.empty(n * (k + 1), np.int64), np.empty(n)
    parts = _scan_parts(n)
    _on_parts(lambda c, i0, i1: cand(R, v, col4row, k, indices, floor, i0, i1), parts)
    indptr = np.arange(0, n * (k + 1) + 1, k + 1, dtype=np.int64)
    data = _edge_costs(R, indptr, indices)
    u = np.empty(n)
    tight_tol = 8 * np.finfo(np.float64).eps
    buffers = [(np.empty(i1 - i0, np.int64), np.empty(i1 - i0, np.int64)) for i0, i1 in parts]
    priced = np.zeros(n, np.bool_)
    freed = -1
    scanned = rounds = 0
    while True:
        rounds += 1
        if rounds > SPARSE_MAX_ROUNDS:  # a safety net, as in solve_sparse: the dense solver is exact
            perm, v, augmented, extra, _ = _solve_min(R, None, None)
            return perm, v, augmented, scanned + extra
        free = repair(R, data, indptr, indices, u, v, col4row, row4col, tight_tol)
        freed = free if freed < 0 else freed
        if free:  # bids first (cheap), then u = the row minima on the set again, as the searches require
            reduce(data, indptr, indices, floor, v, col4row, row4col, ARR_STEPS * n)
            repair(R, data, indptr, indices, u, v, col4row, row4col, tight_tol)
        status = sap(data, indptr, indices, u, v, col4row, row4col)
        if status < 0:  # impossible: the proposal edges are a perfect matching inside the set
            raise RuntimeError("no augmenting path inside a candidate set that holds a perfect matching")
        scanned += status
        repair(R, data, indptr, indices, u, v, col4row, row4col, tight_tol)
        if (col4row < 0).any():
            continue  # rounding freed a row: augment it again
        out_i, out_j = _price_parts(price, R, u, v, floor, indptr, indices, priced, buffers, parts)
        count = out_i.shape[0]
        if count == 0:
            return col4row, v, freed, scanned
        floor[priced] = u[priced]
        new_indptr, new_indices = np.empty(n + 1, np.int64), np.empty(indices.shape[0] + count, np.int64)
        merge(indptr, indices, out_i, out_j, count, new_indptr, new_indices)
        indptr, indices = new_indptr, new_indices
        data = _edge_costs(R, indptr, indices)
