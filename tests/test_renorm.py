"""Tests of lmcnb.renorm: re-estimated BatchNorm statistics against an independent hook computation of the
pre-BN activations' batch means and unbiased variances, determinism (dropout stays off), no mutation, the
iterable and tensor input forms, and input validation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lmcnb.models import MLP, ResNet20, VGG11
from lmcnb.renorm import has_batchnorm, reset_bn, reset_bn_state


def bn_mlp(seed: int = 0, dropout: float = 0.0) -> nn.Sequential:
    """Linear–BN–ReLU(–Dropout)–Linear–BN–ReLU–Linear in float64, with non-trivial BN affine parameters."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 6),
                        nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    return net.eval()


def small_resnet(seed: int = 0) -> ResNet20:
    torch.manual_seed(seed)
    return ResNet20(0.25, num_classes=4).eval()


def hooked_statistics(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Independent reference: run every batch with BN layers in train mode (batch normalisation) and record,
    per BN layer, the average over batches of the per-channel mean and unbiased variance of its input."""
    work = {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in work}

    def hook(name):
        def record(_module, args):
            h = args[0].transpose(0, 1).flatten(1)  # (channels, samples × positions)
            seen[name].append((h.mean(1), h.var(1, unbiased=True)))
        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in work.items()]
    for m in work.values():
        m.train()
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.eval()
    return {name: (torch.stack([s[0] for s in v]).mean(0), torch.stack([s[1] for s in v]).mean(0))
            for name, v in seen.items()}


def _assert_matches_hooks(make, x: torch.Tensor, batch_size: int | None, n_batches: int | None, used: int,
                          rtol: float) -> None:
    reset = reset_bn(make(), x, n_batches, batch_size=batch_size)
    expected = hooked_statistics(make(), list(x.split(batch_size or len(x)))[:used])
    for name, (mean, var) in expected.items():
        bn = reset.get_submodule(name)
        torch.testing.assert_close(bn.running_mean, mean, rtol=rtol, atol=rtol)
        torch.testing.assert_close(bn.running_var, var, rtol=rtol, atol=rtol)
        assert int(bn.num_batches_tracked) == used


@pytest.mark.parametrize("batch_size, n_batches, used", [(None, None, 1), (12, None, 4), (12, 2, 2)])
def test_reset_statistics_equal_hooked_pre_bn_moments(batch_size, n_batches, used):
    x = 2 + 3 * torch.randn(48, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _assert_matches_hooks(bn_mlp, x, batch_size, n_batches, used, rtol=1e-12)


def test_reset_statistics_of_conv_batchnorm_average_over_batch_and_positions():
    x = 2 + 3 * torch.randn(24, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    _assert_matches_hooks(small_resnet, x, 12, None, 2, rtol=1e-5)


def test_reset_is_deterministic_ignores_dropout_and_does_not_mutate():
    model = bn_mlp(dropout=0.5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    first, second = reset_bn(model, x, batch_size=10), reset_bn(model, x, batch_size=10)
    assert not first.training and model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
        assert torch.equal(first.state_dict()[k], second.state_dict()[k])
    assert not torch.equal(first.state_dict()["1.running_mean"], before["1.running_mean"])
    # dropout off: the reset stats equal those of the same network without dropout
    no_dropout = reset_bn(bn_mlp(dropout=0.0), x, batch_size=10)
    torch.testing.assert_close(first.state_dict()["5.running_var"], no_dropout.state_dict()["5.running_var"],
                               rtol=0, atol=0)
    # idempotent: statistics depend only on the weights and the inputs
    again = reset_bn(first, x, batch_size=10)
    for k, v in first.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)


def test_iterable_of_batches_and_state_form_agree_with_tensor_form():
    model = bn_mlp()
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loader = [(xb, torch.zeros(len(xb))) for xb in x.split(10)]
    from_tensor = reset_bn(model, x, batch_size=10).state_dict()
    from_loader = reset_bn(model, loader).state_dict()
    state = {k: v * 1.5 if v.is_floating_point() else v for k, v in bn_mlp(4).state_dict().items()}
    other = bn_mlp(9)
    other.load_state_dict(state)
    from_state = reset_bn_state(bn_mlp(), state, x, batch_size=10)
    expected = reset_bn(other, x, batch_size=10).state_dict()
    for k in from_tensor:
        assert torch.equal(from_tensor[k], from_loader[k])
        assert torch.equal(from_state[k], expected[k])


def test_has_batchnorm():
    assert has_batchnorm(bn_mlp()) and has_batchnorm(small_resnet()) and has_batchnorm(VGG11(0.125))
    assert not has_batchnorm(MLP(4, [3], 2))
    assert not has_batchnorm(ResNet20(0.25, norm=False))
    assert not has_batchnorm(nn.BatchNorm1d(3, track_running_stats=False))


def test_bad_input_is_rejected():
    model, x = bn_mlp(), torch.randn(8, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="no BatchNorm"):
        reset_bn(MLP(5, [4], 2), x.float())
    with pytest.raises(ValueError, match="non-empty"):
        reset_bn(model, x[:0])
    with pytest.raises(ValueError, match="no batch"):
        reset_bn(model, [])
    with pytest.raises(TypeError, match="dtype"):
        reset_bn(model, x.float())
    with pytest.raises(ValueError, match="NaN"):
        reset_bn(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="n_batches"):
        reset_bn(model, x, 0)
    with pytest.raises(ValueError, match="batch_size"):
        reset_bn(model, [x], batch_size=4)
    with pytest.raises(TypeError, match="nn.Module"):
        reset_bn(model.state_dict(), x)
    with pytest.raises(TypeError, match="tensor or an iterable"):
        reset_bn(model, 3.0)


# --- every argument and message (killing the mutants of `make mutation`) -----------------------------------------

def conv_bn(seed: int = 0) -> nn.Sequential:
    """Conv–BN2d–ReLU–pool–Linear in float64: BatchNorm2d takes a batch of one image (BatchNorm1d does not)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(3, 2)).double().eval()


