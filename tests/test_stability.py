"""Tests of lmcnb.stability: the linear-stability prediction against an explicit finite-difference Hessian, the
k-live sharpness law, sweep bookkeeping against separate runs, the transition finder on hand-made sweeps, weight
matching against brute force, and the barrier/Hall bookkeeping on exact minima."""
from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hst

from lmcnb import stability as st
from lmcnb import teacher_student as ts

F64 = torch.float64


def _fd_hessian_top(W: torch.Tensor, T: torch.Tensor, h: float = 1e-5) -> float:
    """Largest eigenvalue of the central finite-difference Hessian of the closed-form gradient (independent of
    the double-backward power iteration)."""
    n = W.numel()
    H = torch.zeros(n, n, dtype=F64)
    for i in range(n):
        E = torch.zeros(n, dtype=F64)
        E[i] = h
        gp = ts.population_grad(W + E.view_as(W), T).reshape(-1)
        gm = ts.population_grad(W - E.view_as(W), T).reshape(-1)
        H[:, i] = (gp - gm) / (2 * h)
    return float(torch.linalg.eigvalsh(0.5 * (H + H.T)).max())


def test_critical_c_formula_and_validation():
    assert st.critical_c(24.0, 32) == pytest.approx(64 / 24)
    with pytest.raises(ValueError):
        st.critical_c(0.0, 32)
    with pytest.raises(ValueError):
        st.critical_c(1.0, 0)
    with pytest.raises(TypeError):
        st.critical_c("1", 3)


def test_minimum_with_live_is_an_exact_minimum():
    T = ts.orthonormal_teacher(6, 3)
    for k, dead in [(1, 0), (2, 3), (4, 1)]:
        W = st.minimum_with_live(k, 3, 6, dead=dead)
        assert W.shape == (3 * k + dead, 6)
        assert float(ts.population_loss(W, T)) < 1e-14
        assert int((W.norm(dim=1) == 0).sum()) == dead
    W = st.minimum_with_live(2, 3, 6, mass=[0.9, 0.1])
    assert float(ts.population_loss(W, T)) < 1e-14
    with pytest.raises(ValueError, match="sum to 1"):
        st.minimum_with_live(2, 3, 6, mass=[0.5, 0.6])
    with pytest.raises(ValueError, match="M <= d"):
        st.minimum_with_live(1, 5, 4)


def test_sharpness_matches_finite_difference_hessian_and_is_linear_in_k():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    lam = st.sharpness_vs_live([1, 2, 3], M, d)
    for k, value in zip([1, 2, 3], lam.tolist()):
        assert value == pytest.approx(_fd_hessian_top(st.minimum_with_live(k, M, d), T), rel=1e-4)
    assert torch.allclose(lam, lam[0] * torch.tensor([1.0, 2.0, 3.0], dtype=F64), rtol=1e-6)


def test_sharpness_depends_on_live_count_not_masses():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    equal = ts.sharpness_population(st.minimum_with_live(2, M, d), T, n_iter=500, tol=1e-8).eigenvalue
    skewed = ts.sharpness_population(st.minimum_with_live(2, M, d, mass=[0.95, 0.05]), T, n_iter=500,
                                     tol=1e-8).eigenvalue
    assert skewed == pytest.approx(equal, rel=1e-6)


def test_predict_critical_c_rejects_sparse_and_uses_width():
    T = ts.orthonormal_teacher(4, 2)
    with pytest.raises(ValueError, match="dead"):
        st.predict_critical_c(st.minimum_with_live(2, 2, 4, dead=1), T)
    W = st.minimum_with_live(3, 2, 4)
    lam, c = st.predict_critical_c(W, T)
    assert c == pytest.approx(2 * 6 / lam)
    with pytest.raises(TypeError):
        st.predict_critical_c(W.float(), T)


def test_gd_sweep_matches_separate_runs_and_shares_the_init():
    T = ts.orthonormal_teacher(4, 2)
    sw = st.gd_lr_sweep(T, 6, [1.0, 2.0], [3, 5], ts.GD(steps=200, tol=0.0))
    assert sw.W.shape == (2, 2, 6, 4) and sw.live.shape == (2, 2)
    for i, c in enumerate([1.0, 2.0]):
        for j, s in enumerate([3, 5]):
            W0 = ts.small_init(1, 6, 4, generator=torch.Generator().manual_seed(s))
            ref = ts.gd_population(W0, T, ts.GD(c=c, steps=200, tol=0.0))
            assert torch.allclose(sw.W[i, j], ref.W[0], atol=1e-12)
    with pytest.raises(ValueError, match="increasing"):
        st.gd_lr_sweep(T, 6, [2.0, 1.0], [0], ts.GD(steps=1))
    with pytest.raises(ValueError, match="distinct"):
        st.gd_lr_sweep(T, 6, [1.0], [0, 0], ts.GD(steps=1))


