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


def _tiny(**kw):
    from lmcnb.papers import teacher_student as ts
    return ts.TeacherStudent(d=4, M=2, steps=400, tol=1e-10, **kw)


def test_capped_sweeps_give_each_width_range_its_own_cap():
    from lmcnb.experiments.double_descent import capped_barrier_sweeps
    tabs = capped_barrier_sweeps(_tiny(), [3, 2, 5], 1, {3: 7, 8: 60}, progress=False)
    assert [t.widths for t in tabs] == [(3, 2), (5,)]  # ranges (0, 3] and (3, 8], widths in the given order
    assert [set(t.solutions.steps.tolist()) for t in tabs] == [{7}, {60}]  # each range's cap, not model.steps
    one = capped_barrier_sweeps(_tiny(), [5], 1, {8: 60}, progress=False)[0]
    assert np.allclose(one.perm.numpy(), tabs[1].perm.numpy())  # a range's sweep is the plain sweep
    assert capped_barrier_sweeps(_tiny(), [2], 1, {1: 5, 2: 9}, progress=False)[0].solutions.steps.tolist() == [9, 9]


def test_capped_sweeps_pass_the_model_pairs_and_sweep_keywords():
    from lmcnb.experiments.double_descent import capped_barrier_sweeps
    base = capped_barrier_sweeps(_tiny(), [3], 1, {4: 50}, progress=False)[0]
    other_c = capped_barrier_sweeps(_tiny(c=1.0), [3], 1, {4: 50}, progress=False)[0]
    assert not np.allclose(base.solutions.final_loss.numpy(), other_c.solutions.final_loss.numpy())
    assert len(capped_barrier_sweeps(_tiny(), [3], 2, {4: 50}, progress=False)[0].perm) == 2
    shifted = capped_barrier_sweeps(_tiny(), [3], 1, {4: 50}, first_seed=4, progress=False)[0]
    assert shifted.seeds_a == (4,) and base.seeds_a == (0,)


def test_capped_sweeps_reject_bad_caps_and_uncapped_widths():
    from lmcnb.experiments.double_descent import capped_barrier_sweeps
    with pytest.raises(ValueError, match=r"widths \[9\] lie above the largest capped width 8"):
        capped_barrier_sweeps(_tiny(), [3, 9], 1, {8: 50})
    for caps in ({}, [8, 50], {8: 0}, {0: 50}, {8: 2.5}, {True: 50}):
        with pytest.raises(ValueError, match="caps"):
            capped_barrier_sweeps(_tiny(), [3], 1, caps)
    with pytest.raises(TypeError, match="TeacherStudent"):
        capped_barrier_sweeps(object(), [3], 1, {8: 50})


# --- mutation-testing follow-ups: every boundary, message and argument below changes the result -----------------

def _boot_reference(groups, n_boot, ci, seed):
    """The documented bootstrap: each width's pairs resampled with replacement from one NumPy generator."""
    rng = np.random.default_rng(seed)
    return [np.median(g[rng.integers(0, g.size, (n_boot, g.size))], axis=1) for g in groups], \
        [(1 - ci) / 2, (1 + ci) / 2]


def test_interior_peak_interval_is_the_percentile_interval_of_the_bootstrap():
    v = _curve({5: 1.0, 6: 2.0, 8: 3.0, 12: 1.0}, n=5, spread=0.5, seed=4)
    for ci, seed in ((0.95, 0), (0.8, 3)):
        t = interior_peak(v, 5, 12, n_boot=300, ci=ci, seed=seed)
        boot, q = _boot_reference([np.asarray(v[w]) for w in (5, 6, 8, 12)], 300, ci, seed)
        b = np.stack(boot, axis=1)
        ref = np.quantile(b[:, 1:3].max(axis=1) - np.maximum(b[:, 0], b[:, 3]), q)
        assert (t.lo, t.hi) == pytest.approx(tuple(ref), abs=0, rel=1e-12)
        assert (t.left, t.right, t.ci, t.n_boot) == (5, 12, ci, 300)
    assert t.peak_width == 8  # the second interior width (the argmax is offset by the left end)
    d = interior_peak(v, 5, 12)
    assert (d.n_boot, (d.lo, d.hi)) == (2000, (interior_peak(v, 5, 12, n_boot=2000, seed=0).lo,
                                               interior_peak(v, 5, 12, n_boot=2000, seed=0).hi))


def test_interior_peak_ratio_and_boundaries():
    flat0 = {5: [0.0, 0.0], 6: [1.0, 1.0], 8: [0.0, 0.0]}
    assert interior_peak(flat0, 5, 8, n_boot=1).ratio == float("inf")  # both ends 0; n_boot = 1 is allowed
    half = {5: [0.5, 0.5], 6: [1.0, 1.0], 8: [0.25, 0.25]}  # two pairs per width are enough
    assert interior_peak(half, 5, 8, n_boot=5).ratio == pytest.approx(2.0)
    for kw, msg in (({"ci": 0.0}, "ci must be a number in"), ({"ci": "0.5"}, "ci must be a number in"),
                    ({"n_boot": "3"}, "n_boot must be a positive int"), ({"seed": -1}, "seed must be a non-negative")):
        with pytest.raises(ValueError, match=msg):
            interior_peak(half, 5, 8, **kw)
    with pytest.raises(ValueError, match="need left < right, got 5, 5"):
        interior_peak(half, 5, 5)
    with pytest.raises(ValueError, match="width 7 is not in values"):
        interior_peak(half, 5, 7)
    with pytest.raises(ValueError, match=r"no width strictly inside \(5, 6\)"):
        interior_peak(half, 5, 6)
    with pytest.raises(ValueError, match="width 6 has 1 pair"):
        interior_peak({**half, 6: [1.0]}, 5, 8)
    with pytest.raises(ValueError, match="width 8 has non-finite"):
        interior_peak({**half, 8: [0.1, float("nan")]}, 5, 8)


