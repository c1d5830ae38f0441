"""Two-layer ReLU teacher–student model of Zhan, Li, Wu (AISTATS 2025) in closed form, on plain float64 tensors.

The model is the reconstruction of ``shared/research/seed000-zhan-li-wu.md`` (§1.2, from Lin–Li–Wu 2024):

- inputs ``x ~ N(0, I_d)`` (``inputs="gaussian"``) or ``x ~ Unif(S^{d−1})`` (``inputs="sphere"``);
- teacher ``f*(x) = Σ_{j≤M} a*_j σ(w*_j·x)``, rows ``w*_j`` of ``T ∈ R^{M×d}``, ``a* = 1`` by default;
- student ``f(x; W, a) = s Σ_{i≤m} a_i σ(w_i·x)``, rows ``w_i`` of ``W ∈ R^{m×d}``; the seed model has fixed
  ``a = 1`` and ``s = 1`` (no ``1/m``), σ = ReLU;
- population loss ``R(W) = E_x[(f(x; W) − f*(x))²]`` (no ½).

With the arc-cosine kernel ``K(u, v) = E_g[σ(u·g)σ(v·g)] = (|u||v| sin φ + (π − φ) u·v) / (2π)`` (``φ`` the
angle between ``u`` and ``v``, ``g ~ N(0, I_d)``) the loss is the quadratic form

    R = s² aᵀ K(W, W) a − 2 s aᵀ K(W, T) a* + a*ᵀ K(T, T) a*,

divided by ``d`` for sphere inputs (ReLU is positively homogeneous: ``E_gauss = d · E_sphere``). Its gradient is
``∇_{w_i} R = 2 a_i [s² Σ_k a_k ∇_u K(w_i, w_k) − s Σ_j a*_j ∇_u K(w_i, w*_j)]`` with
``∇_u K(u, v) = ((π − φ) v + |v| sin φ · u/|u|) / (2π)``. An exactly zero row gets gradient 0 (PyTorch's
``relu'(0) = 0``), so **dead neurons stay dead** under GD and SGD, and a model padded with zero rows is exactly the
narrower model: one batch can hold students of different widths (:func:`gd_population`, ``widths=``).

Groups of functions:

- kernel and loss: :func:`arccos_kernel`, :func:`population_loss`, :func:`population_grad`;
- set-up: :func:`orthonormal_teacher`, :func:`small_init`, :func:`small_output_init`, :func:`pad_rows`;
- training, batched over models: :func:`gd_population` (exact population GD, step ``η = c/m``),
  :func:`sgd_samples` (minibatch SGD on samples);
- the global-minimum manifold ``𝓜`` (notes §1.2) and the exact LMC criterion (notes §2.4):
  :func:`sample_minimum`, :func:`neuron_types`, :func:`hall_lmc_criterion`;
- interpolation: :func:`functional_cost`, :func:`functional_match`, :func:`interpolation_loss`,
  :func:`barrier_linear` (``θ_λ = (1 − λ) W_1 + λ W_2``);
- stability: :func:`sharpness_population` (top Hessian eigenvalue, notes T3);
- **the formal model of chapters 2–4** as one configuration: :class:`TeacherStudent` (``d, M, output, init_scale,
  c, steps, tol, …``) with :meth:`~TeacherStudent.train` (seeds × widths, batched) → :class:`Solutions`,
  :meth:`~TeacherStudent.barrier_sweep` / :meth:`~TeacherStudent.manifold_sweep` → :class:`BarrierTable`; one
  pair: :func:`weight_match`, :func:`pair_barriers` (identity, weight matching, functional matching, and the barrier
  modulo permutation = their minimum).

Everything is float64: a float32 argument raises ``TypeError`` (barriers of 1e-8 are below float32 noise).
Randomness comes only from an explicit ``torch.Generator``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ._validate import check_bool, check_choice, check_generator, check_int, check_real, check_tensor

if TYPE_CHECKING:
    from .diagnostics import Sharpness

__all__ = [
    "arccos_kernel", "population_loss", "population_grad",
    "orthonormal_teacher", "small_init", "small_output_init", "pad_rows",
    "GDResult", "gd_population", "SGDResult", "sgd_samples",
    "sample_minimum", "neuron_types", "hall_lmc_criterion",
    "functional_cost", "functional_match", "interpolation_loss", "barrier_linear",
    "sharpness_population",
    "weight_match", "PairBarriers", "pair_barriers",
    "TeacherStudent", "Solutions", "BarrierTable", "OUTPUTS", "BARRIER_KINDS",
]

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


# ---------------------------------------------------------------------------------------------------------------
# Arc-cosine kernel
# ---------------------------------------------------------------------------------------------------------------

def _j_value(t: Tensor) -> Tensor:
    """``J(t) = sin φ + (π − φ) cos φ`` with ``t = cos φ ∈ [−1, 1]``; ``sin φ = √((1 − t)(1 + t))`` is accurate
    near ``t = ±1`` (``1 − t`` is exact there), so ``sin φ − φ cos φ = O(φ³)`` stays consistent."""
    return ((1.0 - t) * (1.0 + t)).sqrt() + (math.pi - torch.arccos(t)) * t


class _JPrime(torch.autograd.Function):
    """``J'(t) = π − arccos t`` with derivative ``J''(t) = 1/√(1 − t²)``, floored at ``1 − t² ≥ 1e-20``.

    ``J''`` diverges at ``t = ±1`` (parallel or antiparallel rows, e.g. two neurons of one type), but it only
    enters the Hessian multiplied by ``∇t ∇tᵀ = O(sin² φ)``, so the true contribution ``O(sin φ)`` vanishes there.
    The floor keeps autograd finite (no ``inf · 0``); it changes the Hessian by at most ``1e-10 |v|/|u|``.
    """

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(t)
        return math.pi - torch.arccos(t)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (t,) = ctx.saved_tensors
        return grad * ((1.0 - t) * (1.0 + t)).clamp_min(_JPP_FLOOR).rsqrt()


class _J(torch.autograd.Function):
    """``J(t)`` of :func:`_j_value` with ``J'(t) = π − arccos t`` (finite at ``t = ±1``, unlike autograd's
    derivative of ``arccos``); differentiable twice, for Hessian-vector products."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(t)
        return _j_value(t)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (t,) = ctx.saved_tensors
        return grad * _JPrime.apply(t)


def _safe_norm(X: Tensor) -> Tensor:
    """Row norms ``|x|`` over the last axis with gradient 0 (not NaN) at an exactly zero row."""
    sq = (X * X).sum(-1)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def _kernel_from(dot: Tensor, nu: Tensor, nv: Tensor) -> Tensor:
    """``K = |u||v| J(t) / (2π)`` from ``u·v``, ``|u|``, ``|v|`` (broadcast); ``K = 0`` if a row is zero.
    Autograd-safe to second order (no NaN at zero rows or at ``t = ±1``)."""
    den = nu * nv
    pos = den > 0
    t = torch.where(pos, dot / torch.where(pos, den, torch.ones_like(den)), torch.zeros_like(den))
    return den * _J.apply(t.clamp(-1.0, 1.0)) / TWO_PI


def arccos_kernel(U: Tensor, V: Tensor) -> Tensor:
    """Arc-cosine kernel ``K(u, v) = E_{g~N(0,I_d)}[σ(u·g) σ(v·g)] = (|u||v| sin φ + (π − φ) u·v) / (2π)``.

    ``φ`` is the angle between ``u`` and ``v``; ``K(u, u) = |u|²/2``, ``K(u, v) = 0`` if either row is zero.
    Differentiable twice by autograd (finite everywhere, gradient 0 at a zero row).

    Args:
        U: rows ``u_i``, ``(n, d)`` or batched ``(B, n, d)``, float64.
        V: rows ``v_k``, ``(k, d)`` or ``(B, k, d)`` (a 2-D ``V`` is shared by every batch entry of ``U``).

    Returns:
        ``K`` of shape ``(n, k)``, or ``(B, n, k)`` if either argument is batched.
    """
    U = _check_f64("U", U, (2, 3))
    V = _check_f64("V", V, (2, 3))
    _check_device(("U", "V"), (U, V))
    if U.shape[-1] != V.shape[-1]:
        raise ValueError(f"U and V must have the same input dimension d, got {U.shape[-1]} and {V.shape[-1]}")
    if U.ndim == 3 and V.ndim == 3 and U.shape[0] != V.shape[0]:
        raise ValueError(f"U and V have different batch sizes {U.shape[0]} and {V.shape[0]}")
    return _kernel(U, V)


def _kernel(U: Tensor, V: Tensor) -> Tensor:
    """Unvalidated :func:`arccos_kernel`."""
    return _kernel_from(U @ V.mT, _safe_norm(U)[..., :, None], _safe_norm(V)[..., None, :])


# ---------------------------------------------------------------------------------------------------------------
# Population loss and gradient
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Problem:
    """Validated arguments of the population loss: ``W (B, m, d)``, ``a (B, m)``, ``s (B,)``, teacher ``T (M, d)``
    and ``a* (M,)``; ``batched`` says whether the caller passed a leading batch axis."""

    W: Tensor
    a: Tensor
    s: Tensor
    T: Tensor
    a_star: Tensor
    factor: float
    batched: bool


def _problem(W: object, T: object, a: object, a_star: object, scale: object, inputs: object) -> _Problem:
    W = _check_f64("W", W, (2, 3))
    batched = W.ndim == 3
    T = _check_teacher(T, W.shape[-1])
    _check_device(("W", "T"), (W, T))
    a = _check_weights("a", a, tuple(W.shape[:-1]), W.device)
    a_star = _check_weights("a_star", a_star, (T.shape[0],), W.device)
    s = _check_scale(scale, W.shape[0] if batched else None, W.device)
    inputs = check_choice("inputs", inputs, INPUTS)
    Wb = W if batched else W[None]
    ab = torch.ones(Wb.shape[:2], dtype=F64, device=W.device) if a is None else (a if batched else a[None])
    a_star = torch.ones(T.shape[0], dtype=F64, device=W.device) if a_star is None else a_star
    factor = 1.0 / W.shape[-1] if inputs == "sphere" else 1.0
    return _Problem(Wb, ab, s.reshape(-1), T, a_star, factor, batched)


