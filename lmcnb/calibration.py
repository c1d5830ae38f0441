"""Softmax temperature calibration, one scalar temperature per interpolation point (Guo et al. 2017).

Notation: logits ``z ∈ R^{n×C}``, labels ``y ∈ {0,…,C−1}^n``, temperature ``T > 0`` and inverse temperature
``β = 1/T``. The calibrated negative log-likelihood is

    NLL(T) = (1/n) Σ_i [ logsumexp_c(z_ic / T) − z_{i,y_i} / T ].

As a function of β it is convex: ``d²NLL/dβ² = (1/n) Σ_i Var_{c∼softmax(βz_i)}[z_ic] ≥ 0``, so its derivative is
monotone and the minimiser is the unique root of a monotone function (an interval only in the degenerate case
where every row of ``z`` is constant). :func:`fit_temperatures` finds that root in ``u = log β = −log T`` by
safeguarded Newton (bisection whenever Newton leaves the bracket or stalls), vectorised over K rows, to
``tol`` in log T. In log T the NLL is quasi-convex (unimodal), not convex in general.

Temperature scaling never changes the accuracy: ``argmax_c z_ic / T = argmax_c z_ic`` for every T > 0.

Protocol (research notes, seed002-ito §1.5): fit T(λ) per interpolation point on a held-out calibration split
and report the calibrated loss on a disjoint evaluation split; fitting on a training set that the endpoints
separate perfectly sends T to its lower bound (β → ∞), which :func:`fit_temperatures` reports with a warning.
"""
from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch.nn import functional as F

from ._validate import check_real

__all__ = ["calibrated_nll", "expected_calibration_error", "fit_temperature", "fit_temperatures"]

DEFAULT_BOUNDS = (1e-3, 1e3)


# ----------------------------------------------------------------------------------------------- validation
def _check_labels(labels: object, n: int, num_classes: int) -> torch.Tensor:
    """``labels`` must be an int64 tensor ``(n,)`` with entries in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype != torch.long:
        raise TypeError(f"labels must be int64 (torch.long) class indices, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the logits, got {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


def _check_logits(logits: object, dim: int, name: str = "logits") -> torch.Tensor:
    """``logits`` must be a finite floating tensor with ``dim`` axes, n ≥ 1 rows and C ≥ 2 classes."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {logits.dtype}")
    shape = "(n, C)" if dim == 2 else "(K, n, C)"
    if logits.dim() != dim or logits.numel() == 0:
        raise ValueError(f"{name} must be a non-empty {shape} tensor, got shape {tuple(logits.shape)}")
    if logits.shape[-1] < 2:
        raise ValueError(f"{name} need C >= 2 classes, got {logits.shape[-1]}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} contain NaN or inf")
    return logits


def _check_bounds(bounds: object) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (T_min, T_max), got {bounds!r}")
    lo, hi = (check_real("temperature", b, 0, low_open=True) for b in bounds)
    if not lo < hi:
        raise ValueError(f"bounds must satisfy 0 < T_min < T_max, got {bounds!r}")
    return lo, hi


# ----------------------------------------------------------------------------------------------- NLL
def calibrated_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Mean NLL of ``softmax(logits / T)``.

    Args:
        logits: ``(n, C)`` with a scalar ``temperature``, or ``(K, n, C)`` with ``temperature`` of shape ``(K,)``.
        labels: ``(n,)`` int64 class indices, shared by the K rows.

    Returns a 0-d tensor, or ``(K,)``, in float64.
    """
    if isinstance(temperature, torch.Tensor):
        z = _check_logits(logits, 3)
        if temperature.shape != (z.shape[0],) or not temperature.is_floating_point():
            raise ValueError(f"temperature must be a floating ({z.shape[0]},) tensor for (K, n, C) logits, got "
                             f"{temperature.dtype} {tuple(temperature.shape)}")
        if not bool((torch.isfinite(temperature) & (temperature > 0)).all()):
            raise ValueError("temperatures must be finite and > 0")
        _check_labels(labels, z.shape[1], z.shape[2])
        return _nll(z.double() / temperature.double().to(z.device)[:, None, None], labels)
    z = _check_logits(logits, 2)
    _check_labels(labels, z.shape[0], z.shape[1])
    return _nll(z.double()[None] / check_real("temperature", temperature, 0, low_open=True), labels)[0]


def _nll(scaled: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per row: ``scaled (K, n, C)``, ``labels (n,)`` → ``(K,)``."""
    picked = scaled.gather(2, labels.expand(scaled.shape[0], -1)[..., None])[..., 0]
    return (torch.logsumexp(scaled, dim=2) - picked).mean(dim=1)


