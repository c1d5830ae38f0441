"""The scoreboard chain: stored check lines of every chapter == its records in ``book/_checks/<stem>.jsonl``.

``make outputs`` (``tools/refresh_outputs.py``) stores a chapter's outputs and, from the same run, the records its
``checks.record`` calls wrote. Strict nbval asserts that the stored outputs equal a fresh run; this test asserts
that the check lines printed in those outputs (``str(CheckResult)``) equal, in order, ``str()`` of the stored
records, and that every record names its own chapter. Chapter 8 renders the records and is itself checked by
nbval, so a changed result cannot leave the scoreboard unchanged without a test failing.

``TestConsistencyCatchesProblems`` shows the check fails on doctored notebooks and records; the refresh tests run
``tools/refresh_outputs.py`` on tiny notebooks in a temporary book.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lmcnb import checks

import refresh_outputs  # tools/ is on sys.path (tests/conftest.py)
from nblint import NBVAL_SKIP, SKIP_EXECUTION, tags

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHECKS = BOOK / "_checks"

#: What ``str(CheckResult)`` prints; a stored stdout line of this form must come from a record.
CHECK_LINE = re.compile(r"^.+: measured .+ vs predicted .+: (?:PASS|FAIL|.+ \(reported\))$")


def chapters() -> list[Path]:
    return sorted(p for p in BOOK.glob("*.ipynb"))


def printed_checks(nb) -> list[str]:
    """The check lines in the stored stdout of the executed code cells, in order."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code" or SKIP_EXECUTION in tags(cell):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                lines.extend(ln for ln in "".join(out.get("text", "")).splitlines() if CHECK_LINE.match(ln))
    return lines


def consistency_problems(stem: str, nb, records: list[checks.CheckResult] | None) -> list[str]:
    """Problems between a chapter's stored outputs and its stored records (None: no JSONL file)."""
    printed = printed_checks(nb)
    if records is None:
        return [f"{stem} prints {len(printed)} check lines but book/_checks/{stem}.jsonl does not exist "
                "(run `make outputs`)"] if printed else []
    problems = [f"record {i} names chapter {r.chapter!r}, not {stem!r}" for i, r in enumerate(records)
                if r.chapter != stem]
    problems += [f"record {i} comes from the {r.profile!r} profile; stored outputs come from 'quick'"
                 for i, r in enumerate(records) if r.profile != "quick"]
    if not records:
        problems.append(f"book/_checks/{stem}.jsonl is empty (a chapter without records has no file)")
    stored = [str(r) for r in records]
    if printed != stored:
        for i in range(max(len(printed), len(stored))):
            a = printed[i] if i < len(printed) else "<missing>"
            b = stored[i] if i < len(stored) else "<missing>"
            if a != b:
                problems.append(f"check {i}: the notebook prints {a!r} but the JSONL records {b!r} "
                                f"(re-run `make outputs CHAPTERS=book/{stem}.ipynb`; record every check "
                                "with checks.record)")
                break
        problems.append(f"{len(printed)} printed check lines vs {len(stored)} records")
    return problems


def orphan_problems(notebook_stems: set[str], jsonl_stems: set[str]) -> list[str]:
    return [f"book/_checks/{s}.jsonl has no chapter book/{s}.ipynb" for s in sorted(jsonl_stems - notebook_stems)]


def stored_records(stem: str) -> list[checks.CheckResult] | None:
    path = CHECKS / f"{stem}.jsonl"
    return checks.read_jsonl(path) if path.is_file() else None


# --- the book ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", chapters(), ids=lambda p: p.stem)
def test_stored_checks_equal_stored_records(path):
    problems = consistency_problems(path.stem, nbformat.read(path, as_version=4), stored_records(path.stem))
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_every_record_file_has_a_chapter():
    jsonl = {p.stem for p in CHECKS.glob("*.jsonl")} if CHECKS.is_dir() else set()
    assert not orphan_problems({p.stem for p in chapters()}, jsonl)
    assert not list(CHECKS.glob("*.tmp")) if CHECKS.is_dir() else True, "a refresh left a temporary file"


def test_load_records_reads_the_book():
    if not CHECKS.is_dir():
        pytest.skip("no records yet")
    records = checks.load_records(CHECKS)
    assert [r.chapter for r in records] == sorted(r.chapter for r in records), "sorted by chapter stem"


# --- the check itself fails on doctored inputs -------------------------------------------------------------------

STEM = "99_example"


def result(claim: str, measured: str = "0.1", passed: bool = True, chapter: str = STEM) -> checks.CheckResult:
    return checks.CheckResult(claim=claim, measured=measured, predicted="<= 0.5", passed=passed,
                              verdict="PASS" if passed else "FAIL", source="Paper 2025, Thm 1",
                              status="confirmed", chapter=chapter, profile="quick",
                              paper=checks.Paper("0.1", "Table 1"), n=checks.Sample(3, "seeds"),
                              why={"interval": "exact", "margin": "composite", "control": "pure identity"})


