"""The teacher–student model on the merge pipeline: tensor ⇄ module adapters, a closed-form evaluator, matchers.

The canonical form of a student is its tensors: first layer ``W (m, d)``, output weights ``a (m,)`` (``None``:
fixed ``a = 1``) and output scale ``s`` (notation of Zhan, Li, Wu; :mod:`.kernel`). An :class:`lmcnb.models.TwoLayerNet`
is a *view* of them (``fc1.weight = W``, ``fc2.weight = a[None]``, ``output="fixed"`` iff ``a`` is None,
``scale_mode = "1"`` for ``s = 1``, ``"1/m"`` for ``s = 1/m``), so the toolkit's pipeline runs on it:

    pair = merge.Pair(to_module(W1, a1), to_module(W2, a2))
    merge.compare(pair, {"identity": matching.IdentityMatching(), "weight": PairMatching("weight"),
                         "functional": PairMatching("functional")}, lambdas, PopulationLoss(T))

- :func:`to_module` / :func:`from_module` (and :func:`to_modules` / :func:`from_modules` for batches
  ``(B, m, d)``): the adapters, exact round trips (values and float64 dtype);
- :class:`PopulationLoss`: evaluator of the closed-form population loss ``R(θ_λ)`` along the path, through
  :func:`.pairs.interpolation_loss` (no new formula); its curve's linear barrier is :func:`.pairs.pair_barriers`'s;
- :class:`PairMatching`: :func:`.pairs.weight_match` / :func:`.pairs.functional_match` as matchers of the module
  view (the trained-output variant matches the joint neurons ``(w_i, a_i)``, as :func:`.pairs.pair_barriers` does;
  :class:`.pairs.FunctionalMatching` instead folds positive ``a_i`` into ``w_i``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..._validate import check_choice
from ...barrier import InterpolationCurve, check_lambdas
from ...matching import Matcher, MatchResult
from ...models import TwoLayerNet
from ._inputs import F64, INPUTS, _check_device, _check_f64, _check_teacher, _check_weights
from .pairs import _PATH_ENTRIES, functional_match, interpolation_loss, weight_match

__all__ = ["StudentTensors", "to_module", "from_module", "to_modules", "from_modules", "PopulationLoss",
           "PairMatching", "MATCH_KINDS"]

MATCH_KINDS = ("weight", "functional")


class StudentTensors(NamedTuple):
    """One student (or a batch) in canonical form: ``W (m, d)`` / ``(B, m, d)``, ``a (m,)`` / ``(B, m)`` or
    None (fixed ``a = 1``), and the output scale ``s`` (a float)."""

    W: Tensor
    a: Tensor | None
    s: float


def _scale_mode(s: object, m: int) -> str:
    """TwoLayerNet's ``scale_mode`` for the output scale ``s``: ``"1"`` (s = 1) or ``"1/m"`` (s = 1/m)."""
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        raise TypeError(f"s must be a number (1 or 1/m), got {type(s).__name__}")
    if float(s) == 1.0:
        return "1"
    if float(s) == 1.0 / m:
        return "1/m"
    raise ValueError(f"a TwoLayerNet view holds the output scale s = 1 or s = 1/m (m = {m}), got s = {s}")


def to_module(W: Tensor, a: Tensor | None = None, s: float = 1.0) -> TwoLayerNet:
    """The :class:`~lmcnb.models.TwoLayerNet` view of one student: ``f(x) = s Σ_i a_i σ(w_i·x)``.

    Args:
        W: first layer ``(m, d)``, float64. a: output weights ``(m,)`` float64 (``output="trained"``), or None
            (``output="fixed"``, ``a = 1``). s: output scale, ``1`` or ``1/m``.

    Returns a new float64 TwoLayerNet without bias holding copies of ``W`` (and ``a``).
    """
    W = _check_f64("W", W, (2,))
    a = _check_weights("a", a, tuple(W.shape[:1]), W.device)
    m, d = W.shape
    net = TwoLayerNet(d, m, output="fixed" if a is None else "trained", scale=_scale_mode(s, m)).to(W.device)
    with torch.no_grad():
        net.fc1.weight.copy_(W)
        if a is not None:
            net.fc2.weight.copy_(a[None])
    return net