def _loss(p: _Problem) -> Tensor:
    """``R`` for every model ``(B,)`` by the kernel quadratic form (autograd-safe)."""
    student = torch.einsum("bi,bik,bk->b", p.a, _kernel(p.W, p.W), p.a)
    cross = torch.einsum("bi,bij,j->b", p.a, _kernel(p.W, p.T), p.a_star)
    teacher = p.a_star @ _kernel(p.T, p.T) @ p.a_star
    return p.factor * (p.s ** 2 * student - 2.0 * p.s * cross + teacher)


def population_loss(W: Tensor, T: Tensor, a: Tensor | None = None, a_star: Tensor | None = None,
                    scale: float | Tensor = 1.0, inputs: str = "gaussian") -> Tensor:
    """Exact population loss ``R(W) = E_x[(f(x; W, a) − f*(x))²]`` of the two-layer ReLU teacher–student model.

    ``R = c_in (s² aᵀK(W,W)a − 2s aᵀK(W,T)a* + a*ᵀK(T,T)a*)`` with the arc-cosine kernel ``K``
    (:func:`arccos_kernel`), ``c_in = 1`` for Gaussian and ``1/d`` for sphere inputs. Differentiable twice by
    autograd (used by :func:`sharpness_population`); :func:`population_grad` is the closed-form gradient.

    Accuracy: ``R`` is a sum of terms of size ``≈ (Σ_i |s a_i||w_i| + Σ_j |a*_j||w*_j|)²`` that cancel at a minimum,
    so its absolute rounding error is ``≈ 1e-16`` times that (``~1e-15`` for ``M = 4``); at an exact minimum it
    can come out as ``±1e-15``, slightly negative. Barriers and tolerances below ``~1e-14`` are not resolved.

    Args:
        W: student first layer ``(m, d)`` or a batch of students ``(B, m, d)``, float64; zero rows are allowed.
        T: teacher first layer ``(M, d)``, rows ``w*_j``.
        a: student output weights ``(m,)`` / ``(B, m)``; ``None`` means all ones (the seed model).
        a_star: teacher output weights ``(M,)``; ``None`` means all ones.
        scale: output scale ``s > 0`` (``1`` in the seed model, ``1/m`` mean-field); a ``(B,)`` tensor for batches.
        inputs: ``"gaussian"`` (``x ~ N(0, I_d)``) or ``"sphere"`` (``x ~ Unif(S^{d−1})``).

    Returns:
        0-D tensor ``R`` for ``W (m, d)``, ``(B,)`` for ``W (B, m, d)``.
    """
    p = _problem(W, T, a, a_star, scale, inputs)
    R = _loss(p)
    return R if p.batched else R[0]


def _norms(X: Tensor) -> tuple[Tensor, Tensor]:
    """Row norms ``|x|`` and unit rows ``x/|x|`` (0 for a zero row) over the last axis."""
    n = (X * X).sum(-1).sqrt_()
    return n, X * torch.where(n > 0, n.reciprocal(), 0.0)[..., None]


@dataclass(frozen=True)
class _Teacher:
    """Teacher pieces reused at every GD step: norms ``(M,)``, unit rows ``(M, d)``, output weights ``a* (M,)`` and
    the constant ``a*ᵀK(T,T)a*``."""

    n: Tensor
    unit: Tensor
    a_star: Tensor
    const: Tensor

    @staticmethod
    def of(T: Tensor, a_star: Tensor) -> _Teacher:
        n, unit = _norms(T)
        return _Teacher(n, unit, a_star, a_star @ _kernel(T, T) @ a_star)


class _Workspace:
    """Reusable output buffers for the ``(B, m, m + M)`` matrices of :func:`_pieces` (allocating fresh multi-MB
    tensors every GD step costs more than the arithmetic on them)."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != shape:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf


def _pieces(W: Tensor, a: Tensor, s: Tensor, teacher: _Teacher, with_loss: bool, ws: _Workspace | None = None
            ) -> tuple[Tensor, Tensor, Tensor | None]:
    """One closed-form evaluation for a batch ``W (B, m, d)``, ``a (B, m)``, ``s (B,)`` (Gaussian inputs).

    The student rows and the teacher rows are stacked into ``v_k`` (``k ≤ m + M``) with coefficients
    ``c = (s² a, −s a*)``, so that a single angle matrix ``φ_ik = ∠(w_i, v_k)`` ``(B, m, m + M)`` gives

        q_i = Σ_k c_k ∇_u K(w_i, v_k) = ½ Σ_k c_k v_k − (1/2π) Σ_k φ_ik c_k v_k + (1/2π) (Σ_k c_k |v_k| sin φ_ik) ŵ_i,

    i.e. ``q_i = s² Σ_k a_k ∇_u K(w_i, w_k) − s Σ_j a*_j ∇_u K(w_i, w*_j)``; then ``∇_{w_i} R = 2 a_i q_i`` on live
    rows and ``∂R/∂a_i = 2 w_i·q_i``. Returns ``q (B, m, d)`` (meaningless on zero rows: mask them), the live-row
    mask ``(B, m)`` and, if ``with_loss``, ``R (B,)`` from ``K_ik = |w_i||v_k| (sin φ_ik + (π − φ_ik) cos φ_ik)/(2π)``.
    ``sin φ = √((1 − t)(1 + t))`` and ``φ = arccos t`` come from the same ``t = cos φ``, so their rounding errors
    cancel for (nearly) parallel rows.
    """
    ws = _Workspace() if ws is None else ws
    B, m, d = W.shape
    M = teacher.n.shape[0]
    shape = (B, m, m + M)
    n, unit = _norms(W)
    s1 = s[:, None]
    v_unit = torch.cat([unit, teacher.unit.expand(B, M, d)], 1)
    cn = torch.cat([(s1 * s1 * a) * n, (-s1 * teacher.a_star) * teacher.n], 1)  # c_k |v_k|, (B, m + M)
    t = torch.bmm(unit, v_unit.mT, out=ws.get("t", shape, W)).clamp_(-1.0, 1.0)
    sin = torch.mul(t, -1.0, out=ws.get("sin", shape, W)).add_(1.0)
    phi = torch.add(t, 1.0, out=ws.get("phi", shape, W))
    sin.mul_(phi).sqrt_()
    phi = torch.arccos(t, out=phi)
    cV = cn[:, :, None] * v_unit
    q = torch.baddbmm(0.5 * cV.sum(1, keepdim=True), phi, cV, alpha=-1.0 / TWO_PI)
    q.addcmul_(torch.bmm(sin, cn[:, :, None]), unit, value=1.0 / TWO_PI)
    loss = None
    if with_loss:
        J = sin.addcmul_(phi.neg_().add_(math.pi), t)  # J(t) = sin φ + (π − φ) cos φ
        coef = cn.clone()
        coef[:, m:] *= 2.0  # R = Σ_i a_i |w_i| Σ_k c'_k |v_k| J_ik / 2π with c' = (s² a, −2s a*)
        loss = ((a * n)[:, None, :] @ J @ coef[:, :, None])[:, 0, 0] / TWO_PI + teacher.const
    return q, n > 0, loss


def population_grad(W: Tensor, T: Tensor, a: Tensor | None = None, a_star: Tensor | None = None,
                    scale: float | Tensor = 1.0, inputs: str = "gaussian",
                    wrt_output: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Closed-form gradient of :func:`population_loss` (Zhan et al. notes §1.4 and Appendix A).

    ``∇_{w_i} R = 2 c_in s a_i [s Σ_k a_k ∇_u K(w_i, w_k) − Σ_j a*_j ∇_u K(w_i, w*_j)]`` with
    ``∇_u K(u, v) = ((π − φ) v + |v| sin φ · u/|u|) / (2π)``, and ``∂R/∂a_i = 2 c_in s w_i·[…]``. A zero row gets
    gradient 0 (``relu'(0) = 0``): dead neurons stay dead.

    Args:
        W, T, a, a_star, scale, inputs: as in :func:`population_loss`.
        wrt_output: also return the gradient with respect to the output weights ``a``.

    Returns:
        ``∇_W R`` shaped like ``W``; with ``wrt_output=True`` the pair ``(∇_W R, ∇_a R)``, the second shaped like
        ``a`` (``(m,)`` or ``(B, m)``).
    """
    check_bool("wrt_output", wrt_output)
    p = _problem(W, T, a, a_star, scale, inputs)
    with torch.no_grad():
        q, live, _ = _pieces(p.W.detach(), p.a.detach(), p.s, _Teacher.of(p.T.detach(), p.a_star.detach()), False)
        gW = (2.0 * p.factor) * p.a[:, :, None] * q * live[:, :, None]
        ga = (2.0 * p.factor) * (p.W * q).sum(-1)
    if not p.batched:
        gW, ga = gW[0], ga[0]
    return (gW, ga) if wrt_output else gW


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


# ---------------------------------------------------------------------------------------------------------------
# Full-batch GD on the exact population loss
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GDResult:
    """Outcome of :func:`gd_population` for ``B`` models (padded to ``m = max width``).

    Attributes:
        W: final first layers ``(B, m, d)`` (rows beyond a model's width stay zero).
        a: final output weights ``(B, m)`` (unchanged unless ``train_output``).
        widths: ``(B,)`` int64. eta: step sizes ``η_b = c_b / widths_b``, ``(B,)``.
        losses: population loss at the checked steps ``(B, n_checks)``; a stopped model repeats its last value.
        record_steps: the checked step numbers ``(n_checks,)`` (``0, k, 2k, …``).
        steps: GD steps each model took ``(B,)`` (it stops at the first check with ``R < tol`` or divergence).
        final_loss: ``R`` of the returned weights ``(B,)``. converged, diverged: ``(B,)`` bool; a diverged
            model's ``W`` is its state when the divergence was detected (possibly non-finite).
        stationary: ``(B,)`` bool, models stopped by ``grad_tol`` (a critical point with ``R >= tol``, e.g. any
            ``m < M`` student); ``None`` when the result was built without it.
    """

    W: Tensor
    a: Tensor
    widths: Tensor
    eta: Tensor
    losses: Tensor
    record_steps: Tensor
    steps: Tensor
    final_loss: Tensor
    converged: Tensor
    diverged: Tensor
    stationary: Tensor | None = None


