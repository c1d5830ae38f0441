"""Chapter 7's paper-profile budget: per-step costs measured on the CPU at reduced size, scaled to the paper sizes by
FLOPs at a stated GPU throughput.

Run ``.venv/bin/python benchmarks/bench_ch07_budget.py [--quick]`` (a minute or two on one thread; ``--quick`` is a
smoke run whose numbers mean nothing). It

1. times training steps (forward, backward, SGD step; crop-and-flip augmentation for the CNNs, as the paper cell
   trains) of VGG-11 and ResNet-20 at small width multipliers, batch 32, on the CPU, and the batched MLP step
   (:func:`lmcnb.train.train_mlps`' stacked ``bmm``) at small widths; best of ``repeats`` after a warm-up; and
   counts the aten operations of one step (a ``TorchDispatchMode``): the number of kernels an eager step
   launches, which does not depend on the width;
2. prints the CPU's achieved FLOP rate at each size (FLOPs per step / seconds per step): on the CPU the small
   steps are dominated by work the FLOP count does not see (BatchNorm, ReLU, the augmentation's gather), which is
   why the estimate adds a per-operation cost;
3. estimates the paper profile on one GPU as ``FLOPs / R + steps · ops · c``: ``R`` the stated sustained rate
   (:data:`lmcnb.experiments.cnn_merges.SUSTAINED_TFLOPS`, 50 TFLOP/s, one A100/H100-class GPU in FP32/TF32; a
   Colab T4 sustains about 4 TFLOP/s in FP32, 8.1 peak), ``c`` = 10 µs the host-side cost of one eager
   operation (Python, dispatcher, kernel launch; stated, not measured: no GPU was available). FLOPs come from
   :meth:`lmcnb.realdata.MLPSweep.flops` and :meth:`lmcnb.realdata.CNNSweep.flops` for the chapter's paper
   sizes (the notebook's parameter cells). Weight matching's assignments run on the CPU; the largest one (2048
   channels, VGG-11 ×4) is timed too.

The output is Markdown; chapter 7 quotes one run.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.utils._python_dispatch

from lmcnb import data, models, realdata, train
from lmcnb.experiments import cnn_merges

T4_TFLOPS = 4.0
#: Host-side seconds per eager operation on a GPU (Python + dispatcher + launch), stated.
OP_SECONDS = 10e-6


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten operations run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def count_ops(step) -> int:
    """aten operations of one call of ``step()`` (forward, backward and optimiser step)."""
    with _CountOps() as c:
        step()
    return c.n


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cnn_step_seconds(make, batch: int, repeats: int, steps: int) -> tuple[float, int]:
    """Seconds per augmented training step of ``make()`` at ``batch`` on CPU (best of ``repeats`` runs of
    ``steps`` steps) and the aten operations of one step."""
    net = cnn_merges.RandomCropFlip(cnn_merges.seeded_model(make, 0), 0).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-3)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def run() -> None:
        for _ in range(steps):
            step()

    return _best(run, repeats) / steps, count_ops(step)


def mlp_step_seconds(widths: tuple[int, ...], n_models: int, batch: int, repeats: int) -> tuple[float, int, int]:
    """Seconds per step of ``n_models`` stacked MLPs (one epoch of ``train_mlps`` on ``10·batch`` inputs, per
    step), the FLOPs of one step and the aten operations of one step (an epoch of one step)."""
    inits = train.init_mlps(widths, n_models, list(range(n_models)))
    x, y = torch.randn(10 * batch, widths[0]), torch.randint(0, widths[-1], (10 * batch,))
    cfg = train.TrainConfig(epochs=1, batch_size=batch, lr=0.01, momentum=0.9)
    secs = _best(lambda: train.train_mlps(inits, x, y, cfg, seeds=list(range(n_models))), repeats) / 10
    ops = count_ops(lambda: train.train_mlps(inits, x[:batch], y[:batch], cfg, seeds=list(range(n_models))))
    return secs, train.flops_per_step(train.stack_mlps(inits), batch), ops


def paper_sweeps() -> dict[str, tuple[object, int, int]]:
    """The chapter's paper-profile sweeps as in its parameter cells: ``name → (spec, n_train, n_val)``."""
    mlp = realdata.MLPSweep([1, 2, 3], [32, 128, 512, 2048], [5e-4, 5e-3],
                            train.TrainConfig(epochs=50, batch_size=500, lr=0.1, momentum=0.9, schedule="cosine"),
                            torch.linspace(0, 1, 25), n_pairs=3, n_eval=10000)
    mnist_cnn = realdata.CNNSweep("vgg11", [0.25, 0.5, 1.0, 2.0],
                                  train.TrainConfig(epochs=100, batch_size=128, lr=0.1, momentum=0.9,
                                                    weight_decay=5e-4, schedule="cosine"),
                                  torch.linspace(0, 1, 11), n_eval=500, n_bn=2000)
    out: dict[str, tuple[object, int, int]] = {"MLP sweep (full MNIST)": (mlp, 55_000, 5000),
                                               "VGG-11 on 2 000 MNIST digits": (mnist_cnn, 2000, 500)}
    for spec in realdata.conv_sweeps(cnn_merges.CONV_PAPER, weight_decay=3e-3, lambdas=torch.linspace(0, 1, 11),
                                     n_eval=5000, n_pairs=2):
        out[f"CIFAR-10 {spec.arch} x{', '.join(f'{m:g}' for m in spec.multipliers)}"] = (spec, 45_000, 5000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats, steps = (1, 1) if args.quick else (3, 3)
    print(f"## Chapter 7 paper budget\n\nCPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    fams = {"VGG-11": (lambda m: models.VGG11(m), (1 / 16, 1 / 8, 1 / 4) if not args.quick else (1 / 16, 1 / 8)),
            "ResNet-20": (lambda m: models.ResNet20(m), (0.25, 0.5, 1.0) if not args.quick else (0.25, 0.5))}
    batch, ops = 32, {}
    print("| family | multiplier / widths | FLOPs per step | aten ops per step | CPU s per step | CPU GFLOP/s |"
          "\n|---|---|---|---|---|---|")
    for name, (mk, mults) in fams.items():
        for m in mults:
            fl = 3 * batch * cnn_merges.forward_flops(lambda: mk(m), (3, 32, 32))
            sec, n = cnn_step_seconds(lambda: mk(m), batch, repeats, steps)
            ops[name] = n
            print(f"| {name} | x{m:g} | {fl:.3g} | {n} | {sec:.4f} | {fl / sec / 1e9:.1f} |")
    for w in ((64,) if args.quick else (64, 256, 512)):
        sec, fl, n = mlp_step_seconds((784, w, w, 10), 12, 500, repeats)
        ops["MLP"] = n
        print(f"| MLP x12 (stacked, batch 500) | 784-{w}-{w}-10 | {fl:.3g} | {n} (one epoch of one step) | "
              f"{sec:.4f} | {fl / sec / 1e9:.1f} |")
    c = torch.randn(2048, 2048, dtype=torch.float64)
    from scipy.optimize import linear_sum_assignment
    lap = _best(lambda: linear_sum_assignment(c.numpy()), 1)
    print(f"\none assignment of 2048 channels (weight matching, VGG-11 x4): {lap:.2f} s on this CPU")
    print("\n| sweep | FLOPs | training steps | GPU min (50 TFLOP/s + 10 µs per op) | of which FLOPs | "
          "Colab T4 min (4 TFLOP/s) |\n|---|---|---|---|---|---|")
    total = total_t4 = 0.0
    for name, (spec, n_train, n_val) in paper_sweeps().items():
        flops = spec.flops(n_train, n_val)
        if isinstance(spec, realdata.MLPSweep):
            nsteps = len(spec.depths) * spec.config.total_steps(n_train)  # one stacked step per depth
            per_step = ops["MLP"]
        else:
            nsteps = spec.steps(n_train)
            per_step = ops["VGG-11" if spec.arch == "vgg11" else "ResNet-20"]
        host = nsteps * per_step * OP_SECONDS
        gpu = (flops / (cnn_merges.SUSTAINED_TFLOPS * 1e12) + host) / 60
        t4 = (flops / (T4_TFLOPS * 1e12) + host) / 60
        total, total_t4 = total + gpu, total_t4 + t4
        print(f"| {name} | {flops:.3g} | {nsteps} | {gpu:.1f} | "
              f"{flops / (cnn_merges.SUSTAINED_TFLOPS * 1e12) / 60:.1f} | {t4:.0f} |")
    print(f"| **total** | | | **{total:.0f}** | | **{total_t4:.0f}** |")


if __name__ == "__main__":
    main()
