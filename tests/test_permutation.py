"""Permutation specs: random permutations leave every model family's function unchanged; bad specs are caught."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import models as M
from lmcnb import permutation as P


def _randomise_bn(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Give BatchNorm layers non-trivial statistics and affine parameters (so a missed axis shows)."""
    g = torch.Generator().manual_seed(1)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g))
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


FAMILIES = {
    "two_layer": (lambda: M.TwoLayerNet(5, 7), lambda: torch.randn(16, 5, dtype=torch.float64)),
    "two_layer_bias_trained": (lambda: M.TwoLayerNet(5, 7, bias=True, output="trained", scale="1/m"),
                               lambda: torch.randn(16, 5, dtype=torch.float64)),
    "mlp_bias": (lambda: M.MLP(12, [9, 8, 7], 4), lambda: torch.randn(16, 12)),
    "mlp_nobias": (lambda: M.MLP(12, [9, 8], 4, bias=False), lambda: torch.randn(16, 12)),
    "vgg11_bn": (lambda: M.VGG11(0.125), lambda: torch.randn(4, 3, 32, 32)),
    "vgg11_plain": (lambda: M.VGG11(0.125, batchnorm=False), lambda: torch.randn(4, 3, 32, 32)),
    "resnet20_bn": (lambda: M.ResNet20(0.5), lambda: torch.randn(4, 3, 32, 32)),
    "resnet20_plain": (lambda: M.ResNet20(0.5, norm=False), lambda: torch.randn(4, 3, 32, 32)),
}


def _family(family: str):
    """A model of ``family`` (seed 0) with randomised BatchNorm, an input batch for it, and its spec."""
    torch.manual_seed(0)
    make_model, make_x = FAMILIES[family]
    model, x = make_model(), make_x()
    _randomise_bn(model, x)
    return model, x, P.spec_for(model)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_random_permutation_preserves_function(family: str) -> None:
    model, x, spec = _family(family)
    perms = P.random_perms(spec.sizes(model.state_dict()), torch.Generator().manual_seed(2))
    permuted = P.permute_model(model, perms, spec)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      permuted.state_dict().values()))
    P.assert_equivalent(model, permuted, x)


@pytest.mark.parametrize("family", ["mlp_bias", "vgg11_bn", "resnet20_bn"])
def test_guard_catches_a_broken_spec(family: str) -> None:
    """Dropping one axis from the spec (a classic hand-written-spec typo) must break equivalence."""
    model, x, spec = _family(family)
    sizes = spec.sizes(model.state_dict())
    perms = P.random_perms(sizes, torch.Generator().manual_seed(3))
    # Forget the input-side permutation of the last layer that reads a hidden permutation.
    key = [k for k, axes in spec.axes_to_perm.items() if len(axes) >= 2 and axes[0] is None and axes[1]][0]
    broken_axes = dict(spec.axes_to_perm)
    broken_axes[key] = (None, None) + tuple(broken_axes[key][2:])
    broken = P.PermutationSpec(broken_axes, spec.carried)
    bad = P.permute_model(model, perms, broken)
    with pytest.raises(P.NotEquivalentError):
        P.assert_equivalent(model, bad, x)


def test_spec_sizes_match_architecture() -> None:
    model = M.MLP(10, [6, 5], 3)
    assert P.spec_for(model).sizes(model.state_dict()) == {"P_0": 6, "P_1": 5}
    res = M.ResNet20(1.0)
    sizes = P.spec_for(res).sizes(res.state_dict())
    assert sizes["P_s0"] == 16 and sizes["P_s1"] == 32 and sizes["P_s2"] == 64
    assert len(sizes) == 3 + 9  # three residual streams, one inner permutation per block


@settings(max_examples=25)
@given(st.integers(1, 9), st.integers(0, 10_000))
def test_compose_and_invert(n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    sizes = {"P_0": n}
    p, q = P.random_perms(sizes, g), P.random_perms(sizes, g)
    spec = P.PermutationSpec({"w": ("P_0", None)})
    state = {"w": torch.randn(n, 3, generator=g)}
    twice = P.apply_perms(spec, p, P.apply_perms(spec, q, state))
    once = P.apply_perms(spec, P.compose(p, q), state)
    assert torch.equal(twice["w"], once["w"])
    back = P.apply_perms(spec, P.invert(p), P.apply_perms(spec, p, state))
    assert torch.equal(back["w"], state["w"])


def test_apply_does_not_mutate_input() -> None:
    model = M.MLP(4, [3], 2)
    state = model.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    spec = P.spec_for(model)
    P.apply_perms(spec, {"P_0": torch.tensor([2, 0, 1])}, state)
    assert all(torch.equal(before[k], state[k]) for k in state)


def test_bad_permutations_raise() -> None:
    model = M.MLP(4, [3], 2)
    spec, state = P.spec_for(model), model.state_dict()
    with pytest.raises(ValueError, match="not a permutation"):
        P.apply_perms(spec, {"P_0": torch.tensor([0, 0, 1])}, state)
    with pytest.raises(TypeError, match="LongTensor"):
        P.apply_perms(spec, {"P_0": torch.tensor([0.0, 1.0, 2.0])}, state)
    with pytest.raises(ValueError, match="do not match"):
        P.apply_perms(spec, {"P_1": torch.arange(3)}, state)
    with pytest.raises(ValueError, match="not a permutation"):
        P.apply_perms(spec, {"P_0": torch.arange(4)}, state)


def test_spec_state_mismatch_raises() -> None:
    spec = P.spec_for(M.MLP(4, [3], 2))
    with pytest.raises(ValueError, match="disagree"):
        spec.sizes(M.MLP(4, [3, 3], 2).state_dict())
    with pytest.raises(ValueError, match="size"):
        P.PermutationSpec({"a": ("P", None), "b": (None, "P")}).sizes(
            {"a": torch.zeros(3, 2), "b": torch.zeros(2, 4)})
    with pytest.raises(TypeError, match="no permutation spec"):
        P.spec_for(torch.nn.Linear(2, 2))


def test_bad_model_arguments_raise() -> None:
    with pytest.raises(ValueError, match="m must be positive"):
        M.TwoLayerNet(3, 0)
    with pytest.raises(TypeError, match="d must be an int"):
        M.TwoLayerNet(3.0, 2)
    with pytest.raises(ValueError, match="output"):
        M.TwoLayerNet(3, 2, output="free")
    with pytest.raises(ValueError, match="width_multiplier"):
        M.VGG11(width_multiplier=0)
    with pytest.raises(ValueError, match="M <= d"):
        M.teacher(3, 4)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        M.MLP(3, [2, -1], 2)


def test_teacher_is_orthonormal() -> None:
    t = M.teacher(8, 4, random_rotation=True, generator=torch.Generator().manual_seed(0))
    w = t.fc1.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(4, dtype=torch.float64), atol=1e-12)
    x = torch.randn(5, 8, dtype=torch.float64)
    assert torch.allclose(t(x), torch.relu(x @ w.T).sum(1))


def test_small_vgg_and_resnet_permutation_count() -> None:
    """Every conv of VGG-11 has its own permutation; exhaustive check of one tiny permutation set."""
    model = M.VGG11(0.0625, batchnorm=True)
    spec = P.spec_for(model)
    assert len(spec.perm_names) == 8
    x = torch.randn(2, 3, 32, 32)
    _randomise_bn(model, x)
    sizes = spec.sizes(model.state_dict())
    for shift in itertools.islice(itertools.count(1), 3):
        perms = {k: torch.roll(torch.arange(n), shift) for k, n in sizes.items()}
        P.assert_equivalent(model, P.permute_model(model, perms, spec), x)
