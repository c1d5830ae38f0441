"""Estimate chapters' paper-profile budgets from measured per-step costs (the model of ``lmcnb.infra.budget``).

Usage::

    python tools/estimate_budget.py 01_lmc_and_permutations 06_lewc      # tables, and the notebooks' numbers
    python tools/estimate_budget.py --json runs/budget.json 01_lmc_and_permutations

For each chapter of ``lmcnb.experiments.paper_budgets.CHAPTERS``: every workload is timed at its reduced size on
this CPU, scaled to paper size by FLOPs and converted at the stated sustained throughput of one A100/H100-class GPU
(and of a Colab T4); the table, the total and the number in the notebook's metadata
(``lmcnb.paper_gpu_minutes``) are printed side by side. Nothing is written into the notebooks: a chapter's
metadata is edited by hand from this output (with how it was obtained, in ``lmcnb.paper_estimate``).
Run it on an otherwise idle machine: the CPU timings (and the matmul throughput they are divided by) are measured
together, so contention affects both, but not equally.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook_minutes(stem: str) -> float | None:
    """``lmcnb.paper_gpu_minutes`` of ``book/<stem>.ipynb`` (None when absent)."""
    path = ROOT / "book" / f"{stem}.ipynb"
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("lmcnb", {})
    return meta.get("paper_gpu_minutes")


def main(argv: list[str] | None = None) -> int:
    import torch

    from lmcnb.experiments.paper_budgets import CHAPTERS
    from lmcnb.infra import budget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", default=sorted(CHAPTERS), help=f"chapter stems ({sorted(CHAPTERS)})")
    parser.add_argument("--json", help="write every estimate (and its inputs) to this file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timings (default 1)")
    args = parser.parse_args(argv)
    unknown = [c for c in args.chapters if c not in CHAPTERS]
    if unknown:
        print(f"estimate_budget: no workloads for {unknown}; known: {sorted(CHAPTERS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cpu = budget.cpu_matmul_flops()
    print(f"CPU float32 matmul throughput: {cpu / 1e9:.1f} GFLOP/s ({args.threads} thread(s); measured again "
          "beside every workload)")
    report, rows = {}, []
    for stem in args.chapters:
        workloads = CHAPTERS[stem]()
        # the CPU's throughput is measured again beside each workload: contention changes both alike
        estimates = [budget.estimate(w, budget.A100_CLASS) for w in workloads]
        t4 = [budget.estimate_from(e, budget.COLAB_T4) for e in estimates]
        print(f"\n{stem}\n{budget.table(estimates)}", flush=True)
        minutes, floor = budget.total_minutes(estimates)
        t4_minutes, _ = budget.total_minutes(t4)
        cpu_side = sum(e.gpu_s for e in estimates if not e.on_gpu) / 60.0
        rows.append((stem, minutes, floor, cpu_side, t4_minutes, notebook_minutes(stem)))
        report[stem] = {"gpu_minutes": minutes, "lower_bound_minutes": floor, "cpu_side_minutes": cpu_side,
                        "t4_minutes": t4_minutes, "notebook_minutes": notebook_minutes(stem),
                        "estimates": [budget.as_dict(e) for e in estimates]}
    print(f"\n{'chapter':28s} {'model min':>10s} {'lower':>7s} {'of it CPU':>10s} {'T4 min':>8s} {'notebook':>9s}")
    for stem, minutes, floor, cpu_side, t4_minutes, nb in rows:
        print(f"{stem:28s} {minutes:10.1f} {floor:7.1f} {cpu_side:10.1f} {t4_minutes:8.1f} "
              f"{'-' if nb is None else f'{nb:g}':>9s}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cpu_flops": cpu, "threads": args.threads, "chapters": report},
                                              indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
