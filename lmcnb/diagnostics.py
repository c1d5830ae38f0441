"""Diagnostics on plain tensors: sparsity, sharpness, dimension, rank, and the LLFC / LEWC conditions.

Nothing here knows about model classes: callers extract weights and features and pass tensors. Shapes follow
PyTorch: a layer's weight ``W`` is ``(out, in)`` and a batch of features is ``(n, in)``, one row per sample, so
a layer applied to a batch is ``Z @ W.T`` of shape ``(n, out)``. Teacher–student notation follows Zhan et al.:
the student's first layer is ``W ∈ R^{m×d}``, row ``w_i`` is neuron ``i``, ``a ∈ R^m`` its output weights.

Groups of functions:

- **Sparsity** (Zhan et al. §2.5): :func:`neuron_scores`, :func:`live_neurons`, :func:`participation_ratio`,
  :func:`active_units`.
- **Sharpness** (Zhan et al. T3): :func:`sharpness`, the top Hessian eigenvalue by power iteration on
  Hessian-vector products (double backward).
- **Dimension and rank**: :func:`second_moment`, :func:`approximate_dimension` ``tr(S)²/tr(S²)`` and
  :func:`sample_dimension` (Ferbach et al.), :func:`relative_rank` (Ito et al. §5.2).
- **Layerwise connectivity** (Zhou et al.'s LLFC, Ito et al.'s LEWC): :func:`cosine`, :func:`layer_cosine`,
  :func:`endpoint_coefficients`, :func:`llfc_weights`, :func:`lewc_weights`, :func:`weak_additivity`,
  :func:`weak_additivity_chance`, :func:`reciprocal_orthogonality`, :func:`commutativity_residual`.

**Interpolation convention.** In lmcnb ``θ_λ = (1 − λ) θ_a + λ θ_b`` (``λ = 0`` is model a). Ito et al. write
the merged model as ``λ θ_a + (1 − λ) θ_b`` and LEWC as ``f_ℓ = λ^ℓ f_ℓ^a + (1 − λ)^ℓ f_ℓ^b``, so their ``λ`` is
our ``1 − λ``. Every function here takes lmcnb's ``λ``; :func:`lewc_weights` does the translation.

Bad input (wrong type or dtype, shape mismatch, empty tensors, NaN/inf, λ outside ``[0, 1]``) raises
``TypeError`` or ``ValueError`` naming the argument.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ._validate import check_bool, check_int, check_real, check_tensor

__all__ = [
    "neuron_scores", "live_neurons", "participation_ratio", "active_units",
    "Sharpness", "sharpness",
    "second_moment", "approximate_dimension", "sample_dimension", "relative_rank",
    "cosine", "CosineSummary", "layer_cosine", "endpoint_coefficients", "llfc_weights", "lewc_weights",
    "weak_additivity", "weak_additivity_chance",
    "ReciprocalOrthogonality", "reciprocal_orthogonality", "commutativity_residual",
]

ZeroPolicy = Literal["raise", "match"]
RankMethod = Literal["energy", "entropy", "stable"]


# ----------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------

def _check_tensor(name: str, x: object, min_ndim: int = 0, ndim: int | None = None) -> torch.Tensor:
    """``x`` itself if it is a non-empty, finite, real floating tensor of the required rank."""
    return check_tensor(name, x, ndim=ndim, min_ndim=min_ndim)


def _check_same(names: tuple[str, ...], xs: tuple[torch.Tensor, ...], shape: bool = True) -> None:
    """All tensors share dtype and device (and shape, unless ``shape=False``)."""
    first = xs[0]
    for name, x in zip(names[1:], xs[1:]):
        if shape and x.shape != first.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {names[0]} has {tuple(first.shape)}")
        if x.dtype != first.dtype or x.device != first.device:
            raise TypeError(f"{name} is {x.dtype} on {x.device} but {names[0]} is {first.dtype} on "
                            f"{first.device}")


def _check_lambda(lam: object) -> float:
    """The interpolation coefficient λ ∈ [0, 1] (lmcnb convention: ``θ_λ = (1 − λ) θ_a + λ θ_b``)."""
    return check_real("lam", lam, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Sparsity (Zhan et al. §2.5)
# ----------------------------------------------------------------------------------------------------------

def neuron_scores(W: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
    """Per-neuron magnitude ``s_i = ‖w_i‖`` or, with output weights, ``s_i = |a_i| ‖w_i‖``.

    Args:
        W: incoming weights ``(..., m, d)``; row ``w_i`` is neuron ``i`` (leading dims are a batch).
        a: output weights ``(..., m)`` (same leading dims), or ``None``. For a multi-output layer ``A`` of shape
            ``(k, m)`` pass its column norms ``A.norm(dim=0)``.

    Returns:
        ``s`` of shape ``(..., m)``.
    """
    W = _check_tensor("W", W, min_ndim=2)
    s = torch.linalg.vector_norm(W, dim=-1)
    if a is None:
        return s
    a = _check_tensor("a", a, min_ndim=1)
    _check_same(("W", "a"), (W, a), shape=False)
    if a.shape != W.shape[:-1]:
        raise ValueError(f"a must have shape {tuple(W.shape[:-1])} (W's shape without its last axis), "
                         f"got {tuple(a.shape)}")
    return a.abs() * s


def live_neurons(W: torch.Tensor, a: torch.Tensor | None = None, rel_tol: float = 1e-2) -> torch.Tensor:
    """Number of live neurons ``#{i : s_i > rel_tol · max_k s_k}`` with ``s`` from :func:`neuron_scores`.

    Zhan et al.'s calibration runs use ``rel_tol = 1e-2`` (dead neurons there have norm ≤ 1e-6 or exactly 0).
    An all-zero layer has no live neuron.

    Args:
        W: ``(..., m, d)``; a: ``(..., m)`` or ``None``; rel_tol: threshold relative to the largest score, in
            ``[0, 1)``.

    Returns:
        LongTensor of shape ``(...)`` (0-d for a single layer).
    """
    rel_tol = check_real("rel_tol", rel_tol, 0.0, 1.0)
    if rel_tol == 1.0:
        raise ValueError("rel_tol must be < 1 (no neuron can exceed the maximum score)")
    s = neuron_scores(W, a)
    threshold = rel_tol * s.amax(dim=-1, keepdim=True)
    return ((s > threshold) & (s > 0)).sum(dim=-1)


def participation_ratio(s: torch.Tensor) -> torch.Tensor:
    """Participation ratio ``PR = (Σ_i s_i)² / (m Σ_i s_i²)`` of non-negative neuron scores, in ``(0, 1]``.

    ``PR = k/m`` when ``k`` of the ``m`` scores are equal and the others zero; ``PR = 1`` iff all are equal.

    Args:
        s: scores ``(..., m)``, e.g. from :func:`neuron_scores`; non-negative and not all zero.

    Returns:
        ``(...)`` tensor.
    """
    s = _check_tensor("s", s, min_ndim=1)
    if bool((s < 0).any()):
        raise ValueError("s must be non-negative (neuron norms)")
    sq = s.pow(2).sum(dim=-1)
    if bool((sq == 0).any()):
        raise ValueError("s is all zero along its last axis; the participation ratio is undefined")
    return s.sum(dim=-1).pow(2) / (s.shape[-1] * sq)


def active_units(H: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Fraction of hidden units active (``H[k, j] > threshold``) on at least one of the ``n`` inputs.

    Args:
        H: activations ``(..., n, h)`` on real data (post-ReLU features, or pre-activations with
            ``threshold = 0``, which selects the same units).
        threshold: activity threshold.

    Returns:
        ``(...)`` tensor of fractions in ``[0, 1]``.
    """
    H = _check_tensor("H", H, min_ndim=2)
    threshold = check_real("threshold", threshold)
    active = (H > threshold).any(dim=-2)
    return active.to(H.dtype).mean(dim=-1)


