"""Tests of lmcnb.barrier: barrier definitions against a brute-force formula, exact zeros for identical
endpoints, convex losses (logistic and linear regression) without barrier, curve points against direct forwards
of materialised models (endpoints, midpoint, BatchNorm reset, calibration), vectorised == looped, the barrier
modulo permutation with a planted permutation, and input validation."""
from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from lmcnb.barrier import (InterpolationCurve, barrier, barrier_modulo_permutation, check_lambdas, evaluate_path,
                           excess, interpolate_states)
import lmcnb.barrier as B
from lmcnb.merge import CalibrateTemperature, Empirical, Pair, ResetBatchNorm, compare
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
        curve = evaluate_path(model, state, dict(state), GRID,
                              Empirical(xx, y, vectorize=vectorize, lambda_chunk=chunk, batch_size=16))
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
        curve = evaluate_path(model, a, b, GRID, Empirical(x, labels, loss))
        assert float(curve.excess().max()) <= 1e-12 * (1 + float(curve.losses.abs().max()))
        assert 0.0 <= curve.barrier() <= 1e-12 * (1 + float(curve.losses.abs().max()))
        assert curve.barrier("midpoint") <= 1e-12 * (1 + float(curve.losses.abs().max()))


# ----------------------------------------------------------------------------------------------- vs direct forwards
@pytest.mark.parametrize("vectorize", [False, True])
def test_curve_points_equal_direct_forwards_of_materialised_models(vectorize):
    a, b = mlp(1, WIDTHS, dtype=F32), mlp(2, WIDTHS, dtype=F32)
    x, y = data(1, 60)
    curve = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y, vectorize=vectorize, batch_size=25))
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
    curve = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y, "mse"))
    with torch.no_grad():
        for i, m in ((0, a), (8, b)):
            assert float(curve.losses[i]) == pytest.approx(float(((m(x) - y) ** 2).mean()), rel=1e-12)
    assert curve.accuracies is None
    half_sq = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y, lambda o, t: 0.5 * (o - t) ** 2))
    torch.testing.assert_close(half_sq.losses, curve.losses / 2, rtol=1e-12, atol=0)


def test_vectorised_equals_looped_with_batchnorm_chunks_and_batches():
    x, y = data(4, 45, torch.float64)
    a, b = reset_bn(bn_net(4), x, batch_size=15), reset_bn(bn_net(5), 2 * x, batch_size=15)
    curves = [evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y, batch_size=bs, vectorize=v,
                                                                                lambda_chunk=c))
              for v, c, bs in ((False, None, None), (True, None, 20), (True, 3, 7))]
    for c in curves[1:]:
        torch.testing.assert_close(c.losses, curves[0].losses, rtol=1e-12, atol=0)
        torch.testing.assert_close(c.accuracies, curves[0].accuracies, rtol=0, atol=0)
    mid = interpolate_states(a.state_dict(), b.state_dict(), 0.5)
    assert float(curves[0].losses[4]) == pytest.approx(direct_loss(materialise(a, mid), x, y)[0], rel=1e-12)


