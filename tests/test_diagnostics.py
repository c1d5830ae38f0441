"""Tests of lmcnb.diagnostics against independent computations: constructions with known answers, numpy SVDs and
loops, the full Hessian of torch.autograd.functional.hessian, Wishart and half-normal closed forms, Monte Carlo
with a delta-method standard error, and exact forward passes through a block-disjoint pair of networks (the
construction of Ito et al.'s Theorem 5.3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import diagnostics as D

from _helpers import gen

SETTINGS = settings(max_examples=20)  # example budget (cost); the profile decides the rest
F64 = torch.float64


def _orthonormal(d: int, k: int, seed: int) -> torch.Tensor:
    """``(d, k)`` matrix with orthonormal columns."""
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=gen(seed), dtype=F64))
    return q


# ----------------------------------------------------------------------------------------------------------
# Sparsity
# ----------------------------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 10_000), m=st.integers(1, 30), d=st.integers(1, 6), batch=st.integers(1, 3))
def test_live_neurons_counts_rows_with_prescribed_norms(seed, m, d, batch):
    rng = np.random.default_rng(seed)
    # norms either clearly above (>= 0.05 · max) or clearly below (<= 0.002 · max) the 1e-2 threshold
    live = rng.random((batch, m)) < 0.6
    norms = np.where(live, rng.uniform(0.05, 1.0, (batch, m)), rng.uniform(0.0, 0.002, (batch, m)))
    norms[:, 0] = 1.0  # the maximum, always live
    dirs = rng.standard_normal((batch, m, d))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    W = torch.tensor(norms[..., None] * dirs)
    expected = (norms > 1e-2).sum(axis=-1)
    np.testing.assert_array_equal(D.live_neurons(W).numpy(), expected)
    assert D.live_neurons(W[0]).ndim == 0 and int(D.live_neurons(W[0])) == expected[0]
    # with output weights the score is |a_i| ‖w_i‖: zeroing a_i kills neuron i
    a = torch.ones(batch, m, dtype=F64)
    a[:, 0] = 0.0
    kill = norms.copy()
    kill[:, 0] = 0.0
    expected_a = (kill > 1e-2 * kill.max(axis=-1, keepdims=True)).sum(axis=-1)
    np.testing.assert_array_equal(D.live_neurons(W, a).numpy(), expected_a)


def test_live_neurons_edge_cases():
    W = torch.zeros(4, 3, dtype=F64)
    assert int(D.live_neurons(W)) == 0
    W[0, 0], W[1, 1] = 1.0, 0.01  # exactly at the threshold: not live (strict inequality)
    assert int(D.live_neurons(W)) == 1
    assert int(D.live_neurons(W, rel_tol=0.0)) == 2
    s = D.neuron_scores(W, torch.tensor([2.0, -3.0, 1.0, 1.0], dtype=F64))
    np.testing.assert_allclose(s.numpy(), [2.0, 0.03, 0.0, 0.0], rtol=1e-12)


@SETTINGS
@given(m=st.integers(1, 40), k=st.integers(1, 40), c=st.floats(1e-3, 1e3))
def test_participation_ratio_is_fraction_of_equal_nonzero_scores(m, k, c):
    k = min(k, m)
    s = torch.zeros(m, dtype=F64)
    s[:k] = c
    assert float(D.participation_ratio(s)) == pytest.approx(k / m, rel=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), m=st.integers(2, 30))
def test_participation_ratio_bounds_and_invariances(seed, m):
    g = gen(seed)
    s = torch.rand(3, m, generator=g, dtype=F64)
    pr = D.participation_ratio(s)
    loops = [sum(row) ** 2 / (m * sum(x * x for x in row)) for row in s.tolist()]
    np.testing.assert_allclose(pr.numpy(), loops, rtol=1e-12)
    assert bool(((pr > 0) & (pr <= 1 + 1e-12)).all())  # Cauchy–Schwarz
    shuffled = 7.5 * s[:, torch.randperm(m, generator=g)]
    np.testing.assert_allclose(D.participation_ratio(shuffled).numpy(), pr.numpy(), rtol=1e-12)


def test_active_units_on_constructed_activations():
    H = torch.zeros(2, 5, 4, dtype=F64)
    H[0, 3, 1] = 0.2   # unit 1 active on one input
    H[0, :, 2] = 1.0   # unit 2 active everywhere
    H[0, :, 3] = -1.0  # unit 3 never positive
    H[1] = 1.0
    np.testing.assert_allclose(D.active_units(H).numpy(), [0.5, 1.0], rtol=1e-12)
    assert float(D.active_units(H[0], threshold=0.5)) == pytest.approx(0.25)


# ----------------------------------------------------------------------------------------------------------
# Sharpness
# ----------------------------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 10_000), d=st.integers(2, 12), top=st.floats(0.5, 50.0), sign=st.sampled_from([1, -1]))
def test_sharpness_of_a_quadratic_with_known_spectrum(seed, d, top, sign):
    """L(x) = ½ (x − x0)ᵀ A (x − x0) has Hessian A = Q diag(λ) Qᵀ. With sign = −1 the eigenvalue of largest
    magnitude is negative (λ_min = −2·top), and the shifted second run must still return λ_max = top."""
    g = gen(seed)
    rest = top * (0.7 * torch.rand(d - 1, generator=g, dtype=F64))  # gap: λ_2 ≤ 0.7 λ_max
    eig = torch.cat([torch.tensor([top], dtype=F64), rest])
    if sign < 0:
        eig[-1] = -2.0 * top
    Q = _orthonormal(d, d, seed + 1)
    A = Q @ torch.diag(eig) @ Q.T
    x0 = torch.randn(d, generator=g, dtype=F64)
    res = D.sharpness(lambda x: 0.5 * (x - x0) @ A @ (x - x0), torch.randn(d, generator=g, dtype=F64),
                      n_iter=500, tol=1e-9, generator=gen(seed + 2))
    assert res.converged
    assert res.eigenvalue == pytest.approx(top, rel=1e-9)
    v = res.vector[0]
    assert float(v.norm()) == pytest.approx(1.0, abs=1e-12)
    assert abs(float(v @ Q[:, 0])) == pytest.approx(1.0, abs=1e-6)


def _mlp_loss(X: torch.Tensor, y: torch.Tensor):
    def loss(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor) -> torch.Tensor:
        return ((torch.tanh(X @ W1.T + b1) @ W2.T - y) ** 2).mean()
    return loss


def test_sharpness_of_a_small_mlp_matches_the_full_hessian():
    g = gen(3)
    X, y = torch.randn(40, 3, generator=g, dtype=F64), torch.randn(40, 2, generator=g, dtype=F64)
    params = (torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, generator=g, dtype=F64),
              torch.randn(2, 5, generator=g, dtype=F64))
    before = tuple(p.clone() for p in params)
    loss = _mlp_loss(X, y)
    blocks = torch.autograd.functional.hessian(loss, params)
    sizes = [p.numel() for p in params]
    H = torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(3)], 1) for i in range(3)])
    evals, evecs = torch.linalg.eigh(H)
    assert -evals[0] > evals[-1] > 0  # |λ_min| > λ_max: the shifted second run is exercised
    res = D.sharpness(loss, params, n_iter=2000, tol=1e-8, generator=gen(0))
    assert res.converged and res.n_iter < 4000
    assert res.eigenvalue == pytest.approx(float(evals[-1]), rel=1e-8)
    v = torch.cat([t.reshape(-1) for t in res.vector])
    assert abs(float(v @ evecs[:, -1])) == pytest.approx(1.0, abs=1e-5)
    for p, q in zip(params, before):  # inputs untouched
        assert torch.equal(p, q) and not p.requires_grad


def test_sharpness_single_tensor_unused_parameter_and_determinism():
    A = torch.diag(torch.tensor([4.0, 1.0, 0.5], dtype=F64))
    single = D.sharpness(lambda x: 0.5 * x @ A @ x, torch.ones(3, dtype=F64), tol=1e-10, generator=gen(1))
    # a parameter the loss ignores contributes a zero block; a linear term contributes nothing to H
    pair = D.sharpness(lambda x, z: 0.5 * x @ A @ x + 3.0 * x.sum(), (torch.ones(3, dtype=F64),
                       torch.ones(2, dtype=F64)), tol=1e-10, generator=gen(1))
    assert single.eigenvalue == pytest.approx(4.0, rel=1e-12) and pair.eigenvalue == pytest.approx(4.0, rel=1e-12)
    again = D.sharpness(lambda x: 0.5 * x @ A @ x, torch.ones(3, dtype=F64), tol=1e-10, generator=gen(1))
    assert again.eigenvalue == single.eigenvalue and again.n_iter == single.n_iter
    assert torch.equal(again.vector[0], single.vector[0])
    capped = D.sharpness(lambda x: 0.5 * x @ A @ x, torch.ones(3, dtype=F64), n_iter=1, tol=1e-10)
    assert not capped.converged and capped.n_iter == 2  # one step per run, both runs capped
    zero = D.sharpness(lambda x: x.sum(), torch.ones(3, dtype=F64))
    assert zero.eigenvalue == 0.0 and zero.converged


# ----------------------------------------------------------------------------------------------------------
# Dimension and rank
# ----------------------------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 10_000), d=st.integers(1, 30), k=st.integers(1, 30), c=st.floats(1e-3, 1e3))
def test_approximate_dimension_of_rank_k_projector_is_k(seed, d, k, c):
    k = min(k, d)
    U = _orthonormal(d, k, seed)
    assert D.approximate_dimension(c * U @ U.T) == pytest.approx(k, rel=1e-9)
    assert D.approximate_dimension(torch.eye(d, dtype=F64)) == pytest.approx(d, rel=1e-12)


def test_sample_dimension_isotropic_gaussian_and_subspace():
    g = gen(5)
    d, n = 20, 20_000
    X = torch.randn(n, d, generator=g, dtype=F64)
    # E tr(S)² / E tr(S²) for a Wishart S = XᵀX: (nd)² / (nd(n + d + 1)) = d n / (n + d + 1)
    assert D.sample_dimension(X) == pytest.approx(d * n / (n + d + 1), rel=0.01)
    assert D.sample_dimension(X) == pytest.approx(d, rel=0.01)
    k = 4
    Xk = torch.randn(n, k, generator=g, dtype=F64) @ _orthonormal(d, k, 6).T  # isotropic in a 4-dim subspace
    assert D.sample_dimension(Xk) == pytest.approx(k, rel=0.01)
    assert D.sample_dimension(Xk, centered=True) == pytest.approx(k, rel=0.01)
    # rows of a weight matrix as samples: a random 512×784 layer gives ≈ 309 (Ferbach et al. notes)
    W = torch.randn(512, 784, generator=g, dtype=F64)
    assert D.sample_dimension(W) == pytest.approx(784 * 512 / (512 + 784 + 1), rel=0.01)


def test_uncentred_dimension_of_half_normal_features_matches_closed_form():
    """x ∈ R^d with i.i.d. |N(0,1)| entries: E xxᵀ = v I + μ² 11ᵀ with μ² = 2/π, v = 1 − 2/π; eigenvalues
    v + dμ² (once) and v (d − 1 times), so Dim = d² / ((v + dμ²)² + (d − 1)v²) ≈ 2.397 for d = 50, while the
    covariance v I gives d (n/(n + d + 1) with finite n)."""
    d, n = 50, 40_000
    X = torch.randn(n, d, generator=gen(7), dtype=F64).abs()
    mu2, v = 2 / math.pi, 1 - 2 / math.pi
    expected = d ** 2 / ((v + d * mu2) ** 2 + (d - 1) * v ** 2)
    assert expected == pytest.approx(2.397, abs=1e-3)
    assert D.sample_dimension(X) == pytest.approx(expected, rel=0.01)
    assert D.sample_dimension(X, centered=True) == pytest.approx(d * n / (n + d + 1), rel=0.01)
    S = D.second_moment(X, centered=True)
    np.testing.assert_allclose(S.numpy(), np.cov(X.numpy(), rowvar=False, bias=True), atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), out=st.integers(1, 12), inp=st.integers(1, 12), k=st.integers(1, 12))
def test_relative_rank_of_equal_singular_values_is_k_over_full(seed, out, inp, k):
    full = min(out, inp)
    k = min(k, full)
    W = 3.0 * _orthonormal(out, k, seed) @ _orthonormal(inp, k, seed + 1).T
    for method in ("energy", "entropy", "stable"):
        assert float(D.relative_rank(W, method)) == pytest.approx(k / full, rel=1e-9)


def test_energy_rank_is_the_smallest_k_reaching_the_fraction():
    W = torch.eye(4, dtype=F64)  # cumulative energy 1/4, 2/4, 3/4, 1
    assert [float(D.relative_rank(W, energy=e)) * 4 for e in (0.25, 0.5, 0.51, 0.75, 1.0)] == [1, 2, 3, 3, 4]


def test_relative_rank_matches_numpy_svd():
    g = gen(8)
    W = torch.randn(4, 10, 7, generator=g, dtype=F64) * torch.logspace(0, -3, 7, dtype=F64)
    s = np.linalg.svd(W.numpy(), compute_uv=False)
    energy = [int(np.searchsorted(np.cumsum(r ** 2) / np.sum(r ** 2), 0.9) + 1) / 7 for r in s]
    p = s / s.sum(axis=1, keepdims=True)
    entropy = np.exp(-(p * np.log(p)).sum(axis=1)) / 7
    stable = (s ** 2).sum(axis=1) / s[:, 0] ** 2 / 7
    np.testing.assert_allclose(D.relative_rank(W, "energy", energy=0.9).numpy(), energy, rtol=1e-12)
    np.testing.assert_allclose(D.relative_rank(W, "entropy").numpy(), entropy, rtol=1e-10)
    np.testing.assert_allclose(D.relative_rank(W, "stable").numpy(), stable, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# Cosines, LLFC, LEWC
# ----------------------------------------------------------------------------------------------------------

def test_cosine_matches_numpy_and_zero_policy():
    g = gen(9)
    a, b = torch.randn(6, 5, generator=g, dtype=F64), torch.randn(6, 5, generator=g, dtype=F64)
    an, bn = a.numpy(), b.numpy()
    expected = (an * bn).sum(1) / np.linalg.norm(an, axis=1) / np.linalg.norm(bn, axis=1)
    np.testing.assert_allclose(D.cosine(a, b).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(D.cosine(a.T, b.T, dim=0).numpy(), expected, rtol=1e-12)
    a[1], a[2], b[2] = 0.0, 0.0, 0.0
    with pytest.raises(ValueError, match="zero-norm"):
        D.cosine(a, b)
    c = D.cosine(a, b, zero="match")
    assert float(c[1]) == 0.0 and float(c[2]) == 1.0
    np.testing.assert_allclose(c[3:].numpy(), expected[3:], rtol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), alpha=st.floats(-3, 3), beta=st.floats(0.1, 3), c=st.floats(-5, 5))
def test_layer_cosine_is_one_with_scale_for_exact_combinations(seed, alpha, beta, c):
    g = gen(seed)
    f_a, f_b = torch.randn(7, 3, 4, generator=g, dtype=F64), torch.randn(7, 3, 4, generator=g, dtype=F64)
    if abs(c) < 1e-3:
        c = 1.0
    res = D.layer_cosine(c * (alpha * f_a + beta * f_b), f_a, f_b, weights=(alpha, beta))
    np.testing.assert_allclose(res.per_sample.numpy(), np.sign(c), rtol=1e-9)
    assert res.mean == pytest.approx(math.copysign(1, c), rel=1e-9)
    assert res.pooled == pytest.approx(math.copysign(1, c), rel=1e-9)
    assert res.scale == pytest.approx(c, rel=1e-9)


def test_layer_cosine_matches_numpy_on_random_features():
    g = gen(10)
    f_m, f_a, f_b = (torch.randn(9, 2, 5, generator=g, dtype=F64) for _ in range(3))
    res = D.layer_cosine(f_m, f_a, f_b, weights=(0.3, 0.7))
    F, T = f_m.reshape(9, -1).numpy(), (0.3 * f_a + 0.7 * f_b).reshape(9, -1).numpy()
    per = [float(F[k] @ T[k] / np.linalg.norm(F[k]) / np.linalg.norm(T[k])) for k in range(9)]
    np.testing.assert_allclose(res.per_sample.numpy(), per, rtol=1e-12)
    assert res.mean == pytest.approx(np.mean(per), rel=1e-12)
    assert res.pooled == pytest.approx(float((F * T).sum() / np.linalg.norm(F) / np.linalg.norm(T)), rel=1e-12)
    c_star = np.linalg.lstsq(T.reshape(-1, 1), F.reshape(-1), rcond=None)[0][0]
    assert res.scale == pytest.approx(c_star, rel=1e-10)
    ca, cb = D.endpoint_coefficients(f_m, f_a, f_b)
    X = np.stack([f_a.numpy().ravel(), f_b.numpy().ravel()], axis=1)
    np.testing.assert_allclose([ca, cb], np.linalg.lstsq(X, f_m.numpy().ravel(), rcond=None)[0], rtol=1e-10)


@SETTINGS
@given(lam=st.floats(0, 1), layer=st.integers(1, 6))
def test_lewc_and_llfc_weights_follow_lmcnb_convention(lam, layer):
    wa, wb = D.lewc_weights(lam, layer)
    assert wa == pytest.approx((1 - lam) ** layer) and wb == pytest.approx(lam ** layer)
    assert D.lewc_weights(lam, 1) == D.llfc_weights(lam) == pytest.approx((1 - lam, lam))
    # Ito et al.'s μ weights model a: their weights at μ = 1 − λ are (μ^ℓ, (1 − μ)^ℓ)
    mu = 1 - lam
    assert (wa, wb) == pytest.approx((mu ** layer, (1 - mu) ** layer))
    assert D.lewc_weights(0.0, layer) == (1.0, 0.0) and D.lewc_weights(1.0, layer) == (0.0, 1.0)


def _block_networks(d: int, h: int, k: int, L: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Bias-free ReLU MLPs d → h → … → h → k (L weight layers) whose hidden units live on disjoint halves:
    model a uses units [0, h/2), model b units [h/2, h). Weak additivity and reciprocal orthogonality hold
    exactly, so LEWC holds exactly (Ito et al. Theorem 5.3; notes V2)."""
    g, half = gen(seed), h // 2
    Ws = {"a": [], "b": []}
    for name, block in (("a", slice(0, half)), ("b", slice(half, h))):
        for ell in range(L):
            fan_in = d if ell == 0 else h
            fan_out = k if ell == L - 1 else h
            W = torch.zeros(fan_out, fan_in, dtype=F64)
            rows = slice(None) if ell == L - 1 else block
            cols = slice(None) if ell == 0 else block
            W[rows, cols] = torch.randn(W[rows, cols].shape, generator=g, dtype=F64) * math.sqrt(2 / fan_in)
            Ws[name].append(W)
    return Ws["a"], Ws["b"]


