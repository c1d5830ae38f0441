"""Tests of lmcnb.barrier: barrier definitions against a brute-force formula, exact zeros for identical
endpoints, convex losses (logistic and linear regression) without barrier, curve points against direct forwards
of materialised models (endpoints, midpoint, BatchNorm reset, calibration), vectorised == looped, the barrier
modulo permutation with a planted permutation, and input validation."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from lmcnb.barrier import (InterpolationCurve, barrier, barrier_modulo_permutation, evaluate_path, excess,
                           interpolate_states)
import lmcnb.barrier as B
from lmcnb.calibration import calibrated_nll, fit_temperature
from lmcnb.models import MLP, TwoLayerNet
from lmcnb.permutation import invert, permute_model, random_perms, spec_for
from lmcnb.renorm import reset_bn

from _helpers import mlp

SETTINGS = settings(max_examples=10)  # example budget (cost); the profile decides the rest
GRID = torch.linspace(0, 1, 9, dtype=torch.float64)  # contains 0.5
WIDTHS = (6, (16, 12), 4)  # (d, hidden, classes) of the test MLPs, as data(...) draws them
F32 = torch.float32


def bn_net(seed: int) -> nn.Sequential:
    """Linear–BN–ReLU–Linear in float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 4)).double().eval()


def data(seed: int, n: int, dtype: torch.dtype = torch.float32, d: int = 6, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, c, (n,), generator=g)


def materialise(template: nn.Module, state: dict) -> nn.Module:
    model = copy.deepcopy(template)
    model.load_state_dict(state)
    return model.eval()


def direct_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        out = model(x)
    return float(F.cross_entropy(out.double(), y)), float((out.argmax(1) == y).double().mean())


# ----------------------------------------------------------------------------------------------- definitions
def brute_force(values: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return values - ((1 - lam) * values[0] + lam * values[-1])


@SETTINGS
@given(values=st.lists(st.floats(-10, 10), min_size=9, max_size=9), c0=st.floats(-5, 5), c1=st.floats(-5, 5))
def test_barrier_definitions_match_brute_force_and_ignore_affine_trends(values, c0, c1):
    v, lam = np.array(values), GRID.numpy()
    gap = brute_force(v, lam)
    assert barrier(v, lam, "linear") == pytest.approx(gap.max(), abs=1e-12)
    assert barrier(v, lam, "midpoint") == pytest.approx(gap[4], abs=1e-12)
    assert barrier(v, lam) >= 0 and barrier(v, lam) >= barrier(v, lam, "midpoint")
    assert barrier(v, lam, higher_is_better=True) == pytest.approx(barrier(-v, lam), abs=1e-12)
    trended = v + c0 + c1 * lam
    assert barrier(trended, lam) == pytest.approx(barrier(v, lam), abs=1e-9)
    np.testing.assert_allclose(excess(trended, lam).numpy(), gap, atol=1e-9)


def test_hand_computed_barriers_and_curve_metrics():
    lam = [0.0, 0.25, 0.5, 1.0]
    curve = InterpolationCurve(lam, losses=[1.0, 3.0, 1.5, 1.0], accuracies=[0.9, 0.5, 0.7, 0.7])
    assert curve.barrier() == 2.0 and curve.barrier("midpoint") == 0.5
    assert curve.barrier(metric="accuracy") == pytest.approx(0.35)  # baseline 0.85 at λ = 1/4
    assert curve.barrier("midpoint", "accuracy") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="calibrated_loss"):
        curve.barrier(metric="calibrated_loss")


# ----------------------------------------------------------------------------------------------- interpolation
def test_interpolate_states_float_and_stacked():
    a, b = bn_net(0).state_dict(), bn_net(1).state_dict()
    b["1.num_batches_tracked"] = torch.tensor(7)
    copies = {k: v.clone() for k, v in a.items()}
    for lam in (0.0, 0.3, 1.0):
        mid = interpolate_states(a, b, lam)
        for k, v in a.items():
            expected = (1 - lam) * v + lam * b[k] if v.is_floating_point() else v
            torch.testing.assert_close(mid[k], expected, rtol=1e-15, atol=1e-15)
    lam = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    stacked = interpolate_states(a, b, lam)
    for i, lam_i in enumerate(lam.tolist()):
        for k, v in interpolate_states(a, b, lam_i).items():
            assert torch.equal(stacked[k][i], v)
    for k in a:
        assert torch.equal(stacked[k][0], a[k]) and torch.equal(a[k], copies[k])
        assert torch.equal(stacked[k][2], b[k] if a[k].is_floating_point() else a[k])


