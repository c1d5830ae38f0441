"""Run chapters headless with a chosen profile and write everything into an output folder (``make paper``).

Usage::

    python tools/run_chapters.py --profile paper --out runs/paper book/05_lmc_via_ot.ipynb ...
    python tools/run_chapters.py --profile quick --out /tmp/run book/*.ipynb
    python tools/run_chapters.py --profile smoke --toy-data --out /tmp/smoke book/*.ipynb   # make smoke

For GPU machines and Colab alike. For every notebook (the scoreboard, ``08_scoreboard``, last):

- it runs top to bottom in a fresh ``python3`` kernel with ``LMCNB_PROFILE=<profile>`` (in the quick profile in
  the pinned reproducibility environment of ``tools/repro.env``, see :func:`kernel_env`); the working directory is
  ``OUT`` (data a chapter downloads to a relative folder lands in ``OUT/data``);
- in the ``paper`` profile the paper-only cells (tagged ``skip-execution``) run too; in ``quick`` they are skipped;
- ``smoke`` (``make smoke``, in CI) runs the paper profile's code paths, every cell included, at the toy sizes of
  the chapters' ``choose(..., smoke=...)`` values, on CPU in minutes; with ``--toy-data`` the kernels read a toy
  data root in the real on-disk formats written to ``OUT/toy-data`` (:mod:`lmcnb._data_toy`; ``$LMCNB_DATA_DIR``)
  with ``$LMCNB_OFFLINE=1`` (a missing file fails at once naming ``make data``). Its verdicts are recorded and
  listed, never enforced (toy sizes make them meaningless): only a failing cell makes the exit status 1;
- every summary entry lists the executed code cells (``executed_cells``, a count, and ``executed_cell_ids``, in
  order), so a run can be checked to have executed every cell;
- ``OUT/<stem>.ipynb`` receives the executed notebook (also when a cell fails: then with the error, and the exit
  status is 1), ``OUT/figures/<stem>/<cell id>-<k>.png`` its figures, ``OUT/checks/<stem>.jsonl`` the records of
  its ``checks.record`` calls (the scoreboard run here reads ``OUT/checks`` via ``$LMCNB_CHECKS_DIR``, and, as its
  kernel starts in ``OUT``, ``OUT/_claims.yml``, a copy of the book's, and ``OUT/_checks/_runtimes.json``, this
  run's chapter times: :func:`stage_scoreboard`), and
  ``OUT/summary.json`` the run time, cell count and verdicts of every chapter run so far, with its wall time, the
  device :func:`lmcnb.setup` chose and the cache hits and misses of its sweeps (``sweep.run_grid`` calls), read
  from the kernel's run log (``$LMCNB_RUNLOG_DIR``, :mod:`lmcnb.infra.runlog`); they are printed at the end;
- in the paper profile a failed check does not stop its chapter (``lmcnb.checks`` records it as FAIL and the
  chapter continues); the exit status is then 1 and the summary printed last lists every failed check (and
  every check whose negative control passed); in the quick profile a failed check stops the chapter, as in CI;
- ``$LMCNB_CACHE_DIR`` is set to ``OUT/cache`` (or ``--cache``): sweeps that pass
  ``cache_dir=lmcnb.sweep.default_cache_dir()`` (chapters 6, 7), and the chapters' sweep pipelines whose
  ``cache_dir`` defaults to ``lmcnb.sweep.RUNNER`` (chapters 1–5b), store each configuration's result as soon as it
  is computed, so rerunning the same command after an interruption recomputes only what is missing;
- before anything runs it prints each chapter's paper-profile **budget** (notebook metadata ``lmcnb.paper_estimate``,
  a text, and ``lmcnb.paper_gpu_minutes``, a number: GPU-minutes on one A100/H100-class GPU) and the total;
  ``--dry-run`` (``make paper DRY_RUN=1``) prints only that; a chapter without a number counts as "not estimated";
- ``--engine`` (``make paper ENGINE=...``) sets ``$LMCNB_ENGINE`` in the kernels: ``serial``, ``processes:N`` or
  ``dask://HOST:PORT``; sweeps that pass ``executor=lmcnb.sweep.default_executor()`` then run their
  configurations on that engine, sharing the same cache (without ``--engine`` the variable is inherited).

The chapters' own files in ``book/`` (notebooks, ``book/_checks``) are never written: ``OUT`` may not lie inside the
folder of a notebook being run.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import repro  # noqa: E402
from refresh_outputs import SKIP_TAG, collect_records, execute, order_notebooks, write_atomic  # noqa: E402

from lmcnb.infra import runlog  # noqa: E402  (standard library only; the kernels' log of device and sweeps)

PROFILES = ("quick", "paper", "full", "smoke")  # full: the papers' own sizes; smoke: paper code at toy sizes
#: Profiles whose failed checks are listed but do not make the exit status 1 (their sizes are meaningless).
UNENFORCED = ("smoke",)
TOY_DATA = "toy-data"  # OUT/toy-data: the toy data root of --toy-data


def extract_figures(nb, directory: Path) -> list[Path]:
    """Write every PNG output of ``nb`` to ``directory/<cell id>-<k>.png``; return the paths."""
    paths = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        k = 0
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png is None:
                continue
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{cell.get('id') or f'cell-{i:02d}'}-{k}.png"
            path.write_bytes(base64.b64decode(png))
            paths.append(path)
            k += 1
    return paths


def kernel_env(profile: str) -> dict[str, str]:
    """The kernel's environment: in the quick profile the pinned reproducibility environment of ``make test``
    (``tools/repro.env``, the same definition, strict where the host reproduces it, else lax); in the paper and
    other profiles this process's environment (a GPU run is not compared bit for bit, and its CPU threads are free)
    without ``MPLBACKEND`` and without ``LMCNB_REPRO``: the pinned environment's verification (which a caller
    such as ``make test`` may have set) pins ``LMCNB_PROFILE=quick``, so it would stop a paper or smoke kernel in
    its set-up cell. ``LMCNB_PROFILE`` is set to ``profile``."""
    if profile == "quick":
        env = repro.apply(os.environ, "lax" if repro.host_problems() else "strict")
    else:
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "LMCNB_REPRO")}
    env["LMCNB_PROFILE"] = profile
    return env


def run_one(path: Path, out: Path, cache: Path, profile: str, timeout: int, engine: str | None = None,
            extra_env: dict[str, str] | None = None) -> dict:
    """Run one chapter into ``out``; return its summary entry (``ok`` False when a cell failed). ``engine``
    (when given) becomes the kernel's ``$LMCNB_ENGINE``, read by ``lmcnb.sweep.default_executor()``;
    ``extra_env`` is added to the kernel's environment last (``--toy-data``: the data root, offline)."""
    import nbformat

    stem = path.stem
    nb = nbformat.read(path, as_version=4)
    env = kernel_env(profile)
    env.update(LMCNB_CACHE_DIR=str(cache), LMCNB_CHECKS_DIR=str(out / "checks"))
    if engine is not None:
        env["LMCNB_ENGINE"] = engine
    env.update(extra_env or {})
    entry: dict = {"chapter": stem, "profile": profile, "ok": False}
    with tempfile.TemporaryDirectory(prefix="lmcnb-results-") as tmp, \
            tempfile.TemporaryDirectory(prefix="lmcnb-runlog-") as log:
        env["LMCNB_RESULTS_DIR"], env[runlog.ENV] = tmp, log
        start = time.perf_counter()
        try:
            seconds, executed = execute(nb, name=str(path), cwd=out, env=env, timeout=timeout,
                                        skip_tag=SKIP_TAG if profile == "quick" else None)
            entry.update(ok=True, seconds=round(seconds, 1), executed_cells=executed)
        except Exception as exc:  # keep what ran: the notebook with its error, figures and records so far
            entry["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        entry["wall_seconds"] = round(time.perf_counter() - start, 1)
        entry["executed_cell_ids"] = executed_cell_ids(nb)
        entry.setdefault("executed_cells", len(entry["executed_cell_ids"]))
        entry.update(runlog.summarise(runlog.read(log)))
        lines = collect_records(Path(tmp), stem, nb)
    nbformat.write(nb, out / f"{stem}.ipynb")
    jsonl = out / "checks" / f"{stem}.jsonl"
    if lines is None:
        jsonl.unlink(missing_ok=True)
        records = []
    else:
        write_atomic(jsonl, lines)
        records = [json.loads(ln) for ln in lines.splitlines()]
    entry["figures"] = len(extract_figures(nb, out / "figures" / stem))
    entry["checks"] = len(records)
    entry["failed_checks"] = [r["claim"] for r in records if r["passed"] is False]
    entry["defective_checks"] = [r["claim"] for r in records if r["passed"] is not None and r["control"]
                                 and r["control"]["passed"]]
    return entry


def stage_scoreboard(out: Path, board: Path, summary: dict) -> None:
    """Give the scoreboard ``board`` what it reads relative to its folder, in ``out`` (its kernel's folder): a
    copy of the book's claim list ``_claims.yml`` (beside ``board``) and ``_checks/_runtimes.json``, the wall
    time, executed cells and profile of each chapter of ``summary`` that ran through (this run's, not the stored
    quick-profile times). Its records it reads from ``OUT/checks`` (``$LMCNB_CHECKS_DIR``)."""
    claims = board.parent / "_claims.yml"
    if claims.is_file():
        write_atomic(out / "_claims.yml", claims.read_text(encoding="utf-8"))
    times = {stem: {"seconds": e["wall_seconds"], "cells": e["executed_cells"], "profile": e["profile"]}
             for stem, e in sorted(summary.items()) if e.get("ok") and stem != board.stem}
    (out / "_checks").mkdir(parents=True, exist_ok=True)
    write_atomic(out / "_checks" / "_runtimes.json", json.dumps(times, indent=1) + "\n")


def executed_cell_ids(nb) -> list[str]:
    """The ids (``cell-<index>`` where a cell has none) of the code cells of ``nb`` that ran, in order: those with
    an execution count (a failed run stops at the failing cell, which counts)."""
    return [cell.get("id") or f"cell-{i:02d}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and cell.get("execution_count") is not None]


def budget(paths: list[Path]) -> tuple[list[str], float, int]:
    """``(lines, total GPU-minutes, chapters without a number)`` from each notebook's metadata
    ``lmcnb.paper_gpu_minutes`` (a number ``>= 0``) and ``lmcnb.paper_estimate`` (text; how it was obtained)."""
    import nbformat

    lines, total, missing = [], 0.0, 0
    for path in paths:
        meta = nbformat.read(path, as_version=4).metadata.get("lmcnb", {})
        minutes, text = meta.get("paper_gpu_minutes"), meta.get("paper_estimate")
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                    or minutes < 0):
            raise ValueError(f"{path.name}: metadata lmcnb.paper_gpu_minutes must be a number >= 0, got {minutes!r}")
        if minutes is None:
            missing += 1
            lines.append(f"  {path.stem:32s} not estimated" + (f" ({text})" if text else ""))
        else:
            total += float(minutes)
            lines.append(f"  {path.stem:32s} {float(minutes):6.0f} GPU-min" + (f"  {text}" if text else ""))
    return lines, total, missing


def print_budget(paths: list[Path], profile: str) -> None:
    lines, total, missing = budget(paths)
    print(f"paper-profile budget (estimates, one A100/H100-class GPU; profile {profile}):")
    for line in lines:
        print(line)
    note = f" + {missing} chapter(s) not estimated" if missing else ""
    print(f"  {'total':32s} {total:6.0f} GPU-min (about {total / 60:.1f} GPU-hours){note}", flush=True)


def summary_lines(entries: list[dict]) -> list[str]:
    """One line per chapter entry of ``OUT/summary.json``: wall time, device (the one :func:`lmcnb.setup` chose,
    from the run log) and the sweep cache hits and misses of its ``run_grid`` calls."""
    lines = [f"  {'chapter':32s} {'wall s':>8s}  {'device':24s} {'sweeps':>6s} {'hits':>6s} {'misses':>6s}"]
    for e in entries:
        device = e.get("device") or "?"
        if e.get("device_name") and e["device_name"] != "CPU":
            device = f"{device} ({e['device_name']})"
        lines.append(f"  {e['chapter']:32s} {e.get('wall_seconds', 0):8.1f}  {device:24s} {e.get('sweeps', 0):6d} "
                     f"{e.get('cache_hits', 0):6d} {e.get('cache_misses', 0):6d}" + ("" if e["ok"] else "  FAILED"))
    return lines


def print_summary(entries: list[dict]) -> None:
    print("summary (wall time, device, sweep cache hits / misses):")
    for line in summary_lines(entries):
        print(line)
    print(f"  {'total':32s} {sum(e.get('wall_seconds', 0) for e in entries):8.1f}", flush=True)
    print("executed cells (count: ids):")
    for e in entries:
        ids = e.get("executed_cell_ids", [])
        print(f"  {e['chapter']:32s} {len(ids):3d}: {' '.join(ids)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="chapter notebooks (.ipynb)")
    parser.add_argument("--profile", choices=PROFILES, default="paper", help="lmcnb profile (default paper)")
    parser.add_argument("--out", required=True, help="output folder (created; never inside book/)")
    parser.add_argument("--cache", help="sweep cache folder (default OUT/cache)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds allowed per cell (default: none in paper, 600 in quick)")
    parser.add_argument("--engine", help="where sweeps run: serial, processes:N or dask://HOST:PORT (sets "
                        "$LMCNB_ENGINE in the kernels; default: inherited, else serial)")
    parser.add_argument("--toy-data", action="store_true",
                        help="write a toy data root in the real formats to OUT/toy-data and run the kernels on it "
                        "offline ($LMCNB_DATA_DIR, $LMCNB_OFFLINE=1); for the smoke profile")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each chapter's paper-profile budget and the total, run nothing")
    args = parser.parse_args(argv)
    if args.engine is not None:
        from lmcnb.infra.sweep import parse_engine  # imports torch: only when an engine is named

        try:
            parse_engine(args.engine)
        except ValueError as err:
            print(f"run_chapters: --engine: {err}", file=sys.stderr)
            return 2
    out = Path(args.out).resolve()
    paths = [Path(nb).resolve() for nb in args.notebooks]
    for nb, p in zip(args.notebooks, paths):
        if p.suffix != ".ipynb" or not p.is_file():
            print(f"run_chapters: {nb} is not a notebook file", file=sys.stderr)
            return 2
        if out == p.parent or p.parent in out.parents:
            print(f"run_chapters: --out {args.out} lies inside {p.parent}, which holds the stored outputs; "
                  "choose a folder outside it (e.g. runs/paper)", file=sys.stderr)
            return 2
    try:
        print_budget(paths, args.profile)
    except ValueError as err:
        print(f"run_chapters: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache).resolve() if args.cache else out / "cache"
    timeout = args.timeout if args.timeout is not None else (600 if args.profile in ("quick", "smoke") else -1)
    extra_env: dict[str, str] = {}
    if args.toy_data:
        from lmcnb._data_toy import write_toy_root  # numpy: only when asked for

        root = write_toy_root(out / TOY_DATA)
        extra_env.update(LMCNB_DATA_DIR=str(root), LMCNB_OFFLINE="1")
        print(f"toy data root (real formats, random images): {root}; kernels run with LMCNB_OFFLINE=1", flush=True)
    chapters, boards = order_notebooks([str(p) for p in paths], scoreboard=False)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    failed = 0
    failures: list[str] = []
    for nb in chapters + boards:
        print(f"running {nb} ({args.profile}) -> {out}", flush=True)
        if nb in boards:
            stage_scoreboard(out, Path(nb), summary)
        entry = run_one(Path(nb), out, cache, args.profile, timeout, engine=args.engine, extra_env=extra_env)
        summary[entry["chapter"]] = entry
        write_atomic(summary_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        failures += [f"{entry['chapter']}: {c}" for c in entry["failed_checks"]]
        failures += [f"{entry['chapter']}: {c} (its control passes)" for c in entry["defective_checks"]]
        if entry["ok"]:
            print(f"done    {entry['chapter']}: {entry['executed_cells']} cells in {entry['seconds']} s, "
                  f"{entry['checks']} checks ({len(entry['failed_checks'])} failed), {entry['figures']} figures",
                  flush=True)
        else:
            failed += 1
            print(f"FAILED  {entry['chapter']}: {entry['error']} (partial notebook in {out})", file=sys.stderr)
    print_summary([summary[Path(nb).stem] for nb in chapters + boards])
    enforced = args.profile not in UNENFORCED
    if failures:
        note = "the chapters continued" if enforced else f"not enforced in the {args.profile} profile"
        print(f"{len(failures)} failed checks (recorded; {note}):", file=sys.stderr)
        for line in failures:
            print(f"  FAIL {line}", file=sys.stderr)
    return 1 if failed or (failures and enforced) else 0


if __name__ == "__main__":
    sys.exit(main())
