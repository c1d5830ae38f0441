"""Permutation matchers: find the hidden-unit permutation π of model b that best aligns it with model a.

Every matcher shares one interface, ``matcher(model_a, model_b, data=None) -> MatchResult``, and returns the
permutation set to apply to **model b** (``tensor.index_select(axis, π)``: unit ``i`` of π(b) is unit ``π[i]``
of b), so that ``permute_model(model_b, result.perms)`` is aligned with ``model_a`` and computes the same
function as ``model_b``. :func:`align` does both steps.

Matchers (notation: θ_a, θ_b the two parameter sets; W^ℓ ∈ R^{m_ℓ × m_{ℓ−1}} a layer's weight):

- :class:`WeightMatching` — Ainsworth et al.'s (Git Re-Basin) data-free objective
  ``max_π Σ_t ⟨θ_a[t], π(θ_b)[t]⟩`` over the (non-carried) tensors t. One permutation group is a single exact
  linear assignment problem (LAP); several groups are solved by permutation coordinate descent (PCD).
- :class:`ActivationMatching` — one LAP per group on the correlation (or cross moment ``E[a bᵀ]``) of the two
  models' hidden activations, streamed over data in float64.
- :class:`OTMatching` — Ferbach et al. / OT fusion: layer by layer, exact optimal transport between the uniform
  empirical measures of the neurons' incoming weights (Birkhoff: a permutation for equal widths).
- :class:`CovarianceWeightedMatching` — the same with Ferbach et al.'s Σ-metric ``‖w_a − w_b‖²_Σ`` where
  ``Σ = E[h hᵀ]`` is the uncentred second moment of the layer's input (model a's features).
- functional matching of two-layer teacher–student nets (LAP on the exact pairwise midpoint interpolation error)
  needs that model's closed form and lives with it: :class:`lmcnb.papers.teacher_student.FunctionalMatching`.
- :class:`IdentityMatching`, :class:`RandomMatching` — baselines; :func:`brute_force_weight_matching` — the
  true weight-matching optimum for tiny widths.

This module holds the interface, weight matching and the baselines; activation matching is
:mod:`lmcnb._matching_activation`, layer-wise OT and covariance-weighted matching :mod:`lmcnb._matching_ot` (all
importable from here). Which modules hold each architecture's units is :mod:`lmcnb.permutation`'s knowledge.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from . import assignment
from . import models as M
from ._validate import check_choice, check_int
from .permutation import (Perms, PermutationSpec, apply_perms, identity_perms, permute_model, random_perms,
                          spec_for, validate_perms)

__all__ = [
    "MatchResult", "Matcher", "WeightMatching", "ActivationMatching", "OTMatching",
    "CovarianceWeightedMatching", "IdentityMatching", "RandomMatching",
    "align", "check_pair", "weight_matching_objective", "brute_force_weight_matching",
    "activation_similarity", "input_second_moments",
]

ORDERS = ("random", "forward", "backward")
SOLVERS = ("auto", "warm", "scipy")
#: Smallest group size at which ``WeightMatching(solver="auto")`` re-solves with warm-started duals (below it
#: scipy on the reduced cost is as fast and needs no compiled solver).
WARM_MIN_N = 256
STATISTICS = ("correlation", "cross_moment")
#: Largest number of permutation combinations :func:`brute_force_weight_matching` enumerates by default.
MAX_BRUTE_FORCE = 100_000


# ---------------------------------------------------------------------------------------------------------------
# Result and interface
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class MatchResult:
    """What a matcher found.

    Attributes:
        perms: permutation name → LongTensor ``(n,)`` to apply to model b.
        method: the matcher's name.
        objective_history: the matcher's objective after each step (see ``sense``); for weight matching the
            WM objective after every group update, starting with the initial permutation's value.
        sweeps: full passes over the permutation groups (1 for one-shot matchers, 0 for baselines).
        converged: whether the method reached its stopping criterion (always true for exact one-shot methods).
        seconds: wall-clock time of the call.
        info: method-specific details (``"exact"``, per-sweep/per-layer values, restarts, LAP counts, …).
        sense: ``"max"`` if the objective is maximised (WM, AM), ``"min"`` if it is a cost (OT, functional).
    """

    perms: Perms
    method: str
    objective_history: list[float] = field(default_factory=list)
    sweeps: int = 0
    converged: bool = True
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    sense: str = "max"

    @property
    def objective(self) -> float:
        """The final objective value (``nan`` if the method records none)."""
        return self.objective_history[-1] if self.objective_history else math.nan


class Matcher(ABC):
    """Base class of all matchers: validates the pair, times the call, checks the returned permutations.

    Subclasses set ``name`` (and ``needs_data``) and implement :meth:`_match`.
    """

    name: ClassVar[str] = "matcher"
    needs_data: ClassVar[bool] = False

    def __call__(self, model_a: nn.Module, model_b: nn.Module, data: Any = None) -> MatchResult:
        """Match ``model_b`` to ``model_a``; ``data`` is an input tensor ``(n, …)`` or an iterable of batches."""
        start = time.perf_counter()
        spec, sizes = check_pair(model_a, model_b)
        if self.needs_data and data is None:
            raise ValueError(f"{type(self).__name__} needs data: pass a tensor of inputs or an iterable of "
                             "input batches as the third argument")
        result = self._match(model_a, model_b, spec, sizes, data)
        validate_perms(result.perms, sizes)
        return dataclasses.replace(result, method=self.name, seconds=time.perf_counter() - start)

    @abstractmethod
    def _match(self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec, sizes: dict[str, int],
               data: Any) -> MatchResult:
        """The matcher proper, on a validated pair (``seconds`` and ``method`` are filled in by the caller)."""


def align(model_a: nn.Module, model_b: nn.Module, matcher: Callable[..., MatchResult],
          data: Any = None) -> tuple[nn.Module, MatchResult]:
    """Run ``matcher`` and return ``(π(model_b), result)``; π(model_b) computes the same function as b."""
    if not callable(matcher):
        raise TypeError(f"matcher must be callable (e.g. WeightMatching()), got {type(matcher).__name__}")
    result = matcher(model_a, model_b, data)
    if not isinstance(result, MatchResult):
        raise TypeError(f"matcher must return a MatchResult, got {type(result).__name__}")
    return permute_model(model_b, result.perms, spec_for(model_b)), result


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------

def _architecture(model: nn.Module) -> tuple:
    """Hyper-parameters that change the function but not the state's shapes."""
    if isinstance(model, M.TwoLayerNet):
        return type(model), model.output, model.scale_mode
    return (type(model),)


