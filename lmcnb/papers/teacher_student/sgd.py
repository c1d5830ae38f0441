"""Minibatch SGD on samples, batched over models: the schedule :class:`SGD` (one verb, :meth:`SGD.run`) and its
function form :func:`sgd_samples`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..._validate import check_bool, check_generator, check_int, check_real, moved_keywords
from ...data import Split
from ._inputs import F64, _check_device, _check_f64, _check_scale, _check_widths, _positive_per_model
from .gd import _Run, _check_a0, _check_c, _check_threads, _intra_op_threads


# ---------------------------------------------------------------------------------------------------------------
# Minibatch SGD on samples
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SGDResult:
    """Outcome of :meth:`SGD.run` / :func:`sgd_samples` for ``B`` models (padded to ``m = max width``).

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


def _check_samples(samples: object, d: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(X (n, d), y (n,))`` of a float64 :class:`lmcnb.data.Split` on ``device``."""
    if not isinstance(samples, Split):
        raise TypeError(f"samples must be an lmcnb.data.Split (x (n, d), y (n,)), e.g. "
                        f"lmcnb.data.teacher_student_data, got {type(samples).__name__}")
    X = _check_f64("samples.x", samples.x, (2,))
    y = _check_f64("samples.y", samples.y, (1,))
    if X.shape[1] != d:
        raise ValueError(f"samples.x must have shape (n, {d}) to match W0, got {tuple(X.shape)}")
    if X.device != device:
        raise ValueError(f"samples.x is on {X.device} but W0 is on {device}")
    return X, y


def _empirical_loss(W: Tensor, a: Tensor, s: Tensor, X: Tensor, y: Tensor, chunk: int = 1 << 20) -> Tensor:
    """``(1/n) Σ_n (s Σ_i a_i σ(w_i·x_n) − y_n)²`` for every model, ``(B,)``, in sample chunks of bounded memory
    (``chunk`` entries of ``(B, n, m)``: 8 MB of float64, below glibc's 32 MB mmap threshold, so the temporaries
    come from the heap; at ``1 << 22`` each was a fresh mmap and its page faults doubled the CPU time of chapter 3's
    finite-sample runs)."""
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


@dataclass(frozen=True, kw_only=True)
class SGD:
    """Minibatch SGD on the empirical squared loss ``L(W) = (1/n) Σ_n (f(x_n; W, a) − y_n)²``, batched over
    models: the schedule, validated on construction; :meth:`run` trains students on samples.

    Every epoch each model draws its own uniformly random order of the ``n`` samples from the run's generator and
    takes ``⌊n / batch_size⌋`` steps on consecutive minibatches (the last incomplete minibatch is dropped), with
    step ``η_b = c_b / m_b`` as in :class:`GD`. Zero rows stay zero (``relu'(0) = 0``), so zero-padded models of
    different widths can share the batch (``widths``). After every epoch the full empirical loss is recorded; a
    model with loss ``< tol`` is marked converged and frozen, one with a non-finite loss or loss
    ``> diverge_loss`` is marked diverged and frozen.

    Attributes (keywords only):
        c: step-size constant, a number or a float64 ``(B,)`` tensor; default 2 (a sweep replaces it per model).
        batch_size: minibatch size in ``[1, n]`` (``n`` checked by the run). epochs: passes over the data ``>= 0``.
        tol, diverge_loss: stopping thresholds on the empirical loss (``tol = 0``: never converged).
        train_output: also train the output weights ``a``.
        threads: torch intra-op threads during the run (restored afterwards), as in :class:`GD`.
    """

    c: float | Tensor = 2.0
    batch_size: int
    epochs: int
    tol: float = 0.0
    diverge_loss: float = 1e6
    train_output: bool = False
    threads: int | None = 1

    def __post_init__(self) -> None:
        _check_c(self.c)
        check_int("batch_size", self.batch_size, 1)
        check_int("epochs", self.epochs, 0)
        check_real("tol", self.tol, 0.0)
        check_real("diverge_loss", self.diverge_loss, 0.0, low_open=True)
        check_bool("train_output", self.train_output)
        _check_threads(self.threads)

    def run(self, samples: Split, W0: Tensor, *, generator: torch.Generator, a0: Tensor | None = None,
            widths: Sequence[int] | Tensor | None = None, scale: float | Tensor = 1.0) -> SGDResult:
        """Train the students ``W0`` (and ``a0``) on ``samples`` by this schedule.

        Args:
            samples: the training set, an :class:`lmcnb.data.Split` with float64 ``x (n, d)`` and targets
                ``y (n,)`` (e.g. :func:`lmcnb.data.teacher_student_data`, ``y = f*(x)``), on ``W0``'s device.
            W0: initial first layers ``(B, m, d)``, float64.
            generator: source of the sample orders.
            a0, widths: as in :meth:`GD.run`. scale: student output scale ``s > 0``, a number or ``(B,)``.

        Returns:
            :class:`SGDResult`.
        """
        return _sgd(self, samples, W0, generator, a0, widths, scale)


#: Where :func:`sgd_samples`'s old keywords went.
_SGD_KEYWORDS = {**{k: f"SGD({k}=…)" for k in ("c", "batch_size", "epochs", "tol", "diverge_loss",
                                               "train_output", "threads")},
                 **{k: f"samples=lmcnb.data.Split(X, y) with y = f*(X) (e.g. lmcnb.data.teacher_student_data), "
                       f"not {k}=" for k in ("y", "teacher", "a_star")}}


@moved_keywords(_SGD_KEYWORDS)
def sgd_samples(W0: Tensor, samples: Split, schedule: SGD, *, generator: torch.Generator,
                a0: Tensor | None = None, widths: Sequence[int] | Tensor | None = None,
                scale: float | Tensor = 1.0) -> SGDResult:
    """Minibatch SGD on samples, batched over models: ``schedule.run(samples, W0, generator=generator, …)``
    (:meth:`SGD.run`; the keywords ``c, batch_size, epochs, tol, diverge_loss, train_output, threads`` moved to
    :class:`SGD`, the targets ``y`` / ``teacher`` / ``a_star`` into ``samples``).

    Args:
        W0: initial first layers ``(B, m, d)``, float64. samples: :class:`lmcnb.data.Split` ``(x (n, d), y (n,))``.
        schedule: :class:`SGD`. generator: source of the sample orders.
        a0, widths, scale: as in :meth:`SGD.run`.

    Returns:
        :class:`SGDResult`.
    """
    if not isinstance(schedule, SGD):
        raise TypeError(f"schedule must be an SGD (e.g. SGD(c=0.5, batch_size=64, epochs=10)), "
                        f"got {type(schedule).__name__}")
    return schedule.run(samples, W0, generator=generator, a0=a0, widths=widths, scale=scale)


def _sgd(sch: SGD, samples: object, W0: Tensor, generator: object, a0: Tensor | None, widths: object,
         scale: object) -> SGDResult:
    """:meth:`SGD.run` on a validated schedule."""
    c, batch_size, epochs, tol = sch.c, sch.batch_size, sch.epochs, sch.tol
    diverge_loss, train_output, threads = sch.diverge_loss, sch.train_output, sch.threads
    W0 = _check_f64("W0", W0, (3,))
    X, y = _check_samples(samples, W0.shape[2], W0.device)
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
