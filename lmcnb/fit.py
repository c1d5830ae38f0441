"""Log–log slopes (power-law exponents) with bootstrap confidence intervals.

The rates the book checks are power laws, ``y ≈ e^b · x^a`` — e.g. ``W_2(μ̂_m, ν̂_m) ∝ m^{−1/d}`` (Ferbach et
al.) or a barrier against width. The exponent ``a`` is the least-squares slope of ``log y`` on ``log x``
(natural logarithms; ``b`` is the intercept). With several replicates (seeds, pairs of networks) per ``x``,
:func:`bootstrap_slope` centres the replicates at each ``x`` (mean or median), fits the line through the
centres, and gets a percentile confidence interval by resampling the replicates *within* each ``x``.

Inputs are 1-D sequences of real numbers (lists, NumPy arrays, torch tensors); replicates come either as
one group per distinct ``x`` (``y[k]`` is the sequence of replicates at ``x[k]``) or flat, with ``x``
repeated once per replicate. Every value must be positive and finite; the first offending entry is named.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch

from ._validate import check_choice

__all__ = ["SlopeFit", "loglog_slope", "bootstrap_slope", "bootstrap_slopes", "power_law_fit", "Correlation",
           "bootstrap_spearman", "stratified_spearman",
           "bootstrap_mean", "binomial_interval"]

CENTERS = ("mean", "median")


# ----------------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------------

def _as_vector(name: str, values: Any) -> np.ndarray:
    """A 1-D float64 copy of a real sequence, tensor or array (bool, complex and strings are rejected)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a 1-D sequence of real numbers, got {type(values).__name__}")
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must contain real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty")
    return arr.astype(np.float64)


def _check_positive(name: str, arr: np.ndarray, zero_ok: bool = False) -> None:
    """Logs need finite, strictly positive values (non-negative with ``zero_ok``); name the first entry that is
    not."""
    bad = np.flatnonzero(~np.isfinite(arr) | ~((arr >= 0) if zero_ok else (arr > 0)))
    if bad.size:
        i = int(bad[0])
        kind = "non-negative" if zero_ok else "positive"
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} is not a finite {kind} number; a log-log fit needs "
                         f"{kind} values")


def _is_grouped(y: Any) -> bool:
    """Whether ``y`` holds one sequence of replicates per ``x`` (rather than one number per ``x``)."""
    if isinstance(y, (torch.Tensor, np.ndarray)):
        return y.ndim == 2
    if not isinstance(y, Sequence) or isinstance(y, (str, bytes)) or len(y) == 0:
        return False
    first = y[0]
    if isinstance(first, (torch.Tensor, np.ndarray)):
        return first.ndim >= 1
    return isinstance(first, Sequence) and not isinstance(first, (str, bytes))


