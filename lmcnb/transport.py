"""Optimal transport (OT) between empirical measures of neurons, and Wasserstein distances.

Ferbach, Goujaud, Gidel & Dieuleveut (AISTATS 2024) read the neurons of a layer as the atoms of an empirical
measure, μ̂_A = (1/m) Σ_i δ_{w_i^A} and μ̂_B = (1/m) Σ_i δ_{w_i^B}, with w_i ∈ R^d the incoming weight vector
(row i of W ∈ R^{m×d}). Aligning the two layers is then an OT problem

    W_p^p(μ, ν) = min_{γ ∈ Π(a, b)} Σ_ij γ_ij ‖x_i − y_j‖^p,

and by Birkhoff–von Neumann (their Lemma B.3) the optimal coupling between two uniform measures with the same
number m of atoms can be taken to be a permutation matrix scaled by 1/m, so that

    W_p^p(μ̂_A, μ̂_B) = min_{π ∈ S_m} (1/m) Σ_i ‖w_i^A − w_{π(i)}^B‖^p,

a linear assignment problem solved exactly by :func:`hungarian` (``scipy.optimize.linear_sum_assignment``).
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
from scipy.optimize import linear_sum_assignment

from ._validate import check_bool, check_choice, check_int, check_real, check_tensor

__all__ = [
    "cost_matrix", "hungarian", "ot_plan", "ot_match", "wasserstein", "is_permutation_plan",
    "plan_to_permutation", "gaussian_sampler", "uniform_sampler", "subspace_sampler", "two_sample_wasserstein",
    "matching_dimensions",
]

#: Relative tolerance on equal total mass of the weights (and on probability weights summing to 1).
MASS_RTOL = 1e-6
#: Default tolerance of :func:`is_permutation_plan`, relative to the size (total mass / n) of a plan's entries.
PLAN_TOL = 1e-6
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


def _check_square_cost(C: object) -> torch.Tensor:
    C = _check_tensor("C", C, 2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be square (n, n) for a permutation, got shape {tuple(C.shape)}")
    return C


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
    """Exact linear assignment: ``perm = argmin_π Σ_i C[i, π(i)]`` (``scipy.optimize.linear_sum_assignment``).

    Args:
        C: square cost matrix ``(n, n)``, finite.
        maximize: maximise ``Σ_i C[i, π(i)]`` instead (for similarity matrices such as ``W_A W_Bᵀ``).

    Returns:
        ``perm`` LongTensor ``(n,)`` on ``C``'s device: ``X[i]`` is paired with ``Y[perm[i]]``.
    """
    C = _check_square_cost(C)
    check_bool("maximize", maximize)
    rows, cols = linear_sum_assignment(_to_numpy64(C), maximize=maximize)
    assert np.array_equal(rows, np.arange(C.shape[0]))  # scipy's contract for square matrices
    return torch.as_tensor(cols, dtype=torch.long, device=C.device)


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


def is_permutation_plan(P: torch.Tensor, tol: float = PLAN_TOL) -> bool:
    """Whether ``P`` ``(n, n)`` is a permutation matrix scaled by its mass: ``P = (Σ P / n)·Π``.

    The check is ``max |(n / Σ P)·P − Π| ≤ tol`` with ``Π`` the 0/1 permutation matrix of the row argmaxes,
    so ``tol`` is relative to the size of a plan entry. A non-square ``P`` is not a permutation plan.
    """
    P = _check_tensor("P", P, 2)
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


def _assignment_cost(C: torch.Tensor, perm: torch.Tensor) -> float:
    """``Σ_i C[i, perm[i]]`` in float64."""
    return float(C.double().gather(1, perm[:, None]).sum())


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
    perm_p = _pot_permutation(C) if backend == "pot" or check else None
    if check:
        cost_h, cost_p = _assignment_cost(C, perm_h), _assignment_cost(C, perm_p)
        scale = max(abs(cost_h), abs(cost_p), float(C.abs().max()) * 1e-3)
        if abs(cost_h - cost_p) > 1e-9 * scale:
            raise RuntimeError(f"Hungarian cost {cost_h!r} and POT cost {cost_p!r} differ")
    return perm_h if backend == "hungarian" else perm_p


def _pot_permutation(C: torch.Tensor) -> torch.Tensor:
    """Permutation ``(m,)`` read off POT's exact plan (uniform weights ``1/m``) for the cost ``C`` ``(m, m)``."""
    m = C.shape[0]
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
        total = _assignment_cost(C, hungarian(C)) / n
    else:
        a64 = torch.full((n,), 1.0 / n, dtype=torch.float64, device=X.device) if a is None else a.double()
        b64 = torch.full((m,), 1.0 / m, dtype=torch.float64, device=X.device) if b is None else b.double()
        total = float((ot_plan(a64, b64, C.double(), method="emd") * C.double()).sum())
    return max(total, 0.0) ** (1.0 / p)


