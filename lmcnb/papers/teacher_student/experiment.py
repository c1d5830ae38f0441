"""The formal model of chapters 2–4 as one configuration (TeacherStudent) and its tables."""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from ..._validate import check_bool, check_choice, check_int, check_real
from ...infra import sweep as _sweep
from ._inputs import F64, INPUTS, _check_f64
from .kernel import Population, population_loss
from .initialisation import orthonormal_teacher, pad_rows, small_init, small_output_init
from .gd import GD
from .manifold import sample_minimum
from .pairs import BARRIER_KINDS, OUTPUTS, PairBarriers, pair_barriers


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


#: Step rules of :class:`TeacherStudent`: ``"c/m"`` (``η = c/m``, the fixed-output scaling) or ``"constant"``
#: (``η = c`` at every width, the scaling for trained output weights, whose sharpness does not grow with ``m``).
STEP_RULES = ("c/m", "constant")
#: Teachers of :class:`TeacherStudent`: ``"orthonormal"`` (``w*_j = e_j``) or ``"random"`` (i.i.d. unit-norm rows,
#: not orthogonal, from ``teacher_seed``).
TEACHER_KINDS = ("orthonormal", "random")
_VARIANT_FIELDS = ("teacher_kind", "teacher_seed", "init_mass")
#: Signs of the trained output weights at initialisation: ``"mixed"`` (``a_i ~ N(0, s²)``) or ``"positive"``
#: (``|a_i|``).
OUTPUT_INITS = ("mixed", "positive")


