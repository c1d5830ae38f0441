"""Tests of lmcnb.fit: exact power laws, numpy's polyfit as an independent least-squares solver, bootstrap
coverage over synthetic replicates, and input validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb.fit import SlopeFit, bootstrap_slope, bootstrap_slopes, loglog_slope, power_law_fit

SETTINGS = settings(max_examples=30)  # example budget (cost); the profile decides the rest
XS = np.array([16.0, 32.0, 64.0, 128.0, 256.0, 512.0])


@SETTINGS
@given(a=st.floats(-3, 3), c=st.floats(1e-3, 1e3), k=st.integers(2, 8))
def test_exact_power_law_recovers_exponent_and_constant(a, c, k):
    x = np.geomspace(2.0, 2.0 ** (k + 1), k)
    slope, intercept = loglog_slope(x, c * x ** a)
    assert slope == pytest.approx(a, abs=1e-9)
    assert intercept == pytest.approx(math.log(c), abs=1e-9)


def test_loglog_slope_equals_polyfit_on_noisy_data_with_repeats():
    rng = np.random.default_rng(0)
    x = np.repeat([10.0, 20.0, 40.0, 80.0], 3)
    y = 5 * x ** -0.7 * np.exp(0.3 * rng.standard_normal(x.size))
    expected = np.polyfit(np.log(x), np.log(y), 1)
    np.testing.assert_allclose(loglog_slope(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(loglog_slope(list(x), torch.tensor(y)), expected, rtol=1e-12)


def test_bootstrap_of_exact_replicates_has_a_degenerate_interval():
    groups = [[3 * x ** -0.25] * 4 for x in XS]
    fit = bootstrap_slope(XS, groups, n_boot=200, seed=1)
    assert fit.slope == pytest.approx(-0.25, abs=1e-12)
    assert fit.ci_low == pytest.approx(-0.25, abs=1e-12) and fit.ci_high == pytest.approx(-0.25, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3), abs=1e-12) and fit.n_boot == 200


def test_center_is_applied_per_x_before_the_fit():
    rng = np.random.default_rng(2)
    groups = [x ** -0.5 * np.exp(0.3 * rng.standard_normal(5)) for x in XS]
    groups[2][0] *= 100  # an outlier moves the mean, not the median
    for center, reduce in (("mean", np.mean), ("median", np.median)):
        fit = bootstrap_slope(XS, groups, n_boot=50, seed=0, center=center)
        expected = np.polyfit(np.log(XS), np.log([reduce(g) for g in groups]), 1)
        np.testing.assert_allclose([fit.slope, fit.intercept], expected, rtol=1e-12)
        x_line, y_line = power_law_fit(XS, groups, num=7, center=center)
        np.testing.assert_allclose(x_line, np.geomspace(16, 512, 7), rtol=1e-12)
        np.testing.assert_allclose(y_line, np.exp(expected[1]) * x_line ** expected[0], rtol=1e-12)
        np.testing.assert_allclose(fit.line(x_line), y_line, rtol=1e-12)


def test_flat_and_grouped_inputs_agree_and_seed_controls_resampling():
    rng = np.random.default_rng(3)
    groups = [x ** 0.4 * np.exp(0.2 * rng.standard_normal(6)) for x in XS]
    x_flat, y_flat = np.repeat(XS, 6), np.concatenate(groups)
    order = rng.permutation(x_flat.size)
    grouped = bootstrap_slope(XS[::-1].copy(), groups[::-1], n_boot=300, seed=5)
    flat = bootstrap_slope(x_flat, y_flat, n_boot=300, seed=5)
    assert grouped == flat
    assert bootstrap_slope(torch.tensor(XS), torch.tensor(np.stack(groups)), n_boot=300, seed=5) == flat
    other = bootstrap_slope(x_flat, y_flat, n_boot=300, seed=6)
    assert other.slope == flat.slope and (other.ci_low, other.ci_high) != (flat.ci_low, flat.ci_high)
    shuffled = bootstrap_slope(x_flat[order], y_flat[order], n_boot=300, seed=5)  # pairs in any order
    assert shuffled.slope == pytest.approx(flat.slope, rel=1e-12)
    assert shuffled.intercept == pytest.approx(flat.intercept, rel=1e-12)


def test_bootstrap_ci_covers_true_slope_at_about_the_nominal_rate():
    # Calibration (400 replicates): coverage 0.935 for n=8 replicates per x, centre = mean, 95% CI.
    a, rng = -0.3, np.random.default_rng(4)
    fits = [bootstrap_slope(XS, [2 * x ** a * np.exp(0.2 * rng.standard_normal(8)) for x in XS],
                            n_boot=500, seed=r) for r in range(40)]
    coverage = np.mean([f.covers(a) for f in fits])
    assert coverage >= 0.8, coverage
    # The interval has the right width: its half-width / 1.96 tracks the spread of the slope across datasets.
    spread = np.std([f.slope for f in fits])
    half = np.mean([(f.ci_high - f.ci_low) / 2 / 1.96 for f in fits])
    assert 0.5 < half / spread < 2.0, (half, spread)


def test_str_is_rounded():
    text = str(SlopeFit(-0.19734, 0.4321, -0.2101, -0.18234, 1000))
    assert text == "slope -0.197 [95% CI -0.21, -0.182] intercept 0.432 (1000 bootstrap resamples)"


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"y\[2\] = -1.0 is not a finite positive"):
        loglog_slope([1, 2, 3], [1.0, 2.0, -1.0])
    with pytest.raises(ValueError, match=r"x\[0\] = 0.0"):
        loglog_slope([0.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"y\[1\] = nan"):
        loglog_slope([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"y\[1\]\[0\] = 0.0"):
        bootstrap_slope([1.0, 2.0], [[1.0, 1.1], [0.0, 1.0]])
    with pytest.raises(ValueError, match="same length"):
        loglog_slope([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="two distinct"):
        loglog_slope([2.0, 2.0], [1.0, 3.0])
    with pytest.raises(ValueError, match="two replicates"):
        bootstrap_slope([1.0, 2.0, 2.0], [1.0, 2.0, 2.1])
    with pytest.raises(ValueError, match="one group per x"):
        bootstrap_slope([1.0, 2.0, 3.0], [[1.0, 1.1], [2.0, 2.1]])
    with pytest.raises(ValueError, match="distinct"):
        bootstrap_slope([1.0, 1.0], [[1.0, 1.1], [2.0, 2.1]])
    with pytest.raises(ValueError, match="center"):
        bootstrap_slope([1.0, 2.0], [[1.0, 1.1], [2.0, 2.1]], center="mode")
    with pytest.raises(ValueError, match="ci"):
        bootstrap_slope([1.0, 2.0], [[1.0, 1.1], [2.0, 2.1]], ci=95)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_slope([1.0, 2.0], [[1.0, 1.1], [2.0, 2.1]], n_boot=0)
    with pytest.raises(ValueError, match="seed"):
        bootstrap_slope([1.0, 2.0], [[1.0, 1.1], [2.0, 2.1]], seed=-1)
    with pytest.raises(TypeError, match="real numbers"):
        loglog_slope(["1", "2"], [1.0, 2.0])
    with pytest.raises(TypeError, match="real numbers"):
        loglog_slope([True, False], [1.0, 2.0])
    with pytest.raises(TypeError, match="sequence"):
        loglog_slope(3.0, [1.0])
    with pytest.raises(ValueError, match="num"):
        power_law_fit([1.0, 2.0], [1.0, 2.0], num=1)


def test_bootstrap_slopes_fits_each_series_like_bootstrap_slope():
    rng = np.random.default_rng(7)
    ys = {p: [x ** (-2 / p) * np.exp(0.1 * rng.standard_normal(4)) for x in XS] for p in (2, 8)}
    fits = bootstrap_slopes(XS, ys, n_boot=100, seed=3)
    assert list(fits) == [2, 8]
    for p, fit in fits.items():
        assert fit == bootstrap_slope(XS, ys[p], n_boot=100, seed=3)
    assert fits[2].slope < fits[8].slope
    with pytest.raises(TypeError, match="mapping"):
        bootstrap_slopes(XS, [ys[2]])
    with pytest.raises(TypeError, match="mapping"):
        bootstrap_slopes(XS, {})


def test_zero_replicates_need_zero_ok_and_positive_centres():
    groups = [[x ** -1.0, 0.0, 2 * x ** -1.0] for x in XS]  # mean = x^-1 exactly
    with pytest.raises(ValueError, match="not a finite positive"):
        bootstrap_slope(XS, groups)
    fit = bootstrap_slope(XS, groups, n_boot=400, seed=0, zero_ok=True)
    assert fit.slope == pytest.approx(-1.0, abs=1e-12)
    # resamples of three replicates are all zero with probability 1/27 at some x: those are discarded
    assert 0 < 400 - fit.n_boot < 400 and fit.ci_low < -1.0 < fit.ci_high
    x_line, y_line = power_law_fit(XS, groups, num=3, zero_ok=True)
    np.testing.assert_allclose(y_line, x_line ** -1.0, rtol=1e-10)
    with pytest.raises(ValueError, match="not a finite non-negative"):
        bootstrap_slope(XS, [[-1.0, 1.0]] * len(XS), zero_ok=True)
    with pytest.raises(ValueError, match="is 0"):
        bootstrap_slope(XS, [[0.0, 0.0]] + [[1.0, 2.0]] * (len(XS) - 1), zero_ok=True)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_slope(XS, [[0.0, 0.0, 0.0, 1.0]] * len(XS), n_boot=200, zero_ok=True)
    with pytest.raises(TypeError, match="zero_ok"):
        bootstrap_slope(XS, groups, zero_ok=1)
    with pytest.raises(ValueError, match="positive"):
        power_law_fit(XS, [[0.0, 0.0]] * len(XS), zero_ok=True)


def test_bootstrap_spearman_matches_scipy_and_orders_intervals():
    from scipy.stats import spearmanr

    from lmcnb.fit import bootstrap_spearman

    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = x + 0.5 * rng.normal(size=40)
    r = bootstrap_spearman(x, y, n_boot=400, seed=3)
    assert abs(r.rho - spearmanr(x, y).statistic) < 1e-12
    assert r.ci_low <= r.rho <= r.ci_high and r.ci_low > 0 and r.n == 40
    assert bootstrap_spearman(x, y, n_boot=400, seed=3) == r
    assert bootstrap_spearman(x, y, n_boot=400, seed=4) != r
    wide = bootstrap_spearman(x, y, n_boot=400, seed=3, ci=0.99)
    assert wide.ci_low <= r.ci_low and wide.ci_high >= r.ci_high
    # monotone transform leaves rho unchanged; independent noise gives an interval around 0
    assert bootstrap_spearman(np.exp(x), y, n_boot=50).rho == r.rho
    null = bootstrap_spearman(x, rng.normal(size=40), n_boot=400)
    assert null.ci_low < 0 < null.ci_high
    assert "rho" in str(r) and "n = 40" in str(r)


def test_bootstrap_spearman_clusters_resample_whole_groups():
    from lmcnb.fit import bootstrap_spearman

    rng = np.random.default_rng(2)
    x = np.repeat(rng.normal(size=6), 3) + 0.01 * rng.normal(size=18)
    y = x + 0.3 * rng.normal(size=18)
    groups = np.repeat(np.arange(6), 3)
    flat = bootstrap_spearman(x, y, n_boot=300, seed=0)
    grouped = bootstrap_spearman(x, y, n_boot=300, seed=0, clusters=groups)
    assert grouped.rho == flat.rho and grouped.n == 6 and flat.n == 18
    assert grouped.ci_high - grouped.ci_low > flat.ci_high - flat.ci_low
    ragged = bootstrap_spearman(x, y, n_boot=100, clusters=np.r_[groups[:-1], 9])
    assert ragged.n == 7


def test_bootstrap_spearman_bad_inputs_raise():
    from lmcnb.fit import bootstrap_spearman

    for kwargs in ({"x": [1, 2], "y": [1, 2]}, {"x": [1, 2, 3], "y": [1, 2]},
                   {"x": [1, 1, 1], "y": [1, 2, 3]}, {"x": [1, np.nan, 3], "y": [1, 2, 3]},
                   {"x": [1, 2, 3], "y": [1, 2, 3], "n_boot": 0}, {"x": [1, 2, 3], "y": [1, 2, 3], "ci": 1},
                   {"x": [1, 2, 3], "y": [1, 2, 3], "seed": -1},
                   {"x": [1, 2, 3], "y": [1, 2, 3], "clusters": [0, 0, 0]},
                   {"x": [1, 2, 3], "y": [1, 2, 3], "clusters": [0, 1]}):
        with pytest.raises(ValueError):
            bootstrap_spearman(**kwargs)


def test_stratified_spearman_removes_a_confounder_between_strata():
    from lmcnb.fit import bootstrap_spearman, stratified_spearman

    # within each stratum y rises with x; between strata a confounder moves x up and y down
    strata = np.repeat(np.arange(8), 3)
    x = np.tile([1.0, 2.0, 3.0], 8) + 10 * strata
    y = np.tile([1.0, 2.0, 3.0], 8) - 10 * strata
    pooled = bootstrap_spearman(x, y, n_boot=200)
    within = stratified_spearman(x, y, strata, n_boot=200)
    assert pooled.rho < -0.8 and within.rho == 1 and within.ci_low == 1 and within.n == 8
    flipped = y.copy()
    flipped[:3] = flipped[:3][::-1]  # one stratum reversed: mean (7 - 1) / 8
    r = stratified_spearman(x, flipped, strata, n_boot=500, seed=1)
    assert abs(r.rho - 0.75) < 1e-12 and r.ci_low < 0.75 < r.ci_high + 1e-12
    assert stratified_spearman(x, flipped, strata, n_boot=500, seed=1) == r
    assert stratified_spearman(x, flipped, strata, n_boot=500, seed=1, ci=0.5).ci_low >= r.ci_low


def test_stratified_spearman_bad_inputs_raise():
    from lmcnb.fit import stratified_spearman

    good = dict(x=[1, 2, 1, 2], y=[1, 2, 2, 1], strata=[0, 0, 1, 1])
    for bad in ({"strata": [0, 0, 0, 0]}, {"strata": [0, 0, 1]}, {"x": [1, 1, 1, 2]},
                {"strata": [0, 1, 2, 2]}, {"x": [1, np.inf, 1, 2]}, {"n_boot": 0}, {"ci": 0},
                {"seed": -2}):
        with pytest.raises(ValueError):
            stratified_spearman(**{**good, **bad})


def test_bootstrap_mean_interval_and_bad_inputs():
    from lmcnb.fit import bootstrap_mean

    v = np.random.default_rng(0).normal(1.0, 0.5, size=30)
    r = bootstrap_mean(v, n_boot=500, seed=1)
    assert abs(r.rho - v.mean()) < 1e-12 and r.ci_low < v.mean() < r.ci_high and r.n == 30
    assert bootstrap_mean(v, n_boot=500, seed=1) == r and bootstrap_mean(v, n_boot=500, seed=2) != r
    assert bootstrap_mean(v, n_boot=500, seed=1, ci=0.5).ci_low > r.ci_low
    assert bootstrap_mean([2.0, 2.0]).ci_low == 2.0
    for bad in ({"values": [1.0]}, {"values": [1.0, np.nan]}, {"values": v, "n_boot": 0},
                {"values": v, "ci": 1.5}, {"values": v, "seed": -1}):
        with pytest.raises(ValueError):
            bootstrap_mean(**bad)


def test_stratified_spearman_drop_constant_leaves_out_tied_strata():
    from lmcnb.fit import stratified_spearman

    x, y, g = [1, 2, 3, 1, 2, 3, 1, 2, 3], [1, 2, 3, 3, 2, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        stratified_spearman(x, y, g)
    r = stratified_spearman(x, y, g, drop_constant=True, n_boot=50)
    assert r.n == 2 and r.rho == 0.0
    with pytest.raises(ValueError):
        stratified_spearman(x, y, [0, 0, 0, 1, 1, 2, 3, 3, 3], drop_constant=True)  # a one-point stratum


def test_binomial_interval_solves_the_wilson_equation_and_covers():
    from statistics import NormalDist

    from lmcnb.fit import binomial_interval

    for k, n, ci in [(0, 8, 0.95), (3, 8, 0.95), (8, 8, 0.95), (7, 16, 0.8), (50, 100, 0.99)]:
        lo, hi = binomial_interval(k, n, ci)
        z, phat = NormalDist().inv_cdf((1 + ci) / 2), k / n
        assert 0 <= lo <= phat <= hi <= 1
        for p in (lo, hi):  # Wilson bounds are the roots of (p̂ − p)² = z² p (1 − p) / n
            assert (phat - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, abs=1e-12)
    z = NormalDist().inv_cdf(0.975)
    assert binomial_interval(8, 8)[0] == pytest.approx(8 / (8 + z * z)) and binomial_interval(8, 8)[1] == 1.0
    assert binomial_interval(0, 8)[0] == 0.0
    assert binomial_interval(4, 8, 0.5)[1] < binomial_interval(4, 8, 0.95)[1]  # ci matters
    assert binomial_interval(4, 16)[1] < binomial_interval(2, 8)[1]  # trials matter at equal fraction
    rng = np.random.default_rng(0)  # coverage of p = 0.3 at n = 40 close to the nominal 95 %
    ks = rng.binomial(40, 0.3, size=2000)
    cover = np.mean([lo <= 0.3 <= hi for lo, hi in (binomial_interval(int(k), 40) for k in ks)])
    assert 0.92 <= cover <= 0.98
    for bad, err in (((9, 8), ValueError), ((-1, 8), ValueError), ((0, 0), ValueError), ((1.0, 8), TypeError),
                     ((True, 8), TypeError)):
        with pytest.raises(err):
            binomial_interval(*bad)
    with pytest.raises(ValueError, match="ci"):
        binomial_interval(1, 8, ci=1.0)
