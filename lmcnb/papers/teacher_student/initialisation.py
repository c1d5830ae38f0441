"""Teachers and initialisation: orthonormal teachers, small random students, zero-row padding."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..._validate import check_bool, check_generator, check_int, check_real
from ._inputs import F64, _check_f64, _check_widths


# ---------------------------------------------------------------------------------------------------------------
# Teachers and initialisation
# ---------------------------------------------------------------------------------------------------------------

def orthonormal_teacher(d: int, M: int, generator: torch.Generator | None = None,
                        random_rotation: bool = False) -> Tensor:
    """Orthonormal teacher rows ``T (M, d)``, float64: ``w*_j = e_j`` by default, or the first ``M`` rows of a
    Haar-random orthogonal matrix (``random_rotation=True``, drawn from ``generator``, which is then required)."""
    d = check_int("d", d, 1)
    M = check_int("M", M, 1)
    if M > d:
        raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
    check_bool("random_rotation", random_rotation)
    if not random_rotation:
        if generator is not None:
            check_generator("generator", generator)
        return torch.eye(d, dtype=F64)[:M].clone()
    if generator is None:
        raise ValueError("random_rotation=True needs a torch.Generator (no global randomness)")
    g = check_generator("generator", generator)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64, device=g.device))
    q = q * torch.sign(torch.diagonal(r))[None, :]  # sign fix: Haar-distributed
    return q.T[:M].contiguous()


def small_init(B: int, m: int, d: int, scale: float = 0.1, *, generator: torch.Generator,
               widths: Sequence[int] | Tensor | None = None) -> Tensor:
    """Small initialisation ``W_0 (B, m, d)``, float64: rows i.i.d. ``N(0, (scale²/d) I_d)`` (so ``|w_i| ≈ scale``;
    notes §1.3 use ``scale = 0.1``). With ``widths``, rows ``i >= widths[b]`` of model ``b`` are zero (padding,
    see :func:`gd_population`)."""
    B, m, d = check_int("B", B, 1), check_int("m", m, 1), check_int("d", d, 1)
    scale = check_real("scale", scale, 0.0, low_open=True)
    g = check_generator("generator", generator)
    W = torch.randn(B, m, d, generator=g, dtype=F64, device=g.device) * (scale / math.sqrt(d))
    if widths is not None:
        w = _check_widths(widths, torch.zeros(B, m, 1, dtype=F64, device=W.device))
        W[torch.arange(m, device=W.device)[None, :] >= w[:, None]] = 0.0
    return W


def small_output_init(B: int, m: int, scale: float = 0.1, *, generator: torch.Generator) -> Tensor:
    """Small output weights ``a_0 (B, m)``, float64, i.i.d. ``N(0, scale²)`` (same size as ``|w_i|`` under
    :func:`small_init`), for the variant with trained output weights."""
    B, m = check_int("B", B, 1), check_int("m", m, 1)
    scale = check_real("scale", scale, 0.0, low_open=True)
    g = check_generator("generator", generator)
    return torch.randn(B, m, generator=g, dtype=F64, device=g.device) * scale


def pad_rows(Ws: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack students of different widths ``W_b (m_b, d)`` into ``(B, max m_b, d)`` by appending exact zero rows;
    returns the padded batch and the widths ``(B,)`` int64 (arguments of :func:`gd_population`)."""
    if not isinstance(Ws, Sequence) or len(Ws) == 0:
        raise TypeError("Ws must be a non-empty sequence of (m_b, d) float64 tensors")
    Ws = [_check_f64(f"Ws[{i}]", W, (2,)) for i, W in enumerate(Ws)]
    d = Ws[0].shape[1]
    for i, W in enumerate(Ws):
        if W.shape[1] != d or W.device != Ws[0].device:
            raise ValueError(f"Ws[{i}] has shape {tuple(W.shape)} on {W.device}; expected (m, {d}) on "
                             f"{Ws[0].device}")
    widths = torch.tensor([W.shape[0] for W in Ws], dtype=torch.int64, device=Ws[0].device)
    out = torch.zeros(len(Ws), int(widths.max()), d, dtype=F64, device=Ws[0].device)
    for b, W in enumerate(Ws):
        out[b, :W.shape[0]] = W
    return out, widths
