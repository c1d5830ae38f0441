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