def test_sweep_marks_divergence_and_counts_live_neurons():
    T = ts.orthonormal_teacher(4, 2)
    sw = st.gd_lr_sweep(T, 8, [1.0, 200.0], [0, 1], ts.GD(steps=300, tol=0.0))
    assert bool(sw.diverged[1].all()) and not bool(sw.diverged[0].any())
    assert (sw.live[1] == 8).all() and torch.isnan(sw.pr[1]).all()
    assert bool(sw.dense[0].all()) and not bool(sw.sparse.any())
    assert len(sw.table()) == 3


def _fake_sweep(live: list[list[int]], div: list[list[bool]], m: int = 4) -> st.LRSweep:
    C, S = len(live), len(live[0])
    return st.LRSweep(cs=torch.arange(1, C + 1, dtype=F64), seeds=tuple(range(S)), m=m,
                      W=torch.zeros(C, S, m, 2, dtype=F64), live=torch.tensor(live),
                      pr=torch.ones(C, S, dtype=F64), diverged=torch.tensor(div), final_loss=torch.zeros(C, S))


def test_observed_transition_on_hand_made_sweeps():
    f = [False, False]
    sw = _fake_sweep([[4, 4], [4, 4], [3, 3], [2, 4], [4, 4]], [f, f, f, [False, True], [True, True]])
    tr = st.observed_transition(sw)
    assert (tr.last_dense, tr.first_nondense, tr.first_sparse, tr.first_diverged) == (2.0, 3.0, 3.0, 5.0)
    assert tr.midpoint == 2.5
    dense = st.observed_transition(_fake_sweep([[4, 4]] * 3, [f] * 3))
    assert math.isnan(dense.first_nondense) and math.isnan(dense.midpoint) and math.isnan(dense.first_sparse)
    # straight to divergence: non-dense but never sparse
    tr = st.observed_transition(_fake_sweep([[4, 4], [4, 4]], [f, [True, True]]))
    assert tr.first_nondense == 2.0 and math.isnan(tr.first_sparse) and tr.first_diverged == 2.0
    with pytest.raises(TypeError):
        st.observed_transition("sweep")


@given(hst.integers(2, 5), hst.integers(0, 10_000))
def test_weight_match_rows_is_optimal(m, seed):
    g = torch.Generator().manual_seed(seed)
    W1, W2 = torch.randn(m, 3, generator=g, dtype=F64), torch.randn(m, 3, generator=g, dtype=F64)
    p = st.weight_match_rows(W1, W2)
    cost = lambda q: float(((W1 - W2[list(q)]) ** 2).sum())  # noqa: E731
    assert cost(p.tolist()) == pytest.approx(min(cost(q) for q in itertools.permutations(range(m))), abs=1e-12)
    # a planted permutation is recovered exactly
    perm = torch.randperm(m, generator=g)
    assert torch.equal(W1[st.weight_match_rows(W1[perm], W1)], W1[perm])


def test_pair_barriers_and_weight_matchings_blind_spot():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    e = torch.eye(d, dtype=F64)
    # W1: two type-0 neurons and a dead one; W2: one type-0, one type-1 ... both exact minima
    W1 = torch.stack([0.5 * e[0], 0.5 * e[0], e[1], 0 * e[0]])
    W2 = torch.stack([e[0], 0.5 * e[1], 0 * e[0], 0.5 * e[1]])
    pb = st.pair_barriers(W1, W2, T)
    assert pb.hall and pb.functional < 1e-14 and pb.perm == min(pb.weight, pb.functional)
    assert pb.identity > 1e-3
    # dense minima with different type counts: no permutation connects them
    D1 = torch.stack([0.5 * e[0], 0.5 * e[0], e[1]])
    D2 = torch.stack([e[0], 0.5 * e[1], 0.5 * e[1]])
    pd = st.pair_barriers(D1, D2, T)
    assert not pd.hall and pd.functional > 1e-4 and pd.weight > 1e-4
    # weight matching's blind spot: with orthogonal teacher directions, pairing two small neurons of different
    # types (and a zero with a zero) costs exactly what the two compatible pairings cost, but leaves a barrier
    B1 = torch.stack([0.9 * e[0], 0.1 * e[0], e[1], 0 * e[0]])
    B2 = torch.stack([e[0], 0 * e[0], 0.9 * e[1], 0.1 * e[1]])
    good, bad = [0, 1, 2, 3], [0, 3, 2, 1]
    wm_cost = lambda q: float(((B1 - B2[q]) ** 2).sum())  # noqa: E731
    assert wm_cost(good) == pytest.approx(wm_cost(bad), abs=1e-15)
    assert float(ts.barrier_linear(B1, B2[good], T)) < 1e-14 < 1e-5 < float(ts.barrier_linear(B1, B2[bad], T))
    pw = st.pair_barriers(B1, B2, T)
    assert pw.hall and pw.functional < 1e-14
    with pytest.raises(ValueError, match="aligned with no teacher"):
        st.pair_barriers(torch.ones(4, d, dtype=F64), W2, T)


