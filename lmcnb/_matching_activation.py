"""Activation matching (Ainsworth et al.; REPAIR): one LAP per permutation group on the similarity of the two
models' hidden activations, streamed over data in float64. Part of :mod:`lmcnb.matching` (import it from
there); the activation sites of each architecture live with the specs in :mod:`lmcnb.permutation`."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ._validate import check_choice
from .matching import (STATISTICS, Matcher, MatchResult, _batches, _check_n_batches, _like, _solve_lap,
                       check_pair)
from .permutation import Site, activation_sites as _activation_sites

__all__ = ["ActivationMatching", "activation_similarity"]


# ---------------------------------------------------------------------------------------------------------------
# Activation matching
# ---------------------------------------------------------------------------------------------------------------

def _appender(store: list[torch.Tensor], transform: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """A forward hook that appends ``transform(output)`` to ``store``."""
    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        store.append(transform(output))
    return hook


def _record(model: nn.Module, sites: Mapping[str, list[Site]], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One forward pass of ``model`` on ``x``; each group's unit activations ``(rows, n)`` (sites stacked)."""
    out: dict[str, list[torch.Tensor]] = {p: [] for p in sites}
    handles = [module.register_forward_hook(_appender(out[p], transform))
               for p, site_list in sites.items() for module, transform in site_list]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return {p: torch.cat(v) for p, v in out.items()}


class _Moments:
    """Streaming float64 sums for one group of n units: count, Σa, Σb, Σa², Σb² ``(n,)`` and Σ a bᵀ ``(n, n)``."""

    def __init__(self, n: int) -> None:
        self.count = 0
        self.sa, self.sb, self.saa, self.sbb = (torch.zeros(n, dtype=torch.float64) for _ in range(4))
        self.sab = torch.zeros(n, n, dtype=torch.float64)

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = a.double().cpu(), b.double().cpu()
        self.count += a.shape[0]
        self.sa += a.sum(0)
        self.sb += b.sum(0)
        self.saa += (a * a).sum(0)
        self.sbb += (b * b).sum(0)
        self.sab += a.T @ b

    def similarity(self, statistic: str) -> torch.Tensor:
        """``E[a bᵀ]`` or the Pearson correlation (0 for a unit with zero variance)."""
        cross = self.sab / self.count
        if statistic == "cross_moment":
            return cross
        ma, mb = self.sa / self.count, self.sb / self.count
        std_a, std_b = _std(self.saa / self.count, ma), _std(self.sbb / self.count, mb)
        denom = torch.outer(std_a, std_b)
        cov = cross - torch.outer(ma, mb)
        return torch.where(denom > 0, cov / torch.where(denom > 0, denom, 1.0), torch.zeros_like(cov))


def _std(second: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Standard deviation from moments; a variance below 1e-12·E[a²] (rounding of a constant unit) is 0."""
    var = second - mean * mean
    return torch.where(var > 1e-12 * second, var, torch.zeros_like(var)).clamp(min=0).sqrt()


def activation_similarity(model_a: nn.Module, model_b: nn.Module, data: Any, statistic: str = "correlation",
                          n_batches: int | None = None) -> dict[str, torch.Tensor]:
    """Per permutation group, the similarity ``S[i, j]`` ``(n, n)`` (float64) of unit i of a and unit j of b.

    One streaming pass over ``data`` (both models in eval mode, no gradients): float64 sums of ``a``, ``a²``,
    ``b``, ``b²`` and ``a bᵀ`` over samples (and spatial positions for convolutions). ``statistic`` is
    ``"correlation"`` (Pearson; 0 for constant units) or ``"cross_moment"`` (``E[a bᵀ]``).
    """
    check_choice("statistic", statistic, STATISTICS)
    _check_n_batches(n_batches)
    spec, sizes = check_pair(model_a, model_b)
    sites_a, sites_b = _activation_sites(model_a), _activation_sites(model_b)
    if set(sites_a) != set(sizes):
        raise RuntimeError(f"activation sites {sorted(sites_a)} do not match the spec's {sorted(sizes)}")
    moments = {p: _Moments(n) for p, n in sizes.items()}
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        with torch.no_grad():
            for x in _batches(data, _like(model_a), n_batches):
                acts_a, acts_b = _record(model_a, sites_a, x), _record(model_b, sites_b, x)
                for p, mom in moments.items():
                    mom.add(acts_a[p], acts_b[p])
    finally:
        model_a.train(modes[0])
        model_b.train(modes[1])
    return {p: mom.similarity(statistic) for p, mom in moments.items()}


@dataclass(frozen=True)
class ActivationMatching(Matcher):
    """Activation matching (Ainsworth et al. 2023; Jordan et al.'s REPAIR): one LAP per group.

    For every group p, ``π_p = argmax_π Σ_i S_p[i, π(i)]`` with ``S_p`` from :func:`activation_similarity`
    (``statistic`` ``"correlation"`` or ``"cross_moment"``; first ``n_batches`` batches of ``data``). Because a
    permuted b computes the same function, all groups are matched from one pass over the unpermuted pair.
    Implemented for TwoLayerNet, MLP, VGG11 and ResNet20 (forward hooks).
    """

    statistic: str = "correlation"
    n_batches: int | None = None
    name: ClassVar[str] = "activation_matching"
    needs_data: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_choice("statistic", self.statistic, STATISTICS)
        _check_n_batches(self.n_batches)

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        sims = activation_similarity(model_a, model_b, data, self.statistic, self.n_batches)
        device = _like(model_b).device
        perms = {p: _lap_not_worse_than_identity(S).to(device) for p, S in sims.items()}
        before = math.fsum(float(S.diagonal().sum()) for S in sims.values())
        after = math.fsum(float(S[torch.arange(S.shape[0]), perms[p].cpu()].sum()) for p, S in sims.items())
        return MatchResult(perms, self.name, [before, after], 1, True,
                           info={"exact": True, "statistic": self.statistic})


def _lap_not_worse_than_identity(S: torch.Tensor) -> torch.Tensor:
    """The maximising assignment of ``S`` ``(n, n)``, or the identity if rounding made it no better."""
    perm, ident = _solve_lap(S), torch.arange(S.shape[0], device=S.device)
    return perm if float(S[ident, perm].sum()) > float(S.diagonal().sum()) else ident
