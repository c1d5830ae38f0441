"""Every argument of the teacher–student and stability functions that chapters 2–4 rely on changes a result.

Each test feeds an input on which the argument matters and checks the direction of the change against a
reference or a hand-computable value, so a plausible one-line defect (the argument ignored, a comparison or sign
reversed, two arguments swapped) fails here. The arguments already pinned by ``test_teacher_student.py`` /
``test_stability.py`` are not repeated; this file covers the stopping rules (``tol``, ``check_every``,
``diverge_loss``) of GD and SGD, the type thresholds of the Hall criterion, the power-iteration budget, the path
grid of the pair barriers and the initialisation scales.
"""
from __future__ import annotations

import math

import pytest
import torch

from lmcnb import data
from lmcnb import stability as st
from lmcnb import teacher_student as ts

F64 = torch.float64


def _init(B: int, m: int, d: int, scale: float = 0.1, seed: int = 0) -> torch.Tensor:
    return ts.small_init(B, m, d, scale, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ GD: stopping rules

def test_gd_tol_stops_at_the_first_check_below_it_and_check_every_sets_that_check():
    T = ts.orthonormal_teacher(4, 2)
    W0 = _init(1, 4, 4)
    full = ts.GD(c=2.0, steps=3000, tol=0.0, check_every=10).run(ts.Population(T), W0)
    R = full.losses[0]
    # the first checked step with R < 1e-4 is where a tol = 1e-4 run stops
    tol = 1e-4
    first = int(full.record_steps[int(torch.nonzero(R < tol)[0])])
    early = ts.GD(c=2.0, steps=3000, tol=tol, check_every=10).run(ts.Population(T), W0)
    assert int(early.steps[0]) == first and bool(early.converged[0]) and float(early.final_loss[0]) < tol
    assert float(early.final_loss[0]) > float(full.final_loss[0])  # tol stopped it early
    # check_every: stopping happens only at multiples of it
    coarse = ts.GD(c=2.0, steps=3000, tol=tol, check_every=250).run(ts.Population(T), W0)
    assert int(coarse.steps[0]) % 250 == 0 and int(coarse.steps[0]) >= first
    assert int(coarse.steps[0]) != int(early.steps[0])
    assert coarse.record_steps[:2].tolist() == [0, 250]
    # tol = 0 never converges
    assert not bool(full.converged[0]) and int(full.steps[0]) == 3000


def test_gd_diverge_loss_marks_and_freezes_the_runs_above_it():
    T = ts.orthonormal_teacher(4, 2)
    W0 = _init(2, 4, 4)
    R0 = float(ts.population_loss(W0[0], T))
    c = torch.tensor([2.0, 2.0], dtype=F64)
    ok = ts.GD(c=c, steps=20, tol=0.0, check_every=10).run(ts.Population(T), W0)
    assert not bool(ok.diverged.any())
    # a threshold below the initial loss: every run is "diverged" at the first check and frozen there
    low = ts.GD(c=c, steps=20, tol=0.0, check_every=10, diverge_loss=0.5 * R0).run(ts.Population(T), W0)
    assert bool(low.diverged.all()) and int(low.steps.max()) == 0
    assert torch.equal(low.W, W0)


def test_gd_widths_pad_and_c_is_divided_by_each_models_width():
    T = ts.orthonormal_teacher(4, 2)
    W = _init(2, 6, 4)
    W[1, 3:] = 0.0  # model 1 has width 3
    res = ts.GD(c=1.5, steps=5, tol=0.0).run(ts.Population(T), W, widths=[6, 3])
    assert res.eta.tolist() == pytest.approx([1.5 / 6, 1.5 / 3])
    alone = ts.GD(c=1.5, steps=5, tol=0.0).run(ts.Population(T), W[1:, :3])
    assert torch.allclose(res.W[1, :3], alone.W[0], atol=1e-14, rtol=0)
    assert bool((res.W[1, 3:] == 0).all())


# ------------------------------------------------------------------ SGD: stopping rules, scale, generator

def _samples(T: torch.Tensor, n: int = 64, seed: int = 0) -> data.Split:
    return data.teacher_student_data(T, n, torch.Generator().manual_seed(seed))


def test_sgd_tol_and_diverge_loss_stop_runs_in_opposite_directions():
    T = ts.orthonormal_teacher(4, 2)
    S, W0 = _samples(T), _init(1, 4, 4)
    run = lambda **kw: ts.SGD(c=1.0, batch_size=8, epochs=40, **kw).run(  # noqa: E731
        S, W0, generator=torch.Generator().manual_seed(0))
    free = run()
    L = free.losses[0]
    assert int(free.epochs[0]) == 40 and not bool(free.converged[0])
    tol = float(L[10])  # reached after about 10 epochs
    stop = run(tol=tol)
    first = int(torch.nonzero(L < tol)[0])
    assert bool(stop.converged[0]) and int(stop.epochs[0]) == first
    # diverge_loss below the loss after epoch 1: diverged and frozen at the first epoch, not converged
    div = run(diverge_loss=0.5 * float(L[1]))
    assert bool(div.diverged[0]) and not bool(div.converged[0]) and int(div.epochs[0]) <= 1


def test_sgd_generator_batch_size_and_scale_each_change_the_run():
    T = ts.orthonormal_teacher(4, 2)
    S, W0 = _samples(T), _init(1, 4, 4)

    def run(batch_size: int = 8, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
        return ts.SGD(c=1.0, batch_size=batch_size, epochs=3).run(
            S, W0, generator=torch.Generator().manual_seed(seed), scale=scale).W

    base = run()
    assert torch.equal(base, run())  # reproducible
    assert not torch.allclose(base, run(seed=1))
    assert not torch.allclose(base, run(batch_size=16))
    assert not torch.allclose(base, run(scale=0.5))
    # full batch with the generator irrelevant: one full-gradient step per epoch, whatever the seed
    assert torch.allclose(run(batch_size=64), run(batch_size=64, seed=5), atol=1e-15, rtol=0)


# ------------------------------------------------------------------ initialisation

def test_initialisation_scales_and_generators():
    a = ts.small_init(3, 200, 8, 0.1, generator=torch.Generator().manual_seed(0))
    b = ts.small_init(3, 200, 8, 0.3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(b, 3 * a, rtol=1e-12, atol=0)  # scale multiplies the same draw
    # rows are N(0, scale²/d I): mean squared row norm ≈ scale²
    assert float((a.norm(dim=-1) ** 2).mean()) == pytest.approx(0.01, rel=0.1)
    assert not torch.equal(a, ts.small_init(3, 200, 8, 0.1, generator=torch.Generator().manual_seed(1)))
    o = ts.small_output_init(2, 500, 0.2, generator=torch.Generator().manual_seed(0))
    assert o.shape == (2, 500) and float(o.std()) == pytest.approx(0.2, rel=0.1)
    assert torch.allclose(ts.small_output_init(2, 500, 0.4, generator=torch.Generator().manual_seed(0)), 2 * o,
                          rtol=1e-12, atol=0)


# ------------------------------------------------------------------ the Hall criterion's thresholds

def test_hall_criterion_dead_tol_and_tol_decide_the_types():
    T = ts.orthonormal_teacher(4, 2)
    # W1: types (0, 1, 1) with a tiny third row along e_1; W2: types (0, 0, 1)
    W1 = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 1e-4, 0, 0]], dtype=F64)
    W2 = torch.tensor([[0.5, 0, 0, 0], [0.5, 0, 0, 0], [0, 1.0, 0, 0]], dtype=F64)
    # tiny row live: n1 = (1, 2), z1 = 0; n2 = (2, 1), z2 = 0: W1's excess of type 1 has no dead row to go to
    assert not ts.hall_lmc_criterion(W1, W2, T)
    # tiny row dead (dead_tol = 1e-3): n1 = (1, 1), z1 = 1; W2's excess of type 0 (1) fits z1 = 1, W1 has none
    assert ts.hall_lmc_criterion(W1, W2, T, dead_tol=1e-3)
    # the criterion is not symmetric in (z1, z2) term by term: swapping the pair swaps the roles, same answer
    assert ts.hall_lmc_criterion(W2, W1, T, dead_tol=1e-3)
    # a dead row absorbs one excess only: two extra type-0 rows in W3 against one dead row of W1 fail
    W3 = torch.tensor([[0.4, 0, 0, 0], [0.3, 0, 0, 0], [0.3, 0, 0, 0]], dtype=F64)
    assert not ts.hall_lmc_criterion(W1, W3, T, dead_tol=1e-3)
    # tol: a row off e_0 by a sine of about 0.02 is typed only with tol > 0.02
    W5 = W2.clone()
    W5[0] = torch.tensor([0.5, 0, 0.01, 0], dtype=F64)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        ts.hall_lmc_criterion(W1, W5, T, dead_tol=1e-3)
    assert ts.hall_lmc_criterion(W1, W5, T, tol=0.05, dead_tol=1e-3)