def test_sweep_pair_barriers_skips_diverged_pairs():
    T = ts.orthonormal_teacher(4, 2)
    sw = st.gd_lr_sweep(T, 3, [1.0, 200.0], [0, 1], ts.GD(steps=3000, tol=1e-10, check_every=100))
    out = st.sweep_pair_barriers(sw, T)
    assert list(out) == [1.0, 200.0] and out[200.0] == [] and len(out[1.0]) == 1
    with pytest.raises(ValueError, match="even"):
        st.sweep_pair_barriers(st.gd_lr_sweep(T, 3, [1.0], [0], ts.GD(steps=1)), T)


def test_manifold_pair_barriers():
    out = st.manifold_pair_barriers(m=8, M=2, d=3, dead_prob=0.5, pairs=4, seed=0)
    assert len(out) == 4 and all(isinstance(p, ts.PairBarriers) for p in out)
    # the Hall criterion is exact on the manifold: it agrees with "functional barrier = 0"
    assert all(p.hall == (p.functional < 1e-12) for p in out)
    dense = st.manifold_pair_barriers(m=8, M=2, d=3, dead_prob=0.0, pairs=4, seed=0)
    assert all(p.hall == (p.functional < 1e-12) for p in dense)
    with pytest.raises(ValueError):
        st.manifold_pair_barriers(m=8, M=2, d=3, dead_prob=1.0, pairs=1, seed=0)


def test_solution_sharpness_ignores_almost_dead_rows_and_diverged_runs():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    W = st.minimum_with_live(2, M, d, dead=1)
    W[-1] = 1e-9 * torch.tensor([0.3, -0.5, 0.7, 0.1], dtype=F64)  # almost dead, misaligned
    sw = st.LRSweep(cs=torch.tensor([1.0, 2.0], dtype=F64), seeds=(0,), m=5,
                    W=torch.stack([W, torch.full_like(W, float("nan"))])[:, None], live=torch.tensor([[4], [5]]),
                    pr=torch.ones(2, 1, dtype=F64), diverged=torch.tensor([[False], [True]]),
                    final_loss=torch.zeros(2, 1, dtype=F64))
    sh = st.solution_sharpness(sw, T)
    ref = ts.sharpness_population(st.minimum_with_live(2, M, d), T, n_iter=500, tol=1e-6).eigenvalue
    assert sh[0].item() == pytest.approx(ref, rel=1e-6) and math.isnan(sh[1].item())
    # without the dead-row threshold the almost-dead row changes the top eigenvalue
    raw = ts.sharpness_population(W, T, n_iter=500, tol=1e-6).eigenvalue
    assert raw > 1.05 * ref
    with pytest.raises(ValueError, match="seed_index"):
        st.solution_sharpness(sw, T, seed_index=1)


# ------------------------------------------------------------------ configuration objects of the sweeps

def test_sgd_lr_sweep_matches_separate_runs_with_the_schedule():
    from lmcnb.data import teacher_student_data

    T = ts.orthonormal_teacher(4, 2)
    samples = teacher_student_data(T, 64, torch.Generator().manual_seed(5))
    schedule = ts.SGD(batch_size=8, epochs=3, tol=1e-10)
    sw = st.sgd_lr_sweep(T, 5, [0.5, 1.0], [2, 3], samples, schedule, data_seed=7)
    assert sw.W.shape == (2, 2, 5, 4)
    W0 = torch.cat([ts.small_init(1, 5, 4, generator=torch.Generator().manual_seed(s)) for s in (2, 3)] * 2)
    ref = ts.SGD(c=torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=F64), batch_size=8, epochs=3, tol=1e-10).run(
        samples, W0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sw.W.reshape(4, 5, 4), ref.W)
    other = st.sgd_lr_sweep(T, 5, [0.5, 1.0], [2, 3], samples, schedule, data_seed=8)
    assert not torch.equal(other.W, sw.W)  # data_seed draws the sample orders
    with pytest.raises(TypeError, match="teacher_student.SGD"):
        st.sgd_lr_sweep(T, 5, [0.5], [2], samples, ts.GD(steps=1))


def test_gd_lr_sweep_replaces_the_schedules_c_and_checks_its_type():
    T = ts.orthonormal_teacher(4, 2)
    a = st.gd_lr_sweep(T, 4, [1.0], [0], ts.GD(c=3.0, steps=20, tol=0.0))
    b = st.gd_lr_sweep(T, 4, [1.0], [0], ts.GD(steps=20, tol=0.0))
    assert torch.equal(a.W, b.W)
    with pytest.raises(TypeError, match="teacher_student.GD"):
        st.gd_lr_sweep(T, 4, [1.0], [0], ts.SGD(batch_size=1, epochs=1))
    scaled = st.gd_lr_sweep(T, 4, [1.0], [0], ts.GD(steps=20, tol=0.0), init_scale=0.5)
    assert not torch.equal(scaled.W, b.W)