# ----------------------------------------------------------------------------------------------------------
# Empirical rates (Ferbach et al. §5: the m^{-1/d} engine, its lower bound and low-dimensional supports)
# ----------------------------------------------------------------------------------------------------------

def gaussian_sampler(d: int, scale: float = 1.0):
    """Sampler of ``N(0, scale² I_d)`` (a density on R^d: W_2 rate m^{-1/d} for d ≥ 5)."""
    d = check_int("d", d, 1)
    scale = check_real("scale", scale, 0.0, low_open=True)
    return lambda m, g: scale * torch.randn(m, d, generator=g, dtype=torch.float64)


def uniform_sampler(d: int):
    """Sampler of the uniform measure on ``[0, 1]^d`` (a bounded density: the lower bound applies)."""
    d = check_int("d", d, 1)
    return lambda m, g: torch.rand(m, d, generator=g, dtype=torch.float64)


def subspace_sampler(d: int, k: int, eta: float, seed: int = 0):
    """Sampler of ``w = U z + η ξ``: ``U`` a fixed random orthonormal ``(d, k)`` frame, ``z ~ N(0, I_k)``,
    ``ξ ~ N(0, I_d)`` (Ferbach et al. Assumption 8 shape: a measure η-close to a k-dimensional subspace).

    ``η = 0`` is supported exactly on the subspace (rate m^{-1/k}); ``η > 0`` has a full-dimensional density
    (the rate returns to m^{-1/d} below a floor of order η·√(2d)). ``seed`` fixes ``U`` only.
    """
    d = check_int("d", d, 1)
    k = check_int("k", k, 1)
    if k > d:
        raise ValueError(f"k must be <= d, got k={k}, d={d}")
    eta = check_real("eta", eta, 0.0)
    seed = check_int("seed", seed, 0)
    frame = torch.randn(d, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    U, _ = torch.linalg.qr(frame)

    def sample(m: int, g: torch.Generator) -> torch.Tensor:
        z = torch.randn(m, k, generator=g, dtype=torch.float64) @ U.T
        return z + eta * torch.randn(m, d, generator=g, dtype=torch.float64) if eta > 0 else z
    return sample


def two_sample_wasserstein(sampler, ms, reps: int, p: float = 2, seed: int = 0) -> np.ndarray:
    """``W_p(μ̂_m, ν̂_m)`` between two independent ``m``-point samples of the same measure, for each ``m``.

    Ferbach et al. bound the matched distance of two networks' neurons by this quantity
    (``W_p(μ̂_m, ν̂_m) ≤ W_p(μ̂_m, μ) + W_p(μ, ν̂_m)``): it is what decays like ``m^{-1/d}``.
    Uses the exact Hungarian fast path of :func:`wasserstein` (Birkhoff).

    Args:
        sampler: ``sampler(m, generator) -> (m, d)`` float64, e.g. :func:`gaussian_sampler`.
        ms: sample sizes ``(K,)``, positive ints.
        reps: independent repetitions per size (``≥ 1``).
        p: order ``≥ 1``.
        seed: seeds one ``torch.Generator`` for all draws (results are deterministic in it).

    Returns:
        ``W`` ``(K, reps)`` float64 array.
    """
    if not callable(sampler):
        raise TypeError(f"sampler must be callable (m, generator) -> (m, d), got {type(sampler).__name__}")
    if isinstance(ms, (str, bytes)) or not hasattr(ms, "__len__") or len(ms) == 0:
        raise ValueError(f"ms must be a non-empty sequence of positive ints, got {ms!r}")
    ms = [check_int(f"ms[{i}]", m, 1) for i, m in enumerate(ms)]
    reps = check_int("reps", reps, 1)
    p = check_real("p", p, 1)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    out = np.empty((len(ms), reps))
    for i, m in enumerate(ms):
        for r in range(reps):
            X, Y = sampler(m, g), sampler(m, g)
            if not isinstance(X, torch.Tensor) or X.shape[0] != m or X.ndim != 2:
                raise ValueError(f"sampler(m={m}) must return an (m, d) tensor, got "
                                 f"{getattr(X, 'shape', type(X).__name__)}")
            out[i, r] = wasserstein(X, Y, p=p)
    return out


# ----------------------------------------------------------------------------------------------------------
# Approximate dimension of what each matcher transports (Ferbach et al. Fig. 2, right panel)
# ----------------------------------------------------------------------------------------------------------

def _dimension(S: torch.Tensor) -> float:
    from .diagnostics import approximate_dimension

    return approximate_dimension((S + S.T) / 2)


def matching_dimensions(model: torch.nn.Module, x: torch.Tensor, centered: bool = False) -> dict[str, list[float]]:
    """Approximate dimension ``Dim(S) = tr(S)²/tr(S²)`` of the three matrices of Ferbach et al.'s Fig. 2.

    For every hidden layer ``ℓ = 1 … L−1`` of an MLP (weights ``W_ℓ`` ``(m_ℓ, m_{ℓ−1})``, biases ignored as in
    the authors' code), with ``h_{ℓ−1}`` the layer's input over ``x`` (``h_0 = x``) and ``z_ℓ`` its post-ReLU
    output, all from this one model:

    - ``"naive"`` (naive weight matching): ``S = W_ℓᵀ W_ℓ``, the neurons' incoming weights as points in R^{m_{ℓ−1}}
      (uncentred; ``centered=True`` subtracts the mean neuron);
    - ``"covariance"`` (Σ-weighted matching): ``S = W_ℓ Σ_{ℓ−1} W_ℓᵀ`` with ``Σ_{ℓ−1} = E[h hᵀ]`` (uncentred, as
      in the authors' code) or ``Cov(h)`` (``centered=True``) — the pre-activation second moment;
    - ``"activation"`` (activation matching): ``S = E[z zᵀ]`` (or ``Cov(z)``).

    Args:
        model: :class:`lmcnb.models.MLP`. x: inputs ``(n, *)`` in the model's dtype and device.
        centered: use centred matrices (covariances) instead of the authors' uncentred second moments.

    Returns:
        ``{"naive": [...], "covariance": [...], "activation": [...]}``, one float per hidden layer.
    """
    from .models import MLP

    if not isinstance(model, MLP):
        raise TypeError(f"model must be an lmcnb.models.MLP, got {type(model).__name__}")
    check_bool("centered", centered)
    x = check_tensor("x", x, min_ndim=2)
    out: dict[str, list[float]] = {"naive": [], "covariance": [], "activation": []}
    with torch.no_grad():
        h = x.flatten(1).double()
        for layer in list(model.layers)[:-1]:
            W = layer.weight.detach().double().to(h.device)
            Wc = W - W.mean(0, keepdim=True) if centered else W
            hc = h - h.mean(0, keepdim=True) if centered else h
            sigma = hc.T @ hc / h.shape[0]
            z = torch.relu(torch.nn.functional.linear(h, W, None if layer.bias is None
                                                      else layer.bias.detach().double().to(h.device)))
            zc = z - z.mean(0, keepdim=True) if centered else z
            out["naive"].append(_dimension(Wc.T @ Wc))
            out["covariance"].append(_dimension(W @ sigma @ W.T))
            out["activation"].append(_dimension(zc.T @ zc / z.shape[0]))
            h = z
    return out
