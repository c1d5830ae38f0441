"""BatchNorm statistics reset after interpolation or merging (Jordan et al. 2023, "REPAIR", their ``reset_bn``).

Interpolating two BatchNorm networks also interpolates their running statistics, which then no longer describe
the merged network's activations ("variance collapse"). The reset re-estimates them on training inputs:

- every BatchNorm layer (and only those) is put in train mode, so it normalises with the current batch's
  statistics, and its running statistics are cleared;
- ``momentum = None`` makes PyTorch keep the cumulative average over the B batches seen:
  ``running_mean = (1/B) Σ_b mean_b(h)`` and ``running_var = (1/B) Σ_b var_b(h)`` (unbiased per batch), where
  ``h`` is the BatchNorm layer's input (the pre-BN activation) per channel;
- everything else stays in eval mode (dropout off), and batches are used in the given order, so the reset is
  deterministic. With a single batch the statistics are exactly the batch mean and unbiased variance.

Only the statistics change; weights and the BatchNorm affine parameters are untouched. Full REPAIR (rescaling
the merged network's channels to interpolated endpoint statistics) is a different, later step.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._validate import check_int

__all__ = ["has_batchnorm", "reset_bn", "reset_bn_state"]

State = dict[str, torch.Tensor]


def _tracking_bns(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer (1d/2d/3d/sync) that tracks running statistics."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return bool(_tracking_bns(model))


def _batches(inputs: torch.Tensor | Iterable, batch_size: int | None, n_batches: int | None) -> Iterator[torch.Tensor]:
    """Consecutive input batches: a tensor ``(n, *)`` cut into ``batch_size`` rows (None: one batch), or the items
    of an iterable (a ``(x, y, …)`` tuple or list contributes its first element); at most ``n_batches``.

    The arguments are validated eagerly; the items of an iterable are checked as they come."""
    if n_batches is not None:
        check_int("n_batches", n_batches, 1)
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() < 1 or inputs.shape[0] == 0:
            raise ValueError(f"inputs must be a non-empty (n, *) tensor, got shape {tuple(inputs.shape)}")
        size = inputs.shape[0] if batch_size is None else check_int("batch_size", batch_size, 1)
        return _first(inputs.split(size), n_batches)
    if isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes, Mapping)):
        if batch_size is not None:
            raise ValueError("batch_size applies to a tensor of inputs, not to an iterable of batches")
        return _first(inputs, n_batches)
    raise TypeError(f"inputs must be a tensor or an iterable of batches, got {type(inputs).__name__}")


def _first(source: Iterable, n_batches: int | None) -> Iterator[torch.Tensor]:
    for b, item in enumerate(source):
        if n_batches is not None and b >= n_batches:
            return
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
            raise ValueError(f"batch {b} must be a non-empty (n, *) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        yield x


def _check_batch(x: torch.Tensor, like: torch.Tensor, b: int) -> None:
    if x.dtype != like.dtype or x.device != like.device:
        raise TypeError(f"batch {b} must have the model's dtype {like.dtype} on {like.device}, "
                        f"got {x.dtype} on {x.device}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"batch {b} contains NaN or inf")


def reset_bn_(model: nn.Module, inputs: torch.Tensor | Iterable, n_batches: int | None = None, *,
              batch_size: int | None = None) -> nn.Module:
    """In-place version of :func:`reset_bn` (for a working copy that the caller owns); returns ``model``."""
    bns = _tracking_bns(model)
    if not bns:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer with running statistics to reset")
    like = next(t for t in model.state_dict().values() if t.is_floating_point())
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    batches = _batches(inputs, batch_size, n_batches)
    seen = 0
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        with torch.no_grad():
            for b, x in enumerate(batches):
                _check_batch(x, like, b)
                model(x)
                seen += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(was_training)
    if seen == 0:
        raise ValueError("inputs yielded no batch: cannot estimate BatchNorm statistics from empty data")
    return model


def reset_bn(model: nn.Module, inputs: torch.Tensor | Iterable, n_batches: int | None = None, *,
             batch_size: int | None = None) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on ``inputs``.

    Args:
        model: any module with at least one BatchNorm layer tracking running statistics (not modified).
        inputs: training inputs, a tensor ``(n, *)`` of the model's dtype and device, or an iterable of batches
            (tensors, or ``(x, y, …)`` tuples as a ``DataLoader`` yields; the first element is the input).
        n_batches: use only the first ``n_batches`` batches (a deterministic subset); None uses all.
        batch_size: cut a tensor ``inputs`` into consecutive batches of this size (None: a single batch).

    Returns the copy in eval mode, with ``running_mean``/``running_var`` the cumulative averages over the
    batches of the per-channel batch mean and unbiased batch variance of each BatchNorm layer's input, and
    ``num_batches_tracked`` the number of batches. Raises ``ValueError`` for a model without BatchNorm or
    empty data, ``TypeError`` for inputs of the wrong dtype/device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return reset_bn_(copy.deepcopy(model), inputs, n_batches, batch_size=batch_size).eval()


def reset_bn_state(model: nn.Module, state: Mapping[str, torch.Tensor], inputs: torch.Tensor | Iterable,
                   n_batches: int | None = None, *, batch_size: int | None = None) -> State:
    """``state`` (a ``state_dict`` of ``model``'s architecture) with re-estimated BatchNorm statistics.

    ``model`` serves as the architecture only and is not modified; see :func:`reset_bn` for the arguments.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a state_dict mapping, got {type(state).__name__}")
    work = copy.deepcopy(model)
    work.load_state_dict(dict(state))
    reset_bn_(work, inputs, n_batches, batch_size=batch_size)
    return {k: v.detach().clone() for k, v in work.state_dict().items()}
