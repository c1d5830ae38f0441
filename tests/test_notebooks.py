"""Static checks of the book: configuration, table of contents, citations, and every chapter notebook.

Strict nbval (``make test``) re-runs each chapter and compares outputs; these checks catch what nbval cannot see
or reports badly: a chapter missing from the table of contents, outputs stored from a run that was not a clean
top-to-bottom one, stored warnings or errors, cells nbval would run differently from Jupyter, a chapter without
a single ``assert``, inconsistent skip tags, and a Colab install cell or badge that does not point at the one
repository URL and branch configured in ``_config.yml``.

Each lint returns a list of problems; ``TestLintsCatchProblems`` shows that every lint fails on a notebook that
breaks its rule, so a passing run means something even before the book has chapters.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))

COLAB = "https://colab.research.google.com"
SKIP_EXECUTION = "skip-execution"
NBVAL_SKIP = "nbval-skip"
RAISES = ("raises-exception", "nbval-raises-exception")


# --- helpers -----------------------------------------------------------------------------------------------------

def repository() -> tuple[str, str]:
    """The repository URL and branch from ``_config.yml`` (the one source of truth)."""
    repo = CONFIG["repository"]
    return str(repo["url"]).rstrip("/"), str(repo["branch"])


def install_target(url: str, branch: str) -> str:
    """What a chapter's Colab install cell must install: ``git+<url>@<branch>``."""
    return f"git+{url}@{branch}"


def colab_link(url: str, branch: str, relpath: str) -> str:
    """The Colab URL that opens ``relpath`` (relative to the repository root) from ``url`` at ``branch``."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    assert m, f"repository.url must be https://github.com/<org>/<repo>, got {url!r}"
    return f"{COLAB}/github/{m.group(1)}/{m.group(2)}/blob/{branch}/{relpath}"


def toc_entries(node: object) -> list[str]:
    """Every ``file:`` entry of the table of contents, in order (the root first)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(str(node[key]))
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                found.extend(toc_entries(child))
    return found


def resolve(entry: str) -> list[Path]:
    """The files a toc entry can mean (Jupyter Book tries the known suffixes)."""
    base = ROOT / entry
    if base.suffix in (".md", ".ipynb"):
        return [base] if base.is_file() else []
    return [p for p in (base.with_suffix(".md"), base.with_suffix(".ipynb")) if p.is_file()]


def book_pages() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*") if p.suffix in (".md", ".ipynb") and p.is_file()
                  and ".ipynb_checkpoints" not in p.parts and "_static" not in p.parts)


def chapter_notebooks() -> list[Path]:
    return [p for p in book_pages() if p.suffix == ".ipynb"]


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


# --- lints (each returns a list of problems) ---------------------------------------------------------------------

def lint_kernelspec(nb) -> list[str]:
    ks = nb.metadata.get("kernelspec", {})
    if ks.get("name") != "python3" or ks.get("language", "python") != "python":
        return [f"kernelspec must be python3 (python), got {dict(ks)!r}"]
    return []


def lint_execution_counts(nb) -> list[str]:
    """Executed code cells are numbered 1..n in order; skipped (paper-only) cells store nothing."""
    problems = []
    expected = 0
    for i, cell in enumerate(code_cells(nb), 1):
        if not cell.source.strip():
            problems.append(f"code cell {i} is empty")
            continue
        if SKIP_EXECUTION in tags(cell):
            if cell.execution_count is not None or cell.outputs:
                problems.append(f"code cell {i} is tagged {SKIP_EXECUTION} but stores outputs or a count "
                                "(outputs come from the quick profile only)")
            continue
        expected += 1
        if cell.execution_count != expected:
            problems.append(f"code cell {i} has execution count {cell.execution_count}, expected {expected} "
                            "(store outputs with `make outputs`)")
    return problems


def lint_no_stderr(nb) -> list[str]:
    return [f"code cell {i} stores stderr output: {''.join(out.get('text', ''))[:120]!r}"
            for i, cell in enumerate(code_cells(nb), 1) for out in cell.get("outputs", [])
            if out.get("output_type") == "stream" and out.get("name") == "stderr"]


def lint_errors(nb) -> list[str]:
    problems = []
    for i, cell in enumerate(code_cells(nb), 1):
        has_error = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
        tagged = any(t in tags(cell) for t in RAISES)
        if has_error and not tagged:
            problems.append(f"code cell {i} stores an error but is not tagged raises-exception")
        if tagged and not has_error and SKIP_EXECUTION not in tags(cell):
            problems.append(f"code cell {i} is tagged raises-exception but stores no error")
    return problems


