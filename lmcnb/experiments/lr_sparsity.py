"""Learning rate, sparsity and linear stability in the teacher–student model (Zhan, Li, Wu 2025, notes T3–T4).

Zhan et al. observe "a sharp transition in the sparsity of GD/SGD solutions when increasing the learning rate".
The mechanism checked here is our reconstruction (``shared/research/seed000-zhan-li-wu.md`` T3(b), [DERIVED]):
GD with step ``η`` can only settle at a minimum whose sharpness ``λ_max(∇²R)`` is at most ``2/η`` (linear
stability). In the seed model ``f(x; W) = Σ_i σ(w_i·x)`` the gradient ``1[w_i·x > 0] x`` of a neuron does not
depend on its norm, so every live neuron adds to the sharpness however small it is: at an exact minimum with ``k``
live neurons per teacher neuron, ``λ_max = k · λ_1`` (``λ_1 ≈ 3.02`` for ``d = 8, M = 4``). With ``η = c/m``
the dense minima (all ``m`` neurons live, sharpness ``λ_dense ≈ 0.75 m``) are stable only for

    c < c* = 2 m / λ_dense,

and above ``c*`` GD is pushed to minima with dead neurons, until it diverges a little further.

Groups of functions (all float64, all randomness from explicit seeds):

- the prediction: :func:`critical_c`, :func:`predict_critical_c`, :func:`minimum_with_live`,
  :func:`sharpness_vs_live`;
- learning-rate sweeps: :func:`gd_lr_sweep`, :func:`sgd_lr_sweep` (one batched run, one initialisation per seed
  shared by every ``c``, so only the learning rate differs), :class:`LRSweep` (live neurons, participation ratio,
  divergence) and :func:`observed_transition`, :func:`live_fraction_crossing` (where the live fraction falls to
  a level: the depth of the transition; edge of stability predicts ``live/m ≈ c*/c``), and the statistics of
  chapter 4's checks over the widths, each with a ``scale`` on the prediction for its negative control
  (:func:`dense_below`, :func:`onset_sparse`, :func:`diverges_within`);
- the effect on LMC: :func:`weight_match_rows`, :func:`pair_barriers` (identity, weight-matching and functional-
  matching barriers and the Hall criterion of notes §2.4, as one
  :class:`lmcnb.papers.teacher_student.PairBarriers`), :func:`sweep_pair_barriers`, and the negative control of
  the criterion, :func:`hall_shuffled_types` (the criterion on randomly relabelled neuron types);
- real data: :func:`mlp_lr_sweep` (one-hidden-layer MLPs across learning rates: live units and barriers).
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from .. import diagnostics
from ..data import Split
from ..papers import teacher_student as ts
from .._validate import check_choice, check_int, check_real, check_tensor, moved_keywords
from ..infra import sweep as _sweep

__all__ = [
    "critical_c", "predict_critical_c", "minimum_with_live", "sharpness_vs_live",
    "LRSweep", "gd_schedule", "gd_lr_sweep", "sgd_lr_sweep", "solution_sharpness", "Transition", "observed_transition",
    "live_fraction_crossing", "dense_below", "onset_sparse", "diverges_within",
    "weight_match_rows", "pair_barriers", "hall_shuffled_types", "sweep_pair_barriers", "manifold_pair_barriers",
    "exactly_connected",
    "MLPSweep", "mlp_lr_sweep",
]

F64 = torch.float64


def gd_schedule(m: int, min_steps: int, *, steps_per_width: int = 625, tol: float = 1e-10,
                check_every: int = 100) -> ts.GD:
    """The population-GD schedule of a learning-rate sweep at width ``m``: ``max(min_steps, steps_per_width · m)``
    steps, stopping at ``R < tol``. With ``η = c/m`` the steps a run needs to converge grow like ``m`` (chapter 4:
    625 per unit of width above its ``min_steps``)."""
    m = check_int("m", m, 1)
    min_steps = check_int("min_steps", min_steps, 1)
    steps_per_width = check_int("steps_per_width", steps_per_width, 0)
    return ts.GD(steps=max(min_steps, steps_per_width * m), tol=tol, check_every=check_every)


def _check_cs(cs: object) -> Tensor:
    """Learning-rate constants: a non-empty, strictly increasing sequence (or 1-D tensor) of positive numbers."""
    if isinstance(cs, Tensor):
        vals = check_tensor("cs", cs, ndim=1).tolist()
    elif isinstance(cs, Sequence) and not isinstance(cs, (str, bytes)) and len(cs) > 0:
        vals = [check_real(f"cs[{i}]", v, 0.0, low_open=True) for i, v in enumerate(cs)]
    else:
        raise TypeError(f"cs must be a non-empty sequence of positive numbers, got {type(cs).__name__}")
    if any(v <= 0 for v in vals):
        raise ValueError(f"cs must be positive, got {vals}")
    if any(b <= a for a, b in zip(vals, vals[1:])):
        raise ValueError(f"cs must be strictly increasing, got {vals}")
    return torch.tensor(vals, dtype=F64)


def _check_seeds(seeds: object, even: bool = False) -> list[int]:
    if not isinstance(seeds, Sequence) or isinstance(seeds, (str, bytes)) or len(seeds) == 0:
        raise TypeError(f"seeds must be a non-empty sequence of ints, got {type(seeds).__name__}")
    out = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    if even and len(out) % 2:
        raise ValueError(f"seeds must have an even length (pairs (seeds[0], seeds[1]), ...), got {len(out)}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The prediction: linear stability
# ---------------------------------------------------------------------------------------------------------------

def critical_c(sharpness: float, m: int) -> float:
    """Largest stable step constant ``c* = η* m = 2 m / λ`` for a minimum of sharpness ``λ`` (``η λ <= 2``)."""
    lam = check_real("sharpness", sharpness, 0.0, low_open=True)
    return 2.0 * check_int("m", m, 1) / lam


def predict_critical_c(W: Tensor, T: Tensor, n_iter: int = 500, tol: float = 1e-6) -> tuple[float, float]:
    """Predicted transition ``c* = 2m/λ_max`` from a dense solution ``W (m, d)`` (float64, all rows live).

    ``λ_max`` is the top Hessian eigenvalue of the population loss at ``W``
    (:func:`lmcnb.teacher_student.sharpness_population`). Returns ``(λ_max, c*)``.

    Raises:
        ValueError: if ``W`` has a zero row (not a dense solution) or power iteration does not converge.
    """
    W = check_tensor("W", W, ndim=2, dtype=F64)
    if bool((W.norm(dim=1) == 0).any()):
        raise ValueError("W has a dead (zero) row: the prediction needs a dense solution (all m neurons live)")
    sh = ts.sharpness_population(W, ts.Population(T), n_iter=n_iter, tol=tol)
    if not sh.converged:
        raise ValueError(f"power iteration did not converge in {n_iter} Hessian-vector products")
    return sh.eigenvalue, critical_c(sh.eigenvalue, W.shape[0])


def minimum_with_live(k: int, M: int, d: int, dead: int = 0, mass: Sequence[float] | None = None) -> Tensor:
    """Exact global minimum with ``k`` live neurons per teacher neuron ``e_j`` and ``dead`` zero rows.

    Rows ``j·k … j·k + k − 1`` are ``α_l e_j`` with masses ``α = mass`` (default ``1/k`` each; they must be
    positive and sum to 1), then ``dead`` zero rows: ``W ((k M + dead), d)`` float64, ``R(W) = 0``.
    """
    k, M, d = check_int("k", k, 1), check_int("M", M, 1), check_int("d", d, 1)
    dead = check_int("dead", dead, 0)
    if M > d:
        raise ValueError(f"an orthonormal teacher needs M <= d, got M={M}, d={d}")
    if mass is None:
        alpha = torch.full((k,), 1.0 / k, dtype=F64)
    else:
        if not isinstance(mass, Sequence) or len(mass) != k:
            raise ValueError(f"mass must be a sequence of k = {k} positive numbers")
        alpha = torch.tensor([check_real(f"mass[{i}]", v, 0.0, low_open=True) for i, v in enumerate(mass)],
                             dtype=F64)
        if abs(float(alpha.sum()) - 1.0) > 1e-12:
            raise ValueError(f"mass must sum to 1 (the type-j masses of a minimum), got {float(alpha.sum()):.6g}")
    E = torch.eye(d, dtype=F64)[:M]
    live = (alpha[None, :, None] * E[:, None, :]).reshape(M * k, d)
    return torch.cat([live, torch.zeros(dead, d, dtype=F64)])


def sharpness_vs_live(ks: Sequence[int], M: int, d: int, n_iter: int = 500, tol: float = 1e-6) -> Tensor:
    """Top Hessian eigenvalue at :func:`minimum_with_live` for every ``k`` in ``ks``: ``(len(ks),)`` float64.

    Prediction (notes T3, V9): ``λ_max(k) = k λ_max(1)``: linear in the number of live neurons per teacher neuron.
    """
    if not isinstance(ks, Sequence) or len(ks) == 0:
        raise TypeError("ks must be a non-empty sequence of positive ints")
    T = ts.orthonormal_teacher(d, M)
    out = []
    for k in ks:
        sh = ts.sharpness_population(minimum_with_live(k, M, d), ts.Population(T), n_iter=n_iter, tol=tol)
        out.append(sh.eigenvalue)
    return torch.tensor(out, dtype=F64)


# ---------------------------------------------------------------------------------------------------------------
# Learning-rate sweeps
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LRSweep:
    """Solutions of a learning-rate sweep: ``C`` step constants ``c`` × ``S`` seeds, width ``m``.

    Attributes:
        cs: ``(C,)`` float64. seeds: the ``S`` seeds (seed ``s`` gives the same ``W_0`` for every ``c``).
        W: final first layers ``(C, S, m, d)`` on the teacher's device (a diverged run's entries may be
            non-finite); the other tensors are small and live on the CPU.
        live: live neurons ``(C, S)`` (``‖w_i‖ > 10⁻² max_k ‖w_k‖``, :func:`lmcnb.diagnostics.live_neurons`;
            ``m`` for a diverged run). pr: participation ratio of the neuron norms ``(C, S)`` (nan if diverged).
        diverged: ``(C, S)`` bool. final_loss: ``(C, S)`` (population loss for GD, empirical for SGD).
        a: trained output weights ``(C, S, m)`` (``None`` for the seed model's fixed ``a = 1``); with them a
            neuron's score is ``|a_i| ‖w_i‖`` (live count and participation ratio).
    """

    cs: Tensor
    seeds: tuple[int, ...]
    m: int
    W: Tensor
    live: Tensor
    pr: Tensor
    diverged: Tensor
    final_loss: Tensor
    a: Tensor | None = None

    def converged(self, tol: float = 1e-8) -> Tensor:
        """``(C, S)`` bool: the run did not diverge and its final loss is at most ``tol`` (``>= 0``).

        ``diverged`` alone counts a run stopped by the step budget at ``R = 10⁻⁴`` (critical slowing down next
        to ``c*``) as a solution; this mask does not."""
        tol = check_real("tol", tol, 0.0)
        return ~self.diverged & (self.final_loss <= tol)

    @property
    def dense_level(self) -> Tensor:
        """``(S,)``: each seed's live count at the smallest ``c`` of the sweep (``m`` if that run diverged), the
        dense level. A neuron that the small initialisation kills dies at every learning rate (at ``m = 64`` one
        seed of chapter 4 ends with 63 live neurons at every ``c <= c*``); it is not the learning rate's doing.
        The smallest ``c`` must lie below the transition."""
        return torch.where(self.diverged[0], self.m, self.live[0])

    @property
    def dense(self) -> Tensor:
        """``(C, S)`` bool: the run did not diverge and keeps its seed's dense level of live neurons
        (:attr:`dense_level`; all ``m`` unless the initialisation killed some)."""
        return ~self.diverged & (self.live >= self.dense_level[None, :])

    @property
    def sparse(self) -> Tensor:
        """``(C, S)`` bool: the run did not diverge and has fewer live neurons than its seed's dense level."""
        return ~self.diverged & (self.live < self.dense_level[None, :])

    def table(self) -> list[str]:
        """One line per ``c``: live counts per seed (``div`` for a diverged run) and the median participation
        ratio, rounded for printing."""
        lines = [f"{'c':>6s}  {'live neurons per seed':<28s} {'PR (median)':>11s}"]
        for i, c in enumerate(self.cs.tolist()):
            cells = ["div" if bool(self.diverged[i, s]) else str(int(self.live[i, s])) for s in range(len(self.seeds))]
            pr = self.pr[i][~self.diverged[i]]
            med = f"{float(pr.median()):.3f}" if pr.numel() else "-"
            lines.append(f"{c:6.3g}  {' '.join(f'{x:>4s}' for x in cells):<28s} {med:>11s}")
        return lines


def _on_cpu(sweep: LRSweep) -> LRSweep:
    return LRSweep(cs=sweep.cs.cpu(), seeds=sweep.seeds, m=sweep.m, W=sweep.W.cpu(), live=sweep.live.cpu(),
                   pr=sweep.pr.cpu(), diverged=sweep.diverged.cpu(), final_loss=sweep.final_loss.cpu(),
                   a=None if sweep.a is None else sweep.a.cpu())


def solution_sharpness(sweep: LRSweep, T: Tensor, seed_index: int = 0, n_iter: int = 500,
                       tol: float = 1e-6, dead_rel: float = 1e-2) -> Tensor:
    """Sharpness ``λ_max`` of the live coordinates (:func:`lmcnb.teacher_student.sharpness_population`) of the
    solution of seed ``seeds[seed_index]`` at every ``c``: ``(C,)`` float64 on the CPU, nan where it diverged.

    Rows with norm at most ``dead_rel`` times the largest (the dead neurons of :class:`LRSweep`'s live count,
    norms ``<= 1e-6`` in GD runs that are still shrinking) are set to exactly zero first: ``R`` is not twice
    differentiable at a zero row, and the angular curvature ``∝ 1/‖w_i‖`` of an almost-dead row can otherwise
    dominate the spectrum although the row no longer moves the function (in chapter 4's GD runs it raised
    ``η λ_max`` from 1.96 to 4.96).

    Linear stability predicts ``η λ_max = c λ_max / m <= 2`` at every solution GD converged to.
    """
    if not isinstance(sweep, LRSweep):
        raise TypeError(f"sweep must be an LRSweep, got {type(sweep).__name__}")
    j = check_int("seed_index", seed_index, 0)
    if j >= len(sweep.seeds):
        raise ValueError(f"seed_index must be < {len(sweep.seeds)} (the sweep's seeds), got {j}")
    dead_rel = check_real("dead_rel", dead_rel, 0.0, 1.0, high_open=True)
    out = torch.full((len(sweep.cs),), math.nan, dtype=F64)
    for i in range(len(sweep.cs)):
        if not bool(sweep.diverged[i, j]):
            W = sweep.W[i, j]
            norm = W.norm(dim=1)
            W = torch.where((norm > dead_rel * norm.max())[:, None], W, 0.0)
            out[i] = ts.sharpness_population(W, ts.Population(T), n_iter=n_iter, tol=tol).eigenvalue
    return out


def _summarise(cs: Tensor, seeds: list[int], m: int, W: Tensor, diverged: Tensor, final_loss: Tensor,
               a: Tensor | None = None) -> LRSweep:
    C, S = len(cs), len(seeds)
    W = W.reshape(C, S, m, -1)
    a = None if a is None else a.reshape(C, S, m)
    diverged = diverged.reshape(C, S) | ~torch.isfinite(W).all(-1).all(-1)
    if a is not None:
        diverged = diverged | ~torch.isfinite(a).all(-1)
    safe = torch.where(diverged[..., None, None], torch.ones_like(W), W)
    safe_a = None if a is None else torch.where(diverged[..., None], torch.ones_like(a), a)
    score = safe.norm(dim=-1) if a is None else safe.norm(dim=-1) * safe_a.abs()
    live = torch.where(diverged, m, diagnostics.live_neurons(safe, safe_a))
    pr = torch.where(diverged, math.nan, diagnostics.participation_ratio(score))
    return LRSweep(cs=cs, seeds=tuple(seeds), m=m, W=W, live=live.cpu(), pr=pr.cpu(), diverged=diverged.cpu(),
                   final_loss=final_loss.reshape(C, S).cpu(), a=a)


def _initial(m: int, d: int, seeds: list[int], C: int, init_scale: float, device: torch.device) -> Tensor:
    """``W_0 (C·S, m, d)`` on ``device``: seed ``s`` gives :func:`lmcnb.teacher_student.small_init` from a CPU
    ``manual_seed(s)`` generator (the same draw on every device), repeated for every ``c`` (``c``-major order)."""
    W0 = torch.stack([ts.small_init(1, m, d, init_scale, generator=torch.Generator().manual_seed(s))[0]
                      for s in seeds])
    return W0.repeat(C, 1, 1).to(device)


def _initial_outputs(m: int, d: int, seeds: list[int], C: int, init_scale: float, device: torch.device) -> Tensor:
    """``a_0 (C·S, m)``: seed ``s``'s CPU generator, after drawing :func:`_initial`'s ``W_0`` (so ``W_0`` is the
    same with and without trained outputs), draws :func:`lmcnb.teacher_student.small_output_init`."""
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        ts.small_init(1, m, d, init_scale, generator=g)
        out.append(ts.small_output_init(1, m, init_scale, generator=g)[0])
    return torch.stack(out).repeat(C, 1).to(device)


def _check_schedule(schedule: object, kind: type, example: str) -> None:
    if not isinstance(schedule, kind):
        raise TypeError(f"schedule must be a {kind.__module__.rsplit('.', 1)[0]}.{kind.__name__} "
                        f"(e.g. {example}), got {type(schedule).__name__}")


_GD_SWEEP_KEYWORDS = {k: f"schedule=ts.GD({k}=…) (gd_lr_sweep's old defaults: tol=1e-10, check_every=100)"
                      for k in ("steps", "tol", "check_every", "threads")}


@moved_keywords(_GD_SWEEP_KEYWORDS)
def gd_lr_sweep(T: Tensor, m: int, cs: Sequence[float] | Tensor, seeds: Sequence[int], schedule: ts.GD, *,
                init_scale: float = 0.1, cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                executor: Any = _sweep.RUNNER) -> LRSweep:
    """Full-batch GD on the exact population loss for every ``(c, seed)``, ``η = c/m``, in one batched run
    on ``T``'s device.

    Every seed's initialisation ``W_0`` (rows ``N(0, init_scale²/d · I)``) is shared by all ``c``, so the runs
    of one seed differ only in the learning rate. Runs stop at ``R < tol``, on divergence, or after ``steps``.
    With ``schedule.train_output`` the output weights are trained too (student ``f = Σ a_i σ(w_i·x)``, the scope
    test of the mechanism, which needs ``a = 1`` fixed): ``a_0`` is ``N(0, init_scale²)``
    (:func:`lmcnb.teacher_student.small_output_init`, drawn from the seed's generator after ``W_0``) and the
    result carries ``a``.

    Args:
        T: teacher ``(M, d)`` float64. m: student width. cs: increasing step constants ``c`` (``C`` of them).
            seeds: distinct seeds (``S``).
        schedule: the :class:`lmcnb.teacher_student.GD` schedule (``steps``, ``tol``, ``check_every``,
            ``threads``, …); its ``c`` is replaced by each ``c`` of ``cs``. The old keywords ``steps``, ``tol``
            (old default ``1e-10``), ``check_every`` (old default ``100``) and ``threads`` moved there.
        init_scale: initial row scale.
        cache_dir, executor: the sweep is one configuration of :func:`lmcnb.infra.sweep.run_grid` (one width:
            every ``(c, seed)`` in one batch, keyed by the teacher's and the schedule's content,
            :data:`LR_SWEEP_NAMESPACE`), so a chapter calling it once per width resumes, width by width, from
            ``cache_dir``. Both default to the headless runner's settings (:data:`lmcnb.infra.sweep.RUNNER`:
            ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick profile); None: no cache / here.

    Returns:
        :class:`LRSweep` with ``W (C, S, m, d)``.
    """
    m = check_int("m", m, 1)
    c = _check_cs(cs)
    seeds = _check_seeds(seeds)
    T = check_tensor("T", T, ndim=2, dtype=F64)
    _check_schedule(schedule, ts.GD, "GD(steps=20_000, tol=1e-10, check_every=100)")
    init_scale = check_real("init_scale", init_scale, 0.0, low_open=True)
    key = {"sweep": "gd", "teacher": _sweep.tensor_digest(T), "m": m, "cs": c.tolist(), "seeds": seeds,
           "schedule": _sweep.dataclass_key(schedule), "init_scale": init_scale}
    return _cached_lr_sweep(functools.partial(_gd_lr_sweep, T, m, c, seeds, schedule, init_scale), key, T.device,
                            cache_dir, executor)


def _gd_lr_sweep(T: Tensor, m: int, c: Tensor, seeds: list[int], schedule: ts.GD, init_scale: float) -> LRSweep:
    """The computation of :func:`gd_lr_sweep` (arguments validated)."""
    W0 = _initial(m, T.shape[1], seeds, len(c), init_scale, T.device)
    per_model = replace(schedule, c=c.repeat_interleave(len(seeds)).to(T.device))
    if schedule.train_output:
        a0 = _initial_outputs(m, T.shape[1], seeds, len(c), init_scale, T.device)
        res = per_model.run(ts.Population(T), W0, a0=a0)
        return _summarise(c, seeds, m, res.W, res.diverged, res.final_loss, res.a)
    res = per_model.run(ts.Population(T), W0)
    return _summarise(c, seeds, m, res.W, res.diverged, res.final_loss)


_SGD_SWEEP_KEYWORDS = {
    **{k: f"schedule=ts.SGD({k}=…) (sgd_lr_sweep's old default: tol=1e-10)"
       for k in ("batch_size", "epochs", "tol", "threads")},
    **{k: "samples=lmcnb.data.Split(X, y)" for k in ("X", "y")},
}


@moved_keywords(_SGD_SWEEP_KEYWORDS)
def sgd_lr_sweep(T: Tensor, m: int, cs: Sequence[float] | Tensor, seeds: Sequence[int], samples: Split,
                 schedule: ts.SGD, *, data_seed: int = 0, init_scale: float = 0.1,
                 cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER) -> LRSweep:
    """Minibatch SGD (:meth:`lmcnb.teacher_student.SGD.run`) on ``samples`` for every ``(c, seed)``, ``η = c/m``,
    same initialisations as :func:`gd_lr_sweep`; ``data_seed`` seeds the generator (on ``T``'s device) of the
    sample orders. ``final_loss`` is the empirical loss.

    Args:
        T, m, cs, seeds, init_scale: as in :func:`gd_lr_sweep`.
        samples: :class:`lmcnb.data.Split` ``(x (n, d), y (n,))`` float64 on ``T``'s device (the old ``X``, ``y``).
        schedule: the :class:`lmcnb.teacher_student.SGD` schedule (``batch_size``, ``epochs``, ``tol`` (old
            default ``1e-10``), ``threads``, …); its ``c`` is replaced by each ``c`` of ``cs``.
        data_seed: seed of the sample orders (``>= 0``).
        cache_dir, executor: as in :func:`gd_lr_sweep` (the key includes the samples' content).
    """
    m = check_int("m", m, 1)
    c = _check_cs(cs)
    seeds = _check_seeds(seeds)
    T = check_tensor("T", T, ndim=2, dtype=F64)
    _check_schedule(schedule, ts.SGD, "SGD(batch_size=32, epochs=100, tol=1e-10)")
    if schedule.train_output:
        raise ValueError("sgd_lr_sweep trains the seed model (a = 1 fixed); trained outputs: gd_lr_sweep")
    init_scale = check_real("init_scale", init_scale, 0.0, low_open=True)
    data_seed = check_int("data_seed", data_seed, 0)
    if not isinstance(samples, Split):
        raise TypeError(f"samples must be an lmcnb.data.Split (x, y), got {type(samples).__name__}")
    key = {"sweep": "sgd", "teacher": _sweep.tensor_digest(T), "m": m, "cs": c.tolist(), "seeds": seeds,
           "samples": [_sweep.tensor_digest(samples.x), _sweep.tensor_digest(samples.y)],
           "schedule": _sweep.dataclass_key(schedule),
           "data_seed": data_seed, "init_scale": init_scale}
    return _cached_lr_sweep(functools.partial(_sgd_lr_sweep, T, m, c, seeds, samples, schedule, data_seed,
                                              init_scale), key, T.device, cache_dir, executor)


def _sgd_lr_sweep(T: Tensor, m: int, c: Tensor, seeds: list[int], samples: Split, schedule: ts.SGD, data_seed: int,
                  init_scale: float) -> LRSweep:
    """The computation of :func:`sgd_lr_sweep` (arguments validated)."""
    W0 = _initial(m, T.shape[1], seeds, len(c), init_scale, T.device)
    g = torch.Generator(device=T.device).manual_seed(data_seed)
    per_model = replace(schedule, c=c.repeat_interleave(len(seeds)).to(T.device))
    res = per_model.run(samples, W0, generator=g)
    return _summarise(c, seeds, m, res.W, res.diverged, res.final_loss)


#: Key namespace of the sweep cache of :func:`gd_lr_sweep`, :func:`sgd_lr_sweep` and :func:`mlp_lr_sweep`
#: (:func:`lmcnb.infra.sweep.run_grid`): change the version whenever what they compute changes.
LR_SWEEP_NAMESPACE = "ch04-lr-sweep-v1"


def _run_and_store(compute: Callable[[], Any], /, **key: Any) -> dict[str, Any]:
    """The unit of work of the cached sweeps: ``compute()`` (a partial of a module-level function, picklable)
    as a dict of its dataclass fields, tensors moved to the CPU (what the sweep cache stores). ``key`` is the
    configuration; it only names the result."""
    result = compute()
    return {"type": type(result).__name__,
            **{f.name: (v.cpu() if isinstance(v, Tensor) else list(v) if isinstance(v, tuple) else v)
               for f in fields(result) for v in [getattr(result, f.name)]}}


def _cached_lr_sweep(compute: Callable[[], LRSweep], key: dict[str, Any], device: torch.device, cache_dir: Any,
                     executor: Any) -> LRSweep:
    """``compute()`` as the one configuration ``key`` of :func:`lmcnb.infra.sweep.run_grid`; the sweep's ``W`` and
    ``a`` back on ``device`` (where they were computed), the rest on the CPU."""
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    [(_, stored)] = _sweep.run_grid(functools.partial(_run_and_store, compute), [key], cache_dir=cache_dir,
                                    namespace=LR_SWEEP_NAMESPACE, progress=False, executor=executor)
    out = {k: v for k, v in stored.items() if k != "type"}
    out["seeds"] = tuple(out["seeds"])
    out["W"] = out["W"].to(device)
    out["a"] = None if out["a"] is None else out["a"].to(device)
    return LRSweep(**out)


@dataclass(frozen=True)
class Transition:
    """Where a sweep leaves the dense regime.

    Attributes:
        last_dense: the largest ``c`` below ``first_nondense`` at which every run is dense (nan if none).
        first_nondense: the smallest ``c`` at which at least half the runs are *not* dense (sparse or diverged);
            nan if every ``c`` is mostly dense.
        first_sparse: the smallest ``c`` at which at least half the runs converged sparse (nan if none).
        first_diverged: the smallest ``c`` at which every run diverged (nan if none).
    """

    last_dense: float
    first_nondense: float
    first_sparse: float
    first_diverged: float

    @property
    def midpoint(self) -> float:
        """``(last_dense + first_nondense) / 2``: the observed transition (nan if either end is missing)."""
        return 0.5 * (self.last_dense + self.first_nondense)


def observed_transition(sweep: LRSweep) -> Transition:
    """The dense → sparse → divergent transition of ``sweep`` (see :class:`Transition`)."""
    if not isinstance(sweep, LRSweep):
        raise TypeError(f"sweep must be an LRSweep, got {type(sweep).__name__}")
    cs = sweep.cs.tolist()
    S = len(sweep.seeds)
    sweep = _on_cpu(sweep)
    nondense = (~sweep.dense).sum(1) * 2 >= S
    sparse = sweep.sparse.sum(1) * 2 >= S
    all_div = sweep.diverged.all(1)

    def first(mask: Tensor) -> float:
        idx = torch.nonzero(mask)
        return cs[int(idx[0])] if idx.numel() else math.nan

    first_nd = first(nondense)
    last_dense = math.nan
    stop = cs.index(first_nd) if not math.isnan(first_nd) else len(cs)
    for i in range(stop - 1, -1, -1):
        if bool(sweep.dense[i].all()):
            last_dense = cs[i]
            break
    return Transition(last_dense=last_dense, first_nondense=first_nd, first_sparse=first(sparse),
                      first_diverged=first(all_div))


def live_fraction_crossing(sweep: LRSweep, level: float = 0.9, tol: float = 1e-8) -> float:
    """Smallest ``c`` at which the median live fraction ``live/m`` of the converged runs
    (:meth:`LRSweep.converged` with ``tol``) falls to ``level``, linearly interpolated between grid points.

    The depth of the transition: edge of stability (GD stops at the first minimum with ``η λ_max <= 2``, and
    ``λ_max ≈ (live/M) λ_1``) predicts ``live/m ≈ c*/c`` above ``c*``, i.e. a crossing at ``c ≈ c*/level`` and a
    width ``c*(1/level − 1)`` in ``c`` that does **not** shrink with ``m``. ``c`` values without a converged run
    are skipped; nan if the fraction never falls to ``level``, or if it is already below ``level`` at the first
    ``c`` with converged runs.

    Args:
        sweep: the :class:`LRSweep`. level: live fraction in ``(0, 1)``. tol: convergence threshold on the
            final loss (``>= 0``).
    """
    if not isinstance(sweep, LRSweep):
        raise TypeError(f"sweep must be an LRSweep, got {type(sweep).__name__}")
    level = check_real("level", level, 0.0, 1.0, low_open=True, high_open=True)
    ok = sweep.converged(tol).cpu()
    pts = [(c, float((sweep.live[i][ok[i]].double() / sweep.m).median()))
           for i, c in enumerate(sweep.cs.tolist()) if bool(ok[i].any())]
    for k, (c, f) in enumerate(pts):
        if f <= level:
            if k == 0:
                return math.nan
            c0, f0 = pts[k - 1]
            return c0 + (c - c0) * (f0 - level) / (f0 - f)
    return math.nan


def _check_sweeps(sweeps: object, predicted: object) -> tuple[dict[int, LRSweep], dict[int, float]]:
    """``sweeps`` (width → :class:`LRSweep`) and ``predicted`` (width → ``c*``, every width of ``sweeps``)."""
    if not isinstance(sweeps, Mapping) or len(sweeps) == 0:
        raise TypeError(f"sweeps must be a non-empty mapping width -> LRSweep, got {type(sweeps).__name__}")
    if not isinstance(predicted, Mapping):
        raise TypeError(f"predicted must be a mapping width -> c*, got {type(predicted).__name__}")
    for m, sw in sweeps.items():
        if not isinstance(sw, LRSweep):
            raise TypeError(f"sweeps[{m!r}] must be an LRSweep, got {type(sw).__name__}")
        if m not in predicted:
            raise ValueError(f"predicted has no c* for width {m!r} (widths of sweeps: {list(sweeps)})")
    return dict(sweeps), {m: check_real(f"predicted[{m!r}]", predicted[m], 0.0, low_open=True) for m in sweeps}


def dense_below(sweeps: Mapping[int, LRSweep], predicted: Mapping[int, float], scale: float = 1.0,
                margin: float = 0.1, tol: float = 1e-8) -> tuple[tuple[int, ...], bool]:
    """Chapter 4's check "GD solutions are dense below ``c*``", over every width.

    At width ``m`` the runs below the prediction are those with ``c <= scale · c*_m − margin``; each must have
    converged (final loss ``<= tol``, :meth:`LRSweep.converged`) with its seed's dense level of live neurons
    (:attr:`LRSweep.dense`). ``scale = 2`` is the negative control (the prediction doubled, equivalently the
    ``c`` grid shifted by ``2×``).

    Args:
        sweeps: width ``m`` → :class:`LRSweep`. predicted: width → predicted ``c*_m`` (``> 0``).
        scale: factor on the prediction (``> 0``). margin: distance below ``scale · c*`` (``>= 0``).
        tol: convergence threshold on the final loss (``>= 0``).

    Returns:
        ``(counts, ok)``: the number of converged dense runs below the bound, per width in ``sweeps``' order, and
        whether at every width some ``c`` lies below the bound and every run there is converged and dense.
    """
    sweeps, predicted = _check_sweeps(sweeps, predicted)
    scale = check_real("scale", scale, 0.0, low_open=True)
    margin = check_real("margin", margin, 0.0)
    counts, ok = [], True
    for m, sw in sweeps.items():
        below = sw.cs <= scale * predicted[m] - margin
        good = sw.dense & sw.converged(tol)
        counts.append(int(good[below].sum()))
        ok = ok and bool(below.any()) and bool(good[below].all())
    return tuple(counts), ok


def onset_sparse(sweeps: Mapping[int, LRSweep], predicted: Mapping[int, float], scale: float = 1.0,
                 margin: float = 0.1, tol: float = 1e-8) -> tuple[tuple[int, ...], bool]:
    """Chapter 4's check "sharp onset": just above the prediction most runs converge and all of them are sparse.

    At width ``m`` the onset point is the first ``c`` of the grid with ``c >= scale · c*_m + margin``; there at
    least half of the runs must have converged (final loss ``<= tol``) and every converged run must be sparse
    (:attr:`LRSweep.sparse`: fewer live neurons than its seed's dense level). ``scale = 1/2`` is the negative
    control.

    Args:
        sweeps, predicted, scale, tol: as in :func:`dense_below`. margin: distance above ``scale · c*``
            (``>= 0``).

    Returns:
        ``(counts, ok)``: the number of sparse converged runs at the onset point, per width in ``sweeps``'
        order (stopping at the first width whose grid has no ``c`` above the bound; then ``ok`` is False), and
        whether the check holds at every width.
    """
    sweeps, predicted = _check_sweeps(sweeps, predicted)
    scale = check_real("scale", scale, 0.0, low_open=True)
    margin = check_real("margin", margin, 0.0)
    out, ok = [], True
    for m, sw in sweeps.items():
        idx = torch.nonzero(sw.cs >= scale * predicted[m] + margin)
        if not idx.numel():
            return tuple(out), False
        i = int(idx[0])
        conv = sw.converged(tol)[i]
        out.append(int(sw.sparse[i][conv].sum()))
        ok = ok and 2 * int(conv.sum()) >= len(sw.seeds)
        ok = ok and bool(sw.sparse[i][conv].all())
    return tuple(out), ok


def diverges_within(transitions: Mapping[int, Transition], predicted: Mapping[int, float], scale: float = 1.0,
                    factor: float = 1.5) -> tuple[tuple[float, ...], bool]:
    """Chapter 4's check "GD diverges a little above ``c*``": at every width the first ``c`` at which all runs
    diverged (:attr:`Transition.first_diverged`) lies in ``(scale · c*_m, factor · scale · c*_m]``.
    ``scale = 2`` (the window ``(2c*, 3c*]``) is the negative control.

    Args:
        transitions: width → :class:`Transition` (:func:`observed_transition`). predicted: width → ``c*_m``.
        scale: factor on the prediction (``> 0``). factor: upper end of the window over its lower end (``> 1``).

    Returns:
        ``(first_diverged, ok)``: the first all-diverged ``c`` per width (nan if none; then ``ok`` is False).
    """
    if not isinstance(transitions, Mapping) or len(transitions) == 0:
        raise TypeError("transitions must be a non-empty mapping width -> Transition")
    for m, tr in transitions.items():
        if not isinstance(tr, Transition):
            raise TypeError(f"transitions[{m!r}] must be a Transition, got {type(tr).__name__}")
        if m not in predicted:
            raise ValueError(f"predicted has no c* for width {m!r}")
    scale = check_real("scale", scale, 0.0, low_open=True)
    factor = check_real("factor", factor, 1.0, low_open=True)
    fd = tuple(tr.first_diverged for tr in transitions.values())
    ok = all(scale * predicted[m] < tr.first_diverged <= factor * scale * predicted[m]
             for m, tr in transitions.items())
    return fd, ok


# ---------------------------------------------------------------------------------------------------------------
# Barriers of pairs of solutions
# ---------------------------------------------------------------------------------------------------------------

def weight_match_rows(W1: Tensor, W2: Tensor) -> Tensor:
    """Weight matching for the seed model (notes §2.3): the permutation ``p (m,)`` minimising
    ``Σ_i ‖w_i^(1) − w_{p[i]}^(2)‖²``; ``W2[p]`` is aligned with ``W1`` (:func:`lmcnb.teacher_student.weight_match`)."""
    return ts.weight_match(W1, W2)


def pair_barriers(W1: Tensor, W2: Tensor, T: Tensor, align_tol: float = 0.05, dead_rel: float = 1e-2,
                  lambdas: Sequence[float] | Tensor | None = None) -> ts.PairBarriers:
    """Identity, weight-matching and functional-matching barriers between ``W1`` and ``W2`` (``(m, d)`` float64;
    :func:`lmcnb.teacher_student.pair_barriers`) and the Hall criterion on their neuron types.

    Types (:func:`lmcnb.teacher_student.neuron_types`): a row is dead if its norm is at most ``dead_rel`` times
    the largest row norm of the pair (the live-neuron threshold), else of type ``j`` if its angle to ``e_j`` has
    sine at most ``align_tol`` (GD solutions at ``R ≈ 1e-10`` are aligned to ``≈ 1e-3``).

    Returns:
        :class:`lmcnb.teacher_student.PairBarriers` of the pair (0-D tensors) with ``hall`` a 0-D bool tensor.

    Raises:
        ValueError: a live row aligned with no teacher direction (the pair is not near the minimum manifold).
    """
    W1 = check_tensor("W1", W1, ndim=2, dtype=F64)
    W2 = check_tensor("W2", W2, ndim=2, dtype=F64)
    align_tol = check_real("align_tol", align_tol, 0.0, 1.0, low_open=True, high_open=True)
    dead_rel = check_real("dead_rel", dead_rel, 0.0, 1.0, high_open=True)
    dead_tol = dead_rel * float(torch.cat([W1, W2]).norm(dim=1).max())
    pb = ts.pair_barriers(W1, W2, T, lambdas=lambdas)
    hall = ts.hall_lmc_criterion(W1, W2, T, tol=align_tol, dead_tol=dead_tol)
    return replace(pb, hall=torch.tensor(bool(hall)))


def hall_shuffled_types(W1: Tensor, W2: Tensor, T: Tensor, generator: torch.Generator, align_tol: float = 0.05,
                        dead_rel: float = 1e-2) -> bool:
    """Negative control of the Hall criterion: :func:`lmcnb.teacher_student.hall_lmc_criterion`'s inequalities
    on the neuron types of ``W1`` and ``W2`` (``(m, d)`` float64, types as in :func:`pair_barriers`) after every
    live neuron of ``W2`` is given a type drawn uniformly from ``0 … M−1`` (``generator``, CPU); dead neurons stay
    dead. With the types scrambled the criterion should no longer predict which pairs are exactly connected.

    Raises:
        ValueError: a live row aligned with no teacher direction.
    """
    W1 = check_tensor("W1", W1, ndim=2, dtype=F64)
    W2 = check_tensor("W2", W2, ndim=2, dtype=F64)
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape (m, d), got {tuple(W1.shape)} and {tuple(W2.shape)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    align_tol = check_real("align_tol", align_tol, 0.0, 1.0, low_open=True, high_open=True)
    dead_rel = check_real("dead_rel", dead_rel, 0.0, 1.0, high_open=True)
    M = T.shape[0]
    dead_tol = dead_rel * float(torch.cat([W1, W2]).norm(dim=1).max())
    t1 = ts.neuron_types(W1, T, align_tol, dead_tol).cpu()
    t2 = ts.neuron_types(W2, T, align_tol, dead_tol).cpu()
    t2 = torch.where(t2 >= 0, torch.randint(0, M, t2.shape, generator=generator), t2)

    def counts(t: Tensor) -> tuple[Tensor, int]:
        return torch.bincount(t[t >= 0], minlength=M), int((t < 0).sum())

    (n1, z1), (n2, z2) = counts(t1), counts(t2)
    return int((n1 - n2).clamp_min(0).sum()) <= z2 and int((n2 - n1).clamp_min(0).sum()) <= z1


def sweep_pair_barriers(sweep: LRSweep, T: Tensor, **kwargs: object) -> dict[float, list[ts.PairBarriers]]:
    """:func:`pair_barriers` for the seed pairs ``(seeds[0], seeds[1]), (seeds[2], seeds[3]), …`` at every
    ``c`` of ``sweep``; pairs with a diverged run are left out (a ``c`` with no valid pair maps to ``[]``)."""
    if not isinstance(sweep, LRSweep):
        raise TypeError(f"sweep must be an LRSweep, got {type(sweep).__name__}")
    if len(sweep.seeds) % 2:
        raise ValueError(f"pairs need an even number of seeds, got {len(sweep.seeds)}")
    out: dict[float, list[ts.PairBarriers]] = {}
    for i, c in enumerate(sweep.cs.tolist()):
        out[c] = [pair_barriers(sweep.W[i, s], sweep.W[i, s + 1], T, **kwargs)
                  for s in range(0, len(sweep.seeds), 2)
                  if not (bool(sweep.diverged[i, s]) or bool(sweep.diverged[i, s + 1]))]
    return out


def exactly_connected(pairs: Mapping[float, Sequence[ts.PairBarriers]], c_star: float, kind: str = "functional",
                      exact: float = 1e-7, apart: float = 1e-6) -> tuple[tuple[int, float, float], bool]:
    """Chapter 4's check "sparse GD pairs exactly connected, dense ones not" on :func:`sweep_pair_barriers`'s
    output.

    The *sparse* pairs are those whose Hall criterion holds (``hall`` True, at any ``c``); the *dense* pairs are
    all pairs at ``c < c_star``. The check holds if there is a sparse pair, every sparse pair's ``kind`` barrier is
    ``< exact`` and every dense pair's is ``>= apart``. ``kind = "identity"`` (no permutation) is the negative
    control.

    Args:
        pairs: ``c`` → the pairs' :class:`lmcnb.teacher_student.PairBarriers` (with ``hall``). c_star: the
            predicted transition. kind: ``"identity"``, ``"weight"``, ``"functional"`` or ``"perm"``.
        exact, apart: thresholds (``> 0``).

    Returns:
        ``((number of sparse pairs, largest sparse barrier, smallest dense barrier), ok)`` (nan for an empty group;
        then ``ok`` is False).
    """
    if not isinstance(pairs, Mapping):
        raise TypeError(f"pairs must be a mapping c -> list of PairBarriers, got {type(pairs).__name__}")
    if kind not in ts.BARRIER_KINDS:
        raise ValueError(f"kind must be one of {ts.BARRIER_KINDS}, got {kind!r}")
    c_star = check_real("c_star", c_star, 0.0, low_open=True)
    exact = check_real("exact", exact, 0.0, low_open=True)
    apart = check_real("apart", apart, 0.0, low_open=True)
    every = [pb for prs in pairs.values() for pb in prs]
    if any(pb.hall is None for pb in every):
        raise ValueError("every pair needs its Hall criterion (lr_sparsity.pair_barriers / sweep_pair_barriers)")
    sparse = [float(getattr(pb, kind)) for pb in every if bool(pb.hall)]
    dense = [float(getattr(pb, kind)) for c, prs in pairs.items() for pb in prs if c < c_star]
    ok = len(sparse) > 0 and len(dense) > 0 and max(sparse) < exact and min(dense) >= apart
    return (len(sparse), max(sparse, default=math.nan), min(dense, default=math.nan)), ok


def manifold_pair_barriers(m: int, M: int, d: int, dead_prob: float, pairs: int, seed: int = 0,
                           split: str = "equal") -> list[ts.PairBarriers]:
    """:func:`pair_barriers` for ``pairs`` pairs of independent exact minima drawn from the neuron-sparse
    distribution SP(M, r) (:func:`lmcnb.teacher_student.sample_minimum` with ``dead_prob = r``), the training-free
    counterpart of sparse GD solutions; pair ``k`` uses generator seeds ``seed + 2k`` and ``seed + 2k + 1``."""
    pairs = check_int("pairs", pairs, 1)
    seed = check_int("seed", seed, 0)
    T = ts.orthonormal_teacher(d, M)
    out = []
    for k in range(pairs):
        W1, W2 = (ts.sample_minimum(m, M, d, torch.Generator().manual_seed(seed + 2 * k + j), dead_prob=dead_prob,
                                    split=split) for j in range(2))
        out.append(pair_barriers(W1, W2, T, align_tol=1e-6))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Real data: one-hidden-layer MLPs across learning rates
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MLPSweep:
    """One-hidden-layer MLPs trained at ``L`` learning rates with ``2P`` seeds each (``P`` pairs).

    Attributes:
        lrs: ``(L,)``. live: fraction of hidden units active on at least one evaluation input ``(L, 2P)``.
        train_loss, train_acc: on the evaluation inputs ``(L, 2P)``.
        identity, weight: train-loss barriers of the pairs without permutation (the identity) and with weight
            matching ``(L, P)``.
        random: train-loss barriers after a uniformly random permutation of model b's hidden units ``(L, P)``
            (:class:`lmcnb.matching.RandomMatching`, seed = the pair's index): the chance baseline a matcher must
            beat, the measured negative control of "weight matching removes most of the barrier"; ``None`` for a
            sweep built without it.
    """

    lrs: Tensor
    live: Tensor
    train_loss: Tensor
    train_acc: Tensor
    identity: Tensor
    weight: Tensor
    random: Tensor | None = None

    def remaining_fraction(self, view: str = "weight") -> float:
        """Chapter 4's statistic of "weight matching removes most of the barrier": the largest ratio of a pair's
        barrier under ``view`` (``"weight"``, ``"random"`` or ``"identity"``) to its identity barrier, over the pairs
        at the rates where every run trained (:attr:`trained`); nan if no rate trained. ``view="random"`` is the
        check's negative control (a random permutation leaves most of the barrier, or raises it)."""
        view = check_choice("view", view, ("weight", "random", "identity"))
        values = getattr(self, view)
        if values is None:
            raise ValueError("this sweep has no random-permutation barriers (MLPSweep.random is None)")
        if not bool(self.trained.any()):
            return math.nan
        return float((values / self.identity)[self.trained].max())

    @property
    def trained(self) -> Tensor:
        """``(L,)`` bool: every run at this learning rate reached training accuracy ``>= 0.9``."""
        return (self.train_acc >= 0.9).all(1)

    def kills_units(self, rates: Tensor | None = None, dense: float = 0.99,
                    sparse: float = 0.85) -> tuple[tuple[float, float], bool]:
        """Chapter 4's check "a larger learning rate kills hidden units": every run at the smallest rate has a
        live fraction ``>= dense``, and at some rate among ``rates`` (``(L,)`` bool, default all) where every run
        trained (:attr:`trained`) the mean live fraction is ``<= sparse``. ``rates = lrs <= 0.2`` is chapter 4's
        negative control.

        Returns:
            ``((smallest live fraction at the smallest rate, smallest mean live fraction over the trained rates
            in rates), ok)``; nan for the second if no rate qualifies (then ``ok`` is False).
        """
        rates = torch.ones_like(self.trained) if rates is None else rates
        if not isinstance(rates, Tensor) or rates.dtype != torch.bool or rates.shape != self.trained.shape:
            raise ValueError(f"rates must be a bool mask of shape {tuple(self.trained.shape)}")
        dense = check_real("dense", dense, 0.0, 1.0)
        sparse = check_real("sparse", sparse, 0.0, 1.0)
        means = self.live.mean(1)[self.trained & rates]
        ok = bool((self.live[0] >= dense).all()) and bool((means <= sparse).any())
        low = float(means.min()) if means.numel() else math.nan
        return (float(self.live[0].min()), low), ok

    def __getattr__(self, name: str) -> object:
        if name == "naive":
            raise AttributeError("MLPSweep.naive was renamed MLPSweep.identity (the barrier without permutation)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_MLP_SWEEP_KEYWORDS = {**{k: "train=lmcnb.data.Split(x, y)" for k in ("x", "y")},
                       **{k: "evaluation=lmcnb.data.Split(x_eval, y_eval)" for k in ("x_eval", "y_eval")}}


@moved_keywords(_MLP_SWEEP_KEYWORDS)
def mlp_lr_sweep(train: Split, width: int, lrs: Sequence[float], pairs: int, config: object,
                 evaluation: Split, lambdas: Tensor, seed: int = 0, *,
                 cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER) -> MLPSweep:
    """Train MLPs ``in → width → classes`` at each learning rate (plain SGD under ``config``, a
    :class:`lmcnb.train.TrainConfig` whose ``lr`` is replaced per model) in one batched run, ``2·pairs`` seeds
    per rate (seeds ``seed + 2·pairs·l + k``), then measure live units and the identity, weight-matched and
    randomly permuted barriers (``RandomMatching(seed=k)`` for the ``k``-th pair).

    Args:
        train: training data, :class:`lmcnb.data.Split` ``(x (n, ...), y (n,))`` (the old ``x``, ``y``).
        width: hidden width. lrs: increasing learning rates. pairs: pairs per rate.
        evaluation: the :class:`lmcnb.data.Split` on which live units, losses and barriers are measured (the
            old ``x_eval``, ``y_eval``). lambdas: path grid. seed: first seed (``>= 0``).
        cache_dir, executor: as in :func:`gd_lr_sweep`: the whole sweep is one configuration (one batched run),
            keyed by the data's content, ``config`` and the arguments.
    """
    for name, split in (("train", train), ("evaluation", evaluation)):
        if not isinstance(split, Split):
            raise TypeError(f"{name} must be an lmcnb.data.Split (x, y), got {type(split).__name__}")
    lr_t = _check_cs(list(lrs) if not isinstance(lrs, Tensor) else lrs)
    P = check_int("pairs", pairs, 1)
    width = check_int("width", width, 1)
    seed = check_int("seed", seed, 0)
    digest = _sweep.tensor_digest
    key = {"sweep": "mlp", "train": [digest(train.x), digest(train.y)],
           "evaluation": [digest(evaluation.x), digest(evaluation.y)], "width": width, "lrs": lr_t.tolist(),
           "pairs": P, "config": _sweep.dataclass_key(config),
           "lambdas": _sweep.tensor_digest(torch.as_tensor(lambdas)), "seed": seed}
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    [(_, stored)] = _sweep.run_grid(
        functools.partial(_run_and_store, functools.partial(_mlp_lr_sweep, train, width, lr_t, P, config, evaluation,
                                                            lambdas, seed)),
        [key], cache_dir=cache_dir, namespace=LR_SWEEP_NAMESPACE, progress=False, executor=executor)
    return MLPSweep(**{k: v for k, v in stored.items() if k != "type"})


def _mlp_lr_sweep(train: Split, width: int, lr_t: Tensor, P: int, config: object, evaluation: Split,
                  lambdas: Tensor, seed: int) -> MLPSweep:
    """The computation of :func:`mlp_lr_sweep` (arguments validated)."""
    from .. import barrier, matching, merge
    from .. import train as training

    x, y, x_eval, y_eval = train.x, train.y, evaluation.x, evaluation.y
    L, n_per = len(lr_t), 2 * P
    seeds = [seed + i for i in range(L * n_per)]
    classes = int(y.max()) + 1
    inits = training.init_mlps((x[0].numel(), width, classes), len(seeds), seeds, device=x.device)
    nets, _ = training.train_mlps(inits, x, y, config, seeds=seeds, lrs=lr_t.repeat_interleave(n_per).tolist())
    live, loss, acc = (torch.zeros(L, n_per, dtype=F64) for _ in range(3))
    identity, weight, rand = (torch.zeros(L, P, dtype=F64) for _ in range(3))
    with torch.no_grad():
        for b, net in enumerate(nets):
            ev = barrier.evaluate(net, x_eval, y_eval)
            live[b // n_per, b % n_per] = float(diagnostics.active_units(net.features(x_eval)[0]))
            loss[b // n_per, b % n_per], acc[b // n_per, b % n_per] = ev.loss, ev.accuracy
    for b in range(0, len(nets), 2):
        matchers = {"identity": matching.IdentityMatching(), "weight": matching.WeightMatching(seed=0),
                    "random": matching.RandomMatching(seed=b // 2)}
        res = merge.compare(merge.Pair(nets[b], nets[b + 1]), matchers, lambdas, merge.Empirical(x_eval, y_eval))
        identity[b // n_per, (b % n_per) // 2] = res.outcomes["identity"].barrier
        weight[b // n_per, (b % n_per) // 2] = res.outcomes["weight"].barrier
        rand[b // n_per, (b % n_per) // 2] = res.outcomes["random"].barrier
    return MLPSweep(lrs=lr_t, live=live, train_loss=loss, train_acc=acc, identity=identity, weight=weight,
                    random=rand)


#: Names that moved out of this module (one result type per concept).
_MOVED = {"PairBarrier": "lmcnb.papers.teacher_student.PairBarriers"}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        raise AttributeError(f"lmcnb.experiments.lr_sparsity.{name} moved to {_MOVED[name]} (one type for a "
                             f"pair's barriers; its field `naive` is now `identity`)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