def _check_net(name: str, net: object) -> TwoLayerNet:
    if not isinstance(net, TwoLayerNet):
        raise TypeError(f"{name} must be a TwoLayerNet (the teacher–student view), got {type(net).__name__}")
    if net.fc1.bias is not None:
        raise ValueError(f"{name} has hidden biases; the teacher–student model has none (W, a, s only)")
    if net.fc1.weight.dtype != F64:
        raise TypeError(f"{name} must be float64 (teacher–student closed forms are float64), got "
                        f"{net.fc1.weight.dtype}")
    return net


def _from_state(net: TwoLayerNet, state: Mapping[str, Tensor], name: str) -> StudentTensors:
    """``(W, a, s)`` read from a state of ``net``'s architecture (``a`` None for fixed outputs)."""
    missing = {"fc1.weight", "fc2.weight"} - set(state)
    if missing:
        raise ValueError(f"{name} lacks {sorted(missing)} (not a TwoLayerNet state)")
    extra = set(state) - {"fc1.weight", "fc2.weight"}
    if extra:
        raise ValueError(f"{name} has entries {sorted(extra)} that the teacher–student model has not (biases?)")
    W = _check_f64(f"{name}['fc1.weight']", state["fc1.weight"], (2,)).detach().clone()
    a = None
    if net.output == "trained":
        a = _check_f64(f"{name}['fc2.weight']", state["fc2.weight"], (2,)).detach()[0].clone()
    if net.output == "fixed" and not bool((state["fc2.weight"] == 1).all()):
        raise ValueError(f"{name}: a fixed-output TwoLayerNet must have fc2.weight = 1")
    return StudentTensors(W, a, net.scale)


def from_module(net: TwoLayerNet) -> StudentTensors:
    """The canonical tensors ``(W (m, d), a (m,) or None, s)`` of a TwoLayerNet view (copies, detached)."""
    net = _check_net("net", net)
    return _from_state(net, net.state_dict(), "net")


def to_modules(W: Tensor, a: Tensor | None = None, s: float = 1.0) -> list[TwoLayerNet]:
    """The views of a batch: ``W (B, m, d)``, ``a (B, m)`` or None → ``B`` TwoLayerNets (:func:`to_module`)."""
    W = _check_f64("W", W, (3,))
    a = _check_weights("a", a, tuple(W.shape[:2]), W.device)
    return [to_module(W[b], None if a is None else a[b], s) for b in range(W.shape[0])]


def from_modules(nets: Sequence[TwoLayerNet]) -> StudentTensors:
    """The stacked tensors ``(W (B, m, d), a (B, m) or None, s)`` of ``B`` views of one architecture."""
    if isinstance(nets, nn.Module) or not isinstance(nets, Sequence) or not nets:
        raise TypeError(f"nets must be a non-empty sequence of TwoLayerNets, got {type(nets).__name__}")
    views = [from_module(_check_net(f"nets[{i}]", n)) for i, n in enumerate(nets)]
    arch = {(n.output, n.scale_mode, n.m, n.d) for n in nets}
    if len(arch) != 1:
        raise ValueError(f"nets must share output mode, scale and shape to be stacked, got {sorted(arch)}")
    W = torch.stack([v.W for v in views])
    a = None if views[0].a is None else torch.stack([v.a for v in views])
    return StudentTensors(W, a, views[0].s)


