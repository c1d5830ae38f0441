"""Re-execute chapters top to bottom in a fresh kernel and store their outputs (``make outputs``).

Usage: ``python tools/refresh_outputs.py [--jobs N] [--timeout S] book/01_....ipynb ...``

Run it through ``make outputs``, which sets the environment the stored outputs must come from (quick profile,
one BLAS thread, fixed hash seed, inline matplotlib backend) and then checks the result with strict nbval.

For every notebook:

- every code cell runs in order in one new ``python3`` kernel started from this interpreter's environment, with
  the notebook's folder as working directory (as nbval does), so execution counts come out as 1..n;
- cells tagged ``skip-execution`` (paper-only cells, also tagged ``nbval-skip``) are not run, and their outputs
  and execution counts are cleared: stored outputs only ever come from the quick profile;
- an error stops the run and the notebook file is left untouched, except in cells tagged ``raises-exception``;
- no timing metadata is written, so a refresh changes only what the code prints and draws.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

SKIP_TAG = "skip-execution"


def refresh(path: str, timeout: int) -> tuple[str, float, int]:
    """Execute ``path`` in place; return (path, seconds, number of executed code cells)."""
    import nbformat
    from nbclient import NotebookClient

    nb_path = Path(path).resolve()
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.strip():
            raise ValueError(f"{path}: empty code cell (id {cell.get('id')}); delete it")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(nb_path.parent)}},
        allow_errors=False,
        record_timing=False,
        skip_cells_with_tag=SKIP_TAG,
    )
    client.execute()
    seconds = time.perf_counter() - start
    executed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if SKIP_TAG in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
        else:
            executed += 1
            if cell.execution_count != executed:
                raise RuntimeError(f"{path}: cell {executed} got execution count {cell.execution_count}")
    tmp = nb_path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, nb_path)
    return path, seconds, executed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="chapter notebooks (.ipynb) to re-execute")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed in parallel (default 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
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
    if os.environ.get("MPLBACKEND"):
        print("refresh_outputs: unset MPLBACKEND (figures must use the inline backend)", file=sys.stderr)
        return 2
    failed = 0
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(args.notebooks))) as pool:
        futures = {pool.submit(refresh, nb, args.timeout): nb for nb in args.notebooks}
        for fut in as_completed(futures):
            nb = futures[fut]
            try:
                _, seconds, executed = fut.result()
            except Exception as exc:  # report every failing chapter, then fail
                failed += 1
                print(f"FAILED  {nb}: {type(exc).__name__}: {exc}", file=sys.stderr)
            else:
                print(f"stored  {nb}: {executed} code cells in {seconds:.1f} s", flush=True)
    if failed:
        print(f"refresh_outputs: {failed} notebook(s) failed; their files were not changed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
