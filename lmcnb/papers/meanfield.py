"""Mean-field two-layer networks and networks with i.i.d. neurons (Ferbach, Goujaud, Gidel & Dieuleveut 2024).

A mean-field two-layer network is ``f_N(x; θ) = (1/N) Σ_{i≤N} σ*(x; θ_i)`` with ``σ*(x; θ_i) = a_i σ(w_i·x + b_i)``:
each neuron is one point ``θ_i = [a_i, w_i, b_i] ∈ R^D`` (``D = d + 2``), so the network *is* the empirical
measure ``(1/N) Σ_i δ_{θ_i}`` and two networks are aligned by optimal transport between their neuron clouds
(one Hungarian assignment; Birkhoff makes the optimal plan a permutation). Here a parameter set is a tensor
``theta`` of shape ``(..., N, D)``; leading axes index independent networks, which are trained together.

The module also measures the *functional* interpolation error that the paper's theorems bound,
``sup_t RMS_x [ f(x; (1−t)θ_a + tθ_b) − ((1−t) f(x; θ_a) + t f(x; θ_b)) ]``, for these networks and, with
:func:`midpoint_error`, for any ``nn.Module`` pair (e.g. deep MLPs with i.i.d. Gaussian weights, Theorem 5.2).

On the merge pipeline (:mod:`lmcnb.merge`) the neuron tensor is the canonical form and a :class:`MeanFieldNet`
(a :class:`~lmcnb.models.TwoLayerNet` with bias, trained outputs, scale ``1/N`` and σ ∈ {relu, tanh}) is a view
of it (:func:`to_module`, :func:`from_module`, :func:`to_modules`, :func:`from_modules`; exact round trips). The
evaluator :class:`MeanFieldError` (``x``) gives the functional error ``e(λ)`` along the path (its linear barrier is
:func:`interpolation_error`), :class:`MidpointError` (``x, relative``) the midpoint error of any module pair, and
:class:`NeuronOT` is :func:`ot_align`'s matcher, so ``merge.compare(Pair(to_module(θ_a), to_module(θ_b)),
{"identity": IdentityMatching(), "ot": NeuronOT()}, ts, MeanFieldError(x))`` compares the pairings in one call
(as :func:`matched_midpoint_errors` does with :class:`MidpointError`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .. import merge, transport
from ..barrier import InterpolationCurve, check_lambdas, check_path_lambdas, linear_baseline
from ..matching import Matcher, MatchResult
from ..models import TwoLayerNet
from .._validate import check_choice, check_generator, check_int, check_real, check_tensor

__all__ = [
    "ACTIVATIONS", "init_neurons", "forward", "TanhTeacher", "tanh_teacher", "sgd", "ot_align",
    "interpolation_error", "interpolation_errors", "mse_barrier", "midpoint_error", "matched_midpoint_errors",
    "MeanFieldNet", "to_module", "from_module", "to_modules", "from_modules", "MeanFieldError", "MidpointError",
    "NeuronOT", "MIDPOINT_GRID",
]

ACTIVATIONS = ("relu", "tanh")


def _act(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.relu if name == "relu" else torch.tanh


def _check_theta(name: str, theta: object, d: int | None = None) -> torch.Tensor:
    theta = check_tensor(name, theta, min_ndim=2)
    if theta.shape[-1] < 3:
        raise ValueError(f"{name} must have shape (..., N, D) with D = d + 2 >= 3, got {tuple(theta.shape)}")
    if d is not None and theta.shape[-1] != d + 2:
        raise ValueError(f"{name} has D = {theta.shape[-1]} but the inputs have d = {d} (need D = d + 2)")
    return theta


def _check_x(x: object) -> torch.Tensor:
    return check_tensor("x", x, ndim=2)


def init_neurons(shape: tuple[int, ...], N: int, d: int, generator: torch.Generator, *, a_mean: float = 0.0,
                 a_std: float = 1.0, w_std: float = 1.0, b_std: float = 1.0) -> torch.Tensor:
    """i.i.d. neurons ``θ_i = [a_i, w_i, b_i]`` with ``a ~ N(a_mean, a_std²)``, ``w ~ N(0, w_std² I_d)``,
    ``b ~ N(0, b_std²)`` (``b_std = 0``: no bias, ``b ≡ 0``).

    Args:
        shape: leading shape (independent networks), e.g. ``(R,)`` or ``()``.
        N: neurons per network; d: input dimension.
        generator: the only source of randomness.

    Returns:
        ``theta`` ``(*shape, N, d + 2)`` float64.
    """
    N, d = check_int("N", N, 1), check_int("d", d, 1)
    g = check_generator("generator", generator)
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive ints, got {shape!r}")
    a_mean = check_real("a_mean", a_mean)
    stds = [check_real(n, v, 0.0) for n, v in (("a_std", a_std), ("w_std", w_std), ("b_std", b_std))]
    scale = torch.tensor([stds[0]] + [stds[1]] * d + [stds[2]], dtype=torch.float64)
    theta = torch.randn(*shape, N, d + 2, generator=g, dtype=torch.float64) * scale
    theta[..., 0] += a_mean
    return theta


def forward(theta: torch.Tensor, x: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """``f_N(x; θ) = (1/N) Σ_i a_i σ(w_i·x + b_i)`` for every network: theta ``(..., N, D)``, x ``(n, d)`` →
    ``(..., n)``."""
    x = _check_x(x)
    theta = _check_theta("theta", theta, x.shape[1])
    check_choice("activation", activation, ACTIVATIONS)
    pre = torch.einsum("...nd,kd->...nk", theta[..., 1:-1], x) + theta[..., -1:]  # (..., N, n)
    return (theta[..., :1] * _act(activation)(pre)).mean(-2)


@dataclass(frozen=True)
class TanhTeacher:
    """Teacher ``y = Σ_j a*_j tanh(w*_j·x)``: ``W`` ``(M, d)``, ``a`` ``(M,)`` float64."""

    W: torch.Tensor
    a: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Targets ``(n,)`` for inputs ``x`` ``(n, d)``."""
        x = _check_x(x)
        if x.shape[1] != self.W.shape[1]:
            raise ValueError(f"x must have d = {self.W.shape[1]} columns, got {x.shape[1]}")
        return torch.tanh(x @ self.W.T) @ self.a