_SEMICOLON = re.compile(r";\s*(#[^\n]*)?$")


def lint_trailing_semicolon(nb) -> list[str]:
    """nbval does not honour IPython's quiet ``;``: the output would differ from Jupyter's."""
    problems = []
    for i, cell in enumerate(code_cells(nb), 1):
        lines = [ln for ln in cell.source.rstrip().splitlines() if ln.strip()]
        if lines and _SEMICOLON.search(lines[-1]):
            problems.append(f"code cell {i} ends with ';' (assign to _ or end with plt.show())")
    return problems


_BACKEND = re.compile(r"\b(?:matplotlib|mpl)\.use\s*\(|MPLBACKEND|\.switch_backend\s*\(|%matplotlib\s+(?!inline\b)\w")


def lint_backend(nb) -> list[str]:
    return [f"code cell {i} changes the matplotlib backend (keep the inline backend)"
            for i, cell in enumerate(code_cells(nb), 1) if _BACKEND.search(cell.source)]


def lint_has_assert(nb) -> list[str]:
    for cell in code_cells(nb):
        if SKIP_EXECUTION in tags(cell):
            continue
        if any(ln.lstrip().startswith("assert ") for ln in cell.source.splitlines()):
            return []
    return ["no executed code cell has an `assert` line: a chapter must verify its claims"]


_SETUP = re.compile(r"\b(?:lmcnb|profiles)\.setup\s*\(")


def lint_setup_cell(nb) -> list[str]:
    cells = [(i, c) for i, c in enumerate(code_cells(nb), 1) if _SETUP.search(c.source)]
    if not cells:
        return ["no set-up cell calling lmcnb.setup(...)"]
    return [f"set-up code cell {i} must be tagged nbval-ignore-output (its line names the device)"
            for i, c in cells if "nbval-ignore-output" not in tags(c)]


def lint_skip_tags(nb) -> list[str]:
    problems = []
    for i, cell in enumerate(nb.cells, 1):
        t = tags(cell)
        if (SKIP_EXECUTION in t) != (NBVAL_SKIP in t):
            problems.append(f"cell {i}: tags {SKIP_EXECUTION} and {NBVAL_SKIP} must come together, got {t}")
        first = cell.source.lstrip().split("\n", 1)[0].strip()
        if cell.cell_type == "code" and SKIP_EXECUTION in t and not PAPER_GUARD.fullmatch(first):
            problems.append(f"cell {i}: a paper-only cell must start with lmcnb.profiles.require(\"paper\") "
                            f"(a reader's Run All in the quick profile must not start it), got {first!r}")
    return problems


PAPER_GUARD = re.compile(r"""(lmcnb\.)?profiles\.require\((["'])paper\2\)""")


_GIT_URL = re.compile(r"git\+([^\s\"'@#]+)(?:@([^\s\"'#]+))?")


def lint_colab_install(nb, url: str, branch: str) -> list[str]:
    """One Colab-only install cell, hidden from the HTML, installing exactly ``git+<url>@<branch>``."""
    target = install_target(url, branch)
    problems = []
    installs = [(i, c) for i, c in enumerate(code_cells(nb), 1) if re.search(r"pip\s+install", c.source)]
    if len(installs) != 1:
        problems.append(f"expected one Colab install cell (`%pip install ...{target}`), found {len(installs)}")
    for i, cell in installs:
        if target not in cell.source:
            problems.append(f"install cell {i} must install {target} (the repository in _config.yml)")
        if "google.colab" not in cell.source:
            problems.append(f"install cell {i} must only install on Colab (`if \"google.colab\" in sys.modules:`)")
        if "remove-cell" not in tags(cell):
            problems.append(f"install cell {i} must be tagged remove-cell")
    for i, cell in enumerate(nb.cells, 1):
        for m in _GIT_URL.finditer(cell.source):
            if m.group(0) != target:
                problems.append(f"cell {i} installs {m.group(0)}, not {target} from _config.yml")
    return problems


_COLAB_LINK = re.compile(re.escape(COLAB) + r"/github/[^\s)\"'>\]]+")


