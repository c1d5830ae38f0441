"""Tests of the asymptotic-range rule and the rate verdict of lmcnb.experiments.width_rates (chapter 3), and of
the TeacherStudent variants it measures (random unit-norm teacher, fixed total initial mass)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmcnb import fit
from lmcnb import teacher_student as ts
from lmcnb.experiments import width_rates as wr

F64 = torch.float64


def sweep(centres: dict[int, float], pairs: int = 6, noise: float = 0.0, seed: int = 0, end: float = 0.0):
    """Flat (widths, values, end_loss) with ``pairs`` replicates per width whose mean is exactly the centre."""
    rng = np.random.default_rng(seed)
    w, v = [], []
    for m, c in centres.items():
        z = np.exp(noise * rng.standard_normal(pairs))
        v.extend(c * z / z.mean())
        w.extend([m] * pairs)
    return np.array(w), np.array(v), np.full(len(w), end)


def test_range_starts_above_the_last_local_maximum():
    c = {4: 1e-3, 8: 5e-3, 16: 2e-3, 32: 3e-3, 64: 1e-3, 128: 5e-4, 256: 2.5e-4}
    r = wr.asymptotic_range(*sweep(c))
    assert r.peak == 32 and r.selected == (64, 128, 256) and r.unconverged == ()
    assert r.widths == tuple(c) and np.allclose(r.centres, list(c.values()))
    assert r.decades == pytest.approx(np.log10(4))
    # a monotone decay: the first width is the peak
    r = wr.asymptotic_range(*sweep({8: 4.0, 16: 2.0, 32: 1.0}))
    assert r.peak == 8 and r.selected == (16, 32)
    # rising to the end: no local maximum, empty range
    r = wr.asymptotic_range(*sweep({8: 1.0, 16: 2.0, 32: 3.0}))
    assert r.peak is None and r.selected == () and r.decades == 0.0
    # a tie is a plateau, not a maximum: the peak is the last strict descent's start
    r = wr.asymptotic_range(*sweep({8: 4.0, 16: 2.0, 32: 2.0, 64: 1.0}))
    assert r.peak == 32 and r.selected == (64,)


def test_range_is_cut_at_the_first_unconverged_width_and_loss_ratio_matters():
    w, v, _ = sweep({8: 4e-3, 16: 2e-3, 32: 1e-3, 64: 5e-4, 128: 2.5e-4})
    end = np.where(w == 64, 1e-5, 1e-9)  # 1e-5 > B/100 = 5e-6 at m = 64
    r = wr.asymptotic_range(w, v, end)
    assert r.selected == (16, 32) and r.unconverged == (64, 128)
    assert r.end_loss[r.widths.index(64)] == 1e-5
    r = wr.asymptotic_range(w, v, end, loss_ratio=0.05)  # 1e-5 <= 0.05 * 5e-4
    assert r.selected == (16, 32, 64, 128) and r.unconverged == ()


def test_range_center_mean_vs_median():
    # at m = 16 one outlier pair lifts the mean above m = 8's, the median stays below
    w = np.repeat([8, 16, 32, 64], 3)
    v = np.array([3, 3, 3, 1, 1, 20, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25], dtype=float)
    end = np.zeros_like(v)
    assert wr.asymptotic_range(w, v, end).peak == 16
    assert wr.asymptotic_range(w, v, end, center="median").peak == 8


def test_range_bad_input_raises():
    w, v, e = sweep({8: 1.0, 16: 0.5})
    with pytest.raises(ValueError, match="same length"):
        wr.asymptotic_range(w, v[:-1], e)
    with pytest.raises(ValueError, match="values\\[0\\]"):
        wr.asymptotic_range(w, np.r_[-1.0, v[1:]], e)
    with pytest.raises(ValueError, match="end_loss\\[1\\]"):
        wr.asymptotic_range(w, v, np.r_[0.0, np.nan, e[2:]])
    with pytest.raises(ValueError, match="widths must be positive integers"):
        wr.asymptotic_range(w + 0.5, v, e)
    with pytest.raises(ValueError, match="loss_ratio"):
        wr.asymptotic_range(w, v, e, loss_ratio=0.0)
    with pytest.raises(ValueError, match="center"):
        wr.asymptotic_range(w, v, e, center="mode")


def power_law(exponent: float, widths=(8, 16, 32, 64, 128, 256, 512), noise=0.3, seed=0, lift=None):
    c = {m: 0.1 * (m / 8) ** exponent for m in widths}
    if lift:
        c[widths[0]] *= 0.25  # a rise before the peak at widths[1]
    return sweep(c, pairs=8, noise=noise, seed=seed)


def test_rate_verdicts_holds_fails_not_established():
    r = wr.rate_measurement(*power_law(-1.0, lift=True))
    assert r.range.peak == 16 and r.range.selected[0] == 32 and r.verdict == "holds"
    assert r.fit.ci_high <= -0.5 and r.fit.slope == pytest.approx(-1.0, abs=1e-9)  # centres are exact
    assert wr.rate_measurement(*power_law(-0.1, noise=0.05)).verdict == "fails"
    # wide noise around -1/2: neither
    assert wr.rate_measurement(*power_law(-0.5, noise=0.5)).verdict == "not established"
    # the bound matters: the same data fail a claimed m^-1.5
    assert wr.rate_measurement(*power_law(-1.0, noise=0.05), bound=-1.5).verdict == "fails"
    # too few widths in the range: no fit
    few = wr.rate_measurement(*power_law(-1.0, widths=(8, 16, 32)))
    assert few.fit is None and few.verdict == "not established"
    assert wr.rate_measurement(*power_law(-1.0, widths=(8, 16, 32)), min_widths=2).verdict == "holds"
    assert "verdict: holds" in str(r) and "no fit" in str(few)


def test_rate_fit_is_bootstrap_slope_over_the_selected_rows_and_passes_its_options():
    w, v, e = power_law(-0.8, lift=True, seed=3)
    for kw in ({}, dict(n_boot=200, ci=0.8, seed=5), dict(center="median")):
        r = wr.rate_measurement(w, v, e, **kw)
        keep = np.isin(w, r.range.selected)
        ref = fit.bootstrap_slope(w[keep], v[keep], zero_ok=True, **{"n_boot": 1000, "ci": 0.95, "seed": 0, **kw})
        assert r.fit == ref
    assert wr.rate_measurement(w, v, e, seed=1).fit.ci_high != wr.rate_measurement(w, v, e, seed=2).fit.ci_high


def test_local_slopes_and_plateau():
    c = {8: 1e-2, 16: 2.5e-3, 32: 6.25e-4, 64: 5.5e-4, 128: 1.4e-4, 256: 7e-5}
    r = wr.rate_measurement(*sweep(c))
    ref = np.diff(np.log(list(c.values()))) / np.diff(np.log(list(c)))
    assert np.allclose(r.local_slopes, ref)
    m0, m1, s = r.flattest
    assert (m0, m1) == (32, 64) and s == pytest.approx(np.log(5.5 / 6.25) / np.log(2))
    assert wr.rate_measurement(*sweep({8: 1.0, 16: 2.0})).flattest is None


def test_table_rate_reads_the_table():
    cfg = ts.TeacherStudent(d=4, M=2)
    tab = cfg.manifold_sweep([4, 6, 8, 16, 32], 4, seed=1)
    r = wr.table_rate(tab, min_widths=2, n_boot=100)
    end = np.maximum(tab.loss_a.numpy(), tab.loss_b.numpy()).clip(0)
    ref = wr.rate_measurement(list(tab.widths), tab.perm.numpy(), end, min_widths=2, n_boot=100)
    assert r == ref
    rid = wr.table_rate(tab, "identity", min_widths=2, n_boot=100)
    assert rid.range.centres != r.range.centres
    with pytest.raises(TypeError, match="BarrierTable"):
        wr.table_rate(tab.to_frame())


def test_table_rate_transform_applies_to_barriers_and_end_losses():
    cfg = ts.TeacherStudent(d=4, M=2)
    tab = cfg.manifold_sweep([4, 6, 8, 16, 32], 4, seed=1)
    end = np.maximum(tab.loss_a.numpy(), tab.loss_b.numpy()).clip(0)
    r = wr.table_rate(tab, transform=np.sqrt, min_widths=2, n_boot=100, loss_ratio=0.1)
    ref = wr.rate_measurement(list(tab.widths), np.sqrt(tab.perm.numpy()), np.sqrt(end), min_widths=2, n_boot=100,
                              loss_ratio=0.1)
    assert r == ref
    plain = wr.table_rate(tab, min_widths=2, n_boot=100)
    assert r.range.centres != plain.range.centres
    if r.fit is not None and plain.fit is not None:
        assert r.fit.slope == pytest.approx(plain.fit.slope / 2, abs=0.35)  # sqrt halves a clean power law
    with pytest.raises(TypeError, match="transform"):
        wr.table_rate(tab, transform="sqrt")


def _measurement(verdict: str, ci_high: float | None) -> wr.RateMeasurement:
    import dataclasses

    w, v, e = sweep({8: 1e-2, 16: 5e-3, 32: 2.5e-3, 64: 1.25e-3})
    base = wr.rate_measurement(w, v, e, n_boot=50)
    f = None if ci_high is None else dataclasses.replace(base.fit, ci_high=ci_high)
    return dataclasses.replace(base, verdict=verdict, fit=f)


def test_upper_ends_rounds_and_marks_missing_fits():
    ms = {4: _measurement("holds", -0.61234), 8: _measurement("not established", None)}
    assert wr.upper_ends(ms) == {4: -0.612, 8: "no fit"}
    assert wr.upper_ends(ms, digits=2) == {4: -0.61, 8: "no fit"}
    with pytest.raises(ValueError, match="non-empty"):
        wr.upper_ends({})
    with pytest.raises(TypeError, match="RateMeasurement"):
        wr.upper_ends({4: 0.5})
    with pytest.raises(ValueError, match="digits"):
        wr.upper_ends(ms, digits=0)


def test_joint_verdict_needs_every_key_to_hold_and_two_keys():
    h, f, n = (_measurement(v, -0.6) for v in ("holds", "fails", "not established"))
    assert wr.joint_verdict({4: h, 8: h}) == "consistent"
    assert wr.joint_verdict({4: h}) == "inconclusive"  # one d cannot test "at every d"
    assert wr.joint_verdict({4: h, 8: n}) == "inconclusive"
    assert wr.joint_verdict({4: h, 8: f}) == "differs from paper"
    assert wr.joint_verdict({4: f}) == "differs from paper"
    with pytest.raises(ValueError, match="non-empty"):
        wr.joint_verdict({})


def test_random_teacher_is_unit_norm_not_orthogonal_and_used_by_the_loss():
    cfg = ts.TeacherStudent(d=6, M=3, teacher_kind="random", teacher_seed=4)
    T = cfg.teacher()
    assert T.dtype == F64 and T.shape == (3, 6)
    assert torch.allclose(T.norm(dim=1), torch.ones(3, dtype=F64))
    assert (T @ T.T - torch.eye(3, dtype=F64)).abs().max() > 1e-2
    assert torch.equal(T, ts.TeacherStudent(d=6, M=3, teacher_kind="random", teacher_seed=4).teacher())
    assert not torch.equal(T, ts.TeacherStudent(d=6, M=3, teacher_kind="random", teacher_seed=5).teacher())
    # training and the barrier use this teacher: the loss of the trained student is the loss against T
    short = ts.TeacherStudent(d=6, M=3, teacher_kind="random", teacher_seed=4, steps=200)
    sol = short.train(4, [0])
    assert float(sol.final_loss[0]) == pytest.approx(float(ts.population_loss(sol.W[0], T)), rel=1e-9)
    assert float(ts.population_loss(sol.W[0], ts.TeacherStudent(d=6, M=3).teacher())) != pytest.approx(
        float(sol.final_loss[0]), rel=1e-3)
    # the teacher itself is a global minimum of the random-teacher configuration (zero barrier with itself)
    assert float(cfg.barriers(T, T).identity) < 1e-12
    with pytest.raises(ValueError, match="teacher_kind"):
        ts.TeacherStudent(teacher_kind="gaussian")
    with pytest.raises(ValueError, match="teacher_seed"):
        ts.TeacherStudent(teacher_seed=-1)


def test_init_mass_fixes_the_total_initial_mass():
    cfg = ts.TeacherStudent(d=8, M=4, init_mass=2.0)
    for m in (8, 64, 512):
        W = cfg.init(m, 3)[0]
        assert torch.equal(W, ts.TeacherStudent(d=8, M=4, init_scale=2.0 / m).init(m, 3)[0])
        assert cfg.init_scale_at(m) == 2.0 / m
    mass = [float(cfg.init(m, 0)[0].norm(dim=1).sum()) for m in (64, 512)]
    assert mass == pytest.approx([2.0, 2.0], rel=0.1)
    assert ts.TeacherStudent().init_scale_at(64) == 0.1
    with pytest.raises(ValueError, match="init_mass"):
        ts.TeacherStudent(init_mass=0.0)


def test_repr_shows_variant_fields_only_when_set():
    assert "teacher_kind" not in repr(ts.TeacherStudent()) and "init_mass" not in repr(ts.TeacherStudent())
    r = repr(ts.TeacherStudent(teacher_kind="random", teacher_seed=3, init_mass=1.6))
    assert "teacher_kind='random'" in r and "teacher_seed=3" in r and "init_mass=1.6" in r
