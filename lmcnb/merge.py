"""The merge pipeline: a pair of endpoints → align (any matcher) → the path θ_λ → repairs → an evaluator → a curve.

    pair = merge.Pair(model_a, model_b)
    curve = merge.merge(pair, lambdas, merge.Empirical(x_test, y_test),
                        align=matching.WeightMatching(), data=x_train,
                        repairs=[merge.ResetBatchNorm(x_train), merge.CalibrateTemperature(val_split)])
    curve.barriers("loss")        # {"linear": …, "midpoint": …}
    merge.compare(pair, {"none": matching.IdentityMatching(), "weight": …}, lambdas, evaluator)  # modulo π

- :class:`Pair` holds the endpoints; :meth:`Pair.align` applies a matcher's permutation to model b.
- Repairs are separate steps: :class:`ResetBatchNorm` re-estimates BatchNorm statistics of every θ_λ
  (:mod:`lmcnb.renorm`); :class:`CalibrateTemperature` fits a temperature per λ on a held-out split
  (:mod:`lmcnb.calibration`) and adds the calibrated loss to the curve.
- :class:`Empirical` evaluates a module's loss and accuracy *functionally* (``torch.func.functional_call``) on
  interpolated states, never copying the model per λ; with ``vectorize=True`` a chunk of states is stacked along
  a leading λ axis and ``torch.func.vmap`` runs it in one call (measured on a 2-core CPU, see
  :data:`AUTO_VECTORIZE`, the loop is faster except for tiny networks, so ``"auto"`` vectorises on CUDA only).
- the result is one :class:`lmcnb.barrier.InterpolationCurve` with its named barriers; :func:`compare` is the
  barrier modulo permutation (the minimum over matchers) as one call.

:func:`evaluate_path` is the same pipeline one level down, on ``state_dict``s instead of a :class:`Pair`
(``evaluate_path(model, state_a, state_b, lambdas, merge.Empirical(x, y), repairs=[…])``); the BatchNorm reset
and the calibration are only repairs there too (its old flags ``bn=``, ``bn_inputs=``, ``calibration_split=``, …
raise a ``TypeError`` naming the repair or evaluator field that replaces them). :func:`barrier_modulo_permutation`
is the old name of :func:`compare`.
"""
from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from . import calibration, renorm
from ._validate import check_choice, check_int, moved_message
from .barrier import KINDS, METRICS, InterpolationCurve, State, _check_pair, _stack_interpolations, check_lambdas
from .permutation import permute_model

