"""Lint: every code line a reader sees in a chapter fits its code box without a horizontal scrollbar.

``CODE_WIDTH`` is measured in the browser, not guessed: at a 1280-px-wide window the book theme's code box
(``div.cell_input pre``) is 684 px wide inside 16 px of padding each side, and its 14 px monospace font
(DejaVu Sans Mono / Menlo metrics, 8.43 px per character) fits 77 characters.
``tests/test_browser.py`` re-measures this on every run and fails if the theme ever fits fewer characters than
``CODE_WIDTH``, and also checks directly that no code box of the built book scrolls horizontally.

Cells hidden from the reader (tags ``remove-cell`` / ``remove-input``) are not linted.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
#: Characters of a code line shown without a horizontal scrollbar at a 1280-px window (measured, see above).
CODE_WIDTH = 77
HIDDEN = ("remove-cell", "remove-input")


def lint_code_width(nb, name: str, width: int = CODE_WIDTH) -> list[str]:
    """One problem per code line longer than ``width`` in a cell the HTML book shows."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or set(cell.metadata.get("tags", [])) & set(HIDDEN):
            continue
        for lineno, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > width:
                cid = cell.get("id", f"#{index}")
                problems.append(f"{name}: cell {cid} line {lineno}: {len(line)} characters > {width}: {line.strip()[:60]}")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_code_lines_fit(path):
    problems = lint_code_width(nbformat.read(path, as_version=4), f"book/{path.name}")
    assert not problems, (f"code lines wider than the code box ({CODE_WIDTH} characters at a 1280-px window); "
                          "wrap arguments or split expressions (pure source edits):\n" + "\n".join(problems))


def test_lint_fails_on_a_doctored_notebook():
    long = "x = dict(" + ", ".join(f"a{i}={i}" for i in range(20)) + ")"
    assert len(long) > CODE_WIDTH
    nb = new_notebook(cells=[new_code_cell("import math\n" + long, id="cell-wide"),
                             new_code_cell(long, id="cell-hidden", metadata={"tags": ["remove-cell"]}),
                             new_code_cell("y = 1  " + "#" * (CODE_WIDTH - 7), id="cell-edge")])
    problems = lint_code_width(nb, "doctored.ipynb")
    assert problems == [f"doctored.ipynb: cell cell-wide line 2: {len(long)} characters > {CODE_WIDTH}: {long[:60]}"]


def test_lint_reads_the_stored_chapters():
    assert len(CHAPTERS) >= 9, "book/*.ipynb not found"