def lint_colab_badge(nb, url: str, branch: str, relpath: str) -> list[str]:
    """An "open in Colab" badge (markdown, tagged remove-cell) that opens this very notebook."""
    expected = colab_link(url, branch, relpath)
    problems = []
    found = False
    for i, cell in enumerate(nb.cells, 1):
        for link in _COLAB_LINK.findall(cell.source):
            found = True
            if link != expected:
                problems.append(f"cell {i} links to {link}, expected {expected}")
            if cell.cell_type == "markdown" and "remove-cell" not in tags(cell):
                problems.append(f"cell {i}: the Colab badge cell must be tagged remove-cell")
    if not found:
        problems.append(f"no 'open in Colab' badge linking to {expected}")
    return problems


def _cell_tree(source: str) -> ast.Module | None:
    code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.splitlines())
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _record_calls(tree: ast.Module) -> list[ast.Call]:
    """The ``checks.record(...)`` calls in a parsed code cell."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "record" and isinstance(n.func.value, ast.Name) and n.func.value.id == "checks"]


def lint_check_chapter(nb, stem: str) -> list[str]:
    """Every ``checks.record`` call passes ``chapter=`` the notebook's file stem: a string literal, or a name
    assigned that literal in the notebook (``CH = "03_width_rate"``) — the scoreboard's key."""
    trees = [(i, _cell_tree(c.source)) for i, c in enumerate(code_cells(nb), 1)]
    names: dict[str, set] = {}  # NAME = "literal"
    packs: dict[str, set] = {}  # NAME = dict(..., chapter=<literal or NAME>, ...) for **NAME
    for _, tree in trees:
        for node in ast.walk(tree) if tree else []:
            if not isinstance(node, ast.Assign):
                continue
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node.value, ast.Constant):
                for t in targets:
                    names.setdefault(t, set()).add(node.value.value)
            elif (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                  and node.value.func.id == "dict"):
                kw = next((k for k in node.value.keywords if k.arg == "chapter"), None)
                for t in targets:
                    packs.setdefault(t, set()).add(kw)
    def resolve(kw: ast.keyword | None) -> set:
        if kw is not None and isinstance(kw.value, ast.Constant):
            return {kw.value.value}
        if kw is not None and isinstance(kw.value, ast.Name):
            return names.get(kw.value.id, set())
        return {None}

    problems = []
    for i, tree in trees:
        for call in _record_calls(tree) if tree else []:
            kw = next((k for k in call.keywords if k.arg == "chapter"), None)
            packed = [k.value.id for k in call.keywords if k.arg is None and isinstance(k.value, ast.Name)]
            if kw is None and len(packed) == 1 and packed[0] in packs:
                values = set().union(*(resolve(k) for k in packs[packed[0]]))
                shown = f"**{packed[0]}"
            else:
                values, shown = resolve(kw), (ast.unparse(kw.value) if kw else "none")
            if values != {stem}:
                problems.append(f"code cell {i} line {call.lineno}: checks.record must pass chapter={stem!r} "
                                f"(the notebook's file stem), got {shown}")
    return problems


def _lmcnb_aliases(trees: list) -> dict[str, object]:
    """Names a notebook binds to ``lmcnb`` or its submodules (``import lmcnb``, ``from lmcnb import x as y``)."""
    import importlib

    aliases: dict[str, object] = {}
    for tree in trees:
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lmcnb":
                parent = importlib.import_module(node.module)
                for a in node.names:
                    aliases[a.asname or a.name] = getattr(parent, a.name, None)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "lmcnb":
                        aliases[a.asname or "lmcnb"] = importlib.import_module(a.asname and a.name or "lmcnb")
    return aliases


def lint_lmcnb_references(nb) -> list[str]:
    """Every ``module.name`` a chapter takes from ``lmcnb`` exists and every keyword it passes to an lmcnb function
    or class is a parameter — in all cells, so the paper-only cells (never run in CI) cannot rot silently."""
    import inspect

    trees = [_cell_tree(c.source) for c in code_cells(nb)]
    aliases = _lmcnb_aliases(trees)
    problems = [f"imports a name lmcnb does not have: {name}" for name, obj in aliases.items() if obj is None]
    for i, tree in enumerate(trees, 1):
        for node in ast.walk(tree) if tree else []:
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            mod = aliases.get(node.value.id)
            if not inspect.ismodule(mod):
                continue
            if not hasattr(mod, node.attr):
                problems.append(f"code cell {i} line {node.lineno}: {node.value.id}.{node.attr} does not exist")
    for i, tree in enumerate(trees, 1):
        for call in ast.walk(tree) if tree else []:
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name) and inspect.ismodule(aliases.get(call.func.value.id))):
                continue
            fn = getattr(aliases[call.func.value.id], call.func.attr, None)
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                continue
            for kw in call.keywords:
                if kw.arg is not None and kw.arg not in params:
                    problems.append(f"code cell {i} line {call.lineno}: {call.func.value.id}.{call.func.attr} "
                                    f"has no parameter {kw.arg!r}")
    return problems