def notebook(lines: list[str], skipped: list[str] = ()) -> nbformat.NotebookNode:
    stdout = lambda ls: [new_output("stream", name="stdout", text="".join(f"{x}\n" for x in ls))]  # noqa: E731
    return new_notebook(cells=[
        new_code_cell("print('table')", execution_count=1, outputs=stdout(["width 16 0.1"])),
        new_code_cell("check()", execution_count=2, outputs=stdout(lines)),
        new_code_cell("paper()", metadata={"tags": [SKIP_EXECUTION, NBVAL_SKIP]}, outputs=stdout(skipped)),
    ])


class TestConsistencyCatchesProblems:
    records = [result("a falls"), result("b rises", "2")]

    def test_consistent_chapter_passes(self):
        nb = notebook([str(r) for r in self.records])
        assert consistency_problems(STEM, nb, self.records) == []
        assert consistency_problems(STEM, notebook(["no checks here"]), None) == []

    def test_changed_measurement(self):
        nb = notebook([str(r) for r in self.records])
        doctored = [self.records[0], replace(self.records[1], measured="3")]
        assert consistency_problems(STEM, nb, doctored)

    def test_changed_verdict_order_count(self):
        nb = notebook([str(r) for r in self.records])
        assert consistency_problems(STEM, nb, [self.records[0], replace(self.records[1], passed=False,
                                                                         verdict="FAIL")])
        assert consistency_problems(STEM, nb, self.records[::-1])
        assert consistency_problems(STEM, nb, self.records[:1])
        assert consistency_problems(STEM, nb, [*self.records, result("c")])

    def test_printed_check_without_record(self):
        nb = notebook([str(r) for r in self.records] + ["by hand: measured 1 vs predicted 1: PASS"])
        assert consistency_problems(STEM, nb, self.records)
        assert consistency_problems(STEM, notebook([str(self.records[0])]), None), "checks but no JSONL"

    def test_wrong_chapter_or_profile_or_empty(self):
        nb = notebook([str(r) for r in self.records])
        assert consistency_problems(STEM, nb, [replace(r, chapter="99") for r in self.records])
        assert consistency_problems(STEM, nb, [replace(r, profile="paper") for r in self.records])
        assert consistency_problems(STEM, notebook([]), [])

    def test_skipped_cells_do_not_count(self):
        nb = notebook([str(r) for r in self.records], skipped=[str(result("paper only"))])
        assert printed_checks(nb) == [str(r) for r in self.records]

    def test_orphan_jsonl(self):
        assert orphan_problems({"01_a"}, {"01_a", "02_gone"})
        assert not orphan_problems({"01_a", "02_b"}, {"01_a"})


# --- tools/refresh_outputs.py stores the records of a successful run only ----------------------------------------

def tiny_chapter(path: Path, claim: str, fail: bool = False, chapter: str | None = None) -> None:
    chapter = path.stem if chapter is None else chapter
    src = (f"from lmcnb import checks\nchecks.chapter({chapter!r})\n"
           f"r = checks.record({claim!r}, 0.25, '<= 0.5', True, source='test', status='derived', "
           f"evidence=checks.Evidence(n=(1, 'run'), why={{'control': 'arithmetic'}}))")
    cells = [new_code_cell(src)]
    if fail:
        cells.append(new_code_cell("raise RuntimeError('boom')"))
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                      "display_name": "Python 3"}}), path)


