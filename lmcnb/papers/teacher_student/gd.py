"""Full-batch gradient descent on the exact population loss, batched over models (step η = c/m): the schedule
:class:`GD` (one verb, :meth:`GD.run`) and its function form :func:`gd_population`."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from ..._validate import check_bool, check_int, check_real, moved_keywords
from ._inputs import F64, _check_device, _check_f64, _check_scale, _check_teacher, _check_weights, _check_widths, _positive_per_model
from .kernel import _POPULATION_KEYWORDS, Population, _Teacher, _Workspace, _pieces


# ---------------------------------------------------------------------------------------------------------------
# Full-batch GD on the exact population loss
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GDResult:
    """Outcome of :meth:`GD.run` / :func:`gd_population` for ``B`` models (padded to ``m = max width``).

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


def _check_c(c: object) -> None:
    """The step constant: a positive number or a positive float64 ``(B,)`` tensor (``B`` is checked by the run)."""
    if isinstance(c, Tensor):
        v = _check_f64("c", c, (1,))
        if not bool((v > 0).all()):
            raise ValueError("c must be positive")
    else:
        check_real("c", c, 0.0, low_open=True)


def _check_threads(threads: object) -> None:
    if threads is not None:
        check_int("threads", threads, 1)


@dataclass(frozen=True, kw_only=True)
class GD:
    """Full-batch gradient descent on the exact population loss, batched over models (seeds, widths, ``c``):
    the schedule, validated on construction; :meth:`run` trains students on a :class:`Population`.

    ``W_{t+1} = W_t − η ∇_W R(W_t)`` (and ``a_{t+1} = a_t − η ∇_a R`` with ``train_output``), ``η_b = c_b / m_b``
    per model (notes §1.3: in the unnormalised model the step must scale like ``1/m``; ``c ≳ 3.3`` diverges for
    ``d = 8, M = 4``). One step costs one closed-form evaluation (:func:`population_grad`) for the whole batch: a
    single angle matrix between the student rows and the student and teacher rows; the loss at every
    ``check_every``-th step reuses it.

    **Stopping.** At steps ``0, k, 2k, …`` (``k = check_every``) each model whose loss is ``< tol`` is marked
    converged and frozen; one whose loss is non-finite or ``> diverge_loss`` is marked diverged and frozen; with
    ``grad_tol > 0``, one whose largest gradient entry ``max |∂R/∂θ|`` (over ``W``, and ``a`` if trained) is
    ``< grad_tol`` is marked stationary and frozen (a critical point that is not a global minimum, e.g. ``m < M``,
    which ``tol`` alone would run until ``steps``). The run ends when every model is frozen or after ``steps``
    steps.

    Attributes (keywords only):
        c: step-size constant ``c = η m``, a number or a float64 ``(B,)`` tensor (one per model, e.g. a
            learning-rate sweep); default 2 (:class:`TeacherStudent`'s). A sweep replaces it per model.
        steps: maximum number of GD steps (``>= 0``).
        tol: convergence threshold on ``R``. check_every: steps between loss checks (and history records).
        diverge_loss: divergence threshold. grad_tol: stationarity threshold on ``max |∂R/∂θ|`` (``0``: never
            stop for stationarity).
        train_output: also train ``a`` (student ``f = s Σ a_i σ(w_i·x)``), the variant with output weights.
        threads: torch intra-op threads during the run (restored afterwards); ``None`` keeps the current setting.
            The per-step tensors are small, and on a 2-core machine one thread is several times faster than two.

    Cost: one step evaluates ``B·m·(m + M)`` angles (``arccos`` dominates). Measured on the project's 2-core CPU,
    one thread: 16 models with ``m = 32``, ``d = 8`` take ≈ 0.8 ms per step (``c = 2`` reaches ``R < 1e-10`` in
    ≈ 15–18k steps, ≈ 14 s); 32 models with ``m = 64`` ≈ 3 ms per step.
    """

    c: float | Tensor = 2.0
    steps: int
    tol: float = 1e-12
    check_every: int = 50
    diverge_loss: float = 1e6
    grad_tol: float = 0.0
    train_output: bool = False
    threads: int | None = 1

    def __post_init__(self) -> None:
        _check_c(self.c)
        check_int("steps", self.steps, 0)
        check_real("tol", self.tol, 0.0)
        check_int("check_every", self.check_every, 1)
        check_real("diverge_loss", self.diverge_loss, 0.0, low_open=True)
        check_real("grad_tol", self.grad_tol, 0.0)
        check_bool("train_output", self.train_output)
        _check_threads(self.threads)

    def run(self, problem: Population | Tensor, W0: Tensor, *, a0: Tensor | None = None,
            widths: Sequence[int] | Tensor | None = None) -> GDResult:
        """Train the students ``W0`` (and ``a0``) on ``problem`` by this schedule.

        **Widths.** Models of different widths are zero-padded to ``m = W0.shape[1]``: rows ``i >= widths[b]``
        must be exactly zero. A zero row contributes nothing to ``f`` and gets zero gradient (``relu'(0) = 0``),
        so a padded model follows exactly the trajectory of the unpadded one (up to floating-point summation
        order).

        Args:
            problem: the :class:`Population` (teacher ``T (M, d)``, ``a*``, ``scale`` a number or ``(B,)``,
                inputs), or a bare teacher ``T`` (``Population(T)``).
            W0: initial first layers ``(B, m, d)``, float64 (e.g. :func:`small_init`), on ``T``'s device.
            a0: output weights ``(B, m)``; default all ones. Required with ``train_output=True``
                (e.g. :func:`small_output_init`).
            widths: ``(B,)`` true widths (default: all ``m``).

        Returns:
            :class:`GDResult`.
        """
        pop = Population.of(problem)
        return _gd(self, pop, W0, a0, widths)


