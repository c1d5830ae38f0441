"""The global-minimum manifold 𝓜 and Hall's exact LMC criterion (notes §1.2, §2.4)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._validate import check_choice, check_generator, check_int, check_real
from ._inputs import F64, SPLITS, _check_device, _check_f64, _check_orthonormal, _check_teacher
from .initialisation import orthonormal_teacher


# ---------------------------------------------------------------------------------------------------------------
# The global-minimum manifold 𝓜 and the exact LMC criterion
# ---------------------------------------------------------------------------------------------------------------

def _teacher_or_identity(teacher: object, M: int, d: int) -> Tensor:
    if teacher is None:
        return orthonormal_teacher(d, M)
    T = _check_teacher(teacher, d, "teacher")
    if T.shape[0] != M:
        raise ValueError(f"teacher must have shape ({M}, {d}), got {tuple(T.shape)}")
    _check_orthonormal(T, "teacher")
    return T


def _draw_types(m: int, M: int, dead_prob: float, g: torch.Generator, max_tries: int) -> Tensor:
    """Neuron types of SP(M, r) conditioned on every type being present: ``−1`` (dead) with probability ``r``,
    else uniform on ``0..M−1``; rejection sampling, ``(m,)`` int64."""
    for _ in range(max_tries):
        dead = torch.rand(m, generator=g, dtype=F64, device=g.device) < dead_prob
        types = torch.randint(0, M, (m,), generator=g, device=g.device)
        types = torch.where(dead, -1, types)
        if int(torch.unique(types[types >= 0]).numel()) == M:
            return types
    raise ValueError(f"could not draw a minimum with every teacher type present in {max_tries} tries "
                     f"(m={m}, M={M}, dead_prob={dead_prob}); lower dead_prob or raise m")


def sample_minimum(m: int, M: int, d: int, generator: torch.Generator, dead_prob: float = 0.0,
                   split: str = "equal", teacher: Tensor | None = None, max_tries: int = 10_000) -> Tensor:
    """A random global minimum ``W ∈ 𝓜`` of the seed model (fixed ``a = 1``, orthonormal teacher; notes §1.2).

    ``𝓜 = {W : every row is 0 or α w*_j with α > 0, and Σ_{i of type j} α_i = 1 for every j}``. Each row is dead
    with probability ``dead_prob`` and otherwise of a uniform type (the neuron-sparse distribution SP(M, r)),
    conditioned on every type being present (rejection sampling). The masses ``α_i`` of the ``n_j`` type-``j``
    neurons are ``1/n_j`` (``split="equal"``) or uniform on the simplex, Dirichlet(1, …, 1) (``"dirichlet"``).

    Args:
        m: student width ``>= M``. M, d: teacher width and input dimension (``M <= d``).
        generator: the randomness. dead_prob: ``r ∈ [0, 1)``. split: ``"equal"`` or ``"dirichlet"``.
        teacher: orthonormal teacher rows ``(M, d)``; default ``e_1, …, e_M``.
        max_tries: rejection-sampling budget.

    Returns:
        ``W (m, d)`` float64 with ``R(W) = 0`` up to rounding.
    """
    m, M, d = check_int("m", m, 1), check_int("M", M, 1), check_int("d", d, 1)
    if M > d:
        raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
    if m < M:
        raise ValueError(f"the minimum manifold needs m >= M (every type present), got m={m}, M={M}")
    g = check_generator("generator", generator)
    r = check_real("dead_prob", dead_prob, 0.0, 1.0)
    if r == 1.0:
        raise ValueError("dead_prob must be < 1 (every type must be present)")
    split = check_choice("split", split, SPLITS)
    T = _teacher_or_identity(teacher, M, d)
    types = _draw_types(m, M, r, g, check_int("max_tries", max_tries, 1))
    live = types >= 0
    if split == "equal":
        weight = torch.ones(m, dtype=F64, device=g.device)
    else:  # Dirichlet(1): normalised standard exponentials (floored so that no live row is exactly zero)
        u = torch.rand(m, generator=g, dtype=F64, device=g.device)
        weight = (-torch.log1p(-u)).clamp_min(torch.finfo(F64).tiny)
    weight = torch.where(live, weight, 0.0)
    mass_per_type = torch.zeros(M, dtype=F64, device=g.device).index_add_(0, types.clamp_min(0), weight)
    alpha = torch.where(live, weight / mass_per_type[types.clamp_min(0)], 0.0)
    return (alpha[:, None] * T.to(g.device)[types.clamp_min(0)]).to(T.device)


def neuron_types(W: Tensor, T: Tensor, tol: float = 1e-8, dead_tol: float = 0.0) -> Tensor:
    """Type of every neuron: ``−1`` if dead (``|w_i| <= dead_tol``), ``j`` if ``w_i`` is a positive multiple of
    ``w*_j`` up to ``tol`` (``|w_i − (w_i·ŵ*_j) ŵ*_j| <= tol |w_i|`` and ``w_i·w*_j > 0``).

    Args:
        W: ``(m, d)`` or ``(B, m, d)`` float64. T: teacher rows ``(M, d)`` (nonzero).
        tol: relative misalignment tolerance (the sine of the angle), in ``[0, 1)``.
        dead_tol: absolute norm below which a row counts as dead (``0``: exactly zero rows only).

    Returns:
        int64 ``(m,)`` or ``(B, m)``.

    Raises:
        ValueError: if a live row is aligned with no teacher direction (``W`` is not on ``𝓜``'s support).
    """
    W = _check_f64("W", W, (2, 3))
    T = _check_teacher(T, W.shape[-1])
    _check_device(("W", "T"), (W, T))
    tol = check_real("tol", tol, 0.0, 1.0)
    dead_tol = check_real("dead_tol", dead_tol, 0.0)
    t_norm = T.norm(dim=1)
    if bool((t_norm == 0).any()):
        raise ValueError("T has a zero row: it defines no direction")
    That = T / t_norm[:, None]
    norm = W.norm(dim=-1)
    proj = W @ That.T  # (…, m, M)
    # ‖w − (w·ŵ*_j) ŵ*_j‖ computed directly: sqrt(‖w‖² − proj²) loses half the digits to cancellation
    resid = (W[..., None, :] - proj[..., None] * That).norm(dim=-1)
    ok = (resid <= tol * norm[..., None]) & (proj > 0)
    dead = norm <= dead_tol
    types = torch.where(ok.any(-1), ok.to(torch.int64).argmax(-1), -2)
    types = torch.where(dead, -1, types)
    bad = types == -2
    if bool(bad.any()):
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"row {where} of W (norm {float(norm[where]):.3g}) is aligned with no teacher direction "
                         f"within tol={tol}: W is not on the minimum manifold's support")
    return types


def _type_counts(types: Tensor, M: int) -> tuple[Tensor, int]:
    """``n_j`` (number of type-``j`` neurons, ``(M,)``) and ``z`` (number of dead neurons)."""
    n = torch.bincount(types[types >= 0], minlength=M)
    return n, int((types == -1).sum())


def hall_lmc_criterion(W1: Tensor, W2: Tensor, T: Tensor, tol: float = 1e-8, dead_tol: float = 0.0) -> bool:
    """Exact LMC criterion for two minima on ``𝓜`` (notes §2.4): ``B_perm(W1, W2) = 0`` iff

        Σ_j (n1_j − n2_j)⁺ <= z2   and   Σ_j (n2_j − n1_j)⁺ <= z1,

    with ``n_j`` the number of type-``j`` neurons and ``z`` the number of dead ones (:func:`neuron_types`). Two rows
    interpolate inside ``𝓜`` iff they have the same type or one is dead (Lemma 7 of Lin–Li–Wu); Hall's marriage
    theorem turns "a permutation pairing only such rows exists" into the two inequalities.

    Args:
        W1, W2: minima ``(m, d)`` of equal width. T: teacher ``(M, d)``. tol, dead_tol: as in :func:`neuron_types`.

    Returns:
        ``True`` iff some permutation of ``W2``'s rows makes the linear path ``(1 − λ) W1 + λ W2`` stay in ``𝓜``.
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    M = _check_teacher(T, W1.shape[1]).shape[0]
    n1, z1 = _type_counts(neuron_types(W1, T, tol, dead_tol), M)
    n2, z2 = _type_counts(neuron_types(W2, T, tol, dead_tol), M)
    return int((n1 - n2).clamp_min(0).sum()) <= z2 and int((n2 - n1).clamp_min(0).sum()) <= z1
