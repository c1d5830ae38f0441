"""Paper-profile cost of chapter 4 (learning rate and sparsity): measured per-step cost, scaled by FLOPs.

Each loop of the chapter (GD on the population loss, SGD on samples, batched MLP training on MNIST) is run on
the CPU at a reduced size twice, for ``k`` and ``2k`` steps (or epochs); the difference is one step's cost,
free of set-up. For that difference this script measures

- the wall time on this CPU (one thread),
- the floating-point operations, counted op by op under a ``TorchDispatchMode`` (``2·b·n·k·l`` for a batched
  matmul, one per output element for every other op: ``arccos`` and ``sqrt`` count as one), and the bytes
  every op reads and writes, and the number of ops (each one kernel launch on a GPU).

The FLOPs, bytes and launches of a step are exact polynomials in the width and the batch of models (checked
here at two sizes), so they are scaled to the paper size; the GPU time of a step is then the roofline bound

    max(FLOPs / F, bytes / BW) + launches · L

with the **assumed** throughput of one modern datacentre GPU (H100 / H200 class): ``F = 20 TFLOP/s`` in float64
(about 60 % of the vector peak; the population kernel is elementwise-heavy), ``F = 200 TFLOP/s`` in float32
(the MLP matmuls on tensor cores), ``BW = 2.5 TB/s`` (about 75 % of HBM3) and ``L = 10 µs`` per launch (op
dispatch from Python plus the kernel launch). Runs that converge early stop early; the estimate assumes every
run takes its full step budget, so it is an upper bound for the sweeps. Nothing here ran on a GPU.

Usage: ``PYTHONPATH=. python tools/estimate_paper_04.py`` (about a minute on one core).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lmcnb import teacher_student as ts
from lmcnb import train

F64_FLOPS, F32_FLOPS, BANDWIDTH, LAUNCH = 20e12, 200e12, 2.5e12, 10e-6
_MATMULS = {"bmm", "mm", "baddbmm", "addmm", "matmul", "addbmm"}


@dataclass
class Cost:
    """One step's cost: FLOPs, bytes read + written, ops (launches), CPU seconds."""

    flops: float = 0.0
    bytes: float = 0.0
    ops: int = 0
    cpu_s: float = 0.0

    def __sub__(self, other: "Cost") -> "Cost":
        return Cost(self.flops - other.flops, self.bytes - other.bytes, self.ops - other.ops,
                    self.cpu_s - other.cpu_s)

    def scaled(self, k: float) -> "Cost":
        return Cost(self.flops * k, self.bytes * k, round(self.ops * k), self.cpu_s * k)

    def gpu_s(self, flops_per_s: float) -> float:
        return max(self.flops / flops_per_s, self.bytes / BANDWIDTH) + self.ops * LAUNCH


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.cost = Cost()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        outs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        self.cost.ops += 1
        self.cost.bytes += sum(t.numel() * t.element_size() for t in tensors + outs)
        if name in _MATMULS:
            a, b = [t for t in tensors if t.dim() >= 2][-2:]
            self.cost.flops += 2 * a.numel() * b.shape[-1]
        else:
            self.cost.flops += sum(o.numel() for o in outs)
        return out


def _measure(run: Callable[[int], object], k: int) -> Cost:
    """Cost of ``run(2k) − run(k)``, divided by ``k``."""
    costs = []
    for n in (k, 2 * k):
        with _Count() as c:
            run(n)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            run(n)
            times.append(time.perf_counter() - t0)
        c.cost.cpu_s = min(times)
        costs.append(c.cost)
    return (costs[1] - costs[0]).scaled(1 / k)


def gd_step(m: int, B: int, d: int = 8, M: int = 4, train_output: bool = False) -> Cost:
    """One GD step of ``B`` models of width ``m`` (tol = 0: no run stops)."""
    T = ts.orthonormal_teacher(d, M)
    W0 = ts.small_init(B, m, d, 0.1, generator=torch.Generator().manual_seed(0))
    a0 = ts.small_output_init(B, m, 0.1, generator=torch.Generator().manual_seed(1)) if train_output else None
    def run(n: int) -> None:
        ts.GD(c=1.0, steps=n, tol=0.0, check_every=100, train_output=train_output).run(ts.Population(T), W0,
                                                                                         a0=a0)
    return _measure(run, 100)


def sgd_step(m: int, B: int, batch: int, n: int = 2048, d: int = 8, M: int = 4) -> Cost:
    """One SGD step (``batch`` samples) of ``B`` models of width ``m``."""
    from lmcnb import data
    T = ts.orthonormal_teacher(d, M)
    samples = data.teacher_student_data(T, n, torch.Generator().manual_seed(0))
    W0 = ts.small_init(B, m, d, 0.1, generator=torch.Generator().manual_seed(0))

    def run(epochs: int) -> None:
        ts.SGD(c=1.0, batch_size=batch, epochs=epochs, tol=0.0).run(samples, W0,
                                                                     generator=torch.Generator().manual_seed(0))
    return _measure(run, 2).scaled(batch / n)


