"""Tests of lmcnb.matching against independent computations: planted permutations, exhaustive enumeration of
all permutation combinations, numpy correlations, Monte Carlo pre-activation errors, the equivalence guard and
the teacher–student minimum manifold (Zhan–Li–Wu notes §2.3–2.4)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import matching as mt
from lmcnb._matching_activation import _record
from lmcnb import models as M
from lmcnb import permutation as P
from lmcnb.papers import teacher_student as ts

from _helpers import mlp

SETTINGS = settings(max_examples=12)  # example budget (cost); the profile decides the rest
WIDTHS = (12, [10, 9, 8], 3)  # (d, hidden, classes) of the default test MLP


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------

def positive_bn(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm affine parameters and statistics, biased towards live channels."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g) + 0.2)
                mod.running_mean.copy_(0.01 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)


def planted(model: torch.nn.Module, seed: int, noise: float = 1e-4) -> tuple[torch.nn.Module, P.Perms]:
    """b = π(a) + noise and the permutation that aligns b back to a (π⁻¹)."""
    spec = P.spec_for(model)
    perms = P.random_perms(spec.sizes(model.state_dict()), torch.Generator().manual_seed(seed))
    b = P.permute_model(model, perms, spec)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for t in b.parameters():
            t.add_(noise * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return b, P.invert(perms)


def same(perms: P.Perms, truth: P.Perms) -> bool:
    return set(perms) == set(truth) and all(torch.equal(perms[k], truth[k]) for k in truth)


def non_decreasing(values: list[float]) -> bool:
    return all(y >= x for x, y in zip(values, values[1:]))


def close(x: float, y: float, rtol: float = 1e-10, atol: float = 0.0) -> bool:
    return abs(x - y) <= rtol * max(abs(x), abs(y)) + atol


def wm_scale(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """‖θ_a‖·‖θ_b‖, the natural size of rounding errors in ⟨θ_a, π θ_b⟩ (objectives can be ≈ 0)."""
    norm = lambda m: math.sqrt(sum(float((t.double() ** 2).sum()) for t in m.state_dict().values()))  # noqa: E731
    return norm(a) * norm(b)


# ---------------------------------------------------------------------------------------------------------------
# Planted permutations are recovered exactly
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", mt.ORDERS)
def test_wm_recovers_planted_permutation_mlp(order):
    a = mlp(0, (20, [24, 24, 24], 5), dtype=torch.float32)
    b, truth = planted(a, 1)
    result = mt.WeightMatching(order=order)(a, b)
    assert same(result.perms, truth)
    assert result.converged and not result.info["exact"] and result.method == "weight_matching"
    assert result.objective_history[-1] > result.objective_history[0]


@pytest.mark.parametrize("make", [lambda: M.VGG11(0.125), lambda: M.ResNet20(0.25),
                                  lambda: M.ResNet20(0.25, norm=False)], ids=["vgg11", "resnet20", "resnet20_plain"])
def test_wm_recovers_planted_permutation_conv(make):
    torch.manual_seed(0)
    a = make()
    positive_bn(a, 0)
    b, truth = planted(a, 3)
    result = mt.WeightMatching()(a, b)
    assert same(result.perms, truth), [k for k in truth if not torch.equal(result.perms[k], truth[k])]
    assert result.converged


def _constant_units(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Units whose activation is constant over x (dead ReLUs): activations cannot identify them."""
    model.eval()
    sites = P.activation_sites(model)  # architecture knowledge lives with the specs
    with torch.no_grad():
        acts = _record(model, sites, x)
    return {p: (a.max(0).values - a.min(0).values) == 0 for p, a in acts.items()}


