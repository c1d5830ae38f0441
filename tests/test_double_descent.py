"""Tests of lmcnb.experiments.double_descent: the interior-peak bootstrap and the split of pairs."""
from __future__ import annotations

import numpy as np
import pytest

from lmcnb.experiments.double_descent import interior_peak, median_ci, split_pairs


def _curve(meds, n=12, spread=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return {w: m * (1 + spread * rng.standard_normal(n)) for w, m in meds.items()}


PEAKED = {5: 1.0, 6: 3.0, 8: 2.5, 12: 1.2, 16: 0.5}
MONOTONE = {5: 3.0, 6: 2.5, 8: 2.0, 12: 1.0, 16: 0.5}


def test_peak_resolved_on_a_peaked_curve_and_not_on_a_monotone_one():
    t = interior_peak(_curve(PEAKED), 5, 12, n_boot=500)
    assert t.resolved and t.peak_width == 6 and t.lo > 0 and t.excess == pytest.approx(
        t.medians[6] - max(t.medians[5], t.medians[12]))
    assert t.ratio == pytest.approx(t.medians[6] / max(t.medians[5], t.medians[12]))
    m = interior_peak(_curve(MONOTONE), 5, 12, n_boot=500)
    assert not m.resolved and m.excess < 0 and m.hi < 0


def test_window_ends_matter_both_of_them():
    # the right end: the window [5, 8] on a curve rising to 8 has no interior peak, [5, 12] does
    rising = {5: 1.0, 6: 2.0, 8: 3.0, 12: 1.0}
    assert not interior_peak(_curve(rising), 5, 8, n_boot=300).resolved
    assert interior_peak(_curve(rising), 5, 12, n_boot=300).resolved
    # the left end: [6, 16] on PEAKED starts at the peak, so no interior peak; widths outside are ignored
    t = interior_peak(_curve(PEAKED), 6, 16, n_boot=300)
    assert not t.resolved and set(t.medians) == {6, 8, 12, 16}


def test_bootstrap_is_over_pairs_and_deterministic_in_seed():
    noisy = _curve(PEAKED, n=4, spread=0.9)
    a, b = interior_peak(noisy, 5, 12, seed=1), interior_peak(noisy, 5, 12, seed=1)
    assert (a.lo, a.hi) == (b.lo, b.hi)
    c = interior_peak(noisy, 5, 12, seed=2)
    assert (a.lo, a.hi) != (c.lo, c.hi)
    narrow = interior_peak(noisy, 5, 12, ci=0.5, seed=1)
    assert a.lo < narrow.lo <= narrow.hi < a.hi
    tight = interior_peak(_curve(PEAKED, n=40, spread=0.05), 5, 12)
    assert tight.hi - tight.lo < a.hi - a.lo
    assert interior_peak(noisy, 5, 12, n_boot=7).n_boot == 7


def test_exact_zeros_count_in_the_median():
    # at the left end half the pairs are exactly 0: the median is their middle, not the nonzero ones'
    v = {5: [0.0] * 7 + [4.0] * 5, 6: [2.0] * 12, 12: [1.0] * 12}
    t = interior_peak(v, 5, 12, n_boot=200)
    assert t.medians[5] == 0.0 and t.excess == 1.0


def test_interior_peak_rejects_bad_inputs():
    v = _curve(PEAKED)
    for kw in ({"n_boot": 0}, {"ci": 1.0}, {"seed": -1}):
        with pytest.raises(ValueError):
            interior_peak(v, 5, 12, **kw)
    with pytest.raises(ValueError):
        interior_peak(v, 12, 5)
    with pytest.raises(ValueError):
        interior_peak(v, 5, 7)
    with pytest.raises(ValueError):
        interior_peak({5: [1, 2], 6: [1], 8: [1, 2]}, 5, 8)
    with pytest.raises(ValueError):
        interior_peak({5: [1, 2], 8: [1, 2]}, 5, 8)


def test_split_pairs_counts_each_band_and_uses_both_thresholds():
    v = [0.0, 1e-15, 1e-5, 5e-3, 0.02, 0.5]
    assert split_pairs(v) == (2, 2, 2)
    assert split_pairs(v, zero=1e-4) == (3, 1, 2)
    assert split_pairs(v, level=1e-3) == (2, 1, 3)
    with pytest.raises(ValueError):
        split_pairs(v, zero=0.1, level=0.01)


def test_median_ci_counts_zeros_and_uses_its_arguments():
    v = [0.0] * 5 + [1.0] * 7
    med, lo, hi = median_ci(v, n_boot=500)
    assert med == 1.0 and lo == 0.0 and hi == 1.0
    rng = np.random.default_rng(0)
    w = rng.standard_normal(30)
    a, b = median_ci(w, seed=3), median_ci(w, seed=3)
    assert a == b
    few = [median_ci(w, n_boot=9, seed=s)[1:] for s in range(5)]
    assert len(set(few)) > 1
    narrow = median_ci(w, ci=0.5, seed=3)
    assert a[1] < narrow[1] <= narrow[2] < a[2]
    for kw in ({"n_boot": 0}, {"ci": 0.0}):
        with pytest.raises(ValueError):
            median_ci(w, **kw)
    with pytest.raises(ValueError):
        median_ci([1.0])


# --- the trained-output step from the sharpness of balanced global minima ---------------------------------------

def test_balanced_minimum_is_a_global_minimum_of_every_width_and_split():
    import torch

    from lmcnb.experiments.double_descent import balanced_minimum
    from lmcnb.papers import teacher_student as ts

    T = ts.orthonormal_teacher(8, 4)
    for masses in (None, [0.5, 1, 1, 1, 0.5], [0.25, 0.5, 0.7, 0.1, 0.75, 0.5, 0.3, 0.9]):
        W, a = balanced_minimum(T, masses)
        assert torch.allclose(a, W.norm(dim=1))  # balanced: a_i = |w_i|
        assert float(ts.population_loss(W[None], T, a=a[None])[0]) < 1e-20
    W, a = balanced_minimum(T, [0.5, 1, 1, 1, 0.5])
    assert W.shape == (5, 8) and torch.allclose(W[4], 0.5 ** 0.5 * T[0])  # neuron 4 serves teacher neuron 0
    with pytest.raises(ValueError, match="sum to 1"):
        balanced_minimum(T, [0.5, 1, 1, 1])
    with pytest.raises(ValueError, match="positive"):
        balanced_minimum(T, [1, 1, 1, 1, -0.0])
    with pytest.raises(ValueError, match="teacher"):
        balanced_minimum(T[0])


def test_the_stable_step_depends_on_teacher_inputs_and_fraction_not_on_width():
    from lmcnb.experiments.double_descent import balanced_minimum_sharpness, stable_trained_output_step
    from lmcnb.papers import teacher_student as ts

    T = ts.orthonormal_teacher(8, 4)
    lam = balanced_minimum_sharpness(T)
    assert lam == pytest.approx(4.5747, abs=1e-3)
    assert balanced_minimum_sharpness(T, [0.5, 1, 1, 1, 0.5]) == pytest.approx(lam, rel=1e-9)  # width-free
    eta = stable_trained_output_step(T)
    assert eta == pytest.approx(0.85 * 2 / lam)
    assert stable_trained_output_step(T, 0.5) == pytest.approx(eta * 0.5 / 0.85)
    assert stable_trained_output_step(ts.orthonormal_teacher(8, 2)) > 1.4 * eta  # fewer teacher neurons: flatter
    assert stable_trained_output_step(2 * T) < 0.5 * eta  # a larger teacher: sharper minima
    assert stable_trained_output_step(T, inputs="sphere") == pytest.approx(8 * eta, rel=1e-6)  # R/d on the sphere
    for bad in (0, 1, 1.5, True):
        with pytest.raises(ValueError, match="fraction"):
            stable_trained_output_step(T, bad)


def test_the_stable_step_converges_at_a_paper_width_where_eta_025_does_not():
    # m = 64 (chapter 2's widest trained-output paper width), positive output init, seed 0, 40 000 steps: the
    # rule's step (0.372) reaches R < 1e-8 (measured: 34 200 steps), eta = 0.25 stops at R = 2.5e-8 (control)
    from lmcnb.experiments.double_descent import stable_trained_output_step
    from lmcnb.papers import teacher_student as ts

    def run(eta):
        model = ts.TeacherStudent(d=8, M=4, output="trained", c=eta, step="constant", output_init="positive",
                                  steps=40_000, tol=1e-8)
        return model.train([64], [0])

    rule = run(stable_trained_output_step(ts.orthonormal_teacher(8, 4)))
    assert bool(rule.converged[0]) and float(rule.final_loss[0]) < 1e-8
    slow = run(0.25)
    assert not bool(slow.converged[0]) and float(slow.final_loss[0]) > 1e-8