def tanh_teacher(d: int, a: list[float] | tuple[float, ...], generator: torch.Generator) -> TanhTeacher:
    """A teacher with ``M = len(a)`` directions ``w*_j ~ N(0, I_d)`` and output weights ``a``."""
    d = check_int("d", d, 1)
    g = check_generator("generator", generator)
    a_t = torch.as_tensor([check_real(f"a[{j}]", v) for j, v in enumerate(a)], dtype=torch.float64)
    if a_t.numel() == 0:
        raise ValueError("a must have at least one output weight")
    return TanhTeacher(W=torch.randn(a_t.numel(), d, generator=g, dtype=torch.float64), a=a_t)


def sgd(theta: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float,
        batch_size: int, generator: torch.Generator, activation: str = "tanh") -> torch.Tensor:
    """One-pass (online) SGD in the mean-field scaling on the squared loss, inputs ``x ~ N(0, I_d)`` fresh at
    every step (Ferbach et al. §3; Mei, Misiakiewicz & Montanari 2019):

    ``θ_i ← θ_i + lr · mean_batch[(y − f_N(x; θ)) ∇_θ σ*(x; θ_i)]``,

    i.e. plain SGD on ``½(y − f)²`` with the step multiplied by ``N`` (each neuron moves O(1) per unit time,
    independent of the width). Every coordinate of θ (a, w, b) is trained. All leading-axis networks are trained
    at once; each sees its own inputs (one generator draws a batch per network per step).

    Args:
        theta: ``(..., N, d + 2)`` float64 (not modified). target: ``x (n, d) -> y (n,)``.
        steps, lr, batch_size: SGD recipe (``lr > 0``). generator: draws the inputs.
        activation: ``"tanh"`` (bounded and smooth, as Theorem 3.1 assumes) or ``"relu"``.

    Returns:
        The trained ``theta`` (same shape).
    """
    theta = _check_theta("theta", theta).clone()
    steps, batch_size = check_int("steps", steps, 1), check_int("batch_size", batch_size, 1)
    lr = check_real("lr", lr, 0.0, low_open=True)
    g = check_generator("generator", generator)
    check_choice("activation", activation, ACTIVATIONS)
    if not callable(target):
        raise TypeError(f"target must be callable x -> y, got {type(target).__name__}")
    lead, d = theta.shape[:-2], theta.shape[-1] - 2
    for _ in range(steps):
        x = torch.randn(*lead, batch_size, d, generator=g, dtype=theta.dtype)
        y = target(x.reshape(-1, d)).reshape(*lead, batch_size)
        a, w, b = theta[..., :1], theta[..., 1:-1], theta[..., -1:]
        pre = torch.einsum("...nd,...kd->...nk", w, x) + b                      # (..., N, B)
        s = _act(activation)(pre)
        ds = 1.0 - s * s if activation == "tanh" else (pre > 0).to(pre.dtype)
        resid = (y - (a * s).mean(-2)).unsqueeze(-2)                             # (..., 1, B)
        grad_a = (resid * s).mean(-1, keepdim=True)
        common = resid * a * ds                                                  # (..., N, B)
        grad_w = torch.einsum("...nk,...kd->...nd", common, x) / batch_size
        grad_b = common.mean(-1, keepdim=True)
        theta += lr * torch.cat([grad_a, grad_w, grad_b], dim=-1)
    if not bool(torch.isfinite(theta).all()):
        raise RuntimeError(f"mean-field SGD diverged (lr={lr}); lower the learning rate")
    return theta