__all__ = ["Pair", "ResetBatchNorm", "CalibrateTemperature", "Empirical", "merge", "compare",
           "evaluate_path", "evaluate", "Evaluation", "barrier_modulo_permutation", "MatcherOutcome",
           "PermutationBarrier"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = ("cross_entropy", "mse")
#: The values of the removed ``bn=`` flag (BatchNorm reset is the :class:`ResetBatchNorm` repair now).
BN_MODES = ("interpolate", "reset")
#: ``vectorize="auto"`` uses vmap on these device types only. Measured on the project's 2-core CPU (torch 2.13,
#: 1000 inputs, 25 λ, one thread, best of 5–15 runs, CPU time): 784-512-512-512-10 MLP (float32) loop 0.91 s vs
#: vmap 1.34 s; TwoLayerNet d=50, m=256 (float64) loop 0.040 s vs vmap 0.119 s; d=100, m=1024 0.36 s vs 0.55 s;
#: only a tiny d=10, m=16 net favours vmap (0.0058 s vs 0.0067 s). Batched matmuls are FLOP-bound on CPU, so
#: stacking λ buys nothing there. CUDA is listed on the usual kernel-launch argument, not measured here.
AUTO_VECTORIZE = frozenset({"cuda"})
#: Default bound on the number of interpolated parameter entries held at once (λ chunk × parameters).
CHUNK_ELEMENTS = 2 ** 26


# ----------------------------------------------------------------------------------------------- data
def _as_xy(name: str, split: object) -> tuple[Any, Any]:
    """``(x, y)`` from a pair or from an object with ``.x`` and ``.y`` (``lmcnb.data.Split``)."""
    if isinstance(split, (tuple, list)) and len(split) == 2:
        return split[0], split[1]
    if hasattr(split, "x") and hasattr(split, "y"):
        return split.x, split.y
    raise TypeError(f"{name} must be an (x, y) pair or have .x and .y, got {type(split).__name__}")


def _check_xy(name: str, x: object, y: object, loss: str | LossFn, dtype: torch.dtype,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``x (n, *)`` of the states' dtype and device, targets ``y (n, …)`` matching ``loss``."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: x and y must be torch.Tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name}: x must be a non-empty (n, *) tensor, got shape {tuple(x.shape)}")
    if x.dtype != dtype or x.device != device:
        raise TypeError(f"{name}: x must have the states' dtype {dtype} on {device}, got {x.dtype} on {x.device}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: x contains NaN or inf")
    if y.dim() < 1 or y.shape[0] != x.shape[0] or y.device != device:
        raise ValueError(f"{name}: y must have n={x.shape[0]} rows on {device}, got shape {tuple(y.shape)} on "
                         f"{y.device}")
    if loss == "cross_entropy" and (y.dtype != torch.long or y.dim() != 1):
        raise TypeError(f"{name}: cross_entropy labels y must be int64 (torch.long) of shape (n,), got {y.dtype} "
                        f"{tuple(y.shape)}")
    if loss == "cross_entropy" and int(y.min()) < 0:
        raise ValueError(f"{name}: labels must be >= 0, got min {int(y.min())}")
    if loss == "mse" and y.dtype != dtype:
        raise TypeError(f"{name}: mse targets y must have the states' dtype {dtype}, got {y.dtype}")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name}: y contains NaN or inf")
    return x, y


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    size = x.shape[0] if batch_size is None else batch_size
    return zip(x.split(size), y.split(size))


# ----------------------------------------------------------------------------------------------- forward
def _forward(model: nn.Module, stacked: State, fixed: State, x: torch.Tensor, vectorize: bool) -> torch.Tensor:
    """Outputs ``(k, bs, *out)`` of ``model`` under each of the k stacked floating states (``fixed``: the others)."""
    def call(params: State, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **fixed}, (xb,), strict=True)

    if vectorize:
        return vmap(call, in_dims=(0, None))(stacked, x)
    k = next(iter(stacked.values())).shape[0]
    return torch.stack([call({n: t[i] for n, t in stacked.items()}, x) for i in range(k)])


def _per_sample_loss(out: torch.Tensor, y: torch.Tensor, loss: str | LossFn) -> torch.Tensor:
    """Per-sample losses ``(k, bs)`` from outputs ``out (k, bs, *out)`` and targets ``y (bs, …)``."""
    k, bs = out.shape[:2]
    if loss == "cross_entropy":
        if out.dim() != 3:
            raise ValueError(f"cross_entropy needs model outputs (n, C), got {tuple(out.shape[1:])}")
        if int(y.max()) >= out.shape[2]:
            raise ValueError(f"label {int(y.max())} is out of range for a model with {out.shape[2]} outputs")
        return F.cross_entropy(out.flatten(0, 1), y.repeat(k), reduction="none").view(k, bs)
    if loss == "mse":
        if out.shape[1:] != y.shape:
            raise ValueError(f"mse targets {tuple(y.shape)} do not match model outputs {tuple(out.shape[1:])}")
        return (out - y).pow(2).reshape(k, bs, -1).mean(dim=2)
    values = loss(out.flatten(0, 1), y.expand(k, *y.shape).flatten(0, 1))
    if not isinstance(values, torch.Tensor) or values.shape != (k * bs,):
        raise ValueError(f"a callable loss must return per-sample losses of shape ({k * bs},), got "
                         f"{tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__}")
    return values.view(k, bs)