# ----------------------------------------------------------------------------------------------------------
# Sharpness (Zhan et al. T3)
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sharpness:
    """Top Hessian eigenvalue ``λ_max(∇²L)``, a unit eigenvector (a tuple shaped like the parameters), the
    number of Hessian-vector products used, and whether the final run met the eigen-residual stopping rule."""

    eigenvalue: float
    vector: tuple[torch.Tensor, ...]
    n_iter: int
    converged: bool


def _as_params(params: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Validated parameters as a tuple (a single tensor becomes a 1-tuple)."""
    if isinstance(params, torch.Tensor):
        params = (params,)
    if not isinstance(params, tuple) or len(params) == 0:
        raise TypeError(f"params must be a Tensor or a non-empty tuple of Tensors, got {type(params).__name__}")
    ps = tuple(_check_tensor(f"params[{i}]", p) for i, p in enumerate(params))
    _check_same(tuple(f"params[{i}]" for i in range(len(ps))), ps, shape=False)
    return ps


def _hvp_operator(loss_fn: Callable[..., torch.Tensor], params: tuple[torch.Tensor, ...], single: bool
                  ) -> Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]:
    """``v ↦ H v`` by double backward at ``params`` (on copies; the inputs are not touched)."""
    leaves = tuple(p.detach().clone().requires_grad_(True) for p in params)
    loss = loss_fn(leaves[0]) if single else loss_fn(*leaves)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss_fn must return a scalar tensor")
    if not bool(torch.isfinite(loss).all()):
        raise ValueError(f"loss_fn returned a non-finite loss {loss.item()!r}")
    grads = torch.autograd.grad(loss.reshape(()), leaves, create_graph=True, allow_unused=True)
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def hvp(v: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        out = [torch.zeros_like(p) for p in params]
        if live:
            hv = torch.autograd.grad([grads[i] for i in live], leaves, [v[i] for i in live],
                                     retain_graph=True, allow_unused=True)
            out = [torch.zeros_like(p) if h is None else h.detach() for p, h in zip(params, hv)]
        return tuple(out)

    return hvp


def _dot(u: tuple[torch.Tensor, ...], v: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Euclidean inner product of two parameter tuples."""
    return sum((x * y).sum() for x, y in zip(u, v))


def _power_iteration(hvp: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]],
                     v: tuple[torch.Tensor, ...], n_iter: int, tol: float, shift: float = 0.0
                     ) -> tuple[float, tuple[torch.Tensor, ...], int, bool, float]:
    """Power iteration on ``H + shift·I`` for a symmetric ``H`` given by ``hvp``.

    The estimate is the Rayleigh quotient ``ν = vᵀ H v`` of the unit iterate ``v`` (an eigenvalue of ``H``);
    the run stops when the eigen-residual ``‖H v − ν v‖ ≤ tol · max(|ν|, shift)``. Returns
    ``(ν, v, iterations, converged, ‖H v‖)``, the last entry a lower estimate of ``H``'s spectral radius.
    """
    norm = math.sqrt(float(_dot(v, v)))
    v = tuple(x / norm for x in v)
    estimate, radius = math.nan, math.nan
    for k in range(1, n_iter + 1):
        hv = hvp(v)
        estimate = float(_dot(v, hv))
        radius = math.sqrt(float(_dot(hv, hv)))
        r = tuple(y - estimate * x for x, y in zip(v, hv))
        if math.sqrt(float(_dot(r, r))) <= tol * max(abs(estimate), shift) or radius == 0.0:
            return estimate, v, k, True, radius
        w = tuple(y + shift * x for x, y in zip(v, hv))
        w_norm = math.sqrt(float(_dot(w, w)))
        v = tuple(y / w_norm for y in w)
    return estimate, v, n_iter, False, radius


