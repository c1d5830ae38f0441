"""The paper profiles of chapters 1, 2, 4, 6 and 7 as :class:`lmcnb.infra.budget.Workload` lists (``tools/budget.py``).

Each list names the chapter cell and its paper-profile sizes (read from the notebook's ``choose(...)`` calls; keep
them in step when a chapter's paper sizes change). The steps are built from the package's own pieces — the
stacked-MLP forward, loss and SGD update of :func:`lmcnb.train.train_stacked`, the CIFAR networks of
:mod:`lmcnb.models`, the population GD of :class:`lmcnb.papers.teacher_student.GD`, the matchers of
:mod:`lmcnb.matching` — so a timed step costs what the chapter's step costs. What each list leaves out is said in
its docstring. Counts of GD steps are upper bounds (every run to its step limit; runs that converge stop early).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..infra.budget import Workload

__all__ = ["mlp_training", "mlp_forward", "conv_training", "conv_forward", "mlp_matching", "conv_matching", "ts_gd",
           "quadratic_flops", "ts_barrier_paths", "ts_match_costs", "ts_match_assignments", "MATCH_REDUCED",
           "WM_REDUCED", "WM_EXPONENT",
           "ACT_TIMED_INPUTS", "iid_w2", "chapter01", "chapter02", "chapter03", "chapter04", "chapter06", "chapter07",
           "CHAPTERS"]

MNIST_TRAIN = 55_000  # data.mnist(): 60 000 training digits less the 5 000-image validation split
CIFAR_TRAIN = 45_000  # data.cifar10(): 50 000 less the 5 000-image validation split
#: Width at which CPU-side work (matchings, the teacher–student pair barriers) is timed; the growth to paper width
#: is the exponent measured between half this width and this width (``Workload(exponent=None)``). Below it fixed
#: costs dominate (measured on the project's CPU, one thread: weight matching of 784-h-h-h-10 MLPs takes 0.16 s at
#: h = 128, 0.37 s at 256, 1.3 s at 512 and 7.0 s at 1024: local exponents 1.2, 1.9, 2.4, approaching the cube of
#: a dense assignment), so timing smaller widths would understate the paper-size cost.
MATCH_REDUCED = 1024


def _widths(arch: Callable[[float], Sequence[int]], size: float) -> tuple[int, ...]:
    return tuple(int(w) for w in arch(size))


def mlp_training(arch: Callable[[float], Sequence[int]], models: int, batch: int, *, loss: str = "cross_entropy",
                 momentum: float = 0.9, weight_decay: float = 0.0, bias: bool = True
                 ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One SGD step of ``models`` stacked MLPs of widths ``arch(size)`` on minibatches of ``batch``: the step of
    :func:`lmcnb.train.train_stacked` (per-model minibatch gather, batched forward, per-model loss, gradients,
    the module's SGD update)."""
    from .. import train

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        widths = _widths(arch, size)
        stacked = train.StackedMLP([widths] * models, bias=bias, device=device)
        params, masks = stacked.param_list(), stacked.mask_list()
        if device.type != "meta":
            with torch.no_grad():
                for p in params:
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
        n = 4 * batch
        x = torch.randn(n, widths[0], device=device)
        y = (torch.randint(0, widths[-1], (n,), device=device) if loss == "cross_entropy"
             else torch.randn(n, widths[-1], device=device))
        idx = torch.randint(0, n, (models, batch), device=device)
        config = train.TrainConfig(epochs=1, batch_size=batch, lr=0.1, momentum=momentum, weight_decay=weight_decay,
                                   loss=loss)
        bufs: list[torch.Tensor | None] = [None] * len(params)

        def step() -> None:
            out = stacked(train._gather(x, idx))
            losses = train._stacked_loss(out, train._gather(y, idx), loss)
            grads = torch.autograd.grad(losses.sum(), params)
            train._sgd_update(params, list(grads), masks, bufs, 0.1, config)

        return step

    return make