def _groups(x: Any, y: Any, zero_ok: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct ``x`` values ``(K,)`` in increasing order and the replicates of ``y`` at each one.

    Accepts ``y`` grouped (``K`` sequences, one per entry of a ``(K,)`` ``x`` of distinct values) or flat
    (same length as ``x``, replicates sharing an ``x``). Within a group, the input order is kept.
    """
    xs = _as_vector("x", x)
    _check_positive("x", xs)
    if _is_grouped(y):
        if len(y) != xs.size:
            raise ValueError(f"grouped y must have one group per x: {xs.size} x values but {len(y)} groups")
        if np.unique(xs).size != xs.size:
            raise ValueError("with grouped y the x values must be distinct")
        groups = [_as_vector(f"y[{k}]", g) for k, g in enumerate(y)]
        for k, g in enumerate(groups):
            _check_positive(f"y[{k}]", g, zero_ok)
        order = np.argsort(xs, kind="stable")
        return xs[order], [groups[k] for k in order]
    ys = _as_vector("y", y)
    if ys.size != xs.size:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    _check_positive("y", ys, zero_ok)
    levels = np.unique(xs)
    return levels, [ys[xs == v] for v in levels]


def _check_bootstrap(n_boot: Any, ci: Any, seed: Any) -> None:
    """The bootstrap arguments every resampling function takes: ``n_boot ≥ 1`` resamples, a confidence level
    ``ci`` in (0, 1) and a NumPy ``seed ≥ 0``; ``ValueError`` naming the bad one."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if isinstance(ci, bool) or not isinstance(ci, Real) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _line(log_x: np.ndarray, log_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of ``log_y`` ``(..., K)`` on ``log_x`` ``(K,)``, batched."""
    dx = log_x - log_x.mean()
    slope = (log_y - log_y.mean(axis=-1, keepdims=True)) @ dx / (dx @ dx)
    return slope, log_y.mean(axis=-1) - slope * log_x.mean()


# ----------------------------------------------------------------------------------------------------------
# Fits
# ----------------------------------------------------------------------------------------------------------

def loglog_slope(x: Any, y: Any) -> tuple[float, float]:
    """Least-squares fit of ``log y = a·log x + b`` (natural logs), i.e. ``y ≈ e^b · x^a``.

    Args:
        x: positive values ``(n,)``, at least two distinct.
        y: positive values ``(n,)`` (repeated ``x`` allowed: every point counts once).

    Returns:
        ``(slope a, intercept b)`` as floats.
    """
    xs, ys = _as_vector("x", x), _as_vector("y", y)
    if xs.size != ys.size:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    _check_positive("x", xs)
    _check_positive("y", ys)
    if np.unique(xs).size < 2:
        raise ValueError("x must contain at least two distinct values to fit a slope")
    slope, intercept = _line(np.log(xs), np.log(ys))
    return float(slope), float(intercept)


@dataclass(frozen=True)
class SlopeFit:
    """A log–log slope with its bootstrap percentile interval: ``y ≈ e^intercept · x^slope``.

    ``slope`` and ``intercept`` come from the fit through the centred data; ``[ci_low, ci_high]`` is the
    central ``ci`` interval of ``n_boot`` bootstrap slopes.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    n_boot: int
    ci: float = 0.95

    def line(self, x: Any) -> np.ndarray:
        """The fitted power law ``e^intercept · x^slope`` at positive ``x`` ``(n,)``."""
        xs = _as_vector("x", x)
        _check_positive("x", xs)
        return np.exp(self.intercept) * xs ** self.slope

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in ``[ci_low, ci_high]``."""
        return self.ci_low <= value <= self.ci_high

    def __str__(self) -> str:
        return (f"slope {self.slope:.3g} [{100 * self.ci:g}% CI {self.ci_low:.3g}, {self.ci_high:.3g}] "
                f"intercept {self.intercept:.3g} ({self.n_boot} bootstrap resamples)")


def _centers(groups: list[np.ndarray], center: str) -> np.ndarray:
    """Per-``x`` centre ``(K,)`` of the replicates."""
    return np.array([np.median(g) if center == "median" else np.mean(g) for g in groups])


def _fit_inputs(x: Any, y: Any, center: str, zero_ok: bool = False) -> tuple[str, np.ndarray, list[np.ndarray]]:
    """Validated ``center``, the distinct ``x`` levels ``(K,)`` (at least two) and the replicates at each."""
    center = check_choice("center", center, CENTERS)
    if not isinstance(zero_ok, bool):
        raise TypeError(f"zero_ok must be a bool, got {type(zero_ok).__name__}")
    levels, groups = _groups(x, y, zero_ok)
    if levels.size < 2:
        raise ValueError("x must contain at least two distinct values to fit a slope")
    return center, levels, groups


def bootstrap_slope(x: Any, y: Any, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                    center: str = "mean", zero_ok: bool = False) -> SlopeFit:
    """Log–log slope through per-``x`` centres, with a bootstrap CI over replicates resampled within each ``x``.

    Each bootstrap draw resamples, independently at every ``x``, as many replicates as there are (with
    replacement), recomputes the centres and refits the line; the interval is the percentile interval
    ``[q_{(1−ci)/2}, q_{(1+ci)/2}]`` of the ``n_boot`` slopes.

    Args:
        x: the ``K`` distinct positive ``x`` values ``(K,)`` when ``y`` is grouped, else ``(n,)`` with repeats.
        y: grouped — ``K`` sequences of positive replicates (ragged allowed), ``y[k]`` at ``x[k]`` — or flat
            ``(n,)`` positive values matching ``x``. At least two distinct ``x`` and two replicates per ``x``.
        n_boot: number of bootstrap resamples (``≥ 1``).
        ci: confidence level in ``(0, 1)``.
        seed: seed of the NumPy generator used for resampling (results are deterministic in it).
        center: ``"mean"`` or ``"median"`` of the replicates at each ``x``, taken before the log.
        zero_ok: allow replicates equal to 0 (e.g. barriers that vanish exactly); every centre of the data must
            still be positive, and a bootstrap resample with a zero centre at some ``x`` (its log is ``−∞``) is
            discarded: ``SlopeFit.n_boot`` is then the number of resamples kept (``ValueError`` if fewer than
            half are kept).

    Returns:
        :class:`SlopeFit`.
    """
    _check_bootstrap(n_boot, ci, seed)
    center, levels, groups = _fit_inputs(x, y, center, zero_ok)
    for v, g in zip(levels, groups):
        if g.size < 2:
            raise ValueError(f"the bootstrap needs at least two replicates per x; x = {v:g} has {g.size}")
    centres = _centers(groups, center)
    if not bool((centres > 0).all()):
        k = int(np.flatnonzero(~(centres > 0))[0])
        raise ValueError(f"the {center} of the replicates at x = {levels[k]:g} is 0; a log-log fit needs a positive "
                         "centre at every x")
    log_x = np.log(levels)
    slope, intercept = _line(log_x, np.log(centres))
    boot = _bootstrap_slopes(log_x, groups, int(n_boot), np.random.default_rng(int(seed)), center)
    boot = boot[np.isfinite(boot)]
    if 2 * boot.size < n_boot:
        raise ValueError(f"only {boot.size} of {n_boot} bootstrap resamples have a positive centre at every x; "
                         "too many zero replicates for a log-log fit")
    low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return SlopeFit(float(slope), float(intercept), float(low), float(high), int(boot.size), float(ci))


def bootstrap_slopes(x: Any, ys: Mapping[Hashable, Any], n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                     center: str = "mean", zero_ok: bool = False) -> dict[Hashable, SlopeFit]:
    """:func:`bootstrap_slope` for several series against the same ``x`` (e.g. one per input dimension).

    Args:
        x: as in :func:`bootstrap_slope` (shared by every series).
        ys: ``key → y`` (grouped or flat, as in :func:`bootstrap_slope`), e.g. ``{p: values (K, n_pairs)}``
            from :func:`lmcnb.rates.iid_matching_sweep`.
        n_boot, ci, seed, center, zero_ok: as in :func:`bootstrap_slope` (every series uses the same ``seed``).

    Returns:
        ``{key: SlopeFit}`` in the order of ``ys``.
    """
    if not isinstance(ys, Mapping) or len(ys) == 0:
        raise TypeError(f"ys must be a non-empty mapping key -> y, got {type(ys).__name__}")
    return {key: bootstrap_slope(x, y, n_boot=n_boot, ci=ci, seed=seed, center=center, zero_ok=zero_ok)
            for key, y in ys.items()}


def _bootstrap_slopes(log_x: np.ndarray, groups: list[np.ndarray], n_boot: int, rng: np.random.Generator,
                      center: str) -> np.ndarray:
    """``n_boot`` slopes ``(n_boot,)`` refitted on within-``x`` resamples of the replicates."""
    reduce = np.median if center == "median" else np.mean
    centres = np.stack([reduce(g[rng.integers(0, g.size, size=(n_boot, g.size))], axis=1) for g in groups],
                       axis=1)  # (n_boot, K)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero centre (zero_ok) gives a non-finite slope
        slopes, _ = _line(log_x, np.log(centres))
    return slopes


def power_law_fit(x: Any, y: Any, num: int = 50, center: str = "mean", zero_ok: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The fitted power law for plotting: ``num`` points ``(num,)`` log-spaced over ``[min x, max x]``.

    ``y`` may be flat (one value per ``x``, repeats allowed) or grouped as in :func:`bootstrap_slope`; the
    line is fitted through the per-``x`` ``center`` of the replicates (a single replicate is its own centre).
    ``zero_ok`` allows zero replicates as in :func:`bootstrap_slope` (every centre must be positive).

    Returns:
        ``(x_line, y_line)`` with ``y_line = e^b · x_line^a``.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
        raise ValueError(f"num must be an int >= 2, got {num!r}")
    center, levels, groups = _fit_inputs(x, y, center, zero_ok)
    centres = _centers(groups, center)
    if not bool((centres > 0).all()):
        raise ValueError(f"a log-log fit needs a positive {center} at every x")
    slope, intercept = _line(np.log(levels), np.log(centres))
    x_line = np.geomspace(levels[0], levels[-1], int(num))
    return x_line, math.exp(intercept) * x_line ** slope


# ----------------------------------------------------------------------------------------------------------
# Rank correlation with a bootstrap interval
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Correlation:
    """A Spearman rank correlation ``rho`` with its bootstrap percentile interval ``[ci_low, ci_high]``
    (``n`` points, or ``n`` clusters when resampled by cluster; ``n_boot`` resamples kept)."""

    rho: float
    ci_low: float
    ci_high: float
    n: int
    n_boot: int
    ci: float = 0.95

    def __str__(self) -> str:
        return f"rho {self.rho:.3g} [{100 * self.ci:g}% CI {self.ci_low:.3g}, {self.ci_high:.3g}] (n = {self.n})"


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of every row of ``x`` and ``y`` ``(B, n)`` (average ranks for ties); NaN where a row is
    constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(1) / den


def bootstrap_spearman(x: Any, y: Any, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                       clusters: Any = None) -> Correlation:
    """Spearman's rank correlation of ``x`` and ``y`` with a percentile bootstrap interval.

    Each resample draws the points with replacement (or, with ``clusters``, whole clusters with replacement —
    e.g. every matcher of one pair of networks together, so that points sharing a pair are not counted as
    independent) and recomputes rho; resamples in which ``x`` or ``y`` is constant are discarded.

    Args:
        x, y: ``(n,)`` finite real values, ``n ≥ 3``.
        n_boot: number of resamples (``≥ 1``). ci: confidence level in ``(0, 1)``. seed: NumPy seed (≥ 0).
        clusters: optional ``(n,)`` labels; at least two distinct labels.

    Returns:
        :class:`Correlation` (``n`` is the number of points, or of clusters).
    """
    xs, ys = (np.asarray(torch.as_tensor(v).double().cpu() if isinstance(v, torch.Tensor) else v,
                         dtype=np.float64).ravel() for v in (x, y))
    if xs.shape != ys.shape or xs.size < 3:
        raise ValueError(f"x and y must be 1-D of the same length >= 3, got {xs.size} and {ys.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x and y must be finite")
    _check_bootstrap(n_boot, ci, seed)
    rho = float(_spearman_rows(xs[None], ys[None])[0])
    if not np.isfinite(rho):
        raise ValueError("x or y is constant; the rank correlation is undefined")
    rng = np.random.default_rng(int(seed))
    if clusters is None:
        idx = rng.integers(0, xs.size, size=(int(n_boot), xs.size))
        n = xs.size
    else:
        labels = np.asarray(clusters).ravel()
        if labels.shape != xs.shape:
            raise ValueError(f"clusters must have one label per point ({xs.size}), got {labels.size}")
        members = [np.flatnonzero(labels == u) for u in dict.fromkeys(labels.tolist())]
        n = len(members)
        if n < 2:
            raise ValueError("clusters must contain at least two distinct labels")
        picks = rng.integers(0, n, size=(int(n_boot), n))
        idx = [np.concatenate([members[k] for k in row]) for row in picks]
        width = max(len(r) for r in idx)
        if any(len(r) != width for r in idx):  # ragged clusters: rho per resample
            boot = np.array([_spearman_rows(xs[r][None], ys[r][None])[0] for r in idx])
            idx = None
        else:
            idx = np.stack(idx)
    if idx is not None:
        boot = _spearman_rows(xs[idx], ys[idx])
    boot = boot[np.isfinite(boot)]
    if 2 * boot.size < n_boot:
        raise ValueError(f"only {boot.size} of {n_boot} resamples are non-constant")
    low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return Correlation(rho, float(low), float(high), int(n), int(boot.size), float(ci))


def stratified_spearman(x: Any, y: Any, strata: Any, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                        drop_constant: bool = False) -> Correlation:
    """The mean over strata of the Spearman correlation of ``x`` and ``y`` within each stratum, with a
    percentile bootstrap interval over strata resampled with replacement.

    Use it when a confounder moves both variables between strata (e.g. the learning rate moves both the
    barrier and the dimension): only the ordering *within* a stratum (the matchers of one pair of networks)
    is compared. Every stratum needs at least two points and non-constant ``x`` and ``y``.

    Args:
        x, y: ``(n,)`` finite real values. strata: ``(n,)`` labels, at least two distinct ones.
        n_boot, ci, seed: as in :func:`bootstrap_spearman`.
        drop_constant: leave out strata in which ``x`` or ``y`` is constant (e.g. barriers that are all 0)
            instead of raising; ``n`` then counts the strata kept.

    Returns:
        :class:`Correlation` with ``rho`` the mean within-stratum correlation and ``n`` the number of strata.
    """
    xs, ys = (np.asarray(v, dtype=np.float64).ravel() for v in (x, y))
    labels = np.asarray(strata).ravel()
    if not (xs.shape == ys.shape == labels.shape):
        raise ValueError(f"x, y and strata must have the same length, got {xs.size}, {ys.size}, {labels.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x and y must be finite")
    _check_bootstrap(n_boot, ci, seed)
    rhos = []
    for u in dict.fromkeys(labels.tolist()):
        k = labels == u
        r = _spearman_rows(xs[k][None], ys[k][None])[0] if k.sum() >= 2 else np.nan
        if not np.isfinite(r) and drop_constant and k.sum() >= 2:
            continue
        if not np.isfinite(r):
            raise ValueError(f"stratum {u!r} needs at least two points with non-constant x and y")
        rhos.append(r)
    if not isinstance(drop_constant, bool):
        raise TypeError(f"drop_constant must be a bool, got {type(drop_constant).__name__}")
    rho = np.array(rhos)
    if rho.size < 2:
        raise ValueError("strata must contain at least two distinct labels")
    boot = rho[np.random.default_rng(int(seed)).integers(0, rho.size, size=(int(n_boot), rho.size))].mean(1)
    low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return Correlation(float(rho.mean()), float(low), float(high), int(rho.size), int(n_boot), float(ci))


def bootstrap_mean(values: Any, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> Correlation:
    """The mean of ``values`` ``(n,)`` (n ≥ 2, finite) with a percentile bootstrap interval (resampling the
    values with replacement), returned as a :class:`Correlation` whose ``rho`` is the mean — e.g. the mean
    log-ratio of two matchers' barriers over pairs of networks."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2 or not np.isfinite(v).all():
        raise ValueError(f"values must be at least two finite numbers, got {v.size}")
    _check_bootstrap(n_boot, ci, seed)
    boot = v[np.random.default_rng(int(seed)).integers(0, v.size, size=(int(n_boot), v.size))].mean(1)
    low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return Correlation(float(v.mean()), float(low), float(high), int(v.size), int(n_boot), float(ci))


def binomial_interval(successes: int, trials: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``[lo, hi]`` of a success probability from ``successes`` out of ``trials``
    independent trials — e.g. the fraction of network pairs whose barrier is within a bound ("with high
    probability" as a measured fraction, Ferbach et al. Thm 3.1).

    ``p̂ = k/n``, ``z`` the ``(1+ci)/2`` normal quantile: ``(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``;
    it stays inside ``[0, 1]`` and is not degenerate at ``k = 0`` or ``k = n`` (``k = n`` gives
    ``lo = n / (n + z²)``).

    Args:
        successes: ``0 ≤ k ≤ n`` (int). trials: ``n ≥ 1`` (int). ci: confidence level in ``(0, 1)``.
    """
    for name, v in (("successes", successes), ("trials", trials)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    k, n = int(successes), int(trials)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need trials >= 1 and 0 <= successes <= trials, got successes={k}, trials={n}")
    if isinstance(ci, bool) or not isinstance(ci, Real) or not 0 < float(ci) < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + float(ci)) / 2)
    phat, z2 = k / n, z * z
    centre = (phat + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)
