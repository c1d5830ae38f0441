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

Sweeps on an executor (many processes, a Dask cluster, SLURM, Ray). ``run_grid(..., executor=ex)`` takes any
``concurrent.futures``-style executor: an object whose ``submit(f, *args)`` returns a future with ``result()``
(``cancel()`` is used when the future has it). The parent looks every configuration up in the cache first and
submits one task per miss; the task itself looks the cache up again (another worker, or an earlier run, may have
finished it meanwhile), computes, and writes its file atomically, so workers on different machines share one
cache directory (on a shared file system) and a rerun skips whatever any worker finished. A worker that dies
mid-task leaves no ``<key>.pt`` (at most a ``.tmp-*`` file, which is never read); the engine retries the task.
Results are gathered in grid order and equal those of the serial path. ``fn`` travels to the workers pickled
(by value with ``cloudpickle`` when it is installed, so functions defined in a notebook work; by reference with
:mod:`pickle` otherwise), and ``lmcnb`` must be importable on the workers. No scheduler lives here:

- processes on one machine: ``concurrent.futures.ProcessPoolExecutor(max_workers=4,
  mp_context=multiprocessing.get_context("spawn"))``;
- Dask distributed: ``distributed.Client("tcp://scheduler:8786").get_executor()`` (or ``Client(LocalCluster())``);
  a killed worker's task is retried on another worker (``distributed.scheduler.allowed-failures``, default 3);
- submitit (SLURM), one job per configuration::

      import submitit
      ex = submitit.AutoExecutor(folder="runs/slurm-logs")
      ex.update_parameters(slurm_partition="gpu", gpus_per_node=1, timeout_min=120, cpus_per_task=8)
      sweep.run_grid(fn, grid, cache_dir="/shared/lmcnb-cache", namespace="ch05-v1", executor=ex)

