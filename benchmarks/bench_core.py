"""Speed of lmcnb's fast paths, as ratios against straightforward references timed in the same run.

Run ``make bench`` (or ``.venv/bin/python benchmarks/bench_core.py [--quick] [--threads N]``). It prints the machine,
this machine's float32 matmul peak, and three tables:

1. **Weight matching** (MLP 784-512-512-512-10, independently initialised pair, a planted pair, float32 and
   float64): :class:`lmcnb.matching.WeightMatching` vs git-re-basin's permutation coordinate descent written as
   its authors wrote it (:func:`reference_weight_matching`). Both are given the same visiting orders, so they
   walk the same coordinate-descent path: the ratio compares implementations, not luck, and the objectives
   (and permutations) must agree.
2. **Batched training** of 16 one-hidden-layer students d→m→1 (MSE regression): :func:`lmcnb.train.train_mlps`
   (one stacked ``bmm`` model) vs a Python loop of :func:`lmcnb.train.train_classifier`, same data, initial
   weights, data-order seeds and SGD recipe; achieved GFLOP/s as a fraction of the matmul peak.
3. **Barrier curve** (25 λ; the MLP above on 1000 MNIST digits, and a small teacher–student net):
   :func:`lmcnb.merge.evaluate_path` vs a loop that deep-copies the model and loads the interpolated state for
   every λ.

Timing: every case runs once to warm up, then reference and lmcnb alternate ``repeats`` times and the best
wall-clock time of each is kept (best-of-N discards the interference of other processes on a shared machine).
By default torch runs on **one thread**, as the test suite and the book's output refresh do
(``OMP_NUM_THREADS=1``); ``--threads 0`` keeps torch's default. ``--quick`` is a smoke run (small sizes, one
repeat, 10–20 s) whose numbers mean nothing; a full run takes 2–3 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

import lmcnb
from lmcnb import data, merge, train
from lmcnb.matching import WeightMatching, weight_matching_objective
from lmcnb.models import MLP, TwoLayerNet, teacher
from lmcnb.permutation import apply_perms, permute_model, random_perms, spec_for


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run (full or quick)."""

    wm_hidden: tuple[int, ...]  # MLP 784-h-h-h-10 for weight matching and the barrier curve
    wm_orders: tuple[int, ...]  # visiting-order seeds (each one PCD path, run by both implementations)
    train_steps: int  # SGD steps per student
    train_workloads: tuple[tuple[int, int], ...]  # (d, batch size)
    widths: tuple[int, ...]  # student widths m
    students: int  # B
    barrier_inputs: int
    lambdas: int
    repeats: int  # timed runs after the warm-up (best kept)
    peak_n: tuple[int, ...]  # square matmul sizes for the peak (the best rate over them is kept)


FULL = Sizes(wm_hidden=(512, 512, 512), wm_orders=(0, 1, 2), train_steps=40,
             train_workloads=((8, 64), (256, 256)), widths=(16, 64, 512), students=16, barrier_inputs=1000,
             lambdas=25, repeats=5, peak_n=(1024, 2048))
QUICK = Sizes(wm_hidden=(128, 128, 128), wm_orders=(0,), train_steps=4, train_workloads=((8, 64), (64, 64)),
              widths=(16, 64), students=4, barrier_inputs=200, lambdas=5, repeats=1, peak_n=(512,))


