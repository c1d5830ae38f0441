"""Lint the book's chapter notebooks: what strict nbval cannot see or reports badly.

Usage::

    python tools/nblint.py book/*.ipynb        # prints one line per problem; exit status 1 if there are any

Every rule is a pure function ``lint_<rule>(nb, ...) -> list[str]`` of an ``nbformat`` notebook (plus, for the
Colab rules, the repository URL and branch of ``_config.yml`` and the notebook's path relative to the repository
root); an empty list means the notebook follows the rule. ``lint_notebook`` applies them all, ``lint_file`` reads a
notebook file first. The rules: a python3 kernelspec; outputs stored from a clean top-to-bottom run (execution
counts 1..n, no empty code cells, paper-only cells store nothing); no stored stderr; errors only in cells tagged
raises-exception (and such cells do store one); no trailing ``;`` (nbval ignores IPython's quiet ``;``); the inline
matplotlib backend; at least one executed ``assert``; a set-up cell tagged nbval-ignore-output; skip tags that come
together and guard paper-only cells with ``lmcnb.profiles.require("paper")``; one Colab-only install cell and an
"open in Colab" badge that point at the one repository URL and branch configured in ``_config.yml``; a
notebook with ``checks.record`` calls sets ``checks.chapter`` to its stem first; every ``lmcnb`` attribute and
keyword a cell uses exists; every ``choose(...)`` call states its ``smoke=`` size (the smoke profile runs every
cell at toy sizes); every code line a reader sees fits the HTML book's code box (``CODE_WIDTH``
characters, no horizontal scrollbar).

``tests/test_nblint.py`` shows each rule failing on a doctored notebook; ``tests/test_notebooks.py`` applies the
linter to the real chapters.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"

COLAB = "https://colab.research.google.com"
SKIP_EXECUTION = "skip-execution"
NBVAL_SKIP = "nbval-skip"
RAISES = ("raises-exception", "nbval-raises-exception")
#: Characters of a code line shown without a horizontal scrollbar at a 1280-px window, measured in the browser: the
#: book theme's code box (``div.cell_input pre``) is 684 px wide inside 16 px of padding each side, and its 14 px
#: monospace font (DejaVu Sans Mono / Menlo metrics, 8.43 px per character) fits 77 characters.
#: ``tests/test_browser.py`` re-measures it and fails if the theme ever fits fewer.
CODE_WIDTH = 77
#: Tags of cells hidden from the reader (not width-linted).
HIDDEN = ("remove-cell", "remove-input")


# --- helpers -----------------------------------------------------------------------------------------------------

def repository(config: Path | str = CONFIG) -> tuple[str, str]:
    """The repository URL and branch from ``_config.yml`` (the one source of truth)."""
    repo = yaml.safe_load(Path(config).read_text(encoding="utf-8"))["repository"]
    return str(repo["url"]).rstrip("/"), str(repo["branch"])


def install_target(url: str, branch: str) -> str:
    """What a chapter's Colab install cell must install: ``git+<url>@<branch>``."""
    return f"git+{url}@{branch}"


