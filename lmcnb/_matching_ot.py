"""Layer-wise optimal-transport matching (Ferbach et al.; OT fusion) and its covariance-weighted metric: exact OT
between the uniform empirical measures of the neurons' incoming weights, layer by layer. Part of
:mod:`lmcnb.matching` (import it from there); the dense layers of each architecture live in
:mod:`lmcnb.permutation`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._validate import check_choice
from .matching import Matcher, MatchResult, _batches, _check_n_batches, _like
from .permutation import Perms, dense_layers as _dense_layers

__all__ = ["OTMatching", "CovarianceWeightedMatching", "input_second_moments"]


# ---------------------------------------------------------------------------------------------------------------
# Layer-wise optimal transport (MLP, TwoLayerNet)
# ---------------------------------------------------------------------------------------------------------------

def _neurons(layer: nn.Linear, columns: torch.Tensor | None) -> torch.Tensor:
    """Neuron atoms ``[W_k | b_k]`` ``(m_k, m_{k−1} [+1])`` in float64, input columns reordered by ``columns``."""
    W = layer.weight.detach().double()
    if columns is not None:
        W = W.index_select(1, columns)
    if layer.bias is None:
        return W
    return torch.cat([W, layer.bias.detach().double()[:, None]], dim=1)


def _layerwise_ot(model_a: nn.Module, model_b: nn.Module, metrics: list[torch.Tensor | None], p: float,
                  backend: str, matcher: str) -> tuple[Perms, list[float]]:
    """Match hidden layers forward: ``π_k = argmin_π Σ_i ‖x^a_i − x^b_{π(i)}‖^p_{Σ_k}`` (transport.hungarian or POT).

    ``x`` are the atoms of :func:`_neurons` with b's input columns permuted by ``π_{k−1}``. Returns the
    permutations and the per-layer W_p^p ``= (1/m_k) Σ_i cost``.
    """
    from . import transport

    layers_a, layers_b = _dense_layers(model_a, matcher), _dense_layers(model_b, matcher)
    perms, costs, prev = {}, [], None
    for k in range(len(layers_a) - 1):
        X, Y = _neurons(layers_a[k], None), _neurons(layers_b[k], prev)
        metric = None if metrics[k] is None else metrics[k].to(X.device)
        C = transport.cost_matrix(X, Y, p=p, metric=metric)
        perm = transport.hungarian(C) if backend == "hungarian" else transport.pot_permutation(C)
        costs.append(float(C[torch.arange(C.shape[0]), perm].mean()))
        perms[f"P_{k}"], prev = perm, perm
    device = _like(model_b).device
    return {name: t.to(device) for name, t in perms.items()}, costs


def _check_backend(backend: object) -> None:
    check_choice("backend", backend, ("hungarian", "pot"))


@dataclass(frozen=True)
class OTMatching(Matcher):
    """Layer-wise OT alignment (Ferbach et al. 2024; Singh & Jaggi's OT fusion with exact transport).

    For k = 0 … L−2, the neurons of hidden layer k are the atoms ``x_i = [W_k[i, :] | b_k[i]]`` of the uniform
    empirical measures μ̂_a, μ̂_b (b's columns already permuted by ``π_{k−1}``), and
    ``π_k = argmin_π (1/m) Σ_i ‖x^a_i − x^b_{π(i)}‖^p`` — the exact OT plan, a permutation by Birkhoff for equal
    widths (:func:`lmcnb.transport.ot_match`, ``backend="hungarian"`` or POT's ``"pot"``).
    MLP and TwoLayerNet only. ``info["layer_costs"]`` holds each layer's ``W_p^p``; the objective is their sum.
    """

    metric: str = "euclidean"
    p: float = 2.0
    backend: str = "hungarian"
    name: ClassVar[str] = "ot_matching"

    def __post_init__(self) -> None:
        check_choice("metric", self.metric, ("euclidean",))
        if isinstance(self.p, bool) or not isinstance(self.p, Real) or not (0 < self.p < math.inf):
            raise ValueError(f"p must be a finite real number > 0, got {self.p!r}")
        _check_backend(self.backend)

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        n_hidden = len(_dense_layers(model_a, type(self).__name__)) - 1
        perms, costs = _layerwise_ot(model_a, model_b, [None] * n_hidden, self.p, self.backend,
                                     type(self).__name__)
        return MatchResult(perms, self.name, [math.fsum(costs)], 1, True,
                           info={"exact": True, "layer_costs": costs}, sense="min")


def input_second_moments(model: nn.Module, data: Any, n_batches: int | None = None) -> list[torch.Tensor]:
    """``Σ_k = E[h̃_k h̃_kᵀ]`` (float64, uncentred) of every layer's input ``h_k`` of an MLP/TwoLayerNet.

    ``h_0 = x`` (flattened), ``h_k`` = post-ReLU hidden layer k of ``model``; ``h̃ = [h, 1]`` when the layers
    have biases, so that ``‖[Δw, Δb]‖²_Σ = E[(Δw·h + Δb)²]`` is the mean squared pre-activation difference.
    One list entry per hidden layer to match (k = 0 … L−2).
    """
    layers = _dense_layers(model, "input_second_moments")
    bias = layers[0].bias is not None
    sums: list[torch.Tensor | None] = [None] * (len(layers) - 1)
    count = 0
    with torch.no_grad():
        for x in _batches(data, _like(model), n_batches):
            h = x.flatten(1)
            for k in range(len(layers) - 1):
                hk = h.double().cpu()
                hk = torch.cat([hk, torch.ones(hk.shape[0], 1, dtype=torch.float64)], 1) if bias else hk
                sums[k] = hk.T @ hk if sums[k] is None else sums[k] + hk.T @ hk
                h = F.relu(layers[k](h))
            count += x.shape[0]
    return [s / count for s in sums]


@dataclass(frozen=True)
class CovarianceWeightedMatching(Matcher):
    """OT matching in Ferbach et al.'s covariance-weighted metric ("WM (ours)" in their Fig. 2).

    As :class:`OTMatching` with the ground norm ``‖u‖²_{Σ_k} = uᵀ Σ_k u``, ``Σ_k = E[h̃_k h̃_kᵀ]`` the
    **uncentred** second moment of layer k's input over ``data`` (k = 0: the inputs; k ≥ 1: model a's post-ReLU
    hidden features; ``h̃ = [h, 1]`` with biases), see :func:`input_second_moments`. Then
    ``‖w^a_i − w^b_j‖²_{Σ_k} = E[(pre-activation_i^a − pre-activation_j^b)²]`` with b's inputs aligned; the
    assignment equals the authors' ``argmax_π Σ_i (W_a Σ W_bᵀ)[i, π(i)]``. MLP and TwoLayerNet only; needs data.
    """

    n_batches: int | None = None
    backend: str = "hungarian"
    name: ClassVar[str] = "covariance_weighted_matching"
    needs_data: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_n_batches(self.n_batches)
        _check_backend(self.backend)

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        _dense_layers(model_a, type(self).__name__)
        metrics = input_second_moments(model_a, data, self.n_batches)
        perms, costs = _layerwise_ot(model_a, model_b, metrics, 2.0, self.backend, type(self).__name__)
        return MatchResult(perms, self.name, [math.fsum(costs)], 1, True,
                           info={"exact": True, "layer_costs": costs}, sense="min")