@dataclass(frozen=True)
class TeacherStudent:
    """The formal model of chapters 2–4 (Zhan, Li, Wu 2025 as reconstructed in the notes, §1.2–1.3), in one place.

    Teacher ``f*(x) = Σ_{j≤M} σ(w*_j·x)`` with orthonormal ``w*_j = e_j``; student ``f(x) = Σ_{i≤m} a_i σ(w_i·x)``
    with ``a = 1`` fixed (``output="fixed"``, the seed model) or trained from a small init (``"trained"``);
    inputs ``x ~ N(0, I_d)`` (or the unit sphere); exact population squared loss by the arc-cosine kernel
    (float64); full-batch GD from ``w_i ~ N(0, init_scale²/d I_d)`` (``a_i ~ N(0, init_scale²)``, or ``|a_i|`` with
    ``output_init="positive"``) with step
    ``η = c/m`` (``step="c/m"``; ``step="constant"``: ``η = c`` at every width, for trained outputs) until
    ``R < tol`` (converged), ``max |∂R/∂θ| < grad_tol`` (stationary: a critical point that is not
    a global minimum, e.g. every ``m < M`` student) or ``steps``. Two solutions = two seeds; pairs are seeds
    ``(first_seed + 2k, first_seed + 2k + 1)``. Barrier = the linear barrier on a grid of ``n_lambdas`` points;
    modulo permutation = the minimum over weight matching and functional matching (:func:`pair_barriers`).

    Variants (chapter 3's robustness checks): ``teacher_kind="random"`` replaces ``e_j`` by ``M`` i.i.d. unit-norm,
    non-orthogonal rows (seed ``teacher_seed``; the minimum manifold of :meth:`sample_minima` is then not
    available); ``init_mass`` (default ``None``) fixes the expected total initial mass ``Σ_i |w_i| ≈ init_mass`` at
    every width by using the per-neuron scale ``init_mass / m`` for ``W`` (:meth:`init_scale_at`; the output
    weights keep ``init_scale``).

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
    step: str = "c/m"
    output_init: str = "mixed"
    teacher_kind: str = "orthonormal"
    teacher_seed: int = 0
    init_mass: float | None = None

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
        check_choice("step", self.step, STEP_RULES)
        check_choice("output_init", self.output_init, OUTPUT_INITS)
        check_choice("teacher_kind", self.teacher_kind, TEACHER_KINDS)
        check_int("teacher_seed", self.teacher_seed, 0)
        if self.init_mass is not None:
            check_real("init_mass", self.init_mass, 0.0, low_open=True)

    def __repr__(self) -> str:
        """The dataclass repr, with the variant fields (``teacher_kind``, ``teacher_seed``, ``init_mass``) shown
        only where they differ from their defaults (so the default model prints as it always did)."""
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in _VARIANT_FIELDS or getattr(self, f.name) != f.default]
        return f"{type(self).__name__}({', '.join(parts)})"

    def init_scale_at(self, width: int) -> float:
        """Per-neuron initial scale at width ``m``: ``init_scale``, or ``init_mass / m`` when ``init_mass`` is set
        (the expected total initial mass ``Σ_i E|w_i| ≈ init_mass`` is then the same at every width)."""
        m = check_int("width", width, 1)
        return self.init_scale if self.init_mass is None else self.init_mass / m

    @property
    def trained_output(self) -> bool:
        return self.output == "trained"

    def teacher(self, device: torch.device | str | None = None) -> Tensor:
        """``T (M, d)`` float64: ``(e_1, …, e_M)`` (``teacher_kind="orthonormal"``) or ``M`` i.i.d. rows uniform on
        the unit sphere, drawn from ``torch.Generator().manual_seed(teacher_seed)`` (``"random"``: unit norm,
        not orthogonal)."""
        if self.teacher_kind == "orthonormal":
            return orthonormal_teacher(self.d, self.M).to(_device(device))
        G = torch.randn(self.M, self.d, generator=torch.Generator().manual_seed(self.teacher_seed), dtype=F64)
        return (G / G.norm(dim=1, keepdim=True)).to(_device(device))

    def lambdas(self, device: torch.device | str | None = None) -> Tensor:
        """The λ grid ``(n_lambdas,)`` of the barrier."""
        return torch.linspace(0.0, 1.0, self.n_lambdas, dtype=F64, device=_device(device))

    def init(self, width: int, seed: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Initial ``(W_0 (m, d), a_0 (m,))`` of the student of this width and seed (``a_0 = 1`` if fixed)."""
        m, s = check_int("width", width, 1), check_int("seed", seed, 0)
        g = torch.Generator().manual_seed(1_000_003 * m + s)
        W = small_init(1, m, self.d, self.init_scale_at(m), generator=g)[0]
        a = small_output_init(1, m, self.init_scale, generator=g)[0] if self.trained_output else \
            torch.ones(m, dtype=F64)
        if self.trained_output and self.output_init == "positive":
            a = a.abs()
        dev = _device(device)
        return W.to(dev), a.to(dev)

    def schedule(self, c: float | Tensor | None = None, threads: int | None = 1) -> GD:
        """This configuration's GD schedule: :class:`GD` with its ``steps``, ``tol``, ``check_every``,
        ``grad_tol`` and output variant; ``c`` is the per-model step constant of :class:`GD` (default ``self.c``,
        i.e. ``η = c/m``; :meth:`train` passes ``c·m`` for ``step="constant"``)."""
        return GD(c=self.c if c is None else c, steps=self.steps, tol=self.tol, check_every=self.check_every,
                  grad_tol=self.grad_tol, train_output=self.trained_output, threads=threads)

    def train(self, widths: int | Sequence[int], seeds: int | Sequence[int], *,
              device: torch.device | str | None = None, threads: int | None = 1) -> Solutions:
        """Train one student per (width, seed) by exact population GD, batched: seeds and nearby widths share a
        zero-padded batch (:meth:`schedule`, :meth:`GD.run`; a padded model follows the unpadded trajectory).

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
            c = self.c if self.step == "c/m" else self.c * widths_t.to(F64)
            r = self.schedule(c, threads).run(Population(T, inputs=self.inputs), W0, a0=a0, widths=widths_t)
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
                      device: torch.device | str | None = None, threads: int | None = 1,
                      cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER,
                      progress: bool = True) -> BarrierTable:
        """Train seeds ``first_seed, …, first_seed + 2 n_pairs − 1`` at every width (:meth:`train`) and return the
        barriers of the pairs ``(first_seed + 2k, first_seed + 2k + 1)`` (:meth:`pair_table`).

        The sweep runs through :func:`lmcnb.infra.sweep.run_grid`, one configuration per padded width group of
        :meth:`train` (all seeds of the group's widths trained in one batch, then their pairs' barriers), so the
        table is bit-identical to ``pair_table(train(widths, seeds))`` with or without a cache or an executor.
        ``cache_dir``: a directory where every group's result is stored as soon as it is computed, keyed by the
        model's fields, the group's widths and the seeds (:data:`BARRIER_SWEEP_NAMESPACE`), so an interrupted run
        resumes with the missing groups; None: no cache. ``executor``: where the groups run (None: here, one after
        another; any ``concurrent.futures``-style executor). Both default to :data:`lmcnb.infra.sweep.RUNNER`, the
        headless runner's settings (:func:`lmcnb.infra.sweep.runner_settings`: ``$LMCNB_CACHE_DIR`` and
        ``$LMCNB_ENGINE``, set by ``make paper``; unset in CI and the quick profile, so no cache and no executor).
        ``progress``: a progress bar over the groups in the paper profile (never in quick). The table's
        solutions are on ``device``; barriers and losses are on the CPU."""
        n_pairs = check_int("n_pairs", n_pairs, 1)
        first_seed = check_int("first_seed", first_seed, 0)
        check_bool("progress", progress)
        ws = _check_int_list("widths", widths, 1)
        seeds = list(range(first_seed, first_seed + 2 * n_pairs))
        dev = _device(device)
        cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
        fn = functools.partial(_barrier_group, device=str(dev), threads=threads)
        grid = [{"model": _model_config(self), "widths": group, "seeds": seeds} for group in _width_groups(ws)]
        per_width: dict[int, dict[str, Any]] = {}
        for config, result in _sweep.run_grid(fn, grid, cache_dir=cache_dir, namespace=BARRIER_SWEEP_NAMESPACE,
                                               progress=progress, executor=executor):
            for w, entry in zip(config["widths"], result):
                per_width[w] = entry
        order = list(dict.fromkeys(ws))
        sol_cols: dict[str, list[Any]] = {k: [] for k in ("W", "a", "final_loss", "steps", "converged",
                                                          "stationary", "diverged")}
        for w in order:
            for k in sol_cols:
                sol_cols[k].extend(per_width[w][k])
        sol = Solutions(model=self, W=tuple(W.to(dev) for W in sol_cols["W"]),
                        a=tuple(a.to(dev) for a in sol_cols["a"]),
                        widths=tuple(w for w in order for _ in seeds), seeds=tuple(s for _ in order for s in seeds),
                        final_loss=torch.tensor(sol_cols["final_loss"], dtype=F64),
                        steps=torch.tensor(sol_cols["steps"], dtype=torch.int64),
                        converged=torch.tensor(sol_cols["converged"]),
                        stationary=torch.tensor(sol_cols["stationary"]),
                        diverged=torch.tensor(sol_cols["diverged"]))
        pairs = [(seeds[2 * k], seeds[2 * k + 1]) for k in range(n_pairs)]
        rows = [(w, sa, sb) for w in order for sa, sb in pairs]
        idx = [(sol.index(w, sa), sol.index(w, sb)) for w, sa, sb in rows]
        vals = {k: torch.stack([v for w in order for v in per_width[w][k]]) for k in BARRIER_KINDS}
        ia_t, ib_t = torch.tensor([i for i, _ in idx]), torch.tensor([j for _, j in idx])
        return BarrierTable(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
                            seeds_b=tuple(r[2] for r in rows), **vals,
                            loss_a=sol.final_loss[ia_t], loss_b=sol.final_loss[ib_t],
                            converged=sol.converged[ia_t] & sol.converged[ib_t], solutions=sol)

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
                       split: str = "equal", seed: int = 0, device: torch.device | str | None = None,
                       cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER,
                       progress: bool = True) -> BarrierTable:
        """The training-free view: ``n_pairs`` pairs of independent minima sampled from the minimum manifold at
        every width (``m >= M``; :func:`sample_minimum` with ``dead_prob`` and ``split``), and their barriers.
        Width ``m`` draws from ``torch.Generator().manual_seed(1_000_003 · m + seed)``; the table's seeds number
        the draws ``(2k, 2k + 1)``. The minima are always drawn on the CPU (the same draws on every machine);
        ``device`` is where their barriers and losses are computed (default CPU; e.g. ``"cuda"`` in the paper
        profile, where the paths at ``m = 4096`` cost minutes per pair on one CPU thread). The table's tensors
        are on the CPU either way.

        One configuration of :func:`lmcnb.infra.sweep.run_grid` per width (:data:`MANIFOLD_SWEEP_NAMESPACE`), so
        ``cache_dir`` (None: no cache), ``executor`` (None: here; both default to the runner's settings) and
        ``progress`` act as in :meth:`barrier_sweep`, and the table is the same with or without them."""
        ws = _check_int_list("widths", widths, self.M)
        n_pairs = check_int("n_pairs", n_pairs, 1)
        seed = check_int("seed", seed, 0)
        check_bool("progress", progress)
        dead_prob = check_real("dead_prob", dead_prob, 0.0, 1.0)
        dev = _device(device)
        if self.trained_output:
            raise ValueError("the minimum manifold of sample_minimum is that of the fixed-output model "
                             "(output='fixed')")
        cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
        fn = functools.partial(_manifold_width, device=str(dev))
        grid = [{"model": _model_config(self), "width": w, "n_pairs": n_pairs, "dead_prob": dead_prob,
                 "split": split, "seed": seed} for w in ws]
        results = [r for _, r in _sweep.run_grid(fn, grid, cache_dir=cache_dir, namespace=MANIFOLD_SWEEP_NAMESPACE,
                                                 progress=progress, executor=executor)]
        rows = [(w, 2 * k, 2 * k + 1) for w in ws for k in range(n_pairs)]
        L = torch.cat([r["loss"] for r in results])
        return BarrierTable(widths=tuple(r[0] for r in rows), seeds_a=tuple(r[1] for r in rows),
                            seeds_b=tuple(r[2] for r in rows),
                            **{k: torch.cat([r[k] for r in results]) for k in BARRIER_KINDS},
                            loss_a=L[:, 0], loss_b=L[:, 1], converged=torch.ones(L.shape[0], dtype=torch.bool))

    def _manifold_width(self, width: int, n_pairs: int, dead_prob: float, split: str, seed: int,
                        dev: torch.device) -> dict[str, Tensor]:
        """One width of :meth:`manifold_sweep`: ``{kind: (n_pairs,)}`` barriers and ``loss (n_pairs, 2)``, CPU."""
        w = width
        T = self.teacher(dev)
        g = torch.Generator().manual_seed(1_000_003 * w + seed)
        Ws = self.sample_minima(w, 2 * n_pairs, generator=g, dead_prob=dead_prob, split=split).to(dev)
        pb = self.barriers(Ws[0::2], Ws[1::2])
        out = {k: getattr(pb, k).cpu() for k in BARRIER_KINDS}
        # the ends' losses: one batch if its kernels fit _LOSS_BATCH entries (32 MB), else chunks of at most
        # _LOSS_ENTRIES (8 MB: below glibc's mmap threshold, so the temporaries are not fresh page-faulting
        # maps; one batch of 16 kernels at m = 1024 cost 16 s of system time; 2 n_pairs kernels at once would
        # need 17 GB at m = 4096, 64 pairs)
        entries = w * (w + self.M)
        per = len(Ws) if len(Ws) * entries <= _LOSS_BATCH else max(1, _LOSS_ENTRIES // entries)
        L_w = torch.cat([population_loss(Ws[i:i + per], T, inputs=self.inputs) for i in range(0, len(Ws), per)])
        out["loss"] = L_w.cpu().reshape(n_pairs, 2)
        return out


#: Key namespaces of the sweep cache (:func:`lmcnb.infra.sweep.run_grid`) of :meth:`TeacherStudent.barrier_sweep`
#: and :meth:`TeacherStudent.manifold_sweep`: change the version whenever what a configuration computes changes.
BARRIER_SWEEP_NAMESPACE = "ts-barrier-sweep-v1"
MANIFOLD_SWEEP_NAMESPACE = "ts-manifold-sweep-v1"


def _model_config(model: TeacherStudent) -> dict[str, Any]:
    """The fields of ``model`` as a JSON-serialisable dict (a sweep configuration); :func:`_model_from` inverts it."""
    return asdict(model)


def _model_from(config: dict[str, Any]) -> TeacherStudent:
    if not isinstance(config, dict):
        raise TypeError(f"model must be a dict of TeacherStudent fields, got {type(config).__name__}")
    return TeacherStudent(**config)


def _barrier_group(model: dict[str, Any], widths: list[int], seeds: list[int], *, device: str,
                   threads: int | None) -> list[dict[str, list[Any]]]:
    """One configuration of :meth:`TeacherStudent.barrier_sweep`: train every seed at the group's ``widths`` in one
    padded batch (:meth:`TeacherStudent.train`) and measure the consecutive seed pairs (:meth:`~TeacherStudent.
    barriers`). Returns, per width in ``widths`` order, ``{"W", "a": per-seed (m, d) / (m,) CPU tensors,
    "final_loss", "steps", "converged", "stationary", "diverged": per-seed floats / ints / bools, kind: per-pair
    scalar CPU tensors for every kind of BARRIER_KINDS}``. Module level and a function of JSON values (plus
    where it runs), so an executor's worker can run it."""
    ts = _model_from(model)
    sol = ts.train(widths, seeds, device=device, threads=threads)
    out = []
    for w in widths:
        entry: dict[str, list[Any]] = {k: [] for k in ("W", "a", "final_loss", "steps", "converged", "stationary",
                                                       "diverged", *BARRIER_KINDS)}
        for s in seeds:
            b = sol.index(w, s)
            entry["W"].append(sol.W[b].cpu())
            entry["a"].append(sol.a[b].cpu())
            entry["final_loss"].append(float(sol.final_loss[b]))
            entry["steps"].append(int(sol.steps[b]))
            for k in ("converged", "stationary", "diverged"):
                entry[k].append(bool(getattr(sol, k)[b]))
        for k in range(len(seeds) // 2):
            ia, ib = sol.index(w, seeds[2 * k]), sol.index(w, seeds[2 * k + 1])
            a1, a2 = (sol.a[ia], sol.a[ib]) if ts.trained_output else (None, None)
            pb = ts.barriers(sol.W[ia], sol.W[ib], a1, a2)
            for kind in BARRIER_KINDS:
                entry[kind].append(getattr(pb, kind).cpu())
        out.append(entry)
    return out


def _manifold_width(model: dict[str, Any], width: int, n_pairs: int, dead_prob: float, split: str, seed: int, *,
                    device: str) -> dict[str, Tensor]:
    """One configuration of :meth:`TeacherStudent.manifold_sweep` (module level, for an executor's workers)."""
    return _model_from(model)._manifold_width(width, n_pairs, dead_prob, split, seed, torch.device(device))


#: Kernel entries of the sampled minima's end losses in :meth:`TeacherStudent.manifold_sweep`: computed in one batch
#: up to ``_LOSS_BATCH`` entries (32 MB of float64), otherwise in chunks of at most ``_LOSS_ENTRIES`` (8 MB).
_LOSS_BATCH = 1 << 22
_LOSS_ENTRIES = 1 << 20


def _device(device: object) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    raise TypeError(f"device must be a torch.device, a string or None, got {type(device).__name__}")
