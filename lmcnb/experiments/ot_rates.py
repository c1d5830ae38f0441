"""Empirical optimal-transport rates and dimensions (Ferbach et al. §5, chapter 5).

- :func:`two_sample_wasserstein` with the samplers :func:`gaussian_sampler`, :func:`uniform_sampler` and
  :func:`subspace_sampler`: the ``m^{-1/d}`` engine behind LMC via OT, its lower bound and low-dimensional supports;
- :func:`matching_dimensions`: the approximate dimension of what each matcher transports (their Fig. 2, right);
- :func:`birkhoff_statistics` and :func:`identity_cost_ratio`: chapter 5a's Birkhoff check and identity-pairing
  gap as one statistic each, so that the check and its negative control (unequal weights, coupled samples)
  measure the same thing.
"""
from __future__ import annotations

import numpy as np
import torch

from .._validate import check_bool, check_int, check_real, check_tensor
from ..diagnostics import approximate_dimension
from ..models import MLP
from ..transport import cost_matrix, hungarian, is_permutation_plan, ot_plan, wasserstein

__all__ = ["gaussian_sampler", "uniform_sampler", "subspace_sampler", "two_sample_wasserstein", "matching_dimensions",
           "birkhoff_statistics", "identity_cost_ratio"]


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


# ----------------------------------------------------------------------------------------------------------
# Birkhoff and the identity pairing as statistics (chapter 5a's checks and their negative controls)
# ----------------------------------------------------------------------------------------------------------

def birkhoff_statistics(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor,
                        tol: float = 1e-12) -> tuple[int, float, bool]:
    """How far the exact OT plan ``π`` between ``a`` and ``b`` for the cost ``C`` is from a permutation.

    Birkhoff (Ferbach et al. Lemma B.3): for two uniform measures on ``m`` points each the exact (vertex) plan is
    ``1/m`` times a permutation matrix, so it has ``m`` non-zeros, ``is_permutation_plan`` holds and its cost
    equals the optimal assignment cost ``min_σ (1/m) Σ_i C_{iσ(i)}``. With unequal weights (the negative
    control) the plan splits mass: more than ``m`` non-zeros and a cost gap.

    Args:
        a, b: weights ``(m,)`` of equal total mass (probability vectors).
        C: cost matrix ``(m, m)``.
        tol: an entry counts as non-zero above ``tol`` (``> 0``).

    Returns:
        ``(non-zeros of π, |⟨π, C⟩ − assignment cost| / assignment cost, is_permutation_plan(π))``.
    """
    C = check_tensor("C", C, ndim=2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be square (m, m), got {tuple(C.shape)}")
    tol = check_real("tol", tol, 0.0, low_open=True)
    plan = ot_plan(a, b, C)
    m = C.shape[0]
    perm = hungarian(C)
    assignment = float(C[torch.arange(m), perm].double().mean())
    if assignment <= 0.0:
        raise ValueError("the optimal assignment cost is 0; the relative gap is undefined")
    gap = abs(float((plan.double() * C.double()).sum()) - assignment) / assignment
    return int((plan > tol).sum()), gap, bool(is_permutation_plan(plan))


def identity_cost_ratio(X: torch.Tensor, Y: torch.Tensor, p: float = 2) -> float:
    """Cost of the identity pairing ``x_i ↔ y_i`` over the optimal one: ``Σ_i c(x_i, y_i) / min_σ Σ_i c(x_i, y_σ(i))``
    with ``c = ‖·‖^p`` (:func:`lmcnb.transport.cost_matrix`).

    At least 1; large for two independent samples (the index carries no information), about 1 when ``Y`` is a
    small perturbation of ``X`` (coupled samples: the negative control of "the identity is far from optimal").

    Args:
        X, Y: point clouds ``(m, d)`` of one dtype; p: cost exponent ``≥ 1``.
    """
    C = cost_matrix(X, Y, p=check_real("p", p, 1))
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"X and Y must hold the same number of points, got {C.shape[0]} and {C.shape[1]}")
    best = float(C[torch.arange(C.shape[0]), hungarian(C)].double().mean())
    if best <= 1e-12 * float(C.double().mean()):  # rounding of the squared-distance formula, not a cost
        raise ValueError("the optimal pairing has cost 0 (Y is a permutation of X); the ratio is undefined")
    return float(C.diagonal().double().mean()) / best
