"""Input validation and the model's shared constants (inputs, splits, float64)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..._validate import check_int, check_real, check_tensor


F64 = torch.float64
TWO_PI = 2.0 * math.pi
INPUTS = ("gaussian", "sphere")
SPLITS = ("equal", "dirichlet")
# floor on 1 − t² in the second derivative of the kernel (caps J''(t) = 1/√(1 − t²) at 1e10); see _JPrime
_JPP_FLOOR = 1e-20


# ---------------------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------------------

def _check_f64(name: str, x: object, ndims: tuple[int, ...]) -> Tensor:
    """``x`` itself if it is a non-empty finite float64 tensor with ``x.ndim`` in ``ndims``."""
    return check_tensor(name, x, ndim=ndims, dtype=F64, why=" (teacher–student closed forms are float64)")


def _check_device(names: Sequence[str], xs: Sequence[Tensor]) -> None:
    for name, x in zip(names[1:], xs[1:]):
        if x.device != xs[0].device:
            raise ValueError(f"{name} is on {x.device} but {names[0]} is on {xs[0].device}")


def _check_teacher(T: object, d: int | None = None, name: str = "T") -> Tensor:
    T = _check_f64(name, T, (2,))
    if d is not None and T.shape[1] != d:
        raise ValueError(f"{name} has input dimension {T.shape[1]}, expected d = {d} (shape (M, d))")
    return T


def _check_orthonormal(T: Tensor, name: str = "T") -> None:
    err = (T @ T.T - torch.eye(T.shape[0], dtype=F64, device=T.device)).abs().max()
    if float(err) > 1e-10:
        raise ValueError(f"{name} must have orthonormal rows (the minimum manifold 𝓜 is stated for an orthonormal "
                         f"teacher), max |T Tᵀ − I| = {float(err):.3g}")


def _check_weights(name: str, a: object, shape: tuple[int, ...], device: torch.device) -> Tensor | None:
    """Output weights: ``None`` (all ones) or a finite float64 tensor of exactly ``shape``."""
    if a is None:
        return None
    a = _check_f64(name, a, (len(shape),))
    if tuple(a.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(a.shape)}")
    if a.device != device:
        raise ValueError(f"{name} is on {a.device} but the weights are on {device}")
    return a


def _check_scale(scale: object, batch: int | None, device: torch.device) -> Tensor:
    """Output scale ``s > 0``: a number, or for batched models a float64 tensor ``(B,)``; returned as ``(B,)``
    (or a 0-D tensor for an unbatched model)."""
    if batch is None:
        if isinstance(scale, Tensor):
            raise ValueError("scale may be a tensor only for batched W (B, m, d); pass a number")
        return torch.tensor(check_real("scale", scale, 0.0, low_open=True), dtype=F64, device=device)
    return _positive_per_model("scale", scale, batch, device)


def _positive_per_model(name: str, value: object, batch: int, device: torch.device) -> Tensor:
    """A positive number, or a positive float64 tensor ``(B,)``, as a float64 tensor ``(B,)`` on ``device``."""
    if isinstance(value, Tensor):
        v = _check_f64(name, value, (1,))
        if v.shape != (batch,):
            raise ValueError(f"{name} must be a number or a (B,) = ({batch},) tensor, got shape {tuple(v.shape)}")
        if not bool((v > 0).all()):
            raise ValueError(f"{name} must be positive")
        return v.to(device)
    return torch.full((batch,), check_real(name, value, 0.0, low_open=True), dtype=F64, device=device)


def _check_widths(widths: object, W: Tensor) -> Tensor:
    """Widths ``(B,)`` int64 in ``[1, m]``; rows ``i >= widths[b]`` of ``W[b]`` must be exactly zero (padding)."""
    B, m = W.shape[0], W.shape[1]
    if widths is None:
        return torch.full((B,), m, dtype=torch.int64, device=W.device)
    if isinstance(widths, Tensor):
        if widths.dtype != torch.int64 or widths.ndim != 1:
            raise TypeError(f"widths must be a 1-D int64 tensor or a sequence of ints, got {widths.dtype} "
                            f"of shape {tuple(widths.shape)}")
        w = widths.to(W.device)
    else:
        if not isinstance(widths, Sequence):
            raise TypeError(f"widths must be a 1-D int64 tensor or a sequence of ints, got {type(widths).__name__}")
        w = torch.tensor([check_int(f"widths[{i}]", v, 1) for i, v in enumerate(widths)], dtype=torch.int64,
                         device=W.device)
    if w.shape != (B,):
        raise ValueError(f"widths must have one entry per model ({B}), got {tuple(w.shape)}")
    if bool((w < 1).any()) or bool((w > m).any()):
        raise ValueError(f"widths must lie in [1, {m}] (m = W0.shape[1]), got {w.tolist()}")
    pad = torch.arange(m, device=W.device)[None, :] >= w[:, None]
    if bool((W[pad] != 0).any()):
        raise ValueError("W0 rows at or beyond widths[b] must be exactly zero (zero-padding of narrower models)")
    return w