def colab_link(url: str, branch: str, relpath: str) -> str:
    """The Colab URL that opens ``relpath`` (relative to the repository root) from ``url`` at ``branch``."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if not m:
        raise ValueError(f"repository.url must be https://github.com/<org>/<repo>, got {url!r}")
    return f"{COLAB}/github/{m.group(1)}/{m.group(2)}/blob/{branch}/{relpath}"


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


#: A raw float repr (seven or more decimals, ``1.0701346296815462``) or a numpy scalar repr in a stored output.
_RAW_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?:e[-+]?\d+)?(?![\w.])|\bnp\.float(?:16|32|64)\(")


def lint_raw_floats(nb) -> list[str]:
    """No stored output compared by nbval shows a raw float repr: its last digits differ between CPU kernels, so
    the chapter would reproduce only on the machine that stored it (GUIDE §4: print ``f"{x:.3g}"``; a
    :class:`lmcnb.infra.checks.CheckResult` echo rounds itself). Cells tagged ``nbval-ignore-output`` are not
    compared and not linted."""
    problems = []
    for i, cell in enumerate(code_cells(nb), 1):
        if "nbval-ignore-output" in tags(cell):
            continue
        for out in cell.get("outputs", []):
            text = out.get("text") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain")
            text = "".join(text) if isinstance(text, list) else (text or "")
            hit = _RAW_FLOAT.search(text)
            if hit:
                problems.append(f"code cell {i} stores a raw float repr {hit.group()!r} "
                                f"(…{text[max(0, hit.start() - 40):hit.start()]!r}): print it rounded")
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
        if any(ln.lstrip().startswith("assert ") or "checks.record(" in ln for ln in cell.source.splitlines()):
            return []
    return ["no executed code cell has an `assert` line or a `checks.record(` call: a chapter must verify "
            "its claims"]


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


def _chapter_calls(tree: ast.Module) -> list[ast.Call]:
    """The ``checks.chapter(...)`` calls in a parsed code cell."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "chapter" and isinstance(n.func.value, ast.Name) and n.func.value.id == "checks"]


def lint_check_chapter(nb, stem: str) -> list[str]:
    """A notebook with ``checks.record`` calls sets ``checks.chapter(...)`` to its file stem (a string literal,
    or a name assigned that literal in the notebook: ``CH = "03_width_rate"``; the scoreboard's key) before its
    first record, and no call passes the old ``chapter=`` keyword (``tools/codemod_record.py`` rewrites it)."""
    trees = [(i, _cell_tree(c.source)) for i, c in enumerate(code_cells(nb), 1)]
    names: dict[str, set] = {}  # NAME = "literal"
    for _, tree in trees:
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        names.setdefault(t.id, set()).add(node.value.value)

    def resolve(value: ast.AST | None) -> set:
        if isinstance(value, ast.Constant):
            return {value.value}
        if isinstance(value, ast.Name):
            return names.get(value.id, set())
        return {None}

    problems = []
    declared = False
    for i, tree in trees:
        events = sorted([(c.lineno, c.col_offset, "chapter", c) for c in _chapter_calls(tree)]
                        + [(c.lineno, c.col_offset, "record", c) for c in _record_calls(tree)],
                        key=lambda e: e[:2]) if tree else []
        for line, _, kind, call in events:
            if kind == "chapter":
                arg = call.args[0] if len(call.args) == 1 and not call.keywords else None
                if resolve(arg) != {stem}:
                    shown = ", ".join(ast.unparse(a) for a in call.args) or "nothing"
                    problems.append(f"code cell {i} line {line}: checks.chapter must be given {stem!r} (the "
                                    f"notebook's file stem), got {shown}")
                declared = True
                continue
            if any(k.arg == "chapter" for k in call.keywords):
                problems.append(f"code cell {i} line {line}: checks.record no longer takes chapter=: call "
                                f"checks.chapter({stem!r}) once in the set-up cell (tools/codemod_record.py)")
            elif not declared:
                problems.append(f"code cell {i} line {line}: checks.record before checks.chapter({stem!r}): "
                                "set the chapter (the notebook's file stem) in the set-up cell")
                declared = True  # one report is enough
    return problems


