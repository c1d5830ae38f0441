"""Width rates: how fast the matched distance or the barrier modulo permutation vanishes as the width ``m`` grows.

Two mechanisms are contrasted (book chapter 3).

**No teacher structure — the curse of dimensionality** (Ferbach, Goujaud, Gidel & Dieuleveut 2024). Read the ``m``
neurons of a layer as i.i.d. atoms ``w_1, …, w_m`` of a distribution ``μ`` with a density on ``R^p``. Two
independent networks give two empirical measures ``μ̂_m, ν̂_m``, and by Birkhoff the best permutation realises
``W_2(μ̂_m, ν̂_m)``: ``min_π (1/m) Σ_i ‖w_i − w'_{π(i)}‖² = W_2²(μ̂_m, ν̂_m)``. For ``p > 4`` this decays like
``m^{−2/p}`` (``W_2 ≍ m^{−1/p}``; Fournier & Guillin 2015, Dereich et al. 2013): the exponent shrinks with the
dimension. :func:`ot_rate_exponent` gives the exponent and :func:`iid_matching_sweep` measures ``W_2²`` over
widths, dimensions and pairs (the samplers of :mod:`lmcnb.experiments.ot_rates`, the exact assignment of

**A teacher — no curse** (Zhan, Li & Wu 2025). Trained teacher–student neurons concentrate on the ``M`` teacher
directions (plus dead neurons), a distribution with ``M + 1`` atoms whatever ``d`` is, so two solutions differ only
by the multinomial fluctuation of the group sizes. The barrier of the exact-population-GD solutions is
:meth:`lmcnb.teacher_student.TeacherStudent.barrier_sweep`; :func:`sgd_barrier_sweep` does the same for minibatch
SGD on finite samples (a :class:`lmcnb.teacher_student.SGD` schedule) (sampling noise in training; the barrier itself is still the exact population one).

Slopes of either against ``m`` are fitted with :func:`lmcnb.fit.bootstrap_slopes`.

**The asymptotic range and the verdict** (:func:`asymptotic_range`, :func:`rate_measurement`). A rate "for ``m``
sufficiently large" is fitted only over widths chosen by a stated rule, not by eye: the widths *above the last
local maximum* of the per-width centre (mean or median over pairs) of the barrier, cut at the first width whose
endpoints are not converged relative to the barrier (largest final loss ``R_end > loss_ratio · B``, default
``B/100``). The one-sided claim "decays at least as fast as ``m^{bound}``" (``bound = −½``) then *holds* when the
upper end of the slope's bootstrap interval is ``≤ bound``, *fails* when its lower end is ``> bound``, and is
*not established* otherwise or when the range has fewer than ``min_widths`` widths.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..papers import teacher_student as ts
from .._validate import check_choice, check_int, check_real, moved_keywords
from .. import fit as _fit
from ..infra import sweep as _sweep
from ..data import Split, teacher_student_data
from ..papers.teacher_student._inputs import _check_f64
from . import ot_rates

__all__ = ["DISTRIBUTIONS", "ot_rate_exponent", "iid_matching_sweep", "sgd_barrier_sweep", "RATE_VERDICTS",
           "sgd_step_constant", "FiniteSampleTables", "training_barriers",
           "finite_sample_sweep", "AsymptoticRange", "asymptotic_range", "RateMeasurement", "rate_measurement",
           "table_rate", "upper_ends", "joint_verdict"]

DISTRIBUTIONS = ("gaussian", "uniform")
F64 = torch.float64


def ot_rate_exponent(p: int) -> float:
    """Exponent ``α`` of ``E W_2²(μ̂_m, ν̂_m) ≍ m^α`` for two independent ``m``-point samples of a density on ``R^p``.

    ``α = −2/p`` for ``p ≥ 4`` and ``α = −1`` for ``p ≤ 2`` (the parametric limit ``min(1, 2/p)``), up to
    logarithmic factors at ``p = 2`` (``log m / m``, Ajtai–Komlós–Tusnády) and ``p = 4`` (``m^{−1/2} log m``);
    ``p = 3`` gives ``−2/3``. For the matched distance ``W_2`` itself halve the exponent (``m^{−1/p}``).
    """
    p = check_int("p", p, 1)
    return -min(1.0, 2.0 / p)


def iid_matching_sweep(widths: Sequence[int], dims: Sequence[int], n_pairs: int, *, seed: int = 0,
                       distribution: str = "gaussian") -> dict[int, Tensor]:
    """``W_2²`` between pairs of independent i.i.d. neuron clouds, for every dimension and width.

    Each ``(p, m)`` cell is reproducible on its own: its pairs come from
    :func:`lmcnb.experiments.ot_rates.two_sample_wasserstein` seeded with ``1_000_003·m + 7_919·p + seed``.

    Args:
        widths: the widths ``m`` (``W`` of them, each ``>= 1``). dims: the dimensions ``p``.
        n_pairs: pairs of clouds per ``(p, m)``. seed: offset of the generators' seeds (``>= 0``).
        distribution: ``"gaussian"`` (``N(0, I_p)``) or ``"uniform"`` (the unit cube ``[0, 1]^p``).

    Returns:
        ``{p: values (W, n_pairs)}``, float64, row ``i`` at ``widths[i]`` (ready for
        :func:`lmcnb.fit.bootstrap_slopes`).
    """
    ws = _int_list("widths", widths)
    ps = _int_list("dims", dims)
    n_pairs = check_int("n_pairs", n_pairs, 1)
    seed = check_int("seed", seed, 0)
    distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
    out: dict[int, Tensor] = {}
    for p in ps:
        sampler = ot_rates.gaussian_sampler(p) if distribution == "gaussian" else ot_rates.uniform_sampler(p)
        rows = [ot_rates.two_sample_wasserstein(sampler, [m], n_pairs, p=2,
                                                 seed=1_000_003 * m + 7_919 * p + seed)[0] for m in ws]
        out[p] = torch.as_tensor(np.stack(rows), dtype=F64) ** 2
    return out


_SGD_SWEEP_KEYWORDS = {k: f"schedule=ts.SGD({k}=…)" for k in ("batch_size", "epochs", "c", "tol", "threads")}


def sgd_step_constant(c: float, d: int, batch_size: int) -> float:
    """The step constant ``c_SGD = c / (1 + d / b)`` of minibatch SGD (``η = c_SGD / m``) that stays stable at every
    input dimension ``d`` for batch size ``b``.

    Why: at an interpolating minimum the minibatch loss ``(1/b) Σ_n (f(x_n) − y_n)²`` has Hessian
    ``(2/b) Σ_n g_n g_nᵀ`` with ``g_n = (1[w_i·x_n > 0] x_n)_{i ≤ m}``. Its top eigenvalue is about the population
    one, ``λ_pop ≈ 0.75 m`` for the dense solutions (GD with ``η = c/m`` is stable for ``c < c* ≈ 2.65``,
    chapter 4), plus the diagonal of the minibatch Gram matrix, ``(2/b) E‖g_n‖² ≈ (2/b)(m/2) E‖x‖² = m d / b``
    (about half the neurons are active on a sample). So ``λ_b ≈ m (0.75 + d/b)`` and ``η λ_b ≈ c (0.75 + d/b) /
    (1 + d/b) < 2`` for ``c ≤ 2`` at every ``d`` and ``b``, while the plain ``η = c/m`` gives ``c (0.75 + d/b)``,
    which exceeds 2 for ``c = 2`` once ``d/b > 0.25`` (``d = 32, b = 64``: SGD diverges).

    Args:
        c: the population step constant (``> 0``). d: input dimension (``>= 1``). batch_size: ``b >= 1``.
    """
    c = check_real("c", c, 0.0, low_open=True)
    d, b = check_int("d", d, 1), check_int("batch_size", batch_size, 1)
    return c / (1.0 + d / b)


@dataclass(frozen=True)
class FiniteSampleTables:
    """Barriers of the same SGD solutions under two losses (:func:`finite_sample_sweep`).

    Attributes:
        population: the exact population barriers; ``loss_a``/``loss_b`` the ends' population losses ``R``.
        training: the barriers of the training loss ``L_n(θ) = (1/n) Σ_k (f_θ(x_k) − y_k)²`` — the loss SGD
            minimised — along the same paths (same permutations); ``loss_a``/``loss_b`` the ends' training losses.
    """

    population: ts.BarrierTable
    training: ts.BarrierTable


def training_barriers(W1: Tensor, W2: Tensor, perms: dict[str, Tensor], samples: Split,
                      lambdas: Tensor) -> dict[str, Tensor]:
    """Linear barriers of the training loss ``L_n`` (fixed output weights ``a = 1``) between ``P`` pairs, for the
    identity path and for each given permutation of model b.

    ``B_n(θ_a, θ_b) = max_λ [L_n(θ_λ) − ((1 − λ) L_n(θ_a) + λ L_n(θ_b))]``, ``θ_λ = (1 − λ) W1 + λ W2[π]``.

    Args:
        W1, W2: first layers ``(P, m, d)`` float64. perms: ``{name: (P, m) int64}`` permutations applied to ``W2``
            (e.g. ``{"weight": pb.weight_perm, "functional": pb.functional_perm}``). samples: the training
            :class:`lmcnb.data.Split` (``x (n, d)``, ``y (n,)``). lambdas: the grid ``(L,)`` with both ends.

    Returns:
        ``{"identity": (P,), **{name: (P,)}, "ends": (P, 2)}`` (``ends``: ``L_n`` of model a and model b).
    """
    W1, W2 = _check_f64("W1", W1, (3,)), _check_f64("W2", W2, (3,))
    if W1.shape != W2.shape:
        raise ValueError(f"W1 and W2 must have the same shape, got {tuple(W1.shape)} and {tuple(W2.shape)}")
    if not isinstance(samples, Split):
        raise TypeError(f"samples must be an lmcnb.data.Split, got {type(samples).__name__}")
    for k, p in perms.items():
        if not isinstance(p, Tensor) or p.shape != W1.shape[:2]:
            raise ValueError(f"perms[{k!r}] must be a (P, m) = {tuple(W1.shape[:2])} tensor of permutations")
    lam = torch.as_tensor(lambdas).to(W1)
    if lam.ndim != 1 or lam.numel() < 2 or float(lam[0]) != 0.0 or float(lam[-1]) != 1.0:
        raise ValueError("lambdas must be a 1-D grid from 0 to 1")
    X, y = samples.x.to(W1), samples.y.to(W1)
    if X.ndim != 2 or X.shape[1] != W1.shape[2] or y.shape != X.shape[:1]:
        raise ValueError(f"samples must have x (n, {W1.shape[2]}) and y (n,), got {tuple(X.shape)}, {tuple(y.shape)}")
    paths = {"identity": W2, **{k: torch.stack([W2[i].index_select(0, p[i]) for i in range(W2.shape[0])])
                                for k, p in perms.items()}}
    out: dict[str, Tensor] = {}
    for name, W2p in paths.items():
        theta = (1 - lam[None, :, None, None]) * W1[:, None] + lam[None, :, None, None] * W2p[:, None]  # (P, L, m, d)
        f = torch.relu(torch.einsum("nd,plmd->plnm", X, theta)).sum(-1)  # (P, L, n)
        curve = ((f - y) ** 2).mean(-1)  # (P, L)
        base = (1 - lam) * curve[:, :1] + lam * curve[:, -1:]
        out[name] = (curve - base).amax(-1)
        out.setdefault("ends", curve[:, [0, -1]])
    return out


#: Key namespace of the sweep cache of :func:`sgd_barrier_sweep` and :func:`finite_sample_sweep`
#: (:func:`lmcnb.infra.sweep.run_grid`): change the version whenever what they compute changes.
SGD_SWEEP_NAMESPACE = "ch03-sgd-sweep-v1"


def _table_fields(table: ts.BarrierTable | None) -> dict[str, Any] | None:
    """A :class:`~lmcnb.teacher_student.BarrierTable` without solutions as plain data (what the cache stores)."""
    if table is None:
        return None
    if table.solutions is not None:
        raise ValueError("a table with solutions is not stored by the SGD sweeps")
    return {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(table) if f.name != "solutions"
            for v in [getattr(table, f.name)]}


def _table_from(stored: dict[str, Any] | None) -> ts.BarrierTable | None:
    if stored is None:
        return None
    return ts.BarrierTable(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in stored.items()})


def _sgd_unit(model: dict[str, Any], widths: list[int], n_pairs: int, schedule: dict[str, Any], n_samples: int,
              data_seed: int, first_seed: int, training: bool, *, device: str) -> dict[str, Any]:
    """One configuration of :func:`sgd_barrier_sweep` / :func:`finite_sample_sweep` (every width of the call: the
    finite-sample runs train all widths in one batch), from JSON values: ``{"population": ..., "training": ...}``
    tables as plain data on the CPU. Module level, so an executor's worker can run it."""
    out = _sgd_pairs_compute(ts.TeacherStudent(**model), widths, n_pairs, ts.SGD(**schedule), n_samples, data_seed,
                             first_seed, torch.device(device), training)
    return {"population": _table_fields(out.population), "training": _table_fields(out.training)}


