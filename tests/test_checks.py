"""Tests of lmcnb.checks: rounding, recording (in memory and as JSON lines), reading the records back, and the
scoreboard table and summary built from them."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from lmcnb import checks


def make(claim="c", passed=True, chapter="01_a", status="confirmed", measured="0.1"):
    return checks.CheckResult(claim=claim, measured=measured, predicted="<= 1", passed=passed, source="Paper, §2",
                              status=status, chapter=chapter, profile="quick")


def write(path, records):
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))


def test_fmt():
    assert checks.fmt(0.123456) == "0.123"
    assert checks.fmt(np.float64(2.0)) == "2"
    assert checks.fmt(torch.tensor(1.23456)) == "1.23"
    assert checks.fmt((1, 0.5, True)) == "(1, 0.5, True)"
    assert checks.fmt(float("nan")) == "nan"
    assert checks.fmt("text") == "text"


def test_record_prints_and_writes_jsonl(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    r = checks.record("x falls", 0.01234, "<= 0.1", True, source="S", status="derived", chapter="02_b")
    assert capsys.readouterr().out == "x falls: measured 0.0123 vs predicted <= 0.1: PASS\n"
    (back,) = checks.read_jsonl(tmp_path / "02_b.jsonl")
    assert back == r and str(back) == str(r)
    assert checks.results()[-1] == r


def test_record_rejects_bad_input():
    with pytest.raises(TypeError, match="passed"):
        checks.record("x", 1, 1, 1, source="s", status="derived", verbose=False)
    with pytest.raises(ValueError, match="status"):
        checks.record("x", 1, 1, True, source="s", status="proved", verbose=False)


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
                                     ("status", "proved", ValueError, "status")]:
        bad = {**asdict(make()), key: value}
        (tmp_path / "01_a.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(error, match=match):
            checks.load_records(tmp_path)


def test_checks_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LMCNB_CHECKS_DIR", raising=False)
    assert str(checks.checks_dir()) == "_checks"
    monkeypatch.setenv("LMCNB_CHECKS_DIR", str(tmp_path))
    assert checks.checks_dir() == tmp_path


def test_scoreboard_table_and_summary():
    records = [make("a", status="confirmed"), make("b", passed=False, status="reconstructed"),
               make("c", chapter="02_b", status="calibrated")]
    table = checks.scoreboard_table(records)
    assert tuple(table.columns) == checks.SCOREBOARD_COLUMNS
    assert list(table["claim"]) == ["a", "b", "c"]
    assert list(table["verdict"]) == ["PASS", "FAIL", "PASS"]
    summary = checks.scoreboard_summary(records)
    assert list(summary.index) == ["01_a", "02_b", "total"]
    assert summary.loc["01_a", "checks"] == 2 and summary.loc["01_a", "failed"] == 1
    assert summary.loc["total", "passed"] == 2 and summary.loc["total", "calibrated"] == 1
    assert summary.loc["total", "reconstructed"] == 1
    with pytest.raises(TypeError):
        checks.scoreboard_table([asdict(make())])


def test_table_changes_when_a_result_changes():
    before = checks.scoreboard_table([make(measured="0.1")]).to_string()
    after = checks.scoreboard_table([make(measured="0.2")]).to_string()
    assert before != after
