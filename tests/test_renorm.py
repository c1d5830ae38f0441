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
