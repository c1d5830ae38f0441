"""The headless runner (``tools/run_chapters.py``, ``make paper``) on CPU with the quick profile.

A tiny chapter with a cached sweep, a figure, a check and a paper-only cell runs into an output folder: the run is
interrupted after the sweep, then rerun; the rerun resumes from the sweep cache (the sweep function is not called
again), everything lands in the output folder, and the chapter's own folder is untouched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from lmcnb import checks, sweep

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "import os\nimport matplotlib.pyplot as plt\nimport lmcnb\nfrom lmcnb import checks, sweep\n"
    "S = lmcnb.setup(seed=0)",
    "def square(x):\n"
    "    with open(os.environ['COUNTER_FILE'], 'a') as fh:\n"
    "        fh.write(f'{x}\\n')\n"
    "    return x * x\n"
    "res = sweep.run_grid(square, {'x': [1, 2, 3]}, cache_dir=sweep.default_cache_dir(), namespace='t-v1')\n"
    "print([r for _, r in res])",
    "if os.environ.get('INTERRUPT') == '1':\n    raise KeyboardInterrupt('simulated disconnect')",
    "plt.plot([1, 2, 3], [r for _, r in res])\nplt.show()",
    "checks.chapter('01_tiny')\n"
    "r = checks.record('squares add up', sum(r for _, r in res), 14, sum(r for _, r in res) == 14, "
    "source='arithmetic', status='derived', evidence=checks.Evidence(n=(3, 'squares'), "
    "control=('cubes', 36, 36 == 14)))",
]
PAPER_ONLY = "raise RuntimeError('paper-only cell ran in the quick profile')"


def make_book(tmp_path: Path) -> Path:
    book = tmp_path / "book"
    book.mkdir()
    cells = [new_code_cell(src) for src in CELLS]
    cells.append(new_code_cell(PAPER_ONLY, metadata={"tags": ["skip-execution", "nbval-skip"]}))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                            "display_name": "Python 3"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    nbformat.write(nb, book / "01_tiny.ipynb")
    return book / "01_tiny.ipynb"


def run(args: list[str], counter: Path, interrupt: bool, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "LMCNB_CACHE_DIR", *drop)}
    env.update(COUNTER_FILE=str(counter), INTERRUPT="1" if interrupt else "0", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "tools" / "run_chapters.py"), *args], capture_output=True,
                          text=True, env=env, timeout=600)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_runner_writes_to_out_and_resumes_from_the_cache(tmp_path):
    chapter = make_book(tmp_path)
    before = snapshot(chapter.parent)
    out, counter = tmp_path / "runs" / "quick", tmp_path / "calls.txt"
    args = ["--profile", "quick", "--out", str(out), str(chapter)]

    first = run(args, counter, interrupt=True)
    assert first.returncode == 1 and "FAILED" in first.stderr and "KeyboardInterrupt" in first.stderr
    assert counter.read_text().split() == ["1", "2", "3"]
    partial = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for o in partial.cells[2].outputs)
    assert len(list((out / "cache").glob("*.pt"))) == 3
    # the summary of the interrupted run: its wall time, the device setup() chose, the sweep's 3 misses
    entry = json.loads((out / "summary.json").read_text())["01_tiny"]
    assert not entry["ok"] and entry["wall_seconds"] > 0 and entry["device"] == "cpu"
    assert (entry["sweeps"], entry["configs"], entry["cache_hits"], entry["cache_misses"]) == (1, 3, 0, 3)

    second = run(args, counter, interrupt=False)
    assert second.returncode == 0, second.stderr
    assert counter.read_text().split() == ["1", "2", "3"], "the rerun must resume from the sweep cache"
    done = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert "".join(done.cells[1].outputs[0]["text"]) == "[1, 4, 9]\n"
    assert done.cells[-1].outputs == [] and done.cells[-1].execution_count is None, "paper-only cell skipped"
    assert [p.name for p in (out / "figures" / "01_tiny").iterdir()] == ["cell-03-0.png"]
    assert (out / "figures" / "01_tiny" / "cell-03-0.png").read_bytes()[:4] == b"\x89PNG"
    (rec,) = checks.read_jsonl(out / "checks" / "01_tiny.jsonl")
    assert (rec.claim, rec.passed, rec.profile, rec.chapter) == ("squares add up", True, "quick", "01_tiny")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["01_tiny"]["ok"] and summary["01_tiny"]["checks"] == 1 and summary["01_tiny"]["figures"] == 1
    entry = summary["01_tiny"]  # the rerun's sweep: all hits, and the printed summary says so
    assert (entry["sweeps"], entry["cache_hits"], entry["cache_misses"], entry["device_name"]) == (1, 3, 0, "CPU")
    assert entry["wall_seconds"] >= entry["seconds"] > 0
    row = next(ln for ln in second.stdout.splitlines() if ln.strip().startswith("01_tiny") and "cpu" in ln)
    assert row.split()[-3:] == ["1", "3", "0"], second.stdout
    assert "summary (wall time, device, sweep cache hits / misses)" in second.stdout
    assert snapshot(chapter.parent) == before, "the chapter's folder must be untouched"


def test_runner_refuses_an_out_folder_inside_book(tmp_path):
    chapter = make_book(tmp_path)
    out = run(["--profile", "quick", "--out", str(chapter.parent / "runs"), str(chapter)], tmp_path / "c.txt",
              interrupt=False)
    assert out.returncode == 2 and "inside" in out.stderr
    assert not (chapter.parent / "runs").exists()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LMCNB_CACHE_DIR", raising=False)
    assert sweep.default_cache_dir() is None
    monkeypatch.setenv("LMCNB_CACHE_DIR", "  ")
    assert sweep.default_cache_dir() is None
    monkeypatch.setenv("LMCNB_CACHE_DIR", str(tmp_path))
    assert sweep.default_cache_dir() == tmp_path


FAILING = [
    "import lmcnb\nfrom lmcnb import checks\nS = lmcnb.setup(seed=0)",
    "checks.chapter('01_fail')\n"
    "checks.record('too small', 2, '<= 1', False, source='s', status='calibrated', "
    "evidence=checks.Evidence(threshold=1, n=(1, 'run'), control=('identity', 3, False)))",
    "print('the chapter continued')",
]


def test_paper_profile_records_a_failed_check_and_continues(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nb = new_notebook(cells=[new_code_cell(src) for src in FAILING],
                      metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nbformat.write(nb, book / "01_fail.ipynb")
    out = tmp_path / "runs"
    paper = run(["--profile", "paper", "--out", str(out / "paper"), str(book / "01_fail.ipynb")],
                tmp_path / "c.txt", interrupt=False, drop=("LMCNB_REPRO", "LMCNB_PROFILE"))
    assert paper.returncode == 1, paper.stderr
    assert "1 failed checks" in paper.stderr and "FAIL 01_fail: too small" in paper.stderr
    done = nbformat.read(out / "paper" / "01_fail.ipynb", as_version=4)
    assert "the chapter continued" in "".join(done.cells[2].outputs[0]["text"])
    (rec,) = checks.read_jsonl(out / "paper" / "checks" / "01_fail.jsonl")
    assert rec.verdict == "FAIL" and rec.margin == -1 and rec.profile == "paper"
    summary = json.loads((out / "paper" / "summary.json").read_text())
    assert summary["01_fail"]["failed_checks"] == ["too small"]
    # the quick profile (CI) stops the chapter at the failed check
    quick = run(["--profile", "quick", "--out", str(out / "quick"), str(book / "01_fail.ipynb")],
                tmp_path / "c.txt", interrupt=False)
    assert quick.returncode == 1 and "CheckFailed" in quick.stderr
    stopped = nbformat.read(out / "quick" / "01_fail.ipynb", as_version=4)
    assert stopped.cells[2].outputs == []


def test_runner_prints_the_paper_budget_before_running(tmp_path):
    """``--dry-run`` prints each chapter's GPU-minutes (notebook metadata) and the total, and runs nothing; a
    chapter without a number is counted as not estimated; a bad number is refused with the chapter's name."""
    a = make_book(tmp_path)
    b = a.with_name("02_other.ipynb")
    nb = nbformat.read(a, as_version=4)
    nb.metadata["lmcnb"] = {"paper_gpu_minutes": 40, "paper_estimate": "from FLOPs"}
    nbformat.write(nb, a)
    nb.metadata["lmcnb"] = {"paper_estimate": "unknown"}
    nbformat.write(nb, b)
    out = tmp_path / "runs"
    res = run(["--dry-run", "--out", str(out), str(a), str(b)], tmp_path / "counter", interrupt=False)
    assert res.returncode == 0, res.stderr
    assert "01_tiny" in res.stdout and "40 GPU-min  from FLOPs" in res.stdout
    assert "02_other" in res.stdout and "not estimated (unknown)" in res.stdout
    assert "total" in res.stdout and "40 GPU-min (about 0.7 GPU-hours) + 1 chapter(s) not estimated" in res.stdout
    assert not out.exists() and not (tmp_path / "counter").exists()
    nb.metadata["lmcnb"] = {"paper_gpu_minutes": "soon"}
    nbformat.write(nb, b)
    res = run(["--dry-run", "--out", str(out), str(b)], tmp_path / "counter", interrupt=False)
    assert res.returncode == 2 and "02_other.ipynb: metadata lmcnb.paper_gpu_minutes must be a number" in res.stderr