- Ray, a few-line adapter (``ray.get`` is the future's ``result``)::

      import ray

      class RayFuture:
          def __init__(self, ref):
              self.ref = ref
          def result(self):
              return ray.get(self.ref)

      class RayExecutor:
          def __init__(self, **options):                   # e.g. num_gpus=1
              self.options = options
          def submit(self, f, *args):
              return RayFuture(ray.remote(f).options(**self.options).remote(*args))

      sweep.run_grid(fn, grid, cache_dir="/shared/lmcnb-cache", executor=RayExecutor(num_gpus=1))

The engine of headless runs is chosen by ``$LMCNB_ENGINE`` (``make paper ENGINE=...``), read by
:func:`default_executor`: ``serial`` (or unset: no executor), ``processes:N`` or ``dask://HOST:PORT``.
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import re
import struct
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from . import profiles, runlog
from .._validate import check_bool

__all__ = ["RUNNER", "CorruptCacheWarning", "Engine", "config_key", "default_cache_dir", "default_executor",
           "dataclass_key", "expand_grid", "parse_engine", "run_grid", "runner_settings", "tensor_digest"]

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


def tensor_digest(t: torch.Tensor) -> str:
    """Content key of a tensor for a configuration: ``"<dtype>[<shape>]:<SHA-256 of its bytes>"`` (read on the
    CPU), e.g. a teacher, a training set or a λ grid that a sweep's function receives bound (``functools.partial``)
    rather than in its JSON configuration. Equal for equal contents on any device; any changed entry, dtype or
    shape changes it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"tensor_digest needs a torch.Tensor, got {type(t).__name__}")
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    digest = hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()
    return f"{str(flat.dtype).removeprefix('torch.')}{list(t.shape)}:{digest}"


def dataclass_key(obj: Any) -> dict[str, Any] | str:
    """A configuration object as JSON for a sweep key: a dataclass as ``{"type": its class name, field: value}``
    (a tensor field by :func:`tensor_digest`, a nested dataclass recursively, any other non-JSON value by its
    ``repr``); anything else by its ``repr``. Two schedules with equal fields share a key."""
    import dataclasses

    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return repr(obj)
    out: dict[str, Any] = {"type": type(obj).__name__}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, torch.Tensor):
            out[f.name] = tensor_digest(v)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            out[f.name] = dataclass_key(v)
        elif v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)):
            out[f.name] = v
        else:
            out[f.name] = repr(v)
    return out


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


class _Runner:
    """Type of :data:`RUNNER` (a singleton sentinel)."""

    _instance: _Runner | None = None

    def __new__(cls) -> _Runner:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "sweep.RUNNER"

    def __reduce__(self) -> str:  # pickles as the module attribute, so it stays the singleton in workers
        return "RUNNER"


#: Default of the ``cache_dir`` and ``executor`` arguments of the chapters' sweep pipelines (e.g.
#: ``TeacherStudent.barrier_sweep``): "whatever the headless runner says", resolved by :func:`runner_settings` to
#: :func:`default_cache_dir` and :func:`default_executor`. Under ``make paper`` (``tools/run_chapters.py`` sets
#: ``$LMCNB_CACHE_DIR`` and ``$LMCNB_ENGINE``) the sweeps are then cached and resumable without any argument in the
#: notebook; in CI, the quick profile and tests (variables unset) they compute everything, here, as before.
#: Pass ``cache_dir=None`` / ``executor=None`` explicitly for no cache / this process whatever the environment.
RUNNER = _Runner()


def runner_settings(cache_dir: Any = RUNNER, executor: Any = RUNNER) -> tuple[Path | str | os.PathLike[str] | None,
                                                                                Any]:
    """``(cache_dir, executor)`` with each :data:`RUNNER` replaced by the runner's setting:
    :func:`default_cache_dir` (``$LMCNB_CACHE_DIR``, else None) and :func:`default_executor` (``$LMCNB_ENGINE``,
    else None); any other value is returned as given (run_grid validates it)."""
    if cache_dir is RUNNER:
        cache_dir = default_cache_dir()
    if executor is RUNNER:
        executor = default_executor()
    return cache_dir, executor


def run_grid(fn: Callable[..., Any], grid: dict[str, Sequence[Any]] | Sequence[dict[str, Any]],
             cache_dir: str | os.PathLike[str] | None = None, namespace: str = "",
             progress: bool = True, executor: Any = None) -> list[tuple[dict[str, Any], Any]]:
    """Run ``fn(**config)`` for every configuration of ``grid``; optionally cache each result on disk.

    Args:
        fn: the experiment; called with each configuration's entries as keyword arguments.
        grid: list of configuration dicts, or dict of lists expanded as a cartesian product (see
            :func:`expand_grid`). Every configuration must be JSON-serialisable (checked up front, with or
            without a cache, so behaviour does not depend on caching): ``TypeError`` / ``ValueError`` otherwise.
        cache_dir: directory of the cache (created if needed); ``None`` (default) disables caching. With an
            executor on several machines it must be a directory every worker sees at the same path.
        namespace: version string mixed into every key (see the module docstring); change it when ``fn``
            changes.
        progress: show a progress bar over the configurations (default), through
            :func:`lmcnb.profiles.progress`: a tqdm bar on stderr in the paper and full profiles only, never in
            quick (nbval compares outputs); its postfix counts the cache hits and the configurations computed.
        executor: ``None`` (default) runs serially in this process. Otherwise a ``concurrent.futures``-style
            executor (``submit(f, *args)`` returning a future with ``result()``; see the module docstring for
            Dask, submitit and Ray): cache hits are read here, every miss is one submitted task that checks the
            cache again, computes and writes its file. ``fn`` must be picklable (``TypeError`` otherwise).

    Returns:
        ``[(config, result), ...]`` in grid order, the same with and without an executor. A cache hit returns
        the stored result without calling ``fn``, with tensors on the CPU; a corrupt file warns
        (:class:`CorruptCacheWarning`) and is recomputed. If ``fn`` raises, the exception propagates and the
        results already cached stay on disk, so rerunning computes only the remaining configurations. With an
        executor the first failing configuration (in grid order) is raised once every other task has finished
        or been cancelled; a note on the exception names the configuration and counts the others.

    Under ``make paper`` (``$LMCNB_RUNLOG_DIR`` set) every call files one record in the run log
    (:mod:`lmcnb.infra.runlog`): ``namespace``, ``configs``, ``hits`` (results read from the cache, here or by
    a worker), ``misses`` (configurations computed), ``cache`` (whether one was used), ``engine`` and ``seconds``,
    and ``completed`` False when it stopped on an exception (the counts then cover what had finished).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_bool("progress", progress)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must have a submit(fn, *args) method returning a future (a "
                        f"concurrent.futures.Executor, Client.get_executor(), submitit.AutoExecutor, ...); "
                        f"got {type(executor).__name__}")
    configs = expand_grid(grid)
    canonicals = [_canonical(config, namespace) for config in configs]
    directory = None
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a path or None, got {type(cache_dir).__name__}")
        directory = Path(cache_dir)
        directory.mkdir(parents=True, exist_ok=True)
    stats = _Stats(namespace, len(configs), directory is not None, executor)
    try:
        if executor is not None:
            return _run_on_executor(fn, configs, canonicals, directory, progress, executor, stats)
        items: Any = list(zip(configs, canonicals))
        if progress:
            items = profiles.progress(items, total=len(configs), desc=namespace or "grid")
        results = []
        for config, canonical in items:
            result, hit = _run_one(fn, config, canonical, directory)
            results.append((config, result))
            stats.count(hit, items)
        stats.completed = True
        return results
    finally:
        stats.file()


class _Stats:
    """Cache hits and misses of one :func:`run_grid` call, shown on its progress bar and filed in the run log."""

    def __init__(self, namespace: str, configs: int, cache: bool, executor: Any) -> None:
        self.namespace, self.configs, self.cache = namespace, configs, cache
        self.engine = "serial" if executor is None else type(executor).__name__
        self.hits = self.misses = 0
        self.completed = False
        self.start = time.perf_counter()

    def count(self, hit: bool, bar: Any = None) -> None:
        """One finished configuration (``hit``: read from the cache); update ``bar``'s postfix if it has one."""
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        set_postfix = getattr(bar, "set_postfix", None)
        if callable(set_postfix):
            set_postfix(cached=self.hits, computed=self.misses, refresh=False)

    def file(self) -> None:
        runlog.log("sweep", namespace=self.namespace, configs=self.configs, hits=self.hits, misses=self.misses,
                   cache=self.cache, engine=self.engine, completed=self.completed,
                   seconds=round(time.perf_counter() - self.start, 3))


def _run_one(fn: Callable[..., Any], config: dict[str, Any], canonical: str,
             directory: Path | None) -> tuple[Any, bool]:
    """One configuration: ``(result, True)`` for a cache hit, or ``(result, False)`` computed (and stored when
    caching)."""
    if directory is None:
        return fn(**config), False
    path = directory / f"{_key(canonical)}.pt"
    cached = _lookup(path, canonical)
    if cached is not _MISSING:
        return cached, True
    result = fn(**config)
    _write_atomic(path, _encode(canonical, result))
    return result, False


# ----------------------------------------------------------------------------------------------------------
# Executors
# ----------------------------------------------------------------------------------------------------------

def _pickle_fn(fn: Callable[..., Any]) -> bytes:
    """``fn`` as bytes for the workers: cloudpickle (by value) when installed, else pickle (by reference)."""
    try:
        import cloudpickle  # optional; installed with dask
    except ImportError:
        dumps, how = pickle.dumps, "pickle (install cloudpickle to send notebook functions and lambdas)"
    else:
        dumps, how = cloudpickle.dumps, "cloudpickle"
    try:
        return dumps(fn)
    except Exception as err:
        raise TypeError(f"fn {getattr(fn, '__qualname__', type(fn).__name__)!r} cannot be sent to the executor's "
                        f"workers: {how} refuses it ({type(err).__name__}: {err}). Define it at the top level of "
                        "a module (or in the notebook, with cloudpickle) and capture only picklable values, "
                        "or run without an executor.") from err


def _remote_one(fn_bytes: bytes, config: dict[str, Any], canonical: str,
                directory: str | None) -> tuple[Any, bool]:
    """The task a worker runs: unpickle ``fn``, then look up / compute / store as :func:`_run_one` (returns
    ``(result, hit)``)."""
    fn = pickle.loads(fn_bytes)
    return _run_one(fn, config, canonical, None if directory is None else Path(directory))


def _run_on_executor(fn: Callable[..., Any], configs: list[dict[str, Any]], canonicals: list[str],
                     directory: Path | None, progress: bool, executor: Any,
                     stats: _Stats) -> list[tuple[dict[str, Any], Any]]:
    """Cache hits here, one submitted task per miss, results gathered in grid order."""
    results: list[Any] = [_MISSING] * len(configs)
    if directory is not None:
        for i, canonical in enumerate(canonicals):
            results[i] = _lookup(directory / f"{_key(canonical)}.pt", canonical)
    misses = [i for i, r in enumerate(results) if r is _MISSING]
    stats.hits = len(configs) - len(misses)
    futures: dict[int, Any] = {}
    if misses:
        fn_bytes = _pickle_fn(fn)
        where = None if directory is None else str(directory)
        try:
            for i in misses:
                futures[i] = executor.submit(_remote_one, fn_bytes, configs[i], canonicals[i], where)
        except BaseException:
            _cancel(futures.values())
            raise
    try:
        pending = list(futures.values())
        if pending and all(isinstance(f, cf.Future) for f in pending):
            done, _ = cf.wait(pending, return_when=cf.FIRST_EXCEPTION)  # hear of a failure before the rest ends
            for i in misses:
                f = futures[i]
                if f in done and not f.cancelled() and f.exception() is not None:
                    _raise_after_failure(i, futures, configs)
        order: Any = misses
        if progress:
            order = profiles.progress(misses, total=len(configs), initial=stats.hits,
                                      desc=stats.namespace or "grid")
        for i in order:
            try:
                results[i], hit = futures[i].result()
            except Exception:
                _raise_after_failure(i, futures, configs)
            stats.count(hit, order)
    except BaseException:  # KeyboardInterrupt while waiting, or a failure: leave nothing queued
        _cancel(futures.values())
        raise
    stats.completed = True
    return list(zip(configs, results))


def _cancel(futures: Any) -> int:
    """Cancel what has not finished where the future allows it (futures without ``cancel`` are left alone);
    return how many were cancelled."""
    cancelled = 0
    for future in futures:
        cancel = getattr(future, "cancel", None)
        if callable(cancel):
            with contextlib.suppress(Exception):
                cancelled += bool(cancel())
    return cancelled


def _raise_after_failure(failed: int, futures: dict[int, Any], configs: list[dict[str, Any]]) -> None:
    """Configuration ``failed`` raised: cancel what can be cancelled, wait for every other task (their results
    are cached when caching), then raise the failure of the first configuration in grid order with a note
    naming it and saying what became of the others."""
    cancelled = {i for i, f in futures.items() if i != failed and _cancel([f])}
    errors: dict[int, BaseException] = {}
    finished = 0
    for i, future in futures.items():
        if i in cancelled:
            continue
        try:
            future.result()
            finished += 1
        except cf.CancelledError:
            cancelled.add(i)
        except Exception as err:
            errors[i] = err
    first = min(errors)
    err = errors[first]
    others = [f"#{i} {configs[i]} ({type(e).__name__}: {e})" for i, e in sorted(errors.items()) if i != first]
    err.add_note(f"run_grid: configuration #{first} {configs[first]} raised this; of the {len(futures)} submitted "
                 f"tasks {finished} finished, {len(cancelled)} were cancelled and {len(errors)} failed"
                 + (f" (also {'; '.join(others)})" if others else "")
                 + ". With a cache_dir, rerunning computes only what is missing.")
    raise err


# ----------------------------------------------------------------------------------------------------------
# The engine of headless runs ($LMCNB_ENGINE, `make paper ENGINE=...`)
# ----------------------------------------------------------------------------------------------------------

#: Environment variable naming the engine of headless runs (``tools/run_chapters.py --engine`` sets it).
ENGINE_ENV = "LMCNB_ENGINE"

_ENGINE_FORMS = "serial, processes:N (N >= 1 worker processes) or dask://HOST:PORT (a Dask scheduler)"


class Engine(NamedTuple):
    """A parsed engine: ``kind`` is ``"serial"``, ``"processes"`` (``workers`` processes) or ``"dask"``
    (scheduler ``address``, e.g. ``"tcp://10.0.0.1:8786"``)."""

    kind: str
    workers: int | None = None
    address: str | None = None


def parse_engine(spec: str) -> Engine:
    """Parse an engine string: ``"serial"`` (or empty), ``"processes:N"`` or ``"dask://HOST:PORT"``.

    Raises ``TypeError`` for a non-string and ``ValueError``, naming the value and the accepted forms, for
    anything else (``processes:0``, ``dask://host`` without a port, ``ray``, ...).
    """
    if not isinstance(spec, str):
        raise TypeError(f"an engine must be a str ({_ENGINE_FORMS}), got {type(spec).__name__}")
    text = spec.strip()
    if text in ("", "serial"):
        return Engine("serial")
    m = re.fullmatch(r"processes:(\d+)", text)
    if m:
        workers = int(m.group(1))
        if workers < 1:
            raise ValueError(f"engine {spec!r}: processes:N needs N >= 1 worker processes")
        return Engine("processes", workers=workers)
    m = re.fullmatch(r"dask://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d+)", text)
    if m:
        port = int(m.group(2))
        if not 1 <= port <= 65535:
            raise ValueError(f"engine {spec!r}: port {port} is not in 1..65535")
        return Engine("dask", address=f"tcp://{m.group(1)}:{port}")
    raise ValueError(f"unknown engine {spec!r}; expected {_ENGINE_FORMS}")


_EXECUTORS: dict[Engine, Any] = {}


def default_executor() -> Any:
    """The executor named by ``$LMCNB_ENGINE``, for ``run_grid(..., executor=sweep.default_executor())``.

    ``None`` (serial) when the variable is unset, empty or ``serial``, so CI and the book's nbval runs stay
    serial; ``processes:N`` gives a ``ProcessPoolExecutor`` of ``N`` spawned processes; ``dask://HOST:PORT``
    connects a ``distributed.Client`` to that scheduler and returns its ``get_executor()`` (``distributed``
    must be installed). One executor per engine per process: later calls return the same object.
    Raises ``ValueError`` naming ``$LMCNB_ENGINE`` for a bad value and ``ImportError`` (what to install) when
    ``distributed`` is missing.
    """
    spec = os.environ.get(ENGINE_ENV, "")
    try:
        engine = parse_engine(spec)
    except ValueError as err:
        raise ValueError(f"${ENGINE_ENV}: {err}") from None
    if engine.kind == "serial":
        return None
    if engine not in _EXECUTORS:
        if engine.kind == "processes":
            import multiprocessing

            executor = cf.ProcessPoolExecutor(max_workers=engine.workers,
                                              mp_context=multiprocessing.get_context("spawn"))
            atexit.register(executor.shutdown, wait=False, cancel_futures=True)
        else:
            try:
                from distributed import Client
            except ImportError as err:
                raise ImportError(f"${ENGINE_ENV}={spec} needs Dask distributed: pip install distributed "
                                  "(the pinned version is in requirements.txt)") from err
            client = Client(engine.address)
            executor = client.get_executor()
        _EXECUTORS[engine] = executor
    return _EXECUTORS[engine]