# ----------------------------------------------------------------------------------------------- exact properties
@pytest.mark.parametrize("vectorize, chunk", [(False, None), (True, None), (True, 2), (False, 4)])
def test_identical_endpoints_have_zero_barrier_exactly(vectorize, chunk):
    x, y = data(0, 50)
    for model in (mlp(0, WIDTHS, dtype=F32), bn_net(0)):
        xx = x.to(next(model.parameters()).dtype)
        state = model.state_dict()
        curve = evaluate_path(model, state, dict(state), GRID, xx, y, vectorize=vectorize, lambda_chunk=chunk,
                              batch_size=16)
        for kind in ("linear", "midpoint"):
            for metric in ("loss", "accuracy"):
                assert curve.barrier(kind, metric) == 0.0


@SETTINGS
@given(seed=st.integers(0, 10_000), c=st.integers(2, 5), scale=st.floats(0.1, 10.0))
def test_convex_losses_have_no_linear_barrier(seed, c, scale):
    # logistic regression (cross-entropy of a linear model) and least squares are convex in θ, so the excess
    # over the linear baseline is ≤ 0 up to float64 rounding, and the linear barrier (endpoints give 0) is 0.
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(40, 6, generator=g, dtype=torch.float64), torch.randint(0, c, (40,), generator=g)
    target = torch.randn(40, 1, generator=g, dtype=torch.float64)
    for out, labels, loss in ((c, y, "cross_entropy"), (1, target, "mse")):
        model = MLP(6, [], out, dtype=torch.float64)
        a, b = ({k: scale * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in model.state_dict().items()}
                for _ in range(2))
        curve = evaluate_path(model, a, b, GRID, x, labels, loss)
        assert float(curve.excess().max()) <= 1e-12 * (1 + float(curve.losses.abs().max()))
        assert 0.0 <= curve.barrier() <= 1e-12 * (1 + float(curve.losses.abs().max()))
        assert curve.barrier("midpoint") <= 1e-12 * (1 + float(curve.losses.abs().max()))


# ----------------------------------------------------------------------------------------------- vs direct forwards
@pytest.mark.parametrize("vectorize", [False, True])
def test_curve_points_equal_direct_forwards_of_materialised_models(vectorize):
    a, b = mlp(1, WIDTHS, dtype=F32), mlp(2, WIDTHS, dtype=F32)
    x, y = data(1, 60)
    curve = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, vectorize=vectorize, batch_size=25)
    mid = materialise(a, {k: (v + b.state_dict()[k]) / 2 for k, v in a.state_dict().items()})
    expected = [direct_loss(m, x, y) for m in (a, mid, b)]
    for i, (loss, acc) in zip((0, 4, 8), expected):
        assert float(curve.losses[i]) == pytest.approx(loss, rel=1e-6)
        assert float(curve.accuracies[i]) == acc
    assert curve.barrier("midpoint") == pytest.approx(expected[1][0] - (expected[0][0] + expected[2][0]) / 2,
                                                      abs=1e-6)


def test_regression_path_endpoints_and_callable_loss():
    torch.manual_seed(3)
    a, b = TwoLayerNet(5, 7, output="trained", bias=True), TwoLayerNet(5, 7, output="trained", bias=True)
    x, y = data(3, 30, torch.float64, d=5)[0], torch.randn(30, dtype=torch.float64)
    curve = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, "mse")
    with torch.no_grad():
        for i, m in ((0, a), (8, b)):
            assert float(curve.losses[i]) == pytest.approx(float(((m(x) - y) ** 2).mean()), rel=1e-12)
    assert curve.accuracies is None
    half_sq = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, lambda o, t: 0.5 * (o - t) ** 2)
    torch.testing.assert_close(half_sq.losses, curve.losses / 2, rtol=1e-12, atol=0)