@pytest.mark.parametrize("fn, args, key, home", [
    ("gd_lr_sweep", 4, "steps", "ts.GD(steps=…)"),
    ("gd_lr_sweep", 4, "tol", "ts.GD(tol=…)"),
    ("gd_lr_sweep", 4, "check_every", "ts.GD(check_every=…)"),
    ("gd_lr_sweep", 4, "threads", "ts.GD(threads=…)"),
    ("sgd_lr_sweep", 4, "batch_size", "ts.SGD(batch_size=…)"),
    ("sgd_lr_sweep", 4, "epochs", "ts.SGD(epochs=…)"),
    ("sgd_lr_sweep", 4, "tol", "ts.SGD(tol=…)"),
    ("sgd_lr_sweep", 4, "threads", "ts.SGD(threads=…)"),
    ("sgd_lr_sweep", 4, "X", "samples=lmcnb.data.Split(X, y)"),
    ("sgd_lr_sweep", 4, "y", "samples=lmcnb.data.Split(X, y)"),
    ("mlp_lr_sweep", 0, "x", "train=lmcnb.data.Split(x, y)"),
    ("mlp_lr_sweep", 0, "y", "train=lmcnb.data.Split(x, y)"),
    ("mlp_lr_sweep", 0, "x_eval", "evaluation=lmcnb.data.Split(x_eval, y_eval)"),
    ("mlp_lr_sweep", 0, "y_eval", "evaluation=lmcnb.data.Split(x_eval, y_eval)"),
])
def test_sweeps_removed_keywords_name_their_new_home(fn, args, key, home):
    import re

    with pytest.raises(TypeError, match=f"no longer takes `{key}=`: it moved to `[^`]*{re.escape(home)}"):
        getattr(st, fn)(*([None] * args), **{key: 1})


def test_pair_barrier_is_the_teacher_student_type_and_naive_is_identity():
    T = ts.orthonormal_teacher(4, 2)
    W = st.minimum_with_live(1, 2, 4, dead=1)
    pb = st.pair_barriers(W, W.flip(0), T)
    assert isinstance(pb, ts.PairBarriers) and pb.hall.dtype == torch.bool and pb.hall.ndim == 0
    ref = ts.pair_barriers(W, W.flip(0), T)
    assert torch.equal(pb.identity, ref.identity) and torch.equal(pb.perm, ref.perm)
    assert float(pb.identity) == float(ts.barrier_linear(W, W.flip(0), T))
    with pytest.raises(AttributeError, match="moved to lmcnb.papers.teacher_student.PairBarriers"):
        st.PairBarrier
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        st.no_such_name


def test_mlp_lr_sweep_on_splits_reports_identity_and_weight_barriers():
    from lmcnb import train
    from lmcnb.data import Split

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()
    tr, ev = Split(x, y), Split(x[:32], y[:32])
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.0)
    lam = torch.linspace(0, 1, 5)
    res = st.mlp_lr_sweep(tr, 8, [0.05, 0.5], 1, cfg, ev, lam)
    assert res.identity.shape == (2, 1) and res.weight.shape == (2, 1) and res.live.shape == (2, 2)
    assert bool((res.weight <= res.identity + 1e-6).all())  # weight matching can only lower the barrier here
    assert res.random.shape == (2, 1) and not torch.equal(res.random, res.identity)  # a permutation was applied
    assert not torch.equal(res.random, res.weight)
    again = st.mlp_lr_sweep(tr, 8, [0.05, 0.5], 1, cfg, ev, lam, seed=3)
    assert not torch.equal(again.identity, res.identity)  # seed changes the runs
    with pytest.raises(AttributeError, match="MLPSweep.identity"):
        res.naive
    with pytest.raises(TypeError, match="train must be an lmcnb.data.Split"):
        st.mlp_lr_sweep(x, 8, [0.05], 1, cfg, ev, lam)
    with pytest.raises(TypeError, match="evaluation must be an lmcnb.data.Split"):
        st.mlp_lr_sweep(tr, 8, [0.05], 1, cfg, x, lam)


# ------------------------------------------------------------------ chapter 4: depth of the transition, controls

def _loss_sweep(live: list[list[int]], loss: list[list[float]], m: int = 10) -> st.LRSweep:
    C, S = len(live), len(live[0])
    return st.LRSweep(cs=torch.arange(1, C + 1, dtype=F64), seeds=tuple(range(S)), m=m,
                      W=torch.zeros(C, S, m, 2, dtype=F64), live=torch.tensor(live),
                      pr=torch.ones(C, S, dtype=F64), diverged=torch.tensor([[x > 1e3 for x in r] for r in loss]),
                      final_loss=torch.tensor(loss, dtype=F64))