def _sgd_pairs(model: ts.TeacherStudent, widths: object, n_pairs: object, schedule: object, n_samples: object,
               data_seed: object, first_seed: object, device: object, training: bool, cache_dir: Any = _sweep.RUNNER,
               executor: Any = _sweep.RUNNER) -> FiniteSampleTables:
    """The runs of :func:`sgd_barrier_sweep` / :func:`finite_sample_sweep` (``training``: also the training-loss
    table; otherwise ``training`` is ``None``), as one configuration of :func:`lmcnb.infra.sweep.run_grid`."""
    if not isinstance(model, ts.TeacherStudent):
        raise TypeError(f"model must be a TeacherStudent, got {type(model).__name__}")
    if model.trained_output:
        raise ValueError("sgd_barrier_sweep supports output='fixed' only")
    if not isinstance(schedule, ts.SGD):
        raise TypeError(f"schedule must be a teacher_student.SGD (e.g. SGD(batch_size=64, epochs=100)), "
                        f"got {type(schedule).__name__}")
    if schedule.train_output or isinstance(schedule.c, Tensor):
        raise ValueError("sgd_barrier_sweep needs an SGD schedule with train_output=False and a numeric c")
    ws = _int_list("widths", widths)
    n_pairs = check_int("n_pairs", n_pairs, 1)
    n_samples = check_int("n_samples", n_samples, 1)
    data_seed, first_seed = check_int("data_seed", data_seed, 0), check_int("first_seed", first_seed, 0)
    dev = torch.device("cpu") if device is None else torch.device(device)
    config = {"model": asdict(model), "widths": ws, "n_pairs": n_pairs, "schedule": asdict(schedule),
              "n_samples": n_samples, "data_seed": data_seed, "first_seed": first_seed, "training": training}
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    [(_, stored)] = _sweep.run_grid(functools.partial(_sgd_unit, device=str(dev)), [config], cache_dir=cache_dir,
                                    namespace=SGD_SWEEP_NAMESPACE, progress=False, executor=executor)
    return FiniteSampleTables(population=_table_from(stored["population"]), training=_table_from(stored["training"]))