@dataclass(frozen=True)
class PopulationLoss:
    """Evaluator: the closed-form population loss ``R(θ_λ) = E_x[(f(x; θ_λ) − f*(x))²]`` along the path
    ``θ_λ = ((1 − λ) W_a + λ W_b, (1 − λ) a_a + λ a_b)`` of two TwoLayerNet views, by
    :func:`.pairs.interpolation_loss` (λ evaluated in :func:`.pairs.pair_barriers`'s memory-bounded chunks).

    Args:
        T: teacher first layer ``(M, d)`` float64 (teacher output weights ``a* = 1``).
        inputs: ``"gaussian"`` (``x ~ N(0, I_d)``) or ``"sphere"`` (``x ~ Unif(S^{d−1})``).

    Called as ``(model, state_a, state_b, lambdas, repairs)`` like :class:`lmcnb.merge.Empirical`; ``repairs``
    must be empty (the closed form has no BatchNorm or softmax to repair). The curve holds ``losses`` only. For
    ``s = 1/m`` the scale is carried by the output weights, ``s a`` (the same loss, ``R`` is quadratic in ``s a``).
    """

    T: Tensor
    inputs: str = "gaussian"

    def __post_init__(self) -> None:
        _check_teacher(self.T)
        check_choice("inputs", self.inputs, INPUTS)

    def __call__(self, model: TwoLayerNet, state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor],
                 lambdas: object, repairs: Sequence[Any] = ()) -> InterpolationCurve:
        net = _check_net("model", model)
        if len(tuple(repairs)) != 0:
            raise ValueError(f"PopulationLoss evaluates a closed form and takes no repairs, got "
                             f"{[type(r).__name__ for r in repairs]}")
        W1, a1, s = _from_state(net, state_a, "state_a")
        W2, a2, _ = _from_state(net, state_b, "state_b")
        if W1.shape != W2.shape:
            raise ValueError(f"state_a and state_b have different shapes {tuple(W1.shape)} and {tuple(W2.shape)}")
        _check_device(("state_a", "state_b"), (W1, W2))
        T = _check_teacher(self.T, W1.shape[1])
        _check_device(("the states", "T"), (W1, T))
        if s != 1.0:
            ones = torch.ones(W1.shape[0], dtype=F64, device=W1.device)
            a1, a2 = (ones if a1 is None else a1) * s, (ones if a2 is None else a2) * s
        lam = check_lambdas(lambdas).to(W1.device)
        m = W1.shape[0]
        per = max(1, _PATH_ENTRIES // (m * (m + T.shape[0])))
        losses = torch.cat([interpolation_loss(W1, W2, T, lam[i:i + per], self.inputs, a1=a1, a2=a2)
                            for i in range(0, lam.numel(), per)])
        return InterpolationCurve(lam.cpu(), losses.cpu())


@dataclass(frozen=True)
class PairMatching(Matcher):
    """The teacher–student matchers of :mod:`.pairs` on TwoLayerNet views (notes §2.3):
    ``kind="weight"``: :func:`.pairs.weight_match` (``min_π Σ_i ‖θ_i − θ'_{π(i)}‖²`` over neurons ``θ_i = w_i``,
    or ``(w_i, a_i)`` with trained outputs); ``kind="functional"``: :func:`.pairs.functional_match` (the exact
    midpoint interpolation error of every neuron pair, with trained outputs that of ``(w, a)`` interpolated
    jointly). These are the permutations :func:`.pairs.pair_barriers` applies. Its ``name`` is ``"<kind>_match"``.
    """

    kind: str = "functional"

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, MATCH_KINDS)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.kind}_match"

    def _match(self, model_a, model_b, spec, sizes, data) -> MatchResult:
        W1, a1, _ = from_module(_check_net("model_a", model_a))
        W2, a2, _ = from_module(_check_net("model_b", model_b))
        match = weight_match if self.kind == "weight" else functional_match
        perm = match(W1, W2, a1=a1, a2=a2).to(W2.device)
        return MatchResult({"P_0": perm}, self.name, [], 1, True, info={"exact": True}, sense="min")
