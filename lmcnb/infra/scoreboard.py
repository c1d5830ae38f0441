"""The scoreboard (chapter 8) as a report: tables built from the check records of :mod:`lmcnb.infra.checks`.

- :func:`claims_table` one row per record: the claim with a link to its verification cell, the paper's number
  beside ours, margin, n, interval, the negative control and the verdict;
- :func:`counts` records per paper × status × verdict;
- :func:`coverage` each paper's claims and theorems (``book/_claims.yml``): tested, reported or not tested;
- :func:`runtimes` each chapter's quick-profile run time (``book/_checks/_runtimes.json``);
- :func:`html` a compact HTML table (no index column, wrapped text, one CSS class per verdict).
"""
from __future__ import annotations

import html as _html
import json
import os
from pathlib import Path

from . import checks

#: Paper keys, in the order the book treats them, and the words of a record's ``source`` that name each.
PAPERS = {"Zhan et al. 2025": ("Zhan",), "Ferbach et al. 2024": ("Ferbach",), "Ito et al. 2026": ("Ito",)}
OTHER = "background"
#: A record whose source names no paper belongs to the paper its chapter treats (chapters 1 and 7: background).
CHAPTER_PAPER = {"02": "Zhan et al. 2025", "03": "Zhan et al. 2025", "04": "Zhan et al. 2025",
                 "05": "Ferbach et al. 2024", "06": "Ito et al. 2026"}
VERDICT_CLASS = {"PASS": "pass", "FAIL": "fail", "not reproduced": "negative", "differs from paper": "negative",
                 "inconclusive": "open", "consistent": "open"}


def paper_of(r: checks.CheckResult) -> str:
    """The paper a record tests: the first paper its ``source`` names, else its chapter's paper."""
    for key, words in PAPERS.items():
        if any(w in r.source for w in words):
            return key
    return CHAPTER_PAPER.get(r.chapter[:2], OTHER)


def link(r: checks.CheckResult, text: str) -> str:
    """An HTML link to the record's verification cell in its chapter's page."""
    if r.cell is None:
        return _html.escape(text)
    return f'<a href="{r.chapter}.html#{checks.anchor(r.chapter, r.cell)}">{_html.escape(text)}</a>'


def _interval(r):
    return str(r.interval) if r.interval is not None else "—"


def claims_table(records: list[checks.CheckResult]):
    """One row per record (in order). ``claim`` holds HTML (a link to the verification cell)."""
    import pandas as pd

    rows = []
    for i, r in enumerate(records):
        if not isinstance(r, checks.CheckResult):
            raise TypeError(f"records[{i}] must be a CheckResult, got {type(r).__name__}")
        rows.append({
            "chapter": r.chapter,
            "claim": link(r, r.claim),
            "paper": paper_of(r),
            "status": r.status,
            "predicted": r.predicted,
            "measured": r.measured,
            "paper's number": (f"{r.paper.value} ({r.paper.where})" if r.paper else "—"),
            "margin": checks.fmt(r.margin) if r.margin is not None else "—",
            "n": str(r.n) if r.n else "—",
            "interval": _interval(r),
            "control": (f"{r.control.label}: {r.control.measured} "
                        f"({'passes!' if r.control.passed else 'fails'})" if r.control
                        else f"none ({r.why.get('control', '')})"),
            "verdict": r.verdict,
        })
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


CLAIM_COLUMNS = ["chapter", "claim", "paper", "status", "predicted", "measured", "paper's number", "margin", "n",
                 "interval", "control", "verdict"]


def counts(records: list[checks.CheckResult]):
    """Records per paper (rows) × status and verdict (columns), with totals."""
    import pandas as pd

    rows = [{"paper": paper_of(r), "status": r.status, "verdict": r.verdict} for r in records]
    df = pd.DataFrame(rows, columns=["paper", "status", "verdict"])
    order = [p for p in (*PAPERS, OTHER) if p in set(df["paper"])]
    table = df.groupby(["paper", "status", "verdict"]).size().rename("records").reset_index()
    table["paper"] = pd.Categorical(table["paper"], order, ordered=True)
    table["status"] = pd.Categorical(table["status"], checks.STATUSES, ordered=True)
    table["verdict"] = pd.Categorical(table["verdict"], checks.VERDICTS, ordered=True)
    return table.sort_values(["paper", "status", "verdict"]).astype({"paper": str, "status": str,
                                                                      "verdict": str}).reset_index(drop=True)


