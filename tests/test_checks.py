"""Tests of lmcnb.checks (records that carry their evidence) and lmcnb.infra.scoreboard (the report)."""
from __future__ import annotations

import dataclasses
import json

import nbformat
import pytest
import torch
import numpy as np
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lmcnb import checks
from lmcnb.infra import scoreboard as sb

EVID = checks.Evidence(n=(3, "seeds"), control=("identity matcher", 1.0, False))


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
    monkeypatch.setattr(checks, "_CHAPTER", [])  # no chapter set


def test_fmt():
    assert checks.fmt(0.123456) == "0.123"
    assert checks.fmt(np.float64(2.0)) == "2"
    assert checks.fmt(torch.tensor(1.23456)) == "1.23"
    assert checks.fmt((1, 0.5, True)) == "(1, 0.5, True)"
    assert checks.fmt(float("nan")) == "nan"
    assert checks.fmt("text") == "text"


def test_fmt_e_hides_rounding_noise_below_the_floor():
    assert checks.fmt_e(6.6543e-06) == "6.65e-06"
    assert checks.fmt_e(6.6543e-06, digits=1) == "6.7e-06"
    assert checks.fmt_e(0.0) == "0.00e+00"
    assert checks.fmt_e(8.88e-16, floor=1e-12) == checks.fmt_e(0.0, floor=1e-12) == "<1e-12"
    assert checks.fmt_e(-3e-13, floor=1e-12) == "<1e-12"
    assert checks.fmt_e(1e-12, floor=1e-12) == "1.00e-12"
    assert checks.fmt_e(np.float64(2.5e-3), floor=1e-12) == "2.50e-03"
    assert checks.fmt_e(torch.tensor(1.5)) == "1.50e+00"
    assert checks.fmt_e(float("inf"), floor=1.0) == "inf"
    for bad in (dict(floor=-1.0), dict(floor=float("nan")), dict(digits=-1), dict(digits=1.5), dict(digits=True)):
        with pytest.raises(ValueError):
            checks.fmt_e(1.0, **bad)


def test_record_prints_and_writes_jsonl_with_evidence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    checks.chapter("02_b")
    r = checks.record("x falls", 0.01234, "<= 0.1", True, source="S", status="derived",
                      evidence=EVID.replace(threshold=0.1))
    assert capsys.readouterr().out == ("x falls: measured 0.0123 vs predicted <= 0.1 (control identity matcher 1: "
                                       "FAIL): PASS\n")
    assert r.margin == pytest.approx(0.1 - 0.01234) and r.chapter == "02_b" and r.cell is None
    assert r.why["paper"] and r.why["interval"] and "margin" not in r.why
    (back,) = checks.read_jsonl(tmp_path / "02_b.jsonl")
    assert back == r and str(back) == str(r)
    assert set(json.loads((tmp_path / "02_b.jsonl").read_text())) == set(checks.FIELDS)
    assert checks.results()[-1] == r


def test_record_has_at_most_eight_parameters_and_old_keywords_name_their_new_home():
    import inspect

    assert list(inspect.signature(checks.record).parameters) == [
        "claim", "measured", "predicted", "passed", "source", "status", "evidence", "verdict"]
    for old, home in [("chapter", r"checks\.chapter\("), ("threshold", r"evidence=checks\.Evidence\(threshold"),
                      ("margin", "Evidence"), ("paper", "Evidence"), ("n", "Evidence"), ("interval", "Evidence"),
                      ("control", "Evidence"), ("why", r"Evidence\(why"), ("cell", "attach_cells"),
                      ("verbose", "redirect_stdout")]:
        with pytest.raises(TypeError, match=f"no longer takes `{old}=`: it moved to `.*{home}.*codemod_record"):
            checks.record("x", 1, 1, True, source="s", status="derived", **{old: None})
    with pytest.raises(TypeError, match="evidence must be a checks.Evidence"):
        checks.record("x", 1, 1, True, source="s", status="derived", evidence=dict(n=(1, "run")))


def test_chapter_context(tmp_path, monkeypatch, capsys):
    assert checks.current_chapter() == ""
    ev = checks.Evidence(n=(1, "run"), why={"control": "arithmetic"})
    assert checks.record("x", 1, 1, True, source="s", status="derived", evidence=ev).chapter == ""
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"no chapter is set.*checks\.chapter"):
        checks.record("x", 1, 1, True, source="s", status="derived", evidence=ev)
    assert checks.chapter("06_lewc") is None and checks.current_chapter() == "06_lewc"
    checks.chapter("07_b")  # the last call wins
    assert checks.record("y", 1, 1, True, source="s", status="derived", evidence=ev).chapter == "07_b"
    assert [p.name for p in tmp_path.iterdir()] == ["07_b.jsonl"]
    for bad, err in [("", ValueError), ("a/b", ValueError), ("two words", ValueError), (6, TypeError)]:
        with pytest.raises(err, match="file stem"):
            checks.chapter(bad)
    assert checks.current_chapter() == "07_b"
    capsys.readouterr()