def test_neuron_types_dead_tol_is_a_norm_threshold():
    T = ts.orthonormal_teacher(3, 2)
    W = torch.tensor([[0.2, 0, 0], [0, 1e-3, 0], [0, 0, 0]], dtype=F64)
    assert ts.neuron_types(W, T).tolist() == [0, 1, -1]
    assert ts.neuron_types(W, T, dead_tol=1e-2).tolist() == [0, -1, -1]
    assert ts.neuron_types(W, T, dead_tol=0.5).tolist() == [-1, -1, -1]


# ------------------------------------------------------------------ sharpness: power-iteration budget

def test_sharpness_n_iter_tol_and_generator():
    T = ts.orthonormal_teacher(6, 3)
    W = st.minimum_with_live(2, 3, 6)
    ref = ts.sharpness_population(W, ts.Population(T), n_iter=2000, tol=1e-10)
    assert ref.converged
    short = ts.sharpness_population(W, ts.Population(T), n_iter=2, tol=1e-12)
    assert not short.converged and short.n_iter < ref.n_iter and short.eigenvalue < ref.eigenvalue
    loose = ts.sharpness_population(W, ts.Population(T), n_iter=2000, tol=1e-2)
    assert loose.converged and loose.n_iter < ref.n_iter
    other = ts.sharpness_population(W, ts.Population(T), n_iter=2000, tol=1e-10,
                                    generator=torch.Generator().manual_seed(3))
    assert other.eigenvalue == pytest.approx(ref.eigenvalue, rel=1e-8)
    assert not torch.allclose(ts.sharpness_population(W, ts.Population(T), n_iter=3, tol=1e-12,
                                                      generator=torch.Generator().manual_seed(3)).vector[0],
                              short.vector[0])


