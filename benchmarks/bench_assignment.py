"""Assignment at paper scale: lmcnb's compiled exact LAP against scipy, timed in the same run.

Run ``.venv/bin/python benchmarks/bench_assignment.py [--quick]`` (``make bench`` runs only ``bench_core.py``).
Four tables, each against ``scipy.optimize.linear_sum_assignment`` per solve, objectives and permutations
compared:

1. **Dense single solves** of uniform random ``n × n`` float64 matrices: :func:`lmcnb.assignment.solve_warm`
   (no start) vs scipy on the same matrix.
2. **Weight matching** by permutation coordinate descent on MLP 784-h-h-h-10 (an independently initialised
   pair, PyTorch default init seeds 0 and 1; and a *trained-like* pair, b = a with its hidden units randomly
   permuted plus independent noise of the same scale): ``WeightMatching(solver="warm")`` vs
   ``WeightMatching(solver="scipy")``, the same coordinate descent (same visiting orders, caching and
   skipping of unchanged groups) with a scipy solve per step, and git-re-basin's coordinate descent
   (``bench_core.reference_weight_matching``: every similarity rebuilt, scipy per step, same visiting order).
3. **A batch of teacher–student functional matchings** (:func:`lmcnb.teacher_student.functional_cost` of two
   near-converged students of width m on a teacher with M = 4 neurons in d = 8: every student neuron a positive
   multiple of a teacher direction plus 1e-3 noise, 10 % dead): ``lmcnb.assignment.solve_batch(C,
   method="sparse")`` (thread pool, all cores) vs a Python loop of ``assignment.solve(C, reduced=True)`` (what ``FunctionalMatching``
   runs). The batch is solved in chunks of 8 matrices (memory); building the costs is not timed.
4. **Functional matching by neuron type** on pairs of exact minima (sampled from the minimum manifold):
   ``teacher_student.functional_match`` (``match_by_type`` first: Hall's condition on neuron types, no ``m × m``
   matrix) vs ``functional_cost`` and ``assignment.solve`` per pair, objectives compared.

Every case runs once (the sizes are large); wall-clock and process-CPU seconds are reported. On a shared
machine wall times include other processes' load: the CPU column is the single-threaded cost.
``--quick`` is a smoke run (small sizes, ~20 s) whose numbers mean nothing.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy
import torch
from scipy.optimize import linear_sum_assignment

import lmcnb
from lmcnb import assignment
from lmcnb.matching import WeightMatching, weight_matching_objective
from lmcnb.models import MLP
from lmcnb.papers import teacher_student as ts
from lmcnb.permutation import apply_perms, random_perms, spec_for

from bench_core import reference_weight_matching  # noqa: E402  (benchmarks/ is the script's folder)


@dataclass(frozen=True)
class Sizes:
    dense: tuple[int, ...]
    mlp_hidden: int
    batch: int
    ts_width: int
    chunk: int


FULL = Sizes(dense=(1024, 4096, 8192), mlp_hidden=4096, batch=64, ts_width=4096, chunk=8)
QUICK = Sizes(dense=(128, 256), mlp_hidden=128, batch=4, ts_width=128, chunk=2)


def timed(fn):
    """``(result, wall seconds, process CPU seconds)`` of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for note in notes:
        print(f"\n{note}")