def sharpness(loss_fn: Callable[..., torch.Tensor], params: torch.Tensor | tuple[torch.Tensor, ...],
              n_iter: int = 100, tol: float = 1e-4, generator: torch.Generator | None = None) -> Sharpness:
    """Sharpness ``λ_max(∇²L(θ))``: the largest Hessian eigenvalue, by power iteration on Hessian-vector products.

    ``H v`` is computed by double backward (``torch.autograd.grad`` with ``create_graph=True``), never by
    forming ``H``. Power iteration finds the eigenvalue of largest *magnitude*. If that one is negative
    (``|λ_min| > λ_max``), or the first run does not converge (e.g. ``λ_min ≈ −λ_max``), a second run on the
    shifted operator ``H + r I``, with ``r ≈ ‖H‖_2`` the first run's spectral-radius estimate (so ``H + r I`` is
    positive semi-definite with dominant eigenvalue ``λ_max + r``), recovers ``λ_max``. The stopping rule is the
    eigen-residual ``‖H v − ν v‖ ≤ tol · |ν|`` (``tol · max(|ν|, r)`` in the shifted run); the eigenvalue error
    is then of order ``tol² ν² / gap``.
    Convergence is geometric in the ratio of the two largest eigenvalues, so near-degenerate tops need more
    iterations; ``converged`` reports whether the final run met the stopping rule.

    Args:
        loss_fn: called as ``loss_fn(params)`` for a single tensor and ``loss_fn(*params)`` for a tuple (as
            ``torch.autograd.functional.hessian``); returns a scalar tensor, twice differentiable.
        params: the point ``θ``: one tensor or a tuple of tensors (any shapes, same dtype and device). They are
            copied, never modified.
        n_iter: maximum number of Hessian-vector products per power-iteration run (≥ 1).
        tol: relative tolerance on the eigen-residual (> 0).
        generator: source of the random start vector; ``None`` means ``torch.Generator().manual_seed(0)``.

    Returns:
        :class:`Sharpness` with the eigenvalue, a unit eigenvector shaped like ``params`` (always a tuple), the
        total number of Hessian-vector products and the convergence flag.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    single = isinstance(params, torch.Tensor)
    ps = _as_params(params)
    n_iter = check_int("n_iter", n_iter, 1)
    tol = check_real("tol", tol, 0.0, low_open=True)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    hvp = _hvp_operator(loss_fn, ps, single)
    v0 = tuple(torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device).to(p.device)
               for p in ps)
    value, vec, used, converged, radius = _power_iteration(hvp, v0, n_iter, tol)
    if value < 0 or not converged:
        value, vec, more, converged, _ = _power_iteration(hvp, v0, n_iter, tol, shift=radius)
        used += more
    return Sharpness(eigenvalue=value, vector=vec, n_iter=used, converged=converged)


# ----------------------------------------------------------------------------------------------------------
# Dimension and rank (Ferbach et al.; Ito et al. §5.2)
# ----------------------------------------------------------------------------------------------------------

def second_moment(X: torch.Tensor, centered: bool = False) -> torch.Tensor:
    """Second-moment matrix of the rows of ``X``: ``S = XᵀX / n`` or, centred, ``(X − x̄)ᵀ(X − x̄) / n``.

    Args:
        X: samples ``(n, d)`` — data features, or a weight matrix ``(m, d)`` whose rows (neurons) are samples.
        centered: subtract the row mean first (covariance) or not (Ferbach et al.'s code: uncentred).

    Returns:
        ``S`` of shape ``(d, d)``.
    """
    X = _check_tensor("X", X, ndim=2)
    check_bool("centered", centered)
    if centered:
        X = X - X.mean(dim=0, keepdim=True)
    return X.T @ X / X.shape[0]


def approximate_dimension(S: torch.Tensor) -> float:
    """Ferbach et al.'s approximate dimension ``Dim(S) = tr(S)² / tr(S²) = (Σ λ_i)² / Σ λ_i²``.

    ``Dim(I_d) = d``; ``Dim(S) = k`` for a PSD matrix with ``k`` equal non-zero eigenvalues; scale invariant.

    Args:
        S: symmetric positive semi-definite ``(d, d)`` matrix, not zero (checked: symmetry and eigenvalues
            ``≥ −√eps · λ_max`` for the dtype's machine epsilon).

    Returns:
        A float in ``[1, d]``.
    """
    S = _check_tensor("S", S, ndim=2)
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be square, got shape {tuple(S.shape)}")
    scale = float(S.abs().max())
    if scale == 0.0:
        raise ValueError("S is the zero matrix; its approximate dimension is undefined")
    slack = math.sqrt(torch.finfo(S.dtype).eps) * scale
    if float((S - S.T).abs().max()) > slack:
        raise ValueError("S must be symmetric")
    eig = torch.linalg.eigvalsh(S)
    if float(eig[0]) < -slack * S.shape[0]:
        raise ValueError(f"S must be positive semi-definite, smallest eigenvalue {float(eig[0]):.3g}")
    return float(torch.trace(S) ** 2 / (S * S.T).sum())


def sample_dimension(X: torch.Tensor, centered: bool = False) -> float:
    """``Dim(S)`` of the (un)centred second-moment matrix of the rows of ``X`` (see :func:`second_moment`).

    For isotropic data in a ``k``-dimensional subspace this is about ``k``; for ``n`` i.i.d. ``N(0, I_d)`` rows
    its expectation is close to ``d·n / (n + d + 1)`` (Wishart moments). Uses: rows of ``W_ℓ`` ("naive WM",
    ``S ∝ W_ℓᵀW_ℓ``) or the activations ``Z_ℓ`` (AM) in Ferbach et al.'s Fig. 2.

    Args:
        X: ``(n, d)``; centered: see :func:`second_moment`.
    """
    return approximate_dimension(second_moment(X, centered))


def relative_rank(W: torch.Tensor, method: RankMethod = "energy", energy: float = 0.99) -> torch.Tensor:
    """A rank measure of ``W`` divided by its full rank ``min(out, in)``, from the singular values ``σ_i``.

    Methods (Ito et al.'s exact definition is unknown; the pilots use ``"entropy"``):

    - ``"energy"``: the smallest ``k`` with ``Σ_{i≤k} σ_i² ≥ energy · Σ_i σ_i²`` (singular values sorted
      decreasingly).
    - ``"entropy"``: the effective rank ``exp(−Σ_i p_i log p_i)`` with ``p_i = σ_i / Σ_j σ_j`` (Roy & Vetterli).
    - ``"stable"``: the stable rank ``‖W‖_F² / ‖W‖_2² = Σ σ_i² / σ_1²``.

    All three equal ``k`` for a matrix with ``k`` equal non-zero singular values.

    Args:
        W: ``(..., out, in)`` (leading dims are a batch); not zero.
        method: one of the above. energy: fraction in ``(0, 1]`` for ``"energy"``.

    Returns:
        ``(...)`` tensor in ``(0, 1]``.
    """
    W = _check_tensor("W", W, min_ndim=2)
    energy = check_real("energy", energy, 0.0, 1.0, low_open=True)
    s = torch.linalg.svdvals(W)
    if bool((s[..., 0] == 0).any()):
        raise ValueError("W is zero; its rank measures are undefined")
    full = min(W.shape[-2:])
    if method == "energy":
        cum = torch.cumsum(s.pow(2), dim=-1)
        k = (cum < energy * cum[..., -1:]).sum(dim=-1) + 1
        return k.to(W.dtype) / full
    if method == "entropy":
        p = s / s.sum(dim=-1, keepdim=True)
        entropy = -torch.special.xlogy(p, p).sum(dim=-1)
        return entropy.exp() / full
    if method == "stable":
        return s.pow(2).sum(dim=-1) / s[..., 0].pow(2) / full
    raise ValueError(f"method must be 'energy', 'entropy' or 'stable', got {method!r}")


# ----------------------------------------------------------------------------------------------------------
# Layerwise connectivity: cosines, LLFC and LEWC (Zhou et al. 2023; Ito et al. 2026)
# ----------------------------------------------------------------------------------------------------------

def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1, zero: ZeroPolicy = "raise") -> torch.Tensor:
    """Cosine similarity ``⟨a, b⟩ / (‖a‖ ‖b‖)`` along ``dim``, batched over the other axes.

    A zero vector has no direction. ``zero="raise"`` rejects it; ``zero="match"`` uses the convention
    ``cos(0, 0) = 1`` (identical vectors) and ``cos(0, b) = 0`` for ``b ≠ 0``.

    Args:
        a, b: tensors of the same shape, dtype and device; dim: the axis of the vectors.

    Returns:
        Tensor of the shape of ``a`` without ``dim``.
    """
    a, b = _check_tensor("a", a, min_ndim=1), _check_tensor("b", b, min_ndim=1)
    _check_same(("a", "b"), (a, b))
    if zero not in ("raise", "match"):
        raise ValueError(f"zero must be 'raise' or 'match', got {zero!r}")
    na, nb = torch.linalg.vector_norm(a, dim=dim), torch.linalg.vector_norm(b, dim=dim)
    za, zb = na == 0, nb == 0
    if zero == "raise" and bool((za | zb).any()):
        first = tuple(int(i) for i in torch.nonzero(za | zb)[0]) if na.ndim else ()
        raise ValueError(f"zero-norm vector at index {first} along dim {dim}; the cosine is undefined "
                         "(pass zero='match' to use cos(0, 0) = 1, cos(0, b) = 0)")
    c = (a * b).sum(dim=dim) / torch.where(za | zb, torch.ones_like(na), na * nb)
    return torch.where(za & zb, torch.ones_like(c), c)


@dataclass(frozen=True)
class CosineSummary:
    """Agreement of features ``F`` (``(n, D)`` after flattening) with a target ``T``.

    Attributes:
        per_sample: ``cos(F_k, T_k)`` per sample, ``(n,)``.
        mean: the mean of ``per_sample`` (Zhou et al.'s and Ito et al.'s reported number).
        pooled: one cosine over all samples, ``⟨F, T⟩_F / (‖F‖_F ‖T‖_F)``.
        scale: least-squares scale ``c* = argmin_c ‖F − c T‖_F = ⟨F, T⟩_F / ‖T‖_F²`` (Zhou et al.'s coefficient;
            LLFC's ``c`` in ``c · f_ℓ(θ_λ) = T`` is ``1 / c*``).
    """

    per_sample: torch.Tensor
    mean: float
    pooled: float
    scale: float


def _flatten_samples(name: str, f: torch.Tensor) -> torch.Tensor:
    """Features ``(n, ...)`` as ``(n, D)``."""
    f = _check_tensor(name, f, min_ndim=1)
    return f.reshape(f.shape[0], -1)


def _summary(F: torch.Tensor, T: torch.Tensor, zero: ZeroPolicy) -> CosineSummary:
    """Per-sample, mean and pooled cosines and least-squares scale of ``F ≈ c T``; both ``(n, D)``."""
    per_sample = cosine(F, T, dim=-1, zero=zero)
    pooled = cosine(F.reshape(-1), T.reshape(-1), zero=zero)
    tt = float((T * T).sum())
    if tt == 0.0:
        raise ValueError("the target features are all zero; the least-squares scale is undefined")
    return CosineSummary(per_sample=per_sample, mean=float(per_sample.mean()), pooled=float(pooled),
                         scale=float((F * T).sum()) / tt)


def _check_features(f_merged: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three feature tensors ``(n, ...)`` flattened to ``(n, D)``, after shape/dtype checks."""
    names = ("f_merged", "f_a", "f_b")
    fs = tuple(_flatten_samples(n, f) for n, f in zip(names, (f_merged, f_a, f_b)))
    _check_same(names, (f_merged, f_a, f_b))
    return fs


def layer_cosine(f_merged: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor,
                 weights: tuple[float, float], zero: ZeroPolicy = "raise") -> CosineSummary:
    """Cosine between the merged model's layer features and ``α f_a + β f_b`` (LLFC / LEWC check).

    With ``weights = llfc_weights(λ) = (1 − λ, λ)`` this is Zhou et al.'s LLFC measure (their dissimilarity is
    ``1 − cos``); with ``weights = lewc_weights(λ, ℓ) = ((1 − λ)^ℓ, λ^ℓ)`` it is Ito et al.'s LEWC measure.
    Features are flattened per sample (conv maps ``(n, C, H, W)`` become ``(n, C·H·W)``). The cosine is signed
    (Zhou et al.'s code reports ``1 − |cos|``).

    Args:
        f_merged: ``f_ℓ(x; θ_λ)`` of shape ``(n, ...)``; f_a, f_b: ``f_ℓ(x; θ_a)``, ``f_ℓ(x; θ_b)``, same shape.
        weights: ``(α, β)``, real numbers, the coefficient of ``f_a`` first.
        zero: zero-vector policy of :func:`cosine` (relevant for dead ReLU layers).

    Returns:
        :class:`CosineSummary` (per-sample cosines, their mean, the pooled cosine, the least-squares scale).
    """
    Fm, Fa, Fb = _check_features(f_merged, f_a, f_b)
    if not isinstance(weights, tuple) or len(weights) != 2:
        raise TypeError(f"weights must be a tuple (alpha, beta), got {weights!r}")
    alpha, beta = check_real("weights[0]", weights[0]), check_real("weights[1]", weights[1])
    return _summary(Fm, alpha * Fa + beta * Fb, zero)


def endpoint_coefficients(f_merged: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor) -> tuple[float, float]:
    """Least-squares coefficients ``(c_a, c_b) = argmin ‖f_merged − c_a f_a − c_b f_b‖_F`` over all samples.

    Ito et al.'s V11 test: LEWC predicts ``((1 − λ)^ℓ, λ^ℓ)`` (lmcnb's λ), LLFC a pair proportional to
    ``(1 − λ, λ)``.

    Args:
        f_merged, f_a, f_b: features ``(n, ...)`` of the same shape; ``f_a`` and ``f_b`` linearly independent.
    """
    Fm, Fa, Fb = _check_features(f_merged, f_a, f_b)
    X = torch.stack([Fa.reshape(-1), Fb.reshape(-1)], dim=1).double()
    gram = X.T @ X
    if float(gram[0, 1]) ** 2 >= (1 - 1e-12) * float(gram[0, 0]) * float(gram[1, 1]):  # |cos(f_a, f_b)| ≈ 1
        raise ValueError("f_a and f_b are (numerically) linearly dependent; the coefficients are not unique")
    c = torch.linalg.solve(gram, X.T @ Fm.reshape(-1).double())
    return float(c[0]), float(c[1])


def llfc_weights(lam: float) -> tuple[float, float]:
    """LLFC weights ``(1 − λ, λ)`` of ``(f_a, f_b)`` at ``θ_λ = (1 − λ) θ_a + λ θ_b`` (Zhou et al.)."""
    lam = _check_lambda(lam)
    return 1.0 - lam, lam


def lewc_weights(lam: float, layer: int) -> tuple[float, float]:
    """LEWC weights ``((1 − λ)^ℓ, λ^ℓ)`` of ``(f_a, f_b)`` at layer ``ℓ`` of ``θ_λ = (1 − λ) θ_a + λ θ_b``.

    Ito et al. write ``f_ℓ(μ θ_a + (1 − μ) θ_b) = μ^ℓ f_ℓ^a + (1 − μ)^ℓ f_ℓ^b``; their ``μ`` weights model a, so
    ``μ = 1 − λ`` in lmcnb's convention. Layers count from 1 (the first weight layer's output; ``z_0 = x``); the
    logits of an ``L``-layer net are layer ``L``.

    Args:
        lam: lmcnb's λ in ``[0, 1]``; layer: ``ℓ ≥ 1``.
    """
    lam = _check_lambda(lam)
    layer = check_int("layer", layer, 1)
    return (1.0 - lam) ** layer, lam ** layer


def weak_additivity(Za: torch.Tensor, Zb: torch.Tensor, lam: float, zero: ZeroPolicy = "raise") -> CosineSummary:
    """ReLU weak additivity: cosine between ``σ((1 − λ) z_a + λ z_b)`` and ``(1 − λ) σ(z_a) + λ σ(z_b)``.

    Zhou et al.'s Def. 3 (used by Ito et al.): the identity holds for every λ iff ``z_a,i · z_b,i ≥ 0`` in every
    coordinate. Compare the mean cosine with :func:`weak_additivity_chance` (≈ 0.93 at ``λ = ½`` for
    independent Gaussian pre-activations), not with 0. ``scale`` is 1 when the identity holds.

    Args:
        Za, Zb: pre-activations (ReLU inputs) ``z̃_ℓ`` of models a and b on the same ``n`` inputs, ``(n, ...)``.
        lam: λ in ``[0, 1]``.
        zero: zero-vector policy of :func:`cosine` (a sample whose merged or mixed activations are all zero).

    Returns:
        :class:`CosineSummary` of ``F = σ((1 − λ) z_a + λ z_b)`` against ``T = (1 − λ) σ(z_a) + λ σ(z_b)``.
    """
    lam = _check_lambda(lam)
    Za, Zb = _flatten_samples("Za", Za), _flatten_samples("Zb", Zb)
    _check_same(("Za", "Zb"), (Za, Zb))
    merged = torch.relu((1.0 - lam) * Za + lam * Zb)
    return _summary(merged, (1.0 - lam) * torch.relu(Za) + lam * torch.relu(Zb), zero)


def _relu_moment(rho: float, s: float) -> float:
    """Arc-cosine kernel ``E[σ(X) σ(Y)]`` for centred Gaussians with ``sd(X) = 1``, ``sd(Y) = s``, ``corr = ρ``:
    ``(s / 2π)(√(1 − ρ²) + (π − arccos ρ) ρ)``."""
    rho = min(1.0, max(-1.0, rho))
    return s / (2 * math.pi) * (math.sqrt(1.0 - rho * rho) + (math.pi - math.acos(rho)) * rho)


def weak_additivity_chance(lam: float, rho: float = 0.0) -> float:
    """Large-dimension weak-additivity cosine for standard Gaussian pre-activations with correlation ``ρ``.

    With ``(u_i, v_i)`` i.i.d. over coordinates, standard Gaussian pairs of correlation ``ρ`` (``ρ = 0``: the two
    models' pre-activations are independent), ``A = (1 − λ)σ(u) + λσ(v)`` and ``B = σ((1 − λ)u + λv)``, the law of
    large numbers gives ``cos(A, B) → E[A₁B₁] / √(E[A₁²] E[B₁²])`` as ``d → ∞``. With ``μ = 1 − λ``,
    ``s² = μ² + λ² + 2λμρ`` (the variance of ``w = μu₁ + λv₁``) and the arc-cosine kernel
    ``k_s(r) = E[σ(X)σ(w)] = (s / 2π)(√(1 − r²) + (π − arccos r) r)`` for ``sd(X) = 1``, ``corr(X, w) = r``:

    - ``E[A₁B₁] = μ k_s((μ + λρ)/s) + λ k_s((λ + μρ)/s)``;
    - ``E[A₁²] = (μ² + λ²)/2 + 2λμ k_1(ρ)``;
    - ``E[B₁²] = s²/2``.

    At ``λ = ½``, ``ρ = 0`` this is ``(3/4 + 1/π) / √(1 + 1/π) ≈ 0.93044`` (Ito et al.'s "tends to 0.93"; the
    closed form is our derivation, notes D6/Theorem D.1 [R]); it is 1 at the endpoints and at ``ρ = 1``, and
    symmetric under ``λ ↦ 1 − λ``. A measured cosine must be compared with this chance level, not with 0.

    Args:
        lam: λ in ``[0, 1]``; rho: correlation in ``(−1, 1]`` (at ``ρ = −1``, ``λ = ½`` the merged
            pre-activation is identically 0 and the cosine undefined).
    """
    lam = _check_lambda(lam)
    rho = check_real("rho", rho, -1.0, 1.0, low_open=True)
    mu = 1.0 - lam
    s2 = lam * lam + mu * mu + 2 * lam * mu * rho
    if s2 <= 0.0:
        raise ValueError(f"the merged pre-activation has zero variance at lam={lam}, rho={rho}")
    s = math.sqrt(s2)
    cross = mu * _relu_moment((mu + lam * rho) / s, s) + lam * _relu_moment((lam + mu * rho) / s, s)
    second_a = (mu * mu + lam * lam) / 2 + 2 * lam * mu * _relu_moment(rho, 1.0)
    return cross / math.sqrt(second_a * s2 / 2)


@dataclass(frozen=True)
class ReciprocalOrthogonality:
    """Reciprocal-orthogonality ratios at one layer ``ℓ ≥ 2`` (Ito et al. D7).

    Attributes:
        b_on_a: ``‖Z_a W_bᵀ‖_F / ‖Z_a W_aᵀ‖_F``: model b's weights on model a's features, relative to a's own
            pre-activations.
        a_on_b: the mirror ``‖Z_b W_aᵀ‖_F / ‖Z_b W_bᵀ‖_F``.
        ratio: ``ρ_ℓ``, the mean of the two. 0 under exact reciprocal orthogonality; about 1 for independent
            weights of equal scale.
    """

    b_on_a: float
    a_on_b: float
    ratio: float


def _check_layer(W_a: torch.Tensor, W_b: torch.Tensor, Z_a: torch.Tensor, Z_b: torch.Tensor, feat: str = "Z"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights ``(out, in)`` and features ``(n, in)`` (named ``{feat}_a``, ``{feat}_b``) of both models."""
    fa, fb = f"{feat}_a", f"{feat}_b"
    W_a, W_b = _check_tensor("W_a", W_a, ndim=2), _check_tensor("W_b", W_b, ndim=2)
    Z_a, Z_b = _check_tensor(fa, Z_a, ndim=2), _check_tensor(fb, Z_b, ndim=2)
    _check_same(("W_a", "W_b"), (W_a, W_b))
    _check_same((fa, fb), (Z_a, Z_b))
    _check_same(("W_a", fa), (W_a, Z_a), shape=False)
    if Z_a.shape[1] != W_a.shape[1]:
        raise ValueError(f"{fa} has {Z_a.shape[1]} columns but W_a has {W_a.shape[1]} inputs "
                         "(weights are (out, in), features (n, in))")
    return W_a, W_b, Z_a, Z_b


def _relative(num: torch.Tensor, den: torch.Tensor, what: str) -> float:
    """``‖num‖_F / ‖den‖_F``, rejecting a zero denominator."""
    d = float(torch.linalg.norm(den))
    if d == 0.0:
        raise ValueError(f"{what} is zero; the ratio is undefined")
    return float(torch.linalg.norm(num)) / d


def reciprocal_orthogonality(W_a: torch.Tensor, W_b: torch.Tensor, Z_a: torch.Tensor, Z_b: torch.Tensor
                             ) -> ReciprocalOrthogonality:
    """Ito et al.'s reciprocal orthogonality ``W_ℓ^b z_{ℓ−1}^a = 0``, ``W_ℓ^a z_{ℓ−1}^b = 0``, measured as ratios.

    ``ρ_ℓ = ½ (‖W_b Z_a‖_F / ‖W_a Z_a‖_F + ‖W_a Z_b‖_F / ‖W_b Z_b‖_F)`` with the features of the dataset as
    columns (here rows: ``W Z`` is computed as ``Z Wᵀ``). The project notes' choice (seed002 D7); the paper's
    exact normalisation is unknown. Layer 1 is excluded by the theory (its input ``x`` is shared).

    Args:
        W_a, W_b: layer-ℓ weights ``(out, in)``; Z_a, Z_b: layer-(ℓ−1) features (post-activation) ``(n, in)``.

    Returns:
        :class:`ReciprocalOrthogonality`.
    """
    W_a, W_b, Z_a, Z_b = _check_layer(W_a, W_b, Z_a, Z_b)
    b_on_a = _relative(Z_a @ W_b.T, Z_a @ W_a.T, "W_a Z_a (model a's own pre-activation)")
    a_on_b = _relative(Z_b @ W_a.T, Z_b @ W_b.T, "W_b Z_b (model b's own pre-activation)")
    return ReciprocalOrthogonality(b_on_a=b_on_a, a_on_b=a_on_b, ratio=(b_on_a + a_on_b) / 2)


def commutativity_residual(W_a: torch.Tensor, W_b: torch.Tensor, H_a: torch.Tensor, H_b: torch.Tensor) -> float:
    """Relative violation of Zhou et al.'s commutativity ``W_a h_a + W_b h_b = W_a h_b + W_b h_a`` (Def. 4).

    ``‖(W_a H_a + W_b H_b) − (W_a H_b + W_b H_a)‖_F / ‖W_a H_a + W_b H_b‖_F`` over the dataset; the numerator
    equals ``‖(W_a − W_b)(H_a − H_b)‖_F``. 0 when ``W_a = W_b`` or ``H_a = H_b``; exactly 1 under reciprocal
    orthogonality (the cross terms vanish), which is why LEWC and LLFC are disjoint mechanisms (Ito et al. App. C).

    Args:
        W_a, W_b: layer-ℓ weights ``(out, in)``; H_a, H_b: layer-(ℓ−1) features ``(n, in)``.
    """
    W_a, W_b, H_a, H_b = _check_layer(W_a, W_b, H_a, H_b, feat="H")
    direct = H_a @ W_a.T + H_b @ W_b.T
    cross = H_b @ W_a.T + H_a @ W_b.T
    return _relative(direct - cross, direct, "W_a H_a + W_b H_b")
