"""Re-execute chapters top to bottom in a fresh kernel and store their outputs (``make outputs``).

Usage: ``python tools/refresh_outputs.py [--jobs N] [--timeout S] book/01_....ipynb ...``

Run it through ``make outputs``, which then checks the result with strict nbval. The kernels always run in the
project's one reproducibility environment (``tools/repro.env``, applied with :func:`repro.apply`: CPU kernels pinned
to AVX2, one thread, quick profile, fixed hash seed, inline matplotlib backend), and the refresh refuses to run on
a host that cannot reproduce it (``tools/repro.py``: not x86-64 with AVX2, or another torch / numpy / scipy build).

For every notebook:

- every code cell runs in order in one new ``python3`` kernel started from this interpreter's environment, with
  the notebook's folder as working directory (as nbval does), so execution counts come out as 1..n;
- cells tagged ``skip-execution`` (paper-only cells, also tagged ``nbval-skip``) are not run, and their outputs
  and execution counts are cleared: stored outputs only ever come from the quick profile;
- an error stops the run and the notebook file is left untouched, except in cells tagged ``raises-exception``;
- no timing metadata is written, so a refresh changes only what the code prints and draws;
- each chapter's run time and number of executed cells go to ``book/_checks/_runtimes.json`` (the status page and
  the scoreboard read it);
- the kernel runs with ``$LMCNB_RESULTS_DIR`` set to a fresh temporary directory, so every ``checks.record`` call
  writes its record there; only if the whole run succeeds is ``book/_checks/<stem>.jsonl`` atomically replaced by
  the records of that run (removed if the chapter recorded none). A record whose chapter (``checks.chapter``) is not the
  notebook's file stem fails the refresh. ``$LMCNB_CHECKS_DIR`` and ``$LMCNB_CACHE_DIR`` are removed from the kernel's
  environment (stored outputs never come from a sweep cache or from another run's records).

The scoreboard chapter (``08_scoreboard.ipynb``, which renders ``book/_checks``) runs after every other chapter,
and is added automatically when it exists beside the given chapters (``--no-scoreboard`` turns that off), so
refreshing one chapter also refreshes the scoreboard that shows its results.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import repro  # noqa: E402  (tools/repro.py: the one definition of the pinned environment)

SKIP_TAG = "skip-execution"
SCOREBOARD = "08_scoreboard"  # stem of the chapter that renders the records of all the others
CHECKS_DIRNAME = "_checks"  # book/_checks/<stem>.jsonl: the records of each chapter's stored run
RESULTS_ENV = "LMCNB_RESULTS_DIR"
RUNTIMES = "_runtimes.json"  # book/_checks/_runtimes.json: {stem: {"seconds", "cells", "profile"}}


def execute(nb, *, name: str, cwd: Path, env: dict[str, str], timeout: int,
            skip_tag: str | None = SKIP_TAG) -> tuple[float, int]:
    """Run every code cell of the notebook ``nb`` **in place** in a fresh ``python3`` kernel started in ``cwd``
    with environment ``env``; return ``(seconds, executed cells)``. Cells tagged ``skip_tag`` are not run and
    their outputs are cleared (``None``: run every cell). An error raises ``nbclient``'s ``CellExecutionError``
    and leaves ``nb`` holding the outputs up to and including the failing cell; ``name`` labels messages."""
    from nbclient import NotebookClient

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.strip():
            raise ValueError(f"{name}: empty code cell (id {cell.get('id')}); delete it")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
        record_timing=False,
        skip_cells_with_tag=skip_tag or "",
    )
    client.execute(env=env)
    seconds = time.perf_counter() - start
    executed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if skip_tag and skip_tag in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
        else:
            executed += 1
            if cell.execution_count != executed:
                raise RuntimeError(f"{name}: cell {executed} got execution count {cell.execution_count}")
    return seconds, executed


def kernel_env(results_dir: Path) -> dict[str, str]:
    """This process's environment with the pinned reproducibility environment applied (``tools/repro.env``:
    it also removes ``$LMCNB_CHECKS_DIR`` and ``$LMCNB_CACHE_DIR``, so stored outputs never come from a sweep
    cache or another run's records), for a kernel whose records go to ``results_dir``."""
    env = repro.apply(os.environ, "strict")
    env[RESULTS_ENV] = str(results_dir)
    return env


def store_runtime(checks_dir: Path, stem: str, seconds: float, cells: int) -> None:
    """Record chapter ``stem``'s quick-profile run time in ``checks_dir/_runtimes.json`` (atomically)."""
    path = checks_dir / RUNTIMES
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    table[stem] = {"seconds": round(seconds, 1), "cells": cells, "profile": "quick"}
    write_atomic(path, json.dumps(dict(sorted(table.items())), indent=1) + "\n")