def test_evidence_validates_and_converts():
    e = checks.Evidence(threshold=np.float64(0.5), paper=("0.2", "Table 1"), n=(3, "seeds"),
                        interval=(0, 1, 0.95, "bootstrap"), control=("identity", 2, False), margin=1)
    assert e.threshold == 0.5 and isinstance(e.threshold, float) and e.margin == 1.0
    assert e.paper == checks.Paper("0.2", "Table 1") and e.n == checks.Sample(3, "seeds")
    assert e.interval == checks.Interval(0, 1, 0.95, "bootstrap") and e.control == checks.Control("identity", 2, False)
    assert checks.Evidence(n={"count": 2, "unit": "runs"}).n == checks.Sample(2, "runs")
    with pytest.raises(TypeError, match="threshold must be a real number"):
        checks.Evidence(threshold="0.1")
    with pytest.raises(ValueError, match="margin must be finite"):
        checks.Evidence(margin=float("inf"))
    with pytest.raises(ValueError, match="Sample.count"):
        checks.Evidence(n=(0, "seeds"))
    with pytest.raises(TypeError, match="control must be a checks.Control"):
        checks.Evidence(control="identity")
    with pytest.raises(ValueError, match="why names"):
        checks.Evidence(why={"cell": "r"})
    with pytest.raises(ValueError, match="threshold"):  # threshold is never null with a reason
        checks.Evidence(why={"threshold": "none"})
    with pytest.raises(ValueError, match=r"n is given, so why\['n'\]"):
        checks.Evidence(n=(1, "run"), why={"n": "missing"})
    with pytest.raises(ValueError, match="must state a reason"):
        checks.Evidence(why={"n": " "})
    with pytest.raises(TypeError, match="map field names"):
        checks.Evidence(why={"n": 1})
    with pytest.raises(TypeError, match="map field names"):
        checks.Evidence(why=["n"])
    assert checks.Evidence(why=None).why == {} == checks.Evidence().why  # None: no reasons (the old form's default)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.n = None


def test_evidence_composes_field_by_field():
    chapter_default = checks.Evidence(why={"control": "none yet", "n": "not recorded"}, threshold=1)
    one = chapter_default | checks.Evidence(n=(4, "seeds"))
    assert one.n == checks.Sample(4, "seeds") and one.why == {"control": "none yet"} and one.threshold == 1.0
    assert chapter_default.replace(n=(4, "seeds")) == one
    # a reason on the right replaces a value on the left, a value replaces a reason; unset fields are kept
    two = one | checks.Evidence(why={"n": "lost"}, control=("identity", 1, False), threshold=2)
    assert two.n is None and two.why == {"n": "lost"} and two.control.label == "identity" and two.threshold == 2
    assert list((chapter_default | checks.Evidence(why={"paper": "p"})).why) == ["control", "n", "paper"]
    assert checks.Evidence() | chapter_default == chapter_default == chapter_default | checks.Evidence()
    with pytest.raises(TypeError):
        chapter_default | {"n": (1, "run")}
    # the composed evidence gives the same record as spelling every field out
    whole = checks.Evidence(threshold=1, n=(4, "seeds"), why={"control": "none yet"})
    rec = [checks.record("x", 0.5, "<= 1", True, source="s", status="derived", evidence=e) for e in (one, whole)]
    assert rec[0] == rec[1] and rec[0].to_dict()["why"] == {"control": "none yet", "paper": checks.DEFAULT_WHY[
        "paper"], "interval": checks.DEFAULT_WHY["interval"]}


def test_record_rejects_bad_input():
    def rec(passed=True, status="derived", verdict=None, **ev):
        return checks.record("x", 1, 1, passed, source="s", status=status, verdict=verdict,
                             evidence=checks.Evidence(**ev) if ev else EVID)

    with pytest.raises(TypeError, match="passed"):
        rec(passed=1)
    with pytest.raises(ValueError, match="status"):
        rec(status="proved")
    with pytest.raises(ValueError, match="control is None without a reason"):
        rec(n=(1, "run"))
    with pytest.raises(ValueError, match="n is None without a reason"):
        rec(why={"control": "pure identity (Birkhoff)"})
    with pytest.raises(ValueError, match="paper is None"):  # a confirmed claim must give the paper's number or why
        rec(status="confirmed")
    with pytest.raises(ValueError, match="Sample.count"):
        rec(n=(0, "seeds"), why={"control": "r"})
    with pytest.raises(ValueError, match="lo .* > hi"):
        checks.Interval(2, 1, 0.95, "bootstrap")
    with pytest.raises(ValueError, match="why names"):
        rec(why={"cell": "r"}, n=(3, "seeds"))
    with pytest.raises(ValueError, match="reported record needs verdict"):
        rec(passed=None, status="reported", n=(1, "run"))
    with pytest.raises(ValueError, match="verdict must be one of"):
        rec(passed=None, status="reported", verdict="meh", n=(1, "r"))
    with pytest.raises(ValueError, match="verdict follows from passed"):
        rec(verdict="PASS")
    with pytest.raises(ValueError, match="reported record is not asserted"):
        rec(passed=True, status="reported", verdict="consistent")


