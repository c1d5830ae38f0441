"""Tests of lmcnb.rates: the OT exponent, the i.i.d. sweep against brute force over permutations,
the curse of dimensionality in the i.i.d. sweep, and the SGD barrier sweep of the teacher–student model."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import rates
from lmcnb import teacher_student as ts
from lmcnb.fit import bootstrap_slopes

SETTINGS = settings(max_examples=25)  # example budget (cost); the profile decides the rest
F64 = torch.float64


def brute_force_sq_distance(X: torch.Tensor, Y: torch.Tensor) -> float:
    """min over all permutations of the mean squared distance (tiny m only)."""
    m = X.shape[0]
    return min(float(((X - Y[list(p)]) ** 2).sum(1).mean()) for p in itertools.permutations(range(m)))


def test_ot_rate_exponent_values():
    assert rates.ot_rate_exponent(1) == -1.0 and rates.ot_rate_exponent(2) == -1.0
    assert rates.ot_rate_exponent(3) == pytest.approx(-2 / 3)
    assert rates.ot_rate_exponent(4) == -0.5 and rates.ot_rate_exponent(32) == -1 / 16
    with pytest.raises(ValueError, match="p must be >= 1"):
        rates.ot_rate_exponent(0)
    with pytest.raises(TypeError, match="p must be an int"):
        rates.ot_rate_exponent(2.0)


@SETTINGS
@given(m=st.integers(1, 6), p=st.integers(1, 4), seed=st.integers(0, 2 ** 20),
       distribution=st.sampled_from(rates.DISTRIBUTIONS))
def test_iid_sweep_is_the_squared_matched_distance_of_its_clouds(m, p, seed, distribution):
    """Each value is min over permutations of the mean squared distance between the two clouds drawn for it."""
    out = rates.iid_matching_sweep([m], [p], n_pairs=2, seed=seed, distribution=distribution)
    draw = torch.randn if distribution == "gaussian" else torch.rand
    g = torch.Generator().manual_seed(1_000_003 * m + 7_919 * p + seed)
    for k in range(2):
        X, Y = draw(m, p, generator=g, dtype=F64), draw(m, p, generator=g, dtype=F64)
        assert float(out[p][0, k]) == pytest.approx(brute_force_sq_distance(X, Y), rel=1e-10, abs=1e-14)


def test_iid_sweep_shows_the_curse_of_dimensionality():
    widths = [32, 64, 128, 256]
    out = rates.iid_matching_sweep(widths, [2, 16], n_pairs=4, seed=0)
    assert set(out) == {2, 16} and out[2].shape == (4, 4)
    fits = bootstrap_slopes(widths, out, n_boot=200)
    assert fits[2].slope < -0.55  # ~ -0.7 (log-corrected m^-1)
    assert -0.25 < fits[16].slope < -0.08  # ~ -2/16, pre-asymptotically a little steeper
    # each cell is reproducible on its own
    again = rates.iid_matching_sweep([64], [16], n_pairs=4, seed=0)
    assert torch.equal(again[16][0], out[16][1])
    other = rates.iid_matching_sweep([64], [16], n_pairs=4, seed=1)
    assert not torch.equal(other[16][0], out[16][1])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="distribution"):
        rates.iid_matching_sweep([8], [2], 2, distribution="cauchy")
    with pytest.raises(TypeError, match="widths"):
        rates.iid_matching_sweep(64, [2], 2)
    with pytest.raises(ValueError, match="dims\\[1\\] must be >= 1"):
        rates.iid_matching_sweep([64], [2, 0], 2)
    with pytest.raises(ValueError, match="n_pairs"):
        rates.iid_matching_sweep([64], [2], 0)


def test_sgd_barrier_sweep_reaches_the_manifold_and_matching_removes_the_barrier():
    cfg = ts.TeacherStudent(d=6, M=2)
    schedule = ts.SGD(batch_size=32, epochs=60, tol=1e-12)
    tab = rates.sgd_barrier_sweep(cfg, [8, 16], 2, schedule, n_samples=1024)
    assert tab.widths == (8, 8, 16, 16) and tab.seeds_a == (0, 2, 0, 2) and tab.seeds_b == (1, 3, 1, 3)
    assert float(torch.maximum(tab.loss_a, tab.loss_b).max()) < 1e-5  # population loss of the SGD solutions
    assert float(tab.identity.min()) > 5e-3  # no permutation: a barrier (about 1e-2 here)
    assert bool((tab.perm <= tab.identity).all()) and float(tab.perm.max()) < 1e-2 * float(tab.identity.min())
    # same initialisation as exact GD, and reproducible
    again = rates.sgd_barrier_sweep(cfg, [8], 2, schedule, n_samples=1024)
    assert torch.equal(again.perm, tab.perm[:2])
    with pytest.raises(ValueError, match="output='fixed'"):
        rates.sgd_barrier_sweep(ts.TeacherStudent(d=6, M=2, output="trained"), [8], 1,
                                ts.SGD(batch_size=8, epochs=1), n_samples=64)
    with pytest.raises(TypeError, match="TeacherStudent"):
        rates.sgd_barrier_sweep(object(), [8], 1, ts.SGD(batch_size=8, epochs=1), n_samples=64)


def test_sgd_barrier_sweep_with_zero_epochs_keeps_the_initialisation():
    cfg = ts.TeacherStudent(d=5, M=2)
    tab = rates.sgd_barrier_sweep(cfg, [4], 1, ts.SGD(batch_size=4, epochs=0), n_samples=16)
    W0a, W0b = cfg.init(4, 0)[0], cfg.init(4, 1)[0]
    T = cfg.teacher()
    assert float(tab.loss_a[0]) == pytest.approx(float(ts.population_loss(W0a, T)), rel=1e-12)
    assert float(tab.loss_b[0]) == pytest.approx(float(ts.population_loss(W0b, T)), rel=1e-12)
    same = rates.sgd_barrier_sweep(cfg, [4], 1, ts.SGD(batch_size=4, epochs=0), n_samples=16, device="cpu")
    assert torch.equal(same.loss_a, tab.loss_a) and torch.equal(same.perm, tab.perm)


def test_sgd_barrier_sweep_takes_an_sgd_schedule():
    import re

    cfg = ts.TeacherStudent(d=5, M=2)
    for key in ("batch_size", "epochs", "c", "tol", "threads"):
        with pytest.raises(TypeError, match=re.escape(f"`{key}=`: it moved to `schedule=ts.SGD({key}=…)`")):
            rates.sgd_barrier_sweep(cfg, [4], 1, n_samples=16, **{key: 1})
    with pytest.raises(TypeError, match="schedule must be a teacher_student.SGD"):
        rates.sgd_barrier_sweep(cfg, [4], 1, ts.GD(steps=1), n_samples=16)
    with pytest.raises(ValueError, match="train_output=False"):
        rates.sgd_barrier_sweep(cfg, [4], 1, ts.SGD(batch_size=4, epochs=1, train_output=True), n_samples=16)
    slow = rates.sgd_barrier_sweep(cfg, [4], 1, ts.SGD(c=0.5, batch_size=4, epochs=2), n_samples=16)
    fast = rates.sgd_barrier_sweep(cfg, [4], 1, ts.SGD(c=1.0, batch_size=4, epochs=2), n_samples=16)
    assert not torch.equal(slow.loss_a, fast.loss_a)  # the schedule's c is the step constant
