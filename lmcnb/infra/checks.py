"""Verification records: every theorem check of a chapter prints ``measured … vs predicted …: PASS`` and is kept.

A chapter's verification cell computes the measured value, states the prediction with its tolerance, calls
:func:`record` and then ``assert``s the result, so a failed check both prints its numbers and stops nbval::

    r = checks.record("barrier falls with width", measured=slope, predicted="<= -0.5", chapter="03_width_rate",
                      passed=slope <= -0.5, source="Zhan et al. 2025, abstract", status="confirmed")
    assert r.passed, r

Records are kept in memory (:func:`results`) and, when ``$LMCNB_RESULTS_DIR`` is set, appended as JSON lines to
``<dir>/<chapter>.jsonl`` so a scoreboard can be generated from the chapters' own results. ``chapter`` must be the
notebook's file stem (``"03_width_rate"``).

The scoreboard chain (chapter 8): ``make outputs`` (``tools/refresh_outputs.py``) runs each chapter with
``$LMCNB_RESULTS_DIR`` pointing at a fresh directory and, only if the run succeeds, replaces
``book/_checks/<stem>.jsonl`` with the records it produced; ``tests/test_scoreboard.py`` asserts that the check
lines stored in each chapter's outputs equal, in order, ``str()`` of the records in its JSONL file; strict nbval
asserts that the stored outputs equal a fresh run; and chapter 8 renders :func:`load_records` with
:func:`scoreboard_table`, so its stored table (also checked by nbval) changes whenever a result changes.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

STATUSES = ("confirmed", "reconstructed", "derived", "calibrated")


def fmt(value: object, digits: int = 3) -> str:
    """Round numbers for printing (``3`` significant digits); tuples and lists element-wise; text as is."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d tensor / numpy scalar
        return fmt(value.item(), digits)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(fmt(v, digits) for v in value) + ")"
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """One verified claim: what was measured, what the theory predicts, and the verdict."""

    claim: str
    measured: str
    predicted: str
    passed: bool
    source: str
    status: str
    chapter: str
    profile: str

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{self.claim}: measured {self.measured} vs predicted {self.predicted}: {verdict}"


_RESULTS: list[CheckResult] = []