def test_null_with_a_reason_is_accepted():
    r = checks.record("x", 1, "== 1", True, source="s", status="derived",
                      evidence=checks.Evidence(n=(1, "run"), why={"control": "pure identity (Birkhoff)"}))
    assert r.control is None and r.why["control"] == "pure identity (Birkhoff)"


def test_default_evidence_and_margin():
    with pytest.raises(ValueError, match="n is None without a reason"):  # no evidence at all: n needs a reason
        checks.record("x", 1, "== 1", None, source="s", status="reported", verdict="consistent")
    r = checks.record("x", 0.25, ">= 0.1", True, source="s", status="derived",
                      evidence=EVID.replace(threshold=0.1))
    assert r.margin == pytest.approx(0.15)
    r = checks.record("x", 0.25, ">= 0.1", True, source="s", status="derived",
                      evidence=EVID.replace(threshold=0.1, margin=0.5))
    assert r.margin == 0.5


def test_quick_profile_stops_on_a_failed_check_and_on_a_passing_control(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    checks.chapter("01_q")
    with pytest.raises(checks.CheckFailed):
        checks.record("fails", 2, "<= 1", False, source="s", status="derived", evidence=EVID)
    with pytest.raises(checks.ControlPassed, match="passes the check it must fail"):
        checks.record("weak", 0.5, "<= 1", True, source="s", status="derived",
                      evidence=checks.Evidence(n=(1, "r"), control=("identity", 0.5, True)))
    # both are written before the error, so a runner's records show them
    assert [r.verdict for r in checks.read_jsonl(tmp_path / "01_q.jsonl")] == ["FAIL", "PASS"]


def test_other_profiles_record_the_fail_and_continue(monkeypatch):
    monkeypatch.setenv("LMCNB_CHECKS_ENFORCE", "0")
    r = checks.record("fails", 2, "<= 1", False, source="s", status="derived", evidence=EVID)
    assert r.verdict == "FAIL" and r.passed is False
    d = checks.record("weak", 0.5, "<= 1", True, source="s", status="derived",
                      evidence=EVID.replace(n=(1, "r"), control=("identity", 0.5, True)))
    assert d.defect


def test_reported_record():
    r = checks.record("flip", (1, 2), "naive < cov", None, source="Ferbach et al. 2024", status="reported",
                      verdict="not reproduced", evidence=checks.Evidence(n=(2, "pairs")))
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


def test_a_nan_margin_is_recorded_as_undefined_and_cannot_pass():
    """A margin computed from an undefined statistic (``0.15 - nan``: a transition the grid never reaches, as
    at the smoke profile's toy sizes) is recorded as None with the stated reason; such a check must fail."""
    checks.chapter("99_test")
    ev = checks.Evidence(threshold=0.15, margin=float("nan"), n=(1, "run"), control=("c", 1.0, False))
    assert ev.margin is None and ev.why["margin"] == checks.UNDEFINED_MARGIN
    r = checks.record("undefined statistic", float("nan"), "<= 0.15", False, source="s", status="derived",
                      evidence=ev) if not checks.enforcing() else None
    if r is not None:
        assert r.margin is None and r.verdict == "FAIL"
    with pytest.raises(ValueError, match="cannot pass"):
        checks.record("undefined statistic", float("nan"), "<= 0.15", True, source="s", status="derived",
                      evidence=ev)
    with pytest.raises(ValueError, match="finite"):
        checks.Evidence(margin=float("inf"))
    with pytest.raises(ValueError, match="nan and why"):
        checks.Evidence(margin=float("nan"), why={"margin": "x"})


def test_repr_rounds_every_float_and_the_record_keeps_full_precision():
    """A cell ending with ``checks.record(...)`` stores this repr: no raw float repr may reach it (GUIDE §4)."""
    r = make(threshold=0.5, margin=1.0701346296815462, why={},
             interval=checks.Interval(0.00038261044733013395, 0.004012097734709219, 0.95, "bootstrap"))
    text = repr(r)
    assert "threshold=0.5, margin=1.07, " in text
    assert "interval=Interval(lo=0.000383, hi=0.00401, level=0.95, method='bootstrap')" in text
    assert "n=Sample(count=3, unit='seeds')" in text and "cell='cell-05')" in text
    assert text.startswith("CheckResult(claim='c', measured='0.1', predicted='<= 1', passed=True, ")
    assert [f.split("=", 1)[0] for f in text[len("CheckResult("):].split(", ") if "=" in f][:4] == [
        "claim", "measured", "predicted", "passed"]
    assert r.to_dict()["margin"] == 1.0701346296815462
    assert r.to_dict()["interval"]["lo"] == 0.00038261044733013395
    # two records that differ only past the third significant digit print the same
    assert repr(make(margin=1.0701400071015528, threshold=0.5, why={},
                     interval=checks.Interval(0.000382610, 0.0040121, 0.95, "bootstrap"))) == text
    assert repr(make(margin=1.08, threshold=0.5, why={}, interval=r.interval)) != text
