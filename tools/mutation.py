"""Mutation testing of the toolkit modules with mutmut (``make mutation``; README, "Mutation testing").

Each module is mutated on its own, against its own unit test file only (a mutant of ``lmcnb/barrier.py`` must be
killed by ``tests/test_barrier.py``, not by a chapter or another module's tests). mutmut 3 reads its settings from
the ``pyproject.toml`` of the folder it runs in and writes ``mutants/`` there, so every module gets a scratch folder
``.mutation/<module>/`` (git-ignored) holding a copy of ``lmcnb/``, ``tests/``, ``tools/`` and a ``pyproject.toml``
with that module's ``[tool.mutmut]`` section. The scratch folder is kept: a second run re-tests only what changed
(mutmut caches each verdict), ``--fresh`` starts over.

    python tools/mutation.py                      # every module in MODULES, one worker each
    python tools/mutation.py barrier matching     # some of them
    python tools/mutation.py --survivors barrier  # the surviving mutants; cd .mutation/barrier && mutmut show NAME

Prints one line per module (mutants, killed, survived, timeouts, no tests, seconds) and a Markdown table at the
end; exits 1 if mutmut itself failed. Run it in the pinned environment (``make mutation`` does) and under ``nice``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutation"

#: module (``lmcnb/<name>.py``) -> its unit test files
MODULES: dict[str, list[str]] = {
    "permutation": ["tests/test_permutation.py"],
    "assignment": ["tests/test_assignment.py"],
    "matching": ["tests/test_matching.py"],
    "barrier": ["tests/test_barrier.py"],
    "calibration": ["tests/test_calibration.py"],
    "renorm": ["tests/test_renorm.py"],
    "transport": ["tests/test_transport.py"],
    # test_barrier.py also tests merge's evaluate_path and barrier_modulo_permutation (their old home)
    "merge": ["tests/test_merge.py", "tests/test_barrier.py"],
    # the teacher-student statistics and step rule that chapters 2-4 rely on (issue 15)
    "experiments/double_descent": ["tests/test_double_descent.py"],
}

# CPU-time limit of one mutant: (tests' clean time + 1 s) * 2 * TIMEOUT_MULTIPLIER (mutmut's formula); an
# infinite-loop mutant costs at most that much.
TIMEOUT_MULTIPLIER = 4.0


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(module: str, fresh: bool) -> Path:
    """Fill ``.mutation/<module>/`` with the current sources, tests and the module's mutmut settings."""
    work = SCRATCH / module
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for folder in ("lmcnb", "tests", "tools"):
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore, dirs_exist_ok=True)
    tests = MODULES[module]
    config = "\n".join([
        "",
        "[tool.mutmut]",
        'source_paths = ["lmcnb"]',
        f'only_mutate = ["lmcnb/{module}.py"]',
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
        f"timeout_multiplier = {TIMEOUT_MULTIPLIER}",
        "use_git_change_detection = false",
        "",
    ])
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)
    return work


def mutmut(work: Path, *args: str, capture: bool = False, log: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    if not exe.exists():
        sys.exit(f"error: {exe} not found; install the pinned tool with "
                 f"`{sys.executable} -m pip install -r requirements-mutation.txt` (make mutation does)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutated copy, never the original
    if log is not None:  # mutmut's progress spinner, kept out of the terminal
        with open(log, "w") as out:
            return subprocess.run([str(exe), *args], cwd=work, env=env, text=True, stdout=out,
                                  stderr=subprocess.STDOUT, check=False)
    return subprocess.run([str(exe), *args], cwd=work, env=env, text=True, capture_output=capture, check=False)


def counts(work: Path) -> dict[str, int]:
    mutmut(work, "export-cicd-stats", capture=True)
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    return {k: stats[k] for k in ("total", "killed", "survived", "timeout", "no_tests", "suspicious", "segfault")}


def survivors(work: Path) -> list[str]:
    out = mutmut(work, "results", capture=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip().endswith((": survived", ": no tests"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all of {', '.join(MODULES)})")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers (default 1)")
    parser.add_argument("--fresh", action="store_true", help="discard cached verdicts of these modules first")
    parser.add_argument("--survivors", action="store_true", help="only list the surviving mutants")
    parser.add_argument("--retest", action="store_true",
                        help="re-test only the cached survivors and untested mutants (after adding tests: a killed "
                             "mutant stays killed when tests are only added)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {list(MODULES)}")
    modules = args.modules or list(MODULES)
    if args.survivors:
        for module in modules:
            print(f"## {module}")
            print("\n".join(survivors(SCRATCH / module)) or "(none)")
        return 0
    rows, failed = [], []
    for module in modules:
        missing = [t for t in MODULES[module] if not (ROOT / t).exists()]
        if missing:
            print(f"{module}: skipped, no test file {missing}")
            continue
        work = prepare(module, args.fresh)
        start = time.monotonic()
        log = work / "mutmut-run.log"
        names = [line.split(":")[0] for line in survivors(work)] if args.retest and (work / "mutants").exists() else []
        if args.retest and not names and (work / "mutants").exists():
            print(f"{module}: nothing to re-test")
        proc = mutmut(work, "run", "--max-children", str(args.max_children), *names, log=log)
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            failed.append(module)
            print(f"{module}: mutmut run failed (exit {proc.returncode}); its output: {log}")
            continue
        c = counts(work)
        rows.append((module, c, seconds))
        print(f"{module}: {c} in {seconds:.0f} s", flush=True)
    print("\n| module | mutants | killed | survived | timeouts | no tests | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for module, c, seconds in rows:
        print(f"| `{module}` | {c['total']} | {c['killed']} | {c['survived']} | {c['timeout']} | "
              f"{c['no_tests']} | {seconds:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