def check_pair(model_a: nn.Module, model_b: nn.Module) -> tuple[PermutationSpec, dict[str, int]]:
    """Check that two models can be matched; return b's spec and the permutation sizes.

    Raises ``TypeError`` (not a module, different dtypes) or ``ValueError`` (different architecture, widths
    or devices; NaN/inf in a tensor, named).
    """
    for arg, model in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{arg} must be a torch.nn.Module, got {type(model).__name__}")
    if _architecture(model_a) != _architecture(model_b):
        raise ValueError(f"model_a and model_b have different architectures: {_architecture(model_a)} vs "
                         f"{_architecture(model_b)}")
    spec_a, spec_b = spec_for(model_a), spec_for(model_b)
    if dict(spec_a.axes_to_perm) != dict(spec_b.axes_to_perm) or spec_a.carried != spec_b.carried:
        raise ValueError("model_a and model_b have different permutation specs (different architectures)")
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    for key, ta in state_a.items():
        _check_same_tensor(key, ta, state_b[key])
    return spec_b, spec_b.sizes(state_b)


def _check_same_tensor(key: str, ta: torch.Tensor, tb: torch.Tensor) -> None:
    if ta.shape != tb.shape:
        raise ValueError(f"model_a and model_b differ in shape at {key!r}: {tuple(ta.shape)} vs "
                         f"{tuple(tb.shape)} (different widths?)")
    if ta.dtype != tb.dtype:
        raise TypeError(f"model_a and model_b differ in dtype at {key!r}: {ta.dtype} vs {tb.dtype}")
    if ta.device != tb.device:
        raise ValueError(f"model_a and model_b differ in device at {key!r}: {ta.device} vs {tb.device}")
    for arg, t in (("model_a", ta), ("model_b", tb)):
        if t.is_floating_point() and not _all_finite(t):
            raise ValueError(f"{arg} tensor {key!r} contains NaN or inf")


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite (a finite sum proves it cheaply; NaN/inf always poison the sum)."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _like(model: nn.Module) -> torch.Tensor:
    """A floating parameter of ``model`` (its dtype and device are the model's)."""
    for t in model.parameters():
        if t.is_floating_point():
            return t
    raise ValueError(f"{type(model).__name__} has no floating parameters")