def test_converged_needs_a_small_final_loss_not_just_no_divergence():
    sw = _loss_sweep([[10, 10], [9, 10]], [[1e-11, 1e-4], [1e-11, 1e9]])
    assert sw.converged().tolist() == [[True, False], [True, False]]
    assert sw.converged(tol=1e-3).tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError):
        sw.converged(tol=-1.0)


def test_live_fraction_crossing_interpolates_the_median_of_converged_runs():
    ok = 1e-11
    # median live fractions 1.0, 0.95, 0.8 at c = 1, 2, 3: the level 0.9 is crossed at c = 2 + 1/3
    sw = _loss_sweep([[20, 20, 20], [19, 19, 20], [16, 16, 14]], [[ok] * 3] * 3, m=20)
    assert st.live_fraction_crossing(sw) == pytest.approx(2 + 1 / 3)
    assert st.live_fraction_crossing(sw, level=0.95) == pytest.approx(2.0)  # level changes the crossing
    assert math.isnan(st.live_fraction_crossing(sw, level=0.5))  # never reached
    # an unconverged run (R = 1e-4) is not a solution: with tol = 1e-8 it is left out of the median
    sw2 = _loss_sweep([[10, 10, 10], [9, 10, 10], [10, 10, 7]], [[ok] * 3, [ok] * 3, [1e-4, 1e-4, ok]])
    assert st.live_fraction_crossing(sw2) == pytest.approx(2 + 0.1 / 0.3)
    assert math.isnan(st.live_fraction_crossing(sw2, tol=1e-3))  # counted, the median stays at 1.0
    # already below the level at the first converged c
    assert math.isnan(st.live_fraction_crossing(_loss_sweep([[5, 5], [4, 4]], [[ok] * 2] * 2)))
    with pytest.raises(ValueError):
        st.live_fraction_crossing(sw, level=1.0)
    with pytest.raises(TypeError):
        st.live_fraction_crossing("sweep")