# ------------------------------------------------------------------ pair barriers: the path grid

def test_pair_barriers_lambdas_is_the_grid_of_the_path():
    T = ts.orthonormal_teacher(4, 2)
    W1 = st.minimum_with_live(1, 2, 4, dead=1)
    W2 = torch.stack([W1[1], W1[0], W1[2]])  # permuted copy: zero modulo permutation
    W2 = W2 + torch.tensor([[0, 0, 0.3, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=F64)  # off the manifold
    fine = ts.pair_barriers(W1, W2, T, lambdas=torch.linspace(0, 1, 101, dtype=F64))
    ends = ts.pair_barriers(W1, W2, T, lambdas=[0.0, 1.0])
    assert float(ends.identity) == 0.0 and float(fine.identity) > 0.0  # the end points carry no barrier
    mid = ts.pair_barriers(W1, W2, T, lambdas=[0.0, 0.5, 1.0])
    direct = float(ts.population_loss(0.5 * (W1 + W2), T)) - 0.5 * float(ts.population_loss(W2, T))
    assert float(mid.identity) == pytest.approx(direct, rel=1e-12, abs=1e-15)
    # st.pair_barriers forwards lambdas
    assert float(st.pair_barriers(W1, W2, T, lambdas=[0.0, 1.0], align_tol=0.5).identity) == 0.0


def test_stability_pair_barriers_thresholds_decide_hall():
    d, M = 4, 2
    T = ts.orthonormal_teacher(d, M)
    W1 = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 0, 0], [0, 0.5, 0, 0]], dtype=F64)
    W2 = torch.tensor([[0.5, 0, 0, 0], [0.5, 0, 0, 0], [0, 1.0, 0, 0]], dtype=F64)
    assert not bool(st.pair_barriers(W1, W2, T).hall)  # (1, 2) vs (2, 1), no dead rows
    W2b = W2.clone()
    W2b[1] = torch.tensor([0.005, 0, 0, 0], dtype=F64)  # 0.005 of the largest norm: dead at dead_rel = 1e-2
    assert bool(st.pair_barriers(W1, W2b, T).hall)  # (1, 2) vs (1, 1) + one dead
    assert not bool(st.pair_barriers(W1, W2b, T, dead_rel=1e-3).hall)  # live again: (1, 2) vs (2, 1)
    W2c = W2.clone()
    W2c[2] = torch.tensor([0, 1.0, 0.02, 0], dtype=F64)  # sine 0.02 off e_1
    assert not bool(st.pair_barriers(W1, W2c, T, align_tol=0.05).hall)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        st.pair_barriers(W1, W2c, T, align_tol=0.01)


# ------------------------------------------------------------------ sweeps: init_scale, data_seed, seed_index