def test_bn_reset_is_a_no_op_at_the_endpoints_and_matches_reset_models_inside():
    x, y = data(5, 40, torch.float64)
    x_train = data(6, 60, torch.float64)[0]
    a, b = reset_bn(bn_net(6), x_train, batch_size=20), reset_bn(bn_net(7), x_train, batch_size=20)
    plain = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y))
    reset = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y),
                          repairs=[ResetBatchNorm(x_train, batch_size=20)])
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
    raw = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y))
    cal = evaluate_path(a, a.state_dict(), b.state_dict(), GRID, Empirical(x, y),
                        repairs=[CalibrateTemperature((x_val, y_val))])
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
    pair, ev = Pair(a, b), Empirical(x, y)
    result = compare(pair, [identity_matcher, planted], GRID, ev, data="D")
    barriers = {name: o.barrier for name, o in result.outcomes.items()}
    assert list(barriers) == ["identity_matcher", "planted"] and planted.data == "D"
    assert barriers["identity_matcher"] > 0.05 and barriers["planted"] == 0.0
    assert result.best == "planted" and result.value == min(barriers.values()) == 0.0
    for o in result.outcomes.values():
        assert o.barrier == o.curve.barrier("linear", "loss")
    # the outcome carries the aligned pair: the planted matcher's b is model a again
    assert all(torch.equal(t, a.state_dict()[k]) for k, t in result.outcomes["planted"].pair.model_b.state_dict().items())
    assert result.outcomes["identity_matcher"].pair.model_a is a
    acc = compare(pair, [identity_matcher, planted], GRID, ev, kind="midpoint", metric="accuracy")
    assert acc.value == 0.0 and acc.outcomes["identity_matcher"].barrier > 0
    by_dict = compare(pair, {"wrong": identity_matcher, "right": planted}, GRID, ev)
    assert by_dict.best == "right" and by_dict.outcomes["wrong"].barrier == barriers["identity_matcher"]
    # the old name is the same computation (compare's arguments)
    old_name = barrier_modulo_permutation(pair, {"wrong": identity_matcher, "right": planted}, GRID, ev)
    assert old_name.best == "right" and old_name.value == by_dict.value
    with pytest.raises(ValueError, match="distinct"):
        compare(pair, [planted, planted], GRID, ev)
    with pytest.raises(ValueError, match="CalibrateTemperature"):
        compare(pair, [planted], GRID, ev, metric="calibrated_loss")
    with pytest.raises(TypeError, match="architecture"):
        compare(Pair(a, bn_net(0)), [planted], GRID, ev)
    with pytest.raises(TypeError, match="merge.compare.*merge.Pair"):
        barrier_modulo_permutation(a, b, [planted], x, y, GRID)
    with pytest.raises(TypeError, match=r"data_for_matching= is now compare\(…, data=…\)"):
        barrier_modulo_permutation(pair, [planted], GRID, ev, data_for_matching="D")


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
            evaluate_path(model, sa, sb, bad, Empirical(x, y))
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
        evaluate_path(model, sa, {k: v for k, v in sb.items() if k != "layers.0.bias"}, lam, Empirical(x, y))
    with pytest.raises(ValueError, match="differs"):
        evaluate_path(model, sa, {**sb, "layers.0.bias": torch.zeros(3)}, lam, Empirical(x, y))
    with pytest.raises(ValueError, match="do not fit"):
        evaluate_path(mlp(0, (6, (5, 12), 4), dtype=F32), sa, sb, lam, Empirical(x, y))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_path(model, sa, {**sb, "layers.0.bias": torch.full((16,), float("nan"))}, lam, Empirical(x, y))
    with pytest.raises(TypeError, match="int64"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y.float()))
    with pytest.raises(TypeError, match="mse targets"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y, "mse"))
    with pytest.raises(TypeError, match="dtype"):
        evaluate_path(model, sa, sb, lam, Empirical(x.double(), y))
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_path(model, sa, sb, lam, Empirical(x[:0], y[:0]))
    with pytest.raises(ValueError, match="rows"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y[:-1]))
    with pytest.raises(ValueError, match="out of range"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y + 4))
    with pytest.raises(ValueError, match="loss"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y, "hinge"))
    with pytest.raises(ValueError, match="cross_entropy"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y.float()[:, None].expand(20, 4).contiguous(), "mse"),
                      repairs=[CalibrateTemperature((x, y))])
    with pytest.raises(ValueError, match="BatchNorm"):
        evaluate_path(model, sa, sb, lam, Empirical(x, y), repairs=[ResetBatchNorm(x)])
    with pytest.raises(ValueError, match="needs inputs"):
        ResetBatchNorm(None)
    with pytest.raises(TypeError, match="re-iterable"):
        ResetBatchNorm(iter([x.double()]))
    with pytest.raises(ValueError, match="ResetBatchNorm batch_size"):
        ResetBatchNorm(x, batch_size=0)
    with pytest.raises(ValueError, match="vectorize"):
        Empirical(x, y, vectorize="yes")
    with pytest.raises(TypeError, match="evaluator must be callable"):
        evaluate_path(model, sa, sb, lam, "Empirical")
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
    curve = evaluate_path(model, model.state_dict(), model.state_dict(), [0.0, 1.0], Empirical(x, y))
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


# --- every argument and message (killing the mutants of `make mutation`) -----------------------------------------

