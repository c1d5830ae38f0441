"""Verification records that carry their evidence: every check of a chapter is one validated record, printed as
one line and kept as one JSON line.

A chapter's verification cell measures a statistic, states the prediction with its threshold, measures the same
statistic on a **negative control** (a variant of the same run where the claim must fail: identity matcher, no
calibration, weak weight decay, i.i.d. neurons …) and records both::

    checks.chapter("01_lmc_and_permutations")  # once, in the set-up cell: the notebook's file stem
    checks.record(
        "weight matching lowers the barrier", (b, ident), "matched <= 0.25 x identity", b <= 0.25 * ident,
        source="Ainsworth et al. 2023", status="calibrated",
        evidence=checks.Evidence(
            threshold=0.25, margin=0.25 - b / ident, n=(1, "pair"),
            control=checks.Control("identity matcher", ident / ident, passed=ident <= 0.25 * ident)),
    )

The evidence fields travel together in a frozen :class:`Evidence`; a chapter-level default composes with the
fields of one check (``EV | checks.Evidence(n=(4, "seeds"))`` or ``EV.replace(n=(4, "seeds"))``: the right side
wins field by field, a value replacing the left side's reason ``why[field]`` and a reason replacing its value).
The chapter a record belongs to is the context :func:`chapter` sets once per notebook.

:func:`record` validates the evidence and **enforces** the verdict: in the ``quick`` profile (stored outputs,
CI) a failed asserted check raises :class:`CheckFailed` (an ``AssertionError``), so the chapter stops; in the
other profiles (``paper``, ``smoke``, ``full``; ``tools/run_chapters.py``) it is recorded as FAIL and the chapter
continues, and the runner exits non-zero listing the failures. A control that *passes* its own check is a
defect (the check cannot fail for the reason it claims): :class:`ControlPassed` in the quick profile, a FAIL
elsewhere. Findings the book measures but does not assert are recorded with ``status="reported"`` and a verdict
word (:data:`REPORTED_VERDICTS`), never dropped.

Every field of :class:`CheckResult` is present in each JSON line; an evidence field may be ``None`` only with a
stated reason in ``why`` (no control needs ``Evidence(why={"control": "pure identity (Birkhoff)"})``). Records are
kept in memory (:func:`results`) and, when ``$LMCNB_RESULTS_DIR`` is set, appended to ``<dir>/<chapter>.jsonl``;
the runners (``tools/refresh_outputs.py``, ``tools/run_chapters.py``) fill in ``cell``, the id of the cell that
printed the record, from the executed notebook (the kernel is not told which cell runs). The chapter set with
:func:`chapter` must be the notebook's file stem. ``tools/codemod_record.py`` rewrites chapters written for the
old keyword form (``record(..., chapter=, threshold=, n=, control=, why=, ...)``).

The scoreboard chain (chapter 8): ``make outputs`` stores each chapter's records in ``book/_checks/<stem>.jsonl``
from the same run as its outputs; ``tests/test_scoreboard.py`` asserts that the printed check lines equal, in
order, ``str()`` of the records; strict nbval asserts that the stored outputs equal a fresh run; chapter 8 renders
the records with :mod:`lmcnb.infra.scoreboard`.
"""
from __future__ import annotations

import functools
import json
import math
import numbers
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._validate import moved_keywords

#: How much of a statement is the paper's (see the scoreboard's legend).
STATUSES = ("confirmed", "reconstructed", "derived", "calibrated", "reported")
#: Statuses whose checks are asserted (PASS or FAIL).
ASSERTED = STATUSES[:4]
#: Verdict words of a ``reported`` record: measured and recorded, not asserted.
REPORTED_VERDICTS = ("not reproduced", "inconclusive", "differs from paper", "consistent")
VERDICTS = ("PASS", "FAIL") + REPORTED_VERDICTS
#: Evidence fields that may be None only with a reason in ``why``.
NULLABLE = ("paper", "n", "interval", "margin", "control")
#: Reasons :func:`record` states itself when a field is left out and the reason follows from the input.
DEFAULT_WHY = {
    "paper": "the paper states no number for this quantity",
    "interval": "no interval: an exact value, or an extreme over all n runs",
    "margin": "no single numeric threshold",
}


class CheckFailed(AssertionError):
    """An asserted check failed in the quick profile (the chapter stops)."""


class ControlPassed(ValueError):
    """A negative control passed the check it must fail: the check does not discriminate."""


