"""Smoke test of `make bench`: the benchmark script runs (quick sizes) and prints its three tables.

Speed itself is never asserted here (see CONTRIBUTING: speed is measured in benchmarks/ as ratios).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("### 1. Weight matching", "### 2. Batched training", "### 3. Barrier curve")


def test_bench_core_quick_runs_and_prints_the_three_tables() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_core.py"), "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for title in TABLES:
        assert title in done.stdout, f"missing table {title!r} in:\n{done.stdout[-3000:]}"
    assert "float32 matmul peak" in done.stdout and "speed-up" in done.stdout
    # every table has at least one data row with a ratio
    assert done.stdout.count("×**") >= 3


def test_bench_assignment_quick_runs_and_prints_the_three_tables() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_assignment.py"), "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for title in ("### 1. Dense single solves", "### 2. Weight matching, MLP 784-128-128-128-10",
                  "### 3. Batch of 4 teacher–student functional matchings"):
        assert title in done.stdout, f"missing table {title!r} in:\n{done.stdout[-3000:]}"
    assert done.stdout.count("×**") >= 7 and "differ" not in done.stdout.split("### 3.")[0]
    # the weight-matching table compares lmcnb with git-re-basin's coordinate descent in the same run
    assert "git-re-basin PCD, scipy per step" in done.stdout