def lint_all(nb, relpath: str) -> list[str]:
    url, branch = repository()
    return (lint_kernelspec(nb) + lint_execution_counts(nb) + lint_no_stderr(nb) + lint_errors(nb)
            + lint_trailing_semicolon(nb) + lint_backend(nb) + lint_has_assert(nb) + lint_setup_cell(nb)
            + lint_skip_tags(nb) + lint_colab_install(nb, url, branch) + lint_colab_badge(nb, url, branch, relpath)
            + lint_check_chapter(nb, Path(relpath).stem) + lint_lmcnb_references(nb))


# --- configuration and table of contents -------------------------------------------------------------------------

def test_config_keeps_the_book_reproducible():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "off", "the book shows the outputs nbval verified"
    excluded = set(CONFIG["exclude_patterns"])
    for pattern in (".venv", "venv", "tests", "lmcnb", "benchmarks", "README.md", "CONTRIBUTING.md",
                    "**/.lmcnb_cache", "_build", "tools"):
        assert pattern in excluded, f"exclude_patterns lacks {pattern}"
    assert CONFIG["bibtex_bibfiles"] == ["references.bib"]
    assert "sphinx_proof" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["sphinx"]["config"]["bibtex_reference_style"] == "author_year"
    assert {"dollarmath", "amsmath", "colon_fence"} <= set(CONFIG["parse"]["myst_enable_extensions"])


def test_config_repository_and_colab():
    url, branch = repository()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert branch
    assert CONFIG["repository"]["path_to_book"] == "", "_config.yml is at the repository root"
    assert CONFIG["launch_buttons"]["colab_url"] == COLAB
    assert CONFIG["html"]["use_repository_button"] and CONFIG["html"]["use_issues_button"]
    assert colab_link(url, branch, "book/x.ipynb").endswith(f"/blob/{branch}/book/x.ipynb")


def test_toc_structure():
    assert TOC["format"] == "jb-book"
    assert TOC["root"] == "book/intro"
    entries = toc_entries(TOC)
    assert entries[-1] == "book/references", "the bibliography is the last page"
    assert len(entries) == len(set(entries)), f"duplicate toc entries: {entries}"
    parts = TOC.get("parts")
    numbered = TOC.get("defaults", {}).get("numbered") or (parts and parts[0].get("numbered"))
    assert numbered, "chapters are numbered (Definition 1.1, Theorem 2.3, ...)"


@pytest.mark.parametrize("entry", toc_entries(TOC))
def test_toc_entry_exists(entry):
    files = resolve(entry)
    assert len(files) == 1, (f"_toc.yml entry {entry!r} must match exactly one of {entry}.md / {entry}.ipynb, "
                             f"found {[str(f.relative_to(ROOT)) for f in files]}")


def test_every_book_page_is_in_the_toc():
    listed = {p for entry in toc_entries(TOC) for p in resolve(entry)}
    orphans = [str(p.relative_to(ROOT)) for p in book_pages() if p not in listed]
    assert not orphans, f"pages under book/ missing from _toc.yml (they would not be built): {orphans}"


# --- citations ---------------------------------------------------------------------------------------------------

_CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.MULTILINE)


def cited_keys() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for page in book_pages():
        if page.suffix == ".md":
            texts = [page.read_text(encoding="utf-8")]
        else:
            texts = [c.source for c in nbformat.read(page, as_version=4).cells if c.cell_type == "markdown"]
        for text in texts:
            for group in _CITE.findall(text):
                for key in group.split(","):
                    cited.setdefault(key.strip(), set()).add(str(page.relative_to(ROOT)))
    return cited


def directive_labels() -> list[tuple[str, str]]:
    """``(label, file)`` for every ``:label:`` of a MyST directive (prf blocks, figures, equations) in the book."""
    found = []
    for page in book_pages():
        text = page.read_text() if page.suffix == ".md" else "\n".join(
            c.source for c in nbformat.read(page, as_version=4).cells if c.cell_type == "markdown")
        found += [(m.group(1), page.name) for m in re.finditer(r"^:label:\s*(\S+)", text, re.M)]
    return found


