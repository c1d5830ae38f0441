"""The whole book in the smoke profile (issue 18: every cell of every chapter executed in CI).

Every chapter of ``_toc.yml`` runs headless through ``tools/run_chapters.py --profile smoke --toy-data`` (what
``make smoke`` runs) into a temporary output folder, on a toy data root in the real MNIST / CIFAR-10 formats written
there, offline, with a temporary sweep cache: the paper profile's code paths, paper-only cells included, at each
``choose(..., smoke=...)`` toy size. The test asserts that every code cell of every chapter executed (the runner
lists the executed cell ids), none stored an error, each kernel ran the smoke profile, and ``book/`` is untouched.
The scoreboard (chapter 8) runs last and renders the records the smoke run wrote (``$LMCNB_CHECKS_DIR``), not
the stored ones. Its verdicts are not asserted: toy sizes make them meaningless (the runner records them).

About 5 minutes on one core (chapters 6 and 7 take more than a minute each); one test, so under ``make test``
(``pytest -n 2 --dist loadscope``) it runs once, on one worker, beside the rest of the suite.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def toc_notebooks(node: object) -> list[Path]:
    """The notebooks ``_toc.yml`` lists (``file:`` entries that are ``.ipynb`` files), in order."""
    found: list[Path] = []
    if isinstance(node, dict):
        entry = node.get("file")
        if entry is not None and (ROOT / f"{entry}.ipynb").is_file():
            found.append(ROOT / f"{entry}.ipynb")
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                found.extend(toc_notebooks(child))
    return found


def code_cell_ids(path: Path) -> list[str]:
    """The ids of the code cells of ``path`` (``cell-<index>`` where a cell has none, as the runner names them)."""
    nb = nbformat.read(path, as_version=4)
    return [c.get("id") or f"cell-{i:02d}" for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_cell_of_every_chapter_executes_in_the_smoke_profile(tmp_path):
    chapters = toc_notebooks(TOC)
    assert len(chapters) >= 9 and chapters[-1].stem == "08_scoreboard", [p.name for p in chapters]
    assert sorted(chapters) == sorted((ROOT / "book").glob("*.ipynb")), "every notebook of book/ is in the toc"
    book_before = digest(ROOT / "book")
    out, cache = tmp_path / "smoke", tmp_path / "cache"
    drop = ("MPLBACKEND", "LMCNB_CACHE_DIR", "LMCNB_ENGINE", "LMCNB_DATA_DIR", "LMCNB_CHECKS_DIR",
            "LMCNB_RESULTS_DIR", "LMCNB_RUNLOG_DIR", "LMCNB_PROFILE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), PYTHONHASHSEED="0",
               OMP_NUM_THREADS="1")
    start = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "run_chapters.py"), "--profile", "smoke",
                          "--toy-data", "--out", str(out), "--cache", str(cache), *map(str, chapters)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=3000)
    wall = time.monotonic() - start
    assert run.returncode == 0, f"smoke run failed after {wall:.0f} s:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    assert (out / "toy-data" / "TOY_DATA.txt").is_file() and "LMCNB_OFFLINE=1" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary) == sorted(p.stem for p in chapters)
    for path in chapters:
        entry, ids = summary[path.stem], code_cell_ids(path)
        assert entry["ok"] and entry["profile"] == "smoke", (path.stem, entry.get("error"))
        assert entry["executed_cell_ids"] == ids, (path.stem, sorted(set(ids) - set(entry["executed_cell_ids"])))
        assert entry["executed_cells"] == len(ids) > 0
        assert entry.get("device"), path.stem  # lmcnb.setup() ran in the smoke kernel (the run log names its device)
        executed = nbformat.read(out / f"{path.stem}.ipynb", as_version=4)
        errors = [(c.get("id"), o.get("ename")) for c in executed.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (path.stem, errors)
        assert [c.get("execution_count") for c in executed.cells if c.cell_type == "code"] == \
            list(range(1, len(ids) + 1)), f"{path.stem}: not one clean top-to-bottom run"
    # every chapter that records checks wrote them (the scoreboard rendered these, not book/_checks)
    for path in chapters[:-1]:
        assert summary[path.stem]["checks"] > 0, path.stem
        assert (out / "checks" / f"{path.stem}.jsonl").is_file()
    assert digest(ROOT / "book") == book_before, "the smoke run wrote into book/"
    print(f"smoke book: {len(chapters)} chapters, {sum(len(code_cell_ids(p)) for p in chapters)} code cells "
          f"in {wall:.0f} s; " + ", ".join(f"{p.stem} {summary[p.stem]['wall_seconds']:.0f} s" for p in chapters))