def test_sweeps_init_scale_data_seed_and_seed_index():
    T = ts.orthonormal_teacher(4, 2)
    a = st.gd_lr_sweep(T, 4, [1.0], [0], ts.GD(steps=0, tol=0.0), init_scale=0.1)
    b = st.gd_lr_sweep(T, 4, [1.0], [0], ts.GD(steps=0, tol=0.0), init_scale=0.2)
    assert torch.allclose(b.W, 2 * a.W, rtol=1e-12, atol=0)
    S = _samples(T)
    sgd = lambda ds: st.sgd_lr_sweep(T, 4, [1.0], [0], S, ts.SGD(batch_size=8, epochs=2),  # noqa: E731
                                     data_seed=ds).W
    assert torch.equal(sgd(0), sgd(0)) and not torch.allclose(sgd(0), sgd(1))
    sw = st.gd_lr_sweep(T, 4, [1.0, 2.0], [0, 1], ts.GD(steps=200, tol=0.0))
    s0, s1 = st.solution_sharpness(sw, T, 0), st.solution_sharpness(sw, T, 1)
    for i in range(2):
        for j, s in ((0, s0), (1, s1)):
            lam = ts.sharpness_population(sw.W[i, j], ts.Population(T), n_iter=500, tol=1e-6).eigenvalue
            assert float(s[i]) == pytest.approx(lam, rel=1e-9)
    assert not torch.allclose(s0, s1)
    with pytest.raises(ValueError, match="seed_index"):
        st.solution_sharpness(sw, T, 2)


def test_sweep_c_order_is_c_major():
    """The ``(C, S)`` layout: entry ``[i, j]`` is ``c = cs[i]`` with seed ``seeds[j]`` (a swapped repeat order
    would pair the wrong step with the wrong seed)."""
    T = ts.orthonormal_teacher(4, 2)
    sw = st.gd_lr_sweep(T, 4, [0.5, 3.0], [0, 1, 2], ts.GD(steps=50, tol=0.0))
    for i, c in enumerate([0.5, 3.0]):
        for j, s in enumerate([0, 1, 2]):
            one = st.gd_lr_sweep(T, 4, [c], [s], ts.GD(steps=50, tol=0.0))
            assert torch.allclose(sw.W[i, j], one.W[0, 0], atol=1e-14, rtol=0)
    S = _samples(T)
    sg = st.sgd_lr_sweep(T, 4, [0.5, 3.0], [0, 1], S, ts.SGD(batch_size=8, epochs=2))
    ref = ts.SGD(c=torch.tensor([0.5, 0.5, 3.0, 3.0], dtype=F64), batch_size=8, epochs=2).run(
        S, torch.cat([_init(1, 4, 4, seed=s) for s in (0, 1)] * 2), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sg.W.reshape(4, 4, 4), ref.W, atol=1e-14, rtol=0)


def test_manifold_pair_barriers_seed_split_and_dead_prob():
    base = st.manifold_pair_barriers(8, 2, 4, 0.5, pairs=2, seed=0)
    same = st.manifold_pair_barriers(8, 2, 4, 0.5, pairs=2, seed=0)
    assert [float(p.identity) for p in base] == [float(p.identity) for p in same]
    shifted = st.manifold_pair_barriers(8, 2, 4, 0.5, pairs=2, seed=2)
    # seed 2's first pair is seed 0's second pair (generators seed + 2k, seed + 2k + 1)
    assert float(shifted[0].identity) == float(base[1].identity)
    assert float(shifted[1].identity) != float(base[1].identity)
    dense = st.manifold_pair_barriers(8, 2, 4, 0.0, pairs=2, seed=0)
    assert [float(p.identity) for p in dense] != [float(p.identity) for p in base]
    rand = st.manifold_pair_barriers(8, 2, 4, 0.5, pairs=2, seed=0, split="dirichlet")
    assert [float(p.identity) for p in rand] != [float(p.identity) for p in base]
    assert all(math.isfinite(float(p.functional)) for p in base + rand)


def _sweep_of(W: torch.Tensor, live: list[list[int]] | None = None) -> st.LRSweep:
    """An :class:`LRSweep` holding given solutions ``W (C, S, m, d)`` (all converged)."""
    C, S, m, _ = W.shape
    live_t = torch.full((C, S), m) if live is None else torch.tensor(live)
    return st.LRSweep(cs=torch.arange(1, C + 1, dtype=F64), seeds=tuple(range(S)), m=m, W=W, live=live_t,
                      pr=torch.ones(C, S, dtype=F64), diverged=torch.zeros(C, S, dtype=torch.bool),
                      final_loss=torch.zeros(C, S, dtype=F64))


