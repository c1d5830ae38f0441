"""Tests of lmcnb.checks (records that carry their evidence) and lmcnb.infra.scoreboard (the report)."""
from __future__ import annotations

import json

import nbformat
import pytest
import torch
import numpy as np
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lmcnb import checks
from lmcnb.infra import scoreboard as sb

EVID = dict(n=(3, "seeds"), control=("identity matcher", 1.0, False))


def make(claim="c", passed=True, chapter="01_a", status="confirmed", measured="0.1", **kw):
    base = dict(claim=claim, measured=measured, predicted="<= 1", passed=passed,
                verdict="PASS" if passed else "FAIL", source="Zhan et al. 2025, §2", status=status,
                chapter=chapter, profile="quick", paper=checks.Paper("0.2", "Table 1"), n=checks.Sample(3, "seeds"),
                control=checks.Control("identity", "1", False), why={"interval": "exact", "margin": "none"},
                cell="cell-05")
    base.update(kw)
    return checks.CheckResult(**base)


def write(path, records):
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))


@pytest.fixture(autouse=True)
def _no_results_dir(monkeypatch):
    monkeypatch.delenv("LMCNB_RESULTS_DIR", raising=False)
    monkeypatch.delenv("LMCNB_CHECKS_ENFORCE", raising=False)


def test_fmt():
    assert checks.fmt(0.123456) == "0.123"
    assert checks.fmt(np.float64(2.0)) == "2"
    assert checks.fmt(torch.tensor(1.23456)) == "1.23"
    assert checks.fmt((1, 0.5, True)) == "(1, 0.5, True)"
    assert checks.fmt(float("nan")) == "nan"
    assert checks.fmt("text") == "text"


def test_record_prints_and_writes_jsonl_with_evidence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    r = checks.record("x falls", 0.01234, "<= 0.1", True, source="S", status="derived", chapter="02_b",
                      threshold=0.1, **EVID)
    assert capsys.readouterr().out == ("x falls: measured 0.0123 vs predicted <= 0.1 (control identity matcher 1: "
                                       "FAIL): PASS\n")
    assert r.margin == pytest.approx(0.1 - 0.01234)
    assert r.why["paper"] and r.why["interval"] and "margin" not in r.why
    (back,) = checks.read_jsonl(tmp_path / "02_b.jsonl")
    assert back == r and str(back) == str(r)
    assert set(json.loads((tmp_path / "02_b.jsonl").read_text())) == set(checks.FIELDS)
    assert checks.results()[-1] == r


def test_record_rejects_bad_input():
    with pytest.raises(TypeError, match="passed"):
        checks.record("x", 1, 1, 1, source="s", status="derived", verbose=False, **EVID)
    with pytest.raises(ValueError, match="status"):
        checks.record("x", 1, 1, True, source="s", status="proved", verbose=False, **EVID)
    with pytest.raises(ValueError, match="control is None without a reason"):
        checks.record("x", 1, 1, True, source="s", status="derived", verbose=False, n=(1, "run"))
    with pytest.raises(ValueError, match="n is None without a reason"):
        checks.record("x", 1, 1, True, source="s", status="derived", verbose=False,
                      why={"control": "pure identity (Birkhoff)"})
    with pytest.raises(ValueError, match="paper is None"):  # a confirmed claim must give the paper's number or why
        checks.record("x", 1, 1, True, source="s", status="confirmed", verbose=False, **EVID)
    with pytest.raises(ValueError, match="Sample.count"):
        checks.record("x", 1, 1, True, source="s", status="derived", verbose=False, n=(0, "seeds"),
                      why={"control": "r"})
    with pytest.raises(ValueError, match="lo .* > hi"):
        checks.Interval(2, 1, 0.95, "bootstrap")
    with pytest.raises(ValueError, match="why names"):
        checks.record("x", 1, 1, True, source="s", status="derived", verbose=False, why={"cell": "r"}, **EVID)
    with pytest.raises(ValueError, match="reported record needs verdict"):
        checks.record("x", 1, 1, None, source="s", status="reported", verbose=False, n=(1, "run"))
    with pytest.raises(ValueError, match="verdict must be one of"):
        checks.record("x", 1, 1, None, source="s", status="reported", verdict="meh", verbose=False, n=(1, "r"))


def test_null_with_a_reason_is_accepted():
    r = checks.record("x", 1, "== 1", True, source="s", status="derived", verbose=False, n=(1, "run"),
                      why={"control": "pure identity (Birkhoff)"})
    assert r.control is None and r.why["control"] == "pure identity (Birkhoff)"