def _derivatives(z: torch.Tensor, labels: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second derivatives of NLL with respect to u = log β: ``z (K, n, C)``, ``u (K,)`` → two ``(K,)``.

    With β = e^u, dNLL/dβ = mean_i(E_p[z_i] − z_{i,y_i}) and d²NLL/dβ² = mean_i Var_p[z_i], p = softmax(β z_i);
    dNLL/du = β dNLL/dβ and d²NLL/du² = β dNLL/dβ + β² d²NLL/dβ².
    """
    beta = u.exp()
    p = torch.softmax(beta[:, None, None] * z, dim=2)
    mean_z = (p * z).sum(2)
    var_z = (p * (z - mean_z[..., None]) ** 2).sum(2)
    picked = z.gather(2, labels.expand(z.shape[0], -1)[..., None])[..., 0]
    d1 = (mean_z - picked).mean(1)
    d2 = var_z.mean(1)
    return beta * d1, beta * d1 + beta ** 2 * d2


# ----------------------------------------------------------------------------------------------- fitting
def fit_temperatures(logits_per_lambda: torch.Tensor, labels: torch.Tensor, *,
                     bounds: tuple[float, float] = DEFAULT_BOUNDS, tol: float = 1e-12,
                     max_iter: int = 200) -> torch.Tensor:
    """The NLL-minimising temperature of each of K sets of logits, constrained to ``bounds``.

    Args:
        logits_per_lambda: ``(K, n, C)``, e.g. the logits of the K interpolated models on one calibration split.
        labels: ``(n,)`` int64 class indices, shared by the K rows.
        bounds: ``(T_min, T_max)`` with ``0 < T_min < T_max``.
        tol: convergence tolerance on ``log T`` (relative precision of T).
        max_iter: iteration cap; reaching it raises ``RuntimeError`` (cannot happen with the bisection
            safeguard unless ``tol`` is below float64 resolution of the bracket).

    Returns ``(K,)`` float64 temperatures. A row whose minimiser lies at a bound gets that bound and a
    ``RuntimeWarning``; a row with constant logits (NLL independent of T) gets T = 1.
    """
    z = _check_logits(logits_per_lambda, 3, "logits_per_lambda").double()
    _check_labels(labels, z.shape[1], z.shape[2])
    t_min, t_max = _check_bounds(bounds)
    lo = torch.full((z.shape[0],), -math.log(t_max), dtype=torch.float64, device=z.device)
    hi = torch.full_like(lo, -math.log(t_min))
    g_lo, _ = _derivatives(z, labels, lo)
    g_hi, _ = _derivatives(z, labels, hi)
    u = _safeguarded_newton(z, labels, lo.clone(), hi.clone(), tol, max_iter)
    flat = (g_lo == 0) & (g_hi == 0)
    at_t_max, at_t_min = (g_lo >= 0) & ~flat, (g_hi <= 0) & ~flat
    u = torch.where(at_t_max, lo, torch.where(at_t_min, hi, torch.where(flat, torch.zeros_like(u), u)))
    _warn_at_bounds(at_t_min, at_t_max, t_min, t_max)
    return (-u).exp()


def _safeguarded_newton(z: torch.Tensor, labels: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, tol: float,
                        max_iter: int) -> torch.Tensor:
    """Root of the monotone dNLL/du in ``[lo, hi]`` per row (rtsafe: Newton inside the bracket, else bisection).

    Rows without a sign change converge to an end of the bracket; the caller replaces them.
    """
    u = 0.5 * (lo + hi)
    step_old = hi - lo
    for _ in range(max_iter):
        g, h = _derivatives(z, labels, u)
        lo = torch.where(g < 0, u, lo)
        hi = torch.where(g > 0, u, hi)
        newton = u - g / torch.where(h > 0, h, torch.ones_like(h))
        ok = (h > 0) & (newton >= lo) & (newton <= hi) & ((newton - u).abs() < 0.5 * step_old.abs())
        u_new = torch.where(ok, newton, 0.5 * (lo + hi))
        u_new = torch.where(g == 0, u, u_new)
        step_old = u_new - u
        u = u_new
        if bool(((step_old.abs() <= tol) | (hi - lo <= tol)).all()):
            return u
    raise RuntimeError(f"temperature fit did not converge in {max_iter} iterations (tol={tol})")


def _warn_at_bounds(at_t_min: torch.Tensor, at_t_max: torch.Tensor, t_min: float, t_max: float) -> None:
    for mask, bound, why in ((at_t_min, t_min, "NLL still falls as T decreases (separable data?)"),
                             (at_t_max, t_max, "NLL still falls as T increases")):
        if bool(mask.any()):
            rows = mask.nonzero().flatten().tolist()
            warnings.warn(f"temperature hit the bound {bound} for rows {rows}: {why}; fit on a held-out split "
                          f"or widen bounds", RuntimeWarning, stacklevel=3)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, bounds: tuple[float, float] = DEFAULT_BOUNDS,
                    tol: float = 1e-12, max_iter: int = 200) -> float:
    """The temperature ``T ∈ bounds`` minimising the mean NLL of ``softmax(logits / T)``.

    Args: ``logits (n, C)``, ``labels (n,)`` int64; see :func:`fit_temperatures` for the rest.
    """
    z = _check_logits(logits, 2)
    return float(fit_temperatures(z[None], labels, bounds=bounds, tol=tol, max_iter=max_iter)[0])


# ----------------------------------------------------------------------------------------------- ECE
def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (Guo et al. 2017).

    ECE = Σ_b (|B_b| / n) · |acc(B_b) − conf(B_b)|, where the confidence of sample i is ``max_c softmax(z_i)_c``
    and bin b holds the confidences in ``((b−1)/n_bins, b/n_bins]`` (the first bin also holds 0).

    Args: ``logits (n, C)``, ``labels (n,)`` int64, ``n_bins ≥ 1``. Returns a float in ``[0, 1]``.
    """
    z = _check_logits(logits, 2)
    _check_labels(labels, z.shape[0], z.shape[1])
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    probs = F.softmax(z.double(), dim=1)
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, int(n_bins) - 1)
    count = torch.zeros(int(n_bins), dtype=torch.float64, device=z.device).index_add_(0, bins, torch.ones_like(conf))
    gap = torch.zeros_like(count).index_add_(0, bins, correct - conf)
    return float(gap.abs().sum() / z.shape[0])
