"""Paper-profile budgets from measured per-step costs: the model behind each chapter's ``lmcnb.paper_gpu_minutes``.

A chapter's paper profile is a list of :class:`Workload` s. A workload is one kind of step (a training step of a
stack of networks, one forward pass over an evaluation set, one weight matching, ...) repeated ``count`` times,
with a size parameter (a width, a width multiplier) that is ``paper_size`` in the paper profile. The model:

1. **FLOPs.** ``F(s)``: the FLOPs of one step at size ``s``, counted by ``torch.utils.flop_counter.FlopCounterMode``
   (matmul, ``bmm``, ``addmm``, ``baddbmm``, convolutions: 2 per multiply-add, forward and backward as executed).
   ``F(paper)`` is counted on the ``meta`` device (shapes only: no memory, no time), or given in closed form
   (``Workload.flops``) for steps that cannot run there.
2. **Measured CPU time.** ``t_r``: the median wall time of a few steps at ``reduced_size`` on this CPU (after one
   warm-up step), and ``ops``: the ATen operators one step dispatches (about the GPU kernels it launches).
3. **Scaled by FLOPs.** ``t_cpu(paper) = t_r · F(paper) / F(reduced)``: the CPU time at paper size (what a
   CPU-only run would take; elementwise work, losses and optimiser updates are carried along in proportion).
4. **To the GPU.** ``t_gpu = max(t_cpu(paper) · R_cpu / S_gpu, F(paper) / S_gpu, ops · τ)`` per step, where
   ``R_cpu`` is the float32 matmul throughput of this CPU, measured (:func:`cpu_matmul_flops`), ``S_gpu`` the GPU's stated sustained
   throughput and ``τ`` its floor per operator (kernel launch and Python dispatch). ``t_cpu · R_cpu`` is the
   step's cost in "CPU-peak FLOPs": it includes what ``FlopCounterMode`` does not count, at the CPU's efficiency
   on that shape, so small reduced sizes make the estimate conservative. ``ops · τ`` is the launch-bound floor
   of small steps (the teacher–student students), where a GPU is no faster than its kernel launches.
   ``max(F(paper) / S_gpu, ops · τ)`` is reported as the lower bound.
5. **CPU-side work** (``Workload.on_gpu=False``: matchings and their assignment problems) is timed at reduced size
   and scaled by ``(paper_size / reduced_size) ** k``; it runs on the GPU machine's CPU and counts in the
   chapter's minutes. ``k`` is stated (``Workload.exponent``) or, with ``exponent=None``, measured: the local
   exponent ``log(t(r) / t(r/2)) / log 2`` between the reduced size and half of it, clamped to ``[1, 3]`` (3: a
   dense linear assignment). A measured ``k`` understates the growth if the cubic part only dominates above the
   reduced size; a stated 3 overstates it where fixed and quadratic costs still dominate.

The stated GPUs: :data:`A100_CLASS` (15 TFLOP/s sustained float32, τ = 10 µs: 75 % of an A100's 19.5 TFLOP/s
float32 peak; an H100 is about 3× faster in float32, so this is conservative for one) and :data:`COLAB_T4`
(4 TFLOP/s, τ = 10 µs: half of the T4's 8.1 TFLOP/s float32 peak, which its 70 W limit does not sustain).
Nothing here was verified on a GPU (none was available): the figures are estimates, documented with their
inputs in every :class:`Estimate`.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

__all__ = ["GPU", "A100_CLASS", "COLAB_T4", "Workload", "Estimate", "count_flops", "count_ops", "time_step",
           "cpu_matmul_flops", "gpu_step_seconds", "local_exponent", "estimate", "estimate_from", "as_dict",
           "total_minutes", "table"]


@dataclass(frozen=True)
class GPU:
    """A GPU as the budget model sees it: ``sustained_tflops`` (TFLOP/s on the book's float32 steps) and
    ``launch_us``, the floor per dispatched operator in microseconds."""

    name: str
    sustained_tflops: float
    launch_us: float

    def __post_init__(self) -> None:
        for field, value in (("sustained_tflops", self.sustained_tflops), ("launch_us", self.launch_us)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"GPU {field} must be a finite number > 0, got {value!r}")


#: One A100/H100-class GPU (the book's budget unit).
A100_CLASS = GPU("A100/H100 class", sustained_tflops=15.0, launch_us=10.0)
#: A free Colab T4.
COLAB_T4 = GPU("Colab T4", sustained_tflops=4.0, launch_us=10.0)


@dataclass(frozen=True)
class Workload:
    """One kind of step of a chapter's paper profile, repeated ``count`` times.

    Attributes:
        name: what the step is (shown in tables).
        make: ``make(size, device) -> step``: builds the inputs at ``size`` on ``device`` and returns a
            zero-argument callable that runs one step. Must work on ``torch.device("meta")`` unless ``flops`` is
            given (``on_gpu`` workloads only).
        paper_size, reduced_size: the size parameter at paper scale and as timed on the CPU (``> 0``).
        count: steps at paper size (``>= 0``; a float for an expected count).
        flops: optional ``flops(size) -> FLOPs of one step`` in closed form (instead of counting on ``meta``).
        on_gpu: ``False`` for CPU-side work, scaled by ``(paper_size / reduced_size) ** exponent``.
        exponent: the CPU-side cost's power of the size (``on_gpu=False`` only); ``None``: measured (model
            step 5).
    """

    name: str
    make: Callable[[float, torch.device], Callable[[], Any]]
    paper_size: float
    reduced_size: float
    count: float
    flops: Callable[[float], float] | None = None
    on_gpu: bool = True
    exponent: float | None = 3.0

    def __post_init__(self) -> None:
        if not callable(self.make):
            raise TypeError(f"workload {self.name!r}: make must be callable, got {type(self.make).__name__}")
        for field in ("paper_size", "reduced_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"workload {self.name!r}: {field} must be a number > 0, got {value!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, (int, float)) or not self.count >= 0:
            raise ValueError(f"workload {self.name!r}: count must be a number >= 0, got {self.count!r}")
        if self.reduced_size > self.paper_size:
            raise ValueError(f"workload {self.name!r}: reduced_size {self.reduced_size} exceeds paper_size "
                             f"{self.paper_size}")


@dataclass(frozen=True)
class Estimate:
    """A workload's estimate and its inputs: FLOPs per step at paper and reduced size, operators per step,
    the measured CPU seconds per reduced step, the CPU's matmul FLOP/s; seconds in total at paper size on the
    CPU, on the GPU (``gpu_s``; for CPU-side work the CPU seconds) and the GPU lower bound."""

    name: str
    count: float
    flops_paper: float
    flops_reduced: float
    ops: int
    cpu_step_s: float
    cpu_flops: float
    cpu_s: float
    gpu_s: float
    gpu_floor_s: float
    on_gpu: bool
    gpu: GPU
    exponent: float | None = None


def count_flops(step: Callable[[], Any]) -> int:
    """FLOPs of one call of ``step`` as ``FlopCounterMode`` counts them (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def count_ops(step: Callable[[], Any]) -> int:
    """ATen operators dispatched by one call of ``step`` (views and metadata queries included)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            self.n += 1
            return func(*args, **(kwargs or {}))

    with _Count() as mode:
        step()
    return mode.n


def time_step(step: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall seconds of ``repeats`` calls of ``step`` after ``warmup`` calls."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_matmul_flops(n: int = 512, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s of this CPU (``n × n`` by ``n × n``, torch's current thread count)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = time_step(lambda: a @ b, repeats=repeats, warmup=1)
    return 2.0 * n**3 / seconds


def gpu_step_seconds(cpu_step_s: float, flops_reduced: float, flops_paper: float, cpu_flops: float, ops: int,
                     gpu: GPU) -> tuple[float, float]:
    """``(estimate, lower bound)`` of one paper-size step on ``gpu``, in seconds (model steps 3–4 above)::

        lower    = max(flops_paper / S, ops · τ)
        estimate = max(cpu_step_s · flops_paper / flops_reduced · cpu_flops / S, lower)

    (a step the CPU ran faster than its matmul benchmark still takes ``flops_paper / S`` on the GPU).
    """
    for name, value in (("cpu_step_s", cpu_step_s), ("flops_reduced", flops_reduced), ("cpu_flops", cpu_flops)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    if not flops_paper >= 0 or ops < 0:
        raise ValueError(f"flops_paper and ops must be >= 0, got {flops_paper!r}, {ops!r}")
    s, floor = gpu.sustained_tflops * 1e12, ops * gpu.launch_us * 1e-6
    scaled = cpu_step_s * flops_paper / flops_reduced * cpu_flops / s
    lower = max(flops_paper / s, floor)
    return max(scaled, lower), lower


def local_exponent(t_half: float, t_full: float, low: float = 1.0, high: float = 3.0) -> float:
    """``log2(t_full / t_half)`` (the cost's local power of the size between ``r/2`` and ``r``), clamped to
    ``[low, high]``."""
    if not (t_half > 0 and t_full > 0):
        raise ValueError(f"timings must be > 0, got {t_half!r}, {t_full!r}")
    return min(high, max(low, math.log2(t_full / t_half)))


def estimate(workload: Workload, gpu: GPU = A100_CLASS, *, cpu_flops: float | None = None,
             repeats: int = 3) -> Estimate:
    """Time ``workload`` at its reduced size on this CPU and estimate it at paper size on ``gpu``.

    ``cpu_flops``: this CPU's matmul FLOP/s (default: measured now by :func:`cpu_matmul_flops`; pass one
    measurement to several calls). Runs ``repeats + 2`` reduced steps (warm-up, timing, operator count); CPU-side
    work runs twice per timed size (warm-up and one timing), at ``reduced_size`` and, to measure the exponent,
    at half of it."""
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload, got {type(workload).__name__}")
    if not isinstance(gpu, GPU):
        raise TypeError(f"gpu must be a GPU, got {type(gpu).__name__}")
    cpu_flops = cpu_matmul_flops() if cpu_flops is None else float(cpu_flops)
    step = workload.make(workload.reduced_size, torch.device("cpu"))
    if not workload.on_gpu:  # long single calls: one warm-up (imports, caches), one timing per size
        cpu_step_s = time_step(step, repeats=1)
        k = workload.exponent
        if k is None and workload.paper_size > workload.reduced_size:
            t_half = time_step(workload.make(workload.reduced_size / 2, torch.device("cpu")), repeats=1)
            k = local_exponent(t_half, cpu_step_s)
        k = 1.0 if k is None else k
        cpu_s = workload.count * cpu_step_s * (workload.paper_size / workload.reduced_size) ** k
        return Estimate(workload.name, workload.count, 0.0, 0.0, 0, cpu_step_s, cpu_flops, cpu_s, cpu_s, cpu_s,
                        False, gpu, exponent=k)
    cpu_step_s = time_step(step, repeats=repeats)
    ops = count_ops(step)
    if workload.flops is not None:
        f_reduced, f_paper = float(workload.flops(workload.reduced_size)), float(workload.flops(workload.paper_size))
    else:
        f_reduced = float(count_flops(step))
        f_paper = float(count_flops(workload.make(workload.paper_size, torch.device("meta"))))
    if not f_reduced > 0:
        raise ValueError(f"workload {workload.name!r}: its reduced step counts {f_reduced} FLOPs; give flops=")
    per_step, floor = gpu_step_seconds(cpu_step_s, f_reduced, f_paper, cpu_flops, ops, gpu)
    cpu_s = workload.count * cpu_step_s * f_paper / f_reduced
    return Estimate(workload.name, workload.count, f_paper, f_reduced, ops, cpu_step_s, cpu_flops, cpu_s,
                    workload.count * per_step, workload.count * floor, True, gpu)


def estimate_from(est: Estimate, gpu: GPU) -> Estimate:
    """``est`` converted to another ``gpu`` from the same measurements (no new timing); CPU-side work is
    unchanged."""
    if not isinstance(est, Estimate) or not isinstance(gpu, GPU):
        raise TypeError("estimate_from(est, gpu) takes an Estimate and a GPU")
    if not est.on_gpu:
        return replace(est, gpu=gpu)
    per_step, floor = gpu_step_seconds(est.cpu_step_s, est.flops_reduced, est.flops_paper, est.cpu_flops, est.ops,
                                       gpu)
    return replace(est, gpu_s=est.count * per_step, gpu_floor_s=est.count * floor, gpu=gpu)


def as_dict(est: Estimate) -> dict[str, Any]:
    """``est`` as JSON-ready values (the GPU by name and figures)."""
    out = asdict(est)
    out["gpu"] = asdict(est.gpu)
    return out


def total_minutes(estimates: list[Estimate]) -> tuple[float, float]:
    """``(GPU-machine minutes, lower bound)``: GPU workloads plus CPU-side work, which runs in between."""
    return sum(e.gpu_s for e in estimates) / 60.0, sum(e.gpu_floor_s for e in estimates) / 60.0


def table(estimates: list[Estimate]) -> str:
    """A plain-text table of ``estimates`` (one line each, then the total)."""
    head = (f"{'workload':44s} {'count':>9s} {'GFLOP/step':>11s} {'ops':>6s} {'cpu ms/red.':>11s} "
            f"{'cpu min':>9s} {'gpu min':>8s} {'floor':>7s}")
    lines = [head]
    for e in estimates:
        where = "" if e.on_gpu else " (CPU)"
        lines.append(f"{(e.name + where)[:44]:44s} {e.count:9.0f} {e.flops_paper / 1e9:11.3g} {e.ops:6d} "
                     f"{1e3 * e.cpu_step_s:11.3g} {e.cpu_s / 60:9.3g} {e.gpu_s / 60:8.3g} {e.gpu_floor_s / 60:7.3g}")
    gpu, floor = total_minutes(estimates)
    lines.append(f"{'total (' + (estimates[0].gpu.name if estimates else '-') + ')':44s} {'':9s} {'':11s} {'':6s} "
                 f"{'':11s} {sum(e.cpu_s for e in estimates) / 60:9.3g} {gpu:8.3g} {floor:7.3g}")
    return "\n".join(lines)