@contextmanager
def _intra_op_threads(threads: object) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), restoring the old value."""
    if threads is None:
        yield
        return
    threads = check_int("threads", threads, 1)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_a0(a0: object, train_output: object, W0: Tensor) -> Tensor:
    check_bool("train_output", train_output)
    if a0 is None:
        if train_output:
            raise ValueError("train_output=True needs initial output weights a0 (B, m), e.g. small_output_init")
        return torch.ones(W0.shape[:2], dtype=F64, device=W0.device)
    return _check_weights("a0", a0, tuple(W0.shape[:2]), W0.device).clone()


class _Run:
    """Bookkeeping of a batched run: the active (still updated) models are compacted into a smaller batch."""

    def __init__(self, W: Tensor, a: Tensor, per_model: dict[str, Tensor], total: int) -> None:
        B = W.shape[0]
        self.W, self.a = W.clone(), a.clone()
        self.idx = torch.arange(B, device=W.device)
        self.Wa, self.aa = self.W.clone(), self.a.clone()
        self.per = dict(per_model)
        self.steps = torch.full((B,), total, dtype=torch.int64, device=W.device)
        self.loss = torch.full((B,), math.nan, dtype=F64, device=W.device)
        self.converged = torch.zeros(B, dtype=torch.bool, device=W.device)
        self.diverged = torch.zeros(B, dtype=torch.bool, device=W.device)
        self.stationary = torch.zeros(B, dtype=torch.bool, device=W.device)
        self.history: list[Tensor] = []

    def record(self, loss: Tensor, step: int, tol: float, diverge_loss: float, last: bool,
               flat: Tensor | None = None) -> Tensor:
        """Store the active models' loss; freeze the models that converged, diverged or (``flat``, a ``(B_active,)``
        mask of models whose gradient vanished) became stationary; all of them if ``last``.
        Returns the mask ``(B_active,)`` of the models that stay active."""
        self.loss[self.idx] = loss
        self.history.append(self.loss.clone())
        conv = loss < tol
        div = ~torch.isfinite(loss) | (loss > diverge_loss)
        self.converged[self.idx[conv]] = True
        self.diverged[self.idx[div & ~conv]] = True
        stat = torch.zeros_like(conv) if flat is None else flat & ~conv & ~div
        self.stationary[self.idx[stat]] = True
        stop = torch.ones_like(conv) if last else conv | div | stat
        keep = ~stop
        if bool(stop.any()):
            self.W[self.idx[stop]] = self.Wa[stop]
            self.a[self.idx[stop]] = self.aa[stop]
            self.steps[self.idx[stop]] = step
            self.idx, self.Wa, self.aa = self.idx[keep], self.Wa[keep], self.aa[keep]
            self.per = {k: v[keep] for k, v in self.per.items()}
        return keep

    @property
    def done(self) -> bool:
        return self.idx.numel() == 0


def gd_population(W0: Tensor, T: Tensor, *, c: float | Tensor, steps: int, tol: float = 1e-12,
                  widths: Sequence[int] | Tensor | None = None, a0: Tensor | None = None,
                  train_output: bool = False, a_star: Tensor | None = None, scale: float | Tensor = 1.0,
                  inputs: str = "gaussian", check_every: int = 50, diverge_loss: float = 1e6,
                  threads: int | None = 1, grad_tol: float = 0.0) -> GDResult:
    """Full-batch gradient descent on the exact population loss, batched over models (seeds, widths, ``c``).

    ``W_{t+1} = W_t − η ∇_W R(W_t)`` (and ``a_{t+1} = a_t − η ∇_a R`` with ``train_output``), ``η_b = c_b / m_b``
    per model (notes §1.3: in the unnormalised model the step must scale like ``1/m``; ``c ≳ 3.3`` diverges for
    ``d = 8, M = 4``). One step costs one closed-form evaluation (:func:`population_grad`) for the whole batch: a
    single angle matrix between the student rows and the student and teacher rows; the loss at every
    ``check_every``-th step reuses it.

    **Widths.** Models of different widths are zero-padded to ``m = W0.shape[1]``: rows ``i >= widths[b]`` must be
    exactly zero. A zero row contributes nothing to ``f`` and gets zero gradient (``relu'(0) = 0``), so a padded
    model follows exactly the trajectory of the unpadded one (up to floating-point summation order).

    **Stopping.** At steps ``0, k, 2k, …`` (``k = check_every``) each model whose loss is ``< tol`` is marked
    converged and frozen; one whose loss is non-finite or ``> diverge_loss`` is marked diverged and frozen; with
    ``grad_tol > 0``, one whose largest gradient entry ``max |∂R/∂θ|`` (over ``W``, and ``a`` if trained) is
    ``< grad_tol`` is marked stationary and frozen (a critical point that is not a global minimum, e.g. ``m < M``,
    which ``tol`` alone would run until ``steps``). The run
    ends when every model is frozen or after ``steps`` steps.

    Args:
        W0: initial first layers ``(B, m, d)``, float64 (e.g. :func:`small_init`).
        T: teacher ``(M, d)``.
        c: step-size constant, a number or a ``(B,)`` tensor (one per model, e.g. a learning-rate sweep).
        steps: maximum number of GD steps (``>= 0``).
        tol: convergence threshold on ``R``. widths: ``(B,)`` true widths (default: all ``m``).
        a0: output weights ``(B, m)``; default all ones. Required with ``train_output=True``
            (e.g. :func:`small_output_init`).
        train_output: also train ``a`` (student ``f = s Σ a_i σ(w_i·x)``), the variant with output weights.
        a_star, scale, inputs: as in :func:`population_loss` (``scale`` a number or ``(B,)``).
        check_every: steps between loss checks (and history records). diverge_loss: divergence threshold.
        grad_tol: stationarity threshold on ``max |∂R/∂θ|`` (``0``, the default: never stop for stationarity).
        threads: torch intra-op threads during the run (restored afterwards); ``None`` keeps the current setting.
            The per-step tensors are small, and on a 2-core machine one thread is several times faster than two.

    Cost: one step evaluates ``B·m·(m + M)`` angles (``arccos`` dominates). Measured on the project's 2-core CPU,
    one thread: 16 models with ``m = 32``, ``d = 8`` take ≈ 0.8 ms per step (``c = 2`` reaches ``R < 1e-10`` in
    ≈ 15–18k steps, ≈ 14 s); 32 models with ``m = 64`` ≈ 3 ms per step.

    Returns:
        :class:`GDResult`.
    """
    W0 = _check_f64("W0", W0, (3,))
    T = _check_teacher(T, W0.shape[2])
    _check_device(("W0", "T"), (W0, T))
    B = W0.shape[0]
    w = _check_widths(widths, W0)
    eta = _positive_per_model("c", c, B, W0.device) / w.to(F64)
    steps = check_int("steps", steps, 0)
    tol = check_real("tol", tol, 0.0)
    check_every = check_int("check_every", check_every, 1)
    diverge_loss = check_real("diverge_loss", diverge_loss, 0.0, low_open=True)
    grad_tol = check_real("grad_tol", grad_tol, 0.0)
    a = _check_a0(a0, train_output, W0)
    a_star = _check_weights("a_star", a_star, (T.shape[0],), W0.device)
    a_star = torch.ones(T.shape[0], dtype=F64, device=W0.device) if a_star is None else a_star
    s = _check_scale(scale, B, W0.device)
    factor = 1.0 / W0.shape[2] if check_choice("inputs", inputs, INPUTS) == "sphere" else 1.0
    with torch.no_grad(), _intra_op_threads(threads):
        teacher, ws = _Teacher.of(T, a_star), _Workspace()
        run = _Run(W0, a, {"eta": eta * (2.0 * factor), "s": s}, steps)
        record_steps = []
        for step in range(steps + 1):
            check = step % check_every == 0 or step == steps
            q, live, loss = _pieces(run.Wa, run.aa, run.per["s"], teacher, check, ws)
            if check:
                record_steps.append(step)
                flat = _flat(run, q, live, train_output, factor, grad_tol) if grad_tol > 0 else None
                keep = run.record(loss * factor, step, tol, diverge_loss, last=step == steps, flat=flat)
                if run.done:
                    break
                q, live = q[keep], live[keep]
            _gd_step(run, q, live, train_output)
    return GDResult(W=run.W, a=run.a, widths=w, eta=eta, losses=torch.stack(run.history, 1),
                    record_steps=torch.tensor(record_steps, dtype=torch.int64), steps=run.steps,
                    final_loss=run.loss, converged=run.converged, diverged=run.diverged,
                    stationary=run.stationary)


def _flat(run: _Run, q: Tensor, live: Tensor, train_output: bool, factor: float, grad_tol: float) -> Tensor:
    """``(B_active,)`` mask: ``max |∂R/∂θ| < grad_tol`` with ``∂R/∂w_i = 2 c_in a_i q_i`` (live rows) and
    ``∂R/∂a_i = 2 c_in w_i·q_i`` (if ``train_output``)."""
    g = (torch.where(live, run.aa, 0.0)[:, :, None] * q).abs().amax((1, 2))
    if train_output:
        g = torch.maximum(g, (run.Wa * q).sum(-1).abs().amax(1))
    return (2.0 * factor) * g < grad_tol


def _gd_step(run: _Run, q: Tensor, live: Tensor, train_output: bool) -> None:
    """In place on the active models: ``W −= η · 2a_i q_i`` (live rows) and ``a −= η · 2 w_i·q_i``."""
    eta = run.per["eta"][:, None]
    grad_a = (run.Wa * q).sum(-1) if train_output else None
    run.Wa.sub_(torch.where(live, eta * run.aa, 0.0)[:, :, None] * q)
    if grad_a is not None:
        run.aa.sub_(eta * grad_a)


# ---------------------------------------------------------------------------------------------------------------
# Minibatch SGD on samples
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SGDResult:
    """Outcome of :func:`sgd_samples` for ``B`` models (padded to ``m = max width``).

    Attributes:
        W: final first layers ``(B, m, d)``. a: final output weights ``(B, m)``.
        widths: ``(B,)`` int64. eta: step sizes ``c_b / widths_b``, ``(B,)``.
        losses: empirical loss on all of ``(X, y)`` after each epoch ``(B, epochs + 1)`` (column 0: at
            initialisation); a stopped model repeats its last value.
        epochs: epochs each model ran ``(B,)``. final_loss: empirical loss of the returned weights ``(B,)``.
        converged, diverged: ``(B,)`` bool.
    """

    W: Tensor
    a: Tensor
    widths: Tensor
    eta: Tensor
    losses: Tensor
    epochs: Tensor
    final_loss: Tensor
    converged: Tensor
    diverged: Tensor


def _check_samples(X: object, y: object, teacher: object, a_star: object, d: int, device: torch.device
                   ) -> tuple[Tensor, Tensor]:
    X = _check_f64("X", X, (2,))
    if X.shape[1] != d:
        raise ValueError(f"X must have shape (n, {d}) to match W0, got {tuple(X.shape)}")
    if X.device != device:
        raise ValueError(f"X is on {X.device} but W0 is on {device}")
    if (y is None) == (teacher is None):
        raise ValueError("pass exactly one of y (targets (n,)) and teacher (T (M, d), targets f*(x))")
    if y is None:
        T = _check_teacher(teacher, d, "teacher")
        _check_device(("X", "teacher"), (X, T))
        a_s = _check_weights("a_star", a_star, (T.shape[0],), X.device)
        y = torch.relu(X @ T.T) @ (torch.ones(T.shape[0], dtype=F64, device=X.device) if a_s is None else a_s)
    else:
        if a_star is not None:
            raise ValueError("a_star is used only with teacher=, not with explicit targets y")
        y = _check_f64("y", y, (1,))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {tuple(y.shape)}")
        _check_device(("X", "y"), (X, y))
    return X, y


def _empirical_loss(W: Tensor, a: Tensor, s: Tensor, X: Tensor, y: Tensor, chunk: int = 1 << 22) -> Tensor:
    """``(1/n) Σ_n (s Σ_i a_i σ(w_i·x_n) − y_n)²`` for every model, ``(B,)``, in sample chunks of bounded memory."""
    B, m, _ = W.shape
    step = max(1, chunk // (B * m))
    total = torch.zeros(B, dtype=F64, device=W.device)
    for start in range(0, X.shape[0], step):
        xb, yb = X[start:start + step], y[start:start + step]
        f = s[:, None] * (torch.relu(torch.einsum("nd,bmd->bnm", xb, W)) @ a[:, :, None])[:, :, 0]
        total += ((f - yb) ** 2).sum(1)
    return total / X.shape[0]


def _sgd_step(W: Tensor, a: Tensor, s: Tensor, eta: Tensor, xb: Tensor, yb: Tensor, train_output: bool) -> None:
    """One in-place SGD step on the minibatch loss ``(1/b) Σ_n (f(x_n) − y_n)²`` for every model:
    ``∇_{w_i} = (2s/b) Σ_n r_n a_i 1[w_i·x_n > 0] x_n``, ``∇_{a_i} = (2s/b) Σ_n r_n σ(w_i·x_n)``, ``r = f − y``.
    ``xb (B, b, d)``, ``yb (B, b)``; ``1[0 > 0] = 0``, so zero rows stay zero."""
    Z = torch.bmm(xb, W.mT)  # (B, b, m)
    H = torch.relu(Z)
    r = s[:, None] * (H @ a[:, :, None])[:, :, 0] - yb
    coef = (2.0 / xb.shape[1]) * (eta * s)[:, None] * r  # (B, b)
    grad_W = torch.bmm(((Z > 0) * (coef[:, :, None] * a[:, None, :])).mT, xb)
    if train_output:
        a.sub_((H * coef[:, :, None]).sum(1))
    W.sub_(grad_W)


def sgd_samples(W0: Tensor, X: Tensor, y: Tensor | None = None, *, teacher: Tensor | None = None,
                a_star: Tensor | None = None, c: float | Tensor, batch_size: int, epochs: int,
                generator: torch.Generator, widths: Sequence[int] | Tensor | None = None, a0: Tensor | None = None,
                train_output: bool = False, scale: float | Tensor = 1.0, tol: float = 0.0,
                diverge_loss: float = 1e6, threads: int | None = 1) -> SGDResult:
    """Minibatch SGD on the empirical squared loss ``L(W) = (1/n) Σ_n (f(x_n; W, a) − y_n)²``, batched over models.

    Every epoch each model draws its own uniformly random order of the ``n`` samples from ``generator`` and takes
    ``⌊n / batch_size⌋`` steps on consecutive minibatches (the last incomplete minibatch is dropped), with step
    ``η_b = c_b / m_b`` as in :func:`gd_population`. Zero rows stay zero (``relu'(0) = 0``), so zero-padded models
    of different widths can share the batch (``widths``). After every epoch the full empirical loss is recorded; a
    model with loss ``< tol`` is marked converged and frozen, one with a non-finite loss or loss
    ``> diverge_loss`` is marked diverged and frozen.

    Args:
        W0: initial first layers ``(B, m, d)``, float64.
        X: inputs ``(n, d)``, float64 (e.g. :func:`lmcnb.data.teacher_student_data`).
        y: targets ``(n,)``; or instead ``teacher`` ``T (M, d)`` (and ``a_star``) to use ``y = f*(X)``.
        c: step-size constant (number or ``(B,)``). batch_size: minibatch size in ``[1, n]``. epochs: ``>= 0``.
        generator: source of the sample orders.
        widths, a0, train_output, scale: as in :func:`gd_population`.
        tol, diverge_loss: stopping thresholds on the empirical loss.
        threads: torch intra-op threads during the run (restored afterwards), as in :func:`gd_population`.

    Returns:
        :class:`SGDResult`.
    """
    W0 = _check_f64("W0", W0, (3,))
    X, y = _check_samples(X, y, teacher, a_star, W0.shape[2], W0.device)
    B, n = W0.shape[0], X.shape[0]
    w = _check_widths(widths, W0)
    eta = _positive_per_model("c", c, B, W0.device) / w.to(F64)
    batch_size = check_int("batch_size", batch_size, 1)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= n = {n}, got {batch_size}")
    epochs = check_int("epochs", epochs, 0)
    g = check_generator("generator", generator)
    a = _check_a0(a0, train_output, W0)
    s = _check_scale(scale, B, W0.device)
    tol = check_real("tol", tol, 0.0)
    diverge_loss = check_real("diverge_loss", diverge_loss, 0.0, low_open=True)
    per_epoch = n // batch_size
    with torch.no_grad(), _intra_op_threads(threads):
        run = _Run(W0, a, {"eta": eta, "s": s}, epochs)
        for epoch in range(epochs + 1):
            loss = _empirical_loss(run.Wa, run.aa, run.per["s"], X, y)
            run.record(loss, epoch, tol, diverge_loss, last=epoch == epochs)
            if run.done:
                break
            order = torch.rand(run.idx.numel(), n, generator=g, dtype=F64, device=g.device).argsort(1).to(X.device)
            for k in range(per_epoch):
                idx = order[:, k * batch_size:(k + 1) * batch_size]
                _sgd_step(run.Wa, run.aa, run.per["s"], run.per["eta"], X[idx], y[idx], train_output)
    return SGDResult(W=run.W, a=run.a, widths=w, eta=eta, losses=torch.stack(run.history, 1), epochs=run.steps,
                     final_loss=run.loss, converged=run.converged, diverged=run.diverged)


# ---------------------------------------------------------------------------------------------------------------
# The global-minimum manifold 𝓜 and the exact LMC criterion
# ---------------------------------------------------------------------------------------------------------------

def _teacher_or_identity(teacher: object, M: int, d: int) -> Tensor:
    if teacher is None:
        return orthonormal_teacher(d, M)
    T = _check_teacher(teacher, d, "teacher")
    if T.shape[0] != M:
        raise ValueError(f"teacher must have shape ({M}, {d}), got {tuple(T.shape)}")
    _check_orthonormal(T, "teacher")
    return T


def _draw_types(m: int, M: int, dead_prob: float, g: torch.Generator, max_tries: int) -> Tensor:
    """Neuron types of SP(M, r) conditioned on every type being present: ``−1`` (dead) with probability ``r``,
    else uniform on ``0..M−1``; rejection sampling, ``(m,)`` int64."""
    for _ in range(max_tries):
        dead = torch.rand(m, generator=g, dtype=F64, device=g.device) < dead_prob
        types = torch.randint(0, M, (m,), generator=g, device=g.device)
        types = torch.where(dead, -1, types)
        if int(torch.unique(types[types >= 0]).numel()) == M:
            return types
    raise ValueError(f"could not draw a minimum with every teacher type present in {max_tries} tries "
                     f"(m={m}, M={M}, dead_prob={dead_prob}); lower dead_prob or raise m")


def sample_minimum(m: int, M: int, d: int, generator: torch.Generator, dead_prob: float = 0.0,
                   split: str = "equal", teacher: Tensor | None = None, max_tries: int = 10_000) -> Tensor:
    """A random global minimum ``W ∈ 𝓜`` of the seed model (fixed ``a = 1``, orthonormal teacher; notes §1.2).

    ``𝓜 = {W : every row is 0 or α w*_j with α > 0, and Σ_{i of type j} α_i = 1 for every j}``. Each row is dead
    with probability ``dead_prob`` and otherwise of a uniform type (the neuron-sparse distribution SP(M, r)),
    conditioned on every type being present (rejection sampling). The masses ``α_i`` of the ``n_j`` type-``j``
    neurons are ``1/n_j`` (``split="equal"``) or uniform on the simplex, Dirichlet(1, …, 1) (``"dirichlet"``).

    Args:
        m: student width ``>= M``. M, d: teacher width and input dimension (``M <= d``).
        generator: the randomness. dead_prob: ``r ∈ [0, 1)``. split: ``"equal"`` or ``"dirichlet"``.
        teacher: orthonormal teacher rows ``(M, d)``; default ``e_1, …, e_M``.
        max_tries: rejection-sampling budget.

    Returns:
        ``W (m, d)`` float64 with ``R(W) = 0`` up to rounding.
    """
    m, M, d = check_int("m", m, 1), check_int("M", M, 1), check_int("d", d, 1)
    if M > d:
        raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
    if m < M:
        raise ValueError(f"the minimum manifold needs m >= M (every type present), got m={m}, M={M}")
    g = check_generator("generator", generator)
    r = check_real("dead_prob", dead_prob, 0.0, 1.0)
    if r == 1.0:
        raise ValueError("dead_prob must be < 1 (every type must be present)")
    split = check_choice("split", split, SPLITS)
    T = _teacher_or_identity(teacher, M, d)
    types = _draw_types(m, M, r, g, check_int("max_tries", max_tries, 1))
    live = types >= 0
    if split == "equal":
        weight = torch.ones(m, dtype=F64, device=g.device)
    else:  # Dirichlet(1): normalised standard exponentials (floored so that no live row is exactly zero)
        u = torch.rand(m, generator=g, dtype=F64, device=g.device)
        weight = (-torch.log1p(-u)).clamp_min(torch.finfo(F64).tiny)
    weight = torch.where(live, weight, 0.0)
    mass_per_type = torch.zeros(M, dtype=F64, device=g.device).index_add_(0, types.clamp_min(0), weight)
    alpha = torch.where(live, weight / mass_per_type[types.clamp_min(0)], 0.0)
    return (alpha[:, None] * T.to(g.device)[types.clamp_min(0)]).to(T.device)


def neuron_types(W: Tensor, T: Tensor, tol: float = 1e-8, dead_tol: float = 0.0) -> Tensor:
    """Type of every neuron: ``−1`` if dead (``|w_i| <= dead_tol``), ``j`` if ``w_i`` is a positive multiple of
    ``w*_j`` up to ``tol`` (``|w_i − (w_i·ŵ*_j) ŵ*_j| <= tol |w_i|`` and ``w_i·w*_j > 0``).

    Args:
        W: ``(m, d)`` or ``(B, m, d)`` float64. T: teacher rows ``(M, d)`` (nonzero).
        tol: relative misalignment tolerance (the sine of the angle), in ``[0, 1)``.
        dead_tol: absolute norm below which a row counts as dead (``0``: exactly zero rows only).

    Returns:
        int64 ``(m,)`` or ``(B, m)``.

    Raises:
        ValueError: if a live row is aligned with no teacher direction (``W`` is not on ``𝓜``'s support).
    """
    W = _check_f64("W", W, (2, 3))
    T = _check_teacher(T, W.shape[-1])
    _check_device(("W", "T"), (W, T))
    tol = check_real("tol", tol, 0.0, 1.0)
    dead_tol = check_real("dead_tol", dead_tol, 0.0)
    t_norm = T.norm(dim=1)
    if bool((t_norm == 0).any()):
        raise ValueError("T has a zero row: it defines no direction")
    That = T / t_norm[:, None]
    norm = W.norm(dim=-1)
    proj = W @ That.T  # (…, m, M)
    # ‖w − (w·ŵ*_j) ŵ*_j‖ computed directly: sqrt(‖w‖² − proj²) loses half the digits to cancellation
    resid = (W[..., None, :] - proj[..., None] * That).norm(dim=-1)
    ok = (resid <= tol * norm[..., None]) & (proj > 0)
    dead = norm <= dead_tol
    types = torch.where(ok.any(-1), ok.to(torch.int64).argmax(-1), -2)
    types = torch.where(dead, -1, types)
    bad = types == -2
    if bool(bad.any()):
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"row {where} of W (norm {float(norm[where]):.3g}) is aligned with no teacher direction "
                         f"within tol={tol}: W is not on the minimum manifold's support")
    return types


def _type_counts(types: Tensor, M: int) -> tuple[Tensor, int]:
    """``n_j`` (number of type-``j`` neurons, ``(M,)``) and ``z`` (number of dead neurons)."""
    n = torch.bincount(types[types >= 0], minlength=M)
    return n, int((types == -1).sum())


def hall_lmc_criterion(W1: Tensor, W2: Tensor, T: Tensor, tol: float = 1e-8, dead_tol: float = 0.0) -> bool:
    """Exact LMC criterion for two minima on ``𝓜`` (notes §2.4): ``B_perm(W1, W2) = 0`` iff

        Σ_j (n1_j − n2_j)⁺ <= z2   and   Σ_j (n2_j − n1_j)⁺ <= z1,

    with ``n_j`` the number of type-``j`` neurons and ``z`` the number of dead ones (:func:`neuron_types`). Two rows
    interpolate inside ``𝓜`` iff they have the same type or one is dead (Lemma 7 of Lin–Li–Wu); Hall's marriage
    theorem turns "a permutation pairing only such rows exists" into the two inequalities.

    Args:
        W1, W2: minima ``(m, d)`` of equal width. T: teacher ``(M, d)``. tol, dead_tol: as in :func:`neuron_types`.

    Returns:
        ``True`` iff some permutation of ``W2``'s rows makes the linear path ``(1 − λ) W1 + λ W2`` stay in ``𝓜``.
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    M = _check_teacher(T, W1.shape[1]).shape[0]
    n1, z1 = _type_counts(neuron_types(W1, T, tol, dead_tol), M)
    n2, z2 = _type_counts(neuron_types(W2, T, tol, dead_tol), M)
    return int((n1 - n2).clamp_min(0).sum()) <= z2 and int((n2 - n1).clamp_min(0).sum()) <= z1


# ---------------------------------------------------------------------------------------------------------------
# Functional matching, interpolation and the linear barrier
# ---------------------------------------------------------------------------------------------------------------

def functional_cost(W1: Tensor, W2: Tensor, inputs: str = "gaussian", *, a1: Tensor | None = None,
                    a2: Tensor | None = None) -> Tensor:
    """Midpoint interpolation error of every neuron pair (notes §2.3, "functional matching"), ``(m1, m2)``:

        c_ik = E[(ā σ(u·x) − ½ a_i σ(w_i·x) − ½ a'_k σ(w'_k·x))²],   u = (w_i + w'_k)/2,  ā = (a_i + a'_k)/2,
             = ā² K(u,u) + ¼a_i² K(w,w) + ¼a'_k² K(w',w') − ā a_i K(u,w) − ā a'_k K(u,w') + ½ a_i a'_k K(w,w'),

    with ``w_i`` the rows of ``W1``, ``w'_k`` those of ``W2`` and output weights ``a = 1`` unless ``a1``/``a2`` are
    given (the trained-output variant, where the path interpolates ``(w, a)`` jointly). With ``a = 1``, ``c = 0`` (up
    to rounding, ``~1e-16 |w|²``) exactly for compatible pairs: same direction, or one row zero. Divided by ``d``
    for sphere inputs.

    Args:
        W1: ``(m1, d)``, W2: ``(m2, d)``, float64. inputs: ``"gaussian"`` or ``"sphere"``.
        a1, a2: output weights ``(m1,)`` and ``(m2,)`` (both or neither).
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape[1] != W2.shape[1]:
        raise ValueError(f"W1 and W2 must have the same input dimension, got {W1.shape[1]} and {W2.shape[1]}")
    factor = 1.0 / W1.shape[1] if check_choice("inputs", inputs, INPUTS) == "sphere" else 1.0
    a1, a2 = _check_output_pair(a1, a2, tuple(W1.shape[:1]), tuple(W2.shape[:1]), W1.device)
    # everything from the Gram matrix w·w' (memory (m1, m2), not (m1, m2, d)): u·w = ½(|w|² + w·w'), etc.
    G = W1 @ W2.T
    sq1, sq2 = (W1 * W1).sum(1)[:, None], (W2 * W2).sum(1)[None, :]
    nw, nw2 = sq1.sqrt(), sq2.sqrt()
    nu = (0.25 * (sq1 + 2.0 * G + sq2)).clamp_min(0.0).sqrt()
    k_uw = _kernel_from(0.5 * (sq1 + G), nu, nw)
    k_uw2 = _kernel_from(0.5 * (G + sq2), nu, nw2)
    k_ww2 = _kernel_from(G, nw, nw2)
    if a1 is None:
        c = 0.5 * nu ** 2 + 0.125 * nw ** 2 + 0.125 * nw2 ** 2 - k_uw - k_uw2 + 0.5 * k_ww2
    else:
        b1, b2 = a1[:, None], a2[None, :]
        am = 0.5 * (b1 + b2)
        c = (0.5 * am ** 2 * nu ** 2 + 0.125 * (b1 * nw) ** 2 + 0.125 * (b2 * nw2) ** 2
             - am * b1 * k_uw - am * b2 * k_uw2 + 0.5 * b1 * b2 * k_ww2)
    return factor * c


def _check_output_pair(a1: object, a2: object, shape1: tuple[int, ...], shape2: tuple[int, ...],
                       device: torch.device) -> tuple[Tensor | None, Tensor | None]:
    """Output weights of a pair: both ``None`` (fixed ``a = 1``) or both float64 of the given shapes."""
    if (a1 is None) != (a2 is None):
        raise ValueError("pass both output weights a1 and a2 (trained-output variant) or neither (fixed a = 1)")
    return _check_weights("a1", a1, shape1, device), _check_weights("a2", a2, shape2, device)


def _assignment(C: Tensor) -> Tensor:
    """Permutation ``p`` ``(m,)`` minimising ``Σ_i C[i, p[i]]`` for a square cost ``C (m, m)`` (Hungarian)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as err:  # pragma: no cover - scipy is a dependency
        raise ImportError("matching needs scipy (pip install scipy)") from err
    rows, cols = linear_sum_assignment(C.detach().cpu().numpy())
    p = torch.empty(C.shape[0], dtype=torch.int64)
    p[torch.as_tensor(rows)] = torch.as_tensor(cols, dtype=torch.int64)
    return p.to(C.device)


def functional_match(W1: Tensor, W2: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """Permutation ``p`` ``(m,)`` minimising ``Σ_i c_{i, p[i]}`` (:func:`functional_cost`, Hungarian algorithm);
    ``W2.index_select(0, p)`` (and ``a2[p]``) is aligned with ``W1`` (lmcnb's convention: the permutation applies
    to model b). ``a1``, ``a2``: output weights of the trained-output variant (both or neither)."""
    C = functional_cost(W1, W2, a1=a1, a2=a2)
    if W1.shape[0] != W2.shape[0]:
        raise ValueError(f"W1 and W2 must have the same width, got {W1.shape[0]} and {W2.shape[0]}")
    return _assignment(C)


def weight_match(W1: Tensor, W2: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """Weight matching (Ainsworth et al.'s Git Re-Basin for one hidden layer; notes §2.3): the permutation ``p``
    ``(m,)`` minimising ``Σ_i ‖θ_i − θ'_{p[i]}‖²`` over neurons ``θ_i = w_i`` (``(w_i, a_i)`` with trained output
    weights), by the Hungarian algorithm; ``W2.index_select(0, p)`` is aligned with ``W1``.

    It is blind to which pairs interpolate exactly: pairing a type-``j`` with a type-``k`` neuron and a dead with a
    dead one costs the same as the two compatible pairs (type ``j`` with dead, type ``k`` with dead), so it can leave
    a barrier that :func:`functional_match` removes.

    Args:
        W1, W2: ``(m, d)`` float64. a1, a2: output weights ``(m,)`` (both or neither).
    """
    W1 = _check_f64("W1", W1, (2,))
    W2 = _check_f64("W2", W2, (2,))
    _check_device(("W1", "W2"), (W1, W2))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    a1, a2 = _check_output_pair(a1, a2, tuple(W1.shape[:1]), tuple(W2.shape[:1]), W1.device)
    if a1 is not None:
        W1, W2 = torch.cat([W1, a1[:, None]], 1), torch.cat([W2, a2[:, None]], 1)
    return _assignment(torch.cdist(W1, W2) ** 2)


def _check_lambdas(lambdas: object, device: torch.device) -> Tensor:
    if lambdas is None:
        return torch.linspace(0.0, 1.0, 21, dtype=F64, device=device)
    if isinstance(lambdas, Tensor):
        lam = _check_f64("lambdas", lambdas, (1,))
    elif isinstance(lambdas, Sequence) and len(lambdas) > 0:
        lam = torch.tensor([check_real(f"lambdas[{i}]", v) for i, v in enumerate(lambdas)], dtype=F64)
    else:
        raise TypeError(f"lambdas must be a non-empty 1-D float64 tensor or sequence of numbers, got "
                        f"{type(lambdas).__name__}")
    if bool((lam < 0).any()) or bool((lam > 1).any()):
        raise ValueError(f"lambdas must lie in [0, 1], got {lam.tolist()}")
    return lam.to(device)


def _check_pair(W1: object, W2: object) -> tuple[Tensor, Tensor]:
    W1 = _check_f64("W1", W1, (2, 3))
    W2 = _check_f64("W2", W2, (2, 3))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape, got {tuple(W1.shape)} and {tuple(W2.shape)}")
    _check_device(("W1", "W2"), (W1, W2))
    return W1, W2


def _check_path_outputs(a1: object, a2: object, W1: Tensor) -> tuple[Tensor | None, Tensor | None]:
    return _check_output_pair(a1, a2, tuple(W1.shape[:-1]), tuple(W1.shape[:-1]), W1.device)


def interpolation_loss(W1: Tensor, W2: Tensor, T: Tensor, lambdas: Tensor | Sequence[float] | None = None,
                       inputs: str = "gaussian", *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """``R(θ_λ)`` along the linear path ``θ_λ = (1 − λ) W1 + λ W2`` (fixed ``a = 1``), vectorised over ``λ``; with
    output weights ``a1``, ``a2`` the path is ``θ_λ = ((1 − λ) W1 + λ W2, (1 − λ) a1 + λ a2)``.

    Args:
        W1, W2: ``(m, d)`` or batches ``(B, m, d)`` (pairs), float64. T: teacher ``(M, d)``.
        lambdas: ``(L,)`` values in ``[0, 1]``; default 21 equispaced points. inputs: as in :func:`population_loss`.
        a1, a2: output weights ``(m,)`` or ``(B, m)`` (both or neither; trained-output variant).

    Returns:
        ``(L,)``, or ``(B, L)`` for batched pairs.
    """
    W1, W2 = _check_pair(W1, W2)
    a1, a2 = _check_path_outputs(a1, a2, W1)
    lam = _check_lambdas(lambdas, W1.device)
    lam_b = lam[:, None, None]
    m, d = W1.shape[-2:]
    theta = (1.0 - lam_b) * W1[..., None, :, :] + lam_b * W2[..., None, :, :]  # (…, L, m, d)
    a = None
    if a1 is not None:
        a = ((1.0 - lam[:, None]) * a1[..., None, :] + lam[:, None] * a2[..., None, :]).reshape(-1, m)
    R = population_loss(theta.reshape(-1, m, d), T, a=a, inputs=inputs)
    return R.reshape(*W1.shape[:-2], lam.numel())


def barrier_linear(W1: Tensor, W2: Tensor, T: Tensor, lambdas: Tensor | Sequence[float] | None = None,
                   inputs: str = "gaussian", *, a1: Tensor | None = None, a2: Tensor | None = None) -> Tensor:
    """Loss barrier ``B(W1, W2) = max_λ [R(θ_λ) − ((1 − λ) R(W1) + λ R(W2))]`` over the grid ``lambdas`` (notes
    §2.1, lmcnb's convention ``θ_λ = (1 − λ) W1 + λ W2``); no permutation is applied (see
    :func:`functional_match`, :func:`weight_match`, :func:`pair_barriers`). ``a1``, ``a2``: output weights
    (trained-output variant, interpolated with ``W``). General models: :mod:`lmcnb.barrier`.

    Returns:
        0-D tensor, or ``(B,)`` for batched pairs ``(B, m, d)``.
    """
    W1, W2 = _check_pair(W1, W2)
    lam = _check_lambdas(lambdas, W1.device)
    curve = interpolation_loss(W1, W2, T, lam, inputs, a1=a1, a2=a2)
    ends = interpolation_loss(W1, W2, T, torch.tensor([0.0, 1.0], dtype=F64, device=W1.device), inputs,
                              a1=a1, a2=a2)
    linear = (1.0 - lam) * ends[..., :1] + lam * ends[..., 1:]
    return (curve - linear).amax(-1)


# ---------------------------------------------------------------------------------------------------------------
# Sharpness
# ---------------------------------------------------------------------------------------------------------------

def sharpness_population(W: Tensor, T: Tensor, a: Tensor | None = None, a_star: Tensor | None = None,
                         scale: float = 1.0, inputs: str = "gaussian", train_output: bool = False,
                         n_iter: int = 1000, tol: float = 1e-6, generator: torch.Generator | None = None
                         ) -> Sharpness:
    """Sharpness ``λ_max(∇²R)`` of the population loss at ``W`` (notes T3): power iteration on Hessian-vector
    products by double backward through the closed form (:func:`lmcnb.diagnostics.sharpness`), float64.

    The Hessian is taken over the **live** rows only (``w_i ≠ 0``; with ``train_output`` over ``(W_live, a_live)``):
    a dead row stays exactly zero under GD (``relu'(0) = 0``), so GD's linear stability (``η λ_max <= 2``) involves
    only the live coordinates, and ``R`` is not twice differentiable at a zero row anyway.

    Args:
        W: ``(m, d)`` float64 with at least one nonzero row. T, a, a_star, scale, inputs: as in
            :func:`population_loss`. train_output: include the output weights ``a`` in the Hessian.
        n_iter, tol, generator: power-iteration budget, relative eigen-residual tolerance and start-vector source
            (default seed 0), passed to :func:`lmcnb.diagnostics.sharpness`.

    Returns:
        :class:`lmcnb.diagnostics.Sharpness` (``eigenvalue``, unit ``vector`` over the live coordinates,
        ``n_iter``, ``converged``).
    """
    from .diagnostics import sharpness

    W = _check_f64("W", W, (2,))
    check_bool("train_output", train_output)
    p = _problem(W, T, a, a_star, scale, inputs)
    live = (W != 0).any(1)
    if not bool(live.any()):
        raise ValueError("W has no live (nonzero) row: the sharpness of the live coordinates is undefined")
    W_live, a_live = W[live].detach(), p.a[0][live].detach()
    T_, a_s, sc = p.T.detach(), p.a_star.detach(), float(p.s)

    if train_output:
        return sharpness(lambda Wl, al: population_loss(Wl, T_, al, a_s, sc, inputs), (W_live, a_live),
                         n_iter=n_iter, tol=tol, generator=generator)
    return sharpness(lambda Wl: population_loss(Wl, T_, a_live, a_s, sc, inputs), W_live,
                     n_iter=n_iter, tol=tol, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# The formal model of chapters 2–4: one documented configuration
# ---------------------------------------------------------------------------------------------------------------

OUTPUTS = ("fixed", "trained")
BARRIER_KINDS = ("identity", "weight", "functional", "perm")
# λ-chunk size of the path evaluation: at most this many (λ, i, k) kernel entries at once (bounded memory at m = 4096)
_PATH_ENTRIES = 1 << 25


@dataclass(frozen=True)
class PairBarriers:
    """Barriers of ``P`` pairs of solutions (or one pair: 0-D tensors), float64 ``(P,)``.

    Attributes:
        identity: ``B(θ_a, θ_b)`` without permutation.
        weight: ``B(θ_a, π_WM(θ_b))`` after weight matching (:func:`weight_match`).
        functional: ``B(θ_a, π_FM(θ_b))`` after functional matching (:func:`functional_match`).
        perm: the barrier modulo permutation, ``min(weight, functional)`` (notes §2.2–2.3).
        weight_perm, functional_perm: the permutations ``(P, m)`` int64 (applied to model b).
    """

    identity: Tensor
    weight: Tensor
    functional: Tensor
    perm: Tensor
    weight_perm: Tensor
    functional_perm: Tensor


def _path_barrier(W1: Tensor, W2: Tensor, T: Tensor, lam: Tensor, a1: Tensor | None, a2: Tensor | None,
                  inputs: str) -> Tensor:
    """:func:`barrier_linear` of one pair ``(m, d)``, with the λ grid evaluated in chunks of bounded memory."""
    m = W1.shape[0]
    per = max(1, _PATH_ENTRIES // (m * (m + T.shape[0])))
    ends = interpolation_loss(W1, W2, T, torch.tensor([0.0, 1.0], dtype=F64, device=W1.device), inputs, a1=a1, a2=a2)
    curve = torch.cat([interpolation_loss(W1, W2, T, lam[i:i + per], inputs, a1=a1, a2=a2)
                       for i in range(0, lam.numel(), per)])
    return (curve - ((1.0 - lam) * ends[0] + lam * ends[1])).amax()


def pair_barriers(W1: Tensor, W2: Tensor, T: Tensor, *, a1: Tensor | None = None, a2: Tensor | None = None,
                  lambdas: Tensor | Sequence[float] | None = None, inputs: str = "gaussian") -> PairBarriers:
    """Barrier without permutation, after weight matching, after functional matching, and modulo permutation
    (their minimum) for one pair ``(m, d)`` or ``P`` pairs ``(P, m, d)`` of solutions (notes §2.1–2.3).

    Args:
        W1, W2: first layers ``(m, d)`` or ``(P, m, d)``, float64. T: teacher ``(M, d)``.
        a1, a2: output weights ``(m,)`` / ``(P, m)`` (trained-output variant; both or neither).
        lambdas: the λ grid (default 21 points). inputs: ``"gaussian"`` or ``"sphere"``.

    Returns:
        :class:`PairBarriers` (0-D tensors for one pair, ``(P,)`` for a batch).
    """
    W1, W2 = _check_pair(W1, W2)
    T = _check_teacher(T, W1.shape[-1])
    _check_device(("W1", "T"), (W1, T))
    a1, a2 = _check_path_outputs(a1, a2, W1)
    lam = _check_lambdas(lambdas, W1.device)
    inputs = check_choice("inputs", inputs, INPUTS)
    batched = W1.ndim == 3
    Wa, Wb = (W1, W2) if batched else (W1[None], W2[None])
    aa, ab = (None, None) if a1 is None else ((a1, a2) if batched else (a1[None], a2[None]))
    out: dict[str, list[Tensor]] = {k: [] for k in ("identity", "weight", "functional", "wp", "fp")}
    for i in range(Wa.shape[0]):
        w1, w2 = Wa[i], Wb[i]
        o1, o2 = (None, None) if aa is None else (aa[i], ab[i])
        out["identity"].append(_path_barrier(w1, w2, T, lam, o1, o2, inputs))
        for kind, key, match in (("weight", "wp", weight_match), ("functional", "fp", functional_match)):
            p = match(w1, w2, a1=o1, a2=o2)
            out[key].append(p)
            out[kind].append(_path_barrier(w1, w2.index_select(0, p), T, lam, o1,
                                           None if o2 is None else o2.index_select(0, p), inputs))
    st = {k: torch.stack(v) for k, v in out.items()}
    if not batched:
        st = {k: v[0] for k, v in st.items()}
    return PairBarriers(identity=st["identity"], weight=st["weight"], functional=st["functional"],
                        perm=torch.minimum(st["weight"], st["functional"]), weight_perm=st["wp"],
                        functional_perm=st["fp"])


@dataclass(frozen=True)
class Solutions:
    """Trained students of a :class:`TeacherStudent`, one per (width, seed), unpadded.

    Attributes:
        model: the configuration that trained them.
        W: first layers, ``W[b]`` of shape ``(widths[b], d)``, float64. a: output weights ``(widths[b],)`` (all
            ones for ``output="fixed"``).
        widths, seeds: ``(B,)`` tuples of ints. final_loss: ``R`` at the end ``(B,)``. steps: GD steps ``(B,)``.
        converged: ``R < tol`` ``(B,)`` bool. stationary: stopped at a critical point with ``R >= tol`` (``grad_tol``;
            every ``m < M`` student). diverged: ``(B,)`` bool.
    """

    model: TeacherStudent
    W: tuple[Tensor, ...]
    a: tuple[Tensor, ...]
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    final_loss: Tensor
    steps: Tensor
    converged: Tensor
    stationary: Tensor
    diverged: Tensor

    def __len__(self) -> int:
        return len(self.W)

    def index(self, width: int, seed: int) -> int:
        """Position ``b`` of the student of this width and seed (``ValueError`` if absent)."""
        for b, (w, s) in enumerate(zip(self.widths, self.seeds)):
            if w == width and s == seed:
                return b
        raise ValueError(f"no student with width={width}, seed={seed} (widths {sorted(set(self.widths))}, "
                         f"seeds {sorted(set(self.seeds))})")

    def get(self, width: int, seed: int) -> tuple[Tensor, Tensor]:
        """``(W (m, d), a (m,))`` of the student of this width and seed."""
        b = self.index(width, seed)
        return self.W[b], self.a[b]

    def live(self, tol: float = 0.0) -> Tensor:
        """Number of live neurons ``|a_i| |w_i| > tol`` of every student ``(B,)`` int64."""
        tol = check_real("tol", tol, 0.0)
        return torch.tensor([int(((a.abs() * W.norm(dim=1)) > tol).sum()) for W, a in zip(self.W, self.a)])


@dataclass(frozen=True)
class BarrierTable:
    """Barriers of pairs of solutions, one row per pair (see :class:`PairBarriers` for the kinds).

    Attributes:
        widths, seeds_a, seeds_b: ``(P,)`` tuples (for sampled minima the seeds number the pairs' draws).
        identity, weight, functional, perm: ``(P,)`` float64 tensors.
        loss_a, loss_b: ``R`` at the two ends ``(P,)``. converged: both ends reached ``R < tol`` ``(P,)`` bool.
        solutions: the trained students (``None`` for sampled minima).
    """

    widths: tuple[int, ...]
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    identity: Tensor
    weight: Tensor
    functional: Tensor
    perm: Tensor
    loss_a: Tensor
    loss_b: Tensor
    converged: Tensor
    solutions: Solutions | None = None

    def values(self, kind: str, width: int | None = None) -> Tensor:
        """Barriers of one kind (``identity``, ``weight``, ``functional``, ``perm``), optionally of one width."""
        kind = check_choice("kind", kind, BARRIER_KINDS)
        v = getattr(self, kind)
        if width is None:
            return v
        mask = torch.tensor([w == width for w in self.widths])
        if not bool(mask.any()):
            raise ValueError(f"no pair of width {width}; widths are {sorted(set(self.widths))}")
        return v[mask.to(v.device)]

    def to_frame(self):  # -> pandas.DataFrame
        """One row per pair: width, seed_a, seed_b, the four barriers, loss_a, loss_b, converged."""
        import pandas as pd

        cols = {"width": list(self.widths), "seed_a": list(self.seeds_a), "seed_b": list(self.seeds_b)}
        for k in (*BARRIER_KINDS, "loss_a", "loss_b"):
            cols[k] = getattr(self, k).detach().cpu().numpy()
        cols["converged"] = self.converged.detach().cpu().numpy()
        return pd.DataFrame(cols)

    def summary(self, kinds: Sequence[str] = ("identity", "perm"), lo: float = 0.25, hi: float = 0.75):
        """Per width: median and the ``lo``/``hi`` quantiles over pairs of each kind (columns ``<kind>_median``,
        ``<kind>_lo``, ``<kind>_hi``), plus ``pairs``. Returns a pandas DataFrame indexed by width."""
        import pandas as pd

        lo = check_real("lo", lo, 0.0, 1.0)
        hi = check_real("hi", hi, lo, 1.0)
        kinds = [check_choice("kind", k, BARRIER_KINDS) for k in kinds]
        rows = []
        for w in sorted(set(self.widths)):
            row: dict[str, float] = {"width": w, "pairs": len(self.values(kinds[0], w))}
            for k in kinds:
                v = self.values(k, w).detach().cpu().to(F64)
                row[f"{k}_median"] = float(v.median()) if v.numel() % 2 else float(v.quantile(0.5))
                row[f"{k}_lo"], row[f"{k}_hi"] = float(v.quantile(lo)), float(v.quantile(hi))
            rows.append(row)
        return pd.DataFrame(rows).set_index("width")


def _width_groups(widths: Sequence[int], small: int = 16) -> list[list[int]]:
    """Distinct widths, ascending, grouped for padded batching: a group's largest width is at most
    ``max(small, 2 × its smallest)`` (padding costs ≤ 4× where it matters; tiny widths share one batch)."""
    groups: list[list[int]] = []
    for w in sorted(set(widths)):
        if groups and w <= max(small, 2 * groups[-1][0]):
            groups[-1].append(w)
        else:
            groups.append([w])
    return groups


def _check_int_list(name: str, values: object, minimum: int) -> list[int]:
    if isinstance(values, int) and not isinstance(values, bool):
        return [check_int(name, values, minimum)]
    if isinstance(values, Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise TypeError(f"{name} must be an int or a non-empty sequence of ints, got {type(values).__name__}")
    return [check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values)]


@dataclass(frozen=True)
class TeacherStudent:
    """The formal model of chapters 2–4 (Zhan, Li, Wu 2025 as reconstructed in the notes, §1.2–1.3), in one place.

    Teacher ``f*(x) = Σ_{j≤M} σ(w*_j·x)`` with orthonormal ``w*_j = e_j``; student ``f(x) = Σ_{i≤m} a_i σ(w_i·x)``
    with ``a = 1`` fixed (``output="fixed"``, the seed model) or trained from a small init (``"trained"``);
    inputs ``x ~ N(0, I_d)`` (or the unit sphere); exact population squared loss by the arc-cosine kernel
    (float64); full-batch GD from ``w_i ~ N(0, init_scale²/d I_d)`` (``a_i ~ N(0, init_scale²)``) with step
    ``η = c/m`` until ``R < tol`` (converged), ``max |∂R/∂θ| < grad_tol`` (stationary: a critical point that is not
    a global minimum, e.g. every ``m < M`` student) or ``steps``. Two solutions = two seeds; pairs are seeds
    ``(first_seed + 2k, first_seed + 2k + 1)``. Barrier = the linear barrier on a grid of ``n_lambdas`` points;
    modulo permutation = the minimum over weight matching and functional matching (:func:`pair_barriers`).

    The student of width ``m`` and seed ``s`` starts from ``torch.Generator().manual_seed(1_000_003 · m + s)``,
    so every (width, seed) is reproducible on its own and independent of the other widths and of the batching.

    Typical cost (project CPU, one thread, ``d = 8, M = 4, c = 2``): ``m = 5…8`` converge in ≈ 3–8k steps, ``m = 32``
    in ≈ 15–18k; 16 models at ``m = 32`` ≈ 14 s; ``m < M`` stops at stationarity.
    """

    d: int = 8
    M: int = 4
    output: str = "fixed"
    init_scale: float = 0.1
    c: float = 2.0
    steps: int = 40_000
    tol: float = 1e-10
    grad_tol: float = 1e-9
    inputs: str = "gaussian"
    check_every: int = 50
    n_lambdas: int = 21

    def __post_init__(self) -> None:
        d, M = check_int("d", self.d, 1), check_int("M", self.M, 1)
        if M > d:
            raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
        check_choice("output", self.output, OUTPUTS)
        check_real("init_scale", self.init_scale, 0.0, low_open=True)
        check_real("c", self.c, 0.0, low_open=True)
        check_int("steps", self.steps, 0)
        check_real("tol", self.tol, 0.0)
        check_real("grad_tol", self.grad_tol, 0.0)
        check_choice("inputs", self.inputs, INPUTS)
        check_int("check_every", self.check_every, 1)
        check_int("n_lambdas", self.n_lambdas, 2)

    @property
    def trained_output(self) -> bool:
        return self.output == "trained"

    def teacher(self, device: torch.device | str | None = None) -> Tensor:
        """``T = (e_1, …, e_M)`` ``(M, d)`` float64."""
        return orthonormal_teacher(self.d, self.M).to(_device(device))

    def lambdas(self, device: torch.device | str | None = None) -> Tensor:
        """The λ grid ``(n_lambdas,)`` of the barrier."""
        return torch.linspace(0.0, 1.0, self.n_lambdas, dtype=F64, device=_device(device))

    def init(self, width: int, seed: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Initial ``(W_0 (m, d), a_0 (m,))`` of the student of this width and seed (``a_0 = 1`` if fixed)."""
        m, s = check_int("width", width, 1), check_int("seed", seed, 0)
        g = torch.Generator().manual_seed(1_000_003 * m + s)
        W = small_init(1, m, self.d, self.init_scale, generator=g)[0]
        a = small_output_init(1, m, self.init_scale, generator=g)[0] if self.trained_output else \
            torch.ones(m, dtype=F64)
        dev = _device(device)
        return W.to(dev), a.to(dev)

    def train(self, widths: int | Sequence[int], seeds: int | Sequence[int], *,
              device: torch.device | str | None = None, threads: int | None = 1) -> Solutions:
        """Train one student per (width, seed) by exact population GD, batched: seeds and nearby widths share a
        zero-padded batch (:func:`gd_population`; a padded model follows the unpadded trajectory).

        Args:
            widths: ``m`` or a sequence of widths. seeds: a seed or a sequence of seeds (``>= 0``).
            device: where to train (default CPU). threads: torch threads during training (``None``: unchanged).

        Returns:
            :class:`Solutions` ordered width-major (all seeds of the first width, then the next width, …).
        """
        ws = _check_int_list("widths", widths, 1)
        ss = _check_int_list("seeds", seeds, 0)
        if len(set(ss)) != len(ss):
            raise ValueError(f"seeds must be distinct, got {ss}")
        dev = _device(device)
        T = self.teacher(dev)
        done: dict[tuple[int, int], tuple[Tensor, Tensor, float, int, bool, bool, bool]] = {}
        for group in _width_groups(ws):
            keys = [(w, s) for w in group for s in ss]
            inits = [self.init(w, s, dev) for w, s in keys]
            W0, widths_t = pad_rows([W for W, _ in inits])
            a0 = None
            if self.trained_output:
                a0 = torch.zeros(W0.shape[:2], dtype=F64, device=dev)
                for b, (_, a) in enumerate(inits):
                    a0[b, :a.shape[0]] = a
            r = gd_population(W0, T, c=self.c, steps=self.steps, tol=self.tol, widths=widths_t, a0=a0,
                              train_output=self.trained_output, inputs=self.inputs, check_every=self.check_every,
                              threads=threads, grad_tol=self.grad_tol)
            for b, (w, s) in enumerate(keys):
                done[(w, s)] = (r.W[b, :w].clone(), r.a[b, :w].clone(), float(r.final_loss[b]), int(r.steps[b]),
                                bool(r.converged[b]), bool(r.stationary[b]), bool(r.diverged[b]))
        order = [(w, s) for w in dict.fromkeys(ws) for s in ss]
        col = list(zip(*(done[k] for k in order)))
        return Solutions(model=self, W=tuple(col[0]), a=tuple(col[1]), widths=tuple(w for w, _ in order),
                         seeds=tuple(s for _, s in order), final_loss=torch.tensor(col[2], dtype=F64),
                         steps=torch.tensor(col[3], dtype=torch.int64), converged=torch.tensor(col[4]),
                         stationary=torch.tensor(col[5]), diverged=torch.tensor(col[6]))

    def barriers(self, W1: Tensor, W2: Tensor, a1: Tensor | None = None, a2: Tensor | None = None) -> PairBarriers:
        """:func:`pair_barriers` with this configuration's teacher, λ grid and inputs. With ``output="fixed"``
        pass no output weights (or all ones, which are then ignored)."""
        W1 = _check_f64("W1", W1, (2, 3))
        if not self.trained_output:
            for name, a in (("a1", a1), ("a2", a2)):
                if a is not None and not bool((a == 1).all()):
                    raise ValueError(f"{name} must be all ones (or None) for output='fixed'")
            a1 = a2 = None
        elif a1 is None or a2 is None:
            raise ValueError("output='trained' needs the output weights a1 and a2")
        return pair_barriers(W1, W2, self.teacher(W1.device), a1=a1, a2=a2, lambdas=self.lambdas(W1.device),
                             inputs=self.inputs)

    def pair_table(self, solutions: Solutions, pairs: Sequence[tuple[int, int]] | None = None) -> BarrierTable:
        """Barriers of pairs of ``solutions`` at every width. ``pairs``: seed pairs ``(s_a, s_b)``; default the
        consecutive seeds of ``solutions`` in order, ``(seeds[0], seeds[1]), (seeds[2], seeds[3]), …``."""
        if not isinstance(solutions, Solutions):
            raise TypeError(f"solutions must be a Solutions, got {type(solutions).__name__}")
        if solutions.model != self:
            raise ValueError("solutions were trained with a different configuration")
        seeds = list(dict.fromkeys(solutions.seeds))
        if pairs is None:
            pairs = [(seeds[2 * k], seeds[2 * k + 1]) for k in range(len(seeds) // 2)]
        if len(pairs) == 0:
            raise ValueError("no pairs: give at least two seeds")
        rows: list[tuple[int, int, int]] = []
        for w in dict.fromkeys(solutions.widths):
            rows.extend((w, int(sa), int(sb)) for sa, sb in pairs)
        idx = [(solutions.index(w, sa), solutions.index(w, sb)) for w, sa, sb in rows]
        vals: dict[str, list[Tensor]] = {k: [] for k in BARRIER_KINDS}
        for ia, ib in idx:
            a1, a2 = (solutions.a[ia], solutions.a[ib]) if self.trained_output else (None, None)
            pb = self.barriers(solutions.W[ia], solutions.W[ib], a1, a2)
            for k in BARRIER_KINDS:
                vals[k].append(getattr(pb, k).cpu())
        ia_t, ib_t = torch.tensor([i for i, _ in idx]), torch.tensor([j for _, j in idx])
        return BarrierTable(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
                            seeds_b=tuple(r[2] for r in rows),
                            **{k: torch.stack(v) for k, v in vals.items()},
                            loss_a=solutions.final_loss[ia_t], loss_b=solutions.final_loss[ib_t],
                            converged=solutions.converged[ia_t] & solutions.converged[ib_t], solutions=solutions)

    def barrier_sweep(self, widths: int | Sequence[int], n_pairs: int, *, first_seed: int = 0,
                      device: torch.device | str | None = None, threads: int | None = 1) -> BarrierTable:
        """Train seeds ``first_seed, …, first_seed + 2 n_pairs − 1`` at every width (:meth:`train`) and return the
        barriers of the pairs ``(first_seed + 2k, first_seed + 2k + 1)`` (:meth:`pair_table`)."""
        n_pairs = check_int("n_pairs", n_pairs, 1)
        first_seed = check_int("first_seed", first_seed, 0)
        sol = self.train(widths, list(range(first_seed, first_seed + 2 * n_pairs)), device=device, threads=threads)
        return self.pair_table(sol)

    def sample_minima(self, width: int, n: int, *, generator: torch.Generator, dead_prob: float = 0.0,
                      split: str = "equal") -> Tensor:
        """``n`` independent global minima ``(n, m, d)`` from the minimum manifold (:func:`sample_minimum`)."""
        if self.trained_output:
            raise ValueError("the minimum manifold of sample_minimum is that of the fixed-output model "
                             "(output='fixed')")
        n = check_int("n", n, 1)
        T = self.teacher(generator.device if isinstance(generator, torch.Generator) else None)
        return torch.stack([sample_minimum(width, self.M, self.d, generator, dead_prob, split, teacher=T)
                            for _ in range(n)])

    def manifold_sweep(self, widths: int | Sequence[int], n_pairs: int, *, dead_prob: float = 0.0,
                       split: str = "equal", seed: int = 0) -> BarrierTable:
        """The training-free view: ``n_pairs`` pairs of independent minima sampled from the minimum manifold at
        every width (``m >= M``; :func:`sample_minimum` with ``dead_prob`` and ``split``), and their barriers.
        Width ``m`` draws from ``torch.Generator().manual_seed(1_000_003 · m + seed)``; the table's seeds number
        the draws ``(2k, 2k + 1)``."""
        ws = _check_int_list("widths", widths, self.M)
        n_pairs = check_int("n_pairs", n_pairs, 1)
        seed = check_int("seed", seed, 0)
        rows, vals, losses = [], {k: [] for k in BARRIER_KINDS}, []
        T = self.teacher()
        for w in ws:
            g = torch.Generator().manual_seed(1_000_003 * w + seed)
            Ws = self.sample_minima(w, 2 * n_pairs, generator=g, dead_prob=dead_prob, split=split)
            pb = self.barriers(Ws[0::2], Ws[1::2])
            for k in BARRIER_KINDS:
                vals[k].append(getattr(pb, k))
            losses.append(population_loss(Ws, T, inputs=self.inputs).reshape(n_pairs, 2))
            rows.extend((w, 2 * k, 2 * k + 1) for k in range(n_pairs))
        L = torch.cat(losses)
        return BarrierTable(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
                            seeds_b=tuple(r[2] for r in rows), **{k: torch.cat(v) for k, v in vals.items()},
                            loss_a=L[:, 0], loss_b=L[:, 1], converged=torch.ones(L.shape[0], dtype=torch.bool))


def _device(device: object) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    raise TypeError(f"device must be a torch.device, a string or None, got {type(device).__name__}")