def mlp_step(width: int, B: int, batch: int = 32, n: int = 1024, din: int = 784) -> Cost:
    """One SGD step of ``B`` MLPs ``din → width → 10`` (float32)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, din, generator=g), torch.randint(0, 10, (n,), generator=g)
    inits = train.init_mlps((din, width, 10), B, list(range(B)))

    def run(epochs: int) -> None:
        cfg = train.TrainConfig(epochs=epochs, batch_size=batch, lr=0.1, momentum=0.0)
        train.train_mlps(inits, x, y, cfg, seeds=list(range(B)))
    return _measure(run, 1).scaled(batch / n)


def _fit(c1: Cost, c2: Cost, x1: float, x2: float, x: float) -> Cost:
    """Scale a cost measured at sizes ``x1``, ``x2`` to ``x``: FLOPs and bytes as a power law through both points
    (exact for a polynomial's leading term), ops constant (the same ops on larger tensors)."""
    def pw(a: float, b: float) -> float:
        if a <= 0 or b <= 0:  # a CPU time lost in timing noise: scale linearly
            return max(a, b, 0.0) * x / x2
        p = math.log(b / a) / math.log(x2 / x1)
        return b * (x / x2) ** p
    return Cost(pw(c1.flops, c2.flops), pw(c1.bytes, c2.bytes), c2.ops, pw(c1.cpu_s, c2.cpu_s))


def main() -> None:
    torch.set_num_threads(1)
    rows: list[tuple[str, float, float]] = []
    # GD on the population loss: per model-step cost ~ m (m + M); measured at m = 32 and 64 with 40 models
    g1, g2 = gd_step(32, 40), gd_step(64, 40)
    print(f"GD step, 40 models: m = 32 {g1.flops:.3g} FLOP, {g1.bytes:.3g} B, {g1.ops} ops, {g1.cpu_s * 1e3:.2f} "
          f"ms CPU; m = 64 {g2.flops:.3g} FLOP, {g2.ops} ops, {g2.cpu_s * 1e3:.2f} ms CPU "
          f"({g2.flops / g2.cpu_s / 1e9:.2f} GFLOP/s on this CPU)")
    to = gd_step(32, 4, train_output=True)

    def gd(label: str, m: int, models: int, steps: int) -> None:
        per = _fit(g1, g2, 32 * 36, 64 * 68, m * (m + 4)).scaled(models / 40)
        per.ops = g2.ops
        rows.append((label, steps * per.gpu_s(F64_FLOPS), steps * per.cpu_s))

    P = paper()
    for m in P["widths"]:
        S = len(P["seeds"]) if m <= 32 else P["wide_seeds"]
        steps = max(P["gd_steps"], 625 * m)
        gd(f"GD sweep m = {m} ({len(P['cs'])} c x {S} seeds, {steps} steps)", m, len(P["cs"]) * S, steps)
        gd(f"prediction m = {m} (1 run)", m, 1, steps)
    rows.append((f"trained outputs m = 32 (2 c x 2 seeds, {P['to_steps']} steps)",
                 P["to_steps"] * to.gpu_s(F64_FLOPS), P["to_steps"] * to.cpu_s))
    # SGD: per-step cost measured at batch 8 and 128 (B = 24 models of width 32)
    s1, s2 = sgd_step(32, 24, 8), sgd_step(32, 24, 128)
    for b in P["sgd_batches"]:
        epochs = max(3, P["sgd_steps"] * b // P["sgd_n"])
        steps = epochs * P["sgd_n"] // b
        per = _fit(s1, s2, 8, 128, b).scaled(len(P["sgd_cs"]) * len(P["seeds"]) / 24)
        per.ops = s2.ops
        rows.append((f"SGD batch {b} ({steps} steps)", steps * per.gpu_s(F64_FLOPS), steps * per.cpu_s))
    # MNIST: batched MLP steps, measured at width 64 and 128 (6 models), scaled to the paper's models and width
    q1, q2 = mlp_step(64, 6), mlp_step(128, 6)
    models = len(P["mn_lrs"]) * 2 * P["mn_pairs"]
    per = _fit(q1, q2, 64, 128, P["mn_width"]).scaled(models / 6)
    per.ops = q2.ops
    steps = P["mn_epochs"] * 60_000 // 32
    rows.append((f"MNIST {models} MLPs 784-{P['mn_width']}-10, {steps} steps", steps * per.gpu_s(F32_FLOPS),
                 steps * per.cpu_s))
    total = sum(r[1] for r in rows)
    for label, gpu, cpu in rows:
        print(f"{label:<60s} GPU {gpu / 60:7.2f} min   (this CPU, one thread: {cpu / 3600:8.2f} h)")
    print(f"{'total':<60s} GPU {total / 60:7.2f} min")


def paper() -> dict:
    """Chapter 4's paper profile (keep in step with the notebook's parameter cell)."""
    return dict(widths=[16, 32, 64, 128, 256], wide_seeds=6, seeds=list(range(10)),
                cs=[1.0, 1.5, 2.0, 2.25, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5], gd_steps=60_000,
                to_steps=400_000,
                sgd_cs=[1.0, 1.25, 1.5, 1.75, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.75, 3.0], sgd_batches=[1, 8, 32, 128],
                sgd_n=16_384, sgd_steps=60_000, mn_lrs=[0.01, 0.03, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0],
                mn_pairs=3, mn_width=512, mn_epochs=30)


if __name__ == "__main__":
    main()
