"""Verification records: every theorem check of a chapter prints ``measured … vs predicted …: PASS`` and is kept.

A chapter's verification cell computes the measured value, states the prediction with its tolerance, calls
:func:`record` and then ``assert``s the result, so a failed check both prints its numbers and stops nbval::

    r = checks.record("barrier falls with width", measured=slope, predicted="<= -0.5",
                      passed=slope <= -0.5, source="Zhan et al. 2025, abstract", status="confirmed")
    assert r.passed, r

Records are kept in memory (:func:`results`) and, when ``$LMCNB_RESULTS_DIR`` is set, appended as JSON lines to
``<dir>/<chapter>.jsonl`` so a scoreboard can be generated from the chapters' own results.
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