def _is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    return out.dim() == 3 and y.dtype == torch.long and y.dim() == 1


# ----------------------------------------------------------------------------------------------- path evaluation
@dataclass(frozen=True)
class ResetBatchNorm:
    """Repair step: re-estimate the BatchNorm statistics of every θ_λ on ``inputs`` (REPAIR-style; see
    :func:`lmcnb.renorm.reset_bn`), in batches of ``batch_size``. ``inputs``: a tensor or a re-iterable
    collection of batches (used once per λ)."""

    inputs: Any
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.inputs is None:
            raise ValueError("ResetBatchNorm needs inputs (training inputs to re-estimate BatchNorm statistics)")
        if isinstance(self.inputs, Iterator):
            raise TypeError("ResetBatchNorm inputs must be a tensor or a re-iterable collection of batches (they "
                            "are used once per lambda), not a one-shot iterator")
        check_int("ResetBatchNorm batch_size", self.batch_size, 1, allow_none=True)

    def check(self, model: nn.Module) -> None:
        if not renorm.has_batchnorm(model):
            raise ValueError(f"ResetBatchNorm needs a model with BatchNorm; {type(model).__name__} has none")

    def apply(self, model: nn.Module, stacked: State, fixed: State) -> tuple[State, State]:
        """Per λ: load θ_λ into the working copy ``model``, re-estimate its statistics, read them back."""
        buffers = {n for n, _ in model.named_buffers()}
        stacked = {n: t.clone() for n, t in stacked.items()}
        for i in range(next(iter(stacked.values())).shape[0]):
            model.load_state_dict({**{n: t[i] for n, t in stacked.items()}, **fixed})
            renorm.reset_bn_(model, self.inputs, batch_size=self.batch_size)
            new = model.state_dict()
            for n in buffers & set(stacked):
                stacked[n][i] = new[n]
            fixed = {n: new[n].clone() for n in fixed}
        model.eval()
        return stacked, fixed


@dataclass(frozen=True)
class CalibrateTemperature:
    """Repair step: fit a softmax temperature T(λ) per λ on the held-out ``split`` (``(x_cal, y_cal)`` or an
    object with ``.x``/``.y``), within ``bounds`` (:func:`lmcnb.calibration.fit_temperatures`); the curve then
    also holds the calibrated loss on the evaluation split. Needs ``cross_entropy``."""

    split: Any
    bounds: tuple[float, float] = calibration.DEFAULT_BOUNDS

    def bind(self, loss: str | LossFn, like: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                                     tuple[float, float]]:
        """The validated split ``(x_cal, y_cal)`` in ``like``'s dtype and device, and the checked bounds."""
        if loss != "cross_entropy":
            raise ValueError(f"CalibrateTemperature needs loss='cross_entropy', got {loss!r}")
        cal = _check_xy("CalibrateTemperature split", *_as_xy("CalibrateTemperature split", self.split), loss,
                        like.dtype, like.device)
        return cal, calibration._check_bounds(self.bounds)