def load_claims(path: str | os.PathLike[str]) -> dict[str, list[dict]]:
    """The claim list (``book/_claims.yml``): paper -> [{id, claim, kind, records: [record-claim prefixes]}]."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping paper -> list of claims")
    for paper, items in data.items():
        if paper not in PAPERS:
            raise ValueError(f"{path}: unknown paper {paper!r} (one of {list(PAPERS)})")
        for item in items:
            missing = {"id", "claim", "kind", "records"} - set(item)
            if missing:
                raise ValueError(f"{path}: {paper} claim {item.get('id')!r} lacks {sorted(missing)}")
    return data


def matches(item: dict, r: checks.CheckResult) -> bool:
    """Whether record ``r`` tests claim ``item`` (its ``records`` list holds ``chapter: claim prefix`` keys)."""
    for key in item["records"] or []:
        chapter, _, prefix = key.partition(": ")
        if r.chapter == chapter and r.claim.startswith(prefix):
            return True
    return False


def coverage(records: list[checks.CheckResult], claims: dict[str, list[dict]]):
    """Per paper and claim: ``tested`` (≥ 1 asserted record), ``reported`` (only reported ones) or
    ``not tested``; the verdicts of its records, linked to their cells."""
    import pandas as pd

    rows = []
    for paper, items in claims.items():
        for item in items:
            hits = [r for r in records if matches(item, r)]
            asserted = [r for r in hits if r.asserted]
            state = "tested" if asserted else ("reported" if hits else "not tested")
            verdicts = ", ".join(link(r, r.verdict) for r in hits) or "—"
            rows.append({"paper": paper, "id": item["id"], "claim": item["claim"], "kind": item["kind"],
                         "coverage": state, "records": verdicts, "note": item.get("note", "")})
    return pd.DataFrame(rows, columns=["paper", "id", "claim", "kind", "coverage", "records", "note"])


def unmatched_keys(records: list[checks.CheckResult], claims: dict[str, list[dict]]) -> list[str]:
    """Keys of the claim list that match no record (a renamed check)."""
    out = []
    for items in claims.values():
        for item in items:
            for key in item["records"] or []:
                if not any(matches({"records": [key]}, r) for r in records):
                    out.append(f"{item['id']}: {key}")
    return out


def runtimes(path: str | os.PathLike[str], skip: tuple[str, ...] = ("08_scoreboard",)):
    """Quick-profile run time of each chapter (``_runtimes.json``), in seconds; without ``skip`` (the scoreboard
    itself, whose own time is written after it renders, so showing it would never match a fresh run)."""
    import pandas as pd

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = [{"chapter": k, "seconds": v["seconds"], "cells": v["cells"], "profile": v["profile"]}
            for k, v in sorted(data.items()) if k not in skip]
    return pd.DataFrame(rows, columns=["chapter", "seconds", "cells", "profile"])


def html(df, classes: str = "scoreboard", raw: tuple[str, ...] = ("claim", "records")) -> str:
    """``df`` as a compact HTML table: no index column, text escaped except the ``raw`` (HTML) columns, each row
    classed by its ``verdict`` / ``coverage`` (``verdict-pass``, ``verdict-fail``, …) for the book's CSS."""
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        key = row.get("verdict", row.get("coverage", ""))
        cls = VERDICT_CLASS.get(key, str(key).replace(" ", "-"))
        cells = "".join(f"<td>{row[c] if c in raw else _html.escape(str(row[c]))}</td>" for c in df.columns)
        body.append(f'<tr class="verdict-{cls}">{cells}</tr>')
    return (f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>' + "".join(body)
            + "</tbody></table>")
