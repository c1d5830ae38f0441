"""Permutation symmetry as data: which tensor axes each hidden-unit permutation acts on.

A :class:`PermutationSpec` maps every entry of a model's ``state_dict`` (parameters *and* buffers) to one
permutation name (or ``None``) per axis, git-re-basin style, and is validated against the state it is used with.
Solvers (:mod:`lmcnb.matching`) only read the spec; builders here know the architectures.

Convention: a permutation set is ``dict[str, LongTensor]``; applying ``p`` to an axis is
``tensor.index_select(axis, p)``, so unit ``i`` of the permuted model is unit ``p[i]`` of the original.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from . import models as M

State = dict[str, torch.Tensor]
Perms = dict[str, torch.Tensor]
Axis = tuple[str, int]


@dataclass(frozen=True)
class PermutationSpec:
    """The permutation structure of one architecture.

    Attributes:
        axes_to_perm: state key → one permutation name or ``None`` per tensor axis (``()`` for scalars).
        carried: state keys that are permuted but excluded from weight-matching objectives (BatchNorm
            running statistics).
        perm_to_axes: derived; permutation name → the ``(state key, axis)`` pairs it acts on.
    """

    axes_to_perm: Mapping[str, tuple[str | None, ...]]
    carried: frozenset[str] = frozenset()
    perm_to_axes: Mapping[str, tuple[Axis, ...]] = field(init=False)

    def __post_init__(self) -> None:
        p2a: dict[str, list[Axis]] = {}
        for key, axes in self.axes_to_perm.items():
            if not isinstance(axes, tuple):
                raise TypeError(f"axes of {key!r} must be a tuple, got {type(axes).__name__}")
            for axis, name in enumerate(axes):
                if name is not None:
                    p2a.setdefault(name, []).append((key, axis))
        unknown = set(self.carried) - set(self.axes_to_perm)
        if unknown:
            raise ValueError(f"carried keys {sorted(unknown)} are not in the spec")
        object.__setattr__(self, "perm_to_axes", {k: tuple(v) for k, v in p2a.items()})

    @property
    def perm_names(self) -> tuple[str, ...]:
        return tuple(self.perm_to_axes)

    def sizes(self, state: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Validate the spec against ``state`` and return each permutation's size.

        Raises ``ValueError`` if a key is missing on either side, a tensor's rank differs from its axis list, or
        two axes of one permutation have different lengths.
        """
        missing = set(self.axes_to_perm) - set(state)
        extra = set(state) - set(self.axes_to_perm)
        if missing or extra:
            raise ValueError(f"spec and state disagree: missing in state {sorted(missing)}, "
                             f"not in spec {sorted(extra)}")
        sizes: dict[str, int] = {}
        for key, axes in self.axes_to_perm.items():
            t = state[key]
            if t.dim() != len(axes):
                raise ValueError(f"{key!r} has shape {tuple(t.shape)} but the spec lists {len(axes)} axes")
            for axis, name in enumerate(axes):
                if name is None:
                    continue
                n = sizes.setdefault(name, t.shape[axis])
                if n != t.shape[axis]:
                    raise ValueError(f"permutation {name!r} has size {n} but {key!r} axis {axis} has "
                                     f"length {t.shape[axis]}")
        return sizes


# ---------------------------------------------------------------------------------------------------------------
# Builders, one per architecture
# ---------------------------------------------------------------------------------------------------------------

def two_layer_spec(model: M.TwoLayerNet) -> PermutationSpec:
    """One permutation ``P_0`` of the m hidden neurons: rows of ``fc1``, columns of ``fc2``."""
    axes: dict[str, tuple[str | None, ...]] = {"fc1.weight": ("P_0", None), "fc2.weight": (None, "P_0")}
    if model.fc1.bias is not None:
        axes["fc1.bias"] = ("P_0",)
    return PermutationSpec(axes)


