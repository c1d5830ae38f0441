"""The status page (book/status.md) and each chapter's "at a glance" box are generated, never typed."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import status_page  # noqa: E402

REGENERATE = "run `python tools/status_page.py` (after `make outputs`) and commit book/status.md and book/*.ipynb"


def test_committed_status_page_and_boxes_are_current():
    stale = [str(p.relative_to(ROOT)) for p, text in status_page.generate().items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"generated files differ from what tools/status_page.py writes now: {stale}; {REGENERATE}"


def test_status_page_is_in_the_toc():
    assert "file: book/status" in (ROOT / "_toc.yml").read_text(encoding="utf-8")


def _fixture_book(tmp_path: Path) -> tuple[Path, Path]:
    book, checks_dir = tmp_path / "book", tmp_path / "book" / "_checks"
    checks_dir.mkdir(parents=True)
    shutil.copy(ROOT / "book" / "01_lmc_and_permutations.ipynb", book)
    shutil.copy(ROOT / "book" / "_checks" / "01_lmc_and_permutations.jsonl", checks_dir)
    return book, checks_dir


def test_runtimes_absent_reads_not_measured(tmp_path):
    book, checks_dir = _fixture_book(tmp_path)
    path = book / "01_lmc_and_permutations.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "paper_gpu_minutes" in nb["metadata"].pop("lmcnb")  # the chapter's estimate, removed: none to show
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out = status_page.generate(book, checks_dir)
    page = out[book / "status.md"]
    assert "| not measured | 13 (0 / 0 / 3 / 7 / 3) |" in page and "_runtimes.json` is missing" in page
    assert "not yet estimated" in page
    nb = json.loads(out[book / "01_lmc_and_permutations.ipynb"])
    assert "quick profile 50–115 s (README" in "".join(nb["cells"][1]["source"])


def test_runtimes_fixture_is_shown_and_the_box_is_replaced_not_repeated(tmp_path):
    book, checks_dir = _fixture_book(tmp_path)
    (checks_dir / "_runtimes.json").write_text(json.dumps(
        {"01_lmc_and_permutations": {"seconds": 61.4, "cells": 23, "profile": "quick"}}), encoding="utf-8")
    out = status_page.generate(book, checks_dir)
    assert "| 61 s on one CPU thread (23 cells) | 13 (" in out[book / "status.md"]
    assert "missing" not in out[book / "status.md"]
    (book / "01_lmc_and_permutations.ipynb").write_text(out[book / "01_lmc_and_permutations.ipynb"])
    again = status_page.generate(book, checks_dir)[book / "01_lmc_and_permutations.ipynb"]
    title = "".join(json.loads(again)["cells"][1]["source"])
    assert title.count(status_page.BOX_START) == 1 and "quick profile 61 s" in title


def test_paper_estimate_from_notebook_metadata(tmp_path):
    book, checks_dir = _fixture_book(tmp_path)
    path = book / "01_lmc_and_permutations.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["metadata"]["lmcnb"] = {"paper_estimate": "12 GPU-minutes"}
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert "| all PASS | 12 GPU-minutes |" in status_page.generate(book, checks_dir)[book / "status.md"]


def test_the_box_counts_reported_findings_apart_from_the_asserted_checks():
    row = dict(n=25, passed=13, failed=0)
    assert status_page.box_checks(row) == "25 checks: 13 asserted, all PASS; 12 reported"
    assert status_page.box_checks(dict(n=13, passed=11, failed=2)) == "13 checks: 13 asserted, 2 FAIL"
    assert status_page.box_checks(dict(n=3, passed=0, failed=0)) == "3 checks: 0 asserted, none; 3 reported"
    assert status_page.box_checks(dict(n=0, passed=0, failed=0)) == "no recorded checks"