@dataclass
class _Path:
    """Everything the empirical evaluation needs per λ chunk (a private, validated bundle)."""

    model: nn.Module  # the working copy, eval mode
    state_a: Mapping[str, torch.Tensor]
    state_b: Mapping[str, torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    loss: str | LossFn
    batch_size: int | None
    vectorize: bool
    repairs: tuple[ResetBatchNorm, ...]
    calibration: tuple[torch.Tensor, torch.Tensor] | None
    temperature_bounds: tuple[float, float]
    sums: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def chunk(self, lam: torch.Tensor) -> None:
        """Evaluate the λ's of ``lam (k,)`` and append per-λ sums to ``self.sums``."""
        stacked = _stack_interpolations(self.state_a, self.state_b, lam)
        fixed = {n: t[0] for n, t in stacked.items() if not t.is_floating_point()}
        stacked = {n: t for n, t in stacked.items() if t.is_floating_point()}
        for repair in self.repairs:
            stacked, fixed = repair.apply(self.model, stacked, fixed)
        temps = self._temperatures(stacked, fixed) if self.calibration is not None else None
        self._accumulate(stacked, fixed, temps)

    def _temperatures(self, stacked: State, fixed: State) -> torch.Tensor:
        """Temperatures ``(k,)`` fitted on the calibration split's logits ``(k, n_cal, C)``."""
        x_cal, y_cal = self.calibration
        logits = torch.cat([_forward(self.model, stacked, fixed, xb, self.vectorize)
                            for xb, _ in _batches(x_cal, y_cal, self.batch_size)], dim=1)
        if not _is_classification(logits, y_cal):
            raise ValueError(f"calibration needs (n, C) logits and int64 labels, got outputs "
                             f"{tuple(logits.shape[1:])} and labels {y_cal.dtype}")
        return calibration.fit_temperatures(logits, y_cal, bounds=self.temperature_bounds)

    def _accumulate(self, stacked: State, fixed: State, temps: torch.Tensor | None) -> None:
        k = next(iter(stacked.values())).shape[0]
        zero = torch.zeros(k, dtype=torch.float64, device=self.x.device)
        loss_sum, correct, cal_sum, classification = zero.clone(), zero.clone(), zero.clone(), False
        for xb, yb in _batches(self.x, self.y, self.batch_size):
            out = _forward(self.model, stacked, fixed, xb, self.vectorize)
            loss_sum += _per_sample_loss(out, yb, self.loss).double().sum(dim=1)
            classification = _is_classification(out, yb)
            if classification:
                correct += (out.argmax(dim=2) == yb).double().sum(dim=1)
            if temps is not None:
                cal_sum += calibration.calibrated_nll(out, yb, temps) * yb.shape[0]
        n = self.x.shape[0]
        self.sums.setdefault("losses", []).append(loss_sum / n)
        if classification:
            self.sums.setdefault("accuracies", []).append(correct / n)
        if temps is not None:
            self.sums.setdefault("calibrated_losses", []).append(cal_sum / n)
            self.sums.setdefault("temperatures", []).append(temps)


def _check_model_states(model: object, state_a: object, state_b: object) -> tuple[Mapping, Mapping]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    a, b = _check_pair(state_a, state_b)
    own = model.state_dict()
    if set(own) != set(a):
        raise ValueError(f"states do not fit {type(model).__name__}: missing {sorted(set(own) - set(a))}, "
                         f"unexpected {sorted(set(a) - set(own))}")
    bad = [k for k in own if own[k].shape != a[k].shape]
    if bad:
        raise ValueError(f"states do not fit {type(model).__name__}: shapes differ for {bad}")
    if not any(t.is_floating_point() for t in a.values()):
        raise ValueError("states have no floating-point entries to interpolate")
    return a, b


def _resolve_vectorize(vectorize: object, device: torch.device) -> bool:
    if isinstance(vectorize, bool):
        return vectorize
    if vectorize == "auto":
        return device.type in AUTO_VECTORIZE
    raise ValueError(f"vectorize must be 'auto', True or False, got {vectorize!r}")


@dataclass(frozen=True)
class Empirical:
    """Evaluator: the empirical loss and accuracy of θ_λ on ``(x, y)`` for every λ on the grid.

    Fields:
        x: ``(n, *)`` evaluation inputs of the states' dtype and device; y: ``(n,)`` int64 labels for
            ``cross_entropy``, targets of the model's output shape and dtype for ``mse``.
        loss: ``"cross_entropy"``, ``"mse"`` (squared error averaged over output entries, then over samples), or
            a callable ``(outputs (N, …), targets (N, …)) -> (N,)`` per-sample losses.
        batch_size: evaluation batch size (None: all n at once).
        vectorize: ``True`` stacks a λ chunk and runs it with ``torch.func.vmap``; ``False`` loops over λ;
            ``"auto"`` picks by device (see :data:`AUTO_VECTORIZE`).
        lambda_chunk: λ's evaluated at once (default: as many as keep ``chunk × parameters`` ≤
            :data:`CHUNK_ELEMENTS`).

    Called as ``evaluator(model, state_a, state_b, lambdas, repairs)`` (``model``: the architecture, not modified,
    its own weights unused; the states: endpoint ``state_dict``s of it; ``lambdas (K,)`` strictly increasing in
    [0, 1] with both endpoints) it returns an :class:`InterpolationCurve`, with the calibrated loss and T(λ) when
    ``repairs`` hold a :class:`CalibrateTemperature`. The model runs in eval mode throughout (dropout off).
    """

    x: torch.Tensor
    y: torch.Tensor
    loss: str | LossFn = "cross_entropy"
    batch_size: int | None = None
    vectorize: bool | str = "auto"
    lambda_chunk: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.loss):
            check_choice("loss", self.loss, LOSSES)
        check_int("batch_size", self.batch_size, 1, allow_none=True)
        _resolve_vectorize(self.vectorize, torch.device("cpu"))
        check_int("lambda_chunk", self.lambda_chunk, 1, allow_none=True)

    def __call__(self, model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                 lambdas: object, repairs: Sequence[Any] = ()) -> InterpolationCurve:
        a, b = _check_model_states(model, state_a, state_b)
        return self._curve(model, a, b, check_lambdas(lambdas), repairs)

    def _curve(self, model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
               lam: torch.Tensor, repairs: Sequence[Any]) -> InterpolationCurve:
        loss = self.loss
        like = next(t for t in a.values() if t.is_floating_point())
        x, y = _check_xy("(x, y)", self.x, self.y, loss, like.dtype, like.device)
        cal, bounds, steps = None, calibration.DEFAULT_BOUNDS, []
        for repair in repairs:
            if isinstance(repair, CalibrateTemperature):
                if cal is not None:
                    raise ValueError("at most one CalibrateTemperature repair")
                cal, bounds = repair.bind(loss, like)
            elif isinstance(repair, ResetBatchNorm):
                repair.check(model)
                steps.append(repair)
            else:
                raise TypeError(f"repairs must be ResetBatchNorm or CalibrateTemperature, got {type(repair).__name__}")
        batch_size = check_int("batch_size", self.batch_size, 1, allow_none=True)
        path = _Path(copy.deepcopy(model).to(like.device).eval(), a, b, x, y, loss, batch_size,
                     _resolve_vectorize(self.vectorize, like.device), tuple(steps), cal, bounds)
        numel = sum(t.numel() for t in a.values() if t.is_floating_point())
        chunk = check_int("lambda_chunk", self.lambda_chunk, 1, allow_none=True) or max(1, CHUNK_ELEMENTS // numel)
        with torch.no_grad():
            for lam_chunk in lam.split(chunk):
                path.chunk(lam_chunk)
        return InterpolationCurve(lam, **{k: torch.cat(v).cpu() for k, v in path.sums.items()})


@dataclass(frozen=True)
class Evaluation:
    """Mean ``loss`` of one model on ``(x, y)`` and its ``accuracy`` (classification) or None."""

    loss: float
    accuracy: float | None


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str | LossFn = "cross_entropy", *,
             batch_size: int | None = None) -> Evaluation:
    """Loss and accuracy of one model, with the same loss conventions as :class:`Empirical` (eval mode).

    Args: ``x (n, *)`` inputs of the model's dtype and device; ``y (n,)`` int64 labels for ``cross_entropy``,
    targets of the output shape for ``mse``; ``loss`` as in :class:`Empirical`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss):
        check_choice("loss", loss, LOSSES)
    like = next(t for t in model.state_dict().values() if t.is_floating_point())
    x, y = _check_xy("(x, y)", x, y, loss, like.dtype, like.device)
    was_training = model.training
    model.eval()
    loss_sum, correct, classification = 0.0, 0.0, False
    try:
        with torch.no_grad():
            for xb, yb in _batches(x, y, check_int("batch_size", batch_size, 1, allow_none=True)):
                out = model(xb)[None]
                loss_sum += float(_per_sample_loss(out, yb, loss).double().sum())
                classification = _is_classification(out, yb)
                if classification:
                    correct += float((out[0].argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    n = x.shape[0]
    return Evaluation(loss_sum / n, correct / n if classification else None)


# ----------------------------------------------------------------------------------------------- modulo permutation
@dataclass(frozen=True)
class MatcherOutcome:
    """One matcher's result: its ``MatchResult``, the curve between a and the aligned b, the barrier, and the
    aligned ``pair`` ``(a, π(b))`` (so callers never permute b again)."""

    match: Any
    curve: InterpolationCurve
    barrier: float
    pair: Pair | None = None


@dataclass(frozen=True)
class PermutationBarrier:
    """The barrier modulo permutation: ``value = min over matchers`` of the ``kind`` barrier of ``metric``.

    Attributes: ``outcomes`` (matcher name → :class:`MatcherOutcome`, in the given order), ``kind``, ``metric``,
    ``best`` (the first matcher attaining the minimum) and ``value``.
    """

    outcomes: dict[str, MatcherOutcome]
    kind: str
    metric: str
    best: str
    value: float


def _named_matchers(matchers: object) -> dict[str, Callable[..., Any]]:
    """``{name: matcher}`` from a mapping, or from a sequence of matchers named by ``.name`` (or ``__name__``)."""
    if isinstance(matchers, Mapping):
        named = dict(matchers)
        if not all(isinstance(k, str) for k in named):
            raise TypeError(f"matcher names must be str, got {list(named)}")
    elif isinstance(matchers, Sequence) and not isinstance(matchers, (str, bytes)):
        names = [getattr(m, "name", None) or getattr(m, "__name__", None) for m in matchers]
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"each matcher needs a str .name (or pass a dict name → matcher), got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"matcher names must be distinct, got {names}; pass a dict name → matcher")
        named = dict(zip(names, matchers))
    else:
        raise TypeError(f"matchers must be a sequence or a dict of matchers, got {type(matchers).__name__}")
    if not named:
        raise ValueError("matchers must not be empty")
    bad = [n for n, m in named.items() if not callable(m)]
    if bad:
        raise TypeError(f"matchers {bad} are not callable")
    return named


# ----------------------------------------------------------------------------------------------- the pipeline
@dataclass(frozen=True)
class Pair:
    """The two endpoints of a merge: ``model_a`` (λ = 0) and ``model_b`` (λ = 1), one architecture."""

    model_a: nn.Module
    model_b: nn.Module

    def __post_init__(self) -> None:
        for m in (self.model_a, self.model_b):
            if not isinstance(m, nn.Module):
                raise TypeError(f"models must be nn.Modules, got {type(m).__name__}")
        if type(self.model_a) is not type(self.model_b):
            raise TypeError(f"models must share an architecture, got {type(self.model_a).__name__} and "
                            f"{type(self.model_b).__name__}")

    def align(self, matcher: Callable[..., Any], data: object = None, *, name: str | None = None
              ) -> tuple[Pair, Any]:
        """``(Pair(a, π(b)), match)``: model b permuted by ``matcher(a, b, data=data).perms``."""
        match = matcher(self.model_a, self.model_b, data=data)
        if not hasattr(match, "perms"):
            name = name if name is not None else getattr(matcher, "name", type(matcher).__name__)
            raise TypeError(f"matcher {name!r} returned {type(match).__name__}, which has no .perms")
        return Pair(self.model_a, permute_model(self.model_b, match.perms)), match


Evaluator = Callable[..., InterpolationCurve]


def merge(pair: Pair, lambdas: object, evaluator: Evaluator, *, align: Callable[..., Any] | None = None,
          data: object = None, repairs: Sequence[Any] = ()) -> InterpolationCurve:
    """The curve along ``θ_λ = (1 − λ) θ_a + λ π(θ_b)``: align b with ``align`` (a matcher, on ``data``; None:
    the identity path), repair every θ_λ with ``repairs`` (:class:`ResetBatchNorm`, :class:`CalibrateTemperature`),
    evaluate with ``evaluator`` (e.g. :class:`Empirical`, or a paper's closed form taking the same arguments
    ``(model, state_a, state_b, lambdas, repairs)``)."""
    if not isinstance(pair, Pair):
        raise TypeError(f"pair must be a merge.Pair, got {type(pair).__name__}")
    if align is not None:
        pair, _ = pair.align(align, data)
    return evaluator(pair.model_a, pair.model_a.state_dict(), pair.model_b.state_dict(), lambdas, tuple(repairs))


def compare(pair: Pair, matchers: Sequence[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
            lambdas: object, evaluator: Evaluator, *, data: object = None, repairs: Sequence[Any] = (),
            kind: str = "linear", metric: str = "loss") -> PermutationBarrier:
    """The barrier modulo permutation as one call: :func:`merge` under every matcher (a sequence named by
    ``.name``, or a dict ``name → matcher``), and the minimum of the ``kind`` barrier of ``metric``."""
    if not isinstance(pair, Pair):
        raise TypeError(f"pair must be a merge.Pair, got {type(pair).__name__}")
    check_choice("kind", kind, KINDS)
    check_choice("metric", metric, METRICS)
    repairs = tuple(repairs)
    if (metric == "calibrated_loss" and isinstance(evaluator, Empirical)
            and not any(isinstance(r, CalibrateTemperature) for r in repairs)):
        raise ValueError("metric='calibrated_loss' needs a CalibrateTemperature(split) in repairs")
    state_a = pair.model_a.state_dict()
    outcomes: dict[str, MatcherOutcome] = {}
    for name, matcher in _named_matchers(matchers).items():
        aligned, match = pair.align(matcher, data, name=name)
        curve = evaluator(pair.model_a, state_a, aligned.model_b.state_dict(), lambdas, repairs)
        outcomes[name] = MatcherOutcome(match, curve, curve.barrier(kind, metric), aligned)
    best = min(outcomes, key=lambda n: outcomes[n].barrier)
    return PermutationBarrier(outcomes, kind, metric, best, outcomes[best].barrier)


# ----------------------------------------------------------------------------------------------- state-level entry
#: The removed keywords of the old 15-argument ``evaluate_path`` → what replaces each (named in the TypeError).
REMOVED_PATH_KEYWORDS = {
    "loss": "the evaluator's field: merge.Empirical(x, y, loss=…)",
    "batch_size": "the evaluator's field: merge.Empirical(x, y, batch_size=…)",
    "vectorize": "the evaluator's field: merge.Empirical(x, y, vectorize=…)",
    "lambda_chunk": "the evaluator's field: merge.Empirical(x, y, lambda_chunk=…)",
    "calibration_split": "the repair merge.CalibrateTemperature(split): repairs=[merge.CalibrateTemperature(…)]",
    "temperature_bounds": "the repair's field: merge.CalibrateTemperature(split, bounds=…)",
    "bn": "the repair merge.ResetBatchNorm(inputs, batch_size) for bn='reset' (bn='interpolate' is no repair)",
    "bn_inputs": "the repair merge.ResetBatchNorm(inputs): repairs=[merge.ResetBatchNorm(x_train)]",
    "bn_batch_size": "the repair's field: merge.ResetBatchNorm(inputs, batch_size=…)",
}


def _reject_removed(fn: Callable[..., Any], new_form: str, n_positional: int) -> Callable[..., Any]:
    """``fn`` behind a guard: a removed keyword (:data:`REMOVED_PATH_KEYWORDS`) or the old positional form (more
    than ``n_positional`` positional arguments, or a tensor where the evaluator goes) raises a TypeError naming
    what replaces it. ``inspect.signature`` of the result is ``fn``'s (so the notebook lint sees the real
    parameters)."""
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        removed = [k for k in kwargs if k in REMOVED_PATH_KEYWORDS]
        if removed:
            raise TypeError(moved_message(fn.__name__, removed, REMOVED_PATH_KEYWORDS, f"the call is {new_form}"))
        if len(args) > n_positional or (len(args) == n_positional and isinstance(args[-1], torch.Tensor)):
            raise TypeError(f"{fn.__name__}() takes an evaluator in place of x, y, loss: the call is {new_form}")
        return fn(*args, **kwargs)

    return guarded


def _evaluate_path(model: nn.Module, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                   lambdas: object, evaluator: Evaluator, *, repairs: Sequence[Any] = ()) -> InterpolationCurve:
    """The curve of ``evaluator`` along ``θ_λ = (1 − λ) θ_a + λ θ_b`` with ``repairs``, on states.

    Args:
        model: the architecture (not modified, its own weights are not used).
        state_a, state_b: endpoint ``state_dict``s of ``model`` (same keys, shapes, dtypes, device).
        lambdas: ``(K,)`` strictly increasing in [0, 1], including 0 and 1.
        evaluator: e.g. :class:`Empirical` ``(x, y, loss, batch_size, vectorize, lambda_chunk)``, or any callable
            ``(model, state_a, state_b, lambdas, repairs) -> InterpolationCurve``.
        repairs: :class:`ResetBatchNorm` (statistics re-estimated per λ) and/or :class:`CalibrateTemperature`
            (T(λ) fitted per λ on a held-out split; adds the calibrated loss).

    Returns the evaluator's :class:`InterpolationCurve`. With modules, :func:`merge` on a :class:`Pair` is the
    same call. The old flags (``bn=``, ``bn_inputs=``, ``calibration_split=``, ``loss=``, …) and the old form
    ``(…, lambdas, x, y, loss)`` raise a TypeError naming the repair or evaluator field that replaces them.
    """
    if not callable(evaluator):
        raise TypeError(f"evaluator must be callable (e.g. merge.Empirical(x, y)), got {type(evaluator).__name__}")
    return evaluator(model, state_a, state_b, lambdas, tuple(repairs))


_evaluate_path.__name__ = _evaluate_path.__qualname__ = "evaluate_path"
evaluate_path = _reject_removed(
    _evaluate_path, "evaluate_path(model, state_a, state_b, lambdas, merge.Empirical(x, y, loss, batch_size=…), "
    "repairs=[merge.ResetBatchNorm(x_train), merge.CalibrateTemperature((x_val, y_val))])", 5)


def barrier_modulo_permutation(*args: Any, **kwargs: Any) -> PermutationBarrier:
    """The old name of :func:`compare` (same arguments and result): ``barrier_modulo_permutation(pair, matchers,
    lambdas, evaluator, data=…, repairs=…, kind=…, metric=…)``. The old form ``(model_a, model_b, matchers, x, y,
    lambdas, data_for_matching=…, **path flags)`` raises a TypeError naming the new call."""
    new_form = ("merge.compare(merge.Pair(model_a, model_b), matchers, lambdas, merge.Empirical(x, y), "
                "data=data_for_matching, repairs=[…], kind=…, metric=…)")
    gone = {**REMOVED_PATH_KEYWORDS, "data_for_matching": "compare(…, data=…)"}
    removed = [k for k in kwargs if k in gone]
    if removed or (args and not isinstance(args[0], Pair)):
        moved = "".join(f"; {k}= is now {gone[k]}" for k in removed)
        raise TypeError(f"barrier_modulo_permutation moved to merge.compare, which takes a merge.Pair and an "
                        f"evaluator: {new_form}{moved}")
    return compare(*args, **kwargs)


barrier_modulo_permutation.__signature__ = inspect.signature(compare)  # type: ignore[attr-defined]