def test_hall_shuffled_types_scrambles_live_types_and_keeps_dead_ones():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    W = st.minimum_with_live(3, M, d)  # dense, three neurons per type
    assert ts.hall_lmc_criterion(W, W.flip(0), T)  # identical type counts: connected
    shuffled = [st.hall_shuffled_types(W, W.flip(0), T, torch.Generator().manual_seed(s)) for s in range(20)]
    assert not all(shuffled) and any(shuffled)  # random types break the criterion on most draws
    # a pair with enough dead neurons stays connected whatever the types
    S = st.minimum_with_live(1, M, d, dead=4)
    assert all(st.hall_shuffled_types(S, S.flip(0), T, torch.Generator().manual_seed(s)) for s in range(10))
    # dead_rel: a row at 0.3 of the largest norm is live at 1e-2 (and then misaligned: an error), dead at 0.5
    B = S.clone()
    B[-1] = 0.3 * torch.tensor([0.6, 0.8, 0.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        st.hall_shuffled_types(B, S, T, torch.Generator().manual_seed(0))
    assert st.hall_shuffled_types(B, S, T, torch.Generator().manual_seed(0), dead_rel=0.5)
    # align_tol: a row off its teacher direction by a sine of 0.1 is typed only with align_tol > 0.1
    A = S.clone()
    A[0] = torch.tensor([1.0, 0.0, 0.1, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        st.hall_shuffled_types(A, S, T, torch.Generator().manual_seed(0))
    assert st.hall_shuffled_types(A, S, T, torch.Generator().manual_seed(0), align_tol=0.2)
    with pytest.raises(TypeError, match="generator"):
        st.hall_shuffled_types(S, S, T, 0)
    with pytest.raises(ValueError, match="same shape"):
        st.hall_shuffled_types(S, S[:-1], T, torch.Generator())


def test_gd_lr_sweep_with_trained_outputs_matches_a_separate_run():
    T = ts.orthonormal_teacher(4, 2)
    schedule = ts.GD(steps=300, tol=0.0, train_output=True)
    sw = st.gd_lr_sweep(T, 5, [1.0, 4.0], [2, 3], schedule, init_scale=0.2)
    assert sw.a is not None and sw.a.shape == (2, 2, 5)
    W0, a0 = [], []
    for s in (2, 3):
        g = torch.Generator().manual_seed(s)
        W0.append(ts.small_init(1, 5, 4, 0.2, generator=g)[0])
        a0.append(ts.small_output_init(1, 5, 0.2, generator=g)[0])
    W0, a0 = torch.stack(W0).repeat(2, 1, 1), torch.stack(a0).repeat(2, 1)
    ref = ts.GD(c=torch.tensor([1.0, 1.0, 4.0, 4.0], dtype=F64), steps=300, tol=0.0,
                train_output=True).run(ts.Population(T), W0, a0=a0)
    assert torch.equal(sw.W.reshape(4, 5, 4), ref.W) and torch.equal(sw.a.reshape(4, 5), ref.a)
    # the first layer's initialisation is the fixed-output sweep's; live counts use |a_i| ||w_i||
    fixed = st.gd_lr_sweep(T, 5, [1.0, 4.0], [2, 3], ts.GD(steps=0, tol=0.0), init_scale=0.2)
    assert torch.equal(fixed.W.reshape(4, 5, 4), W0) and fixed.a is None
    from lmcnb import diagnostics
    assert torch.equal(sw.live, diagnostics.live_neurons(sw.W, sw.a))
    zero_a = st.gd_lr_sweep(T, 5, [1.0], [2], ts.GD(steps=0, tol=0.0, train_output=True), init_scale=0.2)
    assert not torch.equal(zero_a.pr, st.gd_lr_sweep(T, 5, [1.0], [2], ts.GD(steps=0, tol=0.0),
                                                     init_scale=0.2).pr)
    with pytest.raises(ValueError, match="trained outputs: gd_lr_sweep"):
        st.sgd_lr_sweep(T, 5, [1.0], [2], None, ts.SGD(batch_size=1, epochs=1, train_output=True))


def test_dense_level_is_each_seeds_live_count_at_the_smallest_c():
    f = [False, False]
    # seed 1 lost a neuron to its initialisation (3 of 4 live at every c): dense until it loses another
    sw = _fake_sweep([[4, 3], [4, 3], [3, 2], [4, 4]], [f, f, f, [True, True]])
    assert sw.dense_level.tolist() == [4, 3]
    assert sw.dense.tolist() == [[True, True], [True, True], [False, False], [False, False]]
    assert sw.sparse.tolist() == [[False, False], [False, False], [True, True], [False, False]]
    tr = st.observed_transition(sw)
    assert (tr.last_dense, tr.first_nondense, tr.first_sparse) == (2.0, 3.0, 3.0)
    # a diverged run at the smallest c sets the level to m
    sw = _fake_sweep([[4, 4], [3, 3]], [[False, True], f])
    assert sw.dense_level.tolist() == [4, 4] and sw.sparse[1].all()


# ------------------------------------------------------------------ chapter 4's check statistics (every argument)

def _grid_sweep(cs: list[float], live: list[list[int]], loss: list[list[float]], m: int = 10) -> st.LRSweep:
    C, S = len(live), len(live[0])
    return st.LRSweep(cs=torch.tensor(cs, dtype=F64), seeds=tuple(range(S)), m=m,
                      W=torch.zeros(C, S, m, 2, dtype=F64), live=torch.tensor(live),
                      pr=torch.ones(C, S, dtype=F64), diverged=torch.tensor([[x > 1e3 for x in r] for r in loss]),
                      final_loss=torch.tensor(loss, dtype=F64))


OK_R, SLOW_R, DIV_R = 1e-11, 1e-6, 1e9


def _chapter_like() -> st.LRSweep:
    """c = 2, 2.5, 2.6, 2.7, 3, 3.5 (two seeds, m = 10): dense up to 2.6 (seed 1 slow at 2.5), sparse from 2.7
    (seed 1 unconverged at 3), all diverged at 3.5."""
    return _grid_sweep([2.0, 2.5, 2.6, 2.7, 3.0, 3.5],
                       [[10, 10], [10, 10], [10, 10], [9, 9], [8, 10], [10, 10]],
                       [[OK_R, OK_R], [OK_R, SLOW_R], [OK_R, OK_R], [OK_R, OK_R], [OK_R, SLOW_R],
                        [DIV_R, DIV_R]])


def test_dense_below_every_argument_changes_the_result():
    sw = _chapter_like()
    sweeps, pred = {10: sw}, {10: 2.65}
    # below 2.55: c = 2, 2.5; seed 1 at 2.5 ended at R = 1e-6 > tol: not a solution
    assert st.dense_below(sweeps, pred) == ((3,), False)
    assert st.dense_below(sweeps, pred, tol=1e-5) == ((4,), True)  # tol: the slow run counts
    assert st.dense_below(sweeps, pred, margin=0.6) == ((2,), True)  # margin: only c = 2 is below
    assert st.dense_below(sweeps, {10: 2.2}) == ((2,), True)  # predicted: the bound moves
    # scale: the control 2 c* reaches the sparse and diverged c (a sign error, scale / 2, would not)
    assert st.dense_below(sweeps, pred, scale=2.0, tol=1e-5) == ((7,), False)
    assert st.dense_below(sweeps, pred, scale=0.5) == ((0,), False)  # no c below the bound: not a pass
    # every width must hold, and the counts come in the mapping's order
    good = _grid_sweep([1.0, 2.0], [[10, 10], [10, 10]], [[OK_R, OK_R], [OK_R, OK_R]])
    assert st.dense_below({10: sw, 20: good}, {10: 2.65, 20: 2.65}) == ((3, 4), False)
    assert st.dense_below({20: good, 10: sw}, {10: 2.65, 20: 2.65}, tol=1e-5) == ((4, 4), True)
    with pytest.raises(ValueError, match="no c\\* for width 20"):
        st.dense_below({20: good}, pred)
    with pytest.raises(TypeError, match="LRSweep"):
        st.dense_below({10: "sweep"}, pred)
    with pytest.raises(TypeError, match="mapping"):
        st.dense_below([sw], pred)
    with pytest.raises(ValueError):
        st.dense_below(sweeps, pred, margin=-0.1)
    with pytest.raises(ValueError):
        st.dense_below(sweeps, pred, scale=0.0)


def test_onset_sparse_every_argument_changes_the_result():
    sw = _chapter_like()
    sweeps, pred = {10: sw}, {10: 2.55}
    # first c >= 2.65 is 2.7: both converged and sparse
    assert st.onset_sparse(sweeps, pred) == ((2,), True)
    # margin: first c >= 2.95 is 3.0: seed 1 did not converge (half converged is enough) and the other is sparse
    assert st.onset_sparse(sweeps, pred, margin=0.4) == ((1,), True)
    # tol: counted as converged, seed 1 at c = 3 is dense: the onset is not sharp
    assert st.onset_sparse(sweeps, pred, margin=0.4, tol=1e-5) == ((1,), False)
    # scale: the control c*/2 lands on c = 2 (dense); predicted moves the point as well
    assert st.onset_sparse(sweeps, pred, scale=0.5) == ((0,), False)
    assert st.onset_sparse(sweeps, {10: 2.0}) == ((0,), False)  # first c >= 2.1 is 2.5: dense
    # at c = 3.5 every run diverged: nothing converged, so the check fails (not vacuously true)
    assert st.onset_sparse(sweeps, {10: 3.3}) == ((0,), False)
    # a grid with nothing above the bound fails and stops at that width
    good = _grid_sweep([2.6, 2.7], [[10, 10], [9, 8]], [[OK_R, OK_R], [OK_R, OK_R]])
    assert st.onset_sparse({10: good, 20: sw}, {10: 2.55, 20: 2.55}) == ((2, 2), True)
    assert st.onset_sparse({10: good, 20: sw}, {10: 2.55, 20: 3.5}) == ((2,), False)
    assert st.onset_sparse({20: sw, 10: good}, {10: 2.0, 20: 2.55}) == ((2, 0), False)
    with pytest.raises(ValueError, match="no c\\* for width"):
        st.onset_sparse(sweeps, {11: 2.5})
    with pytest.raises(ValueError):
        st.onset_sparse(sweeps, {10: -1.0})


def test_diverges_within_every_argument_changes_the_result():
    tr = st.Transition(last_dense=2.6, first_nondense=2.7, first_sparse=2.7, first_diverged=3.5)
    trs, pred = {16: tr}, {16: 2.64}
    assert st.diverges_within(trs, pred) == ((3.5,), True)  # 2.64 < 3.5 <= 3.96
    assert st.diverges_within(trs, pred, factor=1.3) == ((3.5,), False)  # 3.5 > 3.43
    assert st.diverges_within(trs, pred, scale=2.0) == ((3.5,), False)  # the control window (5.28, 7.92]
    assert st.diverges_within(trs, {16: 2.2}) == ((3.5,), False)  # 3.5 > 3.3
    assert st.diverges_within(trs, {16: 3.5}) == ((3.5,), False)  # the window is open at its lower end
    never = st.Transition(2.6, 2.7, 2.7, math.nan)
    fd, ok = st.diverges_within({16: tr, 32: never}, {16: 2.64, 32: 2.64})
    assert fd[0] == 3.5 and math.isnan(fd[1]) and not ok
    with pytest.raises(TypeError, match="Transition"):
        st.diverges_within({16: 3.5}, pred)
    with pytest.raises(ValueError, match="no c\\* for width"):
        st.diverges_within({32: tr}, pred)
    with pytest.raises(ValueError):
        st.diverges_within(trs, pred, factor=1.0)


def _pb(identity: float, functional: float, hall: bool) -> ts.PairBarriers:
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    perm = torch.zeros(3, dtype=torch.int64)
    return ts.PairBarriers(identity=t(identity), weight=t(10 * functional), functional=t(functional),
                           perm=t(min(10 * functional, functional)), weight_perm=perm, functional_perm=perm,
                           hall=torch.tensor(hall))


def test_exactly_connected_every_argument_changes_the_result():
    pairs = {2.0: [_pb(0.1, 1e-5, False), _pb(0.2, 3e-6, False)], 2.7: [_pb(0.05, 0.0, True), _pb(0.1, 5e-6, False)],
             3.0: [_pb(0.01, 5e-8, True)]}
    assert st.exactly_connected(pairs, 2.6) == ((2, 5e-8, 3e-6), True)
    # kind: the identity barrier of the sparse pairs is not zero (the control)
    assert st.exactly_connected(pairs, 2.6, kind="identity") == ((2, 0.05, 0.1), False)
    assert st.exactly_connected(pairs, 2.6, exact=1e-8)[1] is False  # 5e-8 is not below 1e-8
    assert st.exactly_connected(pairs, 2.6, apart=5e-6)[1] is False  # a dense pair at 3e-6
    # c_star: at 2.8 the pairs at c = 2.7 count as dense, the connected one among them fails; at 2.0 none is dense
    assert st.exactly_connected(pairs, 2.8) == ((2, 5e-8, 0.0), False)
    res, ok = st.exactly_connected(pairs, 2.0)
    assert res[:2] == (2, 5e-8) and math.isnan(res[2]) and not ok
    res, ok = st.exactly_connected({2.0: [_pb(0.1, 1e-5, False)]}, 2.6)
    assert res[0] == 0 and math.isnan(res[1]) and not ok  # no sparse pair: not a pass
    with pytest.raises(ValueError, match="kind"):
        st.exactly_connected(pairs, 2.6, kind="naive")
    with pytest.raises(ValueError, match="Hall"):
        st.exactly_connected({2.0: [dataclasses.replace(_pb(0.1, 1e-5, False), hall=None)]}, 2.6)


def test_mlp_sweep_remaining_fraction_reads_the_view_over_trained_rates_only():
    acc = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.5, 0.4]], dtype=F64)  # the last rate did not train
    ident = torch.tensor([[1.0], [2.0], [1.0]], dtype=F64)
    weight = torch.tensor([[0.1], [0.6], [0.05]], dtype=F64)
    rand = torch.tensor([[1.2], [1.0], [9.0]], dtype=F64)
    z = torch.zeros(3, 2, dtype=F64)
    sw = st.MLPSweep(lrs=torch.tensor([0.1, 0.3, 1.0], dtype=F64), live=z + 1, train_loss=z, train_acc=acc,
                     identity=ident, weight=weight, random=rand)
    assert sw.remaining_fraction() == pytest.approx(0.3)  # max(0.1, 0.3); the untrained rate's 0.05 is ignored
    assert sw.remaining_fraction("random") == pytest.approx(1.2)  # not 9.0 (untrained)
    assert sw.remaining_fraction("identity") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="view"):
        sw.remaining_fraction("functional")
    with pytest.raises(ValueError, match="random"):
        dataclasses.replace(sw, random=None).remaining_fraction("random")
    untrained = dataclasses.replace(sw, train_acc=z)
    assert math.isnan(untrained.remaining_fraction())