def bench_dense(sizes: Sizes) -> None:
    rows = []
    for n in sizes.dense:
        C = torch.rand(n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        R = C.numpy()
        (_, cols), ws, cs = timed(lambda: linear_sum_assignment(R))
        (perm, duals), wl, cl = timed(lambda: assignment.solve_warm(C))
        same = np.array_equal(perm.numpy(), cols)
        rel = abs(R[np.arange(n), perm.numpy()].sum() - R[np.arange(n), cols].sum()) / abs(R[np.arange(n), cols].sum())
        rows.append([f"{n}²", f"{ws:.3g} ({cs:.3g})", f"{wl:.3g} ({cl:.3g})", f"**{ws / wl:.1f}×** ({cs / cl:.1f}×)",
                     f"{rel:.0e}", "equal" if same else "differ", f"{duals.augmented}"])
    table("1. Dense single solves (uniform random float64)",
          ["n", "scipy s wall (CPU)", "lmcnb s wall (CPU)", "speed-up wall (CPU)", "objective rel. diff",
           "permutation", "rows left to Dijkstra"], rows,
          ["lmcnb: `assignment.solve_warm(C)` (no start): Jonker–Volgenant start (row argmins, augmenting row "
           "reduction, 8 bids per row at most) then shortest augmenting paths, compiled with numba; the first "
           "call's compilation or cache load is excluded (done once before)."])


def _mlp(h: int, seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(784, (h, h, h), 10)


def _trained_like(a: MLP, seed: int) -> MLP:
    """b = a with its hidden units permuted at random plus independent noise of the same scale."""
    spec = spec_for(a)
    state = a.state_dict()
    perms = random_perms(spec.sizes(state), torch.Generator().manual_seed(seed))
    h = len(perms["P_0"])
    noise = _mlp(h, seed + 1).state_dict()
    permuted = apply_perms(spec, perms, state)
    b = _mlp(h, seed + 2)
    b.load_state_dict({k: permuted[k] + noise[k] for k in state})
    return b


def bench_pcd(sizes: Sizes) -> None:
    h = sizes.mlp_hidden
    a = _mlp(h, 0)
    pairs = {"independent": _mlp(h, 1), "trained-like": _trained_like(a, 10)}
    rows = []
    for name, b in pairs.items():
        sa, sb = a.state_dict(), b.state_dict()
        (gr, _, gr_laps), wg, cg = timed(lambda: reference_weight_matching(spec_for(a), sa, sb, seed=0))
        ref, ws, cs = timed(lambda: WeightMatching(solver="scipy")(a, b))
        new, wl, cl = timed(lambda: WeightMatching(solver="warm")(a, b))
        same = all(torch.equal(ref.perms[p], new.perms[p]) for p in ref.perms)
        same_gr = all(torch.equal(gr[p], new.perms[p]) for p in ref.perms)
        objs = [weight_matching_objective(a, b, perms) for perms in (gr, ref.perms, new.perms)]
        rows.append([name, f"{wg:.3g} ({cg:.3g})", f"{ws:.3g} ({cs:.3g})", f"{wl:.3g} ({cl:.3g})",
                     f"**{wg / wl:.1f}×** ({cg / cl:.1f}×)", f"**{ws / wl:.1f}×** ({cs / cl:.1f}×)",
                     " / ".join(f"{v:.9g}" for v in objs),
                     f"{'equal' if same_gr else 'differ'} / {'equal' if same else 'differ'}",
                     f"{gr_laps} / {ref.info['laps']} / {new.info['laps']}", f"{new.info['warm_starts']}",
                     f"{ref.sweeps} / {new.sweeps}"])
    table(f"2. Weight matching, MLP 784-{h}-{h}-{h}-10 (PCD, float32, order seed 0, torch threads "
          f"{torch.get_num_threads()})",
          ["pair", "git-re-basin PCD, scipy per step, s wall (CPU)", "lmcnb PCD, scipy per step, s wall (CPU)",
           "lmcnb PCD, compiled LAP, s wall (CPU)", "speed-up vs git-re-basin wall (CPU)",
           "speed-up vs lmcnb + scipy wall (CPU)", "WM objective git-re-basin / scipy / lmcnb",
           "permutations vs git-re-basin / vs lmcnb + scipy", "LAPs", "warm starts used", "sweeps"], rows,
          ["git-re-basin: `bench_core.reference_weight_matching`, the reference coordinate descent transcribed "
           "statement by statement (every group's similarity rebuilt from the tensors, scipy's LAP, same visiting "
           "order). lmcnb + scipy: `WeightMatching(solver=\"scipy\")`, lmcnb's coordinate descent (cached "
           "similarity terms in b's original unit order, rank-k corrections, unchanged groups skipped) with a "
           "scipy solve per step; lmcnb: the same with the compiled LAP (`solver=\"warm\"`): each re-solve of a "
           "group on the candidate edges its previous duals select, priced against the dense matrix."])


def _student(m: int, teacher: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    M, d = teacher.shape
    kinds = torch.randint(0, M, (m,), generator=g)
    scale = 0.5 + torch.rand(m, generator=g, dtype=torch.float64)
    W = teacher[kinds] * scale[:, None] + 1e-3 * torch.randn(m, d, generator=g, dtype=torch.float64)
    W[torch.rand(m, generator=g) < 0.1] = 0.0
    return W


def bench_batch(sizes: Sizes) -> None:
    m, B, chunk = sizes.ts_width, sizes.batch, sizes.chunk
    teacher = torch.randn(4, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loop_w = loop_c = batch_w = batch_c = 0.0
    equal_perms, max_rel = 0, 0.0
    for start in range(0, B, chunk):
        C = torch.stack([ts.functional_cost(_student(m, teacher, 2 * s), _student(m, teacher, 2 * s + 1))
                         for s in range(start, min(B, start + chunk))])
        ref, w, c = timed(lambda: [assignment.solve(Ck, reduced=True) for Ck in C])
        loop_w, loop_c = loop_w + w, loop_c + c
        new, w, c = timed(lambda: assignment.solve_batch(C, method="sparse"))
        batch_w, batch_c = batch_w + w, batch_c + c
        for k in range(C.shape[0]):
            v_ref, v_new = assignment.assignment_value(C[k], ref[k]), assignment.assignment_value(C[k], new[k])
            max_rel = max(max_rel, abs(v_new - v_ref) / max(abs(v_ref), 1e-300))
            equal_perms += bool(torch.equal(ref[k], new[k]))
        del C
    workers = os.cpu_count()
    table(f"3. Batch of {B} teacher–student functional matchings, m = {m}",
          ["loop of scipy s wall (CPU)", f"solve_batch(method=\"sparse\"), {workers} threads, s wall (CPU)",
           "speed-up wall (CPU)", "max objective rel. diff", "equal permutations"],
          [[f"{loop_w:.3g} ({loop_c:.3g})", f"{batch_w:.3g} ({batch_c:.3g})",
            f"**{loop_w / batch_w:.1f}×** ({loop_c / batch_c:.1f}×)", f"{max_rel:.0e}", f"{equal_perms} / {B}"]],
          ["lmcnb: `assignment.solve_batch(C, method=\"sparse\")`, i.e. `solve_sparse` per matrix in a thread "
           "pool: shortest augmenting paths on a few candidate edges per row (exactly identical rows/columns, the "
           "dead neurons, grouped into classes and spread), priced out against the dense matrix until the dual "
           "certificate holds on every entry. The functional cost has many exact ties (compatible pairs cost 0 "
           "up to rounding), so equal objectives with different permutations are expected; the objective column "
           "is the check."])


def bench_by_type(sizes: Sizes) -> None:
    """Pairs of exact minima (sampled from 𝓜: Dirichlet masses, 10 % dead, M = 4, d = 8) at width m: functional
    matching by neuron type first (``functional_match``, default) against the cost matrix and a solve per pair."""
    m, B = sizes.ts_width, sizes.batch
    g = torch.Generator().manual_seed(0)
    pairs = [(ts.sample_minimum(m, 4, 8, g, dead_prob=0.1, split="dirichlet"),
              ts.sample_minimum(m, 4, 8, g, dead_prob=0.1, split="dirichlet")) for _ in range(B)]
    ref, loop_w, loop_c = timed(lambda: [assignment.solve(ts.functional_cost(W1, W2), reduced=True)
                                         for W1, W2 in pairs])
    new, fast_w, fast_c = timed(lambda: [ts.functional_match(W1, W2) for W1, W2 in pairs])
    by_type = sum(ts.match_by_type(W1, W2) is not None for W1, W2 in pairs)
    max_diff = 0.0
    for (W1, W2), p_ref, p_new in zip(pairs, ref, new):
        v_ref, v_new = float(ts.pair_costs(W1, W2[p_ref]).sum()), float(ts.pair_costs(W1, W2[p_new]).sum())
        max_diff = max(max_diff, abs(v_new - v_ref) / float((W1 * W1).sum() + (W2 * W2).sum()))
    table(f"4. Functional matching of {B} pairs of exact minima by neuron type, m = {m}",
          ["cost matrix + solve per pair, s wall (CPU)", "functional_match (by type first), s wall (CPU)",
           "speed-up wall (CPU)", "pairs by type", "max objective diff / Σ|w|²"],
          [[f"{loop_w:.3g} ({loop_c:.3g})", f"{fast_w:.3g} ({fast_c:.3g})",
            f"**{loop_w / fast_w:.0f}×** ({loop_c / fast_c:.0f}×)", f"{by_type} / {B}", f"{max_diff:.0e}"]],
          ["lmcnb: `teacher_student.functional_match` (`match_by_type`: neurons grouped by direction, Hall's "
           "condition checked, same-type rows paired, the excess with dead rows; accepted only if every pair's "
           "cost is at most EXACT_PAIR_TOL (|w|² + |w'|²)); the reference builds `functional_cost` (m × m) and "
           "runs `assignment.solve(C, reduced=True)` per pair (what `FunctionalMatching(by_type=False)` runs). "
           "Timed including the cost matrix, which the shortcut never builds."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes (~20 s)")
    parser.add_argument("--only", choices=("dense", "pcd", "batch", "bytype"), action="append",
                        help="run only these sections (repeatable; default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    print(f"- machine: {platform.machine()}, {os.cpu_count()} cores; load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"- lmcnb {lmcnb.__version__}, torch {torch.__version__}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}; compiled solver: {assignment.have_compiled_solver()}; torch threads {args.threads}")
    if args.quick:
        print("- QUICK smoke run: small sizes; the numbers are not meaningful")
    _, w, _ = timed(lambda: assignment.solve_warm(torch.rand(4, 4, dtype=torch.float64)))
    print(f"- first compiled call (numba compile or cache load): {w:.1f} s")
    start = time.perf_counter()
    for section in args.only or ["dense", "pcd", "batch", "bytype"]:
        {"dense": bench_dense, "pcd": bench_pcd, "batch": bench_batch, "bytype": bench_by_type}[section](sizes)
        sys.stdout.flush()
    print(f"\nTotal {time.perf_counter() - start:.0f} s; load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