def test_vectorised_equals_looped_with_batchnorm_chunks_and_batches():
    x, y = data(4, 45, torch.float64)
    a, b = reset_bn(bn_net(4), x, batch_size=15), reset_bn(bn_net(5), 2 * x, batch_size=15)
    curves = [evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, vectorize=v, lambda_chunk=c,
                            batch_size=bs) for v, c, bs in ((False, None, None), (True, None, 20), (True, 3, 7))]
    for c in curves[1:]:
        torch.testing.assert_close(c.losses, curves[0].losses, rtol=1e-12, atol=0)
        torch.testing.assert_close(c.accuracies, curves[0].accuracies, rtol=0, atol=0)
    mid = interpolate_states(a.state_dict(), b.state_dict(), 0.5)
    assert float(curves[0].losses[4]) == pytest.approx(direct_loss(materialise(a, mid), x, y)[0], rel=1e-12)


def test_bn_reset_is_a_no_op_at_the_endpoints_and_matches_reset_models_inside():
    x, y = data(5, 40, torch.float64)
    x_train = data(6, 60, torch.float64)[0]
    a, b = reset_bn(bn_net(6), x_train, batch_size=20), reset_bn(bn_net(7), x_train, batch_size=20)
    plain = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y)
    reset = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, bn="reset", bn_inputs=x_train,
                          bn_batch_size=20)
    for i in (0, 8):
        assert float(reset.losses[i]) == pytest.approx(float(plain.losses[i]), rel=1e-12)
    assert float(reset.losses[0]) == pytest.approx(direct_loss(a, x, y)[0], rel=1e-12)
    for i in (2, 4):
        state = interpolate_states(a.state_dict(), b.state_dict(), float(GRID[i]))
        direct = reset_bn(materialise(a, state), x_train, batch_size=20)
        assert float(reset.losses[i]) == pytest.approx(direct_loss(direct, x, y)[0], rel=1e-10)
    assert abs(float(reset.losses[4]) - float(plain.losses[4])) > 1e-3  # the reset does change the midpoint


def test_calibrated_curve_uses_held_out_temperatures_and_keeps_accuracy():
    a = mlp(8, WIDTHS)
    with torch.no_grad():
        a.layers[-1].weight.mul_(4.0)
    b = materialise(a, {k: v + 0.3 * torch.randn_like(v) for k, v in a.state_dict().items()})
    (x, _), (x_val, _) = data(8, 80, torch.float64), data(9, 80, torch.float64)
    with torch.no_grad():
        y, y_val = a(x).argmax(1), a(x_val).argmax(1)
    y[::4], y_val[::4] = (y[::4] + 1) % 4, (y_val[::4] + 1) % 4  # 25% label noise: finite temperatures
    raw = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y)
    cal = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y, calibration_split=(x_val, y_val))
    assert torch.equal(cal.accuracies, raw.accuracies) and torch.equal(cal.losses, raw.losses)
    for i in (0, 3, 8):
        model = materialise(a, interpolate_states(a.state_dict(), b.state_dict(), float(GRID[i])))
        with torch.no_grad():
            t = fit_temperature(model(x_val), y_val)
            assert float(cal.temperatures[i]) == pytest.approx(t, rel=1e-9)
            assert float(cal.calibrated_losses[i]) == pytest.approx(float(calibrated_nll(model(x), y, t)), rel=1e-9)
    assert isinstance(cal.barrier(metric="calibrated_loss"), float)


# ----------------------------------------------------------------------------------------------- modulo permutation
class PlantedMatcher:
    """Matcher stub that knows the permutation planted in model b and returns its inverse."""

    name = "planted"

    def __init__(self, planted: dict):
        self.planted, self.data = planted, "not called"

    def __call__(self, model_a, model_b, data=None):
        self.data = data
        return type("MatchResult", (), {"perms": invert(self.planted)})()


def identity_matcher(model_a, model_b, data=None):
    sizes = spec_for(model_b).sizes(model_b.state_dict())
    return type("MatchResult", (), {"perms": {k: torch.arange(n) for k, n in sizes.items()}})()