def record(claim: str, measured: object, predicted: object, passed: bool, *, source: str,
           status: str, chapter: str = "", verbose: bool = True) -> CheckResult:
    """Record and print one check. ``status`` says whether the claim is the paper's (``confirmed``) or ours."""
    if not isinstance(passed, (bool, np.bool_)):
        raise TypeError(f"passed must be a bool, got {type(passed).__name__}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    from .profiles import current

    result = CheckResult(claim=claim, measured=fmt(measured), predicted=fmt(predicted), passed=bool(passed),
                         source=source, status=status, chapter=chapter, profile=current().profile)
    _RESULTS.append(result)
    out_dir = os.environ.get("LMCNB_RESULTS_DIR")
    if out_dir:
        path = Path(out_dir) / f"{chapter or 'unnamed'}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(asdict(result)) + "\n")
    if verbose:
        print(result)
    return result


def results() -> list[CheckResult]:
    """All checks recorded in this process, in order."""
    return list(_RESULTS)


# ----------------------------------------------------------------------------------------------------------
# The scoreboard: reading the records back
# ----------------------------------------------------------------------------------------------------------

#: Environment variable naming the directory the scoreboard reads (``<chapter>.jsonl`` files); default
#: :data:`DEFAULT_CHECKS_DIR` relative to the working directory (``book/`` when a chapter runs).
CHECKS_DIR_ENV = "LMCNB_CHECKS_DIR"
DEFAULT_CHECKS_DIR = "_checks"
#: Columns of :func:`scoreboard_table`, in order.
SCOREBOARD_COLUMNS = ("chapter", "claim", "source", "status", "predicted", "measured", "verdict", "profile")
_FIELDS = {"claim": str, "measured": str, "predicted": str, "passed": bool, "source": str, "status": str,
           "chapter": str, "profile": str}


def checks_dir() -> Path:
    """Where the scoreboard reads records: ``$LMCNB_CHECKS_DIR`` if set, else ``_checks`` (relative)."""
    env = os.environ.get(CHECKS_DIR_ENV, "")
    return Path(env) if env.strip() else Path(DEFAULT_CHECKS_DIR)


def from_dict(data: object, where: str = "record") -> CheckResult:
    """A :class:`CheckResult` from its JSON form (``dataclasses.asdict``); every field present and typed."""
    if not isinstance(data, dict):
        raise TypeError(f"{where}: a record must be a JSON object, got {type(data).__name__}")
    missing = sorted(set(_FIELDS) - set(data))
    extra = sorted(set(data) - set(_FIELDS))
    if missing or extra:
        raise ValueError(f"{where}: record fields differ from CheckResult: missing {missing}, unexpected {extra}")
    for name, kind in _FIELDS.items():
        if not isinstance(data[name], kind):
            raise TypeError(f"{where}: field {name!r} must be {kind.__name__}, got {type(data[name]).__name__}")
    if data["status"] not in STATUSES:
        raise ValueError(f"{where}: status must be one of {STATUSES}, got {data['status']!r}")
    return CheckResult(**data)


def read_jsonl(path: str | os.PathLike[str]) -> list[CheckResult]:
    """The records of one ``<chapter>.jsonl`` file, in file order (blank lines are an error)."""
    path = Path(path)
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{i}: not a JSON line ({err.msg})") from None
        records.append(from_dict(data, f"{path}:{i}"))
    return records


def load_records(directory: str | os.PathLike[str] | None = None) -> list[CheckResult]:
    """Every record of ``directory/*.jsonl`` (default :func:`checks_dir`): files sorted by name (the chapter
    stem), records in file order. Each record's ``chapter`` must equal its file's stem.

    Raises ``FileNotFoundError`` if the directory does not exist and ``ValueError`` for a malformed file.
    """
    directory = checks_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no check records at {directory.resolve()} (run `make outputs` in the repository, "
                                f"or set ${CHECKS_DIR_ENV})")
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        for r in read_jsonl(path):
            if r.chapter != path.stem:
                raise ValueError(f"{path}: record {r.claim!r} names chapter {r.chapter!r}, not {path.stem!r}")
            records.append(r)
    return records


def scoreboard_table(records: list[CheckResult]):
    """One row per record (in the given order) with the columns :data:`SCOREBOARD_COLUMNS`; a pandas DataFrame.

    ``source`` is the paper and section a claim comes from, ``status`` whether the statement is the paper's
    (``confirmed``) or ours (``reconstructed``, ``derived``, ``calibrated``), ``verdict`` PASS or FAIL.
    """
    import pandas as pd

    rows = []
    for i, r in enumerate(records):
        if not isinstance(r, CheckResult):
            raise TypeError(f"records[{i}] must be a CheckResult, got {type(r).__name__}")
        row = asdict(r)
        row["verdict"] = "PASS" if r.passed else "FAIL"
        rows.append({c: row[c] for c in SCOREBOARD_COLUMNS})
    return pd.DataFrame(rows, columns=list(SCOREBOARD_COLUMNS))


def scoreboard_summary(records: list[CheckResult]):
    """Per chapter (sorted): number of checks, passed, failed, and the count of each status; plus a total row."""
    import pandas as pd

    table = scoreboard_table(records)
    counts = {}
    for chapter, part in table.groupby("chapter", sort=True):
        counts[chapter] = _counts(part)
    counts["total"] = _counts(table)
    return pd.DataFrame.from_dict(counts, orient="index").rename_axis("chapter")


def _counts(part) -> dict[str, int]:
    out = {"checks": len(part), "passed": int((part["verdict"] == "PASS").sum()),
           "failed": int((part["verdict"] == "FAIL").sum())}
    out.update({status: int((part["status"] == status).sum()) for status in STATUSES})
    return out