def collect_records(results_dir: Path, stem: str, nb=None) -> str | None:
    """The JSON lines a run of chapter ``stem`` recorded (validated), or None if it recorded nothing. With the
    executed notebook ``nb``, each record's ``cell`` is filled in: the id of the cell that printed it.

    Raises ``ValueError`` if the run recorded checks under another chapter name (``chapter=`` must be the stem)."""
    from lmcnb.checks import attach_cells, read_jsonl

    files = sorted(p.name for p in results_dir.iterdir())
    stray = [f for f in files if f != f"{stem}.jsonl"]
    if stray:
        raise ValueError(f"{stem}: checks were recorded as {stray}; the notebook must set the chapter "
                         f"with checks.chapter({stem!r}), chapter={stem!r} being its file stem")
    if not files:
        return None
    path = results_dir / f"{stem}.jsonl"
    if nb is not None:
        path.write_text(attach_cells(path.read_text(encoding="utf-8"), nb), encoding="utf-8")
    read_jsonl(path)  # validates every line
    return path.read_text(encoding="utf-8")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def refresh(path: str, timeout: int) -> tuple[str, float, int, int]:
    """Execute ``path`` in place and store its check records; return (path, seconds, executed cells, records)."""
    import nbformat

    nb_path = Path(path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="lmcnb-results-") as tmp:
        results_dir = Path(tmp)
        seconds, executed = execute(nb, name=path, cwd=nb_path.parent, env=kernel_env(results_dir),
                                    timeout=timeout)
        lines = collect_records(results_dir, nb_path.stem, nb)
    tmp_nb = nb_path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp_nb)
    os.replace(tmp_nb, nb_path)
    jsonl = nb_path.parent / CHECKS_DIRNAME / f"{nb_path.stem}.jsonl"
    if lines is None:
        jsonl.unlink(missing_ok=True)
        return path, seconds, executed, 0
    write_atomic(jsonl, lines)
    return path, seconds, executed, len(lines.splitlines())


def order_notebooks(notebooks: list[str], scoreboard: bool) -> tuple[list[str], list[str]]:
    """(chapters, scoreboards): the scoreboard chapter(s) run after all others; with ``scoreboard`` the
    scoreboard beside the given chapters is added when it exists."""
    chapters = [nb for nb in notebooks if Path(nb).stem != SCOREBOARD]
    boards = [nb for nb in notebooks if Path(nb).stem == SCOREBOARD]
    if scoreboard:
        for nb in chapters:
            board = Path(nb).parent / f"{SCOREBOARD}.ipynb"
            if board.is_file() and all(Path(b).resolve() != board.resolve() for b in boards):
                boards.append(str(board))
    return chapters, boards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="chapter notebooks (.ipynb) to re-execute")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed in parallel (default 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    parser.add_argument("--no-scoreboard", dest="scoreboard", action="store_false",
                        help=f"do not add {SCOREBOARD}.ipynb (refreshed last) when it exists beside the chapters")
    args = parser.parse_args(argv)
    if not args.notebooks:
        print("refresh_outputs: no notebooks given (book/ has no chapter yet?)", file=sys.stderr)
        return 2
    for nb in args.notebooks:
        if not nb.endswith(".ipynb") or not Path(nb).is_file():
            print(f"refresh_outputs: {nb} is not a notebook file", file=sys.stderr)
            return 2
    if args.jobs < 1:
        print("refresh_outputs: --jobs must be at least 1", file=sys.stderr)
        return 2
    problems = repro.host_problems()
    if problems:
        print("refresh_outputs: stored outputs are produced only where the pinned environment reproduces "
              "(x86-64 with AVX2, the pinned torch/numpy/scipy): " + "; ".join(problems), file=sys.stderr)
        return 2
    chapters, boards = order_notebooks(args.notebooks, args.scoreboard)
    failed = 0
    if chapters:
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(chapters))) as pool:
            futures = {pool.submit(refresh, nb, args.timeout): nb for nb in chapters}
            for fut in as_completed(futures):
                failed += _report(futures[fut], fut)
    for nb in boards:  # after every chapter: it renders their records
        with ProcessPoolExecutor(max_workers=1) as pool:
            failed += _report(nb, pool.submit(refresh, nb, args.timeout))
    if failed:
        print(f"refresh_outputs: {failed} notebook(s) failed; their files were not changed", file=sys.stderr)
    return 1 if failed else 0


def _report(nb: str, fut) -> int:
    try:
        _, seconds, executed, n_records = fut.result()
    except Exception as exc:  # report every failing chapter, then fail
        print(f"FAILED  {nb}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    store_runtime(Path(nb).resolve().parent / CHECKS_DIRNAME, Path(nb).stem, seconds, executed)
    print(f"stored  {nb}: {executed} code cells in {seconds:.1f} s, {n_records} check records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