def test_barrier_modulo_permutation_is_the_minimum_over_matchers():
    a = mlp(10, (6, (24, 24), 4))
    with torch.no_grad():
        a.layers[-1].weight.mul_(5.0)
    x = data(10, 64, torch.float64)[0]
    with torch.no_grad():
        y = a(x).argmax(1)  # model a is confident and right: interpolating towards noise costs loss
    perms = random_perms(spec_for(a).sizes(a.state_dict()), torch.Generator().manual_seed(0))
    b = permute_model(a, perms)
    planted = PlantedMatcher(perms)
    result = barrier_modulo_permutation(a, b, [identity_matcher, planted], x, y, GRID, data_for_matching="D")
    barriers = {name: o.barrier for name, o in result.outcomes.items()}
    assert list(barriers) == ["identity_matcher", "planted"] and planted.data == "D"
    assert barriers["identity_matcher"] > 0.05 and barriers["planted"] == 0.0
    assert result.best == "planted" and result.value == min(barriers.values()) == 0.0
    for o in result.outcomes.values():
        assert o.barrier == o.curve.barrier("linear", "loss")
    acc = barrier_modulo_permutation(a, b, [identity_matcher, planted], x, y, GRID, kind="midpoint",
                                     metric="accuracy")
    assert acc.value == 0.0 and acc.outcomes["identity_matcher"].barrier > 0
    by_dict = barrier_modulo_permutation(a, b, {"wrong": identity_matcher, "right": planted}, x, y, GRID)
    assert by_dict.best == "right" and by_dict.outcomes["wrong"].barrier == barriers["identity_matcher"]
    with pytest.raises(ValueError, match="distinct"):
        barrier_modulo_permutation(a, b, [planted, planted], x, y, GRID)
    with pytest.raises(ValueError, match="calibration_split"):
        barrier_modulo_permutation(a, b, [planted], x, y, GRID, metric="calibrated_loss")
    with pytest.raises(TypeError, match="architecture"):
        barrier_modulo_permutation(a, bn_net(0), [planted], x, y, GRID)