def _sgd_pairs_compute(model: ts.TeacherStudent, ws: list[int], n_pairs: int, schedule: ts.SGD, n_samples: int,
                       data_seed: int, first_seed: int, dev: torch.device, training: bool) -> FiniteSampleTables:
    """The computation of :func:`_sgd_pairs` (arguments validated)."""
    c = schedule.c
    T = model.teacher(dev)
    train = teacher_student_data(model.teacher(), n_samples, torch.Generator().manual_seed(data_seed),
                                 inputs=model.inputs).to(dev)
    sgd_model = replace(model, c=c)
    rows, losses, conv = [], [], []
    kinds = {k: [] for k in ("identity", "weight", "functional", "perm")}
    tr = {k: [] for k in ("identity", "weight", "functional", "perm", "ends")}
    seeds = list(range(first_seed, first_seed + 2 * n_pairs))
    if training:  # one zero-padded batch of every width: the rows beyond a width stay zero under SGD
        W0, wt = ts.pad_rows([sgd_model.init(m, s)[0] for m in ws for s in seeds])
        r = schedule.run(train, W0.to(dev), widths=wt.to(dev), generator=torch.Generator().manual_seed(first_seed))
        runs = [(m, r.W[k * len(seeds):(k + 1) * len(seeds), :m], r.converged[k * len(seeds):(k + 1) * len(seeds)])
                for k, m in enumerate(ws)]
    else:
        runs = []
        for m in ws:
            W0 = torch.stack([sgd_model.init(m, s)[0] for s in seeds]).to(dev)
            r = schedule.run(train, W0, generator=torch.Generator().manual_seed(1_000_003 * m + first_seed))
            runs.append((m, r.W, r.converged))
    for m, W, converged in runs:
        W = W.contiguous()
        pb = sgd_model.barriers(W[0::2], W[1::2])
        for k in kinds:
            kinds[k].append(getattr(pb, k).cpu())
        if training:
            tb = training_barriers(W[0::2], W[1::2], {"weight": pb.weight_perm, "functional": pb.functional_perm},
                                   train, sgd_model.lambdas(dev))
            tb["perm"] = torch.minimum(tb["weight"], tb["functional"])
            for k in tr:
                tr[k].append(tb[k].cpu())
        losses.append(ts.population_loss(W, T, inputs=model.inputs).reshape(n_pairs, 2).cpu())
        conv.append(converged.reshape(n_pairs, 2).all(1).cpu())
        rows.extend((m, seeds[2 * k], seeds[2 * k + 1]) for k in range(n_pairs))
    L = torch.cat(losses)
    ids = dict(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
               seeds_b=tuple(r[2] for r in rows), converged=torch.cat(conv))
    pop = ts.BarrierTable(**ids, **{k: torch.cat(v) for k, v in kinds.items()}, loss_a=L[:, 0], loss_b=L[:, 1])
    if not training:
        return FiniteSampleTables(population=pop, training=None)
    E = torch.cat(tr.pop("ends"))
    return FiniteSampleTables(population=pop, training=ts.BarrierTable(
        **ids, **{k: torch.cat(v) for k, v in tr.items()}, loss_a=E[:, 0], loss_b=E[:, 1]))


