"""The arc-cosine kernel, the closed-form population loss and its gradient, the population problem as one value
(:class:`Population`), and the population sharpness."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..._validate import check_bool, check_choice, check_real, moved_keywords
from ._inputs import F64, INPUTS, TWO_PI, _JPP_FLOOR, _check_device, _check_f64, _check_scale, _check_teacher, _check_weights

if TYPE_CHECKING:
    from ...diagnostics import Sharpness


# ---------------------------------------------------------------------------------------------------------------
# Arc-cosine kernel
# ---------------------------------------------------------------------------------------------------------------

def _angle(t: Tensor, sin: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """``φ = arccos t`` for ``t ∈ [−1, 1]``, computed as ``atan2(sin φ, t)`` with ``sin φ = √((1 − t)(1 + t))``
    (pass ``sin`` if it is at hand); same value as ``torch.arccos`` to about one ulp, same shape as ``t``.

    Why not ``torch.arccos``: torch's MKL build evaluates ``arccos`` (like ``exp``, ``log``, ``sin``) in MKL's
    vector math library, whose code path follows the CPU's vendor (it changed with ``MKL_CBWR`` on an Intel
    AVX-512 host and not on an AMD EPYC one), and gradient descent amplifies last-bit differences; ``atan2`` is an
    ATen kernel, fixed by the pinned ``ATEN_CPU_CAPABILITY`` on every x86-64 CPU (README, "Which machines
    reproduce the stored outputs")."""
    if sin is None:
        sin = ((1.0 - t) * (1.0 + t)).sqrt()
    return torch.atan2(sin, t, out=out)


def _j_value(t: Tensor) -> Tensor:
    """``J(t) = sin φ + (π − φ) cos φ`` with ``t = cos φ ∈ [−1, 1]``; ``sin φ = √((1 − t)(1 + t))`` is accurate
    near ``t = ±1`` (``1 − t`` is exact there), so ``sin φ − φ cos φ = O(φ³)`` stays consistent."""
    sin = ((1.0 - t) * (1.0 + t)).sqrt()
    return sin + (math.pi - _angle(t, sin)) * t


class _JPrime(torch.autograd.Function):
    """``J'(t) = π − arccos t`` with derivative ``J''(t) = 1/√(1 − t²)``, floored at ``1 − t² ≥ 1e-20``.

    ``J''`` diverges at ``t = ±1`` (parallel or antiparallel rows, e.g. two neurons of one type), but it only
    enters the Hessian multiplied by ``∇t ∇tᵀ = O(sin² φ)``, so the true contribution ``O(sin φ)`` vanishes there.
    The floor keeps autograd finite (no ``inf · 0``); it changes the Hessian by at most ``1e-10 |v|/|u|``.
    """

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(t)
        return math.pi - _angle(t)

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


@dataclass(frozen=True)
class Population:
    """The exact-population problem the students are trained on: teacher, its output weights, the students' output
    scale and the input distribution (one value for :func:`gd_population` / :class:`GD`,
    :func:`sharpness_population`).

    Attributes:
        T: teacher first layer ``(M, d)``, float64, rows ``w*_j``.
        a_star: teacher output weights ``a* (M,)`` on ``T``'s device; ``None`` means all ones.
        scale: student output scale ``s > 0`` (``1`` in the seed model, ``1/m`` mean-field): a number, or a
            float64 ``(B,)`` tensor, one per model of a batch (checked against ``B`` when it is used).
        inputs: ``"gaussian"`` (``x ~ N(0, I_d)``) or ``"sphere"`` (``x ~ Unif(S^{d−1})``; ``R`` divided by ``d``).
    """

    T: Tensor
    a_star: Tensor | None = None
    scale: float | Tensor = 1.0
    inputs: str = "gaussian"

    def __post_init__(self) -> None:
        T = _check_teacher(self.T)
        _check_weights("a_star", self.a_star, (T.shape[0],), T.device)
        if isinstance(self.scale, Tensor):
            s = _check_f64("scale", self.scale, (1,))
            if not bool((s > 0).all()):
                raise ValueError("scale must be positive")
        else:
            check_real("scale", self.scale, 0.0, low_open=True)
        check_choice("inputs", self.inputs, INPUTS)

    @staticmethod
    def of(problem: object) -> Population:
        """``problem`` itself if it is a :class:`Population`; a bare teacher tensor ``T (M, d)`` means
        ``Population(T)``."""
        if isinstance(problem, Population):
            return problem
        if isinstance(problem, Tensor):
            return Population(problem)
        raise TypeError(f"problem must be a Population or a teacher tensor T (M, d), got {type(problem).__name__}")


#: Where the keywords of the population problem went (``Population``'s fields).
_POPULATION_KEYWORDS = {k: f"Population({k}=…)" for k in ("a_star", "scale", "inputs")}


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
    ``sin φ = √((1 − t)(1 + t))`` and ``φ = arccos t = atan2(sin φ, t)`` (:func:`_angle`) come from the same
    ``t = cos φ``, so their rounding errors cancel for (nearly) parallel rows.
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
    phi = _angle(t, sin, out=phi)
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
# Sharpness
# ---------------------------------------------------------------------------------------------------------------

@moved_keywords(_POPULATION_KEYWORDS)
def sharpness_population(W: Tensor, problem: Population | Tensor, a: Tensor | None = None, *,
                         train_output: bool = False, n_iter: int = 1000, tol: float = 1e-6,
                         generator: torch.Generator | None = None) -> Sharpness:
    """Sharpness ``λ_max(∇²R)`` of the population loss at ``W`` (notes T3): power iteration on Hessian-vector
    products by double backward through the closed form (:func:`lmcnb.diagnostics.sharpness`), float64.

    The Hessian is taken over the **live** rows only (``w_i ≠ 0``; with ``train_output`` over ``(W_live, a_live)``):
    a dead row stays exactly zero under GD (``relu'(0) = 0``), so GD's linear stability (``η λ_max <= 2``) involves
    only the live coordinates, and ``R`` is not twice differentiable at a zero row anyway.

    Args:
        W: ``(m, d)`` float64 with at least one nonzero row.
        problem: the :class:`Population` (teacher ``T (M, d)``, ``a*``, a numeric ``scale``, inputs), or a bare
            teacher ``T`` (``Population(T)``). The old keywords ``a_star``, ``scale``, ``inputs`` moved there.
        a: student output weights ``(m,)``; ``None`` means all ones.
        train_output: include the output weights ``a`` in the Hessian.
        n_iter, tol, generator: power-iteration budget, relative eigen-residual tolerance and start-vector source
            (default seed 0), passed to :func:`lmcnb.diagnostics.sharpness`.

    Returns:
        :class:`lmcnb.diagnostics.Sharpness` (``eigenvalue``, unit ``vector`` over the live coordinates,
        ``n_iter``, ``converged``).
    """
    from ...diagnostics import sharpness

    W = _check_f64("W", W, (2,))
    check_bool("train_output", train_output)
    pop = Population.of(problem)
    inputs = pop.inputs
    p = _problem(W, pop.T, a, pop.a_star, pop.scale, inputs)
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
