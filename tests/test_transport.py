"""Tests of lmcnb.transport against independent computations: brute force over S_m, scipy's LP solver,
scipy's 1-D Wasserstein distance, an explicit quadratic form, a plain numpy Sinkhorn, and the calibrated
W_2 rate m^{-1/d} of the Ferbach et al. notes (Claims 1 and 2)."""
from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from lmcnb import meanfield as MF
from lmcnb import transport as T
from lmcnb.experiments import ot_rates as OR

SETTINGS = settings(max_examples=25)  # example budget (cost); the profile decides the rest


def cloud(n: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype)


def brute_force_wp(X: np.ndarray, Y: np.ndarray, p: float) -> float:
    """min over all permutations of (1/m Σ ‖x_i − y_π(i)‖^p)^{1/p}, with numpy."""
    m = len(X)
    best = min(np.mean([np.linalg.norm(X[i] - Y[pi[i]]) ** p for i in range(m)])
               for pi in itertools.permutations(range(m)))
    return float(best ** (1 / p))


def lp_wp(X: np.ndarray, Y: np.ndarray, a: np.ndarray, b: np.ndarray, p: float) -> float:
    """W_p by solving the transport linear program with scipy's HiGHS (independent of POT)."""
    n, m = len(a), len(b)
    C = np.linalg.norm(X[:, None, :] - Y[None, :, :], axis=-1) ** p
    A_eq = np.vstack([np.kron(np.eye(n), np.ones(m)), np.kron(np.ones(n), np.eye(m))])
    res = linprog(C.ravel(), A_eq=A_eq, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.success
    return float(res.fun ** (1 / p))


# ------------------------------------------------------------------------------------------------------
# cost_matrix
# ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_cost_matrix_matches_explicit_norms(p):
    X, Y = cloud(7, 4, 0), cloud(5, 4, 1)
    expected = np.linalg.norm(X.numpy()[:, None] - Y.numpy()[None], axis=-1) ** p
    C = T.cost_matrix(X, Y, p=p)
    assert C.shape == (7, 5) and C.dtype == torch.float64
    np.testing.assert_allclose(C.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_cost_matrix_keeps_float32():
    C = T.cost_matrix(cloud(3, 2, 0, torch.float32), cloud(4, 2, 1, torch.float32))
    assert C.dtype == torch.float32 and C.shape == (3, 4)


@pytest.mark.parametrize("rank", [3, 2])
def test_mahalanobis_equals_euclidean_after_sqrt_transform(rank):
    d = 3
    A = cloud(d, rank, 5)
    sigma = A @ A.T  # PSD, singular when rank < d
    X, Y = cloud(6, d, 2), cloud(4, d, 3)
    root = torch.from_numpy(np.real(scipy.linalg.sqrtm(sigma.numpy())))
    for p in (1, 2):
        C = T.cost_matrix(X, Y, p=p, metric=sigma)
        np.testing.assert_allclose(C.numpy(), T.cost_matrix(X @ root, Y @ root, p=p).numpy(), rtol=1e-6, atol=1e-9)
    diff = X.numpy()[:, None] - Y.numpy()[None]
    quad = np.einsum("ijk,kl,ijl->ij", diff, sigma.numpy(), diff)
    np.testing.assert_allclose(T.cost_matrix(X, Y, metric=sigma).numpy(), quad, rtol=1e-10, atol=1e-10)


def test_metric_identity_is_euclidean():
    X, Y = cloud(5, 3, 0), cloud(5, 3, 1)
    np.testing.assert_allclose(T.cost_matrix(X, Y, metric=torch.eye(3, dtype=torch.float64)).numpy(),
                               T.cost_matrix(X, Y).numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------------------------------
# Birkhoff: POT's exact plan is a permutation and matches Hungarian (Claim 1)
# ------------------------------------------------------------------------------------------------------

@SETTINGS
@given(m=st.integers(1, 12), d=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_pot_plan_is_the_hungarian_permutation(m, d, seed):
    X, Y = cloud(m, d, seed), cloud(m, d, seed + 1)
    C = T.cost_matrix(X, Y)
    w = torch.full((m,), 1.0 / m, dtype=torch.float64)
    plan = T.ot_plan(w, w, C)
    assert T.is_permutation_plan(plan)
    perm_h, perm_p = T.hungarian(C), T.plan_to_permutation(plan)
    expected = torch.zeros(m, m, dtype=torch.float64)
    expected[torch.arange(m), perm_p] = 1.0 / m
    torch.testing.assert_close(plan, expected, rtol=0, atol=1e-12)
    cost_h = float(C[torch.arange(m), perm_h].sum())
    assert float((plan * C).sum()) * m == pytest.approx(cost_h, rel=1e-10, abs=1e-12)
    assert torch.equal(perm_h, perm_p)  # continuous data: the optimum is unique almost surely
    assert torch.equal(T.ot_match(X, Y, backend="pot", check=True), perm_h)
    assert torch.equal(T.ot_match(X, Y, check=True), perm_h)


def test_claim1_calibration_200_points():
    X, Y = cloud(200, 5, 10), cloud(200, 5, 11)
    C = T.cost_matrix(X, Y)
    w = torch.full((200,), 1 / 200, dtype=torch.float64)
    plan = T.ot_plan(w, w, C)
    assert int((plan > 0).sum()) == 200
    assert float((plan * C).sum()) == pytest.approx(T.wasserstein(X, Y) ** 2, rel=1e-8)


@SETTINGS
@given(m=st.integers(1, 6), d=st.integers(1, 3), p=st.sampled_from([1.0, 2.0, 3.0]), seed=st.integers(0, 10_000))
def test_wasserstein_equals_brute_force_over_permutations(m, d, p, seed):
    X, Y = cloud(m, d, seed), cloud(m, d, seed + 7)
    assert T.wasserstein(X, Y, p=p) == pytest.approx(brute_force_wp(X.numpy(), Y.numpy(), p), rel=1e-10)


@SETTINGS
@given(m=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_hungarian_maximize_against_brute_force(m, seed):
    S = cloud(m, m, seed)
    perm = T.hungarian(S, maximize=True)
    best = max(sum(float(S[i, pi[i]]) for i in range(m)) for pi in itertools.permutations(range(m)))
    assert perm.dtype == torch.long
    assert float(S[torch.arange(m), perm].sum()) == pytest.approx(best, rel=1e-12)


def test_ot_match_aligns_a_planted_permutation():
    X = cloud(50, 4, 3)
    planted = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    Y = X[planted] + 1e-3 * cloud(50, 4, 4)  # Y[j] ≈ X[planted[j]]
    perm = T.ot_match(X, Y)
    assert torch.equal(planted[perm], torch.arange(50))
    torch.testing.assert_close(Y.index_select(0, perm), X, atol=1e-2, rtol=0)


# ------------------------------------------------------------------------------------------------------
# Rates (Claim 2), unequal sizes and weights
# ------------------------------------------------------------------------------------------------------

def test_w2_between_two_samples_shrinks_like_m_to_minus_one_over_d():
    d, ms = 5, [32, 64, 128, 256, 512, 1024]
    w2 = [np.mean([T.wasserstein(cloud(m, d, 10 * m + r), cloud(m, d, 10 * m + r + 5000)) for r in range(3)])
          for m in ms]
    assert all(b < a for a, b in zip(w2, w2[1:])), w2
    slope = np.polyfit(np.log(ms), np.log(w2), 1)[0]
    assert abs(slope + 1 / d) <= 0.04, slope  # calibration: -0.193 (64..2048), -0.20..-0.22 here


def test_unequal_sizes_and_weights_match_linear_program():
    X, Y = cloud(5, 2, 0), cloud(3, 2, 1)
    g = torch.Generator().manual_seed(2)
    a = torch.rand(5, generator=g, dtype=torch.float64)
    a /= a.sum()
    b = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    for p in (1, 2):
        expected = lp_wp(X.numpy(), Y.numpy(), a.numpy(), b.numpy(), p)
        assert T.wasserstein(X, Y, p=p, a=a, b=b) == pytest.approx(expected, rel=1e-7)
    expected = lp_wp(X.numpy(), Y.numpy(), np.full(5, 0.2), np.full(3, 1 / 3), 2)
    assert T.wasserstein(X, Y) == pytest.approx(expected, rel=1e-7)
    plan = T.ot_plan(a, b, T.cost_matrix(X, Y))
    torch.testing.assert_close(plan.sum(1), a, atol=1e-12, rtol=0)
    torch.testing.assert_close(plan.sum(0), b, atol=1e-12, rtol=0)


def test_weighted_w1_in_one_dimension_matches_scipy():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(9, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    a, b = torch.rand(9, generator=g, dtype=torch.float64), torch.rand(6, generator=g, dtype=torch.float64)
    a, b = a / a.sum(), b / b.sum()
    expected = scipy.stats.wasserstein_distance(x.numpy(), y.numpy(), a.numpy(), b.numpy())
    assert T.wasserstein(x[:, None], y[:, None], p=1, a=a, b=b) == pytest.approx(expected, rel=1e-9)


def test_explicit_uniform_weights_use_the_same_answer():
    X, Y = cloud(6, 2, 0), cloud(6, 2, 1)
    w = torch.full((6,), 1 / 6, dtype=torch.float64)
    assert T.wasserstein(X, Y, a=w, b=w) == pytest.approx(brute_force_wp(X.numpy(), Y.numpy(), 2), rel=1e-10)


def test_wasserstein_with_metric_equals_transformed_points():
    A = cloud(3, 3, 9)
    sigma = A @ A.T + 0.1 * torch.eye(3, dtype=torch.float64)
    root = torch.from_numpy(np.real(scipy.linalg.sqrtm(sigma.numpy())))
    X, Y = cloud(5, 3, 0), cloud(5, 3, 1)
    assert T.wasserstein(X, Y, metric=sigma) == pytest.approx(
        brute_force_wp((X @ root).numpy(), (Y @ root).numpy(), 2), rel=1e-8)


def numpy_sinkhorn(a, b, C, reg, iters=5000):
    K = np.exp(-C / reg)
    u = np.ones_like(a)
    for _ in range(iters):
        v = b / (K.T @ u)
        u = a / (K @ v)
    return u[:, None] * K * v[None, :]


def test_sinkhorn_plan_matches_plain_iterations_and_approaches_emd():
    X, Y = cloud(6, 2, 0), cloud(4, 2, 1)
    C = T.cost_matrix(X, Y)
    a, b = torch.full((6,), 1 / 6, dtype=torch.float64), torch.full((4,), 1 / 4, dtype=torch.float64)
    plan = T.ot_plan(a, b, C, method="sinkhorn", reg=0.5, stop_thr=1e-13, num_iter_max=10_000)
    np.testing.assert_allclose(plan.numpy(), numpy_sinkhorn(a.numpy(), b.numpy(), C.numpy(), 0.5), atol=1e-10)
    exact = float((T.ot_plan(a, b, C) * C).sum())
    costs = [float((T.ot_plan(a, b, C, method="sinkhorn", reg=r, num_iter_max=20_000) * C).sum())
             for r in (1.0, 0.3, 0.1)]  # max C ≈ 9.8; smaller reg needs many more iterations
    assert all(c >= exact - 1e-12 for c in costs)  # exact marginals: the entropic plan is feasible
    assert all(x > y for x, y in zip(costs, costs[1:])) and costs[-1] - exact < 0.01 * exact


def test_is_permutation_plan_rejects_fractional_plans():
    n = 4
    assert not T.is_permutation_plan(torch.full((n, n), 1 / n**2, dtype=torch.float64))
    P = torch.eye(n, dtype=torch.float64)[[2, 0, 3, 1]] / n
    assert T.is_permutation_plan(P) and T.is_permutation_plan(3 * P)
    assert torch.equal(T.plan_to_permutation(P), torch.tensor([2, 0, 3, 1]))
    P2 = P.clone()
    P2[0, 2], P2[0, 1] = 0.9 / n, 0.1 / n
    assert not T.is_permutation_plan(P2)
    with pytest.raises(ValueError, match="not a scaled permutation"):
        T.plan_to_permutation(P2)
    assert not T.is_permutation_plan(torch.ones(2, 3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------------
# Bad input and the POT dependency
# ------------------------------------------------------------------------------------------------------

def test_bad_inputs_raise():
    X, Y = cloud(4, 3, 0), cloud(4, 3, 1)
    w = torch.full((4,), 0.25, dtype=torch.float64)
    C = T.cost_matrix(X, Y)
    with pytest.raises(ValueError, match="same dimension"):
        T.cost_matrix(X, cloud(4, 2, 1))
    with pytest.raises(TypeError, match="same dtype"):
        T.cost_matrix(X, Y.float())
    with pytest.raises(TypeError, match="floating"):
        T.cost_matrix(X.long(), Y.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        T.wasserstein(X.numpy(), Y)
    with pytest.raises(ValueError, match="2 dimension"):
        T.cost_matrix(X[0], Y)
    bad = X.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        T.wasserstein(bad, Y)
    with pytest.raises(ValueError, match="NaN"):
        T.hungarian(torch.tensor([[0.0, float("inf")], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="square"):
        T.hungarian(C[:, :3])
    with pytest.raises(ValueError, match="non-negative"):
        T.ot_plan(torch.tensor([0.5, 0.75, -0.25, 0.0], dtype=torch.float64), w, C)
    with pytest.raises(ValueError, match="same total mass"):
        T.ot_plan(w, 2 * w, C)
    with pytest.raises(ValueError, match="sum to 1"):
        T.wasserstein(X, Y, a=2 * w)
    with pytest.raises(ValueError, match="4 entries"):
        T.ot_plan(w[:3], w, C)
    with pytest.raises(ValueError, match="reg"):
        T.ot_plan(w, w, C, method="sinkhorn")
    with pytest.raises(ValueError, match="reg"):
        T.ot_plan(w, w, C, reg=0.1)
    with pytest.raises(ValueError, match="method"):
        T.ot_plan(w, w, C, method="exact")
    with pytest.raises(ValueError, match="p must be"):
        T.wasserstein(X, Y, p=0.5)
    with pytest.raises(TypeError, match="p must be"):
        T.cost_matrix(X, Y, p=True)
    with pytest.raises(ValueError, match="equal sizes"):
        T.ot_match(X, cloud(5, 3, 2))
    with pytest.raises(ValueError, match="backend"):
        T.ot_match(X, Y, backend="lap")
    with pytest.raises(ValueError, match="symmetric"):
        T.cost_matrix(X, Y, metric=torch.triu(torch.ones(3, 3, dtype=torch.float64)))
    with pytest.raises(ValueError, match="positive semi-definite"):
        T.cost_matrix(X, Y, metric=-torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        T.cost_matrix(X, Y, metric=torch.eye(2, dtype=torch.float64))


def test_missing_pot_gives_install_hint_but_hungarian_paths_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)
    X, Y = cloud(4, 2, 0), cloud(4, 2, 1)
    w = torch.full((4,), 0.25, dtype=torch.float64)
    with pytest.raises(ImportError, match="pip install POT"):
        T.ot_plan(w, w, T.cost_matrix(X, Y))
    with pytest.raises(ImportError, match="pip install POT"):
        T.wasserstein(X, cloud(3, 2, 1))
    with pytest.raises(ImportError, match="pip install POT"):
        T.ot_match(X, Y, backend="pot")
    assert T.wasserstein(X, Y) == pytest.approx(brute_force_wp(X.numpy(), Y.numpy(), 2), rel=1e-10)
    assert T.ot_match(X, Y).shape == (4,)
    # explicit uniform weights of equal-size measures take the Hungarian path too (no POT needed)
    assert T.wasserstein(X, Y, a=w, b=w) == pytest.approx(brute_force_wp(X.numpy(), Y.numpy(), 2), rel=1e-10)
    assert T.wasserstein(X, Y, b=w) == T.wasserstein(X, Y, a=w) == T.wasserstein(X, Y)


def test_importing_transport_does_not_import_pot():
    code = "import sys, lmcnb.transport; assert 'ot' not in sys.modules, 'POT imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


# ------------------------------------------------------------------------------------------------------
# Samplers, two-sample rates and matching dimensions (Ferbach et al. notes, Claims 2-4 and 10)
# ------------------------------------------------------------------------------------------------------

def test_samplers_shapes_and_determinism():
    for sampler, d in [(OR.gaussian_sampler(4), 4), (OR.uniform_sampler(3), 3), (OR.subspace_sampler(6, 2, 0.1), 6)]:
        X = sampler(50, torch.Generator().manual_seed(0))
        assert X.shape == (50, d) and X.dtype == torch.float64
        assert torch.equal(X, sampler(50, torch.Generator().manual_seed(0)))
    U = OR.uniform_sampler(3)(1000, torch.Generator().manual_seed(1))
    assert float(U.min()) >= 0 and float(U.max()) <= 1


def test_subspace_sampler_rank_depends_on_noise():
    exact = OR.subspace_sampler(10, 3, 0.0)(200, torch.Generator().manual_seed(0))
    noisy = OR.subspace_sampler(10, 3, 0.05)(200, torch.Generator().manual_seed(0))
    assert int(torch.linalg.matrix_rank(exact)) == 3
    assert int(torch.linalg.matrix_rank(noisy)) == 10
    with pytest.raises(ValueError, match="k must be <= d"):
        OR.subspace_sampler(3, 4, 0.0)
    with pytest.raises(ValueError):
        OR.subspace_sampler(3, 2, -0.1)


def test_two_sample_wasserstein_equals_wasserstein_of_the_same_draws():
    sampler = OR.gaussian_sampler(3)
    W = OR.two_sample_wasserstein(sampler, [6, 16], reps=2, seed=4)
    assert W.shape == (2, 2)
    g = torch.Generator().manual_seed(4)
    expected = []
    for m in [6, 16]:
        for _ in range(2):
            X, Y = sampler(m, g), sampler(m, g)
            expected.append(brute_force_wp(X.numpy(), Y.numpy(), 2) if m == 6 else T.wasserstein(X, Y))
    np.testing.assert_allclose(W.ravel(), expected, rtol=1e-10)
    np.testing.assert_array_equal(W, OR.two_sample_wasserstein(sampler, [6, 16], reps=2, seed=4))


def test_two_sample_wasserstein_rejects_bad_arguments():
    with pytest.raises(TypeError):
        OR.two_sample_wasserstein("gauss", [4], 1)
    with pytest.raises(ValueError):
        OR.two_sample_wasserstein(OR.gaussian_sampler(2), [], 1)
    with pytest.raises(ValueError):
        OR.two_sample_wasserstein(OR.gaussian_sampler(2), [4], 0)
    with pytest.raises(ValueError, match="sampler"):
        OR.two_sample_wasserstein(lambda m, g: torch.zeros(m + 1, 2, dtype=torch.float64), [4], 1)


def test_low_dimensional_support_converges_faster_than_full_dimension():
    """Rate follows the support's dimension k, not the ambient d (Weed & Bach; Ferbach et al. Thm 5.4 shape)."""
    ms = [32, 64, 128, 256]
    slope = {}
    for name, sampler in [("k=2", OR.subspace_sampler(20, 2, 0.0)), ("d=20", OR.gaussian_sampler(20))]:
        W = OR.two_sample_wasserstein(sampler, ms, reps=2, seed=1)
        slope[name] = np.polyfit(np.log(np.repeat(ms, 2)), np.log(W.ravel()), 1)[0]
    assert slope["k=2"] < -0.3 and slope["d=20"] > -0.12, slope


def _mlp(weights, biases):
    from lmcnb.models import MLP

    net = MLP(weights[0].shape[1], [w.shape[0] for w in weights[:-1]], weights[-1].shape[0], dtype=torch.float64)
    with torch.no_grad():
        for layer, w, b in zip(net.layers, weights, biases):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return net


def _dim(S: np.ndarray) -> float:
    return float(np.trace(S) ** 2 / np.trace(S @ S))


@pytest.mark.parametrize("centered", [False, True])
def test_matching_dimensions_match_numpy(centered):
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64),
          torch.randn(2, 5, generator=g, dtype=torch.float64)]
    bs = [torch.randn(w.shape[0], generator=g, dtype=torch.float64) for w in Ws]
    x = torch.rand(300, 4, generator=g, dtype=torch.float64)
    out = OR.matching_dimensions(_mlp(Ws, bs), x, centered=centered)
    assert set(out) == {"euclidean", "covariance", "activation"} and all(len(v) == 2 for v in out.values())
    h = x.numpy()
    for layer in range(2):
        W, b = Ws[layer].numpy(), bs[layer].numpy()
        z = np.maximum(h @ W.T + b, 0)
        Wc = W - W.mean(0) if centered else W
        hc = h - h.mean(0) if centered else h
        zc = z - z.mean(0) if centered else z
        assert out["euclidean"][layer] == pytest.approx(_dim(Wc.T @ Wc), rel=1e-10)
        assert out["covariance"][layer] == pytest.approx(_dim(W @ (hc.T @ hc / len(h)) @ W.T), rel=1e-10)
        assert out["activation"][layer] == pytest.approx(_dim(zc.T @ zc), rel=1e-10)
        h = z


def test_matching_dimensions_calibration_values():
    """Dim of a random 512 x 784 layer is about 784·512/(512+784+1) ≈ 309 (Ferbach et al. notes, Claim 10)."""
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(512, 784, generator=g, dtype=torch.float64) / 28, torch.randn(3, 512, dtype=torch.float64)]
    net = _mlp(Ws, [torch.zeros(512, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)])
    x = torch.randn(100, 784, generator=g, dtype=torch.float64)
    dims = OR.matching_dimensions(net, x)
    with pytest.raises(KeyError, match="'naive' was renamed 'euclidean'"):
        dims["naive"]
    assert dims["euclidean"][0] == pytest.approx(784 * 512 / (512 + 784 + 1), rel=0.02)
    with pytest.raises(TypeError):
        OR.matching_dimensions(torch.nn.Linear(3, 3), x)


def test_birkhoff_statistics_uniform_vs_unequal_weights():
    """Uniform weights: m non-zeros, no cost gap, a permutation plan, checked against brute force over S_m;
    unequal weights (chapter 5a's control): the plan splits mass, its cost differs from the assignment's."""
    m = 6
    X, Y = cloud(m, 3, 0), cloud(m, 3, 1)
    C = T.cost_matrix(X, Y)
    u = torch.full((m,), 1 / m, dtype=torch.float64)
    nnz, gap, perm = OR.birkhoff_statistics(u, u, C)
    assert (nnz, perm) == (m, True) and gap < 1e-12
    best = brute_force_wp(X.numpy(), Y.numpy(), 2) ** 2
    assert float((T.ot_plan(u, u, C) * C).sum()) == pytest.approx(best, rel=1e-12)
    w = torch.tensor([0.3, 0.05, 0.25, 0.1, 0.2, 0.1], dtype=torch.float64)
    nnz_w, gap_w, perm_w = OR.birkhoff_statistics(w, u, C)
    assert nnz_w > m and not perm_w and gap_w > 1e-3
    assert OR.birkhoff_statistics(u, w, C)[0] > m  # b matters too
    assert OR.birkhoff_statistics(u, u, C, tol=2 / m)[0] == 0  # tol: entries are 1/m
    C2 = T.cost_matrix(X, cloud(m, 3, 2))
    assert OR.birkhoff_statistics(w, u, C2)[1] != pytest.approx(gap_w)  # C matters
    with pytest.raises(ValueError):
        OR.birkhoff_statistics(u, u, C[:, :5])
    with pytest.raises(ValueError):
        OR.birkhoff_statistics(u, u, C, tol=0.0)


def test_identity_cost_ratio_independent_vs_coupled_samples():
    X, Y = cloud(40, 3, 0), cloud(40, 3, 1)
    C = T.cost_matrix(X, Y)
    best = float(C[torch.arange(40), T.hungarian(C)].mean())
    assert OR.identity_cost_ratio(X, Y) == pytest.approx(float(C.diagonal().mean()) / best, rel=1e-12)
    assert OR.identity_cost_ratio(X, Y) >= 2
    coupled = X + 0.01 * cloud(40, 3, 2)
    assert OR.identity_cost_ratio(X, coupled) == pytest.approx(1.0, abs=1e-12)
    assert OR.identity_cost_ratio(X, Y, p=1) != pytest.approx(OR.identity_cost_ratio(X, Y))
    C1 = T.cost_matrix(X, Y, p=1)
    assert OR.identity_cost_ratio(X, Y, p=1) == pytest.approx(
        float(C1.diagonal().mean()) / float(C1[torch.arange(40), T.hungarian(C1)].mean()), rel=1e-12)
    with pytest.raises(ValueError):
        OR.identity_cost_ratio(X, X[torch.randperm(40, generator=torch.Generator().manual_seed(0))])
    with pytest.raises(ValueError):
        OR.identity_cost_ratio(X, Y[:30])
    with pytest.raises(ValueError):
        OR.identity_cost_ratio(X, Y, p=0.5)


def _fig2_pair():
    from lmcnb import train
    from lmcnb.data import Split
    a, b = train.init_mlps((4, 6, 6, 3), 2, [0, 1], dtype=torch.float64)
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():  # labels a fits, and sharp logits: the identity path has a barrier
        y = a(x).argmax(1)
        for p in [*a.parameters(), *b.parameters()]:
            p.mul_(3)
    return a, b, Split(x, y)


@pytest.mark.filterwarnings("ignore:temperature hit the bound")
def test_matcher_barriers_equal_merge_compare_and_use_every_argument():
    from lmcnb import matching, merge
    from lmcnb.data import Split
    a, b, split = _fig2_pair()
    other = Split(split.x.flip(0), split.y)
    ms = {"identity": matching.IdentityMatching(), "Euclidean WM": matching.OTMatching()}
    lam = torch.linspace(0, 1, 5, dtype=torch.float64)
    row = OR.matcher_barriers(merge.Pair(a, b), ms, split, data=split.x, lambdas=lam, spaces={"Euclidean WM":
                                                                                               "euclidean"})
    ref = merge.compare(merge.Pair(a, b), ms, lam, merge.Empirical(split.x, split.y), data=split.x)
    for k, o in ref.outcomes.items():
        assert row[k, "loss"] == o.curve.barrier("linear", "loss")
        assert row[k, "accuracy"] == o.curve.barrier("linear", "accuracy")
    assert row["loss"] == pytest.approx(np.mean(ref.outcomes["identity"].curve.endpoints("loss")))
    assert "cal" not in row and ("identity", "calibrated_loss") not in row and ("identity", "dim") not in row
    assert row["Euclidean WM", "dim"][0] == OR.matching_dimensions(a, split.x)["euclidean"][0]
    # evaluation split, lambdas, data and calibration each change the result
    row_e = OR.matcher_barriers(merge.Pair(a, b), ms, Split(split.x[:30], split.y[:30]), data=split.x,
                                lambdas=lam, spaces={})
    assert row_e["identity", "loss"] != row["identity", "loss"]
    row_l = OR.matcher_barriers(merge.Pair(a, b), ms, split, data=split.x, lambdas=lam[[0, 1, 4]], spaces={})
    assert row_l["identity", "loss"] != row["identity", "loss"]
    row_d = OR.matcher_barriers(merge.Pair(a, b), ms, split, data=other.x[:20] * 2, lambdas=lam,
                                spaces={"Euclidean WM": "covariance"})
    assert row_d["Euclidean WM", "dim"][0] != OR.matching_dimensions(a, split.x)["covariance"][0]
    row_c = OR.matcher_barriers(merge.Pair(a, b), ms, split, data=split.x, lambdas=lam, calibration=other,
                                spaces={})
    assert {"cal", "T"} <= set(row_c) and ("Euclidean WM", "calibrated_loss") in row_c
    assert row_c["T"] > 0


def test_matcher_barriers_default_spaces_and_bad_input():
    from lmcnb import matching, merge
    a, b, split = _fig2_pair()
    ms = {k: matching.IdentityMatching() for k in OR.FIG2_SPACES}
    row = OR.matcher_barriers(merge.Pair(a, b), ms, split, data=split.x, lambdas=torch.linspace(0, 1, 3))
    dims = OR.matching_dimensions(a, split.x)
    for k, key in OR.FIG2_SPACES.items():
        assert list(row[k, "dim"]) == dims[key]
    with pytest.raises(ValueError, match="not given"):
        OR.matcher_barriers(merge.Pair(a, b), {"identity": matching.IdentityMatching()}, split, data=split.x,
                            lambdas=torch.linspace(0, 1, 3))
    with pytest.raises(TypeError, match="Split"):
        OR.matcher_barriers(merge.Pair(a, b), ms, (split.x, split.y), data=split.x, lambdas=torch.linspace(0, 1, 3))


# ---------------------------------------------------------------------------------------------------------------
# Chapter 5b: width needed for ε and Lemma 4.1 layer by layer (ot_rates.width_needed, ot_rates.layerwise_errors)
# ---------------------------------------------------------------------------------------------------------------

def test_width_needed_inverts_an_exact_power_law():
    widths = [64, 128, 256, 512]
    errs = [[2.0 * m ** -0.2] * 3 for m in widths]  # err = 2 m^{-1/5}: width ~ eps^{-5}
    w = OR.width_needed(widths, errs, n_boot=50)
    assert w.decay.slope == pytest.approx(-0.2) and w.exponent == pytest.approx(5.0)
    assert w.ci_low == pytest.approx(5.0) and w.ci_high == pytest.approx(5.0)
    assert w.width(0.5) == pytest.approx((2.0 / 0.5) ** 5, rel=1e-9)
    assert w.width(1.0) < w.width(0.5)  # eps changes the result


def test_width_needed_bootstrap_arguments_and_flat_errors():
    rng = np.random.default_rng(0)
    widths = [64, 128, 256, 512]
    errs = [list(m ** -0.5 * np.exp(0.3 * rng.standard_normal(4))) for m in widths]
    a = OR.width_needed(widths, errs, n_boot=200, seed=0)
    b = OR.width_needed(widths, errs, n_boot=200, seed=1)
    c = OR.width_needed(widths, errs, n_boot=200, ci=0.5, seed=0)
    assert (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high)
    assert c.ci_high - c.ci_low < a.ci_high - a.ci_low
    assert OR.width_needed(widths, errs, n_boot=10).decay.n_boot == 10
    flat = OR.width_needed(widths, [[0.3, 0.31]] * 4, n_boot=50)
    assert flat.width(0.1) == np.inf or flat.exponent > 50
    rising = OR.width_needed(widths, [[m ** 0.1] * 2 for m in widths], n_boot=20)
    assert rising.exponent == np.inf and rising.width(0.1) == np.inf
    with pytest.raises(ValueError, match="eps"):
        a.width(0.0)


def _mlp_pair(widths, seed):
    from lmcnb import train
    return train.init_mlps(widths, 2, [seed, seed + 1], bias=True, dtype=torch.float64)


def test_layerwise_errors_identical_models_are_exact():
    a, _ = _mlp_pair((3, 8, 8, 2), 0)
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    L = OR.layerwise_errors(a, a, x)
    for f in ("error", "propagated", "gain_bound", "new", "matching"):
        assert getattr(L, f).shape == (3,) and np.allclose(getattr(L, f), 0.0)


def test_layerwise_errors_match_a_direct_computation_and_bound():
    a, b = _mlp_pair((3, 8, 6, 2), 4)
    x = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    L = OR.layerwise_errors(a, b, x)
    la, lb = list(a.layers), list(b.layers)
    ha, hb, hm = x, x, x
    errs = []
    with torch.no_grad():
        for k in range(3):
            act = torch.relu if k < 2 else (lambda t: t)
            Wm, bm = (la[k].weight + lb[k].weight) / 2, (la[k].bias + lb[k].bias) / 2
            ha, hb, hm = act(la[k](ha)), act(lb[k](hb)), act(hm @ Wm.T + bm)
            errs.append(float((hm - (ha + hb) / 2).norm() / ha.norm()))
    assert np.allclose(L.error, errs, rtol=1e-10)
    with torch.no_grad():
        za, zb = la[0](x), lb[0](x)
    assert L.matching[0] == pytest.approx(float((za - zb).norm() / za.norm()), rel=1e-10)
    assert L.gain_bound[0] == 0.0 and L.propagated[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(L.propagated <= L.gain_bound + 1e-12)
    assert np.all(L.error <= L.recursion() + 1e-12)
    assert np.allclose(L.recursion(), L.gain_bound + L.new)
    # the inputs x change the result
    L2 = OR.layerwise_errors(a, b, 3 * x + 1)
    assert not np.allclose(L.error, L2.error)


def test_layerwise_errors_rejects_bad_input():
    a, b = _mlp_pair((3, 8, 2), 0)
    c, _ = _mlp_pair((3, 9, 2), 0)
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="model_a"):
        OR.layerwise_errors(torch.nn.Linear(3, 2), b, x)
    with pytest.raises(TypeError, match="model_b"):
        OR.layerwise_errors(a, torch.nn.Linear(3, 2), x)
    with pytest.raises(ValueError, match="same widths"):
        OR.layerwise_errors(a, c, x)
    with torch.no_grad():
        a.layers[0].bias.fill_(-1.0)  # ReLU(0·W − 1) = 0: layer 1 of a is identically 0
    with pytest.raises(ValueError, match="identically 0"):
        OR.layerwise_errors(a, b, torch.zeros(10, 3, dtype=torch.float64))


def test_subsample_wasserstein_uses_disjoint_subsamples_of_the_cloud():
    cloud = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = OR.subsample_wasserstein(cloud, [5, 20], reps=3, seed=7)
    assert W.shape == (2, 3)
    g, expected = torch.Generator().manual_seed(7), []
    for m in [5, 20]:
        for _ in range(3):
            idx = torch.randperm(40, generator=g)
            assert not set(idx[:m].tolist()) & set(idx[m:2 * m].tolist())
            expected.append(brute_force_wp(cloud[idx[:m]].numpy(), cloud[idx[m:2 * m]].numpy(), 2) if m == 5
                            else T.wasserstein(cloud[idx[:m]], cloud[idx[m:2 * m]]))
    np.testing.assert_allclose(W.ravel(), expected, rtol=1e-10)
    assert not np.allclose(W, OR.subsample_wasserstein(cloud, [5, 20], reps=3, seed=8))  # seed matters
    assert not np.allclose(W, OR.subsample_wasserstein(cloud, [5, 20], reps=3, p=1, seed=7))  # p matters
    assert OR.subsample_wasserstein(torch.ones(8, 2, dtype=torch.float64), [4], reps=2).max() == 0.0
    for bad in (dict(ms=[21]), dict(ms=[]), dict(reps=0), dict(p=0.5)):
        with pytest.raises(ValueError):
            OR.subsample_wasserstein(cloud, **{"ms": [5], "reps": 1, **bad})
    with pytest.raises(ValueError, match="2 m <= n"):
        OR.subsample_wasserstein(cloud, [21], reps=1)


def _trajectory_setup(N=6, P=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    teacher = MF.tanh_teacher(2, [1.0, -0.5], g)
    theta = MF.init_neurons((P, 2), N, 2, g, b_std=0.5)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    return teacher, theta, x


@pytest.mark.parametrize("act", MF.ACTIVATIONS)
def test_sgd_pair_trajectory_equals_sgd_then_the_measurements(act):
    teacher, theta, x = _trajectory_setup()
    tr = OR.sgd_pair_trajectory(theta, teacher, x, steps=6, lr=0.3, batch_size=4,
                                generator=torch.Generator().manual_seed(3), checkpoints=3, activation=act)
    assert tr.steps.tolist() == [2, 4, 6] and tr.ot_barrier.shape == (3, 2)
    g, th, y = torch.Generator().manual_seed(3), theta.clone(), teacher(x)
    for k in range(3):
        th = MF.sgd(th, teacher, 2, 0.3, 4, g, act)
        a, b = th[:, 0], th[:, 1]
        b_ot = MF.ot_align(a, b)
        np.testing.assert_allclose(tr.ot_barrier[k], MF.mse_barrier(a, b_ot, x, y, activation=act), rtol=1e-12)
        np.testing.assert_allclose(tr.identity_barrier[k], MF.mse_barrier(a, b, x, y, activation=act), rtol=1e-12)
        np.testing.assert_allclose(tr.ot_error[k], MF.interpolation_error(a, b_ot, x, activation=act), rtol=1e-12)
        for p in range(2):  # W_2 of the two clouds, independently of the OT permutation
            assert tr.w2[k, p] == pytest.approx(T.wasserstein(a[p], b[p]), rel=1e-10)
            assert tr.identity_distance[k, p] == pytest.approx(float((a[p] - b[p]).pow(2).sum(-1).mean().sqrt()))
            mse = [float((MF.forward(t, x, act) - y).pow(2).mean()) for t in (a[p], b[p])]
            assert tr.endpoint_mse[k, p] == pytest.approx(max(mse), rel=1e-12)
    np.testing.assert_array_equal(tr.max_over_time, tr.ot_barrier.max(0))
    assert bool((tr.w2 <= tr.identity_distance + 1e-12).all())
    assert torch.equal(theta, _trajectory_setup()[1])  # input untouched


def test_sgd_pair_trajectory_arguments_change_the_result_and_bad_input_raises():
    teacher, theta, x = _trajectory_setup()
    run = dict(steps=4, lr=0.3, batch_size=4, checkpoints=2)

    def traj(**kw):
        args = {**run, **kw}
        return OR.sgd_pair_trajectory(theta, teacher, x, generator=torch.Generator().manual_seed(1), **args)

    base = traj()
    for kw in (dict(lr=0.1), dict(batch_size=8), dict(steps=8), dict(activation="relu")):
        assert not np.allclose(traj(**kw).w2[-1], base.w2[-1]), kw
    other = OR.sgd_pair_trajectory(theta, MF.tanh_teacher(2, [2.0, 1.0], torch.Generator().manual_seed(5)), x,
                                   generator=torch.Generator().manual_seed(1), **run)  # target matters
    assert not np.allclose(other.ot_barrier, base.ot_barrier)
    x2 = torch.randn(50, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    moved = OR.sgd_pair_trajectory(theta, teacher, x2, generator=torch.Generator().manual_seed(1), **run)
    np.testing.assert_allclose(moved.w2, base.w2, rtol=1e-12)  # x is only the test set ...
    assert not np.allclose(moved.ot_barrier, base.ot_barrier)  # ... of the barriers
    reseeded = OR.sgd_pair_trajectory(theta, teacher, x, generator=torch.Generator().manual_seed(2), **run)
    assert not np.allclose(reseeded.w2, base.w2)  # generator matters
    assert traj(checkpoints=1).steps.tolist() == [4]
    np.testing.assert_allclose(traj(checkpoints=1).w2[-1], base.w2[-1], rtol=1e-12)  # same SGD path
    with pytest.raises(ValueError, match="multiple of checkpoints"):
        traj(steps=5)
    with pytest.raises(ValueError, match=r"\(P, 2, N, D\)"):
        OR.sgd_pair_trajectory(theta[:, :1], teacher, x, 2, 0.3, 4, torch.Generator())
    with pytest.raises(ValueError):
        traj(checkpoints=0)
    with pytest.raises(TypeError):
        OR.sgd_pair_trajectory(theta, teacher, x, 2, 0.3, 4, generator=3)


# ------------------------------------------------------------------------------------------------------
# Boundaries and messages (mutation testing, issue 14 item 7): every argument and tolerance changes a result
# ------------------------------------------------------------------------------------------------------

def test_cost_matrix_is_non_negative_where_the_expansion_rounds_below_zero():
    # ‖x‖² ≈ 5e6 and y = x + 1e-6: the true ‖x − y‖² = 5e-12 is far below the expansion's rounding (≈ 1e-9), so
    # about half of the 64 matched entries round below zero, whatever kernel the BLAS picks
    X = 1000 + 100 * cloud(64, 5, 0)
    Y = X + 1e-6
    sq = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2 * (X @ Y.T)
    assert float(sq.diagonal().min()) < 0  # the rounding the clamp removes
    C = T.cost_matrix(X, Y)
    assert float(C.min()) == 0.0 and float(C.diagonal().max()) < 1e-8


def test_metric_tolerances_accept_rounding_and_reject_beyond():
    X, Y = cloud(4, 3, 0), cloud(4, 3, 1)
    eye = torch.eye(3, dtype=torch.float64)
    # tol = √eps · max|Σ| ≈ 1.5e-8; an eigenvalue down to −tol·d ≈ −4.5e-8 counts as 0 (clamped)
    near_psd = torch.diag(torch.tensor([1.0, 1.0, -2e-8], dtype=torch.float64))
    projected = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(T.cost_matrix(X, Y, metric=near_psd), T.cost_matrix(X, Y, metric=projected),
                               rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"^metric must be positive semi-definite, got eigenvalue -1e-07$"):
        T.cost_matrix(X, Y, metric=torch.diag(torch.tensor([1.0, 1.0, -1e-7], dtype=torch.float64)))
    # the tolerance scales with max|Σ|: the same relative defect on 1e6·Σ is accepted
    torch.testing.assert_close(T.cost_matrix(X, Y, metric=1e6 * near_psd),
                               1e6 * T.cost_matrix(X, Y, metric=projected), rtol=1e-12, atol=0)
    # an asymmetry below tol is symmetrised ((Σ + Σᵀ)/2), one above it is an error
    skew = torch.zeros(3, 3, dtype=torch.float64)
    skew[0, 1] = 1e-9
    torch.testing.assert_close(T.cost_matrix(X, Y, metric=eye + skew),
                               T.cost_matrix(X, Y, metric=eye + (skew + skew.T) / 2), rtol=1e-14, atol=0)
    skew[0, 1] = 1e-6
    with pytest.raises(ValueError,
                       match=r"^metric must be symmetric \(max \|Σ - Σᵀ\| exceeds √eps · max \|Σ\|\)$"):
        T.cost_matrix(X, Y, metric=eye + skew)
    with pytest.raises(ValueError, match=r"^metric must have 2 dimension\(s\) \(2-D\), got shape \(3,\)$"):
        T.cost_matrix(X, Y, metric=torch.ones(3, dtype=torch.float64))
    zero = torch.zeros(3, 3, dtype=torch.float64)  # max|Σ| = 0: the tolerance floor is the tiniest normal
    assert float(T.cost_matrix(X, Y, metric=zero).abs().max()) == 0.0
    with pytest.raises(ValueError, match=r"^metric must have shape \(d, d\) = \(3, 3\), got \(2, 2\)$"):
        T.cost_matrix(X, Y, metric=torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^metric and X must have the same dtype, got torch.float32 and "
                                        r"torch.float64$"):
        T.cost_matrix(X, Y, metric=torch.eye(3))


def test_ot_plan_weights_zero_entries_tolerance_and_dtype():
    X, Y = cloud(4, 2, 0), cloud(3, 2, 1)
    C = T.cost_matrix(X, Y)
    a = torch.tensor([0.5, 0.0, 0.25, 0.25], dtype=torch.float64)  # a zero weight is allowed
    b = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    plan = T.ot_plan(a, b, C)
    assert float(plan[1].abs().max()) == 0.0
    torch.testing.assert_close(plan.sum(1), a, rtol=0, atol=1e-12)
    torch.testing.assert_close(T.ot_plan(b, a, C.T).sum(0), a, rtol=0, atol=1e-12)  # in b too
    # total masses equal within MASS_RTOL = 1e-6 relative (not absolute: POT's own check would fail at 10)
    a10, b10 = 10 * a, 10 * b
    b10[0] += 5e-6
    torch.testing.assert_close(T.ot_plan(a10, b10, C).sum(), torch.tensor(10.0, dtype=torch.float64),
                               rtol=1e-6, atol=0)
    b10[0] += 1.5e-5
    with pytest.raises(ValueError, match=r"^a and b must have the same total mass, got sum\(a\) = 10.0 and "
                                         r"sum\(b\) = 10.00002"):
        T.ot_plan(a10, b10, C)
    plan32 = T.ot_plan(a.float(), b.float(), C.float())
    assert plan32.dtype == torch.float32
    torch.testing.assert_close(plan32.double(), plan, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"^a must have a positive total mass, got sum 0.0$"):
        T.ot_plan(torch.zeros(4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), C)
    with pytest.raises(ValueError, match=r"^b must be non-negative, got b\[2\] = -0.5$"):
        T.ot_plan(a, torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64), C)
    with pytest.raises(ValueError, match=r"^a must be non-negative, got a\[1\] = -0.25$"):
        T.ot_plan(torch.tensor([0.5, -0.25, 0.5, 0.25], dtype=torch.float64), b, C)
    with pytest.raises(ValueError, match=r"^b must have 3 entries \(one per point\), got 4$"):
        T.ot_plan(a, a, C)


def test_ot_plan_iteration_cap_stop_threshold_and_reg():
    X, Y = cloud(8, 5, 0), cloud(8, 5, 1)
    C = T.cost_matrix(X, Y)
    w = torch.full((8,), 1 / 8, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"^POT's EMD solver did not reach an optimum: numItermax reached"):
        T.ot_plan(w, w, C, num_iter_max=1)
    torch.testing.assert_close(T.ot_plan(w, w, C, num_iter_max=1000), T.ot_plan(w, w, C), rtol=0, atol=0)
    converged = T.ot_plan(w, w, C, method="sinkhorn", reg=1.0)
    assert float((converged.sum(0) - w).abs().max()) < 1e-9  # default stop_thr = 1e-9 on the marginal error
    loose = T.ot_plan(w, w, C, method="sinkhorn", reg=1.0, stop_thr=0.1)
    assert float((loose.sum(0) - w).abs().max()) > 1e-3
    with pytest.warns(UserWarning, match="Sinkhorn did not converge"):
        one = T.ot_plan(w, w, C, method="sinkhorn", reg=1.0, num_iter_max=1)
    assert float((one.sum(0) - w).abs().max()) > 1e-3
    assert float((T.ot_plan(w, w, C, method="sinkhorn", reg=5.0) - converged).abs().max()) > 1e-3
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match=rf"^num_iter_max must be a positive int or None, got {bad!r}$"):
            T.ot_plan(w, w, C, num_iter_max=bad)
    for bad in (0.0, -1.0, math.inf, True, "0.1", None):
        message = rf"^method='sinkhorn' needs a finite reg > 0, got {re.escape(repr(bad))}$"
        with pytest.raises(ValueError, match=message):
            T.ot_plan(w, w, C, method="sinkhorn", reg=bad)
    with pytest.raises(ValueError, match=r"^reg is only used by method='sinkhorn'; got reg=0.1 with method='emd'$"):
        T.ot_plan(w, w, C, reg=0.1)
    with pytest.raises(RuntimeError, match=r"^Sinkhorn produced non-finite values with reg=1e-30; increase reg$"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's overflow and non-convergence warnings on the way
        T.ot_plan(w, w, 1e300 * C, method="sinkhorn", reg=1e-30)


def test_wasserstein_weight_paths_and_zero_distance():
    X, Y = cloud(5, 2, 0), cloud(5, 2, 1)
    assert T.wasserstein(X, X) == 0.0 and T.wasserstein(X, X, p=1) == 0.0
    u = np.full(5, 0.2)
    b = torch.tensor([0.4, 0.1, 0.2, 0.2, 0.1], dtype=torch.float64)  # equal sizes, non-uniform weights
    for p in (1, 2):
        assert T.wasserstein(X, Y, p=p, b=b) == pytest.approx(lp_wp(X.numpy(), Y.numpy(), u, b.numpy(), p), rel=1e-7)
        assert T.wasserstein(X, Y, p=p, a=b) == pytest.approx(lp_wp(X.numpy(), Y.numpy(), b.numpy(), u, p), rel=1e-7)
    # a uniform, b not: neither may be taken for uniform
    assert T.wasserstein(X, Y, a=torch.full((5,), 0.2, dtype=torch.float64), b=b) == pytest.approx(
        lp_wp(X.numpy(), Y.numpy(), u, b.numpy(), 2), rel=1e-7)
    # unequal sizes with one default weight vector
    Z = cloud(3, 2, 2)
    c = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    assert T.wasserstein(X, Z, b=c) == pytest.approx(lp_wp(X.numpy(), Z.numpy(), u, c.numpy(), 2), rel=1e-7)
    assert T.wasserstein(Z, X, a=c) == pytest.approx(lp_wp(Z.numpy(), X.numpy(), c.numpy(), u, 2), rel=1e-7)
    # weights summing to 1 within MASS_RTOL are a probability measure
    near = b.clone()
    near[0] += 5e-7
    assert T.wasserstein(X, Y, b=near) == pytest.approx(T.wasserstein(X, Y, b=b), rel=1e-5)
    near[0] += 2e-6
    with pytest.raises(ValueError, match=r"^b must sum to 1 \(a probability measure\), got sum 1.0000025"):
        T.wasserstein(X, Y, b=near)
    with pytest.raises(ValueError, match=r"^a must sum to 1 \(a probability measure\), got sum 2.0$"):
        T.wasserstein(X, Y, a=2 * b)
    with pytest.raises(ValueError, match=r"^a must have 5 entries \(one per point\), got 3$"):
        T.wasserstein(X, Z, a=c)
    with pytest.raises(ValueError, match=r"^b must have 3 entries \(one per point\), got 5$"):
        T.wasserstein(X, Z, b=b)


def test_ot_match_check_on_a_degenerate_cost_and_messages():
    Z = torch.zeros(4, 2, dtype=torch.float64)  # C ≡ 0: every permutation is optimal, the cost scale is 0
    for backend in ("hungarian", "pot"):
        perm = T.ot_match(Z, Z, backend=backend, check=True)
        assert sorted(perm.tolist()) == [0, 1, 2, 3]
    X, Y = cloud(6, 3, 4), cloud(6, 3, 5)
    expected = T.hungarian(T.cost_matrix(X, Y, p=1))
    assert not torch.equal(expected, T.hungarian(T.cost_matrix(X, Y)))  # p changes the matching here
    assert torch.equal(T.ot_match(X, Y, p=1), expected)
    assert torch.equal(T.ot_match(X, Y, p=1, backend="pot"), expected)
    assert torch.equal(T.pot_permutation(T.cost_matrix(X, Y, p=1)), expected)
    with pytest.raises(ValueError, match=r"^pot_permutation needs a square cost matrix \(m, m\), got \(6, 5\)$"):
        T.pot_permutation(T.cost_matrix(X, Y[:5]))
    with pytest.raises(ValueError, match=r"^ot_match needs equal sizes \(a permutation\); got X with 6 and Y "
                                         r"with 5 points; use ot_plan for unequal sizes$"):
        T.ot_match(X, Y[:5])
    with pytest.raises(ValueError, match=r"^backend must be one of \('hungarian', 'pot'\), got 'lap'$"):
        T.ot_match(X, Y, backend="lap")
    with pytest.raises(TypeError, match=r"^check must be a bool"):
        T.ot_match(X, Y, check=1)
    with pytest.raises(ValueError, match=r"^X and Y must have the same dimension d, got X \(6, 3\) and Y "
                                         r"\(6, 2\)$"):
        T.ot_match(X, Y[:, :2])
    with pytest.raises(TypeError, match=r"^X and Y must have the same dtype, got torch.float64 and "
                                        r"torch.float32$"):
        T.wasserstein(X, Y.float())


def test_ot_match_metric_changes_the_matching():
    X, Y = cloud(6, 3, 3), cloud(6, 3, 4)
    sigma = torch.diag(torch.tensor([100.0, 1.0, 0.01], dtype=torch.float64))
    expected = T.hungarian(T.cost_matrix(X, Y, metric=sigma))
    assert not torch.equal(expected, T.ot_match(X, Y))
    assert torch.equal(T.ot_match(X, Y, metric=sigma), expected)
    assert torch.equal(T.ot_match(X, Y, metric=sigma, backend="pot", check=True), expected)


def test_missing_pot_message_and_moved_names():
    import importlib

    with pytest.raises(ImportError, match=r"^lmcnb.transport needs the Python Optimal Transport package \(POT\) "
                                          r"for this call: pip install POT \(or pip install 'lmcnb\[ot\]'\)$"):
        saved = sys.modules.get("ot")
        sys.modules["ot"] = None
        try:
            T._import_ot()
        finally:
            if saved is None:
                del sys.modules["ot"]
            else:
                sys.modules["ot"] = saved
    assert importlib.import_module("ot") is T._import_ot()
    with pytest.raises(AttributeError, match=r"^lmcnb.transport.gaussian_sampler moved to "
                                             r"lmcnb.experiments.ot_rates.gaussian_sampler \(an experiment "
                                             r"pipeline; `from lmcnb.experiments.ot_rates import "
                                             r"gaussian_sampler`\)$"):
        T.gaussian_sampler  # noqa: B018
    with pytest.raises(AttributeError, match=r"^module 'lmcnb.transport' has no attribute 'nothing'$"):
        T.nothing  # noqa: B018


def test_argument_messages_name_the_argument():
    X, Y = cloud(4, 3, 0), cloud(4, 3, 1)
    C = T.cost_matrix(X, Y)
    w = torch.full((4,), 0.25, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"^X must be a torch.Tensor, got ndarray$"):
        T.wasserstein(X.numpy(), Y)
    with pytest.raises(TypeError, match=r"^Y must be a torch.Tensor, got list$"):
        T.cost_matrix(X, [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^Y must have 2 dimension\(s\) \(2-D\), got shape \(3,\)$"):
        T.cost_matrix(X, Y[0])
    with pytest.raises(ValueError, match=r"^C must have 2 dimension\(s\) \(2-D\), got shape \(4,\)$"):
        T.ot_plan(w, w, C[0])
    with pytest.raises(ValueError, match=r"^a must have 1 dimension\(s\) \(1-D\), got shape \(4, 1\)$"):
        T.ot_plan(w[:, None], w, C)
    with pytest.raises(ValueError, match=r"^method must be one of \('emd', 'sinkhorn'\), got 'exact'$"):
        T.ot_plan(w, w, C, method="exact")
    # p > 0 for a cost (p = 0 and negative p rejected), p ≥ 1 for a distance
    with pytest.raises(ValueError, match=r"^p must be finite and > 0, got 0$"):
        T.cost_matrix(X, Y, p=0)
    with pytest.raises(ValueError, match=r"^p must be finite and > 0, got -1$"):
        T.cost_matrix(X, Y, p=-1)
    torch.testing.assert_close(T.cost_matrix(X, Y, p=0.5), T.cost_matrix(X, Y, p=1).sqrt(), rtol=1e-12, atol=0)


def test_sinkhorn_runs_in_float64_and_in_the_log_domain():
    X, Y = cloud(8, 5, 0), cloud(8, 5, 1)
    C = T.cost_matrix(X, Y)
    w = torch.full((8,), 1 / 8, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 Sinkhorn could not reach stop_thr = 1e-9 and would warn
        plan32 = T.ot_plan(w.float(), w.float(), C.float(), method="sinkhorn", reg=1.0)
    assert plan32.dtype == torch.float32
    torch.testing.assert_close(plan32.double(), T.ot_plan(w, w, C, method="sinkhorn", reg=1.0), rtol=0, atol=1e-7)
    # reg = 5e-4: every exp(−C/reg) underflows to 0 (C/reg > 745), the plain kernel has no mass; the
    # log-domain iterations keep the marginals exact
    assert float(C.min()) / 5e-4 > 745
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 1000 iterations (expected at this reg)
        plan = T.ot_plan(w, w, C, method="sinkhorn", reg=5e-4)
    torch.testing.assert_close(plan.sum(1), w, rtol=0, atol=1e-9)


def test_first_negative_weight_is_named_and_default_weights_are_exact():
    X, Z = cloud(5, 2, 0), cloud(3, 2, 2)
    C = T.cost_matrix(X, Z)
    w = torch.tensor([0.5, 0.0, -0.25, 0.75], dtype=torch.float64)  # a zero before the negative entry
    with pytest.raises(ValueError, match=r"^a must be non-negative, got a\[2\] = -0.25$"):
        T.ot_plan(w, w, T.cost_matrix(cloud(4, 2, 0), cloud(4, 2, 1)))
    with pytest.raises(ValueError, match=r"^C must have 2 dimension\(s\) \(2-D\), got shape \(3,\)$"):
        T.pot_permutation(C[0])
    # the default weights 1/n are float64 (a float32 1/5 would shift W² by ~1e-8 relative)
    u5 = torch.full((5,), 1 / 5, dtype=torch.float64)
    c = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    assert T.wasserstein(X, Z, b=c) ** 2 == pytest.approx(float((T.ot_plan(u5, c, C) * C).sum()), rel=1e-13)
    assert T.wasserstein(Z, X, a=c) ** 2 == pytest.approx(float((T.ot_plan(c, u5, C.T) * C.T).sum()), rel=1e-13)