def mlp_spec(model: M.MLP) -> PermutationSpec:
    """Permutation ``P_k`` for hidden layer k = 0…L−2 (rows of layer k, columns of layer k+1)."""
    axes: dict[str, tuple[str | None, ...]] = {}
    last = model.depth - 1
    for k in range(model.depth):
        out_p = f"P_{k}" if k < last else None
        in_p = f"P_{k - 1}" if k > 0 else None
        axes[f"layers.{k}.weight"] = (out_p, in_p)
        if model.bias:
            axes[f"layers.{k}.bias"] = (out_p,)
    return PermutationSpec(axes)


def _norm_axes(prefix: str, module: nn.Module, perm: str, axes: dict, carried: set) -> None:
    """Axes of a BatchNorm2d (or nothing for Identity) whose channels follow ``perm``."""
    if isinstance(module, nn.BatchNorm2d):
        for name in ("weight", "bias", "running_mean", "running_var"):
            axes[f"{prefix}.{name}"] = (perm,)
        axes[f"{prefix}.num_batches_tracked"] = ()
        carried.update({f"{prefix}.running_mean", f"{prefix}.running_var", f"{prefix}.num_batches_tracked"})


def _conv_axes(prefix: str, conv: nn.Conv2d, out_p: str | None, in_p: str | None, axes: dict) -> None:
    axes[f"{prefix}.weight"] = (out_p, in_p, None, None)
    if conv.bias is not None:
        axes[f"{prefix}.bias"] = (out_p,)


def vgg11_spec(model: M.VGG11) -> PermutationSpec:
    """Permutation ``P_k`` of the output channels of conv k, shared with its BatchNorm and the next layer."""
    axes: dict[str, tuple[str | None, ...]] = {}
    carried: set[str] = set()
    prev, k = None, 0
    modules = list(model.features.named_children())
    for idx, (name, module) in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            perm = f"P_{k}"
            _conv_axes(f"features.{name}", module, perm, prev, axes)
            nxt = modules[idx + 1][1] if idx + 1 < len(modules) else None
            if isinstance(nxt, nn.BatchNorm2d):
                _norm_axes(f"features.{modules[idx + 1][0]}", nxt, perm, axes, carried)
            prev, k = perm, k + 1
    axes["classifier.weight"] = (None, prev)
    axes["classifier.bias"] = (None,)
    return PermutationSpec(axes, frozenset(carried))


def resnet20_spec(model: M.ResNet20) -> PermutationSpec:
    """Residual-stream permutation ``P_s{s}`` per stage plus an inner permutation ``P_s{s}_b{b}`` per block.

    The residual add forces every block output and identity shortcut of a stage to share the stream
    permutation; a 1×1 shortcut conv maps the previous stage's stream to the new one.
    """
    axes: dict[str, tuple[str | None, ...]] = {}
    carried: set[str] = set()
    stream = "P_s0"
    _conv_axes("conv1", model.conv1, stream, None, axes)
    _norm_axes("bn1", model.bn1, stream, axes, carried)
    for s, stage in enumerate(model.stages):
        out_stream = f"P_s{s}"
        for b, block in enumerate(stage):
            pre, inner = f"stages.{s}.{b}", f"P_s{s}_b{b}"
            _conv_axes(f"{pre}.conv1", block.conv1, inner, stream, axes)
            _norm_axes(f"{pre}.bn1", block.bn1, inner, axes, carried)
            _conv_axes(f"{pre}.conv2", block.conv2, out_stream, inner, axes)
            _norm_axes(f"{pre}.bn2", block.bn2, out_stream, axes, carried)
            if len(block.shortcut) > 0:
                _conv_axes(f"{pre}.shortcut.0", block.shortcut[0], out_stream, stream, axes)
                _norm_axes(f"{pre}.shortcut.1", block.shortcut[1], out_stream, axes, carried)
            stream = out_stream
    axes["linear.weight"] = (None, stream)
    axes["linear.bias"] = (None,)
    return PermutationSpec(axes, frozenset(carried))


_BUILDERS = ((M.TwoLayerNet, two_layer_spec), (M.MLP, mlp_spec), (M.VGG11, vgg11_spec),
             (M.ResNet20, resnet20_spec))