@moved_keywords(_SGD_SWEEP_KEYWORDS)
def sgd_barrier_sweep(model: ts.TeacherStudent, widths: Sequence[int], n_pairs: int, schedule: ts.SGD, *,
                      n_samples: int, data_seed: int = 0, first_seed: int = 0,
                      device: torch.device | str | None = None,
                      cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                      executor: Any = _sweep.RUNNER) -> ts.BarrierTable:
    """Barriers modulo permutation of minibatch-SGD solutions trained on finite samples of the teacher.

    One training set ``x_1, …, x_n ~ N(0, I_d)`` (or the sphere, ``model.inputs``), ``y = f*(x)``, drawn from
    ``torch.Generator().manual_seed(data_seed)``, is shared by every run. The student of width ``m`` and seed ``s``
    starts from ``model.init(m, s)`` — the same initialisation as exact GD — and runs ``schedule``
    (:meth:`lmcnb.teacher_student.SGD.run`, step ``η = c/m``; the sample orders of all runs
    of width ``m`` come from ``torch.Generator().manual_seed(1_000_003·m + first_seed)``). Seeds ``first_seed + 2k``
    and ``first_seed + 2k + 1`` form pair ``k``. The barriers are the exact population ones of ``model.barriers``
    (so the only noise is that of training), and ``loss_a``/``loss_b`` are the exact population losses of the ends.
    :func:`finite_sample_sweep` adds the barriers of the training loss.

    Args:
        model: the configuration (fixed output weights only). widths: student widths ``>= 1``. n_pairs: pairs.
        schedule: the :class:`lmcnb.teacher_student.SGD` schedule: ``batch_size``, ``epochs``, ``c`` (the step
            constant; ``model.c`` is not used), ``tol`` (a run stops once its empirical loss is below it, checked
            after each epoch), ``threads``; ``train_output`` must be ``False``. These keywords moved there.
        n_samples: training-set size ``n``. data_seed, first_seed: seeds (``>= 0``).
        device: where to train (default CPU); the data, initialisations and sample orders are drawn on the CPU
            and moved there, so results do not depend on the device's random number generator.
        cache_dir, executor: the call is one configuration of :func:`lmcnb.infra.sweep.run_grid` (keyed by the
            model's and the schedule's fields and the arguments, :data:`SGD_SWEEP_NAMESPACE`), so a chapter that
            calls it per setting resumes from ``cache_dir``. Both default to the headless runner's settings
            (:data:`lmcnb.infra.sweep.RUNNER`: ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``, unset in CI and the quick
            profile); None: no cache / here.

    Returns:
        :class:`lmcnb.teacher_student.BarrierTable`, one row per (width, pair), widths in the given order;
        ``converged`` is "both ends reached empirical loss ``< tol``" (all ``False`` for ``tol = 0``).
    """
    return _sgd_pairs(model, widths, n_pairs, schedule, n_samples, data_seed, first_seed, device, False,
                      cache_dir, executor).population


