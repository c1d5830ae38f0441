"""Static checks of the book: configuration, table of contents, citations, labels, and every chapter notebook.

Strict nbval (``make test``) re-runs each chapter and compares outputs; these checks catch what nbval cannot see
or reports badly: a chapter missing from the table of contents, a citation missing from ``references.bib``, a
directive label used twice in the book, and — through the notebook linter ``tools/nblint.py``, applied here to
every chapter — outputs stored from a run that was not a clean top-to-bottom one, stored warnings or errors,
cells nbval would run differently from Jupyter, a chapter without a single ``assert``, inconsistent skip tags, a
Colab install cell or badge that does not point at the one repository URL and branch configured in
``_config.yml``, and ``lmcnb`` names a chapter uses that do not exist. ``tests/test_nblint.py`` shows that every
lint rule fails on a notebook that breaks it.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

import nblint
from nblint import COLAB, colab_link, repository

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


# --- helpers -----------------------------------------------------------------------------------------------------

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
    problems = nblint.lint_file(path)  # nbformat schema and every rule of tools/nblint.py
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


# --- the helpers of these checks -------------------------------------------------------------------------------------

def test_toc_helpers():
    toc = {"root": "book/intro", "parts": [{"chapters": [{"file": "a", "sections": [{"file": "b"}]}]}]}
    assert toc_entries(toc) == ["book/intro", "a", "b"]
    assert resolve("book/intro") == [BOOK / "intro.md"]
    assert resolve("book/no_such_chapter") == []


def test_cite_pattern():
    text = "as {cite:t}`zhan2025` and {cite}`ferbach2024, ito2026` show; {cite:p}`frankle2020`"
    keys = [k.strip() for g in _CITE.findall(text) for k in g.split(",")]
    assert keys == ["zhan2025", "ferbach2024", "ito2026", "frankle2020"]