def test_observed_transition_half_the_runs_is_enough_to_leave_the_dense_regime():
    sw = _sweep_of(torch.zeros(3, 2, 4, 2), live=[[4, 4], [4, 3], [3, 3]])
    tr = st.observed_transition(sw)
    assert tr.first_nondense == 2.0 and tr.last_dense == 1.0 and tr.first_sparse == 2.0
    sw3 = _sweep_of(torch.zeros(3, 3, 4, 2), live=[[4, 4, 4], [4, 4, 3], [3, 3, 3]])
    assert st.observed_transition(sw3).first_nondense == 3.0  # one of three is not half


def test_hall_shuffled_types_inequalities_with_one_teacher_neuron():
    """With ``M = 1`` every live neuron has type 0 whatever the shuffle, so the control is the criterion itself:
    one type can always be absorbed (``n2 − n1 <= m − n1 = z1``). The pairs have ``z1 != z2`` and an excess on one
    side only, so swapping ``z1`` and ``z2`` in either inequality turns ``True`` into ``False``."""
    T = ts.orthonormal_teacher(3, 1)
    e = torch.tensor([1.0, 0, 0], dtype=F64)
    W1 = torch.stack([e, 0 * e, 0 * e])  # n1 = 1, z1 = 2
    W2 = torch.stack([e / 3, e / 3, e / 3])  # n2 = 3, z2 = 0: excess 2 <= z1 = 2, but not <= z2 = 0
    W3 = torch.stack([e / 2, e / 2, 0 * e])  # n = 2, z = 1
    g = torch.Generator().manual_seed(0)
    for A, B in ((W1, W2), (W2, W1), (W3, W2), (W2, W3), (W1, W3)):
        assert st.hall_shuffled_types(A, B, T, g) is True
        assert ts.hall_lmc_criterion(A, B, T) is True


def test_sweep_pair_barriers_forwards_its_keywords():
    T = ts.orthonormal_teacher(4, 2)
    A = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]], dtype=F64)
    B = torch.tensor([[0, 1.0, 0.02, 0], [1.0, 0, 0, 0], [0, 0, 0, 0]], dtype=F64)  # sine 0.02 off e_1
    sw = _sweep_of(torch.stack([A, B])[None])
    (pb,) = st.sweep_pair_barriers(sw, T)[1.0]
    assert bool(pb.hall)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        st.sweep_pair_barriers(sw, T, align_tol=0.01)
    coarse = st.sweep_pair_barriers(sw, T, lambdas=[0.0, 1.0])[1.0][0]
    assert float(coarse.identity) == 0.0 and float(pb.identity) > 0.0


def test_solution_sharpness_dead_rel_decides_which_rows_count():
    T = ts.orthonormal_teacher(4, 2)
    W = st.minimum_with_live(2, 2, 4)  # rows of norm 0.5
    W[1] = 0.95 * W[1]
    W = torch.cat([W, torch.tensor([[0.0, 0.02, 0.0, 0.0]], dtype=F64)])  # 0.04 of the largest norm
    sw = _sweep_of(W[None, None])
    keep = float(st.solution_sharpness(sw, T, dead_rel=1e-2)[0])
    drop = float(st.solution_sharpness(sw, T, dead_rel=0.1)[0])
    W0 = W.clone()
    W0[-1] = 0.0
    assert drop == pytest.approx(ts.sharpness_population(W0, ts.Population(T), n_iter=500, tol=1e-6).eigenvalue,
                                 rel=1e-9)
    assert keep == pytest.approx(ts.sharpness_population(W, ts.Population(T), n_iter=500, tol=1e-6).eigenvalue,
                                 rel=1e-9)
    assert abs(keep / drop - 1) > 1e-3


def test_predict_critical_c_passes_its_power_iteration_budget():
    T = ts.orthonormal_teacher(4, 2)
    W = st.minimum_with_live(3, 2, 4)
    lam, c = st.predict_critical_c(W, T)
    assert c == pytest.approx(2 * 6 / lam)
    with pytest.raises(ValueError, match="did not converge in 2"):
        st.predict_critical_c(W, T, n_iter=2, tol=1e-12)
    loose, _ = st.predict_critical_c(W, T, n_iter=2000, tol=1e-1)
    assert loose != lam and loose == pytest.approx(lam, rel=0.2)
