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
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from ..papers import teacher_student as ts
from .._validate import check_choice, check_int, moved_keywords
from ..data import teacher_student_data
from . import ot_rates

__all__ = ["DISTRIBUTIONS", "ot_rate_exponent", "iid_matching_sweep", "sgd_barrier_sweep"]

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


@moved_keywords(_SGD_SWEEP_KEYWORDS)
def sgd_barrier_sweep(model: ts.TeacherStudent, widths: Sequence[int], n_pairs: int, schedule: ts.SGD, *,
                      n_samples: int, data_seed: int = 0, first_seed: int = 0,
                      device: torch.device | str | None = None) -> ts.BarrierTable:
    """Barriers modulo permutation of minibatch-SGD solutions trained on finite samples of the teacher.

    One training set ``x_1, …, x_n ~ N(0, I_d)`` (or the sphere, ``model.inputs``), ``y = f*(x)``, drawn from
    ``torch.Generator().manual_seed(data_seed)``, is shared by every run. The student of width ``m`` and seed ``s``
    starts from ``model.init(m, s)`` — the same initialisation as exact GD — and runs ``schedule``
    (:meth:`lmcnb.teacher_student.SGD.run`, step ``η = c/m``; the sample orders of all runs
    of width ``m`` come from ``torch.Generator().manual_seed(1_000_003·m + first_seed)``). Seeds ``first_seed + 2k``
    and ``first_seed + 2k + 1`` form pair ``k``. The barriers are the exact population ones of ``model.barriers``
    (so the only noise is that of training), and ``loss_a``/``loss_b`` are the exact population losses of the ends.

    Args:
        model: the configuration (fixed output weights only). widths: student widths ``>= 1``. n_pairs: pairs.
        schedule: the :class:`lmcnb.teacher_student.SGD` schedule: ``batch_size``, ``epochs``, ``c`` (the step
            constant; ``model.c`` is not used), ``tol`` (a run stops once its empirical loss is below it, checked
            after each epoch), ``threads``; ``train_output`` must be ``False``. These keywords moved there.
        n_samples: training-set size ``n``. data_seed, first_seed: seeds (``>= 0``).
        device: where to train (default CPU); the data, initialisations and sample orders are drawn on the CPU
            and moved there, so results do not depend on the device's random number generator.

    Returns:
        :class:`lmcnb.teacher_student.BarrierTable`, one row per (width, pair), widths in the given order;
        ``converged`` is "both ends reached empirical loss ``< tol``" (all ``False`` for ``tol = 0``).
    """
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
    c = schedule.c
    data_seed, first_seed = check_int("data_seed", data_seed, 0), check_int("first_seed", first_seed, 0)
    dev = torch.device("cpu") if device is None else torch.device(device)
    T = model.teacher(dev)
    train = teacher_student_data(model.teacher(), n_samples, torch.Generator().manual_seed(data_seed),
                                 inputs=model.inputs).to(dev)
    sgd_model = replace(model, c=c)
    rows, kinds, losses, conv = [], {k: [] for k in ("identity", "weight", "functional", "perm")}, [], []
    for m in ws:
        seeds = list(range(first_seed, first_seed + 2 * n_pairs))
        W0 = torch.stack([sgd_model.init(m, s)[0] for s in seeds]).to(dev)
        r = schedule.run(train, W0, generator=torch.Generator().manual_seed(1_000_003 * m + first_seed))
        pb = sgd_model.barriers(r.W[0::2], r.W[1::2])
        for k in kinds:
            kinds[k].append(getattr(pb, k).cpu())
        losses.append(ts.population_loss(r.W, T, inputs=model.inputs).reshape(n_pairs, 2).cpu())
        conv.append(r.converged.reshape(n_pairs, 2).all(1).cpu())
        rows.extend((m, seeds[2 * k], seeds[2 * k + 1]) for k in range(n_pairs))
    L = torch.cat(losses)
    return ts.BarrierTable(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
                           seeds_b=tuple(r[2] for r in rows), **{k: torch.cat(v) for k, v in kinds.items()},
                           loss_a=L[:, 0], loss_b=L[:, 1], converged=torch.cat(conv))


def _int_list(name: str, values: object) -> list[int]:
    if isinstance(values, Tensor):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of ints, got {type(values).__name__}")
    return [check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(values)]