def finite_sample_sweep(model: ts.TeacherStudent, widths: Sequence[int], n_pairs: int, schedule: ts.SGD, *,
                        n_samples: int, data_seed: int = 0, first_seed: int = 0,
                        device: torch.device | str | None = None,
                        cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                        executor: Any = _sweep.RUNNER) -> FiniteSampleTables:
    """:func:`sgd_barrier_sweep` (same arguments, same initialisations and data) with, in addition, the barriers of
    the **training loss** ``L_n`` along the same paths (:func:`training_barriers`; the permutations are those of the population
    matchers) and the ends' training losses — the barrier of the loss SGD minimised, whose ends are its minima
    even where ``n`` samples do not pin the teacher down (then the ends' population loss stays ``> 0``).
    All widths train in one zero-padded batch (``widths``; cheaper than one run per width at small ``m``), with
    the sample orders from ``torch.Generator().manual_seed(first_seed)``, so its runs are not bit-identical to
    :func:`sgd_barrier_sweep`'s (which seeds each width's orders separately). ``cache_dir``, ``executor``: as
    there (one configuration per call).

    Returns:
        :class:`FiniteSampleTables` (``population``: as :func:`sgd_barrier_sweep`; ``training``).
    """
    return _sgd_pairs(model, widths, n_pairs, schedule, n_samples, data_seed, first_seed, device, True, cache_dir,
                      executor)