# ----------------------------------------------------------------------------------------------- validation
def test_bad_input_is_rejected():
    model = mlp(11, WIDTHS, dtype=F32)
    sa, sb = model.state_dict(), mlp(12, WIDTHS, dtype=F32).state_dict()
    x, y = data(11, 20)
    lam = torch.linspace(0, 1, 5, dtype=torch.float64)
    bad_grids = (([0.0, 1.2], r"\[0, 1\]"), ([0.0, -0.1, 1.0], r"\[0, 1\]"), ([0.0, 0.6, 0.4, 1.0], "increasing"),
                 ([0.0, 0.5], "endpoints"), ([0.0, float("nan"), 1.0], "NaN"), ([0.0, 0.5, 0.5, 1.0], "increasing"))
    for bad, match in bad_grids:
        with pytest.raises(ValueError, match=match):
            evaluate_path(model, sa, sb, bad, x, y)
    with pytest.raises(ValueError, match="NaN"):
        barrier([0.0, float("nan"), 1.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        InterpolationCurve([0.0, 1.0], losses=[float("nan"), 1.0])
    with pytest.raises(ValueError, match="one entry per lambda"):
        barrier([0.0, 1.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="0.5"):
        barrier([0.0, 1.0, 1.0], [0.0, 0.4, 1.0], "midpoint")
    with pytest.raises(ValueError, match="kind"):
        barrier([0.0, 1.0], [0.0, 1.0], "max")
    with pytest.raises(ValueError, match="different keys"):
        evaluate_path(model, sa, {k: v for k, v in sb.items() if k != "layers.0.bias"}, lam, x, y)
    with pytest.raises(ValueError, match="differs"):
        evaluate_path(model, sa, {**sb, "layers.0.bias": torch.zeros(3)}, lam, x, y)
    with pytest.raises(ValueError, match="do not fit"):
        evaluate_path(mlp(0, (6, (5, 12), 4), dtype=F32), sa, sb, lam, x, y)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_path(model, sa, {**sb, "layers.0.bias": torch.full((16,), float("nan"))}, lam, x, y)
    with pytest.raises(TypeError, match="int64"):
        evaluate_path(model, sa, sb, lam, x, y.float())
    with pytest.raises(TypeError, match="mse targets"):
        evaluate_path(model, sa, sb, lam, x, y, "mse")
    with pytest.raises(TypeError, match="dtype"):
        evaluate_path(model, sa, sb, lam, x.double(), y)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_path(model, sa, sb, lam, x[:0], y[:0])
    with pytest.raises(ValueError, match="rows"):
        evaluate_path(model, sa, sb, lam, x, y[:-1])
    with pytest.raises(ValueError, match="out of range"):
        evaluate_path(model, sa, sb, lam, x, y + 4)
    with pytest.raises(ValueError, match="loss"):
        evaluate_path(model, sa, sb, lam, x, y, "hinge")
    with pytest.raises(ValueError, match="cross_entropy"):
        evaluate_path(model, sa, sb, lam, x, y.float()[:, None].expand(20, 4).contiguous(), "mse",
                      calibration_split=(x, y))
    with pytest.raises(ValueError, match="BatchNorm"):
        evaluate_path(model, sa, sb, lam, x, y, bn="reset", bn_inputs=x)
    bn = bn_net(0)
    with pytest.raises(ValueError, match="bn_inputs"):
        evaluate_path(bn, bn.state_dict(), bn.state_dict(), lam, x.double(), y, bn="reset")
    with pytest.raises(TypeError, match="re-iterable"):
        evaluate_path(bn, bn.state_dict(), bn.state_dict(), lam, x.double(), y, bn="reset",
                      bn_inputs=iter([x.double()]))
    with pytest.raises(ValueError, match="vectorize"):
        evaluate_path(model, sa, sb, lam, x, y, vectorize="yes")
    with pytest.raises(TypeError, match="lam"):
        interpolate_states(sa, sb, "half")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_states(sa, sb, 1.5)



def test_evaluate_matches_the_path_endpoint_and_a_direct_computation():
    from lmcnb.barrier import evaluate

    torch.manual_seed(0)
    model = MLP(6, [5], 3)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    ev = evaluate(model, x, y, batch_size=7)
    curve = evaluate_path(model, model.state_dict(), model.state_dict(), [0.0, 1.0], x, y)
    assert math.isclose(ev.loss, float(curve.losses[0]), rel_tol=1e-6)
    assert ev.accuracy == float(curve.accuracies[0])
    with torch.no_grad():
        logits = model(x)
        targets = torch.randn(40, 3)
        mse = float((model(x) - targets).pow(2).mean())
    assert math.isclose(ev.loss, float(F.cross_entropy(logits, y)), rel_tol=1e-6)
    assert ev.accuracy == float((logits.argmax(1) == y).double().mean())
    reg = evaluate(model, x, targets, loss="mse")
    assert reg.accuracy is None and math.isclose(reg.loss, mse, rel_tol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        evaluate(model, x, y, loss="hinge")
    with pytest.raises(TypeError, match="nn.Module"):
        evaluate(lambda t: t, x, y)


def test_curve_reads_the_temperature_by_lambda_but_never_as_a_barrier():
    lam = torch.linspace(0, 1, 3)
    c = InterpolationCurve(lam, torch.tensor([1.0, 2.0, 1.0]), calibrated_losses=torch.ones(3),
                                   temperatures=torch.tensor([1.0, 3.0, 2.0]))
    assert c.at(0.5, "temperature") == 3.0 and c.at(1, "temperature") == 2.0
    with pytest.raises(ValueError, match="metric"):
        c.barrier("linear", "temperature")
    with pytest.raises(ValueError, match="metric"):
        c.excess("temperature")


def test_linear_baseline_is_exact_at_the_ends_and_for_equal_values():
    lam = torch.linspace(0, 1, 101, dtype=torch.float64)
    v0, v1 = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.7, dtype=torch.float64)
    base = B.linear_baseline(v0, v1, lam)
    assert base[0] == v0 and base[-1] == v1
    torch.testing.assert_close(base, (1 - lam) * v0 + lam * v1, rtol=1e-15, atol=0)
    assert bool((B.linear_baseline(v0, v0, lam) == v0).all())
    assert B.linear_baseline(torch.ones(2, 1), torch.zeros(2, 1), lam.float()).shape == (2, 101)
