"""One pair of solutions: functional and weight matching, the interpolation path, and its barriers."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..._validate import check_choice, check_int, check_real
from ...barrier import check_lambdas, check_path_lambdas, linear_baseline
from ._inputs import F64, INPUTS, _check_device, _check_f64, _check_teacher, _check_weights
from ... import assignment
from ...matching import Matcher, MatchResult
from ...models import TwoLayerNet
from .kernel import _kernel_from, population_loss


# ---------------------------------------------------------------------------------------------------------------
# Functional matching, interpolation and the linear barrier
# ---------------------------------------------------------------------------------------------------------------

def functional_cost(W1: Tensor, W2: Tensor, inputs: str = "gaussian", *, a1: Tensor | None = None,
                    a2: Tensor | None = None) -> Tensor:
    """Midpoint interpolation error of every neuron pair (notes §2.3, "functional matching"), ``(m1, m2)``:

        c_ik = E[(ā σ(u·x) − ½ a_i σ(w_i·x) − ½ a'_k σ(w'_k·x))²],   u = (w_i + w'_k)/2,  ā = (a_i + a'_k)/2,
             = ā² K(u,u) + ¼a_i² K(w,w) + ¼a'_k² K(w',w') − ā a_i K(u,w) − ā a'_k K(u,w') + ½ a_i a'_k K(w,w'),

    with ``w_i`` the rows of ``W1``, ``w'_k`` those of ``W2`` and output weights ``a = 1`` unless ``a1``/``a2`` are
    given (the trained-output variant, where the path interpolates ``(w, a)`` jointly). With ``a = 1``, ``c = 0`` (up
    to rounding, ``~1e-16 |w|²``) exactly for compatible pairs: same direction, or one row zero. Divided by ``d``
    for sphere inputs.

    Args:
        W1: ``(m1, d)``, W2: ``(m2, d)``, float64. inputs: ``"gaussian"`` or ``"sphere"``.
        a1, a2: output weights ``(m1,)`` and ``(m2,)`` (both or neither).
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape[1] != W2.shape[1]:
        raise ValueError(f"W1 and W2 must have the same input dimension, got {W1.shape[1]} and {W2.shape[1]}")
    factor = 1.0 / W1.shape[1] if check_choice("inputs", inputs, INPUTS) == "sphere" else 1.0
    a1, a2 = _check_output_pair(a1, a2, tuple(W1.shape[:1]), tuple(W2.shape[:1]), W1.device)
    # everything from the Gram matrix w·w' (memory (m1, m2), not (m1, m2, d)): u·w = ½(|w|² + w·w'), etc.
    G = W1 @ W2.T
    sq1, sq2 = (W1 * W1).sum(1)[:, None], (W2 * W2).sum(1)[None, :]
    if a1 is None:
        return factor * _midpoint_cost(G, sq1, sq2)
    return factor * _midpoint_cost(G, sq1, sq2, a1[:, None], a2[None, :])


def _midpoint_cost(G: Tensor, sq1: Tensor, sq2: Tensor, b1: Tensor | None = None, b2: Tensor | None = None
                   ) -> Tensor:
    """:func:`functional_cost` (Gaussian inputs) from ``G = w·w'``, ``sq1 = |w|²``, ``sq2 = |w'|²`` and output
    weights ``b1``, ``b2`` (None: ``a = 1``), all broadcast together: ``(m1, 1)`` against ``(1, m2)`` gives the
    matrix, ``(m,)`` against ``(m,)`` the cost of each row pair (:func:`pair_costs`)."""
    nw, nw2 = sq1.sqrt(), sq2.sqrt()
    nu = (0.25 * (sq1 + 2.0 * G + sq2)).clamp_min(0.0).sqrt()
    k_uw = _kernel_from(0.5 * (sq1 + G), nu, nw)
    k_uw2 = _kernel_from(0.5 * (G + sq2), nu, nw2)
    k_ww2 = _kernel_from(G, nw, nw2)
    if b1 is None:
        return 0.5 * nu ** 2 + 0.125 * nw ** 2 + 0.125 * nw2 ** 2 - k_uw - k_uw2 + 0.5 * k_ww2
    am = 0.5 * (b1 + b2)
    return (0.5 * am ** 2 * nu ** 2 + 0.125 * (b1 * nw) ** 2 + 0.125 * (b2 * nw2) ** 2
            - am * b1 * k_uw - am * b2 * k_uw2 + 0.5 * b1 * b2 * k_ww2)


def pair_costs(W1: Tensor, W2: Tensor) -> Tensor:
    """``c(w_i, w'_i)`` of :func:`functional_cost` (Gaussian inputs, ``a = 1``) for the row pairs ``i`` of two
    ``(m, d)`` float64 matrices, ``(m,)``: the diagonal of ``functional_cost(W1, W2)`` without the matrix."""
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    return _midpoint_cost((W1 * W2).sum(1), (W1 * W1).sum(1), (W2 * W2).sum(1))


def _check_output_pair(a1: object, a2: object, shape1: tuple[int, ...], shape2: tuple[int, ...],
                       device: torch.device) -> tuple[Tensor | None, Tensor | None]:
    """Output weights of a pair: both ``None`` (fixed ``a = 1``) or both float64 of the given shapes."""
    if (a1 is None) != (a2 is None):
        raise ValueError("pass both output weights a1 and a2 (trained-output variant) or neither (fixed a = 1)")
    return _check_weights("a1", a1, shape1, device), _check_weights("a2", a2, shape2, device)


#: A row pair interpolates exactly when its cost is at most this times ``|w|² + |w'|²`` (:func:`match_by_type`):
#: compatible pairs cost ``~1e-16 |w|²`` in float64 (:func:`functional_cost`), a pair at a small angle with sine
#: ``s`` about ``s³ |w| |w'| / 75`` (measured at ``s = 1e-4 … 1e-2``).
EXACT_PAIR_TOL = 1e-12


def _direction_classes(U: Tensor, tol: float, max_types: int) -> Tensor | None:
    """Class labels ``(L,)`` of unit rows ``U (L, d)``: rows within sine ``tol`` of a class's first row (and on its
    side) share its label, in order of first appearance; None if more than ``max_types`` classes."""
    labels = torch.full((U.shape[0],), -1, dtype=torch.int64, device=U.device)
    k = 0
    while True:
        free = torch.nonzero(labels < 0)
        if free.numel() == 0:
            return labels
        if k == max_types:
            return None
        r = U[int(free[0, 0])]
        proj = U @ r
        resid = (U - proj[:, None] * r).norm(dim=1)  # the sine, computed directly (no cancellation)
        labels[(labels < 0) & (proj > 0) & (resid <= tol)] = k
        k += 1


def match_by_type(W1: Tensor, W2: Tensor, *, tol: float = 1e-8, max_types: int = 64) -> Tensor | None:
    """A permutation ``p`` ``(m,)`` of zero functional cost built from neuron types, or None if this shortcut finds
    none (then solve the assignment: :func:`functional_match` does).

    Rows of ``W1`` and ``W2`` are grouped into *types*: exactly zero rows are dead, live rows share a type when
    their directions agree to a sine of ``tol`` (at most ``max_types`` types, else None). A type-``j`` row
    interpolates exactly with a type-``j`` or a dead row (ReLU is positively homogeneous), so a permutation
    pairing only such rows exists iff Hall's condition holds (:func:`hall_lmc_criterion`, here without the
    teacher): ``Σ_j (n1_j − n2_j)⁺ <= z2`` and ``Σ_j (n2_j − n1_j)⁺ <= z1``. Then ``p`` pairs same-type rows first,
    the excess of a type with dead rows of the other network, and dead rows with dead rows; it is returned only
    if every pair's cost is at most :data:`EXACT_PAIR_TOL` ``(|w_i|² + |w'_{p[i]}|²)`` (:func:`pair_costs`). The
    costs are ``>= 0``, so its objective is within ``EXACT_PAIR_TOL Σ_i (|w_i|² + |w'_i|²)`` of the minimum: on
    exact minima (sampled from 𝓜) the minimum 0 up to rounding, an optimum of the assignment on
    :func:`functional_cost`, possibly another one among its ties. ``O(m d · types)``: no ``m × m`` matrix.

    Args:
        W1, W2: ``(m, d)`` float64 (fixed output weights ``a = 1``; fold positive trained ones into the rows).
        tol: sine of the angle within which two directions are one type, in ``[0, 1)``.
        max_types: the most types this shortcut handles (``>= 1``).

    Returns:
        int64 ``(m,)`` on the CPU (``W2.index_select(0, p)`` is aligned with ``W1``), or None.
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    tol = check_real("tol", tol, 0.0, 1.0)
    if tol == 1.0:
        raise ValueError("tol must be < 1 (a sine of 1 would make every pair of directions one type)")
    max_types = check_int("max_types", max_types, 1)
    m = W1.shape[0]
    n1, n2 = W1.norm(dim=1), W2.norm(dim=1)
    live = torch.cat([n1 > 0, n2 > 0])
    rows, norms = torch.cat([W1, W2]), torch.cat([n1, n2])
    labels = _direction_classes(rows[live] / norms[live, None], tol, max_types)
    if labels is None:
        return None
    types = torch.full((2 * m,), -1, dtype=torch.int64, device=W1.device)
    types[live] = labels
    t1, t2 = types[:m].cpu(), types[m:].cpu()
    dead2 = torch.nonzero(t2 < 0)[:, 0].tolist()
    excess2: list[int] = []
    p = torch.empty(m, dtype=torch.int64)
    for j in range(int(labels.max()) + 1 if labels.numel() else 0):
        a, b = torch.nonzero(t1 == j)[:, 0].tolist(), torch.nonzero(t2 == j)[:, 0].tolist()
        k = min(len(a), len(b))
        if len(a) - k > len(dead2):
            return None  # Hall fails: too few dead rows in W2 for W1's excess of type j
        p[a[:k]] = torch.tensor(b[:k], dtype=torch.int64)
        if len(a) > k:
            p[a[k:]] = torch.tensor(dead2[:len(a) - k], dtype=torch.int64)
            del dead2[:len(a) - k]
        excess2 += b[k:]
    dead1 = torch.nonzero(t1 < 0)[:, 0].tolist()
    if len(excess2) > len(dead1):
        return None  # Hall fails: too few dead rows in W1 for W2's excess
    if dead1:
        p[dead1] = torch.tensor(excess2 + dead2, dtype=torch.int64)
    cost = pair_costs(W1, W2.index_select(0, p.to(W2.device)))
    scale = n1 ** 2 + n2.index_select(0, p.to(W2.device)) ** 2
    if not bool((cost <= EXACT_PAIR_TOL * scale).all()):
        return None
    return p


def functional_match(W1: Tensor, W2: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None,
                     by_type: bool = True) -> Tensor:
    """Permutation ``p`` ``(m,)`` minimising ``Σ_i c_{i, p[i]}`` (:func:`functional_cost`, Hungarian algorithm);
    ``W2.index_select(0, p)`` (and ``a2[p]``) is aligned with ``W1`` (lmcnb's convention: the permutation applies
    to model b). ``a1``, ``a2``: output weights of the trained-output variant (both or neither). ``by_type``: with
    fixed outputs, first try :func:`match_by_type` (exact minima with few neuron types: no ``m × m`` problem; an
    optimum of the same assignment, possibly another one among ties) and solve the assignment only if it finds
    nothing; False: always solve."""
    if not isinstance(by_type, bool):
        raise TypeError(f"by_type must be a bool, got {type(by_type).__name__}")
    if by_type and a1 is None and a2 is None:
        p = match_by_type(W1, W2)
        if p is not None:
            return p
    C = functional_cost(W1, W2, a1=a1, a2=a2)
    if W1.shape[0] != W2.shape[0]:
        raise ValueError(f"W1 and W2 must have the same width, got {W1.shape[0]} and {W2.shape[0]}")
    return assignment.solve(C)


def weight_match(W1: Tensor, W2: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """Weight matching (Ainsworth et al.'s Git Re-Basin for one hidden layer; notes §2.3): the permutation ``p``
    ``(m,)`` minimising ``Σ_i ‖θ_i − θ'_{p[i]}‖²`` over neurons ``θ_i = w_i`` (``(w_i, a_i)`` with trained output
    weights), by the Hungarian algorithm; ``W2.index_select(0, p)`` is aligned with ``W1``.

    It is blind to which pairs interpolate exactly: pairing a type-``j`` with a type-``k`` neuron and a dead with a
    dead one costs the same as the two compatible pairs (type ``j`` with dead, type ``k`` with dead), so it can leave
    a barrier that :func:`functional_match` removes.

    Args:
        W1, W2: ``(m, d)`` float64. a1, a2: output weights ``(m,)`` (both or neither).
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    a1, a2 = _check_output_pair(a1, a2, tuple(W1.shape[:1]), tuple(W2.shape[:1]), W1.device)
    if a1 is not None:
        W1, W2 = torch.cat([W1, a1[:, None]], 1), torch.cat([W2, a2[:, None]], 1)
    return assignment.solve(torch.cdist(W1, W2) ** 2)


def _grid(lambdas: object, device: torch.device, *, barrier: bool = True) -> Tensor:
    """The λ grid (default 21 equispaced points) under :mod:`lmcnb.barrier`'s one rule: a barrier's grid
    (:func:`~lmcnb.barrier.check_lambdas`) or, with ``barrier=False``, a path's (:func:`~lmcnb.barrier.check_path_lambdas`)."""
    if lambdas is None:
        return torch.linspace(0.0, 1.0, 21, dtype=F64, device=device)
    if isinstance(lambdas, Tensor):
        _check_f64("lambdas", lambdas, (1,))
    lam = check_lambdas(lambdas) if barrier else check_path_lambdas(lambdas)
    return lam.to(device)


def _check_pair(W1: object, W2: object) -> tuple[Tensor, Tensor]:
    W1 = _check_f64("W1", W1, (2, 3))
    W2 = _check_f64("W2", W2, (2, 3))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape, got {tuple(W1.shape)} and {tuple(W2.shape)}")
    _check_device(("W1", "W2"), (W1, W2))
    return W1, W2


def _check_path_outputs(a1: object, a2: object, W1: Tensor) -> tuple[Tensor | None, Tensor | None]:
    return _check_output_pair(a1, a2, tuple(W1.shape[:-1]), tuple(W1.shape[:-1]), W1.device)


def interpolation_loss(W1: Tensor, W2: Tensor, T: Tensor, lambdas: Tensor | Sequence[float] | None = None,
                       inputs: str = "gaussian", *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """``R(θ_λ)`` along the linear path ``θ_λ = (1 − λ) W1 + λ W2`` (fixed ``a = 1``), vectorised over ``λ``; with
    output weights ``a1``, ``a2`` the path is ``θ_λ = ((1 − λ) W1 + λ W2, (1 − λ) a1 + λ a2)``.

    Args:
        W1, W2: ``(m, d)`` or batches ``(B, m, d)`` (pairs), float64. T: teacher ``(M, d)``.
        lambdas: ``(L,)`` values in ``[0, 1]``; default 21 equispaced points. inputs: as in :func:`population_loss`.
        a1, a2: output weights ``(m,)`` or ``(B, m)`` (both or neither; trained-output variant).

    Returns:
        ``(L,)``, or ``(B, L)`` for batched pairs.
    """
    W1, W2 = _check_pair(W1, W2)
    a1, a2 = _check_path_outputs(a1, a2, W1)
    lam = _grid(lambdas, W1.device, barrier=False)
    lam_b = lam[:, None, None]
    m, d = W1.shape[-2:]
    theta = (1.0 - lam_b) * W1[..., None, :, :] + lam_b * W2[..., None, :, :]  # (…, L, m, d)
    a = None
    if a1 is not None:
        a = ((1.0 - lam[:, None]) * a1[..., None, :] + lam[:, None] * a2[..., None, :]).reshape(-1, m)
    R = population_loss(theta.reshape(-1, m, d), T, a=a, inputs=inputs)
    return R.reshape(*W1.shape[:-2], lam.numel())


def barrier_linear(W1: Tensor, W2: Tensor, T: Tensor, lambdas: Tensor | Sequence[float] | None = None,
                   inputs: str = "gaussian", *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """Loss barrier ``B(W1, W2) = max_λ [R(θ_λ) − ((1 − λ) R(W1) + λ R(W2))]`` over the grid ``lambdas`` (notes
    §2.1, lmcnb's convention ``θ_λ = (1 − λ) W1 + λ W2``); no permutation is applied (see
    :func:`functional_match`, :func:`weight_match`, :func:`pair_barriers`). ``a1``, ``a2``: output weights
    (trained-output variant, interpolated with ``W``). General models: :mod:`lmcnb.barrier`.

    Returns:
        0-D tensor, or ``(B,)`` for batched pairs ``(B, m, d)``.
    """
    W1, W2 = _check_pair(W1, W2)
    lam = _grid(lambdas, W1.device)
    curve = interpolation_loss(W1, W2, T, lam, inputs, a1=a1, a2=a2)
    ends = interpolation_loss(W1, W2, T, torch.tensor([0.0, 1.0], dtype=F64, device=W1.device), inputs,
                              a1=a1, a2=a2)
    return (curve - linear_baseline(ends[..., :1], ends[..., 1:], lam)).amax(-1)


# ---------------------------------------------------------------------------------------------------------------
# The formal model of chapters 2–4: one documented configuration
# ---------------------------------------------------------------------------------------------------------------

OUTPUTS = ("fixed", "trained")
BARRIER_KINDS = ("identity", "weight", "functional", "perm")
# λ-chunk size of the path evaluation: at most this many (λ, i, k) kernel entries at once (16 MB of float64 per
# temporary). Below glibc's 32 MB mmap threshold the temporaries are reused from the heap; at 1 << 25 (256 MB) every
# temporary was a fresh mmap and its page faults tripled the CPU time of a pair at m = 1024 (6.0 s -> 2.0 s, most of
# it system time). Widths with m (m + M) * 21 <= 1 << 21 (m <= 314 at M = 4) still evaluate all 21 λ in one chunk.
_PATH_ENTRIES = 1 << 21


@dataclass(frozen=True)
class PairBarriers:
    """Barriers of ``P`` pairs of solutions (or one pair: 0-D tensors), float64 ``(P,)``.

    Attributes:
        identity: ``B(θ_a, θ_b)`` without permutation.
        weight: ``B(θ_a, π_WM(θ_b))`` after weight matching (:func:`weight_match`).
        functional: ``B(θ_a, π_FM(θ_b))`` after functional matching (:func:`functional_match`).
        perm: the barrier modulo permutation, ``min(weight, functional)`` (notes §2.2–2.3).
        weight_perm, functional_perm: the permutations ``(P, m)`` int64 (applied to model b).
        hall: the exact LMC criterion on the pairs' neuron types (:func:`hall_lmc_criterion`, notes §2.4), bool
            ``(P,)`` / 0-D (``True``: the type counts allow an exactly connected pairing); ``None`` where it was
            not evaluated (:func:`pair_barriers` does not; :func:`lmcnb.experiments.lr_sparsity.pair_barriers`
            does).
    """

    identity: Tensor
    weight: Tensor
    functional: Tensor
    perm: Tensor
    weight_perm: Tensor
    functional_perm: Tensor
    hall: Tensor | None = None

    def __getattr__(self, name: str) -> object:
        if name == "naive":
            raise AttributeError("PairBarriers has no attribute 'naive': the barrier without permutation is "
                                 "PairBarriers.identity (the identity permutation)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _path_barrier(W1: Tensor, W2: Tensor, T: Tensor, lam: Tensor, a1: Tensor | None, a2: Tensor | None,
                  inputs: str) -> Tensor:
    """:func:`barrier_linear` of one pair ``(m, d)``, with the λ grid evaluated in chunks of bounded memory."""
    m = W1.shape[0]
    per = max(1, _PATH_ENTRIES // (m * (m + T.shape[0])))
    ends = interpolation_loss(W1, W2, T, torch.tensor([0.0, 1.0], dtype=F64, device=W1.device), inputs, a1=a1, a2=a2)
    curve = torch.cat([interpolation_loss(W1, W2, T, lam[i:i + per], inputs, a1=a1, a2=a2)
                       for i in range(0, lam.numel(), per)])
    return (curve - linear_baseline(ends[0], ends[1], lam)).amax()


def pair_barriers(W1: Tensor, W2: Tensor, T: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None,
                  lambdas: Tensor | Sequence[float] | None = None, inputs: str = "gaussian") -> PairBarriers:
    """Barrier without permutation, after weight matching, after functional matching, and modulo permutation
    (their minimum) for one pair ``(m, d)`` or ``P`` pairs ``(P, m, d)`` of solutions (notes §2.1–2.3).

    Args:
        W1, W2: first layers ``(m, d)`` or ``(P, m, d)``, float64. T: teacher ``(M, d)``.
        a1, a2: output weights ``(m,)`` / ``(P, m)`` (trained-output variant; both or neither).
        lambdas: the λ grid (default 21 points). inputs: ``"gaussian"`` or ``"sphere"``.

    Returns:
        :class:`PairBarriers` (0-D tensors for one pair, ``(P,)`` for a batch).
    """
    W1, W2 = _check_pair(W1, W2)
    T = _check_teacher(T, W1.shape[-1])
    _check_device(("W1", "T"), (W1, T))
    a1, a2 = _check_path_outputs(a1, a2, W1)
    lam = _grid(lambdas, W1.device)
    inputs = check_choice("inputs", inputs, INPUTS)
    batched = W1.ndim == 3
    Wa, Wb = (W1, W2) if batched else (W1[None], W2[None])
    aa, ab = (None, None) if a1 is None else ((a1, a2) if batched else (a1[None], a2[None]))
    out: dict[str, list[Tensor]] = {k: [] for k in ("identity", "weight", "functional", "wp", "fp")}
    for i in range(Wa.shape[0]):
        w1, w2 = Wa[i], Wb[i]
        o1, o2 = (None, None) if aa is None else (aa[i], ab[i])
        out["identity"].append(_path_barrier(w1, w2, T, lam, o1, o2, inputs))
        for kind, key, match in (("weight", "wp", weight_match), ("functional", "fp", functional_match)):
            p = match(w1, w2, a1=o1, a2=o2)
            out[key].append(p)
            out[kind].append(_path_barrier(w1, w2.index_select(0, p), T, lam, o1,
                                           None if o2 is None else o2.index_select(0, p), inputs))
    st = {k: torch.stack(v) for k, v in out.items()}
    if not batched:
        st = {k: v[0] for k, v in st.items()}
    return PairBarriers(identity=st["identity"], weight=st["weight"], functional=st["functional"],
                        perm=torch.minimum(st["weight"], st["functional"]), weight_perm=st["wp"],
                        functional_perm=st["fp"])


# ---------------------------------------------------------------------------------------------------------------
# Functional matching as a Matcher (lmcnb.matching's interface)
# ---------------------------------------------------------------------------------------------------------------

def _folded_rows(model: TwoLayerNet, arg: str) -> torch.Tensor:
    """``W`` ``(m, d)``, with positive output weights folded in (``a σ(w·x) = σ(a w·x)`` for ``a > 0``)."""
    W = model.fc1.weight.detach()
    if model.output == "fixed":
        return W
    a = model.fc2.weight.detach()[0]
    if not bool((a > 0).all()):
        i = int(torch.nonzero(a <= 0)[0, 0])
        raise ValueError(f"FunctionalMatching folds trained output weights into W by ReLU homogeneity and needs "
                         f"a_i > 0; {arg} has a_{i} = {float(a[i])}")
    return W * a[:, None]


@dataclass(frozen=True)
class FunctionalMatching(Matcher):
    """Functional (midpoint) matching for two-layer ReLU nets without bias, in float64 (Zhan–Li–Wu notes §2.3).

    ``π = argmin_π Σ_i c(w^a_i, w^b_{π(i)})`` with ``c(w, w') = E[(σ(u·x) − ½σ(w·x) − ½σ(w'·x))²]``,
    ``u = (w + w')/2``, the exact midpoint interpolation error of a neuron pair
    (:func:`lmcnb.teacher_student.functional_cost`). It is 0 for compatible pairs (same teacher direction, or
    a dead neuron), which weight matching cannot tell apart from orthogonal pairs. With ``output="trained"``
    every output weight must be positive and is folded into its row (``a_i σ(w_i·x) = σ(a_i w_i·x)``); the cost
    is then that of the folded representation. ``by_type`` (default True): first try :func:`match_by_type` on the
    (folded) rows, which needs no ``m × m`` cost matrix and returns an optimum of the same assignment (possibly
    another one among ties; ``info["by_type"]`` says which path ran); False: always solve the assignment.
    """

    name: ClassVar[str] = "functional_matching"
    by_type: bool = True

    def __post_init__(self):
        if not isinstance(self.by_type, bool):
            raise TypeError(f"FunctionalMatching: by_type must be a bool, got {type(self.by_type).__name__}")

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        for arg, model in (("model_a", model_a), ("model_b", model_b)):
            if not isinstance(model, TwoLayerNet):
                raise NotImplementedError(f"FunctionalMatching is defined for TwoLayerNet only, {arg} is "
                                          f"{type(model).__name__}")
            if model.fc1.bias is not None:
                raise ValueError(f"FunctionalMatching needs a TwoLayerNet without bias ({arg} has one)")
            if model.fc1.weight.dtype != torch.float64:
                raise TypeError(f"FunctionalMatching needs float64 models, {arg} is {model.fc1.weight.dtype}")
        W_a, W_b = _folded_rows(model_a, "model_a"), _folded_rows(model_b, "model_b")
        perm = match_by_type(W_a, W_b) if self.by_type and W_a.shape == W_b.shape else None
        if perm is not None:
            cost = float(pair_costs(W_a, W_b.index_select(0, perm.to(W_b.device))).sum())
            return MatchResult({"P_0": perm.to(W_b.device)}, self.name, [cost], 1, True,
                               info={"exact": True, "identity_cost": float(pair_costs(W_a, W_b).sum()),
                                     "by_type": True}, sense="min")
        C = functional_cost(W_a, W_b)
        if not isinstance(C, torch.Tensor) or C.shape != (W_a.shape[0], W_b.shape[0]):
            raise RuntimeError(f"functional_cost returned {type(C).__name__} of shape "
                               f"{getattr(C, 'shape', None)}, expected {(W_a.shape[0], W_b.shape[0])}")
        perm = assignment.solve(C, reduced=True).to(W_b.device)
        cost = float(C[torch.arange(C.shape[0]), perm.to(C.device)].sum())
        return MatchResult({"P_0": perm}, self.name, [cost], 1, True,
                           info={"exact": True, "identity_cost": float(C.diagonal().sum()), "by_type": False},
                           sense="min")