def scalar_bn() -> nn.Sequential:
    """A model whose inputs are a batch of scalars ``(n,)`` (1-d inputs are valid)."""
    return nn.Sequential(nn.Unflatten(0, (-1, 1)), nn.BatchNorm1d(1)).double().eval()


def test_one_dimensional_inputs_and_batches_are_accepted():
    x = torch.tensor([1.0, 2.0, 4.0, 7.0], dtype=torch.float64)
    for inputs in (x, list(x.split(2))):
        bn = reset_bn(scalar_bn(), inputs)[1]
        batches = [x] if isinstance(inputs, torch.Tensor) else list(x.split(2))
        torch.testing.assert_close(bn.running_mean, torch.stack([b.mean() for b in batches]).mean()[None])
        torch.testing.assert_close(bn.running_var, torch.stack([b.var() for b in batches]).mean()[None])


def test_batches_of_one_image_and_batch_size_one():
    x = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    one = reset_bn(conv_bn(), x[:1])
    assert int(one[1].num_batches_tracked) == 1
    per_image = reset_bn(conv_bn(), x, batch_size=1)
    assert int(per_image[1].num_batches_tracked) == 3
    expected = hooked_statistics(conv_bn(), list(x.split(1)))["1"]
    torch.testing.assert_close(per_image[1].running_mean, expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(per_image[1].running_var, expected[1], rtol=1e-12, atol=1e-12)
    assert int(reset_bn(conv_bn(), x, 1, batch_size=1)[1].num_batches_tracked) == 1  # n_batches = 1 is allowed


def test_n_batches_limits_an_iterable_and_the_state_form():
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    batches = list(x.split(10))
    first = reset_bn(bn_mlp(), x[:10])
    from_list = reset_bn(bn_mlp(), batches, 1)
    from_state = reset_bn_state(bn_mlp(), bn_mlp().state_dict(), x, 1, batch_size=10)
    for k, v in first.state_dict().items():
        assert torch.equal(from_list.state_dict()[k], v)
        assert torch.equal(from_state[k], v)


def test_momentum_is_restored_and_reset_bn_state_leaves_the_model_alone():
    model = bn_mlp()
    model[1].momentum = 0.3
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert reset_bn(model, x)[1].momentum == 0.3 and model[1].momentum == 0.3
    state = {k: v * 2 if v.is_floating_point() else v for k, v in bn_mlp(3).state_dict().items()}
    out = reset_bn_state(model, state, x)
    assert model[1].momentum == 0.3
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(out["0.weight"], state["0.weight"])


def test_error_messages_name_the_argument_and_what_was_given():
    model, x = bn_mlp(), torch.randn(8, 5, dtype=torch.float64)
    for call in (has_batchnorm, lambda m: reset_bn(m, x), lambda m: reset_bn_state(m, {}, x)):
        with pytest.raises(TypeError, match=r"^model must be an nn.Module, got int$"):
            call(3)
    with pytest.raises(TypeError, match=r"^state must be a state_dict mapping, got list$"):
        reset_bn_state(model, [], x)
    with pytest.raises(ValueError, match=r"^Linear has no BatchNorm layer with running statistics to reset$"):
        reset_bn(nn.Linear(5, 2).double(), x)
    with pytest.raises(ValueError, match=r"^n_batches must be >= 1, got 0$"):
        reset_bn(model, x, 0)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        reset_bn(model, x, batch_size=0)
    with pytest.raises(ValueError, match=r"^inputs must be a non-empty \(n, \*\) tensor, got shape \(\)$"):
        reset_bn(model, torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^inputs must be a non-empty \(n, \*\) tensor, got shape \(0, 5\)$"):
        reset_bn(model, x[:0])
    with pytest.raises(ValueError, match=r"^batch_size applies to a tensor of inputs, not to an iterable of batches$"):
        reset_bn(model, [x], batch_size=4)
    with pytest.raises(TypeError, match=r"^inputs must be a tensor or an iterable of batches, got float$"):
        reset_bn(model, 3.0)
    with pytest.raises(ValueError, match=r"^batch 1 must be a non-empty \(n, \*\) tensor, got \(0, 5\)$"):
        reset_bn(model, [x, x[:0]])
    with pytest.raises(ValueError, match=r"^batch 0 must be a non-empty \(n, \*\) tensor, got str$"):
        reset_bn(model, ["abc"])
    with pytest.raises(ValueError, match=r"^batch 0 must be a non-empty \(n, \*\) tensor, got \(\)$"):
        reset_bn(model, [torch.tensor(1.0, dtype=torch.float64)])
    with pytest.raises(TypeError, match=r"^batch 1 must have the model's dtype torch.float64"):
        reset_bn(model, [x, x.float()])
    with pytest.raises(ValueError, match=r"^inputs yielded no batch: cannot estimate BatchNorm statistics from"):
        reset_bn(model, [])
