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


# --- every argument and message (killing the mutants of `make mutation`) -----------------------------------------

def test_spec_structure_names_and_carried_keys() -> None:
    net = M.TwoLayerNet(3, 4, bias=True, output="trained", scale="1/m")
    spec = P.spec_for(net)
    assert spec.perm_to_axes == {"P_0": (("fc1.weight", 0), ("fc2.weight", 1), ("fc1.bias", 0))}
    vgg = P.spec_for(M.VGG11(0.0625))
    assert vgg.perm_names == tuple(f"P_{k}" for k in range(8))
    assert vgg.axes_to_perm["features.0.weight"] == ("P_0", None, None, None)
    assert vgg.axes_to_perm["features.4.weight"] == ("P_1", "P_0", None, None)
    assert {"features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"} <= vgg.carried
    assert not vgg.carried & {"features.1.weight", "features.1.bias", "features.0.weight"}
    res = P.spec_for(M.ResNet20(0.25))
    assert {"bn1.running_mean", "stages.1.0.shortcut.1.running_var"} <= res.carried
    assert res.axes_to_perm["stages.1.0.shortcut.0.weight"] == ("P_s1", "P_s0", None, None)
    assert not P.spec_for(M.VGG11(0.0625, batchnorm=False)).carried


def test_identity_and_seeded_random_perms() -> None:
    sizes = {"a": 4, "b": 6}
    ident = P.identity_perms(sizes)
    assert set(ident) == {"a", "b"} and all(torch.equal(ident[k], torch.arange(n)) for k, n in sizes.items())
    first = P.random_perms(sizes, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    expected = {"a": torch.randperm(4, generator=g), "b": torch.randperm(6, generator=g)}
    torch.manual_seed(12345)  # the global generator must not matter
    assert all(torch.equal(first[k], expected[k]) for k in sizes)
    again = P.random_perms(sizes, torch.Generator().manual_seed(3))
    assert all(torch.equal(first[k], again[k]) for k in sizes)


def test_apply_perms_never_aliases_and_follows_the_state_device() -> None:
    model = M.MLP(4, [3], 2)
    spec, state = P.spec_for(model), model.state_dict()
    out = P.apply_perms(spec, P.identity_perms(spec.sizes(state)), state)
    for key in state:  # the unpermuted output bias too: a copy, never the input tensor
        assert out[key] is not state[key] and out[key].data_ptr() != state[key].data_ptr()
    meta = {k: v.to("meta") for k, v in state.items()}  # permutations on the CPU, state on another device
    moved = P.apply_perms(spec, {"P_0": torch.tensor([2, 0, 1])}, meta)
    assert moved["layers.0.weight"].device.type == "meta"


def test_permute_model_builds_the_spec_itself() -> None:
    torch.manual_seed(0)
    model, x = M.MLP(4, [5], 3), torch.randn(6, 4)
    perms = {"P_0": torch.tensor([4, 2, 0, 1, 3])}
    own, given_spec = P.permute_model(model, perms), P.permute_model(model, perms, P.spec_for(model))
    assert torch.equal(own.layers[0].weight, model.layers[0].weight[perms["P_0"]])
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), given_spec.state_dict().values()))
    P.assert_equivalent(model, own, x)


def test_max_output_difference_and_the_equivalence_tolerance() -> None:
    lin_a = torch.nn.Linear(2, 1, bias=True)
    lin_b = torch.nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        lin_a.weight.copy_(torch.tensor([[10.0, 0.0]]))
        lin_a.bias.zero_()
        lin_b.weight.copy_(torch.tensor([[10.0, 0.0]]))
        lin_b.bias.fill_(0.5)
    x = torch.tensor([[1.0, 3.0], [2.0, 0.0]])  # f_a = 10, 20; f_b = 10.5, 20.5: diff 0.5, scale 20
    assert P.max_output_difference(lin_a, lin_b, x) == 0.5
    assert P.max_output_difference(lin_a, lin_b, [x[:1], x[1:]]) == 0.5  # an iterable of batches
    assert P.max_output_difference(lin_a, lin_b, (x[:1],)) == 0.5
    assert P.assert_equivalent(lin_a, lin_b, x, rtol=0.0, atol=0.5) == 0.5  # diff == tolerance passes
    assert P.assert_equivalent(lin_a, lin_b, x, rtol=0.02, atol=0.1) == 0.5  # 0.1 + 0.02·20 = 0.5
    with pytest.raises(P.NotEquivalentError, match=r"^models differ by 0\.5 \(tolerance 0\.3\)$"):
        P.assert_equivalent(lin_a, lin_b, x, rtol=0.01, atol=0.1)  # 0.1 + 0.01·20 = 0.3
    single = torch.nn.Linear(1, 1)
    assert P.max_output_difference(single, single, torch.ones(1, 1)) == 0.0  # one element is not empty
    lin_a.train()
    lin_b.eval()
    P.max_output_difference(lin_a, lin_b, x)
    assert lin_a.training and not lin_b.training  # both modes restored


def test_compare_rejects_empty_or_non_tensor_inputs() -> None:
    lin = torch.nn.Linear(2, 1)
    msg = r"^inputs must be a non-empty tensor or iterable of non-empty tensors$"
    for bad in (torch.zeros(0, 2), [], [torch.zeros(1, 2), "x"], [torch.zeros(0, 2)]):
        with pytest.raises(ValueError, match=msg):
            P.max_output_difference(lin, lin, bad)


def test_error_messages_name_what_was_given() -> None:
    with pytest.raises(TypeError, match=r"^axes of 'w' must be a tuple, got list$"):
        P.PermutationSpec({"w": ["P_0"]})
    with pytest.raises(ValueError, match=r"^carried keys \['x', 'y'\] are not in the spec$"):
        P.PermutationSpec({"w": ("P_0",)}, frozenset({"y", "x"}))
    with pytest.raises(ValueError, match=r"^'w' has shape \(2, 3\) but the spec lists 1 axes$"):
        P.PermutationSpec({"w": ("P_0",)}).sizes({"w": torch.zeros(2, 3)})
    with pytest.raises(TypeError, match=r"^no permutation spec for Linear; known: \['TwoLayerNet', 'MLP'"):
        P.spec_for(torch.nn.Linear(2, 2))
    sizes = {"P_0": 3}
    with pytest.raises(TypeError, match=r"^perms must be a dict of LongTensors, got list$"):
        P.validate_perms([torch.arange(3)], sizes)
    with pytest.raises(TypeError, match=r"^permutation 'P_0' must be a LongTensor, got torch\.int32$"):
        P.validate_perms({"P_0": torch.arange(3, dtype=torch.int32)}, sizes)
    with pytest.raises(TypeError, match=r"^permutation 'P_0' must be a LongTensor, got list$"):
        P.validate_perms({"P_0": [0, 1, 2]}, sizes)
    with pytest.raises(ValueError, match=r"^cannot compose permutation sets with names \['a'\] and \['b'\]$"):
        P.compose({"a": torch.arange(2)}, {"b": torch.arange(2)})