def spec_for(model: nn.Module) -> PermutationSpec:
    """The permutation spec of any model family in :mod:`lmcnb.models`, validated against its state."""
    for cls, builder in _BUILDERS:
        if isinstance(model, cls):
            spec = builder(model)
            spec.sizes(model.state_dict())
            return spec
    raise TypeError(f"no permutation spec for {type(model).__name__}; known: "
                    f"{[c.__name__ for c, _ in _BUILDERS]}")


# ---------------------------------------------------------------------------------------------------------------
# Permutation sets
# ---------------------------------------------------------------------------------------------------------------

def validate_perms(perms: Mapping[str, torch.Tensor], sizes: Mapping[str, int]) -> None:
    """Raise unless ``perms`` has exactly the names of ``sizes`` and each entry is a permutation of range(n)."""
    if not isinstance(perms, Mapping):
        raise TypeError(f"perms must be a dict of LongTensors, got {type(perms).__name__}")
    if set(perms) != set(sizes):
        raise ValueError(f"permutation names {sorted(perms)} do not match the spec's {sorted(sizes)}")
    for name, p in perms.items():
        if not isinstance(p, torch.Tensor) or p.dtype != torch.long:
            raise TypeError(f"permutation {name!r} must be a LongTensor, got "
                            f"{getattr(p, 'dtype', type(p).__name__)}")
        n = sizes[name]
        if p.shape != (n,) or not torch.equal(torch.sort(p.cpu()).values, torch.arange(n)):
            raise ValueError(f"permutation {name!r} is not a permutation of range({n})")


def identity_perms(sizes: Mapping[str, int]) -> Perms:
    """The identity permutation of every name in ``sizes``."""
    return {name: torch.arange(n) for name, n in sizes.items()}


def random_perms(sizes: Mapping[str, int], generator: torch.Generator | None = None) -> Perms:
    """Independent uniformly random permutations (``torch.randperm`` with ``generator``)."""
    return {name: torch.randperm(n, generator=generator) for name, n in sizes.items()}


def compose(outer: Mapping[str, torch.Tensor], inner: Mapping[str, torch.Tensor]) -> Perms:
    """The permutation set equal to applying ``inner`` first, then ``outer``: ``inner[outer]``."""
    if set(outer) != set(inner):
        raise ValueError(f"cannot compose permutation sets with names {sorted(outer)} and {sorted(inner)}")
    return {name: inner[name][outer[name]] for name in outer}


def invert(perms: Mapping[str, torch.Tensor]) -> Perms:
    """The inverse permutation set (``argsort`` of each)."""
    return {name: torch.argsort(p) for name, p in perms.items()}


def apply_perms(spec: PermutationSpec, perms: Mapping[str, torch.Tensor],
                state: Mapping[str, torch.Tensor]) -> State:
    """Return a new state with every axis permuted by its permutation (inputs are not modified)."""
    validate_perms(perms, spec.sizes(state))
    out: State = {}
    for key, t in state.items():
        for axis, name in enumerate(spec.axes_to_perm[key]):
            if name is not None:
                t = t.index_select(axis, perms[name].to(t.device))
        out[key] = t.clone() if t is state[key] else t
    return out


def permute_model(model: nn.Module, perms: Mapping[str, torch.Tensor],
                  spec: PermutationSpec | None = None) -> nn.Module:
    """A copy of ``model`` with its hidden units permuted; computes the same function."""
    spec = spec if spec is not None else spec_for(model)
    new = copy.deepcopy(model)
    new.load_state_dict(apply_perms(spec, perms, model.state_dict()))
    return new


class NotEquivalentError(AssertionError):
    """Raised by :func:`assert_equivalent` when two models compute different functions."""


def _compare(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable) -> tuple[float, float]:
    """(max |f_a − f_b|, max |f_a|) over ``inputs``, both models in eval mode (their modes are restored)."""
    batches = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    if not batches or any(not isinstance(b, torch.Tensor) or b.numel() == 0 for b in batches):
        raise ValueError("inputs must be a non-empty tensor or iterable of non-empty tensors")
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        with torch.no_grad():
            pairs = [(model_a(x), model_b(x)) for x in batches]
    finally:
        model_a.train(modes[0])
        model_b.train(modes[1])
    diff = max(float((fa - fb).abs().max()) for fa, fb in pairs)
    scale = max(float(fa.abs().max()) for fa, _ in pairs)
    return diff, scale