def _batches(data: Any, like: torch.Tensor, n_batches: int | None) -> Iterator[torch.Tensor]:
    """Validated input batches from a tensor or an iterable of tensors (or of ``(inputs, targets)`` pairs).

    Each batch must be a non-empty finite tensor with ``like``'s dtype and device; at most ``n_batches``.
    """
    if data is None:
        raise ValueError("data is required: a tensor of inputs or an iterable of input batches")
    items = [data] if isinstance(data, torch.Tensor) else data
    if not isinstance(items, Iterable):
        raise TypeError(f"data must be a tensor or an iterable of tensors, got {type(data).__name__}")
    count = 0
    for item in items:
        if n_batches is not None and count >= n_batches:
            break
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        yield _check_batch(x, like, count)
        count += 1
    if count == 0:
        raise ValueError("data is empty: expected at least one non-empty batch")


def _check_batch(x: Any, like: torch.Tensor, index: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"data batch {index} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != like.dtype:
        raise TypeError(f"data batch {index} has dtype {x.dtype} but the models use {like.dtype}")
    if x.device != like.device:
        raise ValueError(f"data batch {index} is on {x.device} but the models are on {like.device}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"data batch {index} is empty (shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"data batch {index} contains NaN or inf")
    return x


def _check_n_batches(n_batches: object) -> None:
    check_int("n_batches", n_batches, 1, allow_none=True)


# ---------------------------------------------------------------------------------------------------------------
# Linear assignment
# ---------------------------------------------------------------------------------------------------------------

def _solve_lap(S: torch.Tensor, maximize: bool = True) -> torch.Tensor:
    """Exact LAP ``argmax_π Σ_i S[i, π(i)]`` (``argmin`` if not ``maximize``): :func:`lmcnb.assignment.solve`
    with its ``reduced`` strategy (the matchers' inner loop). ``perm`` ``(n,)`` on ``S``'s device."""
    return assignment.solve(S, maximize, reduced=True)


# ---------------------------------------------------------------------------------------------------------------
# Weight matching: objective, exact single-group LAP, permutation coordinate descent
# ---------------------------------------------------------------------------------------------------------------

def _objective_keys(spec: PermutationSpec, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Tensors that enter the WM objective: floating, not carried, at least one permuted axis.

    (A tensor with no permuted axis adds a constant and is left out.)
    """
    return [k for k, axes in spec.axes_to_perm.items()
            if k not in spec.carried and state[k].is_floating_point() and any(a is not None for a in axes)]


def _dot64(a: torch.Tensor, b: torch.Tensor) -> float:
    """⟨a, b⟩ accumulated in float64."""
    return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()))


def _dot(a_flat: torch.Tensor, b: torch.Tensor) -> float:
    """⟨a, b⟩ in the tensors' dtype (``a_flat`` already flattened)."""
    return float(torch.dot(a_flat, b.reshape(-1)))


def weight_matching_objective(model_a: nn.Module, model_b: nn.Module, perms: Mapping[str, torch.Tensor] | None
                              = None) -> float:
    """The WM objective ``Σ_t ⟨θ_a[t], π(θ_b)[t]⟩`` (float64) over the non-carried tensors t with a permuted axis.

    ``perms`` defaults to the identity. Maximising it is minimising ``‖θ_a − π(θ_b)‖²`` over those tensors.
    """
    spec, sizes = check_pair(model_a, model_b)
    perms = identity_perms(sizes) if perms is None else perms
    state_a = model_a.state_dict()
    state_b = apply_perms(spec, perms, model_b.state_dict())
    return math.fsum(_dot64(state_a[k], state_b[k]) for k in _objective_keys(spec, state_a))


@dataclass
class _WMProblem:
    """Precomputed data of one WM problem.

    ``entries[p]`` lists ``(key, axis, A_front)`` for every objective tensor permuted by ``p``, with
    ``A_front`` a's tensor moved to put ``axis`` first and flattened to ``(n_p, −1)`` in the compute dtype.
    ``a_flat[key]``: a's tensor flattened (compute dtype); ``b[key]``: b's tensor (compute dtype).
    ``neighbours[p]``: groups sharing a tensor with ``p`` (their change alters p's similarity);
    ``key_groups[key]``: the groups acting on a tensor.
    """

    names: tuple[str, ...]
    sizes: dict[str, int]
    keys: list[str]
    a_flat: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    entries: dict[str, list[tuple[str, int, torch.Tensor]]]
    neighbours: dict[str, set[str]]
    key_groups: dict[str, list[str]]
    spec: PermutationSpec


def _wm_problem(spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                sizes: dict[str, int], dtype: torch.dtype) -> _WMProblem:
    keys = _objective_keys(spec, state_a)
    entries: dict[str, list] = {p: [] for p in spec.perm_names}
    neighbours: dict[str, set[str]] = {p: set() for p in spec.perm_names}
    for key in keys:
        groups = [p for p in spec.axes_to_perm[key] if p is not None]
        if len(set(groups)) != len(groups):
            raise ValueError(f"weight matching needs distinct permutations on the axes of {key!r}, got {groups}")
        for axis, p in enumerate(spec.axes_to_perm[key]):
            if p is not None:
                a_front = state_a[key].detach().to(dtype).movedim(axis, 0).reshape(sizes[p], -1).contiguous()
                entries[p].append((key, axis, a_front))
                neighbours[p].update(set(groups) - {p})
    return _WMProblem(names=spec.perm_names, sizes=dict(sizes), keys=keys,
                      a_flat={k: state_a[k].detach().to(dtype).reshape(-1).contiguous() for k in keys},
                      b={k: state_b[k].detach().to(dtype) for k in keys},
                      entries=entries, neighbours=neighbours, spec=spec,
                      key_groups={k: [p for p in spec.axes_to_perm[k] if p is not None] for k in keys})


def _similarity(entries: list[tuple[str, int, torch.Tensor]], b: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``S[i, j] = Σ_t ⟨A_t[i], B_t[j]⟩`` ``(n, n)``: one matrix product per (tensor, axis) of the group."""
    S = None
    for key, axis, a_front in entries:
        b_front = b[key].movedim(axis, 0).reshape(a_front.shape[0], -1)
        S = a_front @ b_front.T if S is None else S.addmm_(a_front, b_front.T)
    return S


class _PCDState:
    """PCD state: each group's similarity cached term by term, in b's own (original) unit order.

    ``terms[(p, key)]`` ``(n_p, n_p)`` is tensor ``key``'s contribution to ``S_pᵀ``: entry ``[j, i]`` is
    ``⟨B̃[j], A[i]⟩`` over the other axes, where ``B̃`` is b's tensor with every *other* group's current
    permutation applied and p's own axis left in b's order (rows: b's units, columns: a's units). So the LAP on
    ``S_pᵀ = Σ_key terms[(p, key)]`` returns p's new permutation σ itself (a's unit ``i`` ↦ b's unit ``σ[i]``)
    and a commit re-indexes no cached matrix and permutes no tensor of b. The terms of the other groups r that
    share a tensor with p change only through the k positions of p's axis whose unit σ changes: if
    k ≤ n_p/2 they get the rank-k correction ``ΔB_M A_Mᵀ`` over those slices M (``2 n_r² k·rest`` flops
    instead of ``2 n_r² n_p·rest``; exact up to rounding), otherwise they are dropped and recomputed when needed.

    The objective is tracked per tensor, ``contrib[key] = ⟨A, π(B)⟩`` (a float dot product of the tensors at
    the start; then, at each commit of p, plus ``Σ_i terms[(p, key)][σ_i, i] − terms[(p, key)][π_i, i]``
    summed in float64).
    """

    def __init__(self, problem: _WMProblem, start: Perms, solver: str = "scipy") -> None:
        self.problem = problem
        self.solver = solver
        self.duals: dict[str, assignment.Duals] = {}
        self.augmented = 0  # rows left to the shortest-path phase, over all compiled solves
        self.warm_starts = 0  # compiled solves that started from the group's previous duals
        self.compiled = 0  # LAPs solved by lmcnb.assignment.solve_warm's compiled solver
        self.perms = {p: start[p].clone() for p in problem.names}
        axes = problem.spec.axes_to_perm
        self.contrib = {k: _dot(problem.a_flat[k], _permuted(problem.b[k], axes[k], self.perms))
                        for k in problem.keys}
        self.terms: dict[tuple[str, str], torch.Tensor] = {}
        self.stale = set(problem.names)
        self.laps = 0
        self._buffers: dict[str, torch.Tensor] = {}

    @property
    def objective(self) -> float:
        return math.fsum(self.contrib.values())

    def _term(self, p: str, key: str, axis: int, a_front: torch.Tensor) -> torch.Tensor:
        """``terms[(p, key)]``, computed (one matrix product) if it is not cached."""
        term = self.terms.get((p, key))
        if term is None:
            b = _permuted(self.problem.b[key], self.problem.spec.axes_to_perm[key], self.perms, skip=axis)
            term = b.movedim(axis, 0).reshape(a_front.shape[0], -1) @ a_front.T
            self.terms[(p, key)] = term
        return term

    def similarity_t(self, p: str, negate: bool = False) -> torch.Tensor:
        """``S_pᵀ = Σ_t B̃_t A_tᵀ`` ``(n_p, n_p)`` (``−S_pᵀ`` if ``negate``, the minimisation form, exactly the
        negation: round-to-nearest is symmetric), rows b's units in b's order, columns a's units. The sum is
        written into one buffer per group, reused by the next call for ``p`` (it is not to be kept)."""
        entries = self.problem.entries[p]
        first = self._term(p, *entries[0])
        out = self._buffers.get(p)
        if out is None or out.shape != first.shape or out.dtype != first.dtype:
            out = self._buffers[p] = torch.empty_like(first)
        torch.neg(first, out=out) if negate else out.copy_(first)
        for key, axis, a_front in entries[1:]:
            term = self._term(p, key, axis, a_front)
            out.sub_(term) if negate else out.add_(term)
        return out

    def update(self, p: str) -> bool:
        """Solve group ``p``'s LAP with the others fixed; keep it only if the objective strictly increases."""
        entries = self.problem.entries[p]
        self.stale.discard(p)
        if not entries:
            return False
        warm = self._warm(p)
        S_T = self.similarity_t(p, negate=warm)
        sigma = self._lap(p, S_T, warm)
        self.laps += 1
        pi = self.perms[p].to(S_T.device)
        units = torch.arange(sigma.numel(), device=S_T.device)
        sign = -1.0 if warm else 1.0  # S_T holds −S_pᵀ for the warm solver
        if not sign * float(S_T[sigma, units].double().sum()) > sign * float(S_T[pi, units].double().sum()):
            return False  # the current permutation is optimal (or tied) for this group
        gains = {key: float(self.terms[(p, key)][sigma, units].double().sum()
                            - self.terms[(p, key)][pi, units].double().sum()) for key, _, _ in entries}
        new_contrib = {**self.contrib, **{k: self.contrib[k] + g for k, g in gains.items()}}
        if not math.fsum(new_contrib.values()) > self.objective:
            return False
        self._commit(p, pi, sigma)
        self.contrib = new_contrib
        return True

    def _warm(self, p: str) -> bool:
        """Whether group ``p`` is solved by :func:`lmcnb.assignment.solve_warm` (``"warm"``; ``"auto"``: from
        :data:`WARM_MIN_N` units, when the compiled solver is installed) rather than scipy."""
        return self.solver == "warm" or (self.solver == "auto" and self.problem.sizes[p] >= WARM_MIN_N
                                         and assignment.have_compiled_solver())

    def _lap(self, p: str, S_T: torch.Tensor, warm: bool) -> torch.Tensor:
        """Group p's exact LAP (maximise ``S_p``), returned as σ (a's unit ``i`` ↦ b's unit ``σ[i]``). ``S_T`` is
        ``S_pᵀ`` for scipy, ``−S_pᵀ`` for the ``warm`` solver, warm-started from p's previous duals."""
        if not warm:
            return _solve_lap(S_T.T)
        # Solve the contiguous −S_pᵀ (rows: b's units, in b's fixed order, so p's duals stay valid across
        # commits) and invert its row → column map r to get σ. The first solve of p proposes the current
        # permutation (b's unit π[i] ↦ a's unit i) with v = 0: cheaper than the cold start (0.2 s vs 0.5 s at 4096).
        previous = self.duals.get(p)
        start = previous if previous is not None else assignment.Duals.proposal(torch.argsort(self.perms[p]))
        r, self.duals[p] = assignment.solve_warm(S_T, False, start=start)
        self.augmented += self.duals[p].augmented
        self.warm_starts += previous is not None and self.duals[p].warm
        self.compiled += assignment.have_compiled_solver()
        return torch.empty_like(r).scatter_(0, r, torch.arange(r.numel(), device=r.device))

    def _commit(self, p: str, old: torch.Tensor, new: torch.Tensor) -> None:
        """p's permutation becomes ``new``: correct (or drop) the other groups' terms of p's tensors."""
        moved = torch.nonzero(new != old).squeeze(1)
        for key, axis, _ in self.problem.entries[p]:
            for r in self.problem.key_groups[key]:
                if r == p or (r, key) not in self.terms:
                    continue
                if 2 * moved.numel() <= new.numel():
                    self._correct_term(r, key, axis, old[moved], new[moved], moved)
                else:
                    del self.terms[(r, key)]
        self.perms[p] = new.to(self.perms[p].device)
        self.stale |= self.problem.neighbours[p]

    def _correct_term(self, r: str, key: str, axis: int, old_units: torch.Tensor, new_units: torch.Tensor,
                      moved: torch.Tensor) -> None:
        """Add to ``terms[(r, key)]`` the change of b's slices at the positions ``moved`` of ``key``'s ``axis``
        (p's), whose units go from ``old_units`` to ``new_units``; the remaining axes but r's stay permuted."""
        axes = self.problem.spec.axes_to_perm[key]
        axis_r = axes.index(r)
        b = self.problem.b[key]
        delta = b.index_select(axis, new_units) - b.index_select(axis, old_units)
        delta = _permuted(delta, axes, self.perms, skip=(axis, axis_r))
        a = self.problem.a_flat[key].view(b.shape).index_select(axis, moved)
        n_r = b.shape[axis_r]
        self.terms[(r, key)].addmm_(delta.movedim(axis_r, 0).reshape(n_r, -1),
                                    a.movedim(axis_r, 0).reshape(n_r, -1).T)


def _permuted(t: torch.Tensor, axes: tuple[str | None, ...], perms: Mapping[str, torch.Tensor],
              skip: int | tuple[int, ...] = ()) -> torch.Tensor:
    """``t`` with every axis (but those in ``skip``) permuted by its permutation (``index_select``)."""
    skip = (skip,) if isinstance(skip, int) else skip
    for axis, p in enumerate(axes):
        if p is not None and axis not in skip:
            t = t.index_select(axis, perms[p].to(t.device))
    return t


def _visit_order(names: tuple[str, ...], order: str, generator: torch.Generator) -> list[str]:
    if order == "forward":
        return list(names)
    if order == "backward":
        return list(reversed(names))
    return [names[i] for i in torch.randperm(len(names), generator=generator).tolist()]


def _pcd(problem: _WMProblem, start: Perms, order: str, max_sweeps: int, tol: float,
         generator: torch.Generator, solver: str = "scipy"
         ) -> tuple[Perms, list[float], list[float], int, bool, int, tuple[int, int, int]]:
    """Permutation coordinate descent; returns perms, history, per-sweep objectives, sweeps, converged, LAPs and
    ``(solves, augmented, warm_starts)`` of the compiled solver (zeros with scipy).

    A group whose neighbours have not changed since its last solve is skipped: its current permutation is
    still optimal for its (unchanged) similarity matrix.
    """
    state = _PCDState(problem, start, solver)
    history = [state.objective]
    sweep_values, converged, sweeps = [], False, 0
    while sweeps < max_sweeps and not converged:
        before = history[-1]
        for p in _visit_order(problem.names, order, generator):
            if p in state.stale:
                state.update(p)
                history.append(state.objective)
        sweeps += 1
        sweep_values.append(history[-1])
        converged = history[-1] - before <= tol * max(abs(before), 1e-300) or not state.stale
    return (state.perms, history, sweep_values, sweeps, converged, state.laps,
            (state.compiled, state.augmented, state.warm_starts))


@dataclass(frozen=True, eq=False)
class WeightMatching(Matcher):
    """Weight matching (Ainsworth et al. 2023): ``max_π Σ_t ⟨θ_a[t], π(θ_b)[t]⟩`` without data.

    The sum runs over the non-carried tensors (BatchNorm running statistics excluded). It is linear in each
    group's permutation matrix when the others are fixed, so:

    - **one group** (one hidden layer): a single exact LAP on ``S = Σ_t A_t B_tᵀ`` (float64) — the global
      optimum; the result has ``info["exact"] = True`` and ``sweeps = 1``;
    - **several groups**: permutation coordinate descent (NP-hard in general, a local optimum): each sweep
      visits the groups in ``order``; a group's similarity ``S_p`` ``(n_p, n_p)`` is built from all its axes with
      the other groups' current permutations applied (one matrix product per axis), its LAP is solved and the
      new permutation kept only if the objective strictly increases (tracked per tensor in float64 from the
      cached similarity terms, see ``_PCDState``), so ``objective_history`` never decreases. A group whose
      neighbours (groups sharing a tensor) did not change since its last solve is skipped, its permutation being
      still optimal. It stops when a sweep improves the objective by at most
      ``tol · |objective|``, or when no group is left to re-solve (converged), or after ``max_sweeps``.

    Args:
        max_sweeps: sweep cap. n_restarts: independent runs (restart 0 starts at ``init`` or the identity,
            later ones at random permutations), the best objective is kept. seed: seeds visiting orders and
            restarts. order: ``"random"`` (fresh seeded order each sweep), ``"forward"`` or ``"backward"``.
        init: warm-start permutation set (to apply to b). tol: relative stopping tolerance.
        precision: dtype of the similarity products and of the objective in PCD (default: the models' dtype;
            ``torch.float64`` for float64 accumulation). The single-group LAP always uses float64, and so do
            :func:`weight_matching_objective` and :func:`brute_force_weight_matching`.
        solver: PCD's LAP solver. ``"scipy"``: :func:`lmcnb.assignment.solve` (reduced) from scratch at every
            step. ``"warm"``: :func:`lmcnb.assignment.solve_warm`, each re-solve of a group warm-started from
            that group's previous duals when they keep more rows than a cold start (``info["compiled_laps"]``
            counts the solves, ``info["warm_starts"]`` those that used the duals, ``info["augmented"]`` the rows
            left to the shortest-path phase; without numba it is scipy). ``"auto"`` (default): ``"warm"`` for groups of at least
            :data:`WARM_MIN_N` units when numba is installed, else ``"scipy"``. Both are exact; on ties or
            within float64 rounding they may pick different optima and then walk different PCD paths.
    """

    max_sweeps: int = 100
    n_restarts: int = 1
    seed: int = 0
    order: str = "random"
    init: Mapping[str, torch.Tensor] | None = None
    tol: float = 1e-12
    precision: torch.dtype | None = None
    solver: str = "auto"
    name: ClassVar[str] = "weight_matching"

    def __post_init__(self) -> None:
        check_int("max_sweeps", self.max_sweeps, 1)
        check_int("n_restarts", self.n_restarts, 1)
        check_int("seed", self.seed, 0)
        check_choice("order", self.order, ORDERS)
        check_choice("solver", self.solver, SOLVERS)
        if isinstance(self.tol, bool) or not isinstance(self.tol, Real) or not (0 <= self.tol < math.inf):
            raise ValueError(f"tol must be a finite real number >= 0, got {self.tol!r}")
        if self.precision is not None and (not isinstance(self.precision, torch.dtype)
                                           or not self.precision.is_floating_point):
            raise TypeError(f"precision must be None or a floating torch.dtype, got {self.precision!r}")
        if self.init is not None and not isinstance(self.init, Mapping):
            raise TypeError(f"init must be None or a dict of LongTensors, got {type(self.init).__name__}")

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        state_a, state_b = model_a.state_dict(), model_b.state_dict()
        start = identity_perms(sizes) if self.init is None else dict(self.init)
        validate_perms(start, sizes)
        if len(sizes) == 1:
            return self._exact(spec, state_a, state_b, sizes, start)
        dtype = self.precision or _like(model_a).dtype
        problem = _wm_problem(spec, state_a, state_b, sizes, dtype)
        generator = torch.Generator().manual_seed(self.seed)
        runs = []
        for r in range(self.n_restarts):
            init = start if r == 0 else random_perms(sizes, generator)
            runs.append(_pcd(problem, init, self.order, self.max_sweeps, self.tol, generator, self.solver))
        best = max(range(len(runs)), key=lambda r: runs[r][1][-1])  # first of equal bests
        perms, history, sweep_values, sweeps, converged, laps, (compiled, augmented, warm_starts) = runs[best]
        info = {"exact": False, "restart": best, "restart_objectives": [run[1][-1] for run in runs],
                "sweep_objectives": sweep_values, "laps": laps, "compiled_laps": compiled,
                "augmented": augmented, "warm_starts": warm_starts}
        return MatchResult(perms, self.name, history, sweeps, converged, info=info)

    def _exact(self, spec, state_a, state_b, sizes, start) -> MatchResult:
        """One group: the WM objective is one LAP, solved exactly in float64."""
        problem = _wm_problem(spec, state_a, state_b, sizes, torch.float64)
        (p,) = problem.names
        perms = {p: _solve_lap(_similarity(problem.entries[p], problem.b)).to(start[p].device)}
        before, after = _PCDState(problem, start).objective, _PCDState(problem, perms).objective
        if not after > before:  # the start is optimal too (ties, rounding): keep it
            perms, after = {p: start[p].clone()}, before
        return MatchResult(perms, self.name, [before, after], 1, True, info={"exact": True, "laps": 1})


def brute_force_weight_matching(model_a: nn.Module, model_b: nn.Module,
                                max_combinations: int = MAX_BRUTE_FORCE) -> MatchResult:
    """The true optimum of the WM objective, by enumerating every combination of permutations (tiny widths).

    Each objective tensor's value is tabulated over all permutations of its groups (independently of the
    PCD code), the tables are summed on the grid of all combinations and the maximum is taken (the first in
    lexicographic order of ``itertools.permutations`` on ties). Raises ``ValueError`` if ``Π_p n_p!`` exceeds
    ``max_combinations``.
    """
    start = time.perf_counter()
    check_int("max_combinations", max_combinations, 1)
    spec, sizes = check_pair(model_a, model_b)
    names = spec.perm_names
    count = math.prod(math.factorial(sizes[p]) for p in names)
    if count > max_combinations:
        raise ValueError(f"brute force would enumerate {count} permutation combinations (sizes {sizes}), more "
                         f"than max_combinations={max_combinations}")
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    all_perms = {p: torch.tensor(list(itertools.permutations(range(sizes[p]))), dtype=torch.long)
                 for p in names}
    grid = torch.zeros([all_perms[p].shape[0] for p in names], dtype=torch.float64)
    for key in _objective_keys(spec, state_a):
        grid = grid + _table_on_grid(state_a[key], state_b[key], spec.axes_to_perm[key], all_perms, names)
    flat = int(torch.argmax(grid.reshape(-1)))
    index = np.unravel_index(flat, tuple(grid.shape))
    perms = {p: all_perms[p][int(i)].clone() for p, i in zip(names, index)}
    info = {"exact": True, "combinations": count}
    return MatchResult(perms, "brute_force", [float(grid.reshape(-1)[flat])], 1, True,
                       time.perf_counter() - start, info)


def _table_on_grid(a: torch.Tensor, b: torch.Tensor, axes: tuple[str | None, ...],
                   all_perms: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """``T[k_1, …] = ⟨a, π(b)⟩`` for every combination of the tensor's groups, shaped to broadcast on the grid."""
    t, groups = b.detach().double(), []
    for axis, p in enumerate(axes):
        if p is None:
            continue
        P, lead = all_perms[p], len(groups)
        ax = lead + axis
        t = t.index_select(ax, P.reshape(-1))
        t = t.reshape(t.shape[:ax] + P.shape + t.shape[ax + 1:]).movedim(ax, lead)
        groups.append(p)
    table = (t * a.detach().double()).sum(dim=tuple(range(len(groups), t.dim())))
    order = sorted(range(len(groups)), key=lambda i: names.index(groups[i]))
    table = table.permute(order)
    shape = [all_perms[p].shape[0] if p in groups else 1 for p in names]
    return table.reshape(shape)


# ---------------------------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityMatching(Matcher):
    """No alignment: the identity permutation (the *identity* baseline: b merged with no permutation applied)."""

    name: ClassVar[str] = "identity"

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        device = _like(model_b).device
        return MatchResult({p: t.to(device) for p, t in identity_perms(sizes).items()}, self.name)


@dataclass(frozen=True)
class RandomMatching(Matcher):
    """Independent uniformly random permutations (seeded ``torch.randperm``): the chance baseline."""

    seed: int = 0
    name: ClassVar[str] = "random"

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0)

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        perms = random_perms(sizes, torch.Generator().manual_seed(self.seed))
        device = _like(model_b).device
        return MatchResult({p: t.to(device) for p, t in perms.items()}, self.name)


#: Matchers that lived here before the package was layered (they belong to a paper's model now).
_MOVED = {"FunctionalMatching": "lmcnb.papers.teacher_student"}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"lmcnb.matching.{name} moved to {_MOVED[name]}.{name} (it needs the teacher–student "
                             f"closed form; `from {_MOVED[name]} import {name}`)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# the data-driven matchers, one concept per module (imported here so ``from lmcnb import matching`` names them all)
from ._matching_activation import ActivationMatching, activation_similarity  # noqa: E402
from ._matching_ot import CovarianceWeightedMatching, OTMatching, input_second_moments  # noqa: E402