@pytest.mark.parametrize("statistic", mt.STATISTICS)
@pytest.mark.parametrize("family", ["two_layer", "mlp", "vgg11", "resnet20", "resnet20_plain"])
def test_am_recovers_planted_permutation(family, statistic):
    torch.manual_seed(0)
    if family == "two_layer":
        a, x = M.TwoLayerNet(6, 9, bias=True, output="trained"), torch.randn(200, 6, dtype=torch.float64)
    elif family == "mlp":
        a, x = mlp(0, (12, [16, 16, 16], 3), dtype=torch.float32), torch.randn(300, 12)
    else:
        a = {"vgg11": lambda: M.VGG11(0.125), "resnet20": lambda: M.ResNet20(0.25),
             "resnet20_plain": lambda: M.ResNet20(0.25, norm=False)}[family]()
        positive_bn(a, 0)
        x = torch.randn(8, 3, 32, 32) if family == "vgg11" else torch.randn(6, 3, 16, 16)
    b, truth = planted(a, 5)
    result = mt.ActivationMatching(statistic)(a, b, [x[: len(x) // 2], x[len(x) // 2:]])
    dead = _constant_units(a, x)
    for p in truth:
        wrong = result.perms[p] != truth[p]
        assert dead[p].float().mean() <= 0.25, f"test data leaves too many dead units in {p}"
        assert bool(dead[p][wrong].all()), f"{p}: live units mismatched"
    assert result.info["exact"] and non_decreasing(result.objective_history)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", ["hungarian", "pot"])
def test_ot_and_covariance_matching_recover_planted_permutation(bias, backend):
    a = mlp(2, (8, [10, 7, 6], 3), dtype=torch.float32, bias=bias)
    b, truth = planted(a, 7)
    x = torch.randn(100, 8)
    for matcher in (mt.OTMatching(backend=backend), mt.CovarianceWeightedMatching(backend=backend)):
        result = matcher(a, b, x)
        assert same(result.perms, truth) and result.sense == "min"
        assert 0 <= result.objective < 1e-5


def test_ot_matching_two_layer_net():
    torch.manual_seed(3)
    a = M.TwoLayerNet(5, 8, bias=True)
    b, truth = planted(a, 4)
    assert same(mt.OTMatching()(a, b).perms, truth)


# ---------------------------------------------------------------------------------------------------------------
# Weight matching: objective, monotonicity, exactness, brute force
# ---------------------------------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 10_000), widths=st.lists(st.integers(2, 12), min_size=2, max_size=3),
       order=st.sampled_from(mt.ORDERS), bias=st.booleans())
def test_wm_history_never_decreases_and_matches_the_objective(seed, widths, order, bias):
    a, b = mlp(seed, (5, widths, 3), bias=bias), mlp(seed + 1, (5, widths, 3), bias=bias)
    result = mt.WeightMatching(order=order, seed=seed % 7)(a, b)
    history, eps = result.objective_history, 1e-12 * wm_scale(a, b)
    assert non_decreasing(history) and len(history) >= 1 + len(widths)
    assert close(history[0], mt.weight_matching_objective(a, b), atol=eps)
    assert close(history[-1], mt.weight_matching_objective(a, b, result.perms), atol=eps)
    assert result.sweeps <= 100 and result.converged
    assert non_decreasing(result.info["sweep_objectives"]) and result.info["sweep_objectives"][-1] == history[-1]


def test_wm_objective_is_minus_half_the_squared_distance_up_to_a_constant():
    """⟨θ_a, π θ_b⟩ = (‖θ_a‖² + ‖θ_b‖² − ‖θ_a − π θ_b‖²)/2 over the permuted tensors."""
    a, b = mlp(0, WIDTHS, bias=False), mlp(1, WIDTHS, bias=False)  # no bias: every tensor has a permuted axis
    perms = P.random_perms(P.spec_for(b).sizes(b.state_dict()), torch.Generator().manual_seed(0))
    pb = P.permute_model(b, perms)
    sq = lambda m: sum(float((t ** 2).sum()) for t in m.state_dict().values())  # noqa: E731
    dist = sum(float(((a.state_dict()[k] - t) ** 2).sum()) for k, t in pb.state_dict().items())
    assert math.isclose(mt.weight_matching_objective(a, b, perms), (sq(a) + sq(b) - dist) / 2, rel_tol=1e-10)


@SETTINGS
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6), d=st.integers(1, 4), bias=st.booleans(),
       output=st.sampled_from(["fixed", "trained"]))
def test_one_hidden_layer_wm_is_the_exact_optimum(seed, m, d, bias, output):
    torch.manual_seed(seed)
    a, b = M.TwoLayerNet(d, m, bias=bias, output=output), M.TwoLayerNet(d, m, bias=bias, output=output)
    result = mt.WeightMatching(seed=seed)(a, b)
    best, eps = mt.brute_force_weight_matching(a, b), 1e-12 * wm_scale(a, b)
    assert result.info["exact"] and result.sweeps == 1 and result.converged
    assert close(result.objective, best.objective, atol=eps)
    assert close(mt.weight_matching_objective(a, b, result.perms), best.objective, atol=eps)


def test_brute_force_equals_naive_enumeration():
    a, b = mlp(4, (4, [3, 4], 2)), mlp(5, (4, [3, 4], 2))
    values = {(p0, p1): mt.weight_matching_objective(a, b, {"P_0": torch.tensor(p0), "P_1": torch.tensor(p1)})
              for p0 in itertools.permutations(range(3)) for p1 in itertools.permutations(range(4))}
    best = mt.brute_force_weight_matching(a, b)
    key = (tuple(best.perms["P_0"].tolist()), tuple(best.perms["P_1"].tolist()))
    assert close(best.objective, max(values.values()), 1e-12) and close(values[key], best.objective, 1e-12)
    assert best.info["combinations"] == 6 * 24


def test_pcd_reaches_the_brute_force_optimum_in_most_seeds_and_never_exceeds_it():
    """PCD is a local search: calibrated on 40 seeds, one run reaches the optimum in 26, four restarts in 38."""
    single = restarts = 0
    for seed in range(40):
        a, b = mlp(seed, (3, [4, 4], 2)), mlp(seed + 100, (3, [4, 4], 2))
        best, eps = mt.brute_force_weight_matching(a, b).objective, 1e-12 * wm_scale(a, b)
        one = mt.WeightMatching(seed=seed)(a, b).objective
        four = mt.WeightMatching(seed=seed, n_restarts=4)(a, b).objective
        assert one <= best + eps and one - eps <= four <= best + eps
        single += close(one, best, atol=eps)
        restarts += close(four, best, atol=eps)
    assert single >= 20 and restarts >= 32, (single, restarts)


def test_pcd_never_exceeds_the_optimum_with_three_groups():
    for seed in range(10):
        a, b = mlp(seed, (3, [4, 3, 4], 2)), mlp(seed + 50, (3, [4, 3, 4], 2))
        best, eps = mt.brute_force_weight_matching(a, b).objective, 1e-12 * wm_scale(a, b)
        assert mt.WeightMatching(seed=seed, order="backward")(a, b).objective <= best + eps


def test_restarts_keep_the_best_run():
    a, b = mlp(8, (4, [6, 6, 6], 2)), mlp(9, (4, [6, 6, 6], 2))
    one = mt.WeightMatching(seed=3)(a, b)
    many = mt.WeightMatching(seed=3, n_restarts=4)(a, b)
    assert many.info["restart_objectives"][0] == one.objective
    assert many.objective == max(many.info["restart_objectives"]) >= one.objective
    assert close(many.objective, mt.weight_matching_objective(a, b, many.perms))


def test_wm_is_deterministic_in_its_seed():
    a, b = mlp(10, WIDTHS), mlp(11, WIDTHS)
    r1, r2 = mt.WeightMatching(seed=5)(a, b), mt.WeightMatching(seed=5)(a, b)
    assert same(r1.perms, r2.perms) and r1.objective_history == r2.objective_history