def max_output_difference(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable) -> float:
    """max |f_a(x) − f_b(x)| over ``inputs`` (a tensor or an iterable of tensors), both in eval mode."""
    return _compare(model_a, model_b, inputs)[0]


def assert_equivalent(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor | Iterable, *,
                      rtol: float = 1e-5, atol: float = 1e-6) -> float:
    """Equivalence guard: raise :class:`NotEquivalentError` unless both models give the same outputs.

    The tolerance is ``atol + rtol · max|f_a(x)|``; returns the maximal difference.
    """
    diff, scale = _compare(model_a, model_b, inputs)
    if not diff <= atol + rtol * scale:
        raise NotEquivalentError(f"models differ by {diff:.3g} (tolerance {atol + rtol * scale:.3g})")
    return diff


# ---------------------------------------------------------------------------------------------------------------
# Architecture knowledge of the matchers (next to the spec builders): where each group's units are seen
# ---------------------------------------------------------------------------------------------------------------

def _rows(t: torch.Tensor) -> torch.Tensor:
    """Unit activations as rows: ``(n, C)`` stays, ``(n, C, H, W)`` becomes ``(n·H·W, C)``."""
    return t if t.dim() == 2 else t.movedim(1, -1).reshape(-1, t.shape[1])


def _relu_rows(t: torch.Tensor) -> torch.Tensor:
    return _rows(F.relu(t))


Site = tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]


def activation_sites(model: nn.Module) -> dict[str, list[Site]]:
    """For every permutation group, the modules whose (transformed) output holds the units it permutes.

    MLP/TwoLayerNet: post-ReLU hidden layer. VGG11: the ReLU after each conv (after BatchNorm).
    ResNet20: block-inner groups at ``relu(bn1(conv1))``; a stage's stream group at every block output of the
    stage (and, for stage 0, the stem ``relu(bn1(conv1 x))``), stacked as extra samples.
    """
    if isinstance(model, M.TwoLayerNet):
        return {"P_0": [(model.fc1, _relu_rows)]}
    if isinstance(model, M.MLP):
        return {f"P_{k}": [(model.layers[k], _relu_rows)] for k in range(model.depth - 1)}
    if isinstance(model, M.VGG11):
        return _vgg_sites(model)
    if isinstance(model, M.ResNet20):
        return _resnet_sites(model)
    raise NotImplementedError(f"no activation sites for {type(model).__name__}")


def _vgg_sites(model: M.VGG11) -> dict[str, list[Site]]:
    modules = list(model.features)
    sites, k = {}, 0
    for idx, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            relu = next(m for m in modules[idx + 1:] if isinstance(m, nn.ReLU))
            sites[f"P_{k}"] = [(relu, _rows)]
            k += 1
    return sites


def _resnet_sites(model: M.ResNet20) -> dict[str, list[Site]]:
    sites: dict[str, list[Site]] = {"P_s0": [(model.bn1, _relu_rows)]}
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            sites[f"P_s{s}_b{b}"] = [(block.bn1, _relu_rows)]
            sites.setdefault(f"P_s{s}", []).append((block, _rows))
    return sites


def dense_layers(model: nn.Module, matcher: str = "this matcher") -> list[nn.Linear]:
    """The linear layers of an MLP or TwoLayerNet (hidden layer k is permuted by ``P_k``)."""
    if isinstance(model, M.TwoLayerNet):
        return [model.fc1, model.fc2]
    if isinstance(model, M.MLP):
        return list(model.layers)
    raise NotImplementedError(f"{matcher} is defined for MLP and TwoLayerNet (layer-wise neuron measures), "
                              f"not for {type(model).__name__}; use WeightMatching or ActivationMatching")
