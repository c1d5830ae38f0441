"""Minibatch SGD on samples, batched over models."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..._validate import check_generator, check_int, check_real
from ._inputs import F64, _check_device, _check_f64, _check_scale, _check_teacher, _check_weights, _check_widths, _positive_per_model
from .gd import _Run, _check_a0, _intra_op_threads


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