def ot_align(theta_a: torch.Tensor, theta_b: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
    """Network b's neurons reordered to match a's by exact OT on ``‖θ^a_i − θ^b_j‖²`` (optionally Σ-weighted).

    For equal-size uniform measures the OT plan is a permutation (Birkhoff), found by the Hungarian algorithm
    (:func:`lmcnb.transport.ot_match`). Leading axes are paired network by network.

    Returns:
        ``theta_b`` permuted along its neuron axis, same shape ``(..., N, D)``.
    """
    theta_a, theta_b = _check_theta("theta_a", theta_a), _check_theta("theta_b", theta_b)
    if theta_a.shape != theta_b.shape:
        raise ValueError(f"theta_a and theta_b must have the same shape, got {tuple(theta_a.shape)} and "
                         f"{tuple(theta_b.shape)}")
    N, D = theta_a.shape[-2:]
    A, B = theta_a.reshape(-1, N, D), theta_b.reshape(-1, N, D)
    out = torch.stack([Bi.index_select(0, transport.ot_match(Ai, Bi, metric=metric)) for Ai, Bi in zip(A, B)])
    return out.reshape(theta_b.shape)


def _ts(ts: object, *, barrier: bool = False) -> torch.Tensor:
    """Interpolation times under :mod:`lmcnb.barrier`'s one rule (a barrier's grid with ``barrier=True``)."""
    ts = check_tensor("ts", ts, ndim=1)
    return (check_lambdas(ts, "ts") if barrier else check_path_lambdas(ts, "ts")).to(ts.device)


def _path_outputs(theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor, ts: torch.Tensor,
                  activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(θ_t)`` and ``(1−t) f(θ_a) + t f(θ_b)``, each ``(T, ..., n)``."""
    x = _check_x(x)
    theta_a = _check_theta("theta_a", theta_a, x.shape[1])
    theta_b = _check_theta("theta_b", theta_b, x.shape[1])
    if theta_a.shape != theta_b.shape:
        raise ValueError(f"theta_a and theta_b must have the same shape, got {tuple(theta_a.shape)} and "
                         f"{tuple(theta_b.shape)}")
    ts = _ts(ts)
    fa, fb = forward(theta_a, x, activation), forward(theta_b, x, activation)
    t = ts.view(-1, *([1] * fa.dim()))
    f_path = torch.stack([forward(torch.lerp(theta_a, theta_b, float(s)), x, activation) for s in ts])
    return f_path, linear_baseline(fa, fb, t)


def interpolation_errors(theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor,
                         ts: torch.Tensor | None = None, activation: str = "tanh") -> torch.Tensor:
    """Per-time functional error ``e(t) = RMS_x [f(θ_t) − ((1−t) f(θ_a) + t f(θ_b))]``, ``θ_t = (1−t)θ_a + tθ_b``
    (0 at ``t ∈ {0, 1}``); :func:`interpolation_error` is its sup over ``ts``.

    Args: as :func:`interpolation_error`. Returns ``(T, ...)`` float64, one row per time.
    """
    ts = torch.linspace(0, 1, 11, dtype=torch.float64) if ts is None else ts
    f_path, f_lin = _path_outputs(theta_a, theta_b, x, ts, activation)
    return (f_path - f_lin).pow(2).mean(-1).sqrt()


def interpolation_error(theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor,
                        ts: torch.Tensor | None = None, activation: str = "tanh") -> torch.Tensor:
    """``sup_t RMS_x [f(θ_t) − ((1−t) f(θ_a) + t f(θ_b))]``, ``θ_t = (1−t)θ_a + tθ_b`` — the functional quantity
    Ferbach et al.'s theorems bound (it vanishes when the neurons are matched and N → ∞).

    Args:
        theta_a, theta_b: ``(..., N, D)`` (b already aligned, or not for the identity baseline).
        x: ``(n, d)`` inputs. ts: interpolation times ``(T,)`` in [0, 1] (default ``0, 0.1, …, 1``).

    Returns:
        ``(...)`` float64 tensor.
    """
    return interpolation_errors(theta_a, theta_b, x, ts, activation).amax(0)


def mse_barrier(theta_a: torch.Tensor, theta_b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                ts: torch.Tensor | None = None, activation: str = "tanh") -> torch.Tensor:
    """Linear loss barrier ``sup_t [L(θ_t) − ((1−t)L(θ_a) + tL(θ_b))]`` of the test MSE ``L = mean (f − y)²``.

    Args:
        x: ``(n, d)`` test inputs; y: ``(n,)`` targets. ts: as :func:`interpolation_error`.

    Returns:
        ``(...)`` float64 tensor, one barrier per network pair.
    """
    y = check_tensor("y", y, ndim=1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one target per input row, got {y.shape[0]} and {x.shape[0]}")
    ts = torch.linspace(0, 1, 11, dtype=torch.float64) if ts is None else ts
    ts = _ts(ts, barrier=True)
    f_path, _ = _path_outputs(theta_a, theta_b, x, ts, activation)
    loss = (f_path - y).pow(2).mean(-1)                                          # (T, ...)
    t = ts.view(-1, *([1] * (loss.dim() - 1)))
    return (loss - linear_baseline(loss[:1], loss[-1:], t)).amax(0)


def midpoint_error(model: nn.Module, state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor],
                   x: torch.Tensor, relative: bool = True) -> float:
    """``RMS_x [f(θ_½) − ½(f(θ_a) + f(θ_b))]`` for any architecture (b aligned beforehand), divided by
    ``RMS_x f(θ_a)`` when ``relative``. Used for deep MLPs with i.i.d. weights (Ferbach et al. Thm 5.2 shape).

    Args:
        model: the architecture (its own weights are not used). state_a, state_b: its state dicts.
        x: ``(n, *)`` inputs in the states' dtype and device.
    """
    from torch.func import functional_call

    from ..barrier import interpolate_states

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = check_tensor("x", x, min_ndim=2)
    mid = interpolate_states(state_a, state_b, 0.5)
    with torch.no_grad():
        fa, fb = functional_call(model, dict(state_a), (x,)), functional_call(model, dict(state_b), (x,))
        fm = functional_call(model, mid, (x,))
    err = float((fm - (fa + fb) / 2).double().pow(2).mean().sqrt())
    if not relative:
        return err
    scale = float(fa.double().pow(2).mean().sqrt())
    if scale == 0.0:
        raise ValueError("f(θ_a) is identically 0 on x: the relative error is undefined")
    return err / scale


def matched_midpoint_errors(model_a: nn.Module, model_b: nn.Module, matchers: dict[str, Callable], x: torch.Tensor,
                            data: object = None) -> dict[str, float]:
    """Relative midpoint error (:func:`midpoint_error`) between ``model_a`` and ``model_b`` aligned by each matcher:
    ``merge.compare(Pair(model_a, model_b), matchers, (0, ½, 1), MidpointError(x), data=data, kind="midpoint")``.

    Args:
        model_a, model_b: two networks of one architecture (e.g. MLPs with i.i.d. Gaussian weights).
        matchers: name → matcher of :mod:`lmcnb.matching` (``IdentityMatching`` for the identity baseline).
        x: ``(n, *)`` evaluation inputs. data: inputs for the matchers that need statistics (default ``x``).

    Returns:
        name → ``RMS_x[f(θ_½) − ½(f_a + f_b)] / RMS_x f_a`` with b permuted by that matcher.
    """
    if not isinstance(matchers, dict) or not matchers:
        raise TypeError("matchers must be a non-empty dict name -> matcher")
    data = x if data is None else data
    result = merge.compare(merge.Pair(model_a, model_b), matchers, MIDPOINT_GRID, MidpointError(x), data=data,
                           kind="midpoint")
    return {name: outcome.barrier for name, outcome in result.outcomes.items()}


# ---------------------------------------------------------------------------------------------------------------
# The mean-field model on the merge pipeline: neuron tensors ⇄ a module view, evaluators, the neuron OT matcher
# ---------------------------------------------------------------------------------------------------------------

#: The grid of :class:`MidpointError`: the endpoints and the midpoint.
MIDPOINT_GRID = (0.0, 0.5, 1.0)


class MeanFieldNet(TwoLayerNet):
    """Module view of one mean-field network ``θ (N, D)``: ``f(x) = (1/N) Σ_i a_i σ(w_i·x + b_i)``, a
    :class:`~lmcnb.models.TwoLayerNet` (``output="trained"``, ``scale="1/m"``, ``bias=True``, float64) with
    ``σ = activation`` ∈ {"relu", "tanh"}: ``fc1.weight = w (N, d)``, ``fc1.bias = b (N,)``, ``fc2.weight =
    a[None] (1, N)``. Its permutation spec is TwoLayerNet's (one group ``P_0``), so weight, OT and
    :class:`NeuronOT` matching apply; activation matching reads ReLU features and fits ``"relu"`` only.
    """

    def __init__(self, d: int, N: int, activation: str = "tanh", *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(d, N, output="trained", scale="1/m", bias=True, dtype=dtype)
        self.activation = check_choice("activation", activation, ACTIVATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.fc2(_act(self.activation)(self.fc1(x))).squeeze(-1)


def to_module(theta: torch.Tensor, activation: str = "tanh") -> MeanFieldNet:
    """The :class:`MeanFieldNet` view of one network ``theta (N, D)``, ``D = d + 2`` (copies of its tensors)."""
    theta = _check_theta("theta", theta)
    if theta.ndim != 2:
        raise ValueError(f"theta must be one network (N, D), got shape {tuple(theta.shape)}; use to_modules")
    if theta.dtype != torch.float64:
        raise TypeError(f"theta must be float64, got {theta.dtype}")
    N, D = theta.shape
    net = MeanFieldNet(D - 2, N, activation).to(theta.device)
    with torch.no_grad():
        net.fc1.weight.copy_(theta[:, 1:-1])
        net.fc1.bias.copy_(theta[:, -1])
        net.fc2.weight.copy_(theta[:, 0][None])
    return net


def _theta_of(state: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """``θ (N, D) = [a, w, b]`` from a :class:`MeanFieldNet` state."""
    keys = {"fc1.weight", "fc1.bias", "fc2.weight"}
    if set(state) != keys:
        raise ValueError(f"{name} must hold exactly {sorted(keys)} (a MeanFieldNet state), got {sorted(state)}")
    w, b, a = state["fc1.weight"], state["fc1.bias"], state["fc2.weight"]
    return torch.cat([a.detach()[0][:, None], w.detach(), b.detach()[:, None]], dim=1)


def _check_net(name: str, net: object) -> MeanFieldNet:
    if not isinstance(net, MeanFieldNet):
        raise TypeError(f"{name} must be a MeanFieldNet (the mean-field view, see to_module), got "
                        f"{type(net).__name__}")
    return net


def from_module(net: MeanFieldNet) -> torch.Tensor:
    """The neuron tensor ``θ (N, d + 2)`` (rows ``[a_i, w_i, b_i]``) of a :class:`MeanFieldNet` (a copy)."""
    return _theta_of(_check_net("net", net).state_dict(), "net")


def to_modules(theta: torch.Tensor, activation: str = "tanh") -> list[MeanFieldNet]:
    """The views of a batch ``theta (..., N, D)``: one :class:`MeanFieldNet` per network, leading axes flattened
    in row-major order."""
    theta = _check_theta("theta", theta)
    return [to_module(t, activation) for t in theta.reshape(-1, *theta.shape[-2:])]


def from_modules(nets: Sequence[MeanFieldNet]) -> torch.Tensor:
    """The stacked neuron tensors ``(B, N, D)`` of ``B`` views of one shape and activation."""
    if isinstance(nets, nn.Module) or not isinstance(nets, Sequence) or not nets:
        raise TypeError(f"nets must be a non-empty sequence of MeanFieldNets, got {type(nets).__name__}")
    arch = {(_check_net(f"nets[{i}]", n).activation, n.m, n.d) for i, n in enumerate(nets)}
    if len(arch) != 1:
        raise ValueError(f"nets must share activation and shape (N, d) to be stacked, got {sorted(arch)}")
    return torch.stack([from_module(n) for n in nets])


def _no_repairs(evaluator: str, repairs: Sequence[Any]) -> None:
    if len(tuple(repairs)) != 0:
        raise ValueError(f"{evaluator} takes no repairs, got {[type(r).__name__ for r in repairs]}")


@dataclass(frozen=True)
class MeanFieldError:
    """Evaluator: the mean-field functional error ``e(λ) = RMS_x[f(θ_λ) − ((1−λ) f(θ_a) + λ f(θ_b))]`` along the
    path of two :class:`MeanFieldNet` views (:func:`interpolation_errors`, activation from the model), stored as
    the curve's ``losses``. ``e(0) = e(1) = 0``, so the curve's linear barrier is :func:`interpolation_error`
    (``sup_λ e(λ)``) and its midpoint barrier ``e(½)``.

    Args: ``x (n, d)`` float64 inputs. Called as ``(model, state_a, state_b, lambdas, repairs)``; no repairs.
    """

    x: torch.Tensor

    def __post_init__(self) -> None:
        _check_x(self.x)

    def __call__(self, model: MeanFieldNet, state_a: Mapping[str, torch.Tensor],
                 state_b: Mapping[str, torch.Tensor], lambdas: object, repairs: Sequence[Any] = ()
                 ) -> InterpolationCurve:
        net = _check_net("model", model)
        _no_repairs("MeanFieldError", repairs)
        theta_a, theta_b = _theta_of(state_a, "state_a"), _theta_of(state_b, "state_b")
        lam = check_lambdas(lambdas).to(theta_a.device)
        return InterpolationCurve(lam.cpu(), interpolation_errors(theta_a, theta_b, self.x, lam,
                                                                  net.activation).cpu())


@dataclass(frozen=True)
class MidpointError:
    """Evaluator of :func:`midpoint_error` for any module pair: on the grid :data:`MIDPOINT_GRID` ``(0, ½, 1)`` the
    curve's ``losses`` are the (relative) midpoint defect ``0, midpoint_error(…), 0`` (the defect vanishes at the
    endpoints by definition), so its ``midpoint`` barrier is exactly :func:`midpoint_error`.

    Args: ``x (n, *)`` inputs in the states' dtype and device; ``relative`` as in :func:`midpoint_error`.
    """

    x: torch.Tensor
    relative: bool = True

    def __call__(self, model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                 lambdas: object, repairs: Sequence[Any] = ()) -> InterpolationCurve:
        _no_repairs("MidpointError", repairs)
        lam = check_lambdas(lambdas)
        if lam.tolist() != list(MIDPOINT_GRID):
            raise ValueError(f"MidpointError evaluates the grid {MIDPOINT_GRID} only, got {lam.tolist()}")
        err = midpoint_error(model, dict(state_a), dict(state_b), self.x, relative=self.relative)
        return InterpolationCurve(lam, torch.tensor([0.0, err, 0.0], dtype=torch.float64))


@dataclass(frozen=True)
class NeuronOT(Matcher):
    """Exact OT between the neuron clouds ``θ^a_i = [a_i, w_i, b_i]`` of two :class:`MeanFieldNet` views
    (:func:`ot_align`'s permutation, ``‖θ^a_i − θ^b_j‖²``, Σ-weighted with ``metric (D, D)``; Ferbach et al. §3).
    Unlike :class:`lmcnb.matching.OTMatching` (incoming weights, layer by layer) the output weight ``a_i`` is part
    of the neuron."""

    metric: torch.Tensor | None = None
    name: ClassVar[str] = "neuron_ot"

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        theta_a = from_module(_check_net("model_a", model_a))
        theta_b = from_module(_check_net("model_b", model_b))
        perm = transport.ot_match(theta_a, theta_b, metric=self.metric).to(theta_b.device)
        return MatchResult({"P_0": perm}, self.name, [], 1, True, info={"exact": True}, sense="min")