def mlp_forward(arch: Callable[[float], Sequence[int]], inputs: int
                ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One evaluation of one MLP of widths ``arch(size)`` on ``inputs`` inputs (loss and accuracy): one point of
    an interpolation curve (:func:`lmcnb.merge.merge` evaluates every λ this way)."""
    from .. import train

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        widths = _widths(arch, size)
        stacked = train.StackedMLP([widths], device=device)
        x = torch.randn(inputs, widths[0], device=device)
        y = torch.randint(0, widths[-1], (inputs,), device=device)

        @torch.no_grad()
        def step() -> None:
            out = stacked(x)[0]
            F.cross_entropy(out, y)
            (out.argmax(1) == y).float().mean()

        return step

    return make


def _conv_model(arch: str, multiplier: float) -> torch.nn.Module:
    from ..models import VGG11, ResNet20

    if arch == "VGG-11":
        return VGG11(width_multiplier=multiplier)
    if arch == "ResNet-20":
        return ResNet20(width_multiplier=multiplier)
    raise ValueError(f"unknown architecture {arch!r}; expected 'VGG-11' or 'ResNet-20'")


def conv_training(arch: str, batch: int, weight_decay: float = 3e-3, *, augment: bool = False
                  ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One SGD step (momentum 0.9, ``weight_decay``) of a CIFAR-10 network ``arch`` at width multiplier ``size``
    on ``batch`` 32×32 images: the step of :func:`lmcnb.train.train_classifier`; with ``augment``, through
    :class:`lmcnb.experiments.cnn_merges.RandomCropFlip` (random crop and flip of every batch, as
    :func:`lmcnb.experiments.cnn_merges.train_seeded` trains)."""
    from .cnn_merges import RandomCropFlip

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        with torch.device(device):
            model = _conv_model(arch, size)
            x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        if augment and device.type != "meta":  # the crop-and-flip gather has no FLOPs to count on meta
            model = RandomCropFlip(model, 0)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    return make


def conv_forward(arch: str, batch: int, *, train_mode: bool) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One forward pass of ``batch`` images through ``arch`` at multiplier ``size``, without gradients: in train
    mode a BatchNorm-reset batch (:mod:`lmcnb.renorm`), in eval mode an evaluation batch."""

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        with torch.device(device):
            model = _conv_model(arch, size)
            x = torch.randn(batch, 3, 32, 32)
        model.train(train_mode)

        @torch.no_grad()
        def step() -> None:
            model(x)

        return step

    return make


def mlp_matching(arch: Callable[[float], Sequence[int]], matcher: str = "weight", data: int = 0
                 ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One matching of two random MLPs of widths ``arch(size)`` on the CPU: ``matcher`` ``"weight"``
    (:class:`lmcnb.matching.WeightMatching`), ``"activation"`` or ``"ot"`` (on ``data`` random inputs)."""
    from .. import matching, models

    makers = {"weight": lambda: matching.WeightMatching(seed=0), "activation": matching.ActivationMatching,
              "ot": matching.OTMatching}
    if matcher not in makers:
        raise ValueError(f"unknown matcher {matcher!r}; expected one of {sorted(makers)}")

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        widths = _widths(arch, size)
        torch.manual_seed(0)
        a, b = (models.MLP(widths[0], widths[1:-1], widths[-1]) for _ in range(2))
        x = torch.randn(data, widths[0]) if data else None
        m = makers[matcher]()
        return lambda: m(a, b, data=x)

    return make


def conv_matching(arch: str, matcher: str = "weight", data: int = 0, in_channels: int = 3
                  ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One matching of two random BatchNorm CNNs ``arch`` (``"VGG-11"`` or ``"ResNet-20"``) at width multiplier
    ``size`` on the CPU: ``matcher`` ``"weight"`` (:class:`lmcnb.matching.WeightMatching`) or ``"activation"``
    (:class:`lmcnb.matching.ActivationMatching` on ``data`` random ``in_channels``×32×32 images)."""
    from .. import matching, models

    makers = {"weight": lambda: matching.WeightMatching(seed=0), "activation": matching.ActivationMatching}
    if matcher not in makers:
        raise ValueError(f"unknown matcher {matcher!r}; expected one of {sorted(makers)}")
    builders = {"VGG-11": lambda m: models.VGG11(m, 10, in_channels, batchnorm=True),
                "ResNet-20": lambda m: models.ResNet20(m, 10, in_channels, norm=True)}
    if arch not in builders:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(builders)}")

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        torch.manual_seed(0)
        a, b = (builders[arch](size) for _ in range(2))
        x = torch.randn(data, in_channels, 32, 32) if data else None
        m = makers[matcher]()
        return lambda: m(a, b, data=x)

    return make


def ts_gd(d: int, M: int, models: int, steps_per_call: int = 10, *, train_output: bool = False
          ) -> Callable[[float, torch.device], Callable[[], Any]]:
    """``steps_per_call`` steps of exact population GD (:class:`lmcnb.papers.teacher_student.GD`) for ``models``
    students of width ``size`` (inputs ``d``, teacher ``M`` neurons), float64, never stopping early."""
    from ..papers import teacher_student as ts

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        m = int(size)
        T = ts.orthonormal_teacher(d, M).to(device)
        W0 = ts.small_init(models, m, d, generator=torch.Generator().manual_seed(0)).to(device)
        a0 = torch.ones(models, m, dtype=torch.float64, device=device) if train_output else None
        gd = ts.GD(steps=steps_per_call, tol=0.0, check_every=steps_per_call, train_output=train_output,
                   threads=None, diverge_loss=1e300)
        return lambda: gd.run(ts.Population(T), W0, a0=a0)

    return make


def quadratic_flops(make: Callable[[float, torch.device], Callable[[], Any]],
                    sizes: tuple[int, int, int] = (8, 16, 32)) -> Callable[[float], float]:
    """FLOPs of ``make(size, cpu)``'s step as a function of ``size``, for steps whose FLOPs are a polynomial of
    degree ≤ 2 in the size (the teacher–student GD: ``(m, d) × (d, m + M)`` products and terms linear in ``m``)
    and that cannot run on the meta device: counted on the CPU at the three ``sizes`` and interpolated exactly
    by the quadratic through them (``tests/test_budget.py`` checks it against a count at a fourth size)."""
    from ..infra.budget import count_flops

    if len(sizes) != 3 or len(set(sizes)) != 3:
        raise ValueError(f"sizes must be three different sizes, got {sizes!r}")
    points = [(float(s), float(count_flops(make(s, torch.device("cpu"))))) for s in sizes]

    def flops(size: float) -> float:
        total = 0.0
        for i, (si, fi) in enumerate(points):  # Lagrange form of the quadratic through the three points
            basis = 1.0
            for j, (sj, _) in enumerate(points):
                if j != i:
                    basis *= (size - sj) / (si - sj)
            total += fi * basis
        return total

    return flops


def _ts_pair(d: int, M: int, m: int, device: torch.device) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """A configuration and one pair of width-``m`` students on ``device``: two sampled global minima for ``m >= M``
    (the structure of the matchings' cost matrices is that of solutions: near-ties within a type), random students
    below (no minimum to sample; the paths' cost depends on the shapes only)."""
    from ..papers import teacher_student as ts

    cfg = ts.TeacherStudent(d=d, M=M)
    g = torch.Generator().manual_seed(m)
    if m >= M:
        Ws = cfg.sample_minima(m, 2, generator=g)
    else:
        Ws = ts.small_init(2, m, d, scale=1.0, generator=g)
    return cfg, Ws[0].to(device), Ws[1].to(device)


def ts_barrier_paths(d: int, M: int) -> Callable[[float, torch.device], Callable[[], Any]]:
    """The three interpolation paths of one pair's barriers (identity, weight-matched, functional-matched: the
    path part of :meth:`lmcnb.papers.teacher_student.TeacherStudent.barriers`, 21 λ each, in its memory-bounded λ
    chunks) on ``device``: the part that runs on the GPU when the pair is there (``barrier_sweep`` of students
    trained on the GPU, ``manifold_sweep(device=...)``). Fixed permutations stand in for the matchers' (the cost
    depends on the shapes only); the matchings are :func:`ts_match_costs` and :func:`ts_match_assignments`."""
    from ..papers.teacher_student import pairs

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        m = int(size)
        cfg, W1, W2 = _ts_pair(d, M, m, device)
        T, lam = cfg.teacher(device), cfg.lambdas(device)
        perm = torch.arange(m - 1, -1, -1, device=device)

        def step() -> None:
            for W in (W2, W2.index_select(0, perm), W2.index_select(0, perm.roll(1))):
                pairs._path_barrier(W1, W, T, lam, None, None, "gaussian")

        return step

    return make


def ts_match_costs(d: int, M: int) -> Callable[[float, torch.device], Callable[[], Any]]:
    """The cost matrices of one pair's two matchings on ``device``: :func:`lmcnb.papers.teacher_student.
    functional_cost` (elementwise closed forms on the Gram matrix ``W1 W2ᵀ``) and weight matching's squared
    distances (``torch.cdist``), on a pair of sampled minima (:func:`_ts_pair`). :func:`lmcnb.papers.
    teacher_student.pair_barriers` builds them where the pair is, so on the GPU when the pair is there; only the
    assignments (:func:`ts_match_assignments`) copy the matrices to the CPU."""
    from ..papers.teacher_student import pairs

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        _, W1, W2 = _ts_pair(d, M, int(size), device)
        return lambda: (pairs.functional_cost(W1, W2), torch.cdist(W1, W2) ** 2)

    return make


def ts_match_assignments(d: int, M: int) -> Callable[[float, torch.device], Callable[[], Any]]:
    """The two exact assignments of one pair's matchings on the CPU (:func:`lmcnb.assignment.solve` of the
    functional and of the weight-matching cost, built untimed by :func:`ts_match_costs`): the CPU-side part of a
    pair's barriers wherever the paths and the costs run (``solve`` copies a GPU matrix to the CPU: at
    ``m = 4096`` 134 MB each, milliseconds over PCIe, not counted)."""
    from .. import assignment

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        Cf, Cw = ts_match_costs(d, M)(size, torch.device("cpu"))()
        return lambda: (assignment.solve(Cw), assignment.solve(Cf))

    return make


@functools.lru_cache(maxsize=None)
def _match_cost_flops(d: int, M: int) -> Callable[[float], float]:
    """:func:`quadratic_flops` of :func:`ts_match_costs`'s step (the ``(m, d) × (d, m)`` products)."""
    return quadratic_flops(ts_match_costs(d, M))


@functools.lru_cache(maxsize=None)
def _paths_flops(d: int, M: int) -> Callable[[float], float]:
    """:func:`quadratic_flops` of :func:`ts_barrier_paths`'s step (``(L, m, d) × (d, m + M)`` products)."""
    return quadratic_flops(ts_barrier_paths(d, M))


@functools.lru_cache(maxsize=None)
def _gd_flops(d: int, M: int, models: int, train_output: bool = False) -> Callable[[float], float]:
    """:func:`quadratic_flops` of :func:`ts_gd`'s step, counted once per configuration."""
    return quadratic_flops(ts_gd(d, M, models, train_output=train_output))


def _per_width(name: str, make_of: Callable[[int], Callable[..., Any]], widths: Sequence[int], count: float,
               reduced: int, flops_of: Callable[[int], Callable[[float], float]] | None = None,
               on_gpu: bool = True, exponent: float | None = 3.0) -> list[Workload]:
    """One workload per width ``m`` (timed at ``min(m, reduced)``)."""
    return [Workload(f"{name} m={m}", make_of(m), paper_size=m, reduced_size=min(m, reduced), count=count,
                     flops=None if flops_of is None else flops_of(m), on_gpu=on_gpu, exponent=exponent)
            for m in widths]


def chapter01() -> list[Workload]:
    """Chapter 1 (``01_lmc_and_permutations``), paper profile: full MNIST (55 000 training digits), MLP
    784-512-512-512-10, 50 epochs at batch 500 (110 steps an epoch), 25 λ on 10 000 evaluation inputs.

    - the main pair: 2 stacked networks, 5 500 steps; curves: the self-permutation path and its control, 4
      matchers on the training inputs and 4 on the test set (10 curves × 25 λ × 10 000 inputs);
    - matchings at width 512: weight matching 5× (compare, control, planted recovery), activation and OT
      matching 2× each (5 000 held-out inputs);
    - the width sweep 32…2048: 6 stacked networks (3 pairs) per width, 5 500 steps; per width 3 pairs × 2
      matchers × 25 λ curves and 3 weight matchings.
    """
    arch = (lambda h: (784, h, h, h, 10))
    steps = 50 * 110
    out = [Workload("train main pair (2 nets, width 512)", mlp_training(arch, 2, 500, weight_decay=5e-4), 512, 128,
                    steps),
           Workload("curves of the main pair (10 x 25 lambdas)", mlp_forward(arch, 10_000), 512, 128, 250),
           Workload("weight matching, width 512", mlp_matching(arch, "weight"), 512, 512, 5, on_gpu=False),
           Workload("activation matching, width 512", mlp_matching(arch, "activation", 5000), 512, 512, 2,
                    on_gpu=False),
           Workload("OT matching, width 512", mlp_matching(arch, "ot", 5000), 512, 512, 2, on_gpu=False)]
    widths = [32, 64, 128, 256, 1024, 2048]
    out += _per_width("width sweep: train 6 nets", lambda m: mlp_training(arch, 6, 500, weight_decay=5e-4), widths,
                      steps, 128)
    out += _per_width("width sweep: 6 curves x 25 lambdas", lambda m: mlp_forward(arch, 10_000), widths, 150, 128)
    out += _per_width("width sweep: weight matching", lambda m: mlp_matching(arch, "weight"), widths, 3,
                      MATCH_REDUCED, on_gpu=False, exponent=None)
    return out


#: Chapter 2's step caps for the trained-output sweep in the paper profile (``P_tr["caps"]``, upper width -> steps;
#: :func:`lmcnb.experiments.double_descent.capped_barrier_sweeps`): GD at the stability rule's step reaches
#: ``R < 1e-8`` at m = 64 in 34 000 steps, at m = 128 in 73 000–74 000 and at m = 256 in 156 000–174 000 (positive
#: initialisation) and 189 000–218 000 (mixed signs; seeds 0 and 1, measured on the CPU).
TRAINED_OUTPUT_CAPS = {64: 80_000, 256: 300_000}


def chapter02() -> list[Workload]:
    """Chapter 2 (``02_double_descent``), paper profile, the GD training and the pair barriers: d = 8, M = 4;
    the core sweep (widths 2…12, 64 students, ≤ 40 000 steps), the tail (16…4096, 32 students), the
    trained-output sweep (2 initialisations × widths 2…256 × 32 students, at most :data:`TRAINED_OUTPUT_CAPS`
    steps per width range, one padded batch per width group as :meth:`TeacherStudent.train` runs it); the
    barriers of every pair (core 32, tail 16, trained outputs 2 × 16 pairs per width) and the minimum-manifold sweep (widths 4…4096,
    64 pairs), each pair as its three paths on the GPU (:func:`ts_barrier_paths`; the GD solutions are on the GPU
    already, the sampled minima go there by ``manifold_sweep(device=S.device)``), its two matchings' cost matrices
    where the pair is (:func:`ts_match_costs`, on the GPU) and their exact assignments on the CPU
    (:func:`ts_match_assignments`, the exponent measured between widths 512 and 1024). Not counted: the
    Hall-criterion draws and the sparse-manifold sweeps (widths ≤ 64). The large-model grid (d = 32, M = 8 and
    d = 256, M = 16) is the ``full`` profile's, not the paper profile's, and is not counted."""
    out: list[Workload] = []
    gd, fl = ts_gd, _gd_flops
    core, tail = [2, 3, 4, 5, 6, 7, 8, 10, 12], [16, 24, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    out += _per_width("GD core (64 students)", lambda m: gd(8, 4, 64), core, 4000, 256, lambda m: fl(8, 4, 64))
    out += _per_width("GD tail (32 students)", lambda m: gd(8, 4, 32), tail, 4000, 256, lambda m: fl(8, 4, 32))
    from ..papers.teacher_student.experiment import _width_groups

    trained = [2, 3, 4, 5, 6, 8, 12, 16, 32, 64, 128, 256]
    low = 0
    for upper, cap in sorted(TRAINED_OUTPUT_CAPS.items()):  # one sweep per capped width range
        for group in _width_groups([m for m in trained if low < m <= upper]):  # one padded batch each
            n = 32 * len(group)
            out.append(Workload(f"GD trained output m={group[0]}..{group[-1]} (2 inits x {n} students)",
                                gd(8, 4, n, train_output=True), paper_size=group[-1],
                                reduced_size=min(group[-1], 256), count=2 * cap // 10, flops=fl(8, 4, n, True)))
        low = upper
    paths = _paths_flops(8, 4)
    manifold = [4, 5, 6, 8, 12, 16, 24, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    for name, widths, count in (("core (32 pairs)", core, 32), ("tail (16 pairs)", tail, 16),
                                ("trained output (2 x 16 pairs)", trained, 32),
                                ("manifold sweep (64 pairs)", manifold, 64)):
        out += _per_width(f"barrier paths {name}", lambda m: ts_barrier_paths(8, 4), widths, count, 256,
                          lambda m: paths)
        out += _per_width(f"matching costs {name}", lambda m: ts_match_costs(8, 4), widths, count, 256,
                          lambda m: _match_cost_flops(8, 4))
        out += _per_width(f"assignments {name}", lambda m: ts_match_assignments(8, 4), widths, count,
                          MATCH_REDUCED, on_gpu=False, exponent=None)
    return out


def iid_w2(p: int) -> Callable[[float, torch.device], Callable[[], Any]]:
    """One exact ``W_2`` between two independent ``m``-point ``N(0, I_p)`` clouds on the CPU
    (:func:`lmcnb.experiments.ot_rates.two_sample_wasserstein`, one repetition: sampling, the ``m × m`` squared
    distances and the assignment)."""
    from . import ot_rates

    sampler = ot_rates.gaussian_sampler(p)

    def make(size: float, device: torch.device) -> Callable[[], Any]:
        return lambda: ot_rates.two_sample_wasserstein(sampler, [int(size)], 1, p=2, seed=0, cache_dir=None,
                                                       executor=None)

    return make


def _ts_pair_barriers(name: str, d: int, M: int, widths: Sequence[int], pairs: float) -> list[Workload]:
    """The barriers of ``pairs`` pairs per width: three paths and the two matchings' costs on the GPU, the two
    assignments on the CPU (as :func:`chapter02` counts them)."""
    return (_per_width(f"barrier paths {name}", lambda m: ts_barrier_paths(d, M), widths, pairs, 256,
                       lambda m: _paths_flops(d, M))
            + _per_width(f"matching costs {name}", lambda m: ts_match_costs(d, M), widths, pairs, 256,
                         lambda m: _match_cost_flops(d, M))
            + _per_width(f"assignments {name}", lambda m: ts_match_assignments(d, M), widths, pairs, MATCH_REDUCED,
                         on_gpu=False, exponent=None))


def chapter03() -> list[Workload]:
    """Chapter 3 (``03_width_rate``), paper profile (the notebook's ``choose(...)`` values), M = 4:

    - the GD width sweep at d = 4, 8, 32: widths 8…2048, 16 pairs (32 students) per width, ≤ 40 000 steps, and
      the pairs' barriers; its negative control (d = 8, 300 steps, 4 pairs);
    - the training-free sweep of sampled global minima at d = 8: widths 8…4096, 32 pairs (barriers only);
    - the i.i.d.-neuron OT rates: widths 64…2048, p = 2, 4, 8, 16, 32, 16 exact ``W_2`` each (CPU);
    - the variants at d = 8, widths 8…256, 16 pairs: trained outputs with positive and with mixed-sign
      initialisation (≤ 40 000 steps), a random unit-norm teacher and a fixed initial mass (≤ 40 000 steps);
    - finite samples: SGD at batch 64 for 40 000 steps on n = 8 192 samples at d = 4, 8, 32 and on n = 256 d at
      d = 4, 8 (d = 32 is shared), widths 8…256, 16 pairs, modelled as stacked-MLP steps (as chapter 4's SGD);
      each pair's barriers twice (training samples and population, both counted as population paths); the control
      (d = 8, 400 steps).

    Every GD run is counted at its step limit. Not counted: bootstrap fits and figures."""
    out: list[Workload] = []
    widths = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    for d in (4, 8, 32):
        out += _per_width(f"GD d={d} (32 students)", lambda m, d=d: ts_gd(d, 4, 32), widths, 4000, 256,
                          lambda m, d=d: _gd_flops(d, 4, 32))
        out += _ts_pair_barriers(f"GD d={d} (16 pairs)", d, 4, widths, 16)
    out += _per_width("GD control d=8 (8 students, 300 steps)", lambda m: ts_gd(8, 4, 8), widths, 30, 256,
                      lambda m: _gd_flops(8, 4, 8))
    out += _ts_pair_barriers("GD control (4 pairs)", 8, 4, widths, 4)
    out += _ts_pair_barriers("sampled minima (32 pairs)", 8, 4, [8, 12, 16, 24, 32, 64, 128, 256, 512, 1024, 2048,
                                                                 4096], 32)
    for p in (2, 4, 8, 16, 32):
        out += _per_width(f"i.i.d. W2 p={p} (16 pairs)", lambda m, p=p: iid_w2(p), [64, 128, 256, 512, 1024, 2048],
                          16, MATCH_REDUCED, on_gpu=False, exponent=None)
    var = [8, 16, 32, 64, 128, 256]
    out += _per_width("GD variants, trained outputs (2 inits x 32 students)",
                      lambda m: ts_gd(8, 4, 32, train_output=True), var, 2 * 4000, 256,
                      lambda m: _gd_flops(8, 4, 32, True))
    out += _per_width("GD variants, random teacher and fixed mass (2 x 32 students)", lambda m: ts_gd(8, 4, 32),
                      var, 2 * 4000, 256, lambda m: _gd_flops(8, 4, 32))
    out += _ts_pair_barriers("variants (4 x 16 pairs)", 8, 4, var, 64)
    for d in (4, 8, 32, 4, 8):  # n = 8192 at d = 4, 8, 32; n = 256 d at d = 4, 8
        out += _per_width(f"SGD d={d} (32 students, batch 64)",
                          lambda m, d=d: mlp_training(lambda h, d=d: (d, h, 1), 32, 64, loss="mse", momentum=0.0),
                          var, 40_000, 256)
        out += _ts_pair_barriers(f"finite samples d={d} (2 x 16 pairs)", d, 4, var, 32)
    out += _per_width("SGD control d=8 (32 students, 400 steps)",
                      lambda m: mlp_training(lambda h: (8, h, 1), 32, 64, loss="mse", momentum=0.0), var, 400, 256)
    return out


def chapter04() -> list[Workload]:
    """Chapter 4 (``04_learning_rate_sparsity``), paper profile (the notebook's ``choose(...)`` values): the GD
    learning-rate sweeps (15 values of c × 10 seeds at widths 16 and 32, × 6 seeds at 64, 128 and 256;
    ``max(60 000, 625 m)`` steps each) and the one-run predictions of c* per width; the trained-output runs
    (2 c × 2 seeds at m = 32, 400 000 steps); SGD on 16 384 samples (12 c × 10 seeds = 120 students of width 32,
    batches 1, 8, 32, 128, ``max(3, 60 000 b / 16 384)`` epochs, as stacked-MLP steps); and the MNIST
    learning-rate sweep (9 rates × 6 networks 784-512-10, batch 32, 30 epochs; 27 pairs × 3 matchers (identity,
    weight matching, random permutation) × 11 λ on 10 000 inputs; 27 weight matchings). Every GD run is counted at
    its step limit (runs that converge or diverge stop early). Not counted: the single-run sharpness checks
    (power iterations), the Hall-criterion pairs and the barrier section at m = 32."""
    out: list[Workload] = []
    cs, seeds, wide = 15, 10, 6
    for m in [16, 32, 64, 128, 256]:
        steps = max(60_000, 625 * m)
        students = cs * (seeds if m <= 32 else wide)
        out.append(Workload(f"GD c-sweep m={m} ({students} students)", ts_gd(8, 4, students), m, min(m, 128),
                            steps / 10, flops=_gd_flops(8, 4, students)))
        out.append(Workload(f"GD prediction m={m} (1 student)", ts_gd(8, 4, 1), m, min(m, 128), steps / 10,
                            flops=_gd_flops(8, 4, 1)))
    out.append(Workload("GD trained outputs m=32 (4 students)", ts_gd(8, 4, 4, train_output=True), 32, 32,
                        400_000 / 10, flops=_gd_flops(8, 4, 4, True)))
    for b in [1, 8, 32, 128]:
        steps = max(3, 60_000 * b // 16_384) * math.ceil(16_384 / b)
        out.append(Workload(f"SGD batch {b} (120 students, width 32)",
                            mlp_training(lambda m: (8, m, 1), 120, b, loss="mse", momentum=0.0), 32, 32, steps))
    arch = (lambda h: (784, h, 10))
    out.append(Workload("MNIST lr sweep: train 54 nets, width 512", mlp_training(arch, 54, 32, momentum=0.0), 512,
                        128, 30 * math.ceil(MNIST_TRAIN / 32)))
    out.append(Workload("MNIST lr sweep: 27 pairs x 3 curves x 11 lambdas", mlp_forward(arch, 10_000), 512, 128,
                        27 * 3 * 11))
    out.append(Workload("MNIST lr sweep: weight matching", mlp_matching(arch, "weight"), 512, 512, 27,
                        on_gpu=False, exponent=None))
    return out


#: Width at which chapter 6's and 7's weight matchings of 784-h-h-h-10 MLPs are timed when the paper width is
#: larger, scaled by a stated exponent 3 (:data:`WM_EXPONENT`). A measured exponent understates the growth here:
#: coordinate descent also needs more sweeps as the width grows (measured on the project's CPU, one thread, random
#: MLPs as :func:`mlp_matching` builds them: 1.8 s CPU and 10 sweeps at h = 1024, 15.2 s and 23 sweeps at 2048,
#: 113 s and 27 sweeps at 4096; the local exponent between 512 and 1024 is about 1.5 and would predict 12 s at
#: 4096, the cube from 2048 predicts 122 s).
WM_REDUCED = 2048
WM_EXPONENT = 3.0
#: Inputs on which activation matching is timed on the CPU: its assignments (the CPU-side part) depend on the
#: widths only; the forward passes over the matching data run on the GPU and are counted as evaluations.
ACT_TIMED_INPUTS = 256


def _conv_cell(prefix: str, multipliers: Sequence[tuple[str, float]], nets: int, epochs: int, batch: int,
               n_train: int, merges: int, bn_images: int, eval_images: int, endpoint_images: int,
               matchings: dict[str, int], match_images: int, *, augment: bool, eval_batch: int | None = None,
               in_channels: int = 3) -> list[Workload]:
    """A CNN cell: per ``(arch, multiplier)``, ``nets`` networks trained ``epochs`` at ``batch`` on ``n_train``
    images (through random crop and flip if ``augment``); ``merges`` merged models, each BatchNorm-reset on
    ``bn_images`` and evaluated on ``eval_images``, each network evaluated on ``endpoint_images`` and, per
    activation matching, both networks on ``match_images`` (forwards in batches of ``eval_batch``, default
    ``batch``); ``matchings`` (matcher → count) on the CPU, timed at the paper multiplier itself (activation
    matching on :data:`ACT_TIMED_INPUTS` images)."""
    eval_batch = batch if eval_batch is None else eval_batch
    act_forwards = 2 * matchings.get("activation", 0) * math.ceil(match_images / eval_batch)
    out: list[Workload] = []
    for arch, mult in multipliers:
        reduced = min(mult, 0.25)
        out.append(Workload(f"{prefix}{arch} x{mult:g}: train {nets} nets",
                            conv_training(arch, batch, augment=augment), mult, reduced,
                            nets * epochs * math.ceil(n_train / batch)))
        out.append(Workload(f"{prefix}{arch} x{mult:g}: BatchNorm reset",
                            conv_forward(arch, eval_batch, train_mode=True), mult, reduced,
                            merges * math.ceil(bn_images / eval_batch)))
        out.append(Workload(f"{prefix}{arch} x{mult:g}: evaluation", conv_forward(arch, eval_batch, train_mode=False),
                            mult, reduced, merges * math.ceil(eval_images / eval_batch)
                            + nets * math.ceil(endpoint_images / eval_batch) + act_forwards))
        for matcher, count in matchings.items():
            out.append(Workload(f"{prefix}{arch} x{mult:g}: {matcher} matching",
                                conv_matching(arch, matcher, ACT_TIMED_INPUTS if matcher == "activation" else 0,
                                              in_channels), mult, mult, count, on_gpu=False))
    return out


def chapter06() -> list[Workload]:
    """Chapter 6 (``06_lewc``), paper profile (the ``choose(..., paper=...)`` values of its Parameters cell and
    :data:`lmcnb.experiments.cnn_merges.CONV_PAPER`):

    - the MLP sweep: 784-h-h-h-10 without biases, h = 512, 1024, 2048, 4096 (1×–8× the 512-unit MLP; Table 1's
      ×16 is the ``full`` profile's), 10 stacked networks per width (3 seed pairs with weight decay 3e-3, 2
      with 1e-4), batch 500, 50 epochs on 55 000 digits; per pair one calibrated identity curve, 11 λ on
      10 000 test + 5 000 calibration digits (counted as 11 × 1.5 evaluations of 10 000); at the widest width,
      per strong pair, the five matchers of the permutation cell (identity, weight matching, 3 random: 5 curves)
      and one weight matching (CPU, timed at :data:`WM_REDUCED`, scaled by :data:`WM_EXPONENT`);
    - the paper-only CIFAR-10 cell (``CONV_PAPER``): per (architecture, multiplier), each weight decay of
      ``CONV_PAPER.weight_decays`` (3e-3 only; 1e-4 too in ``CONV_FULL``) × a pair trained for
      ``CONV_PAPER.epochs`` at batch 128 on 45 000 images; per pair 2 matchers × 11 λ merged models,
      each BatchNorm-reset on 10 000 images and evaluated on 15 000 (test and calibration); one weight matching
      per pair (CPU); the endpoints on the 10 000 test images.

    Not counted: the LEWC diagnostics, the ensemble and calibration views (forward passes of the size of a few
    curves), the flatness control (12 evaluations)."""
    from .cnn_merges import CONV_PAPER

    out: list[Workload] = []
    arch = (lambda h: (784, h, h, h, 10))
    widths = [512, 1024, 2048, 4096]
    out += _per_width("MLP sweep: train 10 nets", lambda m: mlp_training(arch, 10, 500, bias=False), widths,
                      50 * 110, 128)
    out += _per_width("MLP sweep: 5 pairs x 11 lambdas (test + calibration)", lambda m: mlp_forward(arch, 10_000),
                      widths, 5 * 11 * 1.5, 128)
    widest = widths[-1]
    out.append(Workload(f"permutation cell m={widest}: 3 pairs x 5 curves", mlp_forward(arch, 10_000), widest, 128,
                        3 * 5 * 11 * 1.5))
    out.append(Workload(f"permutation cell m={widest}: weight matching (3 pairs)", mlp_matching(arch, "weight"),
                        widest, min(widest, WM_REDUCED), 3, on_gpu=False, exponent=WM_EXPONENT))
    n = len(CONV_PAPER.weight_decays)
    out += _conv_cell("CIFAR-10 ", CONV_PAPER.multipliers, 2 * n, CONV_PAPER.epochs, CONV_PAPER.batch, CIFAR_TRAIN,
                      n * 2 * 11, CONV_PAPER.bn_images, 15_000, 10_000, {"weight": n}, 0,
                      augment=CONV_PAPER.augment)
    return out


def chapter07() -> list[Workload]:
    """Chapter 7 (``07_real_data_deeper``), paper profile (the ``choose(..., paper=...)`` values of its parameter
    cells; :func:`lmcnb.experiments.real_data.width_sweep` and ``conv_width_sweep`` as they run them):

    - the MLP sweep (:class:`lmcnb.experiments.real_data.MLPSweep`): depths 1, 2, 3; widths 32, 128, 512, 2048;
      2 weight decays × 3 pairs; batch 500, 30 epochs on 55 000 digits. One batched run per depth trains its 48
      networks at the padded width 2048 (as :func:`lmcnb.train.train_mlps` does). Per pair: 3 paths × 25 λ ×
      (5 000 calibration + 10 000 test) inputs, the LEWC diagnostics (4 forwards of 10 000 per path) and the
      endpoints (2 × 65 000), activation matching's 2 × 5 000: 138.5 evaluations of 10 000 inputs; one weight and
      one activation matching on the CPU, timed at the paper width itself;
    - VGG-11 on 2 000 MNIST digits (padded to 32×32, one channel): multipliers 0.25, 0.5, 1, 2, one pair each,
      batch 128, 100 epochs; 3 paths × 11 λ merged models, BatchNorm-reset on the 2 000 training digits and
      evaluated on 500 calibration + 500 test digits (batches of 1 000); weight and activation matching;
    - the paper-only CIFAR-10 cell (:data:`lmcnb.experiments.cnn_merges.CONV_PAPER`, weight decay 3e-3, one
      pair per multiplier): 2 networks trained per multiplier; per pair 3 paths × 11 λ merged models, BatchNorm-reset
      on 10 000 images and evaluated on 5 000 calibration + 5 000 test images, the endpoints on 45 000 + 5 000;
      weight and activation matching (assignments on the CPU; the forwards over 5 000 images counted).

    Not counted: the depth-and-weight-decay tables and figures (no new forward passes)."""
    from .cnn_merges import CONV_PAPER

    out: list[Workload] = []
    widths, pad = [32, 128, 512, 2048], 2048
    for depth in (1, 2, 3):
        arch = (lambda h, depth=depth: (784,) + (int(h),) * depth + (10,))
        out.append(Workload(f"MLP sweep depth {depth}: train 48 nets (padded to {pad})",
                            mlp_training(arch, 48, 500, weight_decay=5e-4), pad, 128, 30 * 110))
        for w in widths:
            out.append(Workload(f"MLP sweep depth {depth} m={w}: 6 pairs x evaluations", mlp_forward(arch, 10_000),
                                w, min(w, 128), 6 * 138.5))
            for matcher, data in (("weight", 0), ("activation", ACT_TIMED_INPUTS)):
                out.append(Workload(f"MLP sweep depth {depth} m={w}: {matcher} matching (6 pairs)",
                                    mlp_matching(arch, matcher, data), w, w, 6, on_gpu=False))
    out += _conv_cell("MNIST ", [("VGG-11", m) for m in (0.25, 0.5, 1.0, 2.0)], 2, 100, 128, 2000, 3 * 11, 2000,
                      1000, 2500, {"weight": 1, "activation": 1}, 500, augment=False, eval_batch=1000,
                      in_channels=1)
    pairs = 1
    out += _conv_cell("CIFAR-10 ", CONV_PAPER.multipliers, 2 * pairs, CONV_PAPER.epochs, CONV_PAPER.batch,
                      CIFAR_TRAIN, pairs * 3 * 11, CONV_PAPER.bn_images, 10_000, 50_000,
                      {"weight": pairs, "activation": pairs}, 5000, augment=CONV_PAPER.augment)
    return out


#: Chapter stem -> its workloads.
CHAPTERS: dict[str, Callable[[], list[Workload]]] = {
    "01_lmc_and_permutations": chapter01, "02_double_descent": chapter02, "03_width_rate": chapter03,
    "04_learning_rate_sparsity": chapter04, "06_lewc": chapter06, "07_real_data_deeper": chapter07}


def __getattr__(name: str) -> object:
    if name == "ts_barrier_matchings":
        raise AttributeError("lmcnb.experiments.paper_budgets.ts_barrier_matchings was split into ts_match_costs "
                             "(the two cost matrices, built where the pair is: the GPU) and ts_match_assignments "
                             "(the two exact assignments, on the CPU)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
