"""The hypothesis profiles of ``tests/conftest.py`` decide how property tests draw: ``repeatable`` (loaded by
default: derandomised, no example database, no deadline) and ``explore`` (``--hypothesis-profile=explore``: fresh
random examples). A test file that sets ``derandomize``, ``database`` or ``deadline`` itself would silently
override the profile, so ``explore`` would replay the same examples; test files may set only an example budget."""
from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import settings

TESTS = Path(__file__).resolve().parent
PROFILE_ONLY = ("derandomize", "database", "deadline")


def override_lines(text: str) -> list[int]:
    """Line numbers of ``text`` (a test file) where a ``settings(...)`` call sets a setting the profile should
    decide (found in the syntax tree, so a variable that happens to be called ``deadline`` is not one)."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "settings":
            lines += [kw.value.lineno for kw in node.keywords if kw.arg in PROFILE_ONLY]
    return sorted(set(lines))


def test_no_test_file_overrides_the_profile():
    files = sorted(p for p in TESTS.glob("*.py") if p.name not in ("conftest.py", Path(__file__).name))
    assert len(files) > 20, "the glob is broken"
    hits = [f"{p.name}:{i}" for p in files for i in override_lines(p.read_text(encoding="utf-8"))]
    assert not hits, f"set derandomize/database/deadline in a profile of tests/conftest.py, not in: {hits}"
    doctored = ("S = settings(deadline=None, max_examples=10, derandomize=True)\n@settings(max_examples=5)\n"
                "def f():\n    deadline = 3\n    return hypothesis.settings(\n        database=None)\n")
    assert override_lines(doctored) == [1, 6], "the pattern is broken"


def test_profiles_are_registered():
    repeatable = settings.get_profile("repeatable")
    assert repeatable.derandomize and repeatable.database is None and repeatable.deadline is None
    explore = settings.get_profile("explore")
    assert not explore.derandomize and explore.deadline is None
