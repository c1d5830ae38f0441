"""Statistics of a barrier-versus-width curve: is there an interior peak, and how do the pairs split at a width?

:func:`interior_peak` tests the *second rise* of a double descent without leaning on an exact zero: the largest
median strictly inside a window ``(lo, hi)`` of widths must exceed the medians at **both** ends of the window, with
a bootstrap confidence interval over pairs (resampled within each width) whose lower end is above 0. A curve that
decays monotonically from ``lo`` has no interior peak and fails it.
:func:`split_pairs` counts, at one width, the pairs whose barrier is an exact zero, the pairs in an intermediate
band and the pairs at or above a level — exact zeros are counted, never skipped.
:func:`stable_trained_output_step` is the step size of the trained-output variant, from GD's linear stability at
its global minima: every *balanced* global minimum (``a_i = |w_i|``) has the same sharpness, whatever the width
and the split of the masses (:func:`balanced_minimum_sharpness`), so ``η = fraction · 2 / λ`` is one step for
every width.
:func:`capped_barrier_sweeps` runs a teacher–student width sweep with a step cap per width range (wide
trained-output students need several times the steps of narrow ones).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ..papers import teacher_student as ts

__all__ = ["PeakTest", "interior_peak", "median_ci", "split_pairs", "balanced_minimum",
           "balanced_minimum_sharpness", "stable_trained_output_step", "capped_barrier_sweeps"]


@dataclass(frozen=True)
class PeakTest:
    """Result of :func:`interior_peak`.

    ``medians``: width → median over pairs; ``peak_width``: the interior width with the largest median;
    ``excess``: its median minus the larger of the two end medians; ``lo``/``hi``: the bootstrap percentile
    interval of ``excess`` at level ``ci`` (the interior argmax is re-chosen in every resample); ``ratio``: peak
    median over the larger end median (``inf`` if that is 0)."""

    medians: dict
    peak_width: int
    left: int
    right: int
    excess: float
    lo: float
    hi: float
    ratio: float
    n_boot: int
    ci: float

    @property
    def resolved(self) -> bool:
        """Whether the interval's lower end is above 0 (the interior peak is resolved at level ``ci``)."""
        return self.lo > 0