def test_quick_profile_stops_on_a_failed_check_and_on_a_passing_control(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    with pytest.raises(checks.CheckFailed):
        checks.record("fails", 2, "<= 1", False, source="s", status="derived", chapter="01_q", **EVID)
    with pytest.raises(checks.ControlPassed, match="passes the check it must fail"):
        checks.record("weak", 0.5, "<= 1", True, source="s", status="derived", chapter="01_q", n=(1, "r"),
                      control=("identity", 0.5, True))
    # both are written before the error, so a runner's records show them
    assert [r.verdict for r in checks.read_jsonl(tmp_path / "01_q.jsonl")] == ["FAIL", "PASS"]


def test_other_profiles_record_the_fail_and_continue(monkeypatch):
    monkeypatch.setenv("LMCNB_CHECKS_ENFORCE", "0")
    r = checks.record("fails", 2, "<= 1", False, source="s", status="derived", verbose=False, **EVID)
    assert r.verdict == "FAIL" and r.passed is False
    d = checks.record("weak", 0.5, "<= 1", True, source="s", status="derived", verbose=False, n=(1, "r"),
                      control=("identity", 0.5, True))
    assert d.defect


def test_reported_record():
    r = checks.record("flip", (1, 2), "naive < cov", None, source="Ferbach et al. 2024", status="reported",
                      verdict="not reproduced", verbose=False, n=(2, "pairs"))
    assert str(r) == "flip: measured (1, 2) vs predicted naive < cov: not reproduced (reported)"
    assert r.passed is None and not r.asserted and r.why["control"]


def test_load_records_sorted_by_chapter_in_file_order(tmp_path):
    write(tmp_path / "02_b.jsonl", [make("b1", chapter="02_b"), make("b2", chapter="02_b")])
    write(tmp_path / "01_a.jsonl", [make("a2"), make("a1")])
    (tmp_path / "notes.txt").write_text("ignored")
    records = checks.load_records(tmp_path)
    assert [r.claim for r in records] == ["a2", "a1", "b1", "b2"]


def test_load_records_rejects_malformed(tmp_path):
    with pytest.raises(FileNotFoundError):
        checks.load_records(tmp_path / "missing")
    write(tmp_path / "01_a.jsonl", [make(chapter="01_other")])
    with pytest.raises(ValueError, match="names chapter"):
        checks.load_records(tmp_path)
    (tmp_path / "01_a.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="not a JSON line"):
        checks.load_records(tmp_path)
    for key, value, error, match in [("passed", "yes", TypeError, "passed"), ("extra", 1, ValueError, "unexpected"),
                                     ("status", "proved", ValueError, "status"),
                                     ("control", None, ValueError, "control is None"),
                                     ("verdict", "FAIL", ValueError, "disagrees")]:
        bad = {**make().to_dict(), key: value}
        (tmp_path / "01_a.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(error, match=match):
            checks.load_records(tmp_path)


def test_old_schema_is_refused_with_the_missing_fields(tmp_path):
    old = {"claim": "c", "measured": "1", "predicted": "1", "passed": True, "source": "s", "status": "derived",
           "chapter": "01_a", "profile": "quick"}
    (tmp_path / "01_a.jsonl").write_text(json.dumps(old) + "\n")
    with pytest.raises(ValueError, match="missing .*control"):
        checks.load_records(tmp_path)


def test_attach_cells_finds_the_printing_cell():
    r = make(cell=None)
    nb = new_notebook(cells=[new_code_cell("x", id="c-1"),
                             new_code_cell("y", id="c-2", outputs=[new_output("stream", name="stdout",
                                                                              text=str(r) + "\n")])])
    line = json.dumps(r.to_dict()) + "\n"
    (back,) = [json.loads(ln) for ln in checks.attach_cells(line, nb).splitlines()]
    assert back["cell"] == "c-2"
    with pytest.raises(ValueError, match="not printed"):
        checks.attach_cells(line, new_notebook(cells=[new_code_cell("x", id="c-1")]))


def test_anchor_matches_docutils_ids():
    assert checks.anchor("01_lmc_and_permutations", "cell-16") == "check-01-lmc-and-permutations-cell-16"
    assert checks.target("02_b", "cell-3") == "(check-02-b-cell-3)="


def test_checks_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LMCNB_CHECKS_DIR", raising=False)
    assert str(checks.checks_dir()) == "_checks"
    monkeypatch.setenv("LMCNB_CHECKS_DIR", str(tmp_path))
    assert checks.checks_dir() == tmp_path


REPORTED = make("flip", passed=None, verdict="not reproduced", status="reported", chapter="05b_x",
                control=None, why={"control": "not asserted", "interval": "x", "margin": "x"})


def test_scoreboard_renders_counts_coverage_links_and_controls(tmp_path):
    records = [make("a"), make("b", passed=False, status="reconstructed"), REPORTED]
    table = sb.claims_table(records)
    assert list(table.columns) == sb.CLAIM_COLUMNS
    assert list(table["verdict"]) == ["PASS", "FAIL", "not reproduced"]
    assert 'href="01_a.html#check-01-a-cell-05"' in table["claim"][0]
    assert table["control"][0] == "identity: 1 (fails)" and table["paper's number"][0] == "0.2 (Table 1)"
    assert table["control"][2].startswith("none (not asserted")
    assert list(table["paper"]) == ["Zhan et al. 2025", "Zhan et al. 2025", "Zhan et al. 2025"]
    counts = sb.counts(records)
    assert counts["records"].sum() == 3 and set(counts["verdict"]) == {"PASS", "FAIL", "not reproduced"}
    (tmp_path / "c.yml").write_text("Zhan et al. 2025:\n  - {id: Z1, claim: a, kind: t, records: ['01_a: a']}\n"
                                    "  - {id: Z2, claim: f, kind: t, records: ['05b_x: flip']}\n"
                                    "  - {id: Z3, claim: n, kind: t, records: []}\n")
    cover = sb.coverage(records, sb.load_claims(tmp_path / "c.yml"))
    assert list(cover["coverage"]) == ["tested", "reported", "not tested"]
    page = sb.html(table)
    assert "<th>claim</th>" in page and 'class="verdict-fail"' in page and "verdict-negative" in page
    assert "<th></th>" not in page, "no index column"
    assert sb.unmatched_keys(records, {"Zhan et al. 2025": [{"records": ["01_a: zzz"], "id": "Z"}]}) == ["Z: 01_a: zzz"]
