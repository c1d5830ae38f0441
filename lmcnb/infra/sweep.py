"""Grids of configurations, optionally with an atomic, checksummed on-disk cache.

``run_grid(fn, grid)`` calls ``fn(**config)`` for every configuration and returns ``[(config, result), ...]``
in grid order. The cache is **off** unless ``cache_dir`` is given, so tests and the notebooks' nbval runs
always recompute; paper-profile sweeps on a GPU pass a ``cache_dir`` so that an interrupted run resumes
where it stopped (each result is written as soon as it is computed).

Cache layout. One file ``<cache_dir>/<key>.pt`` per configuration, ``key = config_key(config, namespace)``:
the first 32 hex digits of the SHA-256 of the canonical JSON of ``{"config": config, "namespace": namespace}``
(sorted keys, no whitespace), so it is stable across dict orderings, processes and machines. Change
``namespace`` (e.g. ``"ch05-v2"``) whenever ``fn`` changes, and give different functions sharing a directory
different namespaces: the key knows nothing about ``fn``'s code. A file is::

    magic b"LMCNBSW1" | SHA-256 of payload (32 bytes) | payload length (8 bytes, little-endian) | payload

where the payload is ``torch.save({"config": canonical JSON (with the namespace), "result": result})``. Files are
written atomically (temporary file in the same directory, ``fsync``, ``os.replace``), so a reader sees either
the old file or the complete new one. A file that is truncated, corrupted (checksum), unreadable or stored for
another configuration is never returned: :class:`CorruptCacheWarning` is issued and the result is recomputed
and the file overwritten. Results are loaded with ``torch.load(weights_only=True, map_location="cpu")``: they
must be tensors and plain Python values (dict, list, tuple, str, int, float, bool, None), which is checked
before anything is written (``TypeError`` otherwise), and cached tensors come back on the CPU.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import profiles
from .._validate import check_bool

__all__ = ["CorruptCacheWarning", "config_key", "expand_grid", "run_grid"]

MAGIC = b"LMCNBSW1"
_HEADER = struct.Struct("<8s32sQ")  # magic, sha256(payload), len(payload)
KEY_HEX_DIGITS = 32
TMP_PREFIX = ".tmp-"


class CorruptCacheWarning(UserWarning):
    """A cache file could not be trusted (truncated, bad checksum, unreadable, other config); it is recomputed."""


class _Corrupt(Exception):
    """Internal: why a cache file was rejected."""


# ----------------------------------------------------------------------------------------------------------
# Configurations and keys
# ----------------------------------------------------------------------------------------------------------

def _check_json(value: Any, path: str) -> None:
    """Require a JSON value: dicts with ``str`` keys, lists/tuples, ``str``, ``int``, finite ``float``,
    ``bool`` and ``None``; the error names the offending entry by its path (e.g. ``config['opt']['lr']``)."""
    if isinstance(value, Mapping):
        if not isinstance(value, dict):
            raise TypeError(f"{path} must be a dict, got {type(value).__name__}")
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{path} has a non-string key {k!r} ({type(k).__name__}); JSON keys are strings")
            _check_json(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} = {value!r} cannot be represented in JSON")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise TypeError(f"{path} has type {type(value).__name__}, which is not JSON-serialisable "
                        "(use str, int, float, bool, None, lists and dicts with string keys)")


def _canonical(config: Any, namespace: str) -> str:
    """Canonical JSON of ``{"config": config, "namespace": namespace}`` (validated, sorted keys, compact)."""
    if not isinstance(config, dict):
        raise TypeError(f"a configuration must be a dict, got {type(config).__name__}")
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    _check_json(config, "config")
    return json.dumps({"config": config, "namespace": namespace}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def config_key(config: dict[str, Any], namespace: str = "") -> str:
    """Stable key of a configuration: 32 hex digits of SHA-256 of its canonical JSON (with ``namespace``).

    Independent of dict ordering (at every depth), of the process and of the machine. Tuples serialise as
    lists, so ``(1, 2)`` and ``[1, 2]`` share a key; ``1``, ``1.0`` and ``True`` do not.
    Raises ``TypeError`` for values JSON cannot hold and ``ValueError`` for NaN or infinite floats.
    """
    return _key(_canonical(config, namespace))


def _key(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:KEY_HEX_DIGITS]


def expand_grid(grid: dict[str, Sequence[Any]] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configurations of a grid, in order.

    Args:
        grid: a list of configuration dicts (taken as they are), or a dict mapping each parameter name to a
            list of values, expanded to the cartesian product with the **last** name varying fastest
            (``{"m": [64, 128], "seed": [0, 1]}`` gives m=64/seed=0, m=64/seed=1, m=128/seed=0, ...). A value
            that is itself a list must be wrapped: ``{"widths": [[64, 128]]}``.

    Returns:
        list of dicts (new dicts for a cartesian grid; the given dicts for a list).
    """
    if isinstance(grid, dict):
        names = list(grid)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"grid keys must be parameter names (str), got {name!r}")
            values = grid[name]
            if not isinstance(values, (list, tuple)):
                raise TypeError(f"grid[{name!r}] must be a list of values, got {type(values).__name__}")
            if len(values) == 0:
                raise ValueError(f"grid[{name!r}] is an empty list, so the grid would be empty")
        return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    if isinstance(grid, (list, tuple)):
        for i, config in enumerate(grid):
            if not isinstance(config, dict):
                raise TypeError(f"grid[{i}] must be a configuration dict, got {type(config).__name__}")
        return list(grid)
    raise TypeError(f"grid must be a list of dicts or a dict of lists, got {type(grid).__name__}")