def _choose_calls(tree: ast.Module) -> list[ast.Call]:
    """The ``choose(...)`` calls (``choose``, ``profiles.choose``, ``lmcnb.profiles.choose``) in a parsed cell."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Name) and n.func.id == "choose")
        or (isinstance(n.func, ast.Attribute) and n.func.attr == "choose"))]


def lint_choose_smoke(nb) -> list[str]:
    """Every ``choose(...)`` call passes ``smoke=``: the smoke profile (``make smoke``, CI) runs every cell at the
    toy size it names, and ``lmcnb.profiles.choose`` raises there without one."""
    problems = []
    for i, cell in enumerate(code_cells(nb), 1):
        tree = _cell_tree(cell.source)
        for call in _choose_calls(tree) if tree else []:
            if not any(k.arg == "smoke" for k in call.keywords):
                cid = cell.get("id", f"#{i}")
                problems.append(f"cell {cid} line {call.lineno}: choose(...) without smoke=: give the toy size the "
                                f"smoke profile runs ({ast.unparse(call)[:60]})")
    return problems


def _lmcnb_aliases(trees: list) -> dict[str, object]:
    """Names a notebook binds to ``lmcnb`` or its submodules (``import lmcnb``, ``from lmcnb import x as y``)."""
    import importlib
    import importlib.util

    aliases: dict[str, object] = {}
    for tree in trees:
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lmcnb":
                parent = importlib.import_module(node.module)
                for a in node.names:
                    obj = getattr(parent, a.name, None)
                    if obj is None and importlib.util.find_spec(f"{node.module}.{a.name}") is not None:
                        obj = importlib.import_module(f"{node.module}.{a.name}")  # a submodule
                    aliases[a.asname or a.name] = obj
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


def lint_code_width(nb, width: int = CODE_WIDTH) -> list[str]:
    """One problem per code line longer than ``width`` in a cell the HTML book shows (cells tagged
    ``remove-cell`` / ``remove-input`` are hidden from the reader and not linted); wrap arguments or split
    expressions (pure source edits)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or set(tags(cell)) & set(HIDDEN):
            continue
        for lineno, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > width:
                cid = cell.get("id", f"#{index}")
                problems.append(f"cell {cid} line {lineno}: {len(line)} characters > {width} (the code box): "
                                f"{line.strip()[:60]}")
    return problems


def lint_notebook(nb, relpath: str, url: str | None = None, branch: str | None = None) -> list[str]:
    """Every rule applied to ``nb``, stored at ``relpath`` (relative to the repository root, e.g.
    ``book/03_width_rate.ipynb``); ``url`` and ``branch`` default to those of ``_config.yml``."""
    if url is None or branch is None:
        url, branch = repository()
    return (lint_kernelspec(nb) + lint_execution_counts(nb) + lint_no_stderr(nb) + lint_errors(nb)
            + lint_trailing_semicolon(nb) + lint_raw_floats(nb) + lint_backend(nb) + lint_has_assert(nb) + lint_setup_cell(nb)
            + lint_skip_tags(nb) + lint_colab_install(nb, url, branch) + lint_colab_badge(nb, url, branch, relpath)
            + lint_check_chapter(nb, Path(relpath).stem) + lint_lmcnb_references(nb) + lint_code_width(nb)
            + lint_choose_smoke(nb))


def relative_path(path: Path | str, root: Path | str = ROOT) -> str:
    """``path`` relative to ``root`` in POSIX form (what a Colab link names); ``path`` as given if outside."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def lint_file(path: Path | str, root: Path | str = ROOT, config: Path | str = CONFIG) -> list[str]:
    """Read the notebook at ``path``, validate it against the nbformat schema and apply every rule."""
    nb = nbformat.read(path, as_version=4)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        return [f"not a valid nbformat 4 notebook: {str(exc).splitlines()[0]}"]
    return lint_notebook(nb, relative_path(path, root), *repository(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebooks (.ipynb)")
    parser.add_argument("--root", default=str(ROOT), help="repository root the Colab links are relative to "
                        "(default: this repository)")
    parser.add_argument("--config", default=str(CONFIG), help="the _config.yml naming the repository URL and branch")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # lint_lmcnb_references imports this repository's lmcnb
    failed = 0
    for name in args.notebooks:
        problems = lint_file(name, args.root, args.config)
        failed += bool(problems)
        for problem in problems:
            print(f"{name}: {problem}")
    if failed:
        print(f"nblint: {failed} of {len(args.notebooks)} notebooks have problems", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