def test_directive_labels_are_unique_across_the_book():
    """Sphinx warns on a duplicate label and `make book` (-W) fails: catch it in the tests too."""
    seen: dict[str, str] = {}
    duplicates = []
    for label, page in directive_labels():
        if label in seen:
            duplicates.append(f"{label!r} in {seen[label]} and {page}")
        seen.setdefault(label, page)
    assert not duplicates, "duplicate labels: " + "; ".join(duplicates)
    assert seen, "no labels found: the pattern is broken"


def test_bibliography_keys_are_unique_and_include_the_seed_papers():
    keys = bib_keys()
    assert len(keys) == len(set(keys)), f"duplicate keys in references.bib: {keys}"
    assert {"zhan2025", "ferbach2024", "ito2026"} <= set(keys)


def test_every_citation_resolves():
    keys = set(bib_keys())
    cited = cited_keys()
    assert cited, "the book cites nothing (the intro cites the seed papers)"
    missing = {k: sorted(v) for k, v in cited.items() if k not in keys}
    assert not missing, f"cited keys missing from references.bib: {missing}"


# --- chapter notebooks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_notebook(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    problems = lint_all(nb, path.relative_to(ROOT).as_posix())
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


# --- the lints themselves ----------------------------------------------------------------------------------------

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
            code("x = 1 + 1\nprint(x)", 3, [stream("2\n")]),
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
        return lint_all(nb, RELPATH)

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

    def test_check_chapter(self):
        nb = good_notebook()
        cell = _cell(nb, "assert x")
        cell.source = ("r = checks.record('x', 2, 2, True, source='s', status='derived', chapter='99_example')\n"
                       "assert r.passed, r")
        assert not lint_check_chapter(nb, "99_example") and not self.lint(nb)
        _cell(nb, "print(x)").source = "STEM = '99_example'\nOTHER = '99'\nprint(2)"
        cell.source = cell.source.replace("chapter='99_example'", "chapter=STEM")
        assert not lint_check_chapter(nb, "99_example"), "a name bound to the stem is fine"
        cell.source = cell.source.replace("chapter=STEM", "chapter='99_example'")
        for bad in ("chapter='99'", "chapter=OTHER", "chapter=UNKNOWN", "verbose=True"):
            cell.source = cell.source.replace("chapter='99_example'", bad)
            assert lint_check_chapter(nb, "99_example"), bad
            cell.source = cell.source.replace(bad, "chapter='99_example'")
        cell.source = ("KW = dict(source='s', status='derived', chapter='99_example')\n"
                       "r = checks.record('x', 2, 2, True, **KW)\nassert r.passed, r")
        assert not lint_check_chapter(nb, "99_example"), "chapter= in a dict(...) passed as **KW"
        cell.source = cell.source.replace("chapter='99_example'", "chapter='99'")
        assert lint_check_chapter(nb, "99_example")
        cell.source = cell.source.replace("chapter='99'", "chapter='99_example'")
        _cell(nb, "run_paper_sweep").source = "r = checks.record('y', 1, 1, True, source='s', status='derived')"
        assert lint_check_chapter(nb, "99_example"), "paper-only cells are linted too"

    def test_lmcnb_references(self):
        nb = good_notebook()
        assert not lint_lmcnb_references(nb)
        cell = _cell(nb, "run_paper_sweep")
        original = cell.source
        for bad in ("from lmcnb import nope", "from lmcnb import barrier\nbarrier.nope(1)",
                    "from lmcnb import barrier as B\nB.evaluate_path(m, a, b, l, x, y, nope=1)",
                    "import lmcnb\nlmcnb.nope"):
            cell.source = bad
            assert lint_lmcnb_references(nb), bad
            assert self.lint(nb), "the lint is part of lint_all"
        cell.source = "from lmcnb import barrier as B\nB.evaluate_path(m, a, b, l, x, y, bn='reset')"
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

    def test_toc_helpers(self):
        toc = {"root": "book/intro", "parts": [{"chapters": [{"file": "a", "sections": [{"file": "b"}]}]}]}
        assert toc_entries(toc) == ["book/intro", "a", "b"]
        assert resolve("book/intro") == [BOOK / "intro.md"]
        assert resolve("book/no_such_chapter") == []

    def test_cite_pattern(self):
        text = "as {cite:t}`zhan2025` and {cite}`ferbach2024, ito2026` show; {cite:p}`frankle2020`"
        keys = [k.strip() for g in _CITE.findall(text) for k in g.split(",")]
        assert keys == ["zhan2025", "ferbach2024", "ito2026", "frankle2020"]
