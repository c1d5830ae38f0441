"""Tests of ``tools/nblint.py``: every rule passes a notebook that follows the chapter template (built here, in
miniature) and fails a copy doctored to break that rule; the command line reports problems and its exit status.

``tests/test_notebooks.py`` applies the linter to the real chapters.
"""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

import nblint
from nblint import (CODE_WIDTH, COLAB, NBVAL_SKIP, SKIP_EXECUTION, colab_link, install_target, lint_backend, lint_check_chapter, lint_choose_smoke, lint_code_width,
                    lint_colab_badge, lint_colab_install, lint_errors, lint_execution_counts, lint_has_assert,
                    lint_kernelspec, lint_lmcnb_references, lint_no_stderr, lint_notebook, lint_raw_floats,
                    lint_setup_cell,
                    lint_skip_tags, lint_trailing_semicolon, repository)


RELPATH = "book/99_example.ipynb"


def good_notebook():
    """A minimal notebook that follows every rule (the chapter template in miniature)."""
    url, branch = repository()
    md = lambda src, *t: new_markdown_cell(src, metadata={"tags": list(t)} if t else {})  # noqa: E731

    def code(src, count, outputs=(), *t):
        return new_code_cell(src, execution_count=count, outputs=list(outputs),
                             metadata={"tags": list(t)} if t else {})

    stream = lambda text: new_output("stream", name="stdout", text=text)  # noqa: E731
    return new_notebook(
        cells=[
            md(f"[![Open In Colab]({COLAB}/assets/colab-badge.svg)]({colab_link(url, branch, RELPATH)})",
               "remove-cell"),
            md("# Example\n\n:::{prf:definition} Barrier\n:label: def-x\nSee {cite}`frankle2020`.\n:::"),
            code(f'import sys\nif "google.colab" in sys.modules:\n    %pip install -q "lmcnb @ {install_target(url, branch)}"',
                 1, (), "remove-cell"),
            code("import lmcnb\nS = lmcnb.setup(seed=0)", 2, [stream("lmcnb: profile=quick\n")],
                 "nbval-ignore-output"),
            code("x = 1 + 1\nn = lmcnb.profiles.choose(quick=1, paper=2, smoke=1)\nprint(x)", 3, [stream("2\n")]),
            code("lmcnb.profiles.require('paper')\nrun_paper_sweep()", None, (), SKIP_EXECUTION, NBVAL_SKIP),
            code("assert x == 2\nprint('measured 2 vs predicted 2: PASS')", 4, [stream("measured 2 vs predicted 2: PASS\n")]),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def _cell(nb, needle):
    return next(c for c in nb.cells if needle in c.source)


class TestLintsCatchProblems:
    """Every lint passes the good notebook and fails a notebook that breaks its rule."""

    def lint(self, nb):
        return lint_notebook(nb, RELPATH)

    def test_good_notebook_passes(self):
        nb = good_notebook()
        nbformat.validate(nb)
        assert self.lint(nb) == []

    def test_kernelspec(self):
        nb = good_notebook()
        nb.metadata.kernelspec.name = "lmcnb-venv"
        assert lint_kernelspec(nb) and self.lint(nb)

    def test_execution_counts(self):
        nb = good_notebook()
        _cell(nb, "print(x)").execution_count = 7
        assert lint_execution_counts(nb)
        nb = good_notebook()
        _cell(nb, "print(x)").execution_count = None
        assert lint_execution_counts(nb)
        nb = good_notebook()
        _cell(nb, "run_paper_sweep").execution_count = 5
        assert lint_execution_counts(nb)
        nb = good_notebook()
        nb.cells.append(new_code_cell("  \n"))
        assert lint_execution_counts(nb)

    def test_stderr(self):
        nb = good_notebook()
        _cell(nb, "print(x)").outputs.append(new_output("stream", name="stderr", text="UserWarning: ...\n"))
        assert lint_no_stderr(nb)

    def test_errors(self):
        nb = good_notebook()
        err = new_output("error", ename="AssertionError", evalue="", traceback=[])
        _cell(nb, "assert x").outputs.append(err)
        assert lint_errors(nb)
        _cell(nb, "assert x").metadata["tags"] = ["raises-exception"]
        assert not lint_errors(nb)
        _cell(nb, "print(x)").metadata["tags"] = ["raises-exception"]
        assert lint_errors(nb), "a raises-exception cell that stores no error"

    def test_trailing_semicolon(self):
        nb = good_notebook()
        _cell(nb, "print(x)").source = "x = 1 + 1\nprint(x);"
        assert lint_trailing_semicolon(nb)
        _cell(nb, "print(x)").source = "x = 1 + 1\nplt.plot([x]);  # quiet\n"
        assert lint_trailing_semicolon(nb)
        _cell(nb, "plt.plot").source = "s = 'a;b'\nprint(s)"
        assert not lint_trailing_semicolon(nb)

    def test_raw_floats(self):
        for text in ("margin=1.0701346296815462, paper=None", "lo = -0.0003826104\n", "x = 1.2345678e-05",
                     "np.float64(0.5)"):
            nb = good_notebook()
            _cell(nb, "print(x)").outputs = [new_output("stream", name="stdout", text=text)]
            assert lint_raw_floats(nb), text
        nb = good_notebook()
        _cell(nb, "print(x)").outputs = [new_output("execute_result", data={"text/plain": "margin=1.0701346"},
                                                    execution_count=3)]
        assert lint_raw_floats(nb), "an echoed result is compared too"
        for text in ("margin=1.07, 2.65e-05, 0.000383, cell-1234567.5, v1.2345678.9", "12345678.5"):
            nb = good_notebook()
            _cell(nb, "print(x)").outputs = [new_output("stream", name="stdout", text=text)]
            assert not lint_raw_floats(nb), text
        nb = good_notebook()
        _cell(nb, "S = lmcnb.setup").outputs = [new_output("stream", name="stdout", text="took 12.3456789 s")]
        assert not lint_raw_floats(nb), "an nbval-ignore-output cell is not compared"

    def test_backend(self):
        for src in ("import matplotlib\nmatplotlib.use('Agg')", "import os\nos.environ['MPLBACKEND'] = 'Agg'",
                    "%matplotlib agg", "plt.switch_backend('agg')"):
            nb = good_notebook()
            _cell(nb, "print(x)").source = src
            assert lint_backend(nb), src
        nb = good_notebook()
        _cell(nb, "print(x)").source = "%matplotlib inline\nprint(1)"
        assert not lint_backend(nb)

    def test_has_assert(self):
        nb = good_notebook()
        _cell(nb, "assert x").source = "print(x == 2)"
        assert lint_has_assert(nb)
        _cell(nb, "run_paper_sweep").source = "assert run_paper_sweep()"
        assert lint_has_assert(nb), "an assert in a skipped cell does not count"

    def test_setup_cell(self):
        nb = good_notebook()
        _cell(nb, "lmcnb.setup").metadata["tags"] = []
        assert lint_setup_cell(nb)
        nb = good_notebook()
        _cell(nb, "lmcnb.setup").source = "import lmcnb"
        assert lint_setup_cell(nb)

    def test_choose_smoke(self):
        """A chapter whose choose() call lacks smoke= fails (the smoke profile would raise there)."""
        nb = good_notebook()
        assert not lint_choose_smoke(nb) and not self.lint(nb)
        cell = _cell(nb, "choose(")
        cell.source = cell.source.replace(", smoke=1)", ")")
        (problem,) = lint_choose_smoke(nb)
        assert "without smoke=" in problem and "line 2" in problem
        assert any("without smoke=" in p for p in self.lint(nb))
        cell.source = "from lmcnb.profiles import choose\nk = choose(quick=[1], paper=[1, 2],\n           full=[4])"
        assert len(lint_choose_smoke(nb)) == 1, "a bare choose() and full= only"
        cell.source = "k = choose(quick=[1], paper=[1, 2], full=[4], smoke=[1])"
        assert not lint_choose_smoke(nb)

    def test_check_chapter(self):
        nb = good_notebook()
        setup = _cell(nb, "lmcnb.setup")
        setup.source = "import lmcnb\nfrom lmcnb import checks\nS = lmcnb.setup(seed=0)\nchecks.chapter('99_example')"
        cell = _cell(nb, "assert x")
        cell.source = ("r = checks.record('x', 2, 2, True, source='s',\n"
                       "                  status='derived')\nassert r.passed, r")
        assert not lint_check_chapter(nb, "99_example") and not self.lint(nb)
        _cell(nb, "print(x)").source = "STEM = '99_example'\nOTHER = '99'\nprint(2)"
        setup.source = setup.source.replace("chapter('99_example')", "chapter(STEM)")
        assert not lint_check_chapter(nb, "99_example"), "a name bound to the stem is fine"
        setup.source = setup.source.replace("chapter(STEM)", "chapter('99_example')")
        for bad in ("chapter('99')", "chapter(OTHER)", "chapter(UNKNOWN)", "chapter()"):
            setup.source = setup.source.replace("chapter('99_example')", bad)
            assert lint_check_chapter(nb, "99_example"), bad
            setup.source = setup.source.replace(bad, "chapter('99_example')")
        setup.source = setup.source.replace("\nchecks.chapter('99_example')", "")
        assert "before checks.chapter" in lint_check_chapter(nb, "99_example")[0], "no chapter set"
        cell.source = "checks.chapter('99_example')\n" + cell.source
        assert not lint_check_chapter(nb, "99_example")
        cell.source = cell.source.replace("checks.chapter('99_example')\n", "") + "\nchecks.chapter('99_example')"
        assert lint_check_chapter(nb, "99_example"), "the chapter is set after the record"
        setup.source += "\nchecks.chapter('99_example')"
        cell.source = cell.source.replace("status='derived')", "status='derived', chapter='99_example')")
        assert "no longer takes chapter=" in lint_check_chapter(nb, "99_example")[0], "the old keyword"
        cell.source = cell.source.replace(", chapter='99_example')", ")")
        _cell(nb, "run_paper_sweep").source = "checks.chapter('99')"
        assert lint_check_chapter(nb, "99_example"), "paper-only cells are linted too"

    def test_lmcnb_references(self):
        nb = good_notebook()
        assert not lint_lmcnb_references(nb)
        cell = _cell(nb, "run_paper_sweep")
        original = cell.source
        for bad in ("from lmcnb import nope", "from lmcnb import barrier\nbarrier.nope(1)",
                    "from lmcnb import barrier as B\nB.evaluate_path(m, a, b, l, x, y, nope=1)",
                    "from lmcnb import barrier as B\nB.evaluate_path(m, a, b, l, e, bn='reset')",
                    "import lmcnb\nlmcnb.nope"):
            cell.source = bad
            assert lint_lmcnb_references(nb), bad
            assert self.lint(nb), "the lint is part of lint_all"
        cell.source = "from lmcnb import barrier as B\nB.evaluate_path(m, a, b, l, e, repairs=[r])"
        assert not lint_lmcnb_references(nb)
        cell.source = original

    def test_skip_tags(self):
        nb = good_notebook()
        _cell(nb, "run_paper_sweep").metadata["tags"] = [SKIP_EXECUTION]
        assert lint_skip_tags(nb)
        _cell(nb, "run_paper_sweep").metadata["tags"] = [NBVAL_SKIP]
        assert lint_skip_tags(nb)
        nb = good_notebook()
        _cell(nb, "run_paper_sweep").source = "run_paper_sweep()"
        assert lint_skip_tags(nb), "a paper-only cell without the profile guard"

    def test_colab_install(self):
        url, branch = repository()
        cases = [
            lambda s: s.replace(install_target(url, branch), "git+https://github.com/someone/fork@main"),
            lambda s: s.replace(f"@{branch}", "@dev"),
            lambda s: s.replace(f"@{branch}", ""),
            lambda s: s.replace('if "google.colab" in sys.modules:\n    ', ""),
        ]
        for change in cases:
            nb = good_notebook()
            cell = _cell(nb, "pip install")
            cell.source = change(cell.source)
            assert lint_colab_install(nb, url, branch), cell.source
        nb = good_notebook()
        _cell(nb, "pip install").metadata["tags"] = []
        assert lint_colab_install(nb, url, branch)
        nb = good_notebook()
        nb.cells.remove(_cell(nb, "pip install"))
        assert lint_colab_install(nb, url, branch)
        nb = good_notebook()
        _cell(nb, "print(x)").source = "# pip install git+https://github.com/other/repo"
        assert lint_colab_install(nb, url, branch)

    def test_colab_badge(self):
        url, branch = repository()
        nb = good_notebook()
        assert lint_colab_badge(nb, url, branch, "book/01_other.ipynb"), "badge opens another chapter"
        badge = _cell(nb, "colab-badge")
        badge.source = badge.source.replace(f"/blob/{branch}/", "/blob/dev/")
        assert lint_colab_badge(nb, url, branch, RELPATH)
        nb = good_notebook()
        _cell(nb, "colab-badge").metadata["tags"] = []
        assert lint_colab_badge(nb, url, branch, RELPATH)
        nb = good_notebook()
        nb.cells.remove(_cell(nb, "colab-badge"))
        assert lint_colab_badge(nb, url, branch, RELPATH)


    def test_code_width(self):
        """A shown code line one character too wide fails; a hidden cell and a line of exactly CODE_WIDTH pass
        (moved from tests/test_code_width.py::test_lint_fails_on_a_doctored_notebook)."""
        long = "x = dict(" + ", ".join(f"a{i}={i}" for i in range(20)) + ")"
        assert len(long) > CODE_WIDTH
        nb = new_notebook(cells=[new_code_cell("import math\n" + long, id="cell-wide"),
                                 new_code_cell(long, id="cell-hidden", metadata={"tags": ["remove-cell"]}),
                                 new_code_cell("y = 1  " + "#" * (CODE_WIDTH - 7), id="cell-edge")])
        assert lint_code_width(nb) == [f"cell cell-wide line 2: {len(long)} characters > {CODE_WIDTH} (the code box): "
                                       f"{long[:60]}"]
        nb = good_notebook()
        _cell(nb, "x = 1 + 1").source = "x = 1 + 1  # " + "z" * CODE_WIDTH
        assert any("characters > 77" in p for p in self.lint(nb))


URL, BRANCH = repository()
RULES = {
    "kernelspec": lint_kernelspec, "execution_counts": lint_execution_counts, "no_stderr": lint_no_stderr,
    "errors": lint_errors, "trailing_semicolon": lint_trailing_semicolon, "backend": lint_backend, "raw_floats": lint_raw_floats,
    "has_assert": lint_has_assert, "setup_cell": lint_setup_cell, "skip_tags": lint_skip_tags,
    "colab_install": lambda nb: lint_colab_install(nb, URL, BRANCH),
    "colab_badge": lambda nb: lint_colab_badge(nb, URL, BRANCH, RELPATH),
    "check_chapter": lambda nb: lint_check_chapter(nb, "99_example"),
    "lmcnb_references": lint_lmcnb_references, "code_width": lint_code_width, "choose_smoke": lint_choose_smoke,
}


def test_every_rule_is_listed():
    """``RULES`` names every ``lint_*`` rule of the tool, so the test below covers each one."""
    assert {n for n in dir(nblint) if n.startswith("lint_")} - {"lint_notebook", "lint_file"} == {
        f"lint_{name}" for name in RULES}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_passes_the_good_notebook(rule):
    assert RULES[rule](good_notebook()) == []


# --- the command line and the file reader ------------------------------------------------------------------------

def write(tmp_path, nb, relpath=RELPATH):
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_lint_file_reads_validates_and_lints(tmp_path):
    path = write(tmp_path, good_notebook())
    assert nblint.lint_file(path, root=tmp_path) == []
    assert nblint.lint_file(path), "outside the repository root the badge must name the path as given"
    nb = good_notebook()
    nb.cells[0]["cell_type"] = "nonsense"
    assert "not a valid nbformat" in nblint.lint_file(write(tmp_path, nb), root=tmp_path)[0]


def test_relative_path(tmp_path):
    assert nblint.relative_path(nblint.ROOT / "book" / "x.ipynb") == "book/x.ipynb"
    assert nblint.relative_path(tmp_path / "book" / "x.ipynb", root=tmp_path) == "book/x.ipynb"
    assert nblint.relative_path("/elsewhere/x.ipynb") == "/elsewhere/x.ipynb"


def test_command_line(tmp_path, capsys):
    good = write(tmp_path, good_notebook())
    assert nblint.main([str(good), "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    nb = good_notebook()
    _cell(nb, "print(x)").execution_count = 7
    bad = write(tmp_path, nb, "book/99_bad.ipynb")
    assert nblint.main([str(good), str(bad), "--root", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"{bad}: code cell 3 has execution count 7, expected 3" in out and str(good) not in out
    assert "1 of 2 notebooks" in err


def test_command_line_runs_as_a_script(tmp_path):
    import subprocess
    import sys

    good = write(tmp_path, good_notebook())
    nb = good_notebook()
    nb.metadata.kernelspec.name = "lmcnb-venv"
    bad = write(tmp_path, nb, "book/99_bad.ipynb")
    script = [sys.executable, str(nblint.ROOT / "tools" / "nblint.py"), "--root", str(tmp_path)]
    ok = subprocess.run([*script, str(good)], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout == "", ok.stdout + ok.stderr
    failed = subprocess.run([*script, str(good), str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode == 1 and "kernelspec must be python3" in failed.stdout, failed.stdout + failed.stderr
