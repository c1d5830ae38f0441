"""Tests of lmcnb.teacher_student against independent computations: Monte Carlo over Gaussian / sphere inputs
(with a standard-error tolerance), central finite differences of the loss, torch.autograd's gradcheck, a full
finite-difference Hessian with numpy-free eigvalsh, separate (unpadded, unbatched) training runs, explicit loops,
and brute force over all permutations for the exact LMC criterion."""
from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import teacher_student as ts
from lmcnb.data import Split

from _helpers import gen

F64 = torch.float64
SETTINGS = settings(max_examples=12)  # example budget (cost); the profile decides the rest


def _awkward_rows(m: int, d: int, seed: int) -> torch.Tensor:
    """Random rows plus the hard cases: an exactly zero row, a parallel and an antiparallel copy of row 0."""
    W = torch.randn(m, d, generator=gen(seed), dtype=F64)
    W[1] = 0.0
    W[2] = 2.5 * W[0]
    W[3] = -0.7 * W[0]
    return W


def _mc_mean(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo mean over axis 0 and its standard error."""
    return values.mean(0), values.std(0) / math.sqrt(values.shape[0])


def _student(X: torch.Tensor, W: torch.Tensor, a: torch.Tensor, s: float = 1.0) -> torch.Tensor:
    return s * torch.relu(X @ W.T) @ a


def _teacher_split(X: torch.Tensor, T: torch.Tensor) -> Split:
    """Samples ``X`` with the teacher's targets ``y = Σ_j σ(w*_j·x)``."""
    return Split(X, torch.relu(X @ T.T).sum(1))


# ---------------------------------------------------------------------------------------------------- kernel

def test_kernel_matches_monte_carlo():
    U, V = _awkward_rows(5, 6, 0), torch.randn(4, 6, generator=gen(1), dtype=F64)
    V[3] = U[0]
    g = torch.randn(200_000, 6, generator=gen(2), dtype=F64)
    prod = torch.relu(g @ U.T)[:, :, None] * torch.relu(g @ V.T)[:, None, :]
    mean, se = _mc_mean(prod)
    K = ts.arccos_kernel(U, V)
    assert K.shape == (5, 4)
    assert bool(((K - mean).abs() <= 5 * se + 1e-12).all())
    assert bool((K[1] == 0).all())  # zero row


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), k=st.integers(1, 5), d=st.integers(1, 6))
def test_kernel_special_values_and_symmetries(seed, n, k, d):
    g = gen(seed)
    U, V = torch.randn(n, d, generator=g, dtype=F64), torch.randn(k, d, generator=g, dtype=F64)
    K = ts.arccos_kernel(U, V)
    torch.testing.assert_close(K, ts.arccos_kernel(V, U).T, rtol=1e-13, atol=1e-15)
    # K(u, u) = |u|²/2, K(u, −u) = 0, positive homogeneity K(αu, βv) = αβ K(u, v)
    torch.testing.assert_close(ts.arccos_kernel(U, U).diagonal(), 0.5 * (U * U).sum(1), rtol=1e-13, atol=0)
    assert bool((ts.arccos_kernel(U, -U).diagonal().abs() <= 1e-14 * (U * U).sum(1)).all())
    alpha, beta = torch.rand(n, 1, generator=g, dtype=F64) + 0.1, torch.rand(k, 1, generator=g, dtype=F64) + 0.1
    torch.testing.assert_close(ts.arccos_kernel(alpha * U, beta * V), alpha * K * beta.T, rtol=1e-12, atol=1e-15)
    # orthogonal pair: K = |u||v|/(2π); batched call equals per-entry calls
    if d >= 2:
        e = torch.eye(d, dtype=F64)
        torch.testing.assert_close(ts.arccos_kernel(3 * e[:1], 2 * e[1:2]), torch.full((1, 1), 6 / (2 * math.pi),
                                                                                          dtype=F64))
    Ub, Vb = torch.stack([U, 2 * U]), torch.stack([V, -V])
    Kb = ts.arccos_kernel(Ub, Vb)
    # to float64 rounding, not bit for bit: MKL may block a broadcast (batched) product differently from a plain
    # one (it did under MKL_CBWR=AVX2), so the last bit of a sum can differ
    torch.testing.assert_close(Kb[1], ts.arccos_kernel(2 * U, -V), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(ts.arccos_kernel(Ub, V)[1], ts.arccos_kernel(2 * U, V), rtol=1e-14, atol=1e-15)


def test_kernel_is_twice_differentiable_by_autograd_and_finite_at_hard_points():
    U, V = torch.randn(3, 4, generator=gen(3), dtype=F64), torch.randn(2, 4, generator=gen(4), dtype=F64)
    assert torch.autograd.gradcheck(ts.arccos_kernel, (U.requires_grad_(), V.requires_grad_()))
    assert torch.autograd.gradgradcheck(ts.arccos_kernel, (U, V))
    # zero, parallel and antiparallel rows: every derivative is finite (no inf·0 = NaN)
    W = _awkward_rows(5, 4, 5).requires_grad_()
    K = ts.arccos_kernel(W, W).sum()
    (gW,) = torch.autograd.grad(K, W, create_graph=True)
    (hv,) = torch.autograd.grad((gW * torch.ones_like(gW)).sum(), W)
    assert bool(torch.isfinite(gW).all()) and bool(torch.isfinite(hv).all())
    assert bool((gW[1] == 0).all())  # relu'(0) = 0 convention at the zero row


# ------------------------------------------------------------------------------------------------------ loss

@pytest.mark.parametrize("inputs", ["gaussian", "sphere"])
def test_population_loss_matches_monte_carlo(inputs):
    d, n = 6, 200_000
    T = ts.orthonormal_teacher(d, 3, gen(6), random_rotation=True)
    W = _awkward_rows(5, d, 7)
    a = torch.tensor([1.0, 0.5, -0.3, 0.8, 1.2], dtype=F64)
    a_star = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    X = torch.randn(n, d, generator=gen(8), dtype=F64)
    if inputs == "sphere":
        X = X / X.norm(dim=1, keepdim=True)
    err2 = (_student(X, W, a, 0.6) - _student(X, T, a_star)) ** 2
    mean, se = _mc_mean(err2)
    R = ts.population_loss(W, T, a=a, a_star=a_star, scale=0.6, inputs=inputs)
    assert R.ndim == 0 and abs(float(R - mean)) <= 5 * float(se)
    assert abs(float(R - mean)) <= 0.02 * float(mean)


def test_population_loss_batched_and_defaults():
    T = ts.orthonormal_teacher(5, 2)
    W = torch.randn(3, 4, 5, generator=gen(9), dtype=F64)
    R = ts.population_loss(W, T)
    assert R.shape == (3,)
    for b in range(3):
        torch.testing.assert_close(R[b], ts.population_loss(W[b], T, a=torch.ones(4, dtype=F64)), rtol=0, atol=0)
    # R(0) = a*ᵀ K(T, T) a* = M/2 + M(M−1)/(2π) for an orthonormal teacher
    R0 = ts.population_loss(torch.zeros(4, 5, dtype=F64), T)
    assert abs(float(R0) - (1.0 + 2.0 / (2 * math.pi))) <= 1e-15
    # per-model scale tensor equals separate calls
    s = torch.tensor([1.0, 0.5, 0.25], dtype=F64)
    Rs = ts.population_loss(W, T, scale=s)
    for b in range(3):
        torch.testing.assert_close(Rs[b], ts.population_loss(W[b], T, scale=float(s[b])), rtol=1e-15, atol=0)


@SETTINGS
@given(seed=st.integers(0, 10_000), m=st.integers(4, 7), d=st.integers(2, 6), trained=st.booleans(),
       sphere=st.booleans())
def test_gradient_matches_autograd_and_finite_differences(seed, m, d, trained, sphere):
    g = gen(seed)
    T = torch.randn(2, d, generator=g, dtype=F64)
    W = _awkward_rows(m, d, seed)
    a = torch.randn(m, generator=g, dtype=F64) if trained else None
    kw = dict(a=a, scale=0.8 if trained else 1.0, inputs="sphere" if sphere else "gaussian")
    gW, ga = ts.population_grad(W, T, wrt_output=True, **kw)
    # autograd through the closed-form loss
    Wr = W.clone().requires_grad_()
    ar = (torch.ones(m, dtype=F64) if a is None else a).clone().requires_grad_()
    kw_ad = dict(kw, a=ar)
    aW, aa = torch.autograd.grad(ts.population_loss(Wr, T, **kw_ad), (Wr, ar))
    torch.testing.assert_close(gW, aW, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(ga, aa, rtol=1e-11, atol=1e-12)
    assert bool((gW[1] == 0).all())  # dead neuron: zero gradient
    # central finite differences of the loss along random directions that keep the zero row at zero
    for k in range(3):
        D = torch.randn(m, d, generator=g, dtype=F64)
        D[1] = 0.0
        h = 1e-6
        fd = (ts.population_loss(W + h * D, T, **kw) - ts.population_loss(W - h * D, T, **kw)) / (2 * h)
        assert abs(float(fd - (gW * D).sum())) <= 1e-6 * (1 + float(gW.abs().sum()))


def test_gradient_matches_monte_carlo():
    d, n = 5, 200_000
    T = ts.orthonormal_teacher(d, 2)
    W = _awkward_rows(4, d, 11)
    a = torch.tensor([0.9, 1.0, -0.4, 0.6], dtype=F64)
    X = torch.randn(n, d, generator=gen(12), dtype=F64)
    Z = X @ W.T
    r = _student(X, W, a) - _student(X, T, torch.ones(2, dtype=F64))
    per_sample_W = 2 * r[:, None, None] * a[None, :, None] * (Z > 0)[:, :, None] * X[:, None, :]
    per_sample_a = 2 * r[:, None] * torch.relu(Z)
    gW, ga = ts.population_grad(W, T, a=a, wrt_output=True)
    for exact, samples in ((gW, per_sample_W), (ga, per_sample_a)):
        mean, se = _mc_mean(samples)
        assert bool(((exact - mean).abs() <= 5 * se + 1e-12).all())


def test_batched_gradient_equals_unbatched():
    T = ts.orthonormal_teacher(6, 3)
    W = torch.randn(3, 5, 6, generator=gen(13), dtype=F64)
    W[1, 2] = 0.0
    a = torch.randn(3, 5, generator=gen(14), dtype=F64)
    gW, ga = ts.population_grad(W, T, a=a, wrt_output=True)
    for b in range(3):
        gb, gab = ts.population_grad(W[b], T, a=a[b], wrt_output=True)
        torch.testing.assert_close(gW[b], gb, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(ga[b], gab, rtol=1e-13, atol=1e-15)
    assert bool((gW[1, 2] == 0).all())


# ------------------------------------------------------------------------------------------------ set-up

def test_teachers_and_initialisation():
    T = ts.orthonormal_teacher(8, 4)
    torch.testing.assert_close(T, torch.eye(8, dtype=F64)[:4], rtol=0, atol=0)
    R1 = ts.orthonormal_teacher(8, 4, gen(1), random_rotation=True)
    torch.testing.assert_close(R1 @ R1.T, torch.eye(4, dtype=F64), rtol=0, atol=1e-14)
    torch.testing.assert_close(R1, ts.orthonormal_teacher(8, 4, gen(1), random_rotation=True), rtol=0, atol=0)
    W = ts.small_init(64, 50, 8, 0.1, generator=gen(2))
    assert W.shape == (64, 50, 8) and W.dtype == F64
    var = float(W.var())  # 25600 draws of N(0, 0.01/8): relative s.e. of the variance ≈ 0.9 %
    assert abs(var / (0.01 / 8) - 1) < 0.05
    Wp = ts.small_init(3, 6, 4, generator=gen(3), widths=[2, 6, 4])
    assert bool((Wp[0, 2:] == 0).all()) and bool((Wp[2, 4:] == 0).all()) and bool((Wp[1] != 0).all())
    padded, widths = ts.pad_rows([Wp[0, :2], Wp[1], Wp[2, :4]])
    assert widths.tolist() == [2, 6, 4]
    torch.testing.assert_close(padded, Wp, rtol=0, atol=0)
    a0 = ts.small_output_init(200, 50, 0.1, generator=gen(4))
    assert a0.shape == (200, 50) and abs(float(a0.std()) / 0.1 - 1) < 0.03


# ------------------------------------------------------------------------------------------------------ GD

def _manual_gd(W, T, c, steps, a=None, train_output=False, **kw):
    """Reference loop: W ← W − (c/m) ∇_W R (and a ← a − (c/m) ∇_a R) with population_grad, one model."""
    m = W.shape[0]
    a = torch.ones(m, dtype=F64) if a is None else a.clone()
    W = W.clone()
    for _ in range(steps):
        gW, ga = ts.population_grad(W, T, a=a, wrt_output=True, **kw)
        W = W - (c / m) * gW
        if train_output:
            a = a - (c / m) * ga
    return W, a


@pytest.mark.parametrize("train_output,inputs", [(False, "gaussian"), (True, "gaussian"), (True, "sphere")])
def test_gd_step_rule_matches_explicit_loop(train_output, inputs):
    T = ts.orthonormal_teacher(6, 3)
    W0 = ts.small_init(2, 5, 6, generator=gen(20))
    a = ts.small_output_init(2, 5, generator=gen(21)) if train_output else None
    c, s = (1.5, 2.0), (1.0, 0.7) if inputs == "sphere" else (1.0, 1.0)
    a_star = torch.tensor([1.0, 0.5, 0.75], dtype=F64)
    problem = ts.Population(T, a_star=a_star, scale=torch.tensor(s, dtype=F64), inputs=inputs)
    schedule = ts.GD(c=torch.tensor(c, dtype=F64), steps=30, tol=0.0, check_every=7, train_output=train_output)
    res = ts.gd_population(W0, problem, schedule, a0=a)
    assert res.steps.tolist() == [30, 30] and res.record_steps.tolist() == [0, 7, 14, 21, 28, 30]
    for b in range(2):
        kw = dict(a_star=a_star, scale=s[b], inputs=inputs)
        W_ref, a_ref = _manual_gd(W0[b], T, c[b], 30, None if a is None else a[b], train_output, **kw)
        torch.testing.assert_close(res.W[b], W_ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(res.a[b], a_ref, rtol=1e-12, atol=1e-14)
        assert abs(float(res.final_loss[b] - ts.population_loss(W_ref, T, a=a_ref, **kw))) <= 1e-13
    R0 = ts.population_loss(W0, T, a=a, a_star=a_star, scale=torch.tensor(s, dtype=F64), inputs=inputs)
    torch.testing.assert_close(res.losses[:, 0], R0, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("train_output", [False, True])
def test_gd_padded_batch_equals_separate_runs(train_output):
    T = ts.orthonormal_teacher(8, 4)
    widths = [4, 7, 12]
    W0 = ts.small_init(3, 12, 8, generator=gen(22), widths=widths)
    a0 = ts.small_output_init(3, 12, generator=gen(23)) if train_output else None
    schedule = ts.GD(c=2.0, steps=500, tol=1e-8, train_output=train_output, check_every=25)
    res = schedule.run(ts.Population(T), W0, widths=widths, a0=a0)
    for b, w in enumerate(widths):
        single = ts.gd_population(W0[b:b + 1, :w], T, schedule, a0=None if a0 is None else a0[b:b + 1, :w])
        torch.testing.assert_close(res.W[b, :w], single.W[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(res.losses[b], _pad_history(single.losses[0], res.losses.shape[1]),
                                   rtol=1e-8, atol=1e-13)
        assert bool((res.W[b, w:] == 0).all())  # padding rows stay exactly zero
        assert int(res.steps[b]) == int(single.steps[0]) and bool(res.converged[b]) == bool(single.converged[0])
        assert float(res.eta[b]) == 2.0 / w


def _pad_history(h: torch.Tensor, length: int) -> torch.Tensor:
    """A stopped model's history, continued with its last value up to ``length`` records."""
    return torch.cat([h, h[-1:].expand(length - h.numel())])


def test_gd_dead_neurons_stay_dead_and_divergence_is_isolated():
    T = ts.orthonormal_teacher(8, 4)
    W0 = ts.small_init(3, 6, 8, generator=gen(24))
    W0[:, 2] = 0.0
    res = ts.gd_population(W0, T, ts.GD(c=torch.tensor([2.0, 400.0, 1.0], dtype=F64), steps=400, tol=0.0,
                                        check_every=20))
    assert bool((res.W[:, 2] == 0).all())
    assert res.diverged.tolist() == [False, True, False] and not bool(res.converged.any())
    assert int(res.steps[1]) < 400 and res.steps[[0, 2]].tolist() == [400, 400]
    alone = ts.gd_population(W0[[0, 2]], T, ts.GD(c=torch.tensor([2.0, 1.0], dtype=F64), steps=400, tol=0.0,
                                                 check_every=20))
    torch.testing.assert_close(res.W[[0, 2]], alone.W, rtol=1e-12, atol=1e-14)


def test_runs_restore_the_thread_setting():
    T = ts.orthonormal_teacher(4, 2)
    W0 = ts.small_init(2, 3, 4, generator=gen(26))
    torch.set_num_threads(2)
    ts.gd_population(W0, T, ts.GD(c=1.0, steps=3, threads=1))
    ts.sgd_samples(W0, _teacher_split(torch.randn(8, 4, generator=gen(27), dtype=F64), T),
                   ts.SGD(c=1.0, batch_size=4, epochs=1, threads=1), generator=gen(28))
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"):
        ts.GD(c=1.0, steps=3, threads=0)
    assert torch.get_num_threads() == 2


def test_gd_at_m_equal_M_reaches_the_manifold():
    """m = M = 4, d = 8: every run converges (R < 1e-10) to a point of 𝓜 whose types are a permutation."""
    T = ts.orthonormal_teacher(8, 4)
    W0 = ts.small_init(4, 4, 8, generator=gen(25))
    res = ts.gd_population(W0, T, ts.GD(c=2.0, steps=20_000, tol=1e-13))
    assert bool(res.converged.all()) and not bool(res.diverged.any())
    assert bool((res.final_loss < 1e-10).all()) and int(res.steps.max()) < 20_000
    torch.testing.assert_close(res.final_loss, ts.population_loss(res.W, T), rtol=0, atol=1e-14)
    for b in range(4):
        types = ts.neuron_types(res.W[b], T, tol=1e-5)
        assert sorted(types.tolist()) == [0, 1, 2, 3]
        # each neuron carries the full mass 1 of its teacher neuron
        torch.testing.assert_close(res.W[b].norm(dim=1), torch.ones(4, dtype=F64), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------- SGD

def test_sgd_full_batch_equals_autograd_gd_with_padding():
    """batch_size = n: the sample order is irrelevant, so SGD is GD on the empirical loss (autograd reference)."""
    T = ts.orthonormal_teacher(4, 2)
    X = torch.randn(64, 4, generator=gen(30), dtype=F64)
    y = _student(X, T, torch.ones(2, dtype=F64))
    widths = [3, 5]
    W0 = ts.small_init(2, 5, 4, 0.5, generator=gen(31), widths=widths)
    a0 = ts.small_output_init(2, 5, 0.5, generator=gen(32))
    res = ts.sgd_samples(W0, Split(X, y), ts.SGD(c=0.5, batch_size=64, epochs=25, train_output=True),
                         generator=gen(33), widths=widths, a0=a0)
    for b, w in enumerate(widths):
        W, a = W0[b, :w].clone().requires_grad_(), a0[b, :w].clone().requires_grad_()
        for _ in range(25):
            loss = ((_student(X, W, a) - y) ** 2).mean()
            gW, ga = torch.autograd.grad(loss, (W, a))
            with torch.no_grad():
                W -= (0.5 / w) * gW
                a -= (0.5 / w) * ga
        torch.testing.assert_close(res.W[b, :w], W.detach(), rtol=1e-11, atol=1e-13)
        torch.testing.assert_close(res.a[b, :w], a.detach(), rtol=1e-11, atol=1e-13)
        assert bool((res.W[b, w:] == 0).all())
        final = ((_student(X, W.detach(), a.detach()) - y) ** 2).mean()
        assert abs(float(res.final_loss[b] - final)) <= 1e-13
    assert res.losses.shape == (2, 26) and bool((res.losses[:, -1] < res.losses[:, 0]).all())


def test_sgd_minibatch_orders_are_per_model_and_seeded():
    T = ts.orthonormal_teacher(4, 2)
    X = torch.randn(200, 4, generator=gen(34), dtype=F64)
    W0 = ts.small_init(1, 6, 4, 0.3, generator=gen(35)).expand(3, 6, 4).clone()
    W0[:, 5] = 0.0
    schedule = ts.SGD(c=0.5, batch_size=10, epochs=5)
    res = ts.sgd_samples(W0, _teacher_split(X, T), schedule, generator=gen(36))
    again = schedule.run(_teacher_split(X, T), W0, generator=gen(36))
    torch.testing.assert_close(res.W, again.W, rtol=0, atol=0)
    assert float((res.W[0] - res.W[1]).abs().max()) > 1e-6  # same init, different sample orders
    assert bool((res.W[:, 5] == 0).all())  # dead neuron stays dead
    assert bool((res.losses[:, -1] < 0.5 * res.losses[:, 0]).all())
    # the recorded loss is the empirical loss on all samples
    y = _student(X, T, torch.ones(2, dtype=F64))
    for b in range(3):
        emp = ((_student(X, res.W[b], res.a[b]) - y) ** 2).mean()
        assert abs(float(res.final_loss[b] - emp)) <= 1e-14


# ------------------------------------------------------------------------------------------ minimum manifold

@SETTINGS
@given(seed=st.integers(0, 10_000), M=st.integers(1, 4), extra=st.integers(0, 8),
       dead_prob=st.sampled_from([0.0, 0.3, 0.6]), split=st.sampled_from(["equal", "dirichlet"]),
       rotate=st.booleans())
def test_sampled_minima_are_global_minima(seed, M, extra, dead_prob, split, rotate):
    d, m = M + 2, M + extra
    T = ts.orthonormal_teacher(d, M, gen(seed + 1), random_rotation=True) if rotate else None
    W = ts.sample_minimum(m, M, d, gen(seed), dead_prob=dead_prob, split=split, teacher=T)
    T = ts.orthonormal_teacher(d, M) if T is None else T
    types = ts.neuron_types(W, T)
    assert W.shape == (m, d) and set(types[types >= 0].tolist()) == set(range(M))
    mass = torch.zeros(M, dtype=F64).index_add_(0, types[types >= 0], W[types >= 0].norm(dim=1))
    torch.testing.assert_close(mass, torch.ones(M, dtype=F64), rtol=0, atol=1e-14)
    if split == "equal":
        counts = torch.bincount(types[types >= 0], minlength=M).to(F64)
        torch.testing.assert_close(W[types >= 0].norm(dim=1), 1 / counts[types[types >= 0]], rtol=1e-15, atol=0)
    # exact zero loss up to rounding, and the function itself equals the teacher on random inputs
    assert abs(float(ts.population_loss(W, T))) <= 1e-13
    X = torch.randn(1000, d, generator=gen(seed + 2), dtype=F64)
    diff = torch.relu(X @ W.T).sum(1) - torch.relu(X @ T.T).sum(1)
    assert float(diff.abs().max()) <= 1e-12


def test_neuron_types_detects_dead_aligned_and_rejects_off_manifold_rows():
    T = ts.orthonormal_teacher(4, 2)
    W = torch.tensor([[0.0, 0, 0, 0], [0.3, 0, 0, 0], [0, 0.2, 1e-10, 0], [1e-9, 0, 0, 0]], dtype=F64)
    assert ts.neuron_types(W, T).tolist() == [-1, 0, 1, 0]
    assert ts.neuron_types(W, T, dead_tol=1e-6).tolist() == [-1, 0, 1, -1]
    assert ts.neuron_types(torch.stack([W, W.flip(0)]), T).tolist() == [[-1, 0, 1, 0], [0, 1, 0, -1]]
    with pytest.raises(ValueError, match="aligned with no teacher"):
        ts.neuron_types(torch.tensor([[1.0, 1.0, 0, 0]], dtype=F64), T)
    with pytest.raises(ValueError, match="aligned with no teacher"):  # negative multiple
        ts.neuron_types(torch.tensor([[-1.0, 0, 0, 0]], dtype=F64), T)
    with pytest.raises(ValueError, match="aligned with no teacher"):
        ts.neuron_types(torch.tensor([[0, 0, 1.0, 0]], dtype=F64), T)  # e_3 is not a teacher direction


def test_hall_criterion_on_hand_made_counts():
    T = ts.orthonormal_teacher(3, 2)
    e0, e1, z = T[0], T[1], torch.zeros(3, dtype=F64)
    A = torch.stack([e0 / 2, e0 / 2, e1, z])       # n = (2, 1), z = 1
    B = torch.stack([e0, e1 / 2, e1 / 2, z])       # n = (1, 2), z = 1: excess 1 each way, absorbed
    C = torch.stack([e0 / 3, e0 / 3, e0 / 3, e1])  # n = (3, 1), z = 0
    D = torch.stack([e0 / 2, e0 / 2, e1 / 2, e1 / 2])  # n = (2, 2), z = 0
    assert ts.hall_lmc_criterion(A, B, T) and ts.hall_lmc_criterion(B, A, T)
    assert ts.hall_lmc_criterion(A, C, T) and ts.hall_lmc_criterion(A, D, T)  # A's dead row absorbs the excess
    assert not ts.hall_lmc_criterion(C, D, T) and not ts.hall_lmc_criterion(D, C, T)  # dense, different counts
    assert not ts.hall_lmc_criterion(B, C, T)  # excess (0, 1) vs (2, 0): C has no dead row for B's extra e1
    assert ts.hall_lmc_criterion(C, C.flip(0), T)  # same counts: always connected


def _barrier_modulo_permutation_brute_force(W1: torch.Tensor, W2: torch.Tensor, T: torch.Tensor) -> float:
    perms = torch.tensor(list(itertools.permutations(range(W1.shape[0]))))
    W2p = W2[perms]  # (P, m, d): every row order of W2
    lam = torch.linspace(0, 1, 11, dtype=F64)
    return float(ts.barrier_linear(W1.expand_as(W2p), W2p, T, lam).min())


def test_hall_criterion_equals_brute_force_over_all_permutations():
    T = ts.orthonormal_teacher(4, 2)
    g = gen(40)
    outcomes = []
    for trial in range(24):
        m = 2 + trial % 4
        r = (0.0, 0.25, 0.5)[trial % 3]
        split = ("equal", "dirichlet")[trial % 2]
        W1, W2 = (ts.sample_minimum(m, 2, 4, g, dead_prob=r, split=split) for _ in range(2))
        b = _barrier_modulo_permutation_brute_force(W1, W2, T)
        crit = ts.hall_lmc_criterion(W1, W2, T)
        assert (b < 1e-10) == crit, (W1, W2, b)
        if not crit:
            assert b > 1e-6
        outcomes.append(crit)
    assert 4 <= sum(outcomes) <= 20  # both outcomes are exercised


def test_hall_criterion_equals_functional_matching_barrier():
    """Notes §2.4 / V2: on random pairs of minima, 'FM barrier < 1e-10' ⇔ Hall criterion."""
    d, M = 6, 3
    T = ts.orthonormal_teacher(d, M)
    g = gen(41)
    outcomes = []
    for trial in range(60):
        m = 3 + trial % 10
        r = (0.0, 0.2, 0.4)[trial % 3]
        W1, W2 = (ts.sample_minimum(m, M, d, g, dead_prob=r, split="dirichlet") for _ in range(2))
        p = ts.functional_match(W1, W2)
        assert sorted(p.tolist()) == list(range(m))
        b = float(ts.barrier_linear(W1, W2.index_select(0, p), T))
        crit = ts.hall_lmc_criterion(W1, W2, T)
        assert (b < 1e-10) == crit, (trial, b)
        outcomes.append(crit)
    assert 10 <= sum(outcomes) <= 50


# ------------------------------------------------------------------------------ functional cost, barrier

def test_functional_cost_matches_monte_carlo_and_vanishes_on_compatible_pairs():
    d = 5
    W1 = _awkward_rows(4, d, 50)
    W2 = torch.cat([torch.randn(3, d, generator=gen(51), dtype=F64), 0.4 * W1[:1]])
    C = ts.functional_cost(W1, W2)
    X = torch.randn(200_000, d, generator=gen(52), dtype=F64)
    u = 0.5 * (W1[:, None, :] + W2[None, :, :])
    dev = torch.relu(torch.einsum("nd,ikd->nik", X, u)) - 0.5 * torch.relu(X @ W1.T)[:, :, None] \
        - 0.5 * torch.relu(X @ W2.T)[:, None, :]
    mean, se = _mc_mean(dev ** 2)
    assert bool(((C - mean).abs() <= 5 * se + 1e-12).all())
    # compatible pairs: one row zero (row 1 of W1), or same direction (rows 0, 2 of W1 vs the last row of W2)
    scale = float((W1 ** 2).sum() + (W2 ** 2).sum())
    assert bool((C[1].abs() <= 1e-15 * scale).all())
    assert abs(float(C[0, 3])) <= 1e-15 * scale and abs(float(C[2, 3])) <= 1e-15 * scale
    assert float(C[3, 3]) > 1e-3  # antiparallel pair is incompatible
    torch.testing.assert_close(ts.functional_cost(W1, W2, inputs="sphere"), C / d, rtol=1e-15, atol=0)


def test_functional_match_finds_the_hidden_permutation():
    T = ts.orthonormal_teacher(6, 3)
    # generic rows: c(w, w) = 0 and c(w, w') > 0 otherwise, so the hidden permutation is the unique optimum
    W1 = torch.randn(9, 6, generator=gen(53), dtype=F64)
    p_true = torch.randperm(9, generator=gen(54))
    W2 = W1[p_true.argsort()]  # W2.index_select(0, p_true) == W1
    p = ts.functional_match(W1, W2)
    assert p.tolist() == p_true.tolist()
    # a minimum and a row-shuffled copy: same-type rows are interchangeable, any optimum has zero barrier
    M1 = ts.sample_minimum(9, 3, 6, gen(55), dead_prob=0.2, split="dirichlet")
    M2 = M1[p_true.argsort()]
    assert float(ts.barrier_linear(M1, M2, T)) > 1e-4  # unaligned pair has a barrier
    assert float(ts.barrier_linear(M1, M2.index_select(0, ts.functional_match(M1, M2)), T)) < 1e-14


def test_match_by_type_is_an_optimum_exactly_when_hall_holds_and_functional_match_uses_it():
    """By type: a permutation iff Hall's criterion holds, with the assignment's optimal objective (0) and a zero
    barrier; ``functional_match`` returns it (``by_type=False``: the solver, the same objective)."""
    from lmcnb import assignment

    d, M = 6, 3
    T = ts.orthonormal_teacher(d, M)
    g = gen(81)
    found = 0
    for trial in range(45):
        m = 3 + trial % 12
        r = (0.0, 0.3, 0.5)[trial % 3]
        W1 = ts.sample_minimum(m, M, d, g, dead_prob=r, split="dirichlet")
        W2 = ts.sample_minimum(m, M, d, g, dead_prob=r)
        p = ts.match_by_type(W1, W2)
        assert (p is not None) == ts.hall_lmc_criterion(W1, W2, T), trial
        C = ts.functional_cost(W1, W2)
        q = ts.functional_match(W1, W2, by_type=False)
        assert q.tolist() == assignment.solve(C).tolist()
        if p is None:
            assert ts.functional_match(W1, W2).tolist() == q.tolist()
            continue
        found += 1
        assert p.dtype == torch.int64 and sorted(p.tolist()) == list(range(m))
        assert ts.functional_match(W1, W2).tolist() == p.tolist()
        rows = torch.arange(m)
        assert abs(float(C[rows, p].sum()) - float(C[rows, q].sum())) <= 1e-14
        assert float(ts.barrier_linear(W1, W2.index_select(0, p), T)) < 1e-14
        torch.testing.assert_close(ts.pair_costs(W1, W2.index_select(0, p)), C[rows, p], rtol=0, atol=1e-15)
    assert 10 <= found <= 40


def test_match_by_type_arguments_change_the_result():
    T = ts.orthonormal_teacher(5, 4)
    W1 = ts.sample_minimum(8, 4, 5, gen(82), dead_prob=0.3)
    W2 = W1[torch.randperm(8, generator=gen(83))]
    assert ts.match_by_type(W1, W2) is not None
    assert ts.match_by_type(W1, W2, max_types=3) is None  # four types present
    assert ts.match_by_type(W1, W2, max_types=4) is not None
    # turn every live row of W2 by a sine of about 1e-7 (a cost of ~1e-15 |w|^2: still exact to EXACT_PAIR_TOL)
    live = W2.norm(dim=1) > 0
    bent = W2 + 1e-7 * torch.where(live[:, None], W2.norm(dim=1, keepdim=True), 0.0) * torch.roll(T, 1, 0)[
        torch.arange(8) % 4].flip(1)
    assert ts.match_by_type(W1, bent) is None  # tol 1e-8: no row of W1 shares a type with a row of W2
    p = ts.match_by_type(W1, bent, tol=1e-6)
    assert p is not None and float(ts.barrier_linear(W1, bent.index_select(0, p), T)) < 1e-12
    # turned by 1e-3, the rows are one type at tol 1e-2, but the pairs cost ~1e-7 |w|^2: not exact, so None
    far = W2 + 1e-3 * torch.where(live[:, None], W2.norm(dim=1, keepdim=True), 0.0) * torch.roll(T, 1, 0)[
        torch.arange(8) % 4].flip(1)
    assert ts.match_by_type(W1, far, tol=1e-2) is None
    with pytest.raises(ValueError, match="same shape"):
        ts.match_by_type(W1, W2[:7])
    with pytest.raises(ValueError):
        ts.match_by_type(W1, W2, tol=1.0)
    with pytest.raises(ValueError):
        ts.match_by_type(W1, W2, max_types=0)
    with pytest.raises(TypeError, match="by_type"):
        ts.functional_match(W1, W2, by_type=1)


def test_functional_matching_matcher_reports_which_path_ran():
    W1 = ts.sample_minimum(8, 4, 5, gen(84), dead_prob=0.3)
    W2 = W1[torch.randperm(8, generator=gen(85))]
    a, b = ts.to_module(W1), ts.to_module(W2)
    fast, slow = ts.FunctionalMatching()(a, b), ts.FunctionalMatching(by_type=False)(a, b)
    assert fast.info["by_type"] is True and slow.info["by_type"] is False
    assert abs(fast.objective_history[-1] - slow.objective_history[-1]) <= 1e-14 and abs(fast.objective_history[-1]) <= 1e-14
    assert fast.info["identity_cost"] == pytest.approx(slow.info["identity_cost"], rel=1e-12, abs=1e-15)
    with pytest.raises(TypeError, match="by_type"):
        ts.FunctionalMatching(by_type="yes")


def test_interpolation_loss_and_barrier_match_direct_computation():
    T = ts.orthonormal_teacher(5, 2)
    W1, W2 = torch.randn(2, 3, 4, 5, generator=gen(55), dtype=F64)
    lam = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    curve = ts.interpolation_loss(W1, W2, T, lam)
    assert curve.shape == (3, 5)
    for b in range(3):
        direct = torch.stack([ts.population_loss((1 - l) * W1[b] + l * W2[b], T) for l in lam])
        torch.testing.assert_close(curve[b], direct, rtol=1e-14, atol=1e-14)
        excess = direct - ((1 - lam) * direct[0] + lam * direct[-1])
        torch.testing.assert_close(ts.barrier_linear(W1[b], W2[b], T, lam), excess.max(), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(ts.interpolation_loss(W1[0], W2[0], T, [0.2, 0.5]), curve[0, 1:3], rtol=0, atol=0)
    # default grid of 21 points, and a λ-grid of lmcnb's convention: λ = 0 is W1
    assert ts.interpolation_loss(W1[0], W2[0], T).shape == (21,)
    assert float(ts.interpolation_loss(W1[0], W2[0], T, [0.0])[0]) == float(ts.population_loss(W1[0], T))


# ------------------------------------------------------------------------------------------------- sharpness

def _fd_hessian_top_eigenvalue(W: torch.Tensor, T: torch.Tensor, h: float = 1e-5) -> float:
    """Top eigenvalue of the Hessian over the live rows by central differences of the closed-form gradient."""
    live = (W != 0).any(1)
    idx = [(i, j) for i in torch.nonzero(live)[:, 0].tolist() for j in range(W.shape[1])]
    H = torch.zeros(len(idx), len(idx), dtype=F64)
    for col, (i, j) in enumerate(idx):
        E = torch.zeros_like(W)
        E[i, j] = h
        dg = (ts.population_grad(W + E, T) - ts.population_grad(W - E, T)) / (2 * h)
        H[:, col] = torch.stack([dg[k, l] for k, l in idx])
    return float(torch.linalg.eigvalsh(0.5 * (H + H.T)).max())


def test_sharpness_grows_linearly_with_live_neurons_per_teacher_neuron():
    """Notes T3(c): k live neurons of mass 1/k per teacher neuron (d = 8, M = 4) give λ_max ≈ 3.02·k."""
    T = ts.orthonormal_teacher(8, 4)
    values = {}
    for k in (1, 2):
        W = torch.cat([T / k] * k + [torch.zeros(1, 8, dtype=F64)])  # plus one dead neuron
        assert abs(float(ts.population_loss(W, T))) < 1e-14
        sh = ts.sharpness_population(W, T)
        assert sh.converged
        values[k] = sh.eigenvalue
        assert abs(sh.eigenvalue / (3.02 * k) - 1) < 0.02
        # K is C² but not C³ at parallel rows (its non-smooth part is O(φ³)): central differences err by O(h)
        assert abs(sh.eigenvalue / _fd_hessian_top_eigenvalue(W, T) - 1) < 1e-5
    assert abs(values[2] / values[1] - 2) < 1e-6


def test_sharpness_matches_finite_difference_hessian_at_a_generic_point():
    T = ts.orthonormal_teacher(4, 2)
    W = torch.randn(3, 4, generator=gen(60), dtype=F64)
    sh = ts.sharpness_population(W, T, tol=1e-8)
    assert abs(sh.eigenvalue / _fd_hessian_top_eigenvalue(W, T) - 1) < 1e-6
    both = ts.sharpness_population(W, T, a=torch.ones(3, dtype=F64), train_output=True)
    assert both.eigenvalue >= sh.eigenvalue - 1e-8  # adding coordinates cannot lower λ_max


# ------------------------------------------------------------------------------------------------ bad input

def test_bad_inputs_raise_clear_errors():
    T = ts.orthonormal_teacher(4, 2)
    W = torch.randn(3, 4, dtype=F64, generator=gen(70))
    with pytest.raises(TypeError, match="float64"):
        ts.population_loss(W.float(), T)
    with pytest.raises(TypeError, match="float64"):
        ts.arccos_kernel(W, W.float())
    with pytest.raises(ValueError, match="NaN"):
        ts.population_grad(W * math.nan, T)
    with pytest.raises(ValueError, match="input dimension"):
        ts.population_loss(W, torch.eye(5, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        ts.population_loss(W, T, a=torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="scale"):
        ts.population_loss(W, T, scale=0.0)
    with pytest.raises(ValueError, match="inputs"):
        ts.population_loss(W, T, inputs="cube")
    with pytest.raises(ValueError, match="M <= d"):
        ts.orthonormal_teacher(3, 4)
    with pytest.raises(ValueError, match="Generator"):
        ts.orthonormal_teacher(4, 2, random_rotation=True)
    W0 = ts.small_init(2, 3, 4, generator=gen(71))
    one = ts.GD(c=1.0, steps=1)
    with pytest.raises(ValueError, match="exactly zero"):
        ts.gd_population(W0, T, one, widths=[2, 3])
    with pytest.raises(ValueError, match="widths"):
        ts.gd_population(W0, T, one, widths=[0, 3])
    with pytest.raises(ValueError, match="a0"):
        ts.gd_population(W0, T, ts.GD(c=1.0, steps=1, train_output=True))
    with pytest.raises(ValueError, match="3-D"):
        ts.gd_population(W0[0], T, one)
    with pytest.raises(ValueError, match="c must be"):
        ts.GD(c=-1.0, steps=1)
    with pytest.raises(ValueError, match=r"c must be a number or a \(B,\)"):
        ts.gd_population(W0, T, ts.GD(c=torch.ones(3, dtype=F64), steps=1))
    X = torch.randn(10, 4, dtype=F64, generator=gen(72))
    # replaces the old "exactly one of y and teacher" check: the targets now always come with the samples
    with pytest.raises(TypeError, match="Split"):
        ts.sgd_samples(W0, X, ts.SGD(c=1.0, batch_size=2, epochs=1), generator=gen(0))
    with pytest.raises(ValueError, match="batch_size"):
        ts.sgd_samples(W0, _teacher_split(X, T), ts.SGD(c=1.0, batch_size=11, epochs=1), generator=gen(0))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        ts.sgd_samples(W0, Split(X[:, :3], X[:, 0]), ts.SGD(batch_size=2, epochs=1), generator=gen(0))
    with pytest.raises(TypeError, match="float64"):
        ts.sgd_samples(W0, Split(X.float(), X[:, 0].float()), ts.SGD(batch_size=2, epochs=1), generator=gen(0))
    with pytest.raises(ValueError, match="m >= M"):
        ts.sample_minimum(1, 2, 4, gen(0))
    with pytest.raises(ValueError, match="orthonormal"):
        ts.sample_minimum(3, 2, 4, gen(0), teacher=2 * T)
    with pytest.raises(ValueError, match="split"):
        ts.sample_minimum(3, 2, 4, gen(0), split="uniform")
    with pytest.raises(ValueError, match="same shape"):
        ts.hall_lmc_criterion(W, W[:2], T)
    with pytest.raises(ValueError, match="lambdas"):
        ts.barrier_linear(W, W, T, [0.0, 1.5])
    with pytest.raises(ValueError, match="live"):
        ts.sharpness_population(torch.zeros(3, 4, dtype=F64), T)


def test_neuron_types_of_rotated_teacher_rows_is_exact():
    """Regression: sqrt(|w|² − proj²) cancels to ~1e-8 for rows parallel to a rotated teacher direction, which
    exceeded tol=1e-8; the residual must be computed directly."""
    T = ts.orthonormal_teacher(4, 2, gen(2), random_rotation=True)
    assert ts.neuron_types(T.clone(), T).tolist() == [0, 1]
    assert ts.neuron_types(torch.stack([0.5 * T[1], 2.0 * T[0]]), T, tol=1e-12).tolist() == [1, 0]


# ------------------------------------------------------------------------ output weights, weight matching

def test_functional_cost_with_output_weights_matches_monte_carlo_and_reduces_to_fixed():
    d = 5
    W1, W2 = _awkward_rows(4, d, 80), torch.randn(3, d, generator=gen(81), dtype=F64)
    a1, a2 = torch.randn(4, generator=gen(82), dtype=F64), torch.randn(3, generator=gen(83), dtype=F64)
    C = ts.functional_cost(W1, W2, a1=a1, a2=a2)
    X = torch.randn(200_000, d, generator=gen(84), dtype=F64)
    u = 0.5 * (W1[:, None, :] + W2[None, :, :])
    am = 0.5 * (a1[:, None] + a2[None, :])
    mid = am[None] * torch.relu(torch.einsum("nd,ikd->nik", X, u))
    ends = 0.5 * a1[None, :, None] * torch.relu(X @ W1.T)[:, :, None] + 0.5 * a2[None, None, :] * torch.relu(X @ W2.T)[:, None, :]
    mean, se = _mc_mean((mid - ends) ** 2)
    assert bool(((C - mean).abs() <= 5 * se + 1e-12).all())
    ones1, ones2 = torch.ones(4, dtype=F64), torch.ones(3, dtype=F64)
    torch.testing.assert_close(ts.functional_cost(W1, W2, a1=ones1, a2=ones2), ts.functional_cost(W1, W2),
                               rtol=1e-12, atol=1e-15)
    # identical neurons (w, a) = (w', a') interpolate exactly; a dead neuron (a = 0 or w = 0) pairs with anything
    assert float(ts.functional_cost(W1[:1], W1[:1], a1=a1[:1], a2=a1[:1])) <= 1e-15
    with pytest.raises(ValueError, match="both output weights"):
        ts.functional_cost(W1, W2, a1=a1)


def test_weight_match_equals_brute_force_and_recovers_a_permutation():
    W1 = torch.randn(5, 3, generator=gen(90), dtype=F64)
    W2 = torch.randn(5, 3, generator=gen(91), dtype=F64)
    a1, a2 = torch.randn(5, generator=gen(92), dtype=F64), torch.randn(5, generator=gen(93), dtype=F64)
    for o1, o2 in ((None, None), (a1, a2)):
        A = W1 if o1 is None else torch.cat([W1, o1[:, None]], 1)
        Bm = W2 if o2 is None else torch.cat([W2, o2[:, None]], 1)
        best = min(float(((A - Bm[list(p)]) ** 2).sum()) for p in itertools.permutations(range(5)))
        p = ts.weight_match(W1, W2, a1=o1, a2=o2)
        assert math.isclose(float(((A - Bm[p]) ** 2).sum()), best, rel_tol=1e-12)
    perm = torch.tensor([3, 0, 4, 1, 2])
    inv = torch.argsort(perm)
    assert ts.weight_match(W1, W1[perm]).tolist() == inv.tolist()
    assert ts.functional_match(W1, W1[perm], a1=a1, a2=a1[perm]).tolist() == inv.tolist()


def test_weight_matching_cannot_tell_the_zero_barrier_pairing_from_a_bad_one():
    """On an orthonormal teacher ‖x − y‖² = |x|² + |y|² for neurons of different types, which is also the cost of
    pairing each with a dead neuron: weight matching ties the exact-zero pairing with a pairing that leaves a
    barrier, while functional matching finds the zero (notes §2.3)."""
    T = ts.orthonormal_teacher(2, 2)
    e1, e2, z = T[0], T[1], torch.zeros(2, dtype=F64)
    W1 = torch.stack([e1, 0.5 * e2, 0.5 * e2, z])      # counts (1, 2), one dead
    W2 = torch.stack([0.5 * e1, 0.5 * e1, e2, z])      # counts (2, 1), one dead
    assert ts.hall_lmc_criterion(W1, W2, T)
    good, bad = torch.tensor([0, 2, 3, 1]), torch.tensor([0, 2, 1, 3])
    wm_cost = lambda p: float(((W1 - W2[p]) ** 2).sum())  # noqa: E731
    assert wm_cost(good) == wm_cost(bad) == wm_cost(ts.weight_match(W1, W2))
    assert float(ts.barrier_linear(W1, W2[good], T)) <= 1e-15
    assert float(ts.barrier_linear(W1, W2[bad], T)) > 1e-3
    pb = ts.pair_barriers(W1, W2, T)
    assert float(pb.functional) <= 1e-15 and float(pb.perm) <= 1e-15 and float(pb.identity) > 1e-3
    assert float(pb.perm) == min(float(pb.weight), float(pb.functional))


def test_interpolation_with_output_weights_matches_explicit_loss():
    T = ts.orthonormal_teacher(4, 2)
    W1, W2 = torch.randn(2, 3, 4, generator=gen(100), dtype=F64).unbind(0)
    a1, a2 = torch.randn(2, 3, generator=gen(101), dtype=F64).unbind(0)
    lam = [0.0, 0.3, 1.0]
    got = ts.interpolation_loss(W1, W2, T, lam, a1=a1, a2=a2)
    want = torch.stack([ts.population_loss((1 - t) * W1 + t * W2, T, a=(1 - t) * a1 + t * a2) for t in lam])
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)
    b = ts.barrier_linear(W1, W2, T, lam, a1=a1, a2=a2)
    torch.testing.assert_close(b, (want - torch.tensor([(1 - t) * want[0] + t * want[2] for t in lam],
                                                       dtype=F64)).max(), rtol=1e-13, atol=1e-15)


def test_pair_barriers_batch_equals_single_pairs_and_permuted_copy_has_zero_barrier():
    T = ts.orthonormal_teacher(6, 3)
    g = gen(110)
    W1 = torch.stack([ts.sample_minimum(7, 3, 6, g, 0.2, "dirichlet") for _ in range(3)])
    W2 = torch.stack([ts.sample_minimum(7, 3, 6, g, 0.2, "dirichlet") for _ in range(3)])
    pb = ts.pair_barriers(W1, W2, T)
    assert pb.perm.shape == (3,) and pb.weight_perm.shape == (3, 7)
    for i in range(3):
        one = ts.pair_barriers(W1[i], W2[i], T)
        for k in ts.BARRIER_KINDS:
            torch.testing.assert_close(getattr(one, k), getattr(pb, k)[i], rtol=0, atol=0)
    assert bool((pb.perm <= pb.identity + 1e-15).all())
    perm = torch.randperm(7, generator=gen(111))
    W = ts.sample_minimum(7, 3, 6, gen(112), 0.0, "dirichlet")
    same = ts.pair_barriers(W, W[perm], T)
    assert float(same.perm) <= 1e-14 and float(same.identity) > 1e-3


# ------------------------------------------------------------------------------ the formal model (config)

def test_gd_grad_tol_stops_m_below_M_at_a_critical_point_and_is_off_by_default():
    T = ts.orthonormal_teacher(4, 3)
    W0 = ts.small_init(2, 2, 4, generator=gen(120))
    r = ts.gd_population(W0, T, ts.GD(c=2.0, steps=20_000, tol=1e-10, grad_tol=1e-9))
    assert bool(r.stationary.all()) and not bool(r.converged.any()) and int(r.steps.max()) < 20_000
    g = ts.population_grad(r.W, T)
    assert float(g.abs().max()) < 1e-9 * 1.01 or float(g.abs().max()) < 1e-8
    r0 = ts.gd_population(W0, T, ts.GD(c=2.0, steps=300, tol=1e-10))
    assert not bool(r0.stationary.any()) and int(r0.steps.min()) == 300


def test_teacher_student_validates_its_configuration():
    with pytest.raises(ValueError, match="M <= d"):
        ts.TeacherStudent(d=2, M=3)
    with pytest.raises(ValueError, match="output"):
        ts.TeacherStudent(output="free")
    with pytest.raises(ValueError, match="c"):
        ts.TeacherStudent(c=0.0)
    with pytest.raises(ValueError, match="init_scale"):
        ts.TeacherStudent(init_scale=-0.1)
    with pytest.raises(TypeError):
        ts.TeacherStudent(steps=1.5)
    with pytest.raises(ValueError, match="n_lambdas"):
        ts.TeacherStudent(n_lambdas=1)
    cfg = ts.TeacherStudent(d=4, M=2, steps=10)
    with pytest.raises(ValueError, match="distinct"):
        cfg.train([3], [0, 0])
    with pytest.raises(TypeError, match="widths"):
        cfg.train("3", [0])
    with pytest.raises(ValueError, match="all ones"):
        cfg.barriers(torch.zeros(3, 4, dtype=F64), torch.zeros(3, 4, dtype=F64), 2 * torch.ones(3, dtype=F64),
                     torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="fixed"):
        ts.TeacherStudent(d=4, M=2, output="trained").manifold_sweep([3], 1)
    assert ts.experiment._width_groups([64, 2, 3, 24, 4, 32, 16, 12]) == [[2, 3, 4, 12, 16], [24, 32], [64]]


def test_train_is_reproducible_per_width_and_seed_independent_of_batching():
    cfg = ts.TeacherStudent(d=4, M=2, steps=20_000)
    both = cfg.train([3, 5], [0, 1])
    alone = cfg.train(5, [1])
    assert both.widths == (3, 3, 5, 5) and both.seeds == (0, 1, 0, 1)
    torch.testing.assert_close(both.get(5, 1)[0], alone.W[0], rtol=1e-10, atol=1e-12)
    W0, _ = cfg.init(5, 1)
    W0b, _ = cfg.init(6, 1)
    assert not torch.equal(W0, W0b[:5])  # widths draw independently
    assert bool(both.converged.all()) and bool((both.final_loss < cfg.tol).all())
    assert both.live().tolist() == [3, 3, 5, 5]
    with pytest.raises(ValueError, match="no student"):
        both.index(4, 0)


def test_barrier_sweep_trained_output_variant_permutes_output_weights_too():
    cfg = ts.TeacherStudent(d=4, M=2, output="trained", c=1.0, steps=3000)
    tab = cfg.barrier_sweep([4], 2)
    assert bool((tab.perm <= tab.identity + 1e-15).all()) and bool((tab.perm == torch.minimum(tab.weight,
                                                                                                tab.functional)).all())
    W, a = tab.solutions.get(4, 0)
    assert not bool((a == 1).all())  # output weights were trained
    pb = cfg.barriers(W, W[[1, 0, 3, 2]], a, a[[1, 0, 3, 2]])
    assert float(pb.perm) <= 1e-15 and pb.functional_perm.tolist() == [1, 0, 3, 2]


@pytest.mark.parametrize("output", ["fixed"])
def test_barrier_sweep_at_m_equal_M_is_zero_modulo_permutation_but_not_without(output):
    cfg = ts.TeacherStudent(d=6, M=3, output=output, steps=20_000)
    tab = cfg.barrier_sweep([3], 2)
    assert tab.widths == (3, 3) and tab.seeds_a == (0, 2) and tab.seeds_b == (1, 3)
    assert bool(tab.converged.all())
    assert float(tab.perm.max()) < 1e-8
    assert float(tab.identity.max()) > 1e-2
    df = tab.to_frame()
    assert list(df.columns[:4]) == ["width", "seed_a", "seed_b", "identity"] and len(df) == 2
    summ = tab.summary(["identity", "perm"])
    assert summ.loc[3, "pairs"] == 2 and summ.loc[3, "perm_hi"] < 1e-8


def test_manifold_sweep_zero_at_m_equal_M_and_agrees_with_hall():
    cfg = ts.TeacherStudent(d=6, M=3)
    tab = cfg.manifold_sweep([3, 5, 9], 4, dead_prob=0.2, split="dirichlet", seed=1)
    assert len(tab.widths) == 12 and float(tab.values("perm", 3).max()) < 1e-12
    assert float(tab.loss_a.abs().max()) < 1e-12
    T = cfg.teacher()
    g = gen(1_000_003 * 9 + 1)
    Ws = cfg.sample_minima(9, 8, generator=g, dead_prob=0.2, split="dirichlet")
    for k in range(4):
        hall = ts.hall_lmc_criterion(Ws[2 * k], Ws[2 * k + 1], T)
        assert hall == bool(tab.values("functional", 9)[k] < 1e-10)


def test_manifold_sweep_device_and_loss_chunks_keep_the_values(monkeypatch):
    """``device`` moves the computation, not the draws: on the CPU it is the default's table exactly; the end losses
    chunked over models (``_LOSS_ENTRIES``) equal the one-chunk losses; on CUDA (when present) every value agrees
    within float64 rounding and the table comes back on the CPU."""
    from lmcnb.papers.teacher_student import experiment

    cfg = ts.TeacherStudent(d=5, M=2)
    ref = cfg.manifold_sweep([2, 3, 6], 3, dead_prob=0.3, seed=2)
    cpu = cfg.manifold_sweep([2, 3, 6], 3, dead_prob=0.3, seed=2, device="cpu")
    for k in ("identity", "weight", "functional", "perm", "loss_a", "loss_b"):
        assert torch.equal(getattr(ref, k), getattr(cpu, k)), k
    monkeypatch.setattr(experiment, "_LOSS_BATCH", 1)  # too large for one batch:
    monkeypatch.setattr(experiment, "_LOSS_ENTRIES", 1)  # one model per chunk
    chunked = cfg.manifold_sweep([2, 3, 6], 3, dead_prob=0.3, seed=2)
    for k in ("loss_a", "loss_b"):
        assert torch.allclose(getattr(chunked, k), getattr(ref, k), rtol=0.0, atol=1e-14), k
    with pytest.raises(TypeError, match="device"):
        cfg.manifold_sweep([2], 1, device=3)
    if torch.cuda.is_available():
        gpu = cfg.manifold_sweep([2, 3, 6], 3, dead_prob=0.3, seed=2, device="cuda")
        for k in ("identity", "weight", "functional", "perm", "loss_a", "loss_b"):
            v = getattr(gpu, k)
            assert v.device.type == "cpu" and torch.allclose(v, getattr(ref, k), rtol=1e-9, atol=1e-13), k


def test_step_rule_and_output_init_change_the_run():
    """``step="constant"`` is ``η = c`` at every width (``c·m`` in gd_population's ``c/m`` rule); ``"c/m"`` is not;
    ``output_init="positive"`` flips the signs of the trained output weights, ``"mixed"`` keeps them."""
    from lmcnb.papers.teacher_student.gd import GD, gd_population
    base = dict(d=5, M=2, output="trained", c=0.2, steps=30, tol=0.0, grad_tol=0.0)
    const = ts.TeacherStudent(**base, step="constant")
    cm = ts.TeacherStudent(**base)
    for m in (3, 6):
        W0, a0 = const.init(m, 1)
        ref = gd_population(W0[None], const.teacher(), GD(c=0.2 * m, steps=30, tol=0.0, train_output=True),
                            a0=a0[None])
        sol = const.train(m, [1])
        assert torch.allclose(sol.W[0], ref.W[0], atol=1e-13, rtol=0)
        assert not torch.allclose(cm.train(m, [1]).W[0], sol.W[0], atol=1e-6, rtol=0)
    mixed, pos = ts.TeacherStudent(**base).init(40, 0)[1], ts.TeacherStudent(**base, output_init="positive").init(40, 0)[1]
    assert (mixed < 0).any() and (pos >= 0).all() and torch.equal(pos, mixed.abs())
    fixed = ts.TeacherStudent(d=5, M=2, output_init="positive").init(4, 0)[1]
    assert torch.equal(fixed, torch.ones(4, dtype=torch.float64))
    for bad in ({"step": "1/m"}, {"output_init": "negative"}):
        with pytest.raises(ValueError):
            ts.TeacherStudent(**bad)


# ------------------------------------------------------------------ configuration objects (GD, SGD, Population)

@pytest.mark.parametrize("cls, kw, match", [
    (ts.GD, dict(c=0.0, steps=1), "c must be"),
    (ts.GD, dict(c=torch.tensor([1.0, -1.0], dtype=F64), steps=1), "c must be positive"),
    (ts.GD, dict(c=torch.ones(2), steps=1), "float64"),
    (ts.GD, dict(steps=-1), "steps"),
    (ts.GD, dict(steps=1.5), "steps"),
    (ts.GD, dict(steps=1, tol=-1.0), "tol"),
    (ts.GD, dict(steps=1, check_every=0), "check_every"),
    (ts.GD, dict(steps=1, diverge_loss=0.0), "diverge_loss"),
    (ts.GD, dict(steps=1, grad_tol=-1e-9), "grad_tol"),
    (ts.GD, dict(steps=1, train_output=1), "train_output"),
    (ts.GD, dict(steps=1, threads=0), "threads"),
    (ts.SGD, dict(c=-0.5, batch_size=2, epochs=1), "c must be"),
    (ts.SGD, dict(batch_size=0, epochs=1), "batch_size"),
    (ts.SGD, dict(batch_size=2, epochs=-1), "epochs"),
    (ts.SGD, dict(batch_size=2, epochs=1, tol=math.nan), "tol"),
    (ts.SGD, dict(batch_size=2, epochs=1, diverge_loss=-1.0), "diverge_loss"),
    (ts.SGD, dict(batch_size=2, epochs=1, train_output="yes"), "train_output"),
    (ts.SGD, dict(batch_size=2, epochs=1, threads=-2), "threads"),
    (ts.Population, dict(T=torch.eye(2)), "float64"),
    (ts.Population, dict(T=torch.eye(2, dtype=F64)[0]), "2-D"),
    (ts.Population, dict(T=torch.eye(2, dtype=F64), a_star=torch.ones(3, dtype=F64)), "a_star must have shape"),
    (ts.Population, dict(T=torch.eye(2, dtype=F64), scale=0.0), "scale"),
    (ts.Population, dict(T=torch.eye(2, dtype=F64), scale=torch.tensor([1.0, -1.0], dtype=F64)), "positive"),
    (ts.Population, dict(T=torch.eye(2, dtype=F64), inputs="cube"), "inputs"),
])
def test_configuration_objects_reject_each_bad_field(cls, kw, match):
    with pytest.raises((TypeError, ValueError), match=match):
        cls(**kw)


def test_configuration_objects_are_keyword_only_frozen_and_need_their_required_fields():
    with pytest.raises(TypeError):
        ts.GD(2.0, 10)  # noqa: keywords only
    with pytest.raises(TypeError, match="steps"):
        ts.GD(c=2.0)
    with pytest.raises(TypeError, match="epochs"):
        ts.SGD(batch_size=4)
    g = ts.GD(steps=3)
    assert g.c == 2.0 and g.tol == 1e-12 and g.check_every == 50 and g.threads == 1
    with pytest.raises(AttributeError):
        g.steps = 4  # type: ignore[misc]
    with pytest.raises(TypeError, match="Population or a teacher tensor"):
        g.run("T", ts.small_init(1, 2, 2, generator=gen(0)))
    with pytest.raises(TypeError, match="schedule must be a GD"):
        ts.gd_population(ts.small_init(1, 2, 2, generator=gen(0)), torch.eye(2, dtype=F64), ts.SGD(batch_size=1,
                                                                                                  epochs=1))


@pytest.mark.parametrize("call, key, home", [
    ("gd", "steps", "GD(steps=…)"), ("gd", "c", "GD(c=…)"), ("gd", "tol", "GD(tol=…)"),
    ("gd", "check_every", "GD(check_every=…)"), ("gd", "diverge_loss", "GD(diverge_loss=…)"),
    ("gd", "grad_tol", "GD(grad_tol=…)"), ("gd", "train_output", "GD(train_output=…)"),
    ("gd", "threads", "GD(threads=…)"), ("gd", "a_star", "Population(a_star=…)"),
    ("gd", "scale", "Population(scale=…)"), ("gd", "inputs", "Population(inputs=…)"),
    ("sgd", "c", "SGD(c=…)"), ("sgd", "batch_size", "SGD(batch_size=…)"), ("sgd", "epochs", "SGD(epochs=…)"),
    ("sgd", "tol", "SGD(tol=…)"), ("sgd", "diverge_loss", "SGD(diverge_loss=…)"),
    ("sgd", "train_output", "SGD(train_output=…)"), ("sgd", "threads", "SGD(threads=…)"),
    ("sgd", "y", "samples=lmcnb.data.Split"), ("sgd", "teacher", "samples=lmcnb.data.Split"),
    ("sgd", "a_star", "samples=lmcnb.data.Split"),
    ("sharpness", "a_star", "Population(a_star=…)"), ("sharpness", "scale", "Population(scale=…)"),
    ("sharpness", "inputs", "Population(inputs=…)"),
])
def test_removed_keywords_fail_naming_their_new_home(call, key, home):
    T = ts.orthonormal_teacher(4, 2)
    W0 = ts.small_init(2, 3, 4, generator=gen(80))
    fn = {"gd": ts.gd_population, "sgd": ts.sgd_samples, "sharpness": ts.sharpness_population}[call]
    with pytest.raises(TypeError, match=f"no longer takes `{key}=`: it moved to `{re.escape(home)}"):
        fn(W0, T, **{key: 1.0})


def test_sharpness_of_a_population_with_output_weights_scale_and_sphere_inputs():
    """The Population's a*, scale and inputs all enter the Hessian: compare with power iteration on the loss."""
    from lmcnb.diagnostics import sharpness

    T = ts.orthonormal_teacher(4, 2)
    W = torch.randn(3, 4, generator=gen(81), dtype=F64)
    a_s = torch.tensor([1.0, 3.0], dtype=F64)
    pop = ts.Population(T, a_star=a_s, scale=0.7, inputs="sphere")
    got = ts.sharpness_population(W, pop, n_iter=5000, tol=1e-10)
    ref = sharpness(lambda Wl: ts.population_loss(Wl, T, None, a_s, 0.7, "sphere"), W, n_iter=5000, tol=1e-10)
    assert got.converged and ref.converged
    assert got.eigenvalue == pytest.approx(ref.eigenvalue, rel=1e-6)
    got, plain = got.eigenvalue, ts.sharpness_population(W, T, n_iter=5000, tol=1e-10).eigenvalue
    assert abs(got / plain - 1) > 1e-3
    with pytest.raises(ValueError, match="scale may be a tensor only"):
        ts.sharpness_population(W, ts.Population(T, scale=torch.ones(1, dtype=F64)))


def test_pair_barriers_has_identity_not_naive_and_an_optional_hall_field():
    T = ts.orthonormal_teacher(4, 2)
    W = torch.randn(3, 4, generator=gen(82), dtype=F64)
    pb = ts.pair_barriers(W, W.flip(0), T)
    assert pb.hall is None and float(pb.identity) >= 0
    with pytest.raises(AttributeError, match="PairBarriers.identity"):
        pb.naive
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        pb.other