@pytest.mark.parametrize("start", ["pcd", "brute_force"])
def test_warm_start_at_an_optimum_converges_in_one_sweep(start):
    a, b = mlp(12, (4, [4, 4], 2)), mlp(13, (4, [4, 4], 2))
    init = (mt.WeightMatching()(a, b) if start == "pcd" else mt.brute_force_weight_matching(a, b)).perms
    result = mt.WeightMatching(init=init, order="forward")(a, b)
    assert result.sweeps == 1 and result.converged and same(result.perms, init)
    assert len(set(result.objective_history)) == 1


def test_float64_precision_option_gives_the_same_matching_on_float32_models():
    a, b = mlp(14, WIDTHS, dtype=torch.float32), mlp(15, WIDTHS, dtype=torch.float32)
    r32, r64 = mt.WeightMatching()(a, b), mt.WeightMatching(precision=torch.float64)(a, b)
    assert same(r32.perms, r64.perms)
    assert close(r64.objective, mt.weight_matching_objective(a, b, r64.perms), 1e-12)
    assert close(r32.objective, r64.objective, 1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Matched models compute b's function; align
# ---------------------------------------------------------------------------------------------------------------

def _matchers() -> list[mt.Matcher]:
    return [mt.WeightMatching(), mt.ActivationMatching(), mt.ActivationMatching("cross_moment"), mt.OTMatching(),
            mt.CovarianceWeightedMatching(), mt.IdentityMatching(), mt.RandomMatching(seed=2)]


@pytest.mark.parametrize("matcher", _matchers(), ids=lambda m: type(m).__name__)
def test_aligned_model_computes_the_same_function(matcher):
    a, b = mlp(20, WIDTHS, dtype=torch.float32), mlp(21, WIDTHS, dtype=torch.float32)
    before = {k: t.clone() for k, t in b.state_dict().items()}
    x = torch.randn(64, 12)
    aligned, result = mt.align(a, b, matcher, x)
    P.assert_equivalent(b, aligned, x)
    assert result.method == matcher.name and result.seconds > 0
    assert all(torch.equal(t, b.state_dict()[k]) for k, t in before.items())  # b itself is untouched
    aligned_perms = mt.IdentityMatching()(a, aligned).perms  # still a matchable pair
    assert set(aligned_perms) == set(result.perms)


def test_align_with_conv_models_keeps_the_function():
    torch.manual_seed(1)
    a, b = M.ResNet20(0.25), M.ResNet20(0.25)
    positive_bn(a, 1)
    positive_bn(b, 2)
    x = torch.randn(4, 3, 16, 16)  # ResNet20 pools adaptively: small images suffice
    for matcher in (mt.WeightMatching(max_sweeps=2), mt.ActivationMatching()):
        aligned, _ = mt.align(a, b, matcher, x)
        P.assert_equivalent(b, aligned, x, rtol=1e-4)


def test_baselines():
    a, b = mlp(22, WIDTHS), mlp(23, WIDTHS)
    ident = mt.IdentityMatching()(a, b)
    assert all(torch.equal(p, torch.arange(len(p))) for p in ident.perms.values()) and ident.sweeps == 0
    r1, r2, r3 = mt.RandomMatching(1)(a, b), mt.RandomMatching(1)(a, b), mt.RandomMatching(2)(a, b)
    assert same(r1.perms, r2.perms) and not same(r1.perms, r3.perms)


# ---------------------------------------------------------------------------------------------------------------
# Activation statistics and the Σ-metric against independent computations
# ---------------------------------------------------------------------------------------------------------------

def test_activation_similarity_matches_numpy_and_is_streamed():
    a, b = mlp(30, (6, [7, 5], 2)), mlp(31, (6, [7, 5], 2))
    x = torch.randn(120, 6, dtype=torch.float64)
    batches = [x[:50], x[50:51], x[51:]]
    corr, cross = mt.activation_similarity(a, b, batches), mt.activation_similarity(a, b, x, "cross_moment")
    with torch.no_grad():
        feats_a, feats_b = a.features(x)[:-1], b.features(x)[:-1]
    for k, (fa, fb) in enumerate(zip(feats_a, feats_b)):
        fa, fb, n = fa.numpy(), fb.numpy(), fa.shape[1]
        live_a, live_b = fa.std(0) > 0, fb.std(0) > 0
        expected = np.zeros((n, fb.shape[1]))
        block = np.corrcoef(fa[:, live_a].T, fb[:, live_b].T)[: live_a.sum(), live_a.sum():]
        expected[np.ix_(live_a, live_b)] = block
        np.testing.assert_allclose(corr[f"P_{k}"].numpy(), expected, atol=1e-10)
        np.testing.assert_allclose(cross[f"P_{k}"].numpy(), fa.T @ fb / len(x), rtol=1e-12)


def test_n_batches_limits_the_pass():
    a, b = mlp(32, (6, [7], 2)), mlp(33, (6, [7], 2))
    x = torch.randn(40, 6, dtype=torch.float64)
    first = mt.activation_similarity(a, b, x[:20])
    limited = mt.activation_similarity(a, b, [x[:20], x[20:]], n_batches=1)
    assert torch.equal(first["P_0"], limited["P_0"])


def test_covariance_cost_is_the_mean_squared_preactivation_difference():
    """‖[Δw, Δb]‖²_Σ with Σ = E[h̃ h̃ᵀ] equals the data mean of (pre-activation_a − pre-activation_b)²."""
    a, b = mlp(34, (5, [6, 4], 2)), mlp(35, (5, [6, 4], 2))
    x = torch.randn(80, 5, dtype=torch.float64)
    result = mt.CovarianceWeightedMatching()(a, b, x)
    pb = P.permute_model(b, result.perms)
    h = x
    for k in range(2):
        with torch.no_grad():
            pre_a, pre_b = a.layers[k](h), pb.layers[k](h)
            expected = float(((pre_a - pre_b) ** 2).mean())
            h = torch.relu(pre_a)  # Σ uses model a's features; π(b)'s inputs are aligned to them
        assert math.isclose(result.info["layer_costs"][k], expected, rel_tol=1e-9)


def test_input_second_moments():
    model = mlp(36, (3, [4], 2))
    x = torch.randn(30, 3, dtype=torch.float64)
    (sigma0,) = mt.input_second_moments(model, [x[:10], x[10:]])
    xt = torch.cat([x, torch.ones(30, 1, dtype=torch.float64)], 1)
    np.testing.assert_allclose(sigma0.numpy(), (xt.T @ xt / 30).numpy(), rtol=1e-12, atol=1e-14)


def test_pot_and_hungarian_backends_agree():
    a, b = mlp(37, (6, [9, 8], 2)), mlp(38, (6, [9, 8], 2))
    ra, rb = mt.OTMatching(backend="hungarian")(a, b), mt.OTMatching(backend="pot")(a, b)
    assert close(ra.objective, rb.objective, 1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Functional matching on the teacher–student minimum manifold
# ---------------------------------------------------------------------------------------------------------------

def two_layer(W: torch.Tensor, a: torch.Tensor | None = None) -> M.TwoLayerNet:
    net = M.TwoLayerNet(W.shape[1], W.shape[0], output="fixed" if a is None else "trained")
    with torch.no_grad():
        net.fc1.weight.copy_(W)
        if a is not None:
            net.fc2.weight.copy_(a[None])
    return net


def midpoint_loss(net_a: M.TwoLayerNet, net_b: M.TwoLayerNet, n: int = 20_000) -> float:
    """Monte Carlo E_x[(f_{1/2}(x) − f*(x))²], x ~ N(0, I), with f* = Σ_j σ(x_j) over the teacher e_1, e_2."""
    x = torch.randn(n, net_a.d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mid = two_layer((net_a.fc1.weight + net_b.fc1.weight).detach() / 2)
    with torch.no_grad():
        target = torch.relu(x[:, 0]) + torch.relu(x[:, 1])
        for net in (net_a, net_b):  # both endpoints are exact global minima
            assert float((net(x) - target).abs().max()) < 1e-12
        return float(((mid(x) - target) ** 2).mean())


# Two minima of the teacher f* = σ(x_1) + σ(x_2) (d = 3, M = 2, m = 4): rows are positive multiples of e_j whose
# masses sum to 1 per teacher neuron, or 0. Type counts a: (1, 2) + 1 dead; b: (2, 1) + 1 dead — compatible by
# Hall's criterion (notes §2.4), so some permutation has a zero barrier.
E1, E2 = torch.eye(3, dtype=torch.float64)[0], torch.eye(3, dtype=torch.float64)[1]
W_A = torch.stack([E1, 0.6 * E2, 0.4 * E2, 0 * E1])
W_B = torch.stack([0.3 * E1, E2, 0 * E1, 0.7 * E1])
# Two weight-matching optima (WM value 0.7 + 0.6 + ones): both pair e_1 ↔ 0.7·e_1 and 0.6·e_2 ↔ e_2, then one pairs
# the rest compatibly (0.4·e_2 ↔ dead, dead ↔ 0.3·e_1) and the other not (0.4·e_2 ↔ 0.3·e_1, dead ↔ dead): both
# remaining pairs have inner product 0, so WM cannot tell them apart.
WM_COMPATIBLE, WM_BLIND = torch.tensor([3, 1, 2, 0]), torch.tensor([3, 1, 0, 2])


def test_functional_matching_finds_a_zero_barrier_that_weight_matching_cannot_see():
    net_a, net_b = two_layer(W_A), two_layer(W_B)
    fm = ts.FunctionalMatching()(net_a, net_b)
    assert fm.info["exact"] and fm.sense == "min" and abs(fm.objective) < 1e-12
    assert midpoint_loss(net_a, P.permute_model(net_b, fm.perms)) < 1e-20
    wm_best = mt.brute_force_weight_matching(net_a, net_b).objective
    assert close(mt.WeightMatching()(net_a, net_b).objective, wm_best, 1e-12)
    for perm in (WM_COMPATIBLE, WM_BLIND):
        assert close(mt.weight_matching_objective(net_a, net_b, {"P_0": perm}), wm_best, 1e-12)
    assert midpoint_loss(net_a, P.permute_model(net_b, {"P_0": WM_COMPATIBLE})) < 1e-20
    assert midpoint_loss(net_a, P.permute_model(net_b, {"P_0": WM_BLIND})) > 1e-3


def test_functional_matching_folds_positive_output_weights():
    scale_a, scale_b = torch.tensor([2.0, 1.0, 0.5, 3.0]), torch.tensor([1.5, 0.5, 4.0, 1.0])
    folded = ts.FunctionalMatching()(two_layer(W_A), two_layer(W_B))
    trained = ts.FunctionalMatching()(two_layer(W_A / scale_a[:, None], scale_a),
                                      two_layer(W_B / scale_b[:, None], scale_b))
    assert same(trained.perms, folded.perms)
    with pytest.raises(ValueError, match="a_i > 0"):
        ts.FunctionalMatching()(two_layer(W_A, -scale_a), two_layer(W_B, scale_b))


def test_functional_matching_rejects_other_models():
    with pytest.raises(NotImplementedError, match="TwoLayerNet"):
        ts.FunctionalMatching()(mlp(0, WIDTHS), mlp(1, WIDTHS))
    with pytest.raises(ValueError, match="without bias"):
        ts.FunctionalMatching()(M.TwoLayerNet(3, 4, bias=True), M.TwoLayerNet(3, 4, bias=True))
    with pytest.raises(TypeError, match="float64"):
        ts.FunctionalMatching()(M.TwoLayerNet(3, 4, dtype=torch.float32), M.TwoLayerNet(3, 4, dtype=torch.float32))


# ---------------------------------------------------------------------------------------------------------------
# Bad input raises clearly
# ---------------------------------------------------------------------------------------------------------------

def test_mismatched_models_raise():
    wm = mt.WeightMatching()
    with pytest.raises(ValueError, match="different architectures"):
        wm(mlp(0, WIDTHS), M.VGG11(0.125))
    with pytest.raises(ValueError, match="different architectures"):
        wm(M.TwoLayerNet(3, 4), M.TwoLayerNet(3, 4, output="trained"))
    with pytest.raises(ValueError, match="different permutation specs"):
        wm(mlp(0, (12, [10, 9], 3)), mlp(0, WIDTHS))
    with pytest.raises(ValueError, match="layers.0.weight.*different widths"):
        wm(mlp(0, (12, [10, 9, 8], 3)), mlp(0, (12, [11, 9, 8], 3)))
    with pytest.raises(TypeError, match="dtype"):
        wm(mlp(0, WIDTHS, dtype=torch.float32), mlp(0, WIDTHS, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        wm(mlp(0, WIDTHS), "model")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_parameters_are_named(bad):
    a, b = mlp(0, WIDTHS), mlp(1, WIDTHS)
    with torch.no_grad():
        b.layers[1].bias[3] = bad
    for matcher in (mt.WeightMatching(), mt.OTMatching(), mt.IdentityMatching()):
        with pytest.raises(ValueError, match=r"model_b tensor 'layers.1.bias' contains NaN or inf"):
            matcher(a, b)
    with pytest.raises(ValueError, match="model_b tensor 'layers.1.bias'"):
        mt.brute_force_weight_matching(a, b)


def test_data_problems_raise():
    a, b = mlp(0, WIDTHS), mlp(1, WIDTHS)
    for matcher in (mt.ActivationMatching(), mt.CovarianceWeightedMatching()):
        with pytest.raises(ValueError, match="needs data"):
            matcher(a, b)
        with pytest.raises(ValueError, match="empty"):
            matcher(a, b, [])
        with pytest.raises(TypeError, match="dtype"):
            matcher(a, b, torch.randn(5, 12))
        with pytest.raises(ValueError, match="NaN"):
            matcher(a, b, torch.full((5, 12), math.nan, dtype=torch.float64))
        with pytest.raises(TypeError, match="batch 1 must be a torch.Tensor"):
            matcher(a, b, [torch.randn(5, 12, dtype=torch.float64), np.zeros((5, 12))])


def test_ot_matchers_reject_conv_models():
    a, b = M.VGG11(0.125), M.VGG11(0.125)
    with pytest.raises(NotImplementedError, match="MLP and TwoLayerNet"):
        mt.OTMatching()(a, b)
    with pytest.raises(NotImplementedError, match="MLP and TwoLayerNet"):
        mt.CovarianceWeightedMatching()(a, b, torch.randn(2, 3, 32, 32))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="order"):
        mt.WeightMatching(order="sideways")
    with pytest.raises(ValueError, match="max_sweeps"):
        mt.WeightMatching(max_sweeps=0)
    with pytest.raises(TypeError, match="n_restarts"):
        mt.WeightMatching(n_restarts=1.5)
    with pytest.raises(ValueError, match="tol"):
        mt.WeightMatching(tol=-1.0)
    with pytest.raises(TypeError, match="precision"):
        mt.WeightMatching(precision=torch.int64)
    with pytest.raises(ValueError, match="statistic"):
        mt.ActivationMatching("cosine")
    with pytest.raises(ValueError, match="n_batches"):
        mt.ActivationMatching(n_batches=0)
    with pytest.raises(ValueError, match="metric"):
        mt.OTMatching(metric="cosine")
    with pytest.raises(ValueError, match="p must be"):
        mt.OTMatching(p=0)
    with pytest.raises(ValueError, match="backend"):
        mt.CovarianceWeightedMatching(backend="sinkhorn")
    with pytest.raises(TypeError, match="callable"):
        mt.align(mlp(0, WIDTHS), mlp(1, WIDTHS), "wm")
    a, b = mlp(0, WIDTHS), mlp(1, WIDTHS)
    with pytest.raises(ValueError, match="permutation names"):
        mt.WeightMatching(init={"P_0": torch.arange(10)})(a, b)
    with pytest.raises(ValueError, match="not a permutation"):
        mt.WeightMatching(init={"P_0": torch.zeros(10, dtype=torch.long), "P_1": torch.arange(9),
                                "P_2": torch.arange(8)})(a, b)


def test_brute_force_refuses_large_problems():
    with pytest.raises(ValueError, match="max_combinations"):
        mt.brute_force_weight_matching(mlp(0, WIDTHS), mlp(1, WIDTHS))


# ---------------------------------------------------------------------------------------------------------------
# Boundaries and messages (mutation testing, issue 14 item 7)
# ---------------------------------------------------------------------------------------------------------------

def test_check_pair_messages_name_the_argument_and_the_tensor():
    wm = mt.WeightMatching()
    with pytest.raises(TypeError, match=r"^model_a must be a torch.nn.Module, got str$"):
        wm("model", mlp(0, WIDTHS))
    with pytest.raises(TypeError, match=r"^model_b must be a torch.nn.Module, got NoneType$"):
        mt.weight_matching_objective(mlp(0, WIDTHS), None)
    with pytest.raises(ValueError, match=r"^model_a and model_b have different architectures: \(<class "):
        wm(M.TwoLayerNet(3, 4), M.TwoLayerNet(3, 4, scale="1/m"))  # scale changes the function only
    with pytest.raises(ValueError, match=r"^model_a and model_b have different permutation specs \(different "
                                         r"architectures\)$"):
        wm(mlp(0, (12, [10, 9], 3)), mlp(0, WIDTHS))
    with pytest.raises(ValueError, match=r"^model_a and model_b differ in shape at 'layers.0.weight': \(10, 12\) "
                                         r"vs \(11, 12\) \(different widths\?\)$"):
        wm(mlp(0, (12, [10, 9, 8], 3)), mlp(0, (12, [11, 9, 8], 3)))
    with pytest.raises(TypeError, match=r"^model_a and model_b differ in dtype at 'layers.0.weight': "
                                        r"torch.float32 vs torch.float64$"):
        wm(mlp(0, WIDTHS, dtype=torch.float32), mlp(0, WIDTHS))
    a = mlp(0, WIDTHS)
    with torch.no_grad():
        a.layers[0].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"^model_a tensor 'layers.0.weight' contains NaN or inf$"):
        wm(a, mlp(1, WIDTHS))


def test_finite_parameters_whose_sum_overflows_are_accepted():
    a, b = mlp(0, WIDTHS, dtype=torch.float32), mlp(1, WIDTHS, dtype=torch.float32)
    with torch.no_grad():
        b.layers[0].weight[:2, 0] = 3e38  # finite, but their float32 sum is inf
    assert not torch.isfinite(b.layers[0].weight.sum())
    assert set(mt.IdentityMatching()(a, b).perms) == {"P_0", "P_1", "P_2"}


def test_data_messages_name_the_batch():
    a, b = mlp(0, WIDTHS), mlp(1, WIDTHS)
    am = mt.ActivationMatching()
    x = torch.randn(5, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^ActivationMatching needs data: pass a tensor of inputs or an iterable "
                                         r"of input batches as the third argument$"):
        am(a, b)
    with pytest.raises(TypeError, match=r"^data must be a tensor or an iterable of tensors, got int$"):
        am(a, b, 5)
    with pytest.raises(ValueError, match=r"^data is empty: expected at least one non-empty batch$"):
        am(a, b, [])
    with pytest.raises(TypeError, match=r"^data batch 1 must be a torch.Tensor, got ndarray$"):
        am(a, b, [x, np.zeros((5, 12))])
    with pytest.raises(TypeError, match=r"^data batch 0 has dtype torch.float32 but the models use "
                                        r"torch.float64$"):
        am(a, b, x.float())
    with pytest.raises(ValueError, match=r"^data batch 1 is empty \(shape \(0, 12\)\)$"):
        am(a, b, [x, x[:0]])
    with pytest.raises(ValueError, match=r"^data batch 0 is empty \(shape \(\)\)$"):
        am(a, b, torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^data batch 2 contains NaN or inf$"):
        am(a, b, [x, x, torch.full((5, 12), math.inf, dtype=torch.float64)])
    # (inputs, targets) pairs are read as their inputs, in a tuple or a list
    plain = mt.activation_similarity(a, b, [x])
    for batch in ((x, torch.zeros(5)), [x, torch.zeros(5)]):
        assert torch.equal(mt.activation_similarity(a, b, [batch])["P_0"], plain["P_0"])


def test_align_and_result_contracts():
    a, b = mlp(0, WIDTHS), mlp(1, WIDTHS)
    with pytest.raises(TypeError, match=r"^matcher must be callable \(e.g. WeightMatching\(\)\), got str$"):
        mt.align(a, b, "wm")
    with pytest.raises(TypeError, match=r"^matcher must return a MatchResult, got dict$"):
        mt.align(a, b, lambda ma, mb, data: {"P_0": torch.arange(10)})
    ident = mt.IdentityMatching()(a, b)
    assert math.isnan(ident.objective) and ident.objective_history == [] and ident.sense == "max"
    assert 0 < ident.seconds < 60 and ident.converged
    rnd = mt.RandomMatching(seed=0)(a, b)
    assert rnd.method == "random" and rnd.sweeps == 0 and not same(rnd.perms, ident.perms)
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        mt.RandomMatching(seed=-1)


def test_weight_matching_argument_messages_and_bounds():
    with pytest.raises(ValueError, match=r"^tol must be a finite real number >= 0, got inf$"):
        mt.WeightMatching(tol=math.inf)
    with pytest.raises(ValueError, match=r"^tol must be a finite real number >= 0, got True$"):
        mt.WeightMatching(tol=True)
    with pytest.raises(ValueError, match=r"^tol must be a finite real number >= 0, got -1e-12$"):
        mt.WeightMatching(tol=-1e-12)
    with pytest.raises(TypeError, match=r"^precision must be None or a floating torch.dtype, got torch.int64$"):
        mt.WeightMatching(precision=torch.int64)
    with pytest.raises(TypeError, match=r"^precision must be None or a floating torch.dtype, got 'float64'$"):
        mt.WeightMatching(precision="float64")
    with pytest.raises(TypeError, match=r"^init must be None or a dict of LongTensors, got list$"):
        mt.WeightMatching(init=[torch.arange(3)])
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        mt.WeightMatching(seed=-1)
    with pytest.raises(ValueError, match=r"^n_restarts must be >= 1, got 0$"):
        mt.WeightMatching(n_restarts=0)
    a, b = mlp(40, (4, [8, 8, 8], 2)), mlp(41, (4, [8, 8, 8], 2))
    exact = mt.WeightMatching(tol=0.0, max_sweeps=1, order="forward")(a, b)  # tol = 0 and one sweep are valid
    assert exact.sweeps == 1 and len(exact.info["sweep_objectives"]) == 1
    # one sweep stops early: more sweeps reach a higher objective on this pair
    assert mt.WeightMatching(order="forward")(a, b).objective > exact.objective


def test_brute_force_boundaries_and_record():
    a, b = mlp(42, (3, [3, 2], 2)), mlp(43, (3, [3, 2], 2))  # 3! · 2! = 12 combinations
    result = mt.brute_force_weight_matching(a, b, max_combinations=12)  # exactly the limit is allowed
    assert result.info == {"exact": True, "combinations": 12} and result.method == "brute_force"
    assert 0 < result.seconds < 60 and result.sweeps == 1 and result.converged
    assert close(result.objective, mt.weight_matching_objective(a, b, result.perms))
    with pytest.raises(ValueError, match=r"^brute force would enumerate 12 permutation combinations \(sizes "
                                         r"\{'P_0': 3, 'P_1': 2\}\), more than max_combinations=11$"):
        mt.brute_force_weight_matching(a, b, max_combinations=11)
    with pytest.raises(ValueError, match=r"^max_combinations must be >= 1, got 0$"):
        mt.brute_force_weight_matching(a, b, max_combinations=0)


def test_moved_and_unknown_names():
    with pytest.raises(AttributeError, match=r"^lmcnb.matching.FunctionalMatching moved to "
                                             r"lmcnb.papers.teacher_student.FunctionalMatching \(it needs the "
                                             r"teacher–student closed form; `from lmcnb.papers.teacher_student "
                                             r"import FunctionalMatching`\)$"):
        mt.FunctionalMatching  # noqa: B018
    with pytest.raises(AttributeError, match=r"^module 'lmcnb.matching' has no attribute 'nothing'$"):
        mt.nothing  # noqa: B018


def _reference_pcd(a: torch.nn.Module, b: torch.nn.Module, order: list[str]) -> tuple[P.Perms, list[float]]:
    """Plain PCD from scratch: every similarity rebuilt from π(θ_b), scipy's LAP, a step kept if the WM
    objective strictly increases, stop after a sweep without change (no caching, no skipping)."""
    from scipy.optimize import linear_sum_assignment

    spec = P.spec_for(a)
    perms = P.identity_perms(spec.sizes(a.state_dict()))
    state_a = a.state_dict()
    history = [mt.weight_matching_objective(a, b, perms)]
    changed = True
    while changed:
        changed = False
        for p in order:
            n = len(perms[p])
            pb = P.apply_perms(spec, {**perms, p: torch.arange(n)}, b.state_dict())  # b's own order on p
            S = torch.zeros(n, n, dtype=torch.float64)
            for key, axes in spec.axes_to_perm.items():
                if key in spec.carried or p not in axes:
                    continue
                axis = axes.index(p)
                S += state_a[key].movedim(axis, 0).reshape(n, -1) @ pb[key].movedim(axis, 0).reshape(n, -1).T
            q = torch.as_tensor(linear_sum_assignment(S.numpy(), maximize=True)[1])
            trial = {**perms, p: q}
            value = mt.weight_matching_objective(a, b, trial)
            if value > history[-1]:
                perms, changed = trial, True
                history.append(value)
    return perms, history


@pytest.mark.parametrize("order", ["forward", "backward"])
@pytest.mark.parametrize("seed", [40, 44, 48])
def test_pcd_equals_a_from_scratch_reference(order, seed):
    """The cached, incrementally corrected similarities, the skipping of unchanged groups and the visiting
    order give the same steps as plain coordinate descent."""
    a, b = mlp(seed, (4, [8, 8, 8], 2)), mlp(seed + 1, (4, [8, 8, 8], 2))
    names = ["P_0", "P_1", "P_2"]
    perms, history = _reference_pcd(a, b, names if order == "forward" else names[::-1])
    result = mt.WeightMatching(order=order, tol=0.0)(a, b)
    assert same(result.perms, perms)
    assert close(result.objective, history[-1], 1e-12)
    assert sorted(set(result.objective_history)) == pytest.approx(history, rel=1e-12)
    assert result.sweeps == len(result.info["sweep_objectives"]) and result.info["sweep_objectives"][-1] == \
        result.objective and non_decreasing(result.info["sweep_objectives"])
    assert len(result.perms) <= result.info["laps"] <= len(result.perms) * result.sweeps


def test_pcd_sweeps_tolerance_and_restarts():
    a, b = mlp(40, (4, [8, 8, 8], 2)), mlp(41, (4, [8, 8, 8], 2))
    full = mt.WeightMatching(order="forward")(a, b)
    assert full.sweeps > 1 and full.converged
    one = mt.WeightMatching(order="forward", max_sweeps=1)(a, b)  # stopped by the cap, not converged
    assert one.sweeps == 1 and not one.converged and one.objective < full.objective
    # a sweep gaining less than tol · |objective| is convergence: sweep 2 gains 12 % here, sweep 1 more
    loose = mt.WeightMatching(order="forward", tol=0.5)(a, b)
    assert loose.sweeps == 2 < full.sweeps and loose.converged  # full: a third sweep to see no change
    torch.manual_seed(123)
    r1 = mt.WeightMatching(seed=7, n_restarts=3)(a, b)
    torch.manual_seed(456)  # the restarts draw from the matcher's own seeded generator, not the global one
    r2 = mt.WeightMatching(seed=7, n_restarts=3)(a, b)
    assert r1.info["restart_objectives"] == r2.info["restart_objectives"] and same(r1.perms, r2.perms)
    objectives = r1.info["restart_objectives"]
    assert len(set(objectives)) > 1  # the restarts differ on this pair
    assert r1.info["restart"] == objectives.index(max(objectives)) and r1.objective == max(objectives)
    assert set(r1.info) == {"exact", "restart", "restart_objectives", "sweep_objectives", "laps", "compiled_laps",
                            "augmented", "warm_starts"}


def test_exact_single_group_keeps_an_optimal_start_on_ties():
    a = mlp(50, (3, [4], 2))
    b = mlp(50, (3, [4], 2))
    with torch.no_grad():  # units 0 and 1 of b identical: swapping them changes nothing
        b.layers[0].weight[1] = b.layers[0].weight[0]
        b.layers[0].bias[1] = b.layers[0].bias[0]
        b.layers[1].weight[:, 1] = b.layers[1].weight[:, 0]
    lap = mt.WeightMatching()(a, b)
    assert lap.info == {"exact": True, "laps": 1}
    swapped = {"P_0": torch.tensor([1, 0, 2, 3])[lap.perms["P_0"]]}  # the other optimum
    assert close(mt.weight_matching_objective(a, b, swapped), lap.objective, 1e-12)
    assert not same(swapped, lap.perms)
    kept = mt.WeightMatching(init=swapped)(a, b)
    assert same(kept.perms, swapped) and kept.objective_history[0] == kept.objective_history[1]


def test_objective_runs_over_non_carried_tensors_with_a_permuted_axis_and_more_messages():
    a, b = mlp(60, (3, [4, 5], 2)), mlp(61, (3, [4, 5], 2))
    sa, sb = a.state_dict(), b.state_dict()
    # layers.2.bias (2,) has no permuted axis: a constant, left out of the objective
    keys = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.weight"]
    expected = math.fsum(float((sa[k] * sb[k]).sum()) for k in keys)
    assert close(mt.weight_matching_objective(a, b), expected, 1e-12)
    torch.manual_seed(0)
    ra, rb = M.ResNet20(0.25), M.ResNet20(0.25)
    positive_bn(ra, 0)
    positive_bn(rb, 1)
    spec, ta, tb = P.spec_for(ra), ra.state_dict(), rb.state_dict()
    counted = [k for k, axes in spec.axes_to_perm.items() if any(x is not None for x in axes)
               and "running" not in k and "num_batches" not in k]  # BatchNorm statistics are carried
    assert any("running_mean" in k for k in spec.axes_to_perm)
    expected = math.fsum(float((ta[k].double() * tb[k].double()).sum()) for k in counted)
    assert close(mt.weight_matching_objective(ra, rb), expected, 1e-9)
    with pytest.raises(ValueError, match=r"^model_a and model_b have different architectures: \(<class "
                                         r"'lmcnb.models.MLP'>,\) vs \(<class 'lmcnb.models.VGG11'>,\)$"):
        mt.WeightMatching()(mlp(0, WIDTHS), M.VGG11(0.125))
    with pytest.raises(ValueError, match=r"^data is required: a tensor of inputs or an iterable of input "
                                         r"batches$"):
        mt.activation_similarity(a, b, None)
    with pytest.raises(ValueError, match=r"^n_batches must be >= 1, got 0$"):
        mt.ActivationMatching(n_batches=0)
    with pytest.raises(ValueError, match=r"^max_sweeps must be >= 1, got 0$"):
        mt.WeightMatching(max_sweeps=0)
    with pytest.raises(ValueError, match=r"^order must be one of \('random', 'forward', 'backward'\), got "
                                         r"'sideways'$"):
        mt.WeightMatching(order="sideways")


@pytest.mark.parametrize("order", ["forward", "backward"])
@pytest.mark.parametrize("seed", [40, 44])
def test_pcd_with_the_warm_started_solver_walks_the_same_path(order, seed):
    """``solver="warm"`` solves every LAP with the compiled solver, offering each group's previous duals
    and takes the same steps as the from-scratch reference and as ``solver="scipy"`` (continuous weights: each
    LAP has one optimum)."""
    a, b = mlp(seed, (4, [8, 8, 8], 2)), mlp(seed + 1, (4, [8, 8, 8], 2))
    names = ["P_0", "P_1", "P_2"]
    perms, history = _reference_pcd(a, b, names if order == "forward" else names[::-1])
    warm = mt.WeightMatching(order=order, tol=0.0, solver="warm")(a, b)
    cold = mt.WeightMatching(order=order, tol=0.0, solver="scipy")(a, b)
    assert same(warm.perms, perms) and same(cold.perms, perms)
    assert warm.objective_history == pytest.approx(cold.objective_history, rel=1e-12)
    assert warm.info["laps"] == cold.info["laps"] and cold.info["compiled_laps"] == cold.info["warm_starts"] == 0
    assert warm.info["compiled_laps"] == (warm.info["laps"] if mt.assignment.have_compiled_solver() else 0)
    assert 0 <= warm.info["warm_starts"] <= warm.info["compiled_laps"]


def test_solver_auto_switches_at_warm_min_n(monkeypatch):
    a, b = mlp(50, (4, [8, 8], 2)), mlp(51, (4, [8, 8], 2))
    small = mt.WeightMatching(order="forward")(a, b)  # auto, groups of 8 < WARM_MIN_N: scipy
    assert small.info["compiled_laps"] == 0
    monkeypatch.setattr(mt, "WARM_MIN_N", 8)
    auto = mt.WeightMatching(order="forward")(a, b)
    if mt.assignment.have_compiled_solver():
        assert auto.info["compiled_laps"] == auto.info["laps"] > 0  # the compiled solver from 8 units on
    else:
        assert auto.info["compiled_laps"] == 0  # no numba: auto stays with scipy
    assert same(auto.perms, small.perms)
    with pytest.raises(ValueError, match="solver"):
        mt.WeightMatching(solver="lapjv")