def _excess(meds: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``max(meds[..., inner]) − max(meds[..., 0], meds[..., -1])`` along the last axis."""
    return meds[..., inner].max(axis=-1) - np.maximum(meds[..., 0], meds[..., -1])


def interior_peak(values: Mapping[int, Sequence[float]], left: int, right: int, *, n_boot: int = 2000,
                  ci: float = 0.95, seed: int = 0) -> PeakTest:
    """Bootstrap test of an interior peak of the per-width median on the window ``[left, right]``.

    Args:
        values: width → the barriers of its pairs (at least two per width of the window); widths outside
            ``[left, right]`` are ignored. ``left`` and ``right`` must be keys and at least one key must lie
            strictly between them.
        left, right: the window's end widths (``left < right``).
        n_boot: bootstrap resamples (``≥ 1``). ci: level in ``(0, 1)``. seed: NumPy generator seed.

    Returns:
        :class:`PeakTest`.
    """
    for name, v in (("n_boot", n_boot), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if name == "n_boot" else 0):
            raise ValueError(f"{name} must be a {'positive' if name == 'n_boot' else 'non-negative'} int, got {v!r}")
    if isinstance(ci, bool) or not isinstance(ci, Real) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    if not left < right:
        raise ValueError(f"need left < right, got {left}, {right}")
    for w in (left, right):
        if w not in values:
            raise ValueError(f"width {w} is not in values")
    widths = sorted(int(w) for w in values if left <= w <= right)
    if len(widths) < 3:
        raise ValueError(f"no width strictly inside ({left}, {right})")
    groups = [np.asarray(values[w], dtype=np.float64).ravel() for w in widths]
    for w, g in zip(widths, groups):
        if g.size < 2:
            raise ValueError(f"width {w} has {g.size} pair(s); the bootstrap needs at least two")
        if not np.isfinite(g).all():
            raise ValueError(f"width {w} has non-finite barriers")
    inner = np.arange(1, len(widths) - 1)
    meds = np.array([np.median(g) for g in groups])
    excess = float(_excess(meds, inner))
    rng = np.random.default_rng(int(seed))
    boot = np.stack([np.median(g[rng.integers(0, g.size, (int(n_boot), g.size))], axis=1) for g in groups],
                    axis=1)
    q_lo, q_hi = np.quantile(_excess(boot, inner), [(1 - ci) / 2, (1 + ci) / 2])
    peak = widths[1 + int(np.argmax(meds[inner]))]
    edge = max(meds[0], meds[-1])
    ratio = float(meds[inner].max() / edge) if edge > 0 else float("inf")
    return PeakTest(medians=dict(zip(widths, meds.tolist())), peak_width=peak, left=left, right=right,
                    excess=excess, lo=float(q_lo), hi=float(q_hi), ratio=ratio, n_boot=int(n_boot), ci=float(ci))


def split_pairs(values: Sequence[float], zero: float = 1e-12, level: float = 1e-2) -> tuple[int, int, int]:
    """``(exact zeros, between, at or above level)``: how many barriers are ``< zero``, in ``[zero, level)`` and
    ``≥ level`` (``0 < zero ≤ level``)."""
    if not 0 < zero <= level:
        raise ValueError(f"need 0 < zero <= level, got zero={zero}, level={level}")
    v = np.asarray(values, dtype=np.float64).ravel()
    n_zero = int((v < zero).sum())
    n_big = int((v >= level).sum())
    return n_zero, int(v.size) - n_zero - n_big, n_big


def median_ci(values: Sequence[float], *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(median, lo, hi)``: the median of ``values`` (exact zeros included) and its bootstrap percentile interval
    at level ``ci`` (``n_boot`` resamples with replacement, NumPy generator ``seed``)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if isinstance(ci, bool) or not isinstance(ci, Real) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        raise ValueError(f"need at least two values, got {v.size}")
    rng = np.random.default_rng(int(seed))
    boot = np.median(v[rng.integers(0, v.size, (int(n_boot), v.size))], axis=1)
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return float(np.median(v)), float(lo), float(hi)


def balanced_minimum(T: torch.Tensor, masses: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A balanced global minimum ``(W (m, d), a (m,))`` of the trained-output student ``f = Σ_i a_i σ(w_i·x)`` for
    the teacher ``T (M, d)`` (rows ``w*_j``, unit output weights): neuron ``i`` serves teacher neuron
    ``j = i mod M`` with mass ``μ_i`` (``masses``, default one neuron of mass 1 per teacher neuron, ``m = M``), as
    ``w_i = √μ_i · w*_j`` and ``a_i = √μ_i`` (so ``a_i σ(w_i·x) = μ_i σ(w*_j·x)``); the masses of each teacher
    neuron's students must sum to 1. float64."""
    T = torch.as_tensor(T, dtype=torch.float64)
    if T.ndim != 2 or T.shape[0] < 1:
        raise ValueError(f"T must be a (M, d) teacher, got shape {tuple(T.shape)}")
    M = T.shape[0]
    mu = torch.ones(M, dtype=torch.float64) if masses is None else torch.as_tensor(masses, dtype=torch.float64)
    if mu.ndim != 1 or mu.numel() < M or not bool((mu > 0).all()):
        raise ValueError(f"masses must be at least M={M} positive numbers, got {masses!r}")
    types = torch.arange(mu.numel()) % M
    sums = torch.zeros(M, dtype=torch.float64).index_add_(0, types, mu)
    if not torch.allclose(sums, torch.ones(M, dtype=torch.float64), rtol=0.0, atol=1e-12):
        raise ValueError(f"the masses of each teacher neuron (i mod M) must sum to 1, got sums {sums.tolist()}")
    return mu.sqrt()[:, None] * T[types], mu.sqrt()


def balanced_minimum_sharpness(T: torch.Tensor, masses: Sequence[float] | None = None, *, inputs: str = "gaussian",
                               n_iter: int = 1000, tol: float = 1e-9) -> float:
    """Sharpness ``λ_max(∇²R)`` over ``(W, a)`` of :func:`balanced_minimum` ``(T, masses)``, by power iteration
    (:func:`lmcnb.teacher_student.sharpness_population`, ``train_output=True``). For an orthonormal teacher it
    does not depend on the width or the masses (``d = 8, M = 4``: 4.5747 at ``m = 4 … 128``, equal or
    Dirichlet masses; the trained students of chapter 2 measure 4.56–4.66 at ``m = 8`` and ``32``)."""
    from ..papers import teacher_student as ts

    W, a = balanced_minimum(T, masses)
    pop = ts.Population(torch.as_tensor(T, dtype=torch.float64), inputs=inputs)
    return float(ts.sharpness_population(W, pop, a=a, train_output=True, n_iter=n_iter, tol=tol).eigenvalue)


def stable_trained_output_step(T: torch.Tensor, fraction: float = 0.85, *, inputs: str = "gaussian") -> float:
    """Step size ``η = fraction · 2 / λ`` of the trained-output variant, ``λ`` = :func:`balanced_minimum_sharpness`
    ``(T)``: GD is linearly stable at the balanced global minima iff ``η λ < 2``, and ``λ`` is the same at every
    width, so one ``η`` serves every width (with fixed outputs the sharpness grows like ``m``, hence ``η = c/m``).
    ``fraction`` in ``(0, 1)``: how close to the edge (``d = 8, M = 4``: 0.85 gives ``η ≈ 0.372``; ``η = 0.5``, beyond the edge
    ``2/λ ≈ 0.437``, oscillated at every width in a scratch sweep, and ``η = 0.25`` (fraction 0.57) left every run
    at ``m = 64`` unconverged after 40 000 steps)."""
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    return float(fraction) * 2.0 / balanced_minimum_sharpness(T, inputs=inputs)


def capped_barrier_sweeps(model: ts.TeacherStudent, widths: Sequence[int], n_pairs: int, caps: Mapping[int, int],
                          **sweep_kwargs) -> list[ts.BarrierTable]:
    """``model.barrier_sweep`` with a step cap per width range: ``caps`` maps an upper width to the ``steps`` of
    the widths up to it (and above the next smaller key), e.g. ``{64: 80_000, 256: 300_000}``; one
    :meth:`lmcnb.teacher_student.TeacherStudent.barrier_sweep` per range that holds a width, in ascending order,
    each with ``dataclasses.replace(model, steps=cap)`` (a run still stops as soon as it converges or is
    stationary). ``sweep_kwargs`` (``device``, ``first_seed``, …) go to every sweep.

    Returns:
        The :class:`lmcnb.teacher_student.BarrierTable` of each range that holds a width, ascending.
    """
    from ..papers import teacher_student as ts

    if not isinstance(model, ts.TeacherStudent):
        raise TypeError(f"model must be a teacher_student.TeacherStudent, got {type(model).__name__}")
    if not isinstance(caps, Mapping) or not caps:
        raise ValueError(f"caps must be a non-empty mapping upper width -> steps, got {caps!r}")
    for upper, cap in caps.items():
        for name, v in (("upper width", upper), ("steps", cap)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"caps: every {name} must be a positive integer, got {v!r} in {dict(caps)}")
    ws = list(widths)
    beyond = sorted({w for w in ws if w > max(caps)})
    if beyond:
        raise ValueError(f"widths {beyond} lie above the largest capped width {max(caps)}: give them a cap")
    tables, low = [], 0
    for upper in sorted(caps):
        part = [w for w in ws if low < w <= upper]
        if part:
            tables.append(replace(model, steps=caps[upper]).barrier_sweep(part, n_pairs, **sweep_kwargs))
        low = upper
    return tables