def test_curve_reads_values_by_lambda_and_names_its_barriers():
    lam = [0.0, 0.25, 0.5, 1.0]
    curve = InterpolationCurve(lam, [1.0, 2.0, 3.0, 1.0], accuracies=[0.9, 0.5, 0.4, 0.7],
                               calibrated_losses=[0.8, 1.0, 1.5, 0.9], temperatures=[1.0, 2.0, 3.0, 1.5])
    assert curve.lambdas.dtype == torch.float64 and curve.losses.dtype == torch.float64
    assert curve.values().tolist() == [1.0, 2.0, 3.0, 1.0]  # default metric: loss
    assert curve.at(0.25) == 2.0 and curve.at(0.25, "accuracy") == 0.5 and curve.midpoint("calibrated_loss") == 1.5
    assert curve.endpoints() == (1.0, 1.0) and curve.endpoints("accuracy") == (0.9, 0.7)
    assert curve.midpoint() == 3.0
    # accuracy: excess = baseline − A, baseline 0.9 − 0.2λ: λ=¼ → 0.85 − 0.5, λ=½ → 0.8 − 0.4
    torch.testing.assert_close(curve.excess("accuracy"), torch.tensor([0.0, 0.35, 0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(curve.excess(), torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64))
    assert curve.barriers() == {"linear": 2.0, "midpoint": 2.0}
    assert curve.barriers("accuracy") == pytest.approx({"linear": 0.4, "midpoint": 0.4})
    no_half = InterpolationCurve([0.0, 0.25, 1.0], [1.0, 2.0, 1.0])
    assert no_half.barriers() == {"linear": 1.0}
    with pytest.raises(ValueError, match=r"^lambda = 0.5 is not on this curve's grid \[0.0, 0.25, 1.0\]$"):
        no_half.midpoint()
    with pytest.raises(ValueError, match=r"^this curve has no accuracy values \(accuracy needs int64 labels"):
        no_half.values("accuracy")
    with pytest.raises(ValueError,
                       match=r"^metric must be one of \('loss', 'accuracy', 'calibrated_loss', 'temperature'\), got "):
        no_half.values("nll")
    edge = InterpolationCurve([0.0, 1.0], [1.0, 1.0], accuracies=[0.0, 1.0])  # accuracies 0 and 1 are allowed
    assert edge.endpoints("accuracy") == (0.0, 1.0)


def test_midpoint_baseline_uses_both_endpoints():
    """At λ = ½ exactly both lerp forms agree; just below or above, each side's form is exact at its endpoint."""
    lam = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert excess([1.0, 2.0, 3.0], lam).tolist() == [0.0, 0.0, 0.0]
    assert excess([0.1, 5.0, 0.7], lam)[1].item() == 5.0 - (0.7 - 0.5 * (0.7 - 0.1))
    assert barrier([0.1, 5.0, 0.7], lam, "midpoint") == 5.0 - (0.7 - 0.5 * (0.7 - 0.1))
    assert barrier([1.0, 0.0, 1.0], lam, "midpoint") == -1.0  # can be negative


def test_error_messages_name_the_argument_and_what_was_given():
    lam = [0.0, 0.5, 1.0]
    with pytest.raises(TypeError, match=r"^values must hold real numbers, got dtype <U1$"):
        barrier(["a", "b", "c"], lam)
    with pytest.raises(TypeError, match=r"^values must hold real numbers, got dtype object$"):
        barrier([1.0, None, 2.0], lam)
    with pytest.raises(TypeError, match=r"^values must hold real numbers, got torch.bool$"):
        barrier(torch.tensor([True, False, True]), lam)
    with pytest.raises(TypeError, match=r"^values must hold real numbers, got torch.complex64$"):
        barrier(torch.zeros(3, dtype=torch.complex64), lam)
    with pytest.raises(TypeError, match=r"^values must hold real numbers, got torch.bool$"):
        barrier(np.array([False, True, False]), lam)  # rejected by the tensor check, with the torch dtype
    assert barrier(np.array([0, 2, 0], dtype=np.int64), lam) == 2.0
    for bad in ("abc", 3.0, {1: 2}):
        with pytest.raises(TypeError, match=r"^values must be a 1-D tensor, array or sequence of numbers, got "
                                            + type(bad).__name__ + "$"):
            barrier(bad, lam)
    with pytest.raises(ValueError, match=r"^values must be a non-empty 1-D sequence, got shape \(1, 3\)$"):
        barrier([[1.0, 2.0, 3.0]], lam)
    with pytest.raises(ValueError, match=r"^lambdas must be a non-empty 1-D sequence, got shape \(0,\)$"):
        check_lambdas([])
    with pytest.raises(ValueError, match=r"^lambdas must include the endpoints 0 and 1, got \[0.0\]$"):
        check_lambdas([0.0])  # one point is a valid vector, and increasing, but not a grid
    with pytest.raises(ValueError, match=r"^lambdas must be strictly increasing, got \[0.0, 0.0, 1.0\]$"):
        check_lambdas([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"^lambdas must be strictly increasing, got \[0.0, 1.0, 1.0\]$"):
        check_lambdas([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^values must have one entry per lambda \(3\), got 2$"):
        excess([1.0, 2.0], lam)
    with pytest.raises(TypeError, match=r"^higher_is_better must be a bool, got int$"):
        excess([1.0, 2.0, 3.0], lam, higher_is_better=1)
    with pytest.raises(ValueError, match=r"^kind must be one of \('linear', 'midpoint'\), got 'max'$"):
        barrier([1.0, 2.0, 3.0], lam, "max")
    with pytest.raises(ValueError, match=r"^kind='midpoint' needs lambda = 0.5 exactly on the grid \(e.g. an odd"):
        barrier([1.0, 2.0], [0.0, 1.0], "midpoint")
    for kwargs, msg in (({"temperatures": [1.0, 2.0]}, r"^calibrated_losses and temperatures must be given together$"),
                        ({"calibrated_losses": [1.0, 2.0], "temperatures": [1.0, 0.0]},
                         r"^temperatures must be > 0, got \[1.0, 0.0\]$"),
                        ({"accuracies": [0.5, -0.1]}, r"^accuracies must lie in \[0, 1\], got \[0.5, -0.1\]$"),
                        ({"accuracies": [1.5, 0.5]}, r"^accuracies must lie in \[0, 1\], got \[1.5, 0.5\]$"),
                        ({"accuracies": [0.5, 0.5, 0.5]}, r"^accuracies must have one entry per lambda \(2\), got 3$"),
                        ({"accuracies": [[0.5, 0.5]]}, r"^accuracies must be a non-empty 1-D sequence")):
        with pytest.raises(ValueError, match=msg):
            InterpolationCurve([0.0, 1.0], [1.0, 2.0], **kwargs)
    curve = InterpolationCurve([0.0, 1.0], [1.0, 2.0], temperatures=[1.0, 2.0], calibrated_losses=[0.5, 0.5])
    assert curve.temperatures.tolist() == [1.0, 2.0]  # validated after a None field (accuracies) too


def test_interpolation_messages_and_stacked_non_floating_entries():
    a = {"w": torch.zeros(2, 3), "n": torch.tensor(5)}
    b = {"w": torch.ones(2, 3), "n": torch.tensor(7)}
    out = interpolate_states(a, b, torch.tensor([0.0, 0.5, 1.0]))
    assert out["w"].shape == (3, 2, 3) and out["n"].tolist() == [5, 5, 5]
    with pytest.raises(TypeError, match=r"^state_a must be a non-empty state_dict mapping, got list$"):
        interpolate_states([], b, 0.5)
    with pytest.raises(TypeError, match=r"^state_b must be a non-empty state_dict mapping, got dict$"):
        interpolate_states(a, {}, 0.5)
    with pytest.raises(TypeError, match=r"^state_b\['w'\] must be a tensor, got float$"):
        interpolate_states(a, {"w": 1.0, "n": b["n"]}, 0.5)
    with pytest.raises(ValueError, match=r"^state entry 'w' differs: \(2, 3\) torch.float32 cpu in a vs \(2, 3\) "
                                         r"torch.float64 cpu in b$"):
        interpolate_states(a, {"w": b["w"].double(), "n": b["n"]}, 0.5)
    with pytest.raises(TypeError, match=r"^lam must be a real number or a 1-D tensor, got str$"):
        interpolate_states(a, b, "0.5")
    for bad in ([-0.5, 0.5], [0.5, 1.5]):
        with pytest.raises(ValueError, match=r"^lam must lie in \[0, 1\], got " + re.escape(str(bad)) + "$"):
            interpolate_states(a, b, torch.tensor(bad, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^lam must be a non-empty 1-D sequence, got shape \(1, 2\)$"):
        interpolate_states(a, b, torch.zeros(1, 2))