def _int_list(name: str, values: object) -> list[int]:
    if isinstance(values, Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of ints, got {type(values).__name__}")
    return [check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------------------------
# The asymptotic range of a width sweep and the verdict on a rate bound
# ---------------------------------------------------------------------------------------------------------------

#: Verdicts of :func:`rate_measurement` on "decays at least as fast as ``m^bound``".
RATE_VERDICTS = ("holds", "not established", "fails")


@dataclass(frozen=True)
class AsymptoticRange:
    """The widths a rate is fitted over, and why (:func:`asymptotic_range`).

    Attributes:
        widths: the distinct widths of the sweep, ascending ``(W,)``. centres: the per-width centre of the
            barrier ``(W,)``. end_loss: the largest final loss ``R_end`` of the pairs at each width ``(W,)``.
        peak: the width of the last local maximum of ``centres`` (``None`` if there is none: the centres rise
            to the last width). selected: the widths of the range, ascending (empty if none qualifies).
        unconverged: widths above the peak excluded because ``R_end > loss_ratio · centre``.
        loss_ratio: the convergence criterion used.
    """

    widths: tuple[int, ...]
    centres: tuple[float, ...]
    end_loss: tuple[float, ...]
    peak: int | None
    selected: tuple[int, ...]
    unconverged: tuple[int, ...]
    loss_ratio: float

    @property
    def decades(self) -> float:
        """``log10(max / min)`` of the selected widths (0 for fewer than two)."""
        return float(np.log10(self.selected[-1] / self.selected[0])) if len(self.selected) >= 2 else 0.0


def _per_width(widths: object, values: object, end_loss: object) -> tuple[list[int], list[np.ndarray], list[float]]:
    w = _fit._as_vector("widths", widths)
    v = _fit._as_vector("values", values)
    r = _fit._as_vector("end_loss", end_loss)
    if not (w.shape == v.shape == r.shape):
        raise ValueError(f"widths, values and end_loss must have the same length, got {w.size}, {v.size}, {r.size}")
    if not bool(np.all((w >= 1) & (w == np.round(w)))):
        raise ValueError("widths must be positive integers")
    for name, arr in (("values", v), ("end_loss", r)):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if bad.size:
            raise ValueError(f"{name}[{int(bad[0])}] = {float(arr[bad[0]])!r} is not a finite non-negative number")
    levels = sorted({int(x) for x in w})
    return levels, [v[w == m] for m in levels], [float(r[w == m].max()) for m in levels]


def asymptotic_range(widths: object, values: object, end_loss: object, *, loss_ratio: float = 0.01,
                     center: str = "mean") -> AsymptoticRange:
    """The asymptotic range of a width sweep, by the stated rule (module docstring).

    Rule: with ``c_m`` the centre (``center``: mean or median over the pairs) of the barrier at width ``m``, the
    *last local maximum* is the largest width ``m_k`` (not the last width) with ``c_{m_k} > c_{m_{k+1}}`` and
    ``c_{m_k} >= c_{m_{k-1}}`` (the first width needs only the first condition). The range is the widths above it,
    in order, up to (not including) the first width whose largest final loss exceeds ``loss_ratio · c_m`` (an
    endpoint that is not converged relative to the barrier it is meant to resolve).

    Args:
        widths: the width of every pair ``(P,)`` (repeats: one entry per pair). values: the barriers ``(P,)``
            ``>= 0``. end_loss: each pair's larger final loss ``max(R(θ_a), R(θ_b))`` ``(P,)`` ``>= 0``.
        loss_ratio: the convergence criterion ``R_end <= loss_ratio · B`` (``> 0``). center: ``"mean"`` or
            ``"median"``.

    Returns:
        :class:`AsymptoticRange`.
    """
    loss_ratio = check_real("loss_ratio", loss_ratio, 0.0, low_open=True)
    center = check_choice("center", center, _fit.CENTERS)
    levels, groups, ends = _per_width(widths, values, end_loss)
    reduce = np.median if center == "median" else np.mean
    c = [float(reduce(g)) for g in groups]
    peak_k = None
    for k in range(len(c) - 1):
        if c[k] > c[k + 1] and (k == 0 or c[k] >= c[k - 1]):
            peak_k = k
    selected, unconverged = [], []
    if peak_k is not None:
        for k in range(peak_k + 1, len(c)):
            if ends[k] > loss_ratio * c[k]:
                unconverged.extend(levels[k:])
                break
            selected.append(levels[k])
    return AsymptoticRange(widths=tuple(levels), centres=tuple(c), end_loss=tuple(ends),
                           peak=None if peak_k is None else levels[peak_k], selected=tuple(selected),
                           unconverged=tuple(unconverged), loss_ratio=loss_ratio)


@dataclass(frozen=True)
class RateMeasurement:
    """A rate fitted over the asymptotic range and its verdict (:func:`rate_measurement`).

    Attributes:
        range: the :class:`AsymptoticRange`. fit: the bootstrap slope over ``range.selected`` (``None`` with
            fewer than ``min_widths`` widths). bound: the exponent of the claim (``−½``).
        verdict: one of :data:`RATE_VERDICTS`. local_slopes: the log–log slope of the centres between consecutive
            widths of the whole sweep ``(W − 1,)`` (the crossover or plateau shows as a local slope ``> bound``).
    """

    range: AsymptoticRange
    fit: _fit.SlopeFit | None
    bound: float
    verdict: str
    local_slopes: tuple[float, ...]

    @property
    def flattest(self) -> tuple[int, int, float] | None:
        """``(m_k, m_{k+1}, slope)`` of the flattest local slope *above the peak* (the plateau), or ``None``."""
        if self.range.peak is None:
            return None
        k0 = self.range.widths.index(self.range.peak)
        cand = [(self.range.widths[k], self.range.widths[k + 1], s)
                for k, s in enumerate(self.local_slopes) if k >= k0 + 1 and np.isfinite(s)]
        return max(cand, key=lambda t: t[2]) if cand else None

    def __str__(self) -> str:
        r = self.range
        rng = (f"m = {r.selected[0]}..{r.selected[-1]} ({len(r.selected)} widths, {r.decades:.2f} decades)"
               if r.selected else "empty")
        f = ("no fit" if self.fit is None
             else f"slope {self.fit.slope:.2f} [{self.fit.ci_low:.2f}, {self.fit.ci_high:.2f}]")
        return f"peak m = {r.peak}; range {rng}; {f}; verdict: {self.verdict}"


def rate_measurement(widths: object, values: object, end_loss: object, *, bound: float = -0.5,
                     loss_ratio: float = 0.01, min_widths: int = 3, center: str = "mean", n_boot: int = 1000,
                     ci: float = 0.95, seed: int = 0) -> RateMeasurement:
    """Fit the barrier's log–log slope over the :func:`asymptotic_range` and judge "decays at least like
    ``m^bound``": ``"holds"`` if the upper end of the ``ci`` bootstrap interval is ``<= bound``, ``"fails"`` if its
    lower end is ``> bound``, else (or with fewer than ``min_widths`` widths in the range) ``"not established"``.

    Args:
        widths, values, end_loss, loss_ratio, center: as in :func:`asymptotic_range`. bound: the claimed exponent.
        min_widths: the fewest widths a fit may use (``>= 2``). n_boot, ci, seed: of
            :func:`lmcnb.fit.bootstrap_slope` (zero barriers allowed; every centre in the range must be positive).

    Returns:
        :class:`RateMeasurement`.
    """
    bound = check_real("bound", bound)
    min_widths = check_int("min_widths", min_widths, 2)
    rng = asymptotic_range(widths, values, end_loss, loss_ratio=loss_ratio, center=center)
    c = np.asarray(rng.centres)
    lw = np.log(np.asarray(rng.widths, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        local = tuple(float(x) for x in np.diff(np.log(c)) / np.diff(lw))
    fit = None
    verdict = "not established"
    if len(rng.selected) >= min_widths and all(rng.centres[rng.widths.index(m)] > 0 for m in rng.selected):
        w = _fit._as_vector("widths", widths)
        v = _fit._as_vector("values", values)
        keep = np.isin(w, np.asarray(rng.selected, dtype=np.float64))
        fit = _fit.bootstrap_slope(w[keep], v[keep], n_boot=n_boot, ci=ci, seed=seed, center=center, zero_ok=True)
        if fit.ci_high <= bound:
            verdict = "holds"
        elif fit.ci_low > bound:
            verdict = "fails"
    return RateMeasurement(range=rng, fit=fit, bound=bound, verdict=verdict, local_slopes=local)


def table_rate(table: ts.BarrierTable, kind: str = "perm", *,
               transform: Callable[[np.ndarray], np.ndarray] | None = None, **kwargs) -> RateMeasurement:
    """:func:`rate_measurement` of a :class:`lmcnb.teacher_student.BarrierTable`: the barriers of ``kind`` and, as
    ``end_loss``, each pair's ``max(loss_a, loss_b)``; ``kwargs`` go to :func:`rate_measurement`.

    ``transform`` (e.g. ``np.sqrt``: the rate of ``√B``, a distance-like scale) is applied elementwise to both the
    barriers and the end losses before the fit (give ``loss_ratio`` on the transformed scale: ``√(R/B) ≤ 0.1`` is
    ``R ≤ B/100``)."""
    if not isinstance(table, ts.BarrierTable):
        raise TypeError(f"table must be a teacher_student.BarrierTable, got {type(table).__name__}")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be a callable on arrays (e.g. np.sqrt) or None, got {transform!r}")
    end = torch.maximum(table.loss_a, table.loss_b).detach().cpu().clamp_min(0.0)  # rounding: R = -1e-17
    vals = table.values(kind).detach().cpu()
    if transform is not None:
        vals, end = transform(vals.numpy()), transform(end.numpy())
    return rate_measurement(list(table.widths), vals, end, **kwargs)


def _check_measurements(measurements: object) -> dict[Any, RateMeasurement]:
    if not isinstance(measurements, Mapping) or not measurements:
        raise ValueError(f"measurements must be a non-empty mapping (e.g. d -> RateMeasurement), got {measurements!r}")
    bad = [k for k, v in measurements.items() if not isinstance(v, RateMeasurement)]
    if bad:
        raise TypeError(f"measurements must map to RateMeasurement values; not at keys {bad}")
    return dict(measurements)


def upper_ends(measurements: Mapping[Any, RateMeasurement], digits: int = 3) -> dict[Any, float | str]:
    """The upper end of each measurement's slope interval (``fit.ci_high``), rounded to ``digits`` significant
    digits, or ``"no fit"`` where the asymptotic range was too short to fit (chapter 3's finite-sample rows:
    ``{d: RateMeasurement}`` → ``{d: upper end}``)."""
    ms = _check_measurements(measurements)
    digits = check_int("digits", digits, 1)
    return {k: float(f"{m.fit.ci_high:.{digits}g}") if m.fit is not None else "no fit" for k, m in ms.items()}


def joint_verdict(measurements: Mapping[Any, RateMeasurement]) -> str:
    """One verdict for "the rate holds at every key" (every ``d`` of a finite-sample regime): ``"consistent"`` if
    every measurement ``"holds"`` and there are at least two (one ``d`` cannot test "at every d"),
    ``"differs from paper"`` if any ``"fails"``, else ``"inconclusive"``."""
    ms = _check_measurements(measurements)
    vs = {m.verdict for m in ms.values()}
    if "fails" in vs:
        return "differs from paper"
    return "consistent" if len(ms) >= 2 and vs == {"holds"} else "inconclusive"