# ----------------------------------------------------------------------------------------------- timing
def best_of(fns: Mapping[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Warm every function up once, then run them alternately ``repeats`` times; best wall-clock seconds each."""
    results = {name: fn() for name, fn in fns.items()}
    best = {name: math.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def matmul_peak(sizes: tuple[int, ...], repeats: int) -> float:
    """Best float32 ``torch.mm`` throughput (GFLOP/s) on ``n × n`` matrices, over ``sizes``, at the current
    thread count (each size best of ``repeats`` after a warm-up)."""
    g = torch.Generator().manual_seed(0)
    rates = []
    for n in sizes:
        a, b, out = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g), torch.empty(n, n)
        seconds, _ = best_of({"mm": lambda: torch.mm(a, b, out=out)}, repeats)
        rates.append(2 * n ** 3 / seconds["mm"] / 1e9)
    return max(rates)


# ----------------------------------------------------------------------------------------------- output
def table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    """Print a Markdown table with a title and notes."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for note in notes:
        print(f"\n{note}")
    sys.stdout.flush()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_machine(threads: int) -> None:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("## lmcnb benchmarks\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- CPU: {cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels); {os.cpu_count()} logical cores "
          f"({usable} usable); load average {load} at start")
    print(f"- torch {torch.__version__} on {threads} thread(s); numpy {np.__version__}; scipy {scipy.__version__}; "
          f"Python {platform.python_version()}; lmcnb {lmcnb.__version__}")
    print("- timings: best of N wall-clock runs after a warm-up, reference and lmcnb alternating")


# ----------------------------------------------------------------------------------------------- 1. weight matching
def reference_weight_matching(spec, params_a: Mapping[str, torch.Tensor], params_b: Mapping[str, torch.Tensor],
                              seed: int, max_iter: int = 100) -> tuple[dict[str, torch.Tensor], int, int]:
    """git-re-basin's ``weight_matching`` (Ainsworth et al., JAX original) transcribed to torch statement by statement.

    For each sweep, a fresh random order of the permutation groups; for each group, the similarity
    ``A = Σ_{(w, axis)} w_a @ w_bᵀ`` over all axes the group acts on, with every *other* current permutation
    re-applied to b's tensor (``get_permuted_param``); scipy's LAP (``maximize=True``); old and new values via
    identity-matrix rows; the new permutation is always accepted. Stops after a sweep without any gain
    > 1e-12. Deviations: the visiting order is ``torch.randperm`` with a generator seeded by ``seed`` (the order
    lmcnb's ``WeightMatching(seed=seed)`` draws) instead of JAX's PRNG, so that both walk one path; ``A`` has the
    parameters' dtype (JAX's default is float32).

    Returns ``(perms, sweeps, laps)``.
    """
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in spec.perm_to_axes.items()}
    perm = {p: torch.arange(n) for p, n in perm_sizes.items()}
    perm_names = list(perm.keys())
    rng = torch.Generator().manual_seed(seed)

    def get_permuted_param(k: str, params: Mapping[str, torch.Tensor], except_axis: int) -> torch.Tensor:
        w = params[k]
        for axis, p in enumerate(spec.axes_to_perm[k]):
            if axis != except_axis and p is not None:
                w = torch.index_select(w, axis, perm[p])
        return w

    sweeps = laps = 0
    for _ in range(max_iter):
        sweeps += 1
        progress = False
        for p_ix in torch.randperm(len(perm_names), generator=rng).tolist():
            p = perm_names[p_ix]
            n = perm_sizes[p]
            A = torch.zeros((n, n), dtype=params_a[spec.perm_to_axes[p][0][0]].dtype)
            for wk, axis in spec.perm_to_axes[p]:
                w_a = params_a[wk]
                w_b = get_permuted_param(wk, params_b, except_axis=axis)
                w_a = torch.moveaxis(w_a, axis, 0).reshape((n, -1))
                w_b = torch.moveaxis(w_b, axis, 0).reshape((n, -1))
                A += w_a @ w_b.T
            ri, ci = linear_sum_assignment(A.numpy(), maximize=True)
            laps += 1
            assert (ri == np.arange(len(ri))).all()
            oldL = torch.vdot(A.reshape(-1), torch.eye(n, dtype=A.dtype)[perm[p]].reshape(-1))
            newL = torch.vdot(A.reshape(-1), torch.eye(n, dtype=A.dtype)[ci, :].reshape(-1))
            progress = progress or bool(newL > oldL + 1e-12)
            perm[p] = torch.as_tensor(ci)
        if not progress:
            break
    return perm, sweeps, laps


def _mlp(hidden: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> MLP:
    torch.manual_seed(seed)
    return MLP(784, list(hidden), 10, dtype=dtype)


def bench_weight_matching(sizes: Sizes) -> None:
    a = _mlp(sizes.wm_hidden, 0)
    spec = spec_for(a)
    assert not spec.carried, "the reference has no notion of carried (BatchNorm) tensors"
    planted_perms = random_perms(spec.sizes(a.state_dict()), torch.Generator().manual_seed(2))
    pairs = {
        "independent inits, float32": (a, _mlp(sizes.wm_hidden, 1)),
        "planted permutation, float32": (a, permute_model(a, planted_perms, spec)),
        "independent inits, float64": (copy.deepcopy(a).double(), _mlp(sizes.wm_hidden, 1).double()),
    }
    rows, notes = [], []
    for name, (model_a, model_b) in pairs.items():
        state_a, state_b = model_a.state_dict(), model_b.state_dict()
        t_ref = t_lmcnb = 0.0
        sweeps, laps, obj_ref, obj_lmcnb, same = [], [], [], [], 0
        recovered = True
        for seed in sizes.wm_orders:
            matcher = WeightMatching(seed=seed)
            best, out = best_of({"ref": lambda: reference_weight_matching(spec, state_a, state_b, seed),
                                 "lmcnb": lambda: matcher(model_a, model_b)}, sizes.repeats)
            t_ref, t_lmcnb = t_ref + best["ref"], t_lmcnb + best["lmcnb"]
            ref_perms, ref_sweeps, ref_laps = out["ref"]
            result = out["lmcnb"]
            sweeps.append(f"{ref_sweeps}/{result.sweeps}")
            laps.append(f"{ref_laps}/{result.info['laps']}")
            obj_ref.append(weight_matching_objective(model_a, model_b, ref_perms))
            obj_lmcnb.append(weight_matching_objective(model_a, model_b, result.perms))
            same += all(torch.equal(ref_perms[p], result.perms[p]) for p in ref_perms)
            if name.startswith("planted"):
                aligned = apply_perms(spec, result.perms, state_b)
                recovered &= all(torch.equal(aligned[k], state_a[k]) for k in state_a)
        k = len(sizes.wm_orders)
        rel = max(abs(r - m) / abs(r) for r, m in zip(obj_ref, obj_lmcnb))
        rows.append([name, f"{t_ref:.3f}", f"{t_lmcnb:.3f}", f"**{t_ref / t_lmcnb:.2f}×**", ", ".join(sweeps),
                     ", ".join(laps), f"{np.mean(obj_ref):.6g} / {np.mean(obj_lmcnb):.6g} (max rel. diff "
                     f"{rel:.1e})", f"{same}/{k}"])
        if name.startswith("planted"):
            notes.append(f"Planted pair: lmcnb {'recovers' if recovered else 'does NOT recover'} the planted "
                         "permutation exactly (π(b) == a).")
    widths = "-".join(str(h) for h in (784, *sizes.wm_hidden, 10))
    notes.insert(0, f"MLP {widths}, untrained (PyTorch default init, seeds 0 and 1). Seconds are summed over "
                 f"{len(sizes.wm_orders)} visiting-order seed(s) {list(sizes.wm_orders)}, each timed best of "
                 f"{sizes.repeats}. sweeps and LAPs: reference/lmcnb per order (lmcnb re-solves only groups whose "
                 "neighbours changed; its sweep count includes the final sweep that changes nothing, like the "
                 "reference's). objective: WM objective Σ⟨θ_a, π(θ_b)⟩ in float64, mean over orders.")
    table("1. Weight matching: lmcnb.matching.WeightMatching vs git-re-basin's PCD (reference)",
          ["pair", "reference s", "lmcnb s", "speed-up", "sweeps ref/lmcnb", "LAPs ref/lmcnb",
           "objective ref / lmcnb", "same perms"], rows, notes)


# ----------------------------------------------------------------------------------------------- 2. batched training
def _regression_data(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs ``(n, d)`` and the outputs ``(n,)`` of a random 4-neuron ReLU teacher."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    w_star = torch.randn(4, d, generator=g) / math.sqrt(d)
    return x, F.relu(x @ w_star.T).sum(1)


def _max_abs_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def train_flops(d: int, m: int, batch_size: int) -> int:
    """Matmul FLOPs of one SGD step of one d→m→1 student: first layer forward + weight gradient (the input
    needs no gradient), output layer forward + weight gradient + input gradient."""
    return 2 * batch_size * d * m * 2 + 2 * batch_size * m * 3


def bench_training(sizes: Sizes, peak: float) -> None:
    rows = []
    n = 2048
    for d, bs in sizes.train_workloads:
        x, y = _regression_data(n, d)
        config = train.TrainConfig(steps=sizes.train_steps, batch_size=bs, lr=0.01, momentum=0.9, loss="mse")
        for m in sizes.widths:
            models = train.init_mlps((d, m, 1), sizes.students, list(range(sizes.students)))
            seeds = [100 + b for b in range(sizes.students)]
            best, out = best_of({
                "loop": lambda: [train.train_classifier(model, x, y, config, seed=s)[0]
                                 for model, s in zip(models, seeds)],
                "stacked": lambda: train.train_mlps(models, x, y, config, seeds)[0]}, sizes.repeats)
            diff = max(_max_abs_diff(mb, ml) / max(float(t.abs().max()) for t in ml.state_dict().values())
                       for mb, ml in zip(out["stacked"], out["loop"]))
            flops = train_flops(d, m, bs) * sizes.students * sizes.train_steps
            rate_loop, rate_stacked = flops / best["loop"] / 1e9, flops / best["stacked"] / 1e9
            rows.append([f"d={d}, batch {bs}", str(m), f"{best['loop']:.3f}", f"{best['stacked']:.3f}",
                         f"**{best['loop'] / best['stacked']:.1f}×**", f"{rate_loop:.1f} ({rate_loop / peak:.0%})",
                         f"{rate_stacked:.1f} ({rate_stacked / peak:.0%})", f"{diff:.1e}"])
    small, large = sizes.train_workloads[0], sizes.train_workloads[-1]
    heaviest = max(train_flops(d, m, bs) for d, bs in sizes.train_workloads for m in sizes.widths) * sizes.students
    notes = [f"{sizes.students} students d→m→1 (ReLU, biases, nn.Linear init with seeds 0…{sizes.students - 1}), "
             f"MSE regression on {n} Gaussian inputs labelled by a 4-neuron ReLU teacher, {sizes.train_steps} SGD "
             "steps (lr 0.01, momentum 0.9), data-order seeds 100+b. Loop: lmcnb.train.train_classifier per "
             "student (torch.optim.SGD); batched: lmcnb.train.train_mlps (one StackedMLP, torch.baddbmm). "
             f"d={small[0]}, batch {small[1]} is the size of the book's teacher–student runs; d={large[0]}, batch "
             f"{large[1]} is a compute-bound workload (largest case: {heaviest / 1e9:.3g} GFLOP of matmuls per "
             f"step for the {sizes.students} students).",
             "GFLOP/s counts the matmul FLOPs a step needs (first layer: forward + weight gradient; output layer: "
             f"forward + both gradients); % is of the float32 matmul peak {peak:.1f} GFLOP/s measured above. "
             "(lmcnb.train.flops_per_step's 3×forward convention would report 1.5× more.) max rel. diff: largest "
             "‖θ_batched − θ_loop‖∞ / ‖θ_loop‖∞ over the students (float32 rounding)."]
    table("2. Batched training: lmcnb.train.train_mlps vs a per-model train_classifier loop (reference)",
          ["workload", "m", "loop s", "batched s", "speed-up", "loop GFLOP/s (% peak)", "batched GFLOP/s (% peak)",
           "max rel. diff"], rows, notes)


# ----------------------------------------------------------------------------------------------- 3. barrier curve
def reference_barrier_curve(model: torch.nn.Module, state_a: Mapping[str, torch.Tensor],
                            state_b: Mapping[str, torch.Tensor], lambdas: torch.Tensor, x: torch.Tensor,
                            y: torch.Tensor, loss: str) -> torch.Tensor:
    """The usual loop: per λ, deep-copy the model, load ``(1−λ)θ_a + λθ_b`` and run the forward pass.

    Returns the losses ``(K,)`` (mean cross-entropy or mean squared error).
    """
    losses = []
    for lam in lambdas.tolist():
        net = copy.deepcopy(model)
        net.load_state_dict({k: (1 - lam) * state_a[k] + lam * state_b[k] for k in state_a})
        net.eval()
        with torch.no_grad():
            out = net(x)
        losses.append((F.cross_entropy(out, y) if loss == "cross_entropy" else F.mse_loss(out, y)).item())
    return torch.tensor(losses, dtype=torch.float64)


def _student(seed: int) -> TwoLayerNet:
    torch.manual_seed(seed)
    return TwoLayerNet(8, 64, output="trained")


def bench_barrier(sizes: Sizes, peak: float) -> None:
    n = sizes.barrier_inputs
    digits = data.mnist_subset(n, 10, 10, seed=0).train
    gaussian = data.teacher_student_data(teacher(8, 4).fc1.weight.detach(), n, torch.Generator().manual_seed(0))
    mlp = "-".join(map(str, (784, *sizes.wm_hidden, 10)))
    cases = {
        f"MLP {mlp}, float32, {n} MNIST digits, cross-entropy":
            (_mlp(sizes.wm_hidden, 0), _mlp(sizes.wm_hidden, 1), digits.x, digits.y, "cross_entropy"),
        f"two-layer net d=8, m=64, float64, {n} Gaussian inputs, MSE":
            (_student(0), _student(1), gaussian.x, gaussian.y, "mse"),
    }
    lambdas = torch.linspace(0, 1, sizes.lambdas, dtype=torch.float64)
    rows = []
    for name, (model_a, model_b, x, y, loss) in cases.items():
        state_a, state_b = model_a.state_dict(), model_b.state_dict()

        def path(vectorize: bool | str) -> torch.Tensor:
            evaluator = merge.Empirical(x, y, loss, vectorize=vectorize)
            return merge.evaluate_path(model_a, state_a, state_b, lambdas, evaluator).losses

        best, out = best_of({"ref": lambda: reference_barrier_curve(model_a, state_a, state_b, lambdas, x, y, loss),
                             "auto": lambda: path("auto"), "vmap": lambda: path(True)}, sizes.repeats)
        flops = 2 * len(x) * sum(t.numel() for t in state_a.values() if t.dim() == 2) * len(lambdas)
        for label, key in (("evaluate_path (default: λ loop on CPU)", "auto"),
                           ("evaluate_path(Empirical(vectorize=True))", "vmap")):
            rate = flops / best[key] / 1e9
            rows.append([name, label, f"{best['ref']:.4f}", f"{best[key]:.4f}",
                         f"**{best['ref'] / best[key]:.2f}×**",
                         f"{flops / best['ref'] / 1e9:.1f} / {rate:.1f} ({rate / peak:.0%})",
                         f"{float((out[key] - out['ref']).abs().max()):.1e}"])
    notes = [f"{len(lambdas)} λ on [0, 1], untrained pairs (seeds 0 and 1), best of {sizes.repeats}. Reference: per "
             "λ copy.deepcopy(model) + load_state_dict((1−λ)θ_a + λθ_b) + forward + loss. evaluate_path also "
             "returns accuracies. Both do the same forward matmul FLOPs; GFLOP/s = those FLOPs / time (% of the "
             "matmul peak). The MLP is the weight-matching architecture (lmcnb.data.mnist_subset digits); the "
             "two-layer net is lmcnb.models.TwoLayerNet(8, 64, output='trained') on a 4-neuron teacher's data, the "
             "book's teacher–student regime. max abs. diff: largest |loss − reference loss| over λ."]
    table("3. Barrier curve: lmcnb.merge.evaluate_path vs a per-λ deep-copy loop (reference)",
          ["model and data", "lmcnb", "reference s", "lmcnb s", "speed-up", "GFLOP/s ref / lmcnb (% peak)",
           "max abs. diff"], rows, notes)


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat (~20 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; default 1)")
    parser.add_argument("--only", choices=("wm", "train", "barrier"), action="append",
                        help="run only these sections (repeatable; default: all)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    sections = args.only or ["wm", "train", "barrier"]
    start = time.perf_counter()
    print_machine(torch.get_num_threads())
    peak_repeats = max(sizes.repeats, 3) * 2
    peak = matmul_peak(sizes.peak_n, peak_repeats)
    shapes = " and ".join(f"{n}×{n}" for n in sizes.peak_n)
    print(f"- float32 matmul peak: {peak:.1f} GFLOP/s (torch.mm, square {shapes}, best of {peak_repeats} each, "
          f"{torch.get_num_threads()} thread(s))")
    if args.quick:
        print("- QUICK smoke run: small sizes, one repeat; the numbers are not meaningful")
    if "wm" in sections:
        bench_weight_matching(sizes)
    if "train" in sections:
        bench_training(sizes, peak)
    if "barrier" in sections:
        bench_barrier(sizes, peak)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nTotal {time.perf_counter() - start:.0f} s; load average {load} at the end.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