#: Where :func:`gd_population`'s old keywords went.
_GD_KEYWORDS = {**{k: f"GD({k}=…)" for k in ("c", "steps", "tol", "check_every", "diverge_loss", "grad_tol",
                                              "train_output", "threads")}, **_POPULATION_KEYWORDS}


@moved_keywords(_GD_KEYWORDS)
def gd_population(W0: Tensor, problem: Population | Tensor, schedule: GD, *, a0: Tensor | None = None,
                  widths: Sequence[int] | Tensor | None = None) -> GDResult:
    """Full-batch GD on the exact population loss, batched over models: ``schedule.run(problem, W0, a0=a0,
    widths=widths)`` (:meth:`GD.run`; the schedule's keywords ``c, steps, tol, check_every, diverge_loss,
    grad_tol, train_output, threads`` moved to :class:`GD`, the problem's ``a_star, scale, inputs`` to
    :class:`Population`).

    Args:
        W0: initial first layers ``(B, m, d)``, float64. problem: :class:`Population` or a teacher ``T (M, d)``.
        schedule: :class:`GD`. a0: output weights ``(B, m)`` (default all ones). widths: ``(B,)`` true widths.

    Returns:
        :class:`GDResult`.
    """
    if not isinstance(schedule, GD):
        raise TypeError(f"schedule must be a GD (e.g. GD(c=2.0, steps=1000)), got {type(schedule).__name__}")
    return schedule.run(problem, W0, a0=a0, widths=widths)


def _gd(g: GD, pop: Population, W0: Tensor, a0: Tensor | None, widths: object) -> GDResult:
    """:meth:`GD.run` on a validated schedule and problem."""
    c, steps, tol, check_every = g.c, g.steps, g.tol, g.check_every
    diverge_loss, grad_tol, train_output, threads = g.diverge_loss, g.grad_tol, g.train_output, g.threads
    T, a_star, scale, inputs = pop.T, pop.a_star, pop.scale, pop.inputs
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
    factor = 1.0 / W0.shape[2] if inputs == "sphere" else 1.0
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