def test_mlp_sweep_kills_units_every_argument_changes_the_result():
    z = torch.zeros(4, 2, dtype=F64)
    live = torch.tensor([[1.0, 1.0], [0.99, 1.0], [0.8, 0.7], [0.3, 0.2]], dtype=F64)
    acc = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.95, 0.92], [0.5, 0.4]], dtype=F64)
    sw = st.MLPSweep(lrs=torch.tensor([0.05, 0.1, 0.4, 1.0], dtype=F64), live=live, train_loss=z, train_acc=acc,
                     identity=z[:, :1], weight=z[:, :1])
    assert sw.trained.tolist() == [True, True, True, False]
    assert sw.kills_units() == ((1.0, 0.75), True)  # the collapsed rate 1.0 does not count
    assert sw.kills_units(sw.lrs <= 0.2) == ((1.0, 0.995), False)  # the control
    assert sw.kills_units(sparse=0.7)[1] is False  # 0.75 > 0.7
    assert sw.kills_units(dense=1.0) == ((1.0, 0.75), True)
    sw2 = dataclasses.replace(sw, live=torch.cat([torch.tensor([[0.98, 1.0]], dtype=F64), live[1:]]))
    assert sw2.kills_units() == ((0.98, 0.75), False)  # not all live at the smallest rate
    assert sw2.kills_units(dense=0.95)[1] is True
    res, ok = sw.kills_units(sw.lrs >= 1.0)
    assert math.isnan(res[1]) and not ok
    with pytest.raises(ValueError, match="bool mask"):
        sw.kills_units(torch.ones(3, dtype=torch.bool))


def test_gd_schedule_grows_with_width_above_its_floor():
    g = st.gd_schedule(16, 20_000)
    assert isinstance(g, ts.GD) and g.steps == 20_000 and g.tol == 1e-10 and g.check_every == 100
    assert st.gd_schedule(64, 20_000).steps == 625 * 64
    assert st.gd_schedule(64, 50_000).steps == 50_000
    assert st.gd_schedule(64, 1, steps_per_width=10).steps == 640
    assert st.gd_schedule(64, 1, steps_per_width=0).steps == 1
    g = st.gd_schedule(8, 100, tol=1e-6, check_every=10)
    assert g.tol == 1e-6 and g.check_every == 10
    for bad in (dict(m=0, min_steps=1), dict(m=4, min_steps=0), dict(m=4, min_steps=1, steps_per_width=-1)):
        with pytest.raises(ValueError):
            st.gd_schedule(**bad)