def fmt(value: object, digits: int = 3) -> str:
    """Round numbers for printing (``3`` significant digits); tuples and lists element-wise; text as is."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
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


def fmt_e(value: object, floor: float = 0.0, digits: int = 2) -> str:
    """``value`` in scientific notation with ``digits`` decimals (``"6.65e-06"``); ``|value| < floor`` as
    ``"<floor"`` (``"<1e-12"``).

    For tables of barriers: a barrier below ``floor`` is float64 rounding noise (an exact zero up to the order
    of evaluation), whose digits differ between CPU kernels, so a stored output must not show them.

    Raises ``ValueError`` for a negative ``floor`` or ``digits``."""
    if not floor >= 0:
        raise ValueError(f"floor must be >= 0, got {floor!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an integer >= 0, got {digits!r}")
    x = float(value.item() if hasattr(value, "item") else value)
    if math.isfinite(x) and abs(x) < floor:
        return f"<{floor:g}"
    return f"{x:.{digits}e}"


def rounded_repr(obj: object) -> str:
    """``Name(field=value, …)`` of a dataclass instance, like the generated repr but with every float field
    rounded by :func:`fmt` (nested records use their own repr).

    A chapter cell that ends with :func:`record` shows this repr as its stored output, which strict nbval compares
    across machines: a raw float repr (``margin=1.0701346296815462``) exposes last-bit differences between CPU
    kernels, so the display rounds (GUIDE §4); :meth:`CheckResult.to_dict` and the JSON line keep full precision."""
    parts = ", ".join(f"{f.name}={fmt(v) if isinstance(v, float) else repr(v)}"
                      for f in fields(obj) if f.repr for v in [getattr(obj, f.name)])
    return f"{type(obj).__name__}({parts})"


def _num(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.generic)) and not (
            hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value.item() if hasattr(value, "item") else value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


@dataclass(frozen=True)
class Control:
    """A negative control: the same statistic, same run, on a variant where the claim must fail.

    ``label`` names the variant ("identity matcher"), ``measured`` is its value (formatted on construction),
    ``passed`` whether it passes the check's own prediction (it must not)."""

    label: str
    measured: str
    passed: bool

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError("Control.label must name the variant (e.g. 'identity matcher')")
        if not isinstance(self.passed, (bool, np.bool_)):
            raise TypeError(f"Control.passed must be a bool, got {type(self.passed).__name__}")
        object.__setattr__(self, "measured", fmt(self.measured))
        object.__setattr__(self, "passed", bool(self.passed))

    def __str__(self) -> str:
        return f"control {self.label} {self.measured}: {'PASS' if self.passed else 'FAIL'}"


