"""The merge pipeline (lmcnb.merge): pair → align → path → repairs → evaluator → one curve with named barriers.

Every composition is checked against the state-level :func:`lmcnb.merge.evaluate_path` and against a direct
computation, bit for bit where the arithmetic is the same; the old flags of ``evaluate_path`` fail naming their
replacement.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lmcnb import barrier, matching, merge
from lmcnb.models import MLP
from lmcnb.permutation import permute_model

GRID = torch.linspace(0, 1, 9, dtype=torch.float64)  # contains 0.5


def mlp(seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(6, [16, 12], 4).eval()


def bn_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 4)).double().eval()


def data(seed: int, n: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, 4, (n,), generator=g)


def assert_same_curve(c1: barrier.InterpolationCurve, c2: barrier.InterpolationCurve) -> None:
    for name in ("lambdas", "losses", "accuracies", "calibrated_losses", "temperatures"):
        v1, v2 = getattr(c1, name), getattr(c2, name)
        assert (v1 is None) == (v2 is None), name
        if v1 is not None:
            torch.testing.assert_close(v1, v2, rtol=0, atol=0)


def test_merge_with_a_matcher_is_evaluate_path_on_the_aligned_pair():
    a, b = mlp(0), mlp(1)
    x, y = data(2, 50)
    wm = matching.WeightMatching()
    curve = merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y), align=wm)
    aligned = permute_model(b, wm(a, b).perms)
    assert_same_curve(curve, barrier.evaluate_path(a, a.state_dict(), aligned.state_dict(), GRID,
                                                   merge.Empirical(x, y)))
    # align=None is the unpermuted path
    assert_same_curve(merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y)),
                      barrier.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, merge.Empirical(x, y)))


@pytest.mark.filterwarnings("ignore:temperature hit the bound")
def test_repairs_are_steps_that_compose_on_states_and_on_a_pair():
    a, b = bn_net(0), bn_net(1)
    x, y = data(3, 40, torch.float64)
    x_train, _ = data(4, 64, torch.float64)
    split = data(5, 30, torch.float64)
    flags = barrier.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, merge.Empirical(x, y),
                                  repairs=[merge.ResetBatchNorm(x_train), merge.CalibrateTemperature(split)])
    steps = merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y),
                        repairs=[merge.CalibrateTemperature(split), merge.ResetBatchNorm(x_train)])
    assert_same_curve(flags, steps)
    only_bn = merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y), repairs=[merge.ResetBatchNorm(x_train)])
    assert only_bn.calibrated_losses is None
    torch.testing.assert_close(only_bn.losses, flags.losses, rtol=0, atol=0)
    # the reset really changed the path (else the test could not fail)
    plain = merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y))
    assert float((plain.losses - only_bn.losses).abs().max()) > 1e-6


def test_repairs_reject_what_they_cannot_repair():
    a, b = mlp(0), mlp(1)
    x, y = data(2, 20)
    with pytest.raises(ValueError, match="BatchNorm"):
        merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y), repairs=[merge.ResetBatchNorm(x)])
    with pytest.raises(ValueError, match="needs inputs"):
        merge.ResetBatchNorm(None)
    with pytest.raises(TypeError, match="one-shot iterator"):
        merge.ResetBatchNorm(iter([x]))
    with pytest.raises(ValueError, match="cross_entropy"):
        merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, torch.randn(20, 4), loss="mse"),
                    repairs=[merge.CalibrateTemperature((x, y))])
    with pytest.raises(TypeError, match="repairs must be"):
        merge.merge(merge.Pair(a, b), GRID, merge.Empirical(x, y), repairs=["bn"])
    with pytest.raises(TypeError, match="share an architecture"):
        merge.Pair(a, bn_net(0))
    with pytest.raises(TypeError, match="merge.Pair"):
        merge.merge((a, b), GRID, merge.Empirical(x, y))


def test_compare_is_the_barrier_modulo_permutation_in_one_call():
    a, b = mlp(0), mlp(1)
    x, y = data(2, 50)
    matchers = {"none": matching.IdentityMatching(), "weight": matching.WeightMatching()}
    one = merge.compare(merge.Pair(a, b), matchers, GRID, merge.Empirical(x, y), kind="midpoint")
    old = barrier.barrier_modulo_permutation(merge.Pair(a, b), matchers, GRID, merge.Empirical(x, y), kind="midpoint")
    assert one.best == old.best and one.value == old.value and list(one.outcomes) == ["none", "weight"]
    for name, matcher in matchers.items():
        assert_same_curve(one.outcomes[name].curve, old.outcomes[name].curve)
        aligned = merge.Pair(a, b).align(matcher)[0]  # the outcome's pair is the aligned pair
        assert one.outcomes[name].pair.model_a is a
        for k, t in aligned.model_b.state_dict().items():
            assert torch.equal(one.outcomes[name].pair.model_b.state_dict()[k], t)
        assert one.outcomes[name].barrier == one.outcomes[name].curve.barriers()["midpoint"]
    assert one.value == min(o.barrier for o in one.outcomes.values())


def test_the_curve_reads_values_by_lambda_and_names_its_barriers():
    lam = torch.linspace(0, 1, 11)  # float32 grid: 0.5 is exact
    losses = torch.tensor([1.0, 1.2, 1.5, 1.7, 1.9, 2.0, 1.9, 1.6, 1.4, 1.2, 1.1], dtype=torch.float64)
    acc = 1 - losses / 4
    c = barrier.InterpolationCurve(lam, losses, accuracies=acc)
    assert c.midpoint() == float(losses[5]) == c.at(0.5)
    assert c.midpoint("accuracy") == float(acc[5])
    assert c.endpoints() == (1.0, 1.1)
    named = c.barriers()
    assert named == {"linear": c.barrier("linear"), "midpoint": c.barrier("midpoint")}
    assert named["midpoint"] == pytest.approx(2.0 - 1.05, abs=1e-15)
    with pytest.raises(ValueError, match="not on this curve's grid"):
        c.at(0.55)
    no_half = barrier.InterpolationCurve(torch.tensor([0.0, 0.3, 1.0]), torch.tensor([0.0, 1.0, 0.0]))
    assert set(no_half.barriers()) == {"linear"}


def test_the_lambda_grid_rule_is_one_function():
    torch.testing.assert_close(barrier.check_lambdas([0, 0.5, 1]), torch.tensor([0, 0.5, 1], dtype=torch.float64))
    for bad, match in [([0, 0.5], "endpoints"), ([0, 0.7, 0.3, 1], "strictly increasing"),
                       ([0, 1.5, 1], r"\[0, 1\]"), ([], "non-empty")]:
        with pytest.raises(ValueError, match=match):
            barrier.check_lambdas(bad)


def test_merge_names_stay_reachable_from_barrier():
    for name in ("evaluate_path", "evaluate", "Evaluation", "barrier_modulo_permutation", "MatcherOutcome",
                 "PermutationBarrier", "AUTO_VECTORIZE", "CHUNK_ELEMENTS"):
        assert getattr(barrier, name) is getattr(merge, name)
    x, y = data(2, 10)
    model = copy.deepcopy(mlp(0))
    assert barrier.evaluate(model, x, y).loss == merge.evaluate(model, x, y).loss


# --- the 15-argument evaluate_path is gone: its flags fail naming what replaces them ---------------------------
@pytest.mark.parametrize("keyword, replacement", [
    ("bn", "ResetBatchNorm"), ("bn_inputs", "ResetBatchNorm"), ("bn_batch_size", "ResetBatchNorm"),
    ("calibration_split", "CalibrateTemperature"), ("temperature_bounds", "CalibrateTemperature"),
    ("loss", "Empirical"), ("batch_size", "Empirical"), ("vectorize", "Empirical"), ("lambda_chunk", "Empirical")])
def test_removed_evaluate_path_keywords_name_their_replacement(keyword, replacement):
    a, b = mlp(0), mlp(1)
    x, y = data(2, 10)
    with pytest.raises(TypeError, match=rf"no longer takes `{keyword}=`: it moved to `[^`]*{replacement}.*the call is evaluate_path\("):
        merge.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, merge.Empirical(x, y), **{keyword: None})
    with pytest.raises(TypeError, match=rf"{keyword}= is now .*{replacement}"):
        barrier.barrier_modulo_permutation(merge.Pair(a, b), [matching.IdentityMatching()], GRID,
                                           merge.Empirical(x, y), **{keyword: None})


def test_the_old_positional_form_and_a_non_evaluator_are_rejected():
    a, b = mlp(0), mlp(1)
    x, y = data(2, 10)
    with pytest.raises(TypeError, match=r"takes an evaluator in place of x, y, loss.*merge.Empirical\(x, y"):
        merge.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x, y)
    with pytest.raises(TypeError, match="takes an evaluator in place of x, y"):
        merge.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, x)
    with pytest.raises(TypeError, match="evaluator must be callable"):
        merge.evaluate_path(a, a.state_dict(), b.state_dict(), GRID, (x, y))
    # the signature the notebook lint checks keywords against is the real one (six parameters)
    import inspect
    assert list(inspect.signature(merge.evaluate_path).parameters) == [
        "model", "state_a", "state_b", "lambdas", "evaluator", "repairs"]
    assert inspect.signature(merge.barrier_modulo_permutation) == inspect.signature(merge.compare)


@pytest.mark.filterwarnings("ignore:temperature hit the bound")
def test_evaluate_path_passes_model_states_lambdas_and_repairs_to_the_evaluator():
    a, b = mlp(0), mlp(1)
    seen = []

    def evaluator(model, state_a, state_b, lambdas, repairs):
        seen.append((model, state_a, state_b, lambdas, repairs))
        return barrier.InterpolationCurve([0.0, 1.0], [0.0, 0.0])

    sa, sb, rep = a.state_dict(), b.state_dict(), merge.ResetBatchNorm(torch.zeros(2, 6))
    merge.evaluate_path(a, sa, sb, [0.0, 1.0], evaluator, repairs=[rep])
    assert seen == [(a, sa, sb, [0.0, 1.0], (rep,))]
    x, y = data(2, 20)
    plain = merge.evaluate_path(a, sa, sb, GRID, merge.Empirical(x, y))
    repaired = merge.evaluate_path(a, sa, sb, GRID, merge.Empirical(x, y),
                                   repairs=[merge.CalibrateTemperature((x, y))])
    assert plain.calibrated_losses is None and repaired.calibrated_losses is not None


def test_empirical_settings_are_validated_at_construction():
    x, y = data(2, 10)
    for kwargs, error, match in [(dict(loss="hinge"), ValueError, "loss"),
                                 (dict(batch_size=0), ValueError, "batch_size"),
                                 (dict(batch_size=2.0), TypeError, "batch_size"),
                                 (dict(vectorize="yes"), ValueError, "vectorize"),
                                 (dict(lambda_chunk=0), ValueError, "lambda_chunk")]:
        with pytest.raises(error, match=match):
            merge.Empirical(x, y, **kwargs)
    merge.Empirical(x, y, lambda o, t: (o - t) ** 2, batch_size=3, vectorize=True, lambda_chunk=2)
