"""A headless run's log: small JSON records a chapter's kernel files for the runner to read after it ends.

``tools/run_chapters.py`` (``make paper``) sets ``$LMCNB_RUNLOG_DIR`` to a fresh folder per chapter; then
:func:`lmcnb.setup` files the device it chose and every :func:`lmcnb.sweep.run_grid` call files its cache hits and
misses there. Without the variable (CI, nbval, a reader's Jupyter) nothing is written. Each record is one file
``<dir>/<kind>-<pid>-<ns>-<k>.json`` written atomically (temporary file in the same folder, then ``os.replace``),
so a killed kernel leaves only complete records (a ``.tmp-*`` file at most, never read), and processes never
share a file. :func:`read` collects them in the order they were written; :func:`summarise` gives the runner's
per-chapter summary. Standard library only: the runner reads the log without importing torch.
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["ENV", "log", "read", "summarise"]

#: Environment variable naming the folder of the run log (set by ``tools/run_chapters.py``).
ENV = "LMCNB_RUNLOG_DIR"
KINDS = ("setup", "sweep")
_counter = itertools.count()


def log(kind: str, **fields: Any) -> Path | None:
    """File one record ``{"kind": kind, "time": <unix s>, **fields}`` in ``$LMCNB_RUNLOG_DIR``; return its path,
    or ``None`` when the variable is unset or empty (nothing written).

    ``kind`` is one of :data:`KINDS`; ``fields`` must be JSON values (``TypeError`` otherwise, before anything
    is written)."""
    if kind not in KINDS:
        raise ValueError(f"unknown run-log kind {kind!r}; expected one of {KINDS}")
    directory = os.environ.get(ENV, "").strip()
    if not directory:
        return None
    text = json.dumps({"kind": kind, "time": time.time(), **fields}, sort_keys=True, allow_nan=False)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{os.getpid()}-{time.time_ns()}-{next(_counter)}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record in ``directory`` (none if it does not exist), oldest first; temporary files are skipped.
    A file that is not a JSON object with a known ``kind`` raises ``ValueError`` naming it."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    records = []
    for path in folder.glob("*.json"):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"run-log record {path} is not JSON: {err}") from None
        if not isinstance(record, dict) or record.get("kind") not in KINDS:
            raise ValueError(f"run-log record {path} has no known kind (expected one of {KINDS})")
        records.append(record)
    return sorted(records, key=lambda r: (r.get("time", 0.0), r.get("kind", "")))


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The runner's per-chapter summary of ``records`` (see :func:`read`).

    Returns ``{"device": str | None, "device_name": str | None, "sweeps": int, "configs": int,
    "cache_hits": int, "cache_misses": int}``: the device of the last ``setup`` record, the number of
    ``run_grid`` calls, and the sums of their configurations, cache hits and misses (configurations computed,
    with or without a cache)."""
    setups = [r for r in records if r["kind"] == "setup"]
    sweeps = [r for r in records if r["kind"] == "sweep"]
    last = setups[-1] if setups else {}
    return {"device": last.get("device"), "device_name": last.get("device_name"), "sweeps": len(sweeps),
            "configs": sum(int(r.get("configs", 0)) for r in sweeps),
            "cache_hits": sum(int(r.get("hits", 0)) for r in sweeps),
            "cache_misses": sum(int(r.get("misses", 0)) for r in sweeps)}