def run_refresh(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "refresh_outputs.py"), "--jobs", "1", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_refresh_stores_records_only_after_success(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nb = book / "01_tiny.ipynb"
    tiny_chapter(nb, "first claim")
    out = run_refresh(str(nb))
    assert out.returncode == 0, out.stderr
    jsonl = book / "_checks" / "01_tiny.jsonl"
    (rec,) = checks.read_jsonl(jsonl)
    assert (rec.claim, rec.chapter, rec.measured) == ("first claim", "01_tiny", "0.25")
    stored = nbformat.read(nb, as_version=4)
    assert rec.cell == stored.cells[0].id, "the runner fills in the cell that printed the record"
    assert consistency_problems("01_tiny", stored, [rec]) == []
    # a failing run changes neither the notebook nor its records
    tiny_chapter(nb, "second claim", fail=True)
    before = nb.read_bytes()
    out = run_refresh(str(nb))
    assert out.returncode == 1 and "FAILED" in out.stderr
    assert nb.read_bytes() == before
    assert [r.claim for r in checks.read_jsonl(jsonl)] == ["first claim"]
    # a record under another chapter name fails the refresh
    tiny_chapter(nb, "third claim", chapter="01")
    out = run_refresh(str(nb))
    assert out.returncode == 1 and "chapter='01_tiny'" in out.stderr
    assert [r.claim for r in checks.read_jsonl(jsonl)] == ["first claim"]


def test_scoreboard_is_refreshed_last_and_added():
    chapters_, boards = refresh_outputs.order_notebooks(
        [str(BOOK / "08_scoreboard.ipynb"), str(BOOK / "02_x.ipynb")], scoreboard=False)
    assert chapters_ == [str(BOOK / "02_x.ipynb")] and boards == [str(BOOK / "08_scoreboard.ipynb")]
    if (BOOK / "08_scoreboard.ipynb").is_file():
        _, boards = refresh_outputs.order_notebooks([str(BOOK / "01_lmc_and_permutations.ipynb")], True)
        assert boards == [str(BOOK / "08_scoreboard.ipynb")]
        _, boards = refresh_outputs.order_notebooks([str(BOOK / "01_lmc_and_permutations.ipynb")], False)
        assert boards == []


def test_kernel_env_sets_results_and_strips_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("LMCNB_CACHE_DIR", "/somewhere")
    monkeypatch.setenv("LMCNB_CHECKS_DIR", "/elsewhere")
    env = refresh_outputs.kernel_env(tmp_path)
    assert env["LMCNB_RESULTS_DIR"] == str(tmp_path)
    assert "LMCNB_CACHE_DIR" not in env and "LMCNB_CHECKS_DIR" not in env


def test_collect_records_validates(tmp_path):
    assert refresh_outputs.collect_records(tmp_path, "01_a") is None
    (tmp_path / "01_a.jsonl").write_text(json.dumps(asdict(result("x", chapter="01_a"))) + "\n")
    assert refresh_outputs.collect_records(tmp_path, "01_a").count("\n") == 1
    (tmp_path / "01_a.jsonl").write_text('{"claim": "x"}\n')
    with pytest.raises(ValueError, match="missing"):
        refresh_outputs.collect_records(tmp_path, "01_a")
    (tmp_path / "unnamed.jsonl").write_text("")
    with pytest.raises(ValueError, match="chapter='01_a'"):
        refresh_outputs.collect_records(tmp_path, "01_a")


# --- evidence: every stored record carries its control (or a reason) and links to a cell with an anchor -------

def book_records():
    if not CHECKS.is_dir():
        pytest.skip("no records yet")
    return checks.load_records(CHECKS)


PLACEHOLDER = re.compile(r"not yet|issue 14 migration|TODO|to be (computed|added)", re.IGNORECASE)


def test_every_record_has_a_control_or_a_reason():
    """Every null evidence field states a reason, and the reason is one: "not computed yet" is no reason."""
    for r in book_records():
        assert r.control is not None or r.why.get("control", "").strip(), r.claim
        for name in checks.NULLABLE:
            assert getattr(r, name) is not None or r.why.get(name, "").strip(), (r.claim, name)
        placeholders = {k: v for k, v in r.why.items() if PLACEHOLDER.search(v)}
        assert not placeholders, f"{r.chapter}: {r.claim}: a placeholder, not a reason: {placeholders}"


def test_no_control_passes_its_own_check():
    bad = [f"{r.chapter}: {r.claim}" for r in book_records() if r.defect]
    assert not bad, f"negative controls that pass the check they must fail: {bad}"


def test_every_record_links_to_a_target_before_its_cell():
    for r in book_records():
        assert r.cell, f"{r.chapter}: {r.claim} names no cell"
        nb = nbformat.read(BOOK / f"{r.chapter}.ipynb", as_version=4)
        ids = [c.get("id") for c in nb.cells]
        assert r.cell in ids, (r.chapter, r.cell)
        prev = nb.cells[ids.index(r.cell) - 1]
        assert prev.cell_type == "markdown" and prev.source.strip() == checks.target(r.chapter, r.cell), (
            f"{r.chapter}: cell {r.cell} needs the MyST target {checks.target(r.chapter, r.cell)} before it")


def test_reported_rows_in_chapters_that_discuss_negatives():
    reported = {r.chapter for r in book_records() if r.status == "reported"}
    for stem in ("01_lmc_and_permutations", "02_double_descent", "03_width_rate", "04_learning_rate_sparsity",
                 "05a_optimal_transport", "05b_ot_deep_and_mnist", "06_lewc", "07_real_data_deeper"):
        assert stem in reported, stem


def test_claim_list_keys_match_records():
    from lmcnb.infra import scoreboard as sb

    claims = sb.load_claims(BOOK / "_claims.yml")
    assert not sb.unmatched_keys(book_records(), claims)