def _forward(Ws: list[torch.Tensor], X: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Pre-activations z̃_ℓ and layer outputs f_ℓ (ReLU for ℓ < L, logits at ℓ = L) for ℓ = 1..L."""
    pre, out, z = [], [], X
    for ell, W in enumerate(Ws, start=1):
        zt = z @ W.T
        z = zt if ell == len(Ws) else torch.relu(zt)
        pre.append(zt)
        out.append(z)
    return pre, out


@pytest.mark.parametrize("lam", [0.1, 0.25, 0.5, 0.8])
def test_block_construction_satisfies_lewc_and_violates_commutativity(lam):
    L = 4
    Wa, Wb = _block_networks(d=6, h=64, k=3, L=L, seed=11)
    X = torch.randn(50, 6, generator=gen(12), dtype=F64)
    pre_a, f_a = _forward(Wa, X)
    pre_b, f_b = _forward(Wb, X)
    _, f_m = _forward([(1 - lam) * a + lam * b for a, b in zip(Wa, Wb)], X)  # θ_λ = (1 − λ) θ_a + λ θ_b
    for ell in range(1, L + 1):
        lewc = D.layer_cosine(f_m[ell - 1], f_a[ell - 1], f_b[ell - 1], weights=D.lewc_weights(lam, ell))
        assert lewc.mean == pytest.approx(1.0, abs=1e-12) and lewc.scale == pytest.approx(1.0, abs=1e-12)
        wa, wb = D.endpoint_coefficients(f_m[ell - 1], f_a[ell - 1], f_b[ell - 1])
        assert (wa, wb) == pytest.approx(((1 - lam) ** ell, lam ** ell), abs=1e-12)
        llfc = D.layer_cosine(f_m[ell - 1], f_a[ell - 1], f_b[ell - 1], weights=D.llfc_weights(lam))
        if lam == 0.5:  # same direction, LLFC's scale c* = 2^{1−ℓ} (notes V2 contrast)
            assert llfc.mean == pytest.approx(1.0, abs=1e-12)
            assert llfc.scale == pytest.approx(2.0 ** (1 - ell), rel=1e-12)
        elif ell >= 2:  # different mixing ratio: LLFC fails
            assert llfc.mean < 0.999
        if ell < L:
            wa_ = D.weak_additivity(pre_a[ell - 1], pre_b[ell - 1], lam)
            assert wa_.mean == pytest.approx(1.0, abs=1e-12) and wa_.scale == pytest.approx(1.0, abs=1e-12)
        if ell >= 2:
            ro = D.reciprocal_orthogonality(Wa[ell - 1], Wb[ell - 1], f_a[ell - 2], f_b[ell - 2])
            assert ro.b_on_a == 0.0 and ro.a_on_b == 0.0 and ro.ratio == 0.0
            com = D.commutativity_residual(Wa[ell - 1], Wb[ell - 1], f_a[ell - 2], f_b[ell - 2])
            assert com == pytest.approx(1.0, abs=1e-12)  # notes V4: cross terms vanish, direct ones do not


@SETTINGS
@given(seed=st.integers(0, 10_000), lam=st.floats(0, 1), c=st.floats(0.01, 10))
def test_weak_additivity_is_one_under_sign_agreement(seed, lam, c):
    g = gen(seed)
    Za = torch.randn(8, 30, generator=g, dtype=F64)
    assert D.weak_additivity(Za, Za, lam).mean == pytest.approx(1.0, abs=1e-12)
    # any Zb with the same sign pattern (z_a,i · z_b,i ≥ 0) satisfies the identity exactly
    Zb = Za.sign() * torch.rand(8, 30, generator=g, dtype=F64) * c
    res = D.weak_additivity(Za, Zb, lam)
    np.testing.assert_allclose(res.per_sample.numpy(), 1.0, atol=1e-12)
    assert res.scale == pytest.approx(1.0, abs=1e-12)


def test_weak_additivity_matches_numpy_and_fails_on_sign_conflicts():
    g = gen(13)
    Za, Zb = torch.randn(10, 40, generator=g, dtype=F64), torch.randn(10, 40, generator=g, dtype=F64)
    a, b, lam = Za.numpy(), Zb.numpy(), 0.3
    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    F, T = relu((1 - lam) * a + lam * b), (1 - lam) * relu(a) + lam * relu(b)
    per = (F * T).sum(1) / np.linalg.norm(F, axis=1) / np.linalg.norm(T, axis=1)
    np.testing.assert_allclose(D.weak_additivity(Za, Zb, lam).per_sample.numpy(), per, rtol=1e-12)
    # opposite signs everywhere: σ(½z − ½z) = 0 against ½|z| ≠ 0 → cosine 0 under zero="match"
    assert D.weak_additivity(Za, -Za, 0.5, zero="match").mean == 0.0


def test_weak_additivity_chance_closed_form_values():
    assert D.weak_additivity_chance(0.5) == pytest.approx((0.75 + 1 / math.pi) / math.sqrt(1 + 1 / math.pi),
                                                          rel=1e-14)
    assert D.weak_additivity_chance(0.5) == pytest.approx(0.93044, abs=5e-6)
    assert D.weak_additivity_chance(0.25) == pytest.approx(0.9704, abs=5e-5)  # notes: 0.9704, 0.9952
    assert D.weak_additivity_chance(0.1) == pytest.approx(0.9952, abs=5e-5)
    assert D.weak_additivity_chance(0.0) == pytest.approx(1.0, abs=1e-14)
    assert D.weak_additivity_chance(1.0) == pytest.approx(1.0, abs=1e-14)
    for lam in (0.1, 0.3, 0.45):
        assert D.weak_additivity_chance(lam) == pytest.approx(D.weak_additivity_chance(1 - lam), rel=1e-14)


def _monte_carlo_chance(lam: float, rho: float, seed: int, N: int = 1_000_000) -> tuple[float, float]:
    """Ratio of sample means r̂ = mean(AB)/√(mean(A²)·mean(B²)) over N scalar draws of pre-activations (u, v) with
    correlation ρ (A = (1−λ)σ(u) + λσ(v), B = σ((1−λ)u + λv)), and its delta-method standard error from the sample
    covariance of (AB, A², B²)."""
    g = gen(seed)
    u, e = torch.randn(N, generator=g, dtype=F64), torch.randn(N, generator=g, dtype=F64)
    v = rho * u + math.sqrt(1 - rho * rho) * e
    A = (1 - lam) * torch.relu(u) + lam * torch.relu(v)
    B = torch.relu((1 - lam) * u + lam * v)
    Y = torch.stack([A * B, A * A, B * B]).numpy()
    m = Y.mean(axis=1)
    r = m[0] / math.sqrt(m[1] * m[2])
    grad = np.array([1 / math.sqrt(m[1] * m[2]), -r / (2 * m[1]), -r / (2 * m[2])])
    return r, math.sqrt(grad @ np.cov(Y) @ grad / N)


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.5, 0.8])
def test_weak_additivity_chance_against_monte_carlo_within_three_sigma(lam):
    """Independent pre-activations: ratio of sample means within 3 delta-method standard errors of the closed form."""
    r, se = _monte_carlo_chance(lam, 0.0, seed=int(lam * 100))
    assert se < 3e-4  # the test resolves errors of a few 1e-4
    assert abs(r - D.weak_additivity_chance(lam)) < 3 * se


def test_weak_additivity_of_independent_gaussians_tends_to_chance():
    """Notes V1: per-sample cosines at d = 2·10⁴ average to 0.9304 within 0.003."""
    g = gen(14)
    Za, Zb = torch.randn(20, 20_000, generator=g, dtype=F64), torch.randn(20, 20_000, generator=g, dtype=F64)
    res = D.weak_additivity(Za, Zb, 0.5)
    assert res.mean == pytest.approx(D.weak_additivity_chance(0.5), abs=3e-3)
    assert res.pooled == pytest.approx(D.weak_additivity_chance(0.5), abs=3e-3)


def test_reciprocal_orthogonality_orthogonal_and_random_cases():
    g, n, d, out = gen(15), 100, 40, 200
    U = _orthonormal(d, d, 16)
    Z_a = torch.randn(n, 10, generator=g, dtype=F64) @ U[:, :10].T      # features of a in span(U[:, :10])
    Z_b = torch.randn(n, 10, generator=g, dtype=F64) @ U[:, 10:20].T    # features of b in span(U[:, 10:20])
    W_a = torch.randn(out, d, generator=g, dtype=F64) @ (U[:, :10] @ U[:, :10].T + U[:, 20:] @ U[:, 20:].T)
    W_b = torch.randn(out, d, generator=g, dtype=F64) @ (U[:, 10:] @ U[:, 10:].T)  # rows ⊥ span(Z_a)
    ro = D.reciprocal_orthogonality(W_a, W_b, Z_a, Z_b)
    assert ro.b_on_a == pytest.approx(0.0, abs=1e-12) and ro.a_on_b == pytest.approx(0.0, abs=1e-12)
    # independent Gaussian weights: E‖W_b z‖² = E‖W_a z‖², so both ratios ≈ 1
    W_a, W_b = torch.randn(out, d, generator=g, dtype=F64), torch.randn(out, d, generator=g, dtype=F64)
    Z_a, Z_b = torch.randn(n, d, generator=g, dtype=F64).relu(), torch.randn(n, d, generator=g, dtype=F64).relu()
    ro = D.reciprocal_orthogonality(W_a, W_b, Z_a, Z_b)
    assert ro.b_on_a == pytest.approx(1.0, abs=0.1) and ro.a_on_b == pytest.approx(1.0, abs=0.1)
    # independent formula: ‖Z Wᵀ‖_F² = tr(W (ZᵀZ) Wᵀ)
    fro = lambda W, Z: math.sqrt(float(torch.trace(W @ (Z.T @ Z) @ W.T)))  # noqa: E731
    assert ro.b_on_a == pytest.approx(fro(W_b, Z_a) / fro(W_a, Z_a), rel=1e-10)
    assert ro.a_on_b == pytest.approx(fro(W_a, Z_b) / fro(W_b, Z_b), rel=1e-10)
    assert ro.ratio == pytest.approx((ro.b_on_a + ro.a_on_b) / 2, rel=1e-14)


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_commutativity_residual_zero_cases_and_factored_form(seed):
    g = gen(seed)
    W_a, W_b = torch.randn(6, 5, generator=g, dtype=F64), torch.randn(6, 5, generator=g, dtype=F64)
    H_a, H_b = torch.randn(9, 5, generator=g, dtype=F64), torch.randn(9, 5, generator=g, dtype=F64)
    assert D.commutativity_residual(W_a, W_a, H_a, H_b) == pytest.approx(0.0, abs=1e-14)
    assert D.commutativity_residual(W_a, W_b, H_a, H_a) == pytest.approx(0.0, abs=1e-14)
    factored = float(torch.linalg.norm((W_a - W_b) @ (H_a - H_b).T) / torch.linalg.norm(W_a @ H_a.T + W_b @ H_b.T))
    assert D.commutativity_residual(W_a, W_b, H_a, H_b) == pytest.approx(factored, rel=1e-10)


# ----------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------

T2 = torch.ones(3, 4, dtype=F64)
NAN = torch.full((3, 4), math.nan, dtype=F64)


@pytest.mark.parametrize("call, error", [
    (lambda: D.cosine(T2, torch.ones(3, 5, dtype=F64)), ValueError),
    (lambda: D.cosine(T2, T2.float()), TypeError),
    (lambda: D.cosine(T2, NAN), ValueError),
    (lambda: D.cosine(T2.long(), T2.long()), TypeError),
    (lambda: D.cosine(T2, T2, zero="ignore"), ValueError),
    (lambda: D.cosine([1.0], [1.0]), TypeError),
    (lambda: D.live_neurons(torch.ones(4, dtype=F64)), ValueError),
    (lambda: D.live_neurons(torch.empty(0, 3, dtype=F64)), ValueError),
    (lambda: D.live_neurons(T2, torch.ones(4, dtype=F64)), ValueError),
    (lambda: D.live_neurons(T2, rel_tol=1.0), ValueError),
    (lambda: D.live_neurons(T2, rel_tol=-0.1), ValueError),
    (lambda: D.participation_ratio(-T2), ValueError),
    (lambda: D.participation_ratio(torch.zeros(4, dtype=F64)), ValueError),
    (lambda: D.active_units(torch.ones(4, dtype=F64)), ValueError),
    (lambda: D.approximate_dimension(torch.ones(3, 4, dtype=F64)), ValueError),
    (lambda: D.approximate_dimension(torch.zeros(3, 3, dtype=F64)), ValueError),
    (lambda: D.approximate_dimension(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64)), ValueError),
    (lambda: D.approximate_dimension(torch.diag(torch.tensor([1.0, -1.0], dtype=F64))), ValueError),
    (lambda: D.sample_dimension(torch.ones(2, 3, 4, dtype=F64)), ValueError),
    (lambda: D.sample_dimension(T2, centered=1), TypeError),
    (lambda: D.relative_rank(T2, "nuclear"), ValueError),
    (lambda: D.relative_rank(T2, energy=0.0), ValueError),
    (lambda: D.relative_rank(torch.zeros(3, 3, dtype=F64)), ValueError),
    (lambda: D.llfc_weights(1.5), ValueError),
    (lambda: D.llfc_weights(-0.1), ValueError),
    (lambda: D.llfc_weights(math.nan), ValueError),
    (lambda: D.llfc_weights(True), TypeError),
    (lambda: D.llfc_weights(torch.tensor(0.5)), TypeError),
    (lambda: D.lewc_weights(0.5, 0), ValueError),
    (lambda: D.lewc_weights(0.5, 1.0), TypeError),
    (lambda: D.weak_additivity_chance(2.0), ValueError),
    (lambda: D.weak_additivity(T2, T2, 1.01), ValueError),
    (lambda: D.weak_additivity(T2, torch.ones(3, 5, dtype=F64), 0.5), ValueError),
    (lambda: D.weak_additivity(T2, NAN, 0.5), ValueError),
    (lambda: D.weak_additivity(-T2, -T2, 0.5), ValueError),  # all-zero activations: cosine undefined
    (lambda: D.layer_cosine(T2, T2, torch.ones(3, 5, dtype=F64), (0.5, 0.5)), ValueError),
    (lambda: D.layer_cosine(T2, T2, T2, [0.5, 0.5]), TypeError),
    (lambda: D.layer_cosine(T2, T2, T2, (0.5, math.inf)), ValueError),
    (lambda: D.layer_cosine(T2, T2, T2, (0.0, 0.0)), ValueError),
    (lambda: D.endpoint_coefficients(T2, T2, 2 * T2), ValueError),
    (lambda: D.reciprocal_orthogonality(T2, T2, torch.ones(5, 3, dtype=F64), torch.ones(5, 3, dtype=F64)),
     ValueError),
    (lambda: D.reciprocal_orthogonality(T2, torch.ones(2, 4, dtype=F64), T2, T2), ValueError),
    (lambda: D.reciprocal_orthogonality(T2, T2, T2.float(), T2.float()), TypeError),
    (lambda: D.reciprocal_orthogonality(torch.zeros(3, 4, dtype=F64), T2, T2, T2), ValueError),
    (lambda: D.commutativity_residual(T2, -T2, T2, T2), ValueError),  # W_a H_a + W_b H_b = 0
    (lambda: D.sharpness(lambda x: x, torch.ones(3, dtype=F64)), ValueError),
    (lambda: D.sharpness(lambda x: x.sum(), [torch.ones(3, dtype=F64)]), TypeError),
    (lambda: D.sharpness(lambda x: x.sum(), torch.ones(3, dtype=F64), n_iter=0), ValueError),
    (lambda: D.sharpness(lambda x: x.sum(), torch.ones(3, dtype=F64), tol=0.0), ValueError),
    (lambda: D.sharpness(lambda x: x.sum(), torch.ones(3, dtype=F64), generator=0), TypeError),
    (lambda: D.sharpness(lambda x: x.sum() / 0.0, torch.ones(3, dtype=F64)), ValueError),
    (lambda: D.sharpness(lambda x: x.sum(), torch.tensor([1.0, math.nan])), ValueError),
    (lambda: D.sharpness("loss", torch.ones(3, dtype=F64)), TypeError),
])
def test_bad_input_is_rejected(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.parametrize("lam, rho", [(0.5, -0.5), (0.5, 0.5), (0.3, 0.9), (0.8, -0.2)])
def test_weak_additivity_chance_with_correlation_against_monte_carlo(lam, rho):
    """Correlated pre-activations: ratio of sample means within 3 delta-method standard errors of the closed form."""
    r, se = _monte_carlo_chance(lam, rho, seed=int(lam * 100) + int(rho * 10) + 50)
    assert abs(r - D.weak_additivity_chance(lam, rho=rho)) < 3 * se


def test_weak_additivity_chance_with_correlation_values():
    """Notes V1 pilot (ρ = −0.5 / 0.5 / 0.9 → 0.818 / 0.982 / 0.999); ρ = 0 is the default; ρ = 1 is exact."""
    values = [D.weak_additivity_chance(0.5, rho=r) for r in (-0.5, 0.5, 0.9)]
    assert values == pytest.approx([0.818, 0.982, 0.999], abs=1.5e-3)
    assert D.weak_additivity_chance(0.3, rho=0.0) == D.weak_additivity_chance(0.3)
    assert D.weak_additivity_chance(0.3, rho=1.0) == pytest.approx(1.0, abs=1e-12)
    assert values == sorted(values)  # more correlated pre-activations agree more in sign
    with pytest.raises(ValueError):
        D.weak_additivity_chance(0.5, rho=-1.0)
    with pytest.raises(ValueError):
        D.weak_additivity_chance(0.5, rho=1.5)
