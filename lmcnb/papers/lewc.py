"""Layerwise exponentially weighted connectivity (LEWC) of two bias-free ReLU MLPs (Ito et al., ICLR 2026).

Notation (lmcnb's convention, as in :mod:`lmcnb.diagnostics`): the path is ``θ_λ = (1 − λ) θ_a + λ θ_b`` with
``λ = 0`` model a; an ``L``-layer MLP has pre-activations ``z̃_ℓ = W_ℓ z_{ℓ−1}`` (``+ b_ℓ`` with biases), outputs
``f_ℓ = z_ℓ = σ(z̃_ℓ)`` for ``ℓ < L`` and logits ``f_L = z̃_L``; ``z_0 = x``. Ito et al. write the path as
``μ θ_a + (1 − μ) θ_b``, so their ``μ`` is our ``1 − λ``. LEWC at ``(ℓ, λ)`` means

    f_ℓ(x; θ_λ) = (1 − λ)^ℓ f_ℓ(x; θ_a) + λ^ℓ f_ℓ(x; θ_b)        for every input x.

Contents:

- :func:`disjoint_pair`: the constructive side of Ito et al.'s Theorem 5.3 (our reconstruction, notes V2/V3):
  two MLPs embedded on disjoint blocks of hidden units, which satisfy weak additivity and reciprocal
  orthogonality exactly, hence LEWC exactly; ``overlap`` and ``sign_conflicts`` break one hypothesis each.
- :func:`merge`, :func:`preactivations`, :func:`lewc_error`, :func:`connectivity_report`: measure LEWC and its
  sufficient conditions layer by layer on real pairs.
- :func:`mixing_coefficients`: regress each merged layer on the two endpoints' layers (notes V11): LEWC's
  ``((1 − λ)^ℓ, λ^ℓ)`` against LLFC's constant ratio, and the per-layer norm decay ``2^{−ℓ}`` at ``λ = ½``;
  :func:`lewc_signature` condenses them (with ``β_½/β_ens``) into chapter 6's LEWC-specific checks.
- :func:`ensemble_weights`, :func:`logit_scale_ratio`: LEWC's output layer is an exponentially weighted logit
  ensemble ``s_L(λ)·[w f_a + (1 − w) f_b]``, ``s_L = (1 − λ)^L + λ^L``; at ``λ = ½`` the logits shrink by
  ``2^{1−L}`` relative to the plain average. :func:`ensemble_comparison` (an :class:`EnsembleComparison`)
  measures that statement and its consequences (accuracy, cross-entropy at ``β = 1/s``) on any pair, so that
  an LEWC pair and its negative control (the same networks, not embedded) give the same statistic.
- :func:`measure_merge` (a :class:`MergeMeasurement`: the merge pipeline's curve, the layer report and the
  logit scale of one pair, :meth:`~MergeMeasurement.summary` its twelve numbers) and :func:`compare_matchers`
  (midpoint barriers and connectivity diagnostics of a pair under several matchers): chapter 6's tables, one
  call each.
- :func:`decay_factor`: how much of the initialisation coupled weight decay leaves, momentum included
  (about ``exp(−wd·Σ_t η_t/(1 − μ))``).
- :func:`random_direction`: the flatness control (a random step from θ_a with prescribed per-tensor norms).
- :func:`width_fall`: how far a per-pair statistic (the reciprocal-orthogonality ratio, a barrier) falls from
  the smallest to the largest width, one pair statistic against another, worst group (chapters 6 and 7).
- Table 1's CIFAR-10 rows (CNNs across width multipliers) are an experiment pipeline:
  :mod:`lmcnb.experiments.cnn_merges`.

Everything takes :class:`lmcnb.models.MLP` models (``bias=False`` for the theorem) and returns new objects;
inputs are never modified. Bad input raises ``TypeError``/``ValueError`` naming the argument.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .. import diagnostics as D
from .._validate import check_generator, check_int, check_real, check_tensor
from ..barrier import InterpolationCurve
from ..calibration import fit_temperature
from ..merge import Pair, compare
from ..merge import merge as merge_pipeline
from ..models import MLP
from ..train import TrainConfig, mlp_from_state

__all__ = ["disjoint_pair", "merge", "preactivations", "lewc_error", "LayerReport", "connectivity_report",
           "MergeMeasurement", "measure_merge", "compare_matchers", "Mixing", "mixing_coefficients", "lewc_signature",
           "ensemble_weights", "logit_scale_ratio", "EnsembleComparison", "ensemble_comparison", "decay_factor",
           "random_direction", "PAIR_STATISTICS", "width_fall"]


# ----------------------------------------------------------------------------------------------- validation
def _check_mlp(name: str, model: object) -> MLP:
    if not isinstance(model, MLP):
        raise TypeError(f"{name} must be an lmcnb.models.MLP, got {type(model).__name__}")
    if model.depth < 2:
        raise ValueError(f"{name} needs at least one hidden layer (depth >= 2), got depth {model.depth}")
    return model


def _check_pair(model_a: object, model_b: object, *, same_widths: bool = True) -> tuple[MLP, MLP]:
    a, b = _check_mlp("model_a", model_a), _check_mlp("model_b", model_b)
    wa, wb = a.layers[0].weight, b.layers[0].weight
    if (wa.dtype, wa.device, a.bias) != (wb.dtype, wb.device, b.bias):
        raise ValueError(f"model_a and model_b differ in dtype/device/bias: {(wa.dtype, wa.device, a.bias)} vs "
                         f"{(wb.dtype, wb.device, b.bias)}")
    if a.depth != b.depth or a.widths[0] != b.widths[0] or a.widths[-1] != b.widths[-1]:
        raise ValueError(f"model_a and model_b need the same depth, inputs and outputs, got widths {a.widths} "
                         f"and {b.widths}")
    if same_widths and a.widths != b.widths:
        raise ValueError(f"model_a and model_b need the same widths, got {a.widths} and {b.widths}")
    return a, b


def _check_inputs(x: object, model: MLP) -> torch.Tensor:
    x = check_tensor("x", x, min_ndim=2)
    w = model.layers[0].weight
    if x.dtype != w.dtype or x.device != w.device:
        raise TypeError(f"x must be {w.dtype} on {w.device} like the models, got {x.dtype} on {x.device}")
    if x[0].numel() != model.widths[0]:
        raise ValueError(f"x has {x[0].numel()} features per sample, the models take {model.widths[0]}")
    return x


# ----------------------------------------------------------------------------------------------- Theorem 5.3
def disjoint_pair(model_a: MLP, model_b: MLP, *, overlap: int = 0, sign_conflicts: int = 0) -> tuple[MLP, MLP]:
    """Embed two MLPs on disjoint blocks of hidden units of one wider MLP (Theorem 5.3's construction).

    Hidden layer ``ℓ`` of the result has ``h_ℓ^a + h_ℓ^b − overlap`` units: model a's units occupy the first
    ``h_ℓ^a``, model b's the last ``h_ℓ^b``; all other weights (and biases) are zero. Each embedded model computes
    exactly its original function, and with ``overlap = sign_conflicts = 0`` and no biases:

    - *weak additivity* holds exactly (every hidden coordinate is zero in one of the two models);
    - *reciprocal orthogonality* holds exactly (``W_ℓ^b z_{ℓ−1}^a = 0``: b's weights read only b's block);

    so LEWC holds exactly at every layer and every λ. The knobs break one hypothesis each (notes V3):

    - ``overlap = k``: the two blocks share ``k`` units in every hidden layer (b's weights then read a's features:
      reciprocal orthogonality fails from layer 2 on; the shared units can also conflict in sign);
    - ``sign_conflicts = k``: in layer 1, model b also writes ``−W_1^a`` on the first ``k`` units of a's block
      (units its own later layers never read, so ``f_b`` is unchanged); there the two pre-activations have
      opposite signs, so weak additivity fails already at layer 1;
    - biases (MLPs built with ``bias=True``): the merged bias is ``(1 − λ) b^a + λ b^b``, not
      ``(1 − λ)^ℓ b^a + λ^ℓ b^b``, so LEWC fails from layer 2 on.

    Args:
        model_a, model_b: MLPs of equal depth, inputs, outputs, dtype, device and bias flag (hidden widths may
            differ). overlap: ``0 ≤ overlap ≤ min`` hidden width. sign_conflicts: ``0 ≤ k ≤ h_1^a − overlap``.

    Returns:
        ``(θ'_a, θ'_b)``, two new MLPs of the embedded widths.
    """
    a, b = _check_pair(model_a, model_b, same_widths=False)
    ha, hb = a.widths[1:-1], b.widths[1:-1]
    overlap = check_int("overlap", overlap, 0)
    if overlap > min(min(ha), min(hb)):
        raise ValueError(f"overlap={overlap} exceeds the smallest hidden width {min(min(ha), min(hb))}")
    sign_conflicts = check_int("sign_conflicts", sign_conflicts, 0)
    if sign_conflicts > ha[0] - overlap:
        raise ValueError(f"sign_conflicts={sign_conflicts} exceeds model a's unshared layer-1 units "
                         f"{ha[0] - overlap}")
    widths = (a.widths[0], *(x + y - overlap for x, y in zip(ha, hb)), a.widths[-1])
    w = a.layers[0].weight
    offsets_a = [0] * len(widths)
    offsets_b = [0] + [x - overlap for x in ha] + [0]
    out = []
    for model, offsets in ((a, offsets_a), (b, offsets_b)):
        state = {k: torch.zeros(o, i, dtype=w.dtype, device=w.device)
                 for k, (o, i) in _weight_shapes(widths).items()}
        if a.bias:
            state.update({f"layers.{k}.bias": torch.zeros(widths[k + 1], dtype=w.dtype, device=w.device)
                          for k in range(a.depth)})
        for k, layer in enumerate(model.layers):
            o, i = layer.weight.shape
            r, c = offsets[k + 1], offsets[k]
            state[f"layers.{k}.weight"][r:r + o, c:c + i] = layer.weight.detach()
            if a.bias:
                state[f"layers.{k}.bias"][r:r + o] = layer.bias.detach()
        out.append(state)
    if sign_conflicts:
        out[1]["layers.0.weight"][:sign_conflicts] = -a.layers[0].weight.detach()[:sign_conflicts]
    return mlp_from_state(out[0]), mlp_from_state(out[1])


def _weight_shapes(widths: Sequence[int]) -> dict[str, tuple[int, int]]:
    return {f"layers.{k}.weight": (widths[k + 1], widths[k]) for k in range(len(widths) - 1)}


def merge(model_a: MLP, model_b: MLP, lam: float) -> MLP:
    """The MLP with parameters ``θ_λ = (1 − λ) θ_a + λ θ_b`` (a new model; ``lam`` in ``[0, 1]``)."""
    a, b = _check_pair(model_a, model_b)
    lam = check_real("lam", lam, 0.0, 1.0)
    sa, sb = a.state_dict(), b.state_dict()
    return mlp_from_state({k: torch.lerp(sa[k].detach(), sb[k].detach(), lam) for k in sa})


def preactivations(model: MLP, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-activations ``z̃_ℓ`` of every layer ``ℓ = 1..L`` (the last one is the logits): ``L`` tensors ``(n, h_ℓ)``.

    The layer outputs are ``σ(z̃_ℓ)`` for ``ℓ < L`` (:meth:`lmcnb.models.MLP.features`).
    """
    model = _check_mlp("model", model)
    h = _check_inputs(x, model).flatten(1)
    out = []
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            z = layer(h)
            out.append(z)
            h = F.relu(z)
    return out


def _outputs(pre: list[torch.Tensor]) -> list[torch.Tensor]:
    """Layer outputs ``f_ℓ`` from pre-activations: ReLU on hidden layers, logits as they are."""
    return [F.relu(z) for z in pre[:-1]] + [pre[-1]]


def _relative_error(f: torch.Tensor, target: torch.Tensor) -> float:
    den = float(torch.linalg.norm(target))
    num = float(torch.linalg.norm(f - target))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def lewc_error(model_a: MLP, model_b: MLP, x: torch.Tensor, lam: float) -> tuple[float, ...]:
    """Relative LEWC error per layer: ``‖f_ℓ(θ_λ) − ((1 − λ)^ℓ f_ℓ^a + λ^ℓ f_ℓ^b)‖_F / ‖(1 − λ)^ℓ f_ℓ^a + λ^ℓ f_ℓ^b‖_F``.

    0 under exact LEWC (up to rounding: use float64 to see 1e-15); order one when a hypothesis of Theorem 5.3
    fails. A layer whose prediction is exactly zero reports 0 if the merged output is zero too, else ``inf``.

    Args:
        model_a, model_b: MLPs of the same widths; x: inputs ``(n, h_0)`` of their dtype and device; lam in [0, 1].

    Returns:
        ``L`` floats, layer 1 first.
    """
    a, b = _check_pair(model_a, model_b)
    lam = check_real("lam", lam, 0.0, 1.0)
    fa, fb = _outputs(preactivations(a, x)), _outputs(preactivations(b, x))
    fm = _outputs(preactivations(merge(a, b, lam), x))
    errors = []
    for ell, (m, u, v) in enumerate(zip(fm, fa, fb), start=1):
        wa, wb = D.lewc_weights(lam, ell)
        errors.append(_relative_error(m, wa * u + wb * v))
    return tuple(errors)


@dataclass(frozen=True)
class LayerReport:
    """Ito et al.'s diagnostics at one layer ``ℓ`` of a pair, at one λ (``None`` where undefined).

    Attributes:
        layer: ``ℓ`` (1 = first weight layer; ``L`` = logits).
        lewc_cosine: mean per-sample cosine of ``f_ℓ(θ_λ)`` with ``(1 − λ)^ℓ f_ℓ^a + λ^ℓ f_ℓ^b`` (Fig. 3).
        llfc_cosine: the same with Zhou et al.'s ``(1 − λ) f_ℓ^a + λ f_ℓ^b`` (equal to ``lewc_cosine`` at ``λ = ½``,
            where the two differ only in scale).
        lewc_error: the relative error of :func:`lewc_error`.
        weak_additivity: mean cosine of :func:`lmcnb.diagnostics.weak_additivity` on ``(z̃_ℓ^a, z̃_ℓ^b)``
            (hidden layers only; compare with :func:`lmcnb.diagnostics.weak_additivity_chance`).
        reciprocal_orthogonality: the ratio ``ρ_ℓ`` of :func:`lmcnb.diagnostics.reciprocal_orthogonality`
            (``ℓ ≥ 2``).
        commutativity: :func:`lmcnb.diagnostics.commutativity_residual` (``ℓ ≥ 2``).
        relative_rank: entropy effective rank of ``W_ℓ^a`` over its full rank (hidden-to-hidden layers only).
    """

    layer: int
    lewc_cosine: float
    llfc_cosine: float
    lewc_error: float
    weak_additivity: float | None
    reciprocal_orthogonality: float | None
    commutativity: float | None
    relative_rank: float | None


def connectivity_report(model_a: MLP, model_b: MLP, x: torch.Tensor, lam: float = 0.5) -> list[LayerReport]:
    """Every LEWC diagnostic of the pair at ``θ_λ``, layer by layer, on inputs ``x (n, h_0)``.

    Dead samples (all-zero features) use the convention ``cos(0, 0) = 1``, ``cos(0, v) = 0`` (``zero="match"``).

    Returns:
        ``L`` :class:`LayerReport` s, layer 1 first.
    """
    a, b = _check_pair(model_a, model_b)
    lam = check_real("lam", lam, 0.0, 1.0)
    pa, pb = preactivations(a, x), preactivations(b, x)
    fa, fb = _outputs(pa), _outputs(pb)
    fm = _outputs(preactivations(merge(a, b, lam), x))
    L = a.depth
    rows = []
    for ell in range(1, L + 1):
        i = ell - 1
        lewc_w = D.lewc_weights(lam, ell)
        Wa, Wb = a.layers[i].weight.detach(), b.layers[i].weight.detach()
        hidden_to_hidden = 1 < ell < L
        rows.append(LayerReport(
            layer=ell,
            lewc_cosine=D.layer_cosine(fm[i], fa[i], fb[i], lewc_w, zero="match").mean,
            llfc_cosine=D.layer_cosine(fm[i], fa[i], fb[i], D.llfc_weights(lam), zero="match").mean,
            lewc_error=_relative_error(fm[i], lewc_w[0] * fa[i] + lewc_w[1] * fb[i]),
            weak_additivity=D.weak_additivity(pa[i], pb[i], lam, zero="match").mean if ell < L else None,
            reciprocal_orthogonality=(D.reciprocal_orthogonality(Wa, Wb, fa[i - 1], fb[i - 1]).ratio
                                      if ell >= 2 else None),
            commutativity=D.commutativity_residual(Wa, Wb, fa[i - 1], fb[i - 1]) if ell >= 2 else None,
            relative_rank=float(D.relative_rank(Wa, "entropy")) if hidden_to_hidden else None,
        ))
    return rows


@dataclass(frozen=True)
class Mixing:
    """Least-squares fit ``f_ℓ(θ_λ) ≈ coef_a · f_ℓ^a + coef_b · f_ℓ^b`` at one layer (:func:`mixing_coefficients`).

    LEWC predicts ``coef_a = (1 − λ)^ℓ``, ``coef_b = λ^ℓ`` (so ``coef_b / coef_a = (λ/(1 − λ))^ℓ`` decays
    geometrically with depth away from ``λ = ½``); LLFC predicts the constant ratio ``λ / (1 − λ)`` with both
    coefficients ``1/c``. ``residual`` is the fit's relative error ``‖f − fit‖_F / ‖f‖_F``.
    """

    layer: int
    coef_a: float
    coef_b: float
    residual: float


def mixing_coefficients(model_a: MLP, model_b: MLP, x: torch.Tensor, lam: float) -> list[Mixing]:
    """Regress every layer of the merged model on the two endpoints' layers (notes V11), layer 1 first.

    For each layer ``ℓ`` the two coefficients minimise ``‖f_ℓ(θ_λ) − α f_ℓ^a − β f_ℓ^b‖_F`` over all samples and
    units together (a 2 × 2 normal-equation solve in float64). Under exact LEWC the fit is exact with
    ``(α, β) = ((1 − λ)^ℓ, λ^ℓ)``; at ``λ = ½`` both are ``2^{−ℓ}``, the per-layer norm decay. This is the test
    that separates LEWC from LLFC: the layer cosines cannot (at ``λ = ½`` the two predict the same direction).

    Args:
        model_a, model_b: MLPs of the same widths; x: inputs ``(n, h_0)`` of their dtype and device; lam in
            ``(0, 1)``.

    Raises ``ValueError`` if the two endpoints' features at some layer are linearly dependent (collinear or zero),
    where the coefficients are not identifiable.
    """
    a, b = _check_pair(model_a, model_b)
    lam = check_real("lam", lam, 0.0, 1.0, low_open=True, high_open=True)
    fa, fb = _outputs(preactivations(a, x)), _outputs(preactivations(b, x))
    fm = _outputs(preactivations(merge(a, b, lam), x))
    rows = []
    for ell, (m, u, v) in enumerate(zip(fm, fa, fb), start=1):
        m, u, v = (t.double().flatten() for t in (m, u, v))
        gram = torch.stack([torch.stack([u @ u, u @ v]), torch.stack([u @ v, v @ v])])
        det = float(torch.linalg.det(gram))
        if not det > 1e-12 * float(u @ u) * float(v @ v):
            raise ValueError(f"layer {ell}: the endpoints' features are linearly dependent; the mixing "
                             "coefficients are not identifiable")
        coef = torch.linalg.solve(gram, torch.stack([u @ m, v @ m]))
        fit = coef[0] * u + coef[1] * v
        rows.append(Mixing(ell, float(coef[0]), float(coef[1]), _relative_error(fit, m) if float(m @ m) > 0
                           else 0.0))
    return rows


def lewc_signature(model_a: MLP, model_b: MLP, x: torch.Tensor, calibration_split: tuple[torch.Tensor, torch.Tensor],
                   lam: float = 0.25) -> dict[str, Any]:
    """The checks that separate LEWC from LLFC and from unrelated networks, for one pair (chapter 6).

    Returns a dict:

    - ``coef_a``, ``coef_b``: :func:`mixing_coefficients` at ``lam`` per layer (LEWC: ``(1 − λ)^ℓ``, ``λ^ℓ``;
      LLFC: both ``∝ 1/c`` with the constant ratio ``λ/(1 − λ)``; notes V11);
    - ``coef_a_error``: ``max_ℓ |coef_a(ℓ) / (1 − λ)^ℓ − 1|`` (0 under LEWC; LLFC with ``c = 1`` gives
      ``(1 − λ)^{1−L} − 1`` at the output);
    - ``mixing_residual``: the mean over layers of the two-term fit's relative residual (0 under LEWC);
    - ``norm_slope``: the least-squares slope over ``ℓ`` of ``log2`` of the mean coefficient at ``λ = ½``
      (LEWC: ``f_ℓ(θ_½) = 2^{−ℓ}(f_ℓ^a + f_ℓ^b)``, slope −1; LLFC with constant ``c``: 0);
    - ``beta_ratio``: ``β_½ / β_ens = T_ens / T_½``, the temperatures fitted (:func:`lmcnb.calibration.fit_temperature`)
      on ``calibration_split = (x_cal, y_cal)`` for the midpoint's logits and for the endpoints' logit average
      (LEWC: ``2^{L−1}``, because the midpoint's logits are ``2^{1−L}`` times the average).

    Args:
        model_a, model_b: MLPs of the same widths; x: inputs ``(n, h_0)`` for the layer fits; calibration_split:
            held-out inputs and int64 labels; lam: the λ of the mixing fit in ``(0, 1)``, not ``½`` (where LEWC
            and LLFC mix in the same ratio).
    """
    a, b = _check_pair(model_a, model_b)
    lam = check_real("lam", lam, 0.0, 1.0, low_open=True, high_open=True)
    if lam == 0.5:
        raise ValueError("lam = 1/2 cannot separate LEWC from LLFC (same mixing ratio); use e.g. 0.25")
    if not isinstance(calibration_split, tuple) or len(calibration_split) != 2:
        raise TypeError("calibration_split must be a tuple (x_cal, y_cal)")
    x_cal, y_cal = _check_inputs(calibration_split[0], a), calibration_split[1]
    mix = mixing_coefficients(a, b, x, lam)
    half = mixing_coefficients(a, b, x, 0.5)
    layers = np.arange(1, len(half) + 1, dtype=float)
    mean_half = np.array([(r.coef_a + r.coef_b) / 2 for r in half])
    if not (mean_half > 0).all():
        raise ValueError(f"a midpoint mixing coefficient is not positive: {mean_half}; the norm slope is undefined")
    with torch.no_grad():
        t_mid = fit_temperature(merge(a, b, 0.5)(x_cal), y_cal)
        t_ens = fit_temperature((a(x_cal) + b(x_cal)) / 2, y_cal)
    return dict(
        coef_a=tuple(r.coef_a for r in mix),
        coef_b=tuple(r.coef_b for r in mix),
        coef_a_error=max(abs(r.coef_a / (1 - lam) ** r.layer - 1) for r in mix),
        mixing_residual=float(np.mean([r.residual for r in mix])),
        norm_slope=float(np.polyfit(layers, np.log2(mean_half), 1)[0]),
        beta_ratio=t_ens / t_mid,
    )


# ----------------------------------------------------------------------------------------------- ensemble view
@dataclass(frozen=True)
class MergeMeasurement:
    """One merged pair measured: the ``curve`` along θ_λ (:func:`lmcnb.merge.merge`), the ``layers``
    (:func:`connectivity_report` at λ = ½) and the ``logit_scale`` (:func:`logit_scale_ratio` at λ = ½)."""

    curve: InterpolationCurve
    layers: list[LayerReport]
    logit_scale: float

    def summary(self) -> dict[str, float]:
        """The pair in twelve numbers (chapter 6's tables): endpoint-a and midpoint accuracy, the midpoint
        barriers of accuracy, raw and calibrated loss, the fitted temperature at λ = ½, the logit scale ratio,
        layer-1 weak additivity, the output and mean hidden LEWC cosines, the mean reciprocal orthogonality
        ratio (layers ≥ 2) and the mean relative rank (hidden-to-hidden layers). Needs a calibrated curve."""
        c, rep = self.curve, self.layers
        return dict(
            acc_a=c.at(0, "accuracy"),
            acc_mid=c.midpoint("accuracy"),
            acc_barrier=c.barrier("midpoint", "accuracy"),
            raw_loss_barrier=c.barrier("midpoint"),
            cal_loss_barrier=c.barrier("midpoint", "calibrated_loss"),
            T_mid=c.at(0.5, "temperature"),
            logit_scale=self.logit_scale,
            wa_layer1=rep[0].weak_additivity,
            lewc_cos_out=rep[-1].lewc_cosine,
            lewc_cos_hidden=float(np.mean([row.lewc_cosine for row in rep[1:-1]])),
            ro_ratio=float(np.mean([row.reciprocal_orthogonality for row in rep[1:]])),
            rel_rank=float(np.mean([row.relative_rank for row in rep[1:-1]])),
        )


def measure_merge(model_a: MLP, model_b: MLP, lambdas: object, evaluator: Callable[..., InterpolationCurve],
                  x: torch.Tensor, *, repairs: Sequence[Any] = ()) -> MergeMeasurement:
    """The identity path of ``model_a`` and ``model_b`` (merged with no permutation applied) measured: the curve
    of ``evaluator`` (e.g. :class:`lmcnb.merge.Empirical`) on the grid ``lambdas`` with ``repairs``, and the LEWC
    diagnostics and the logit scale ratio at λ = ½ on inputs ``x (n, h_0)``."""
    a, b = _check_pair(model_a, model_b)
    curve = merge_pipeline(Pair(a, b), lambdas, evaluator, repairs=repairs)
    layers = connectivity_report(a, b, x)
    with torch.no_grad():
        scale = logit_scale_ratio(merge(a, b, 0.5)(x), a(x), b(x))
    return MergeMeasurement(curve, layers, scale)


def compare_matchers(model_a: MLP, model_b: MLP, matchers: Mapping[str, Callable[..., Any]], lambdas: object,
                     evaluator: Callable[..., InterpolationCurve], x: torch.Tensor, *,
                     repairs: Sequence[Any] = ()) -> dict[str, dict[str, float]]:
    """Model b aligned by each matcher (:func:`lmcnb.merge.compare`, matchers called without data): name →
    the midpoint barriers of accuracy and calibrated loss (``repairs`` must calibrate), and the mean reciprocal
    orthogonality ratio and commutativity residual of layers ≥ 2 on inputs ``x`` (:func:`connectivity_report`),
    and the logit scale ratio at λ = ½ (:func:`logit_scale_ratio`: ``2^{1−L}`` for an LEWC-like merge, near 1 for
    an LLFC-like one)."""
    a, b = _check_pair(model_a, model_b)
    result = compare(Pair(a, b), matchers, lambdas, evaluator, repairs=repairs, kind="midpoint", metric="accuracy")
    rows = {}
    for name, outcome in result.outcomes.items():
        b_perm = outcome.pair.model_b  # b aligned by the matcher (compare's aligned pair; not permuted again)
        rep = connectivity_report(a, b_perm, x)
        with torch.no_grad():
            scale = logit_scale_ratio(merge(a, b_perm, 0.5)(x), a(x), b_perm(x))
        rows[name] = dict(
            acc_barrier=outcome.curve.barrier("midpoint", "accuracy"),
            cal_loss_barrier=outcome.curve.barrier("midpoint", "calibrated_loss"),
            ro_ratio=float(np.mean([row.reciprocal_orthogonality for row in rep[1:]])),
            commutativity=float(np.mean([row.commutativity for row in rep[1:]])),
            logit_scale=scale,
        )
    return rows


def ensemble_weights(lam: float, depth: int) -> tuple[float, float]:
    """LEWC's output layer as a scaled ensemble: ``f_L(θ_λ) = s · [w f_a + (1 − w) f_b]``; returns ``(s, w)``.

    ``s = (1 − λ)^L + λ^L`` (the logit shrinkage; ``2^{1−L}`` at ``λ = ½``) and ``w = (1 − λ)^L / s`` (model a's
    ensemble weight; ``½`` at ``λ = ½``, and it approaches 0 or 1 exponentially fast in ``L`` away from ``½``).
    Calibrating the merged model with inverse temperature ``1/s`` turns it into the ensemble exactly, so by
    convexity of cross-entropy in the logits its loss is at most ``w CE_a + (1 − w) CE_b`` (our reading of the
    paper's LEWC ⇒ LMC step; notes §3, candidate Theorem 5.4).

    Args:
        lam: λ in ``[0, 1]``; depth: ``L ≥ 1`` weight layers.
    """
    wa, wb = D.lewc_weights(lam, check_int("depth", depth, 1))
    s = wa + wb
    return s, wa / s


def logit_scale_ratio(f_merged: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor) -> float:
    """``‖f(θ_½)‖_F / ‖(f_a + f_b)/2‖_F`` over a set of inputs; LEWC predicts ``2^{1−L}`` (notes V7).

    Not discriminative alone (averaging unrelated logits also shrinks them); pair it with the layer cosines.

    Args:
        f_merged, f_a, f_b: logits ``(n, C)`` of the midpoint model and of the two endpoints.
    """
    fm, fa, fb = (check_tensor(n, t, ndim=2) for n, t in (("f_merged", f_merged), ("f_a", f_a), ("f_b", f_b)))
    if not fm.shape == fa.shape == fb.shape:
        raise ValueError(f"logits must share one shape, got {tuple(fm.shape)}, {tuple(fa.shape)}, {tuple(fb.shape)}")
    den = float(torch.linalg.norm((fa + fb) / 2))
    if den == 0.0:
        raise ValueError("the endpoint logit average is zero; the ratio is undefined")
    return float(torch.linalg.norm(fm)) / den


@dataclass(frozen=True)
class EnsembleComparison:
    """The merged model ``θ_λ`` of a pair against LEWC's scaled ensemble ``s·[w f_a + (1 − w) f_b]``
    (:func:`ensemble_weights`; ``λ = ½``: ``s = 2^{1−L}``, ``w = ½``), on one labelled set.

    Attributes:
        gap: ``max |f(θ_λ)/s − f_ens| / max |f_ens|`` with ``f_ens = w f_a + (1 − w) f_b`` (0 under exact LEWC).
        accuracy_merged, accuracy_ensemble: top-1 accuracy of ``f(θ_λ)`` and of ``f_ens``.
        ce_a, ce_b: the endpoints' cross-entropies; ce_raw: of ``f(θ_λ)``; ce_scaled: of ``f(θ_λ)/s`` (the
            merged model at inverse temperature ``β = 1/s``).
        ce_bound: ``w CE_a + (1 − w) CE_b``, which bounds ``ce_scaled`` by convexity when LEWC holds.
    """

    gap: float
    accuracy_merged: float
    accuracy_ensemble: float
    ce_a: float
    ce_b: float
    ce_raw: float
    ce_scaled: float
    ce_bound: float


def ensemble_comparison(model_a: MLP, model_b: MLP, x: torch.Tensor, y: torch.Tensor,
                        lam: float = 0.5) -> EnsembleComparison:
    """Measure "LEWC ⇒ the merged model is a scaled logit ensemble" on the pair ``(model_a, model_b)`` at ``λ``.

    On a :func:`disjoint_pair` the gap is rounding (1e-16 in float64), the accuracies are equal and
    ``ce_scaled ≤ ce_bound``; on the same networks without the embedding (no LEWC) the gap is of order one.

    Args:
        model_a, model_b: MLPs of the same widths; x: inputs ``(n, h_0)`` of their dtype and device;
        y: labels ``(n,)`` (integers in ``[0, C)``); lam: λ in ``[0, 1]``.
    """
    a, b = _check_pair(model_a, model_b)
    x = _check_inputs(x, a)
    lam = check_real("lam", lam, 0.0, 1.0)
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != x.shape[:1]:
        raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    s, w = ensemble_weights(lam, a.depth)
    with torch.no_grad():
        fa, fb, fm = a(x), b(x), merge(a, b, lam)(x)
    ens = w * fa + (1 - w) * fb
    den = float(ens.abs().max())
    if den == 0.0:
        raise ValueError("the ensemble logits are all zero; the relative gap is undefined")
    ce = {k: float(F.cross_entropy(v, y)) for k, v in {"a": fa, "b": fb, "raw": fm, "scaled": fm / s}.items()}
    return EnsembleComparison(
        gap=float((fm / s - ens).abs().max()) / den,
        accuracy_merged=float((fm.argmax(1) == y).double().mean()),
        accuracy_ensemble=float((ens.argmax(1) == y).double().mean()),
        ce_a=ce["a"], ce_b=ce["b"], ce_raw=ce["raw"], ce_scaled=ce["scaled"],
        ce_bound=w * ce["a"] + (1 - w) * ce["b"],
    )


# ----------------------------------------------------------------------------------------------- training, flatness
def decay_factor(config: TrainConfig, n: int, weight_decay: float | None = None, *, approx: bool = False) -> float:
    """How much of an un-driven weight survives the ``T`` steps of ``config`` on ``n`` samples: ``θ_T / θ_0``.

    A weight component that no loss gradient reaches (the part of the random initialisation the data never
    uses) sees only coupled weight decay, ``g_t = wd·θ_t``, and follows the recipe of :mod:`lmcnb.train`
    (``torch.optim.SGD`` semantics, heavy-ball momentum μ, optionally Nesterov)::

        v_0 = g_0,   v_t = μ v_{t−1} + g_t,   θ_{t+1} = θ_t − η_t (v_t, or g_t + μ v_t with Nesterov).

    This function runs that scalar recursion exactly (``approx=False``). For ``η_t·wd ≪ (1 − √μ)²`` it is close
    to ``exp(−wd · Σ_t η_t / (1 − μ))`` (``approx=True``): momentum multiplies the decay *exponent* by
    ``1/(1 − μ)``, ten times at μ = 0.9, so the momentum-free product ``∏_t (1 − η_t wd)`` (``momentum = 0``)
    badly overstates how much of the initialisation is left (notes §1.3, corrected). Above that threshold the
    recursion is under-damped: the exact factor oscillates (it can be negative) inside an envelope that falls like
    ``μ^{t/2}``. The notes (§6.4) relate LEWC's low-rank mechanism to this factor being small.

    Args:
        config: the training recipe (its ``momentum`` and ``nesterov`` are used); n: training samples;
        weight_decay: overrides ``config.weight_decay``; approx: return the exponential approximation instead.

    Raises ``ValueError`` if a step has ``η_t·wd ≥ 2(1 + μ)`` (the recursion is unstable: the weight grows).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    wd = config.weight_decay if weight_decay is None else check_real("weight_decay", weight_decay, 0.0)
    if not isinstance(approx, bool):
        raise TypeError(f"approx must be a bool, got {type(approx).__name__}")
    total = config.total_steps(check_int("n", n, 1))
    mu = float(config.momentum)
    theta, v, exponent = 1.0, 0.0, 0.0
    for t in range(total):
        lr = config.lr_at(t, total)
        if lr * wd >= 2.0 * (1.0 + mu):
            raise ValueError(f"lr * weight_decay = {lr * wd:.3g} >= 2(1 + momentum) at step {t}: the un-driven "
                             "weight grows instead of decaying")
        exponent += lr * wd
        g = wd * theta
        v = g if t == 0 else mu * v + g
        theta -= lr * ((g + mu * v) if config.nesterov else v)
    return math.exp(-exponent / (1.0 - mu)) if approx else theta


def random_direction(model_a: MLP, model_b: MLP, scale: float = 1.0,
                     generator: torch.Generator | None = None) -> MLP:
    """The flatness control: ``θ_a + r`` with a Gaussian ``r`` whose norm per tensor is ``scale · ‖θ_b − θ_a‖``.

    ``scale = ½`` puts the random point as far from θ_a as the midpoint θ_½ (tensor by tensor); ``scale = 1``
    as far as θ_b (Reviewer 1's test). Compare the model's loss and accuracy with those of θ_½.

    Args:
        model_a, model_b: MLPs of the same widths; scale: ``> 0``; generator: source of ``r`` (default seed 0).
    """
    a, b = _check_pair(model_a, model_b)
    scale = check_real("scale", scale, 0.0, low_open=True)
    g = torch.Generator().manual_seed(0) if generator is None else check_generator("generator", generator)
    sa, sb = a.state_dict(), b.state_dict()
    state = {}
    for k, ta in sa.items():
        r = torch.randn(ta.shape, generator=g, dtype=torch.float64)
        target = float(torch.linalg.norm((sb[k] - ta).double())) * scale
        norm = float(torch.linalg.norm(r))
        step = r * (target / norm) if norm > 0 else r
        state[k] = ta.detach() + step.to(ta.dtype).to(ta.device)
    return mlp_from_state(state)


# ----------------------------------------------------------------------------------------------- width trends
#: The pair statistics :func:`width_fall` accepts (pandas reductions over the pairs of one width and group).
PAIR_STATISTICS = ("max", "median", "mean", "min")


def width_fall(table: Any, column: str, *, first: object, last: object, by: Sequence[str] = (),
               wide: str = "max", narrow: str = "median", width: str = "width") -> float:
    """The fall with width of a per-pair statistic: ``wide``-statistic over the pairs at width ``last`` divided
    by the ``narrow``-statistic over the pairs at width ``first``, the worst (largest) ratio over the groups
    ``by``; a value ``< 1`` is a fall.

    Chapter 6 asks whether the reciprocal-orthogonality ratio falls with width with the *worst* pair at the
    largest width against the *median* pair at the smallest (``wide="max", narrow="median"``), one weight decay
    at a time; chapter 7 asks the same of its ratio and its barriers for every depth (``by=["depth"]``) or every
    depth and weight decay, and the ratio of the worst group decides. ``first == last`` is the no-width-change
    control (worst pair over median pair at one width: ``≥ 1`` whenever the pairs differ).

    Args:
        table: a pandas DataFrame with one row per pair, a ``width`` column, ``column`` and the ``by`` columns
            (a frame indexed by them: ``frame.reset_index()``).
        column: the statistic's column. first, last: the two widths (values of ``table[width]``).
        by: grouping columns (empty: the whole table is one group). wide, narrow: pair statistics of
            :data:`PAIR_STATISTICS`. width: the width column's name.

    Raises ``ValueError`` for an unknown statistic, a missing column, or a width (or group) without pairs.
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (one row per pair), got {type(table).__name__}")
    if isinstance(by, str):
        raise TypeError(f"by must be a sequence of column names, not the string {by!r}")
    by = list(by)
    for stat_name, stat in (("wide", wide), ("narrow", narrow)):
        if stat not in PAIR_STATISTICS:
            raise ValueError(f"{stat_name} must be one of {PAIR_STATISTICS}, got {stat!r}")
    missing = [c for c in [column, width, *by] if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; it has {list(table.columns)}")
    at_last, at_first = table[table[width] == last], table[table[width] == first]
    for w, rows in ((first, at_first), (last, at_last)):
        if rows.empty:
            raise ValueError(f"no pairs at {width} {w!r} (widths present: {sorted(table[width].unique())})")
    if not by:
        return float(getattr(at_last[column], wide)() / getattr(at_first[column], narrow)())
    num = at_last.groupby(by)[column].agg(wide)
    den = at_first.groupby(by)[column].agg(narrow)
    if set(num.index) != set(den.index):
        raise ValueError(f"the groups {by} differ between {width} {first!r} and {last!r}: "
                         f"{sorted(set(num.index) ^ set(den.index))}")
    return float((num / den).max())