@dataclass(frozen=True)
class Paper:
    """The paper's own number for the quantity (as text) and where it is (table, figure, section)."""

    value: str
    where: str

    def __post_init__(self):
        object.__setattr__(self, "value", fmt(self.value))
        for name in ("value", "where"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Paper.{name} must be non-empty text")


@dataclass(frozen=True)
class Sample:
    """How many independent units stand behind a measurement: ``count`` of ``unit`` (pairs, seeds, widths …)."""

    count: int
    unit: str

    def __post_init__(self):
        if isinstance(self.count, bool) or not isinstance(self.count, numbers.Integral) or self.count < 1:
            raise ValueError(f"Sample.count must be a positive integer, got {self.count!r}")
        if not isinstance(self.unit, str) or not self.unit.strip():
            raise ValueError("Sample.unit must name what is counted (pairs, seeds, samples …)")
        object.__setattr__(self, "count", int(self.count))

    def __str__(self) -> str:
        return f"{self.count} {self.unit}"


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[lo, hi]`` at ``level`` (e.g. 0.95) and how it was computed (``method``)."""

    lo: float
    hi: float
    level: float
    method: str

    def __post_init__(self):
        lo, hi, level = _num(self.lo, "Interval.lo"), _num(self.hi, "Interval.hi"), _num(self.level, "level")
        if lo > hi:
            raise ValueError(f"Interval.lo {lo} > hi {hi}")
        if not 0 < level < 1:
            raise ValueError(f"Interval.level must lie in (0, 1), got {level}")
        if not isinstance(self.method, str) or not self.method.strip():
            raise ValueError("Interval.method must say how the interval was computed (e.g. 'bootstrap')")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "level", level)

    def __str__(self) -> str:
        return f"[{fmt(self.lo)}, {fmt(self.hi)}] ({fmt(self.level * 100)} %, {self.method})"

    __repr__ = rounded_repr


_PARTS = {"control": Control, "paper": Paper, "n": Sample, "interval": Interval}


@dataclass(frozen=True)
class CheckResult:
    """One check with its evidence (one JSON line; see the module docstring)."""

    claim: str
    measured: str
    predicted: str
    passed: bool | None
    verdict: str
    source: str
    status: str
    chapter: str
    profile: str
    threshold: float | None = None
    margin: float | None = None
    paper: Paper | None = None
    n: Sample | None = None
    interval: Interval | None = None
    control: Control | None = None
    why: dict = field(default_factory=dict)
    cell: str | None = None

    def __post_init__(self):
        for name in ("claim", "measured", "predicted", "source", "chapter", "profile"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be text, got {type(getattr(self, name)).__name__}")
        for name in ("claim", "source"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "reported":
            if self.passed is not None:
                raise ValueError(f"{self.claim!r}: a reported record is not asserted: passed must be None")
            if self.verdict not in REPORTED_VERDICTS:
                raise ValueError(f"{self.claim!r}: a reported record's verdict must be one of "
                                 f"{REPORTED_VERDICTS}, got {self.verdict!r}")
        else:
            if not isinstance(self.passed, bool):
                raise TypeError(f"{self.claim!r}: passed must be a bool, got {type(self.passed).__name__}")
            if self.verdict != ("PASS" if self.passed else "FAIL"):
                raise ValueError(f"{self.claim!r}: verdict {self.verdict!r} disagrees with passed={self.passed}")
        for name in ("threshold", "margin"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _num(getattr(self, name), name))
        for name, kind in _PARTS.items():
            if getattr(self, name) is not None and not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name} must be a checks.{kind.__name__}, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.why, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in self.why.items()):
            raise TypeError("why must map field names to reasons (text)")
        unknown = sorted(set(self.why) - set(NULLABLE))
        if unknown:
            raise ValueError(f"{self.claim!r}: why names {unknown}; only {NULLABLE} may be null with a reason")
        for name in NULLABLE:
            value, reason = getattr(self, name), self.why.get(name, "")
            if value is None and not reason.strip():
                raise ValueError(f"{self.claim!r}: {name} is None without a reason: pass evidence=checks.Evidence"
                                 f"({name}=…) or Evidence(why={{{name!r}: 'reason'}})")
            if value is not None and name in self.why:
                raise ValueError(f"{self.claim!r}: {name} is given, so why[{name!r}] must not be")
        if self.cell is not None and (not isinstance(self.cell, str) or not self.cell.strip()):
            raise ValueError("cell must be a notebook cell id")

    @property
    def asserted(self) -> bool:
        return self.status != "reported"

    @property
    def defect(self) -> str | None:
        """Why this record cannot be trusted as a check (None if it can): a control that passes its check."""
        if self.asserted and self.control is not None and self.control.passed:
            return f"control {self.control.label!r} passes the check it must fail"
        return None

    def __str__(self) -> str:
        control = f" ({self.control})" if self.control is not None else ""
        verdict = self.verdict if self.asserted else f"{self.verdict} (reported)"
        return f"{self.claim}: measured {self.measured} vs predicted {self.predicted}{control}: {verdict}"

    __repr__ = rounded_repr

    def to_dict(self) -> dict:
        return asdict(self)


_RESULTS: list[CheckResult] = []

#: The reason :class:`Evidence` states for a nan ``margin`` (a margin computed from an undefined statistic, e.g.
#: a transition the grid never reaches): the margin is recorded as None with it, and :func:`record` refuses such a
#: check that *passes* (an undefined statistic cannot pass). Infinite margins stay errors.
UNDEFINED_MARGIN = "undefined: the margin is nan (the measured statistic is undefined)"


def _undefined(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.generic)):
        if not (hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
            return False
        value = value.item()
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


#: The fields of :class:`Evidence`, in :class:`CheckResult` order.
EVIDENCE_FIELDS = ("threshold", "margin", "paper", "n", "interval", "control")


@dataclass(frozen=True)
class Evidence:
    """What stands behind one check besides its measured value: the prediction's ``threshold``, the ``margin``
    inside it (default :func:`auto_margin`), the ``paper``'s number, the sample ``n``, an ``interval`` and a
    negative ``control``; ``why`` maps an evidence field left ``None`` to the reason (see the module docstring).

    ``paper``: :class:`Paper` or ``(value, where)``; ``n``: :class:`Sample` or ``(count, unit)``; ``interval``:
    :class:`Interval` or ``(lo, hi, level, method)``; ``control``: :class:`Control` or ``(label, measured,
    passed)`` (tuples and dicts are converted on construction).

    ``a | b`` (and ``a.replace(**fields)``, which is ``a | Evidence(**fields)``) composes a chapter-level default
    ``a`` with one check's ``b``: field by field, ``b``'s value or ``b``'s reason wins; a field ``b`` leaves
    unset (no value, no reason) keeps ``a``'s value or reason.
    """

    threshold: float | None = None
    margin: float | None = None
    paper: Paper | None = None
    n: Sample | None = None
    interval: Interval | None = None
    control: Control | None = None
    why: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.why is None:  # no reasons, as in record(..., why=None) of the old form
            object.__setattr__(self, "why", {})
        if _undefined(self.margin):  # e.g. 0.15 - nan: the statistic is undefined (a crossing never reached)
            if not isinstance(self.why, Mapping) or "margin" in self.why:
                raise ValueError("Evidence: margin is nan and why['margin'] is given")
            object.__setattr__(self, "margin", None)
            object.__setattr__(self, "why", {**self.why, "margin": UNDEFINED_MARGIN})
        for name in ("threshold", "margin"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _num(getattr(self, name), name))
        for name, kind in _PARTS.items():
            object.__setattr__(self, name, _part(getattr(self, name), kind, name))
        why = self.why
        if not isinstance(why, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in why.items()):
            raise TypeError("Evidence.why must map field names to reasons (text)")
        unknown = sorted(set(why) - set(NULLABLE))
        if unknown:
            raise ValueError(f"Evidence.why names {unknown}; only {NULLABLE} may be null with a reason")
        for name in why:
            if getattr(self, name) is not None:
                raise ValueError(f"Evidence: {name} is given, so why[{name!r}] must not be")
            if not why[name].strip():
                raise ValueError(f"Evidence.why[{name!r}] must state a reason")
        object.__setattr__(self, "why", dict(why))

    def __or__(self, other: "Evidence") -> "Evidence":
        if not isinstance(other, Evidence):
            return NotImplemented
        mine = [name for name in EVIDENCE_FIELDS if getattr(other, name) is None and name not in other.why]
        values = {name: getattr(self if name in mine else other, name) for name in EVIDENCE_FIELDS}
        why = {k: v for k, v in self.why.items() if k in mine}  # insertion order: the record's JSON order
        why.update(other.why)
        return Evidence(**values, why=why)

    def replace(self, **changes: Any) -> "Evidence":
        """This evidence with some fields replaced (``self | Evidence(**changes)``)."""
        return self | Evidence(**changes)

    __hash__ = None  # ``why`` is a dict


_CHAPTER: list[str] = []  # the chapter set by chapter(), if any
_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def chapter(stem: str) -> None:
    """Set the chapter every later :func:`record` of this process belongs to: the notebook's file stem
    (``checks.chapter("06_lewc")``, once, in the chapter's set-up cell). Returns None (prints nothing).

    Raises ``TypeError``/``ValueError`` unless ``stem`` is a file stem (letters, digits, ``_ . -``)."""
    if not isinstance(stem, str):
        raise TypeError(f"chapter must be the notebook's file stem (text), got {type(stem).__name__}")
    if not _STEM.match(stem):
        raise ValueError(f"chapter must be the notebook's file stem (letters, digits, _ . -), got {stem!r}")
    _CHAPTER[:] = [stem]


def current_chapter() -> str:
    """The chapter set by :func:`chapter`, or ``""`` if none was."""
    return _CHAPTER[0] if _CHAPTER else ""


#: Where the keywords of the old 17-parameter :func:`record` went (its ``TypeError`` names the new home).
MOVED_KEYWORDS = {
    **{name: f"evidence=checks.Evidence({name}=...)" for name in EVIDENCE_FIELDS + ("why",)},
    "chapter": "checks.chapter('<notebook stem>'), called once before the chapter's first record",
    "cell": "the runners (checks.attach_cells fills in each record's cell from the executed notebook)",
    "verbose": "nowhere: record always prints its line (the runners find each record's cell by it); "
               "silence it with contextlib.redirect_stdout",
}


_moved_keywords = moved_keywords(
    MOVED_KEYWORDS, hint="tools/codemod_record.py rewrites a notebook written for the old form")



def _part(value, kind, name):
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, dict):
        return kind(**value)
    if isinstance(value, (tuple, list)):
        return kind(*value)
    raise TypeError(f"{name} must be a checks.{kind.__name__} or a tuple of its fields, got {type(value).__name__}")


_SENSE = re.compile(r"^\s*(<=|>=|<|>)")


def auto_margin(measured: object, predicted: str, threshold: float | None) -> float | None:
    """``threshold - measured`` for a prediction ``<= t`` / ``< t``, ``measured - threshold`` for ``>= t`` /
    ``> t`` (positive inside), when ``measured`` is one number; else None."""
    if threshold is None or not isinstance(predicted, str):
        return None
    m = _SENSE.match(predicted)
    try:
        x = _num(measured, "measured")
    except (TypeError, ValueError):
        return None
    if m is None:
        return None
    return threshold - x if m.group(1).startswith("<") else x - threshold


def enforcing() -> bool:
    """Whether a failed check stops the chapter: in the quick profile (``$LMCNB_CHECKS_ENFORCE=0|1`` overrides)."""
    env = os.environ.get("LMCNB_CHECKS_ENFORCE", "").strip()
    if env in ("0", "1"):
        return env == "1"
    if env:
        raise ValueError(f"$LMCNB_CHECKS_ENFORCE must be 0 or 1, got {env!r}")
    from .profiles import current

    return current().profile == "quick"


@_moved_keywords
def record(claim: str, measured: object, predicted: object, passed: bool | None, *, source: str, status: str,
           evidence: Evidence | None = None, verdict: str | None = None) -> CheckResult:
    """Record, print and enforce one check of the current :func:`chapter` (see the module docstring).

    ``passed`` is the verdict of the prediction on ``measured`` (``None`` for ``status="reported"``, which needs
    a ``verdict`` from :data:`REPORTED_VERDICTS`). ``evidence`` (default: none) is an :class:`Evidence`; its
    ``margin`` defaults to :func:`auto_margin` of its ``threshold``. A None evidence field needs ``why[field]``,
    except where :data:`DEFAULT_WHY` applies (``paper`` for statuses other than ``confirmed``; ``interval``;
    ``margin`` when there is no threshold; ``control`` of a reported record). The keywords of the old form
    (``chapter=``, ``threshold=`` … ``why=``, ``cell=``, ``verbose=``) raise a ``TypeError`` naming their new
    home (:data:`MOVED_KEYWORDS`).

    Raises :class:`CheckFailed` for a failed asserted check and :class:`ControlPassed` for a passing control
    when :func:`enforcing`; the record is kept and written first, so the runner's JSON shows it. Raises
    ``ValueError`` if ``$LMCNB_RESULTS_DIR`` is set (a runner collects the records) but no :func:`chapter` is.
    """
    if evidence is None:
        evidence = Evidence()
    if not isinstance(evidence, Evidence):
        raise TypeError(f"{claim!r}: evidence must be a checks.Evidence, got {type(evidence).__name__} "
                        "(wrap a dict of fields: checks.Evidence(**fields))")
    threshold, margin = evidence.threshold, evidence.margin
    paper, n, interval, control = evidence.paper, evidence.n, evidence.interval, evidence.control
    if status == "reported":
        if passed is not None:
            raise ValueError(f"{claim!r}: a reported record is not asserted: pass passed=None")
        if verdict is None:
            raise ValueError(f"{claim!r}: a reported record needs verdict= one of {REPORTED_VERDICTS}")
    else:
        if not isinstance(passed, (bool, np.bool_)):
            raise TypeError(f"passed must be a bool, got {type(passed).__name__}")
        passed = bool(passed)
        if verdict is not None:
            raise ValueError(f"{claim!r}: an asserted check's verdict follows from passed; omit verdict=")
        verdict = "PASS" if passed else "FAIL"
    if margin is None:
        margin = auto_margin(measured, predicted, threshold)
    why = dict(evidence.why)
    if passed and why.get("margin") == UNDEFINED_MARGIN:
        raise ValueError(f"{claim!r}: passed=True, but its margin is nan (an undefined statistic cannot pass)")
    if paper is None and "paper" not in why and status != "confirmed":
        why["paper"] = DEFAULT_WHY["paper"]
    if interval is None and "interval" not in why:
        why["interval"] = DEFAULT_WHY["interval"]
    if margin is None and "margin" not in why and threshold is None:
        why["margin"] = DEFAULT_WHY["margin"]
    if status == "reported" and control is None and "control" not in why:
        why["control"] = "not asserted: a reported finding has no check for a control to fail"
    from .profiles import current

    chapter = current_chapter()
    out_dir = os.environ.get("LMCNB_RESULTS_DIR")
    if out_dir and not chapter:
        raise ValueError(f"{claim!r}: no chapter is set, so $LMCNB_RESULTS_DIR cannot file this record: call "
                         "checks.chapter('<notebook stem>') once before the chapter's first record")
    result = CheckResult(claim=claim, measured=fmt(measured), predicted=fmt(predicted), passed=passed,
                         verdict=verdict, source=source, status=status, chapter=chapter,
                         profile=current().profile, threshold=threshold, margin=margin, paper=paper, n=n,
                         interval=interval, control=control, why=why)
    _RESULTS.append(result)
    if out_dir:
        path = Path(out_dir) / f"{chapter}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(result.to_dict()) + "\n")
    print(result)
    if enforcing():
        if result.defect:
            raise ControlPassed(f"{result}: {result.defect}")
        if result.passed is False:
            raise CheckFailed(str(result))
    return result


def results() -> list[CheckResult]:
    """All checks recorded in this process, in order."""
    return list(_RESULTS)


# ----------------------------------------------------------------------------------------------------------
# Reading the records back
# ----------------------------------------------------------------------------------------------------------

#: Environment variable naming the directory the scoreboard reads (``<chapter>.jsonl`` files); default
#: :data:`DEFAULT_CHECKS_DIR` relative to the working directory (``book/`` when a chapter runs).
CHECKS_DIR_ENV = "LMCNB_CHECKS_DIR"
DEFAULT_CHECKS_DIR = "_checks"
FIELDS = tuple(f.name for f in fields(CheckResult))


def checks_dir() -> Path:
    """Where the scoreboard reads records: ``$LMCNB_CHECKS_DIR`` if set, else ``_checks`` (relative)."""
    env = os.environ.get(CHECKS_DIR_ENV, "")
    return Path(env) if env.strip() else Path(DEFAULT_CHECKS_DIR)


def from_dict(data: object, where: str = "record") -> CheckResult:
    """A :class:`CheckResult` from its JSON form (:meth:`CheckResult.to_dict`): every field present, validated."""
    if not isinstance(data, dict):
        raise TypeError(f"{where}: a record must be a JSON object, got {type(data).__name__}")
    missing = sorted(set(FIELDS) - set(data))
    extra = sorted(set(data) - set(FIELDS))
    if missing or extra:
        raise ValueError(f"{where}: record fields differ from CheckResult: missing {missing}, unexpected {extra}")
    data = dict(data)
    try:
        for name, kind in _PARTS.items():
            data[name] = _part(data[name], kind, name)
        return CheckResult(**data)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None


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


def attach_cells(lines: str, nb) -> str:
    """Fill in ``cell`` of each JSON line from the executed notebook ``nb``: the id of the code cell whose stdout
    printed the record's line (in order). Raises ``ValueError`` for a record no cell printed."""
    printed = []  # (line, cell id) in output order
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                for ln in "".join(out.get("text", "")).splitlines():
                    printed.append((ln, cell.get("id") or f"cell-{i:02d}"))
    out, k = [], 0
    for line in lines.splitlines():
        data = json.loads(line)
        if data.get("cell") is None:
            text = str(from_dict(data))
            while k < len(printed) and printed[k][0] != text:
                k += 1
            if k == len(printed):
                raise ValueError(f"record {data['claim']!r} was not printed by any cell (checks.record prints "
                                 "it; set its cell in the JSON line otherwise)")
            data["cell"] = printed[k][1]
            k += 1
        out.append(json.dumps(data))
    return "".join(ln + "\n" for ln in out)


def anchor(chapter: str, cell: str) -> str:
    """The HTML anchor of a verification cell: the id of its MyST target ``(check-<chapter>-<cell>)=``."""
    return "check-" + re.sub(r"[^a-z0-9]+", "-", f"{chapter}-{cell}".lower()).strip("-")


def target(chapter: str, cell: str) -> str:
    """The MyST target line placed before a verification cell (:func:`anchor` is its HTML id)."""
    return f"({anchor(chapter, cell)})="