# ----------------------------------------------------------------------------------------------------------
# Cache files
# ----------------------------------------------------------------------------------------------------------

def _encode(canonical: str, result: Any) -> bytes:
    """The full file content for ``result``; ``TypeError`` if ``torch.load(weights_only=True)`` refuses it."""
    buffer = io.BytesIO()
    torch.save({"config": canonical, "result": result}, buffer)
    payload = buffer.getvalue()
    try:
        torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as err:
        raise TypeError(f"the result for {canonical} cannot be cached: torch.load(weights_only=True) refuses "
                        f"it ({type(err).__name__}). Return tensors and plain Python values (dict, list, "
                        "tuple, str, int, float, bool, None), or run without cache_dir.") from err
    return _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload)) + payload


def _decode(data: bytes, canonical: str) -> Any:
    """The result stored in ``data``; raises :class:`_Corrupt` with the reason if it cannot be trusted."""
    if len(data) < _HEADER.size:
        raise _Corrupt(f"truncated header ({len(data)} bytes)")
    magic, digest, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _Corrupt("not an lmcnb.sweep cache file (bad magic)")
    payload = data[_HEADER.size:]
    if len(payload) != length:
        raise _Corrupt(f"payload has {len(payload)} bytes, header says {length} (truncated or torn write)")
    if hashlib.sha256(payload).digest() != digest:
        raise _Corrupt("checksum mismatch")
    try:
        stored = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as err:  # a valid checksum over an unloadable payload: written by something else
        raise _Corrupt(f"payload does not load ({type(err).__name__}: {err})") from err
    if not isinstance(stored, dict) or stored.get("config") is None:
        raise _Corrupt("payload has no configuration record")
    if stored["config"] != canonical:
        raise _Corrupt(f"stored for another configuration ({stored['config']})")
    return stored["result"]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same directory, fsync, ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_MISSING = object()


def _lookup(path: Path, canonical: str) -> Any:
    """The cached result at ``path``, or ``_MISSING`` (no file, or a rejected file after a warning)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _MISSING
    try:
        return _decode(data, canonical)
    except _Corrupt as reason:
        warnings.warn(f"cache file {path} rejected ({reason}); recomputing and overwriting it",
                      CorruptCacheWarning, stacklevel=4)  # the caller of run_grid
        return _MISSING


# ----------------------------------------------------------------------------------------------------------
# Running a grid
# ----------------------------------------------------------------------------------------------------------

#: Environment variable naming the cache directory of headless paper-scale runs (``tools/run_chapters.py``
#: sets it; ``make outputs`` removes it, so stored outputs are always recomputed).
CACHE_ENV = "LMCNB_CACHE_DIR"


def default_cache_dir() -> Path | None:
    """``$LMCNB_CACHE_DIR`` as a path when it is set and non-empty, else ``None`` (no cache).

    Chapters pass ``cache_dir=sweep.default_cache_dir()`` to :func:`run_grid`, so the same cell recomputes in
    CI and in the book's nbval runs, and resumes from the cache in a headless paper-scale run.
    """
    env = os.environ.get(CACHE_ENV, "")
    return Path(env) if env.strip() else None


def run_grid(fn: Callable[..., Any], grid: dict[str, Sequence[Any]] | Sequence[dict[str, Any]],
             cache_dir: str | os.PathLike[str] | None = None, namespace: str = "",
             progress: bool = False) -> list[tuple[dict[str, Any], Any]]:
    """Run ``fn(**config)`` for every configuration of ``grid``; optionally cache each result on disk.

    Args:
        fn: the experiment; called with each configuration's entries as keyword arguments.
        grid: list of configuration dicts, or dict of lists expanded as a cartesian product (see
            :func:`expand_grid`). Every configuration must be JSON-serialisable (checked up front, with or
            without a cache, so behaviour does not depend on caching): ``TypeError`` / ``ValueError`` otherwise.
        cache_dir: directory of the cache (created if needed); ``None`` (default) disables caching.
        namespace: version string mixed into every key (see the module docstring); change it when ``fn``
            changes.
        progress: wrap the loop in :func:`lmcnb.profiles.progress` (a tqdm bar in the paper profile only).

    Returns:
        ``[(config, result), ...]`` in grid order. A cache hit returns the stored result without calling
        ``fn``, with tensors on the CPU; a corrupt file warns (:class:`CorruptCacheWarning`) and is recomputed.
        If ``fn`` raises, the exception propagates and the results already cached stay on disk, so rerunning
        computes only the remaining configurations.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_bool("progress", progress)
    configs = expand_grid(grid)
    canonicals = [_canonical(config, namespace) for config in configs]
    directory = None
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a path or None, got {type(cache_dir).__name__}")
        directory = Path(cache_dir)
        directory.mkdir(parents=True, exist_ok=True)
    items: Any = list(zip(configs, canonicals))
    if progress:
        items = profiles.progress(items, total=len(configs), desc="grid")
    results = []
    for config, canonical in items:
        results.append((config, _run_one(fn, config, canonical, directory)))
    return results


def _run_one(fn: Callable[..., Any], config: dict[str, Any], canonical: str, directory: Path | None) -> Any:
    """One configuration: cache hit, or compute (and store when caching)."""
    if directory is None:
        return fn(**config)
    path = directory / f"{_key(canonical)}.pt"
    cached = _lookup(path, canonical)
    if cached is not _MISSING:
        return cached
    result = fn(**config)
    _write_atomic(path, _encode(canonical, result))
    return result
