"""Tests of lmcnb.meanfield against independent computations: explicit numpy sums, autograd for the mean-field SGD
step, planted permutations, and exactly linear models for the midpoint error."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import meanfield as MF
from lmcnb import train

from _helpers import gen, randn

SETTINGS = settings(max_examples=20)  # example budget (cost); the profile decides the rest


def neurons(shape, N, d, seed, **kw):
    return MF.init_neurons(shape, N, d, gen(seed), **kw)


def numpy_forward(theta: np.ndarray, x: np.ndarray, act: str) -> np.ndarray:
    out = np.zeros(len(x))
    for a, *w, b in theta:
        z = x @ np.array(w) + b
        out += a * (np.maximum(z, 0) if act == "relu" else np.tanh(z))
    return out / len(theta)


# ------------------------------------------------------------------------------------------------------ init
def test_init_shapes_moments_and_determinism():
    th = neurons((3,), 4000, 2, 0, a_mean=1.0, a_std=0.5, w_std=2.0, b_std=0.0)
    assert th.shape == (3, 4000, 4) and th.dtype == torch.float64
    assert abs(float(th[..., 0].mean()) - 1.0) < 0.02 and abs(float(th[..., 0].std()) - 0.5) < 0.02
    assert abs(float(th[..., 1:3].std()) - 2.0) < 0.05
    assert bool((th[..., -1] == 0).all())  # b_std = 0: no bias
    assert torch.equal(th, neurons((3,), 4000, 2, 0, a_mean=1.0, a_std=0.5, w_std=2.0, b_std=0.0))


@pytest.mark.parametrize("kw, err", [(dict(N=0), ValueError), (dict(shape=(0,)), ValueError),
                                     (dict(w_std=-1.0), ValueError), (dict(generator=0), TypeError)])
def test_init_rejects_bad_arguments(kw, err):
    args = dict(shape=(), N=3, d=2, generator=torch.Generator())
    args.update(kw)
    with pytest.raises(err):
        MF.init_neurons(args.pop("shape"), args.pop("N"), args.pop("d"), args.pop("generator"), **args)


# ------------------------------------------------------------------------------------------------------ forward
@pytest.mark.parametrize("act", MF.ACTIVATIONS)
def test_forward_matches_numpy(act):
    th, x = neurons((), 7, 3, 1), randn(11, 3, seed=2)
    np.testing.assert_allclose(MF.forward(th, x, act).numpy(), numpy_forward(th.numpy(), x.numpy(), act),
                               rtol=1e-12, atol=1e-12)


def test_forward_batches_leading_axes():
    th, x = neurons((2, 3), 5, 2, 3), randn(4, 2, seed=4)
    out = MF.forward(th, x)
    assert out.shape == (2, 3, 4)
    torch.testing.assert_close(out[1, 2], MF.forward(th[1, 2], x))


@SETTINGS
@given(st.integers(1, 12), st.integers(0, 10_000))
def test_forward_is_permutation_invariant(N, seed):
    th, x = neurons((), N, 3, seed), randn(5, 3, seed=seed + 1)
    perm = torch.randperm(N, generator=gen(seed))
    torch.testing.assert_close(MF.forward(th[perm], x), MF.forward(th, x), rtol=1e-12, atol=1e-12)


def test_forward_rejects_dimension_mismatch_and_bad_activation():
    with pytest.raises(ValueError, match="D = 5"):
        MF.forward(neurons((), 3, 3, 0), randn(4, 2, seed=0))
    with pytest.raises(ValueError, match="activation"):
        MF.forward(neurons((), 3, 2, 0), randn(4, 2, seed=0), activation="gelu")
    with pytest.raises(TypeError):
        MF.forward(neurons((), 3, 2, 0), torch.ones(4, 2, dtype=torch.int64))


# ------------------------------------------------------------------------------------------------------ SGD
@pytest.mark.parametrize("act", MF.ACTIVATIONS)
def test_sgd_step_is_N_times_the_autograd_step(act):
    """θ ← θ − lr · N · ∇_θ ½ mean_batch (y − f)² (the mean-field scaling), checked with autograd."""
    d, N, B, lr = 3, 6, 8, 0.3
    teacher = MF.tanh_teacher(d, [1.0, -0.5], gen(0))
    th0 = neurons((2,), N, d, 1)
    g, g_copy = gen(5), gen(5)
    th1 = MF.sgd(th0, teacher, 1, lr, B, g, activation=act)
    x = torch.randn(2, B, d, generator=g_copy, dtype=torch.float64)
    y = teacher(x.reshape(-1, d)).reshape(2, B)
    th = th0.clone().requires_grad_(True)
    f = torch.stack([MF.forward(th[r], x[r], act) for r in range(2)])
    (0.5 * (y - f).pow(2).mean(-1)).sum().backward()
    torch.testing.assert_close(th1, th0 - lr * N * th.grad, rtol=1e-10, atol=1e-12)
    assert not torch.equal(th1, th0)


def test_sgd_fits_a_teacher_and_leaves_input_alone():
    d = 2
    teacher = MF.tanh_teacher(d, [1.0, 0.7], gen(1))
    th0 = neurons((), 64, d, 2, b_std=0.5)
    x = randn(2000, d, seed=3)
    before = float((MF.forward(th0, x) - teacher(x)).pow(2).mean())
    th = MF.sgd(th0, teacher, 600, 0.5, 32, gen(4))
    after = float((MF.forward(th, x) - teacher(x)).pow(2).mean())
    assert after < 0.05 * before, (before, after)
    assert torch.equal(th0, neurons((), 64, d, 2, b_std=0.5))


def test_sgd_rejects_bad_arguments():
    th, teacher = neurons((), 3, 2, 0), MF.tanh_teacher(2, [1.0], torch.Generator())
    with pytest.raises(ValueError):
        MF.sgd(th, teacher, 1, 0.0, 4, torch.Generator())
    with pytest.raises(ValueError):
        MF.sgd(th, teacher, 0, 0.1, 4, torch.Generator())
    with pytest.raises(TypeError):
        MF.sgd(th, "teacher", 1, 0.1, 4, torch.Generator())
    with pytest.raises(RuntimeError, match="diverged"):
        MF.sgd(th, lambda x: 1e200 * torch.ones(x.shape[0], dtype=x.dtype), 3, 1.0, 4, torch.Generator())


# ------------------------------------------------------------------------------------------------------ OT alignment
def test_ot_align_recovers_a_planted_permutation():
    th_a = neurons((3,), 20, 4, 6)
    perms = [torch.randperm(20, generator=gen(s)) for s in range(3)]
    th_b = torch.stack([th_a[r, p] for r, p in enumerate(perms)])
    torch.testing.assert_close(MF.ot_align(th_a, th_b), th_a, rtol=0, atol=0)
    x = randn(50, 4, seed=7)
    assert float(MF.interpolation_error(th_a, MF.ot_align(th_a, th_b), x).max()) < 1e-12
    assert float(MF.interpolation_error(th_a, th_b, x).min()) > 1e-3  # the identity pairing is not aligned


def test_ot_align_is_optimal_in_mean_squared_distance():
    th_a, th_b = neurons((), 30, 2, 8), neurons((), 30, 2, 9)
    aligned = MF.ot_align(th_a, th_b)
    best = float((th_a - aligned).pow(2).sum())
    g = gen(0)
    for _ in range(50):
        assert best <= float((th_a - th_b[torch.randperm(30, generator=g)]).pow(2).sum()) + 1e-12


def test_ot_align_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        MF.ot_align(neurons((), 4, 2, 0), neurons((), 5, 2, 0))


# ------------------------------------------------------------------------------------------------------ errors
def test_interpolation_error_matches_explicit_computation():
    th_a, th_b, x = neurons((), 9, 2, 10), neurons((), 9, 2, 11), randn(30, 2, seed=12)
    ts = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)
    fa, fb = numpy_forward(th_a.numpy(), x.numpy(), "relu"), numpy_forward(th_b.numpy(), x.numpy(), "relu")
    expected = max(np.sqrt(np.mean((numpy_forward(((1 - t) * th_a + t * th_b).numpy(), x.numpy(), "relu")
                                    - (1 - t) * fa - t * fb) ** 2)) for t in ts.tolist())
    got = float(MF.interpolation_error(th_a, th_b, x, ts, activation="relu"))
    assert got == pytest.approx(expected, rel=1e-10)
    assert float(MF.interpolation_error(th_a, th_a, x)) == pytest.approx(0.0, abs=1e-14)


def test_mse_barrier_matches_explicit_computation_and_is_zero_for_identical_nets():
    th_a, th_b, x = neurons((), 9, 2, 13), neurons((), 9, 2, 14), randn(40, 2, seed=15)
    y = torch.sin(x[:, 0])
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    loss = [np.mean((numpy_forward(((1 - t) * th_a + t * th_b).numpy(), x.numpy(), "tanh") - y.numpy()) ** 2)
            for t in ts.tolist()]
    expected = max(loss[i] - ((1 - t) * loss[0] + t * loss[-1]) for i, t in enumerate(ts.tolist()))
    assert float(MF.mse_barrier(th_a, th_b, x, y, ts)) == pytest.approx(expected, rel=1e-10)
    assert float(MF.mse_barrier(th_a, th_a, x, y)) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="one target"):
        MF.mse_barrier(th_a, th_b, x, y[:-1])
    with pytest.raises(ValueError, match="ts"):
        MF.mse_barrier(th_a, th_b, x, y, torch.tensor([0.0, 1.5], dtype=torch.float64))


def test_midpoint_error_is_zero_for_linear_models_and_positive_for_relu_nets():
    lin_a, lin_b = train.init_mlps((5, 3), 2, [0, 1], dtype=torch.float64)
    x = randn(64, 5, seed=16)
    assert MF.midpoint_error(lin_a, lin_a.state_dict(), lin_b.state_dict(), x) < 1e-14  # f is linear in θ
    net_a, net_b = train.init_mlps((5, 32, 3), 2, [2, 3], dtype=torch.float64)
    rel = MF.midpoint_error(net_a, net_a.state_dict(), net_b.state_dict(), x)
    raw = MF.midpoint_error(net_a, net_a.state_dict(), net_b.state_dict(), x, relative=False)
    assert rel > 0.05
    with torch.no_grad():
        assert raw / rel == pytest.approx(float(net_a(x).pow(2).mean().sqrt()), rel=1e-10)
    with pytest.raises(TypeError):
        MF.midpoint_error("net", net_a.state_dict(), net_b.state_dict(), x)


def test_matched_midpoint_errors_undo_a_planted_permutation():
    from lmcnb import matching
    from lmcnb import permutation as perm

    (net,) = train.init_mlps((3, 16, 16, 1), 1, [0], bias=False, init="kaiming_normal", dtype=torch.float64)
    planted = perm.random_perms(perm.spec_for(net).sizes(net.state_dict()), gen(1))
    shuffled = perm.permute_model(net, planted)
    x = randn(200, 3, seed=2)
    errs = MF.matched_midpoint_errors(net, shuffled, {"none": matching.IdentityMatching(),
                                                      "ot": matching.OTMatching()}, x)
    assert errs["ot"] < 1e-12 < 0.05 < errs["none"]
    with pytest.raises(TypeError):
        MF.matched_midpoint_errors(net, shuffled, [matching.OTMatching()], x)