def test_the_scoreboard_finds_its_claims_and_this_runs_times_in_out(tmp_path):
    """The scoreboard's kernel starts in OUT and reads ``_claims.yml`` and ``_checks/_runtimes.json`` relative to
    it: the runner stages a copy of the book's claim list and this run's chapter times there (without them the
    scoreboard stopped with FileNotFoundError in ``make paper`` and ``make smoke``)."""
    import run_chapters

    from lmcnb.infra import scoreboard as sb

    out = tmp_path / "out"
    out.mkdir()
    board = ROOT / "book" / "08_scoreboard.ipynb"
    summary = {"01_tiny": {"ok": True, "wall_seconds": 3.5, "executed_cells": 4, "profile": "smoke"},
               "02_broken": {"ok": False, "wall_seconds": 1.0, "executed_cells": 2, "profile": "smoke"},
               "08_scoreboard": {"ok": True, "wall_seconds": 2.0, "executed_cells": 7, "profile": "smoke"}}
    run_chapters.stage_scoreboard(out, board, summary)
    assert (out / "_claims.yml").read_bytes() == (ROOT / "book" / "_claims.yml").read_bytes()
    assert sb.load_claims(out / "_claims.yml") == sb.load_claims(ROOT / "book" / "_claims.yml")
    times = sb.runtimes(out / "_checks" / "_runtimes.json")
    assert times.to_dict("records") == [{"chapter": "01_tiny", "seconds": 3.5, "cells": 4, "profile": "smoke"}]
    summary["01_tiny"]["wall_seconds"] = 5.0  # a second scoreboard run restages
    run_chapters.stage_scoreboard(out, board, summary)
    assert sb.runtimes(out / "_checks" / "_runtimes.json").seconds.tolist() == [5.0]


def test_paper_and_smoke_kernels_drop_the_pinned_environments_verification(monkeypatch):
    """Under ``make test`` (``LMCNB_REPRO=strict``, ``LMCNB_PROFILE=quick``) the smoke-book test starts the runner:
    a paper or smoke kernel must not inherit ``LMCNB_REPRO``, whose check pins the quick profile (its set-up cell
    would stop); the quick profile's kernels keep the pinned environment."""
    import run_chapters

    monkeypatch.setenv("LMCNB_REPRO", "strict")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SOME_SETTING", "kept")
    for profile in ("paper", "full", "smoke"):
        env = run_chapters.kernel_env(profile)
        assert "LMCNB_REPRO" not in env and "MPLBACKEND" not in env
        assert env["LMCNB_PROFILE"] == profile and env["SOME_SETTING"] == "kept"
    assert run_chapters.kernel_env("quick")["LMCNB_REPRO"] in ("strict", "lax")