def test_median_ci_interval_is_the_percentile_interval_of_the_bootstrap():
    v = np.array([100.0, 0.0, 0.0])  # the first value must be resampled too
    boot, q = _boot_reference([v], 400, 0.9, 2)
    assert median_ci(v, n_boot=400, ci=0.9, seed=2) == pytest.approx((0.0, *np.quantile(boot[0], q)))
    assert median_ci(v, n_boot=400, ci=0.9, seed=2)[2] == 100.0
    w = np.random.default_rng(5).standard_normal(25)  # continuous: every quantile level shows
    boot, q = _boot_reference([w], 300, 0.8, 1)
    assert median_ci(w, n_boot=300, ci=0.8, seed=1)[1:] == pytest.approx(tuple(np.quantile(boot[0], q)), rel=1e-12)
    assert median_ci(w) == median_ci(w, n_boot=2000, ci=0.95, seed=0)
    assert median_ci(w) != median_ci(w, seed=1)  # (n_boot 2000 vs 2001: the same order statistics)
    assert median_ci([1.0, 3.0], n_boot=1)[0] == 2.0  # two values and one resample are allowed
    for kw, msg in (({"n_boot": 1.5}, "n_boot must be a positive int"), ({"n_boot": "2"}, "n_boot must be"),
                    ({"ci": 1.0}, "ci must be a number in"), ({"ci": 1.5}, "ci must be"), ({"ci": "a"}, "ci must")):
        with pytest.raises(ValueError, match=msg):
            median_ci(v, **kw)
    with pytest.raises(ValueError, match="need at least two values, got 1"):
        median_ci([1.0])


def test_split_pairs_boundaries_belong_to_the_upper_band():
    assert split_pairs([1e-12, 1e-2]) == (0, 1, 1)  # = zero is not a zero; = level is at the level
    assert split_pairs([0.05, 0.1, 0.2], zero=0.1, level=0.1) == (1, 0, 2)  # zero = level is allowed
    for zero, level in ((0.0, 0.1), (-1.0, 0.1), (0.2, 0.1)):
        with pytest.raises(ValueError, match="need 0 < zero <= level"):
            split_pairs([0.1], zero=zero, level=level)


def test_balanced_minimum_validates_the_teacher_and_the_masses():
    import torch

    from lmcnb.experiments.double_descent import balanced_minimum, balanced_minimum_sharpness
    from lmcnb.papers import teacher_student as ts

    W, a = balanced_minimum(torch.eye(2, 3, dtype=torch.int64))  # an integer teacher is converted
    assert W.dtype == a.dtype == torch.float64 and torch.equal(W, torch.eye(2, 3, dtype=torch.float64))
    assert balanced_minimum(torch.eye(1, 3))[0].shape == (1, 3)  # M = 1
    with pytest.raises(ValueError, match=r"\(M, d\) teacher, got shape \(0, 3\)"):
        balanced_minimum(torch.zeros(0, 3))
    T = ts.orthonormal_teacher(4, 2)
    with pytest.raises(ValueError, match="masses must be at least M=2 positive"):
        balanced_minimum(T, [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        balanced_minimum(T, [1.0 + 1e-10, 1.0])
    with pytest.raises(ValueError, match="sum to 1"):  # the sharpness builds its minimum from the masses
        balanced_minimum_sharpness(T, [0.5, 1.0])
    lam = balanced_minimum_sharpness(T)
    assert balanced_minimum_sharpness(T.to(torch.float32)) == pytest.approx(lam, rel=1e-9)
    assert abs(balanced_minimum_sharpness(T, n_iter=2, tol=1e-300) - lam) > 1e-6  # n_iter is used
    assert abs(balanced_minimum_sharpness(T, tol=0.5) - lam) > 1e-6  # tol is used


def test_stable_step_rejects_a_fraction_that_is_not_a_number():
    from lmcnb.experiments.double_descent import stable_trained_output_step
    from lmcnb.papers import teacher_student as ts

    with pytest.raises(ValueError, match="fraction must be a number"):
        stable_trained_output_step(ts.orthonormal_teacher(4, 2), "0.5")


def test_capped_sweeps_name_the_bad_field_and_keep_width_one():
    from lmcnb.experiments.double_descent import capped_barrier_sweeps
    with pytest.raises(ValueError, match="every upper width must be"):
        capped_barrier_sweeps(_tiny(), [3], 1, {0: 50})
    with pytest.raises(ValueError, match="every steps must be"):
        capped_barrier_sweeps(_tiny(), [3], 1, {8: 0})
    with pytest.raises(TypeError, match="got object"):
        capped_barrier_sweeps(object(), [3], 1, {8: 50})
    assert capped_barrier_sweeps(_tiny(), [1], 1, {1: 5}, progress=False)[0].widths == (1,)
