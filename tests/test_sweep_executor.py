"""``run_grid`` on executors: a process pool and a real Dask ``LocalCluster`` (worker processes) give the serial
results; a Dask worker killed mid-task is retried and nothing is lost or corrupted; a failing configuration is
raised after the others finished, with a note; interrupted runs resume losslessly; the engine of headless runs
(``$LMCNB_ENGINE``, ``tools/run_chapters.py --engine``, ``make paper ENGINE=``) parses or fails clearly.

Every experiment here counts its calls with one file per call in a folder (workers are other processes), so
"a rerun is all cache hits" is checked by the number of files, not by trusting the cache.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import re
import sys
import threading
import uuid
import warnings
from pathlib import Path

import pytest
import torch

from lmcnb import sweep
from lmcnb.sweep import CorruptCacheWarning, run_grid

ROOT = Path(__file__).resolve().parents[1]
GRID = {"m": [2, 3], "seed": [0, 1, 2]}
N = 6


class Experiment:
    """Cheap torch work; one file per call in ``calls`` ("<m>-<seed>-<uuid>"). ``kill`` = (m, seed): the first
    call for that configuration kills its own process mid-task (``os._exit``), once (marker file ``killed``);
    ``fail`` = seeds that raise ``ValueError``."""

    def __init__(self, calls: Path, kill: tuple[int, int] | None = None, fail: tuple[int, ...] = ()):
        self.calls, self.kill, self.fail = str(calls), kill, fail

    def __call__(self, m: int, seed: int) -> dict:
        Path(self.calls, f"{m}-{seed}-{uuid.uuid4().hex}").touch()
        if seed in self.fail:
            raise ValueError(f"seed {seed} fails")
        g = torch.Generator().manual_seed(1000 * m + seed)
        x = torch.randn(m, 4, generator=g)
        if self.kill == (m, seed):
            try:
                fd = os.open(Path(self.calls).parent / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)  # the worker process dies in the middle of the task
        return {"gram": x @ x.T, "norm": float(x.norm()), "m": m, "pair": (seed, None)}


def calls(folder: Path) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[0] for p in folder.iterdir())


def assert_same(out1, out2) -> None:
    assert [c for c, _ in out1] == [c for c, _ in out2]
    for (_, r1), (_, r2) in zip(out1, out2):
        assert torch.equal(r1["gram"], r2["gram"]) and r1["gram"].dtype == r2["gram"].dtype
        assert (r1["norm"], r1["m"], tuple(r1["pair"])) == (r2["norm"], r2["m"], tuple(r2["pair"]))


def assert_cache_intact(cache: Path, n: int) -> None:
    """Exactly ``n`` files, no temporary (partial) file, and every file decodes for its configuration."""
    names = sorted(os.listdir(cache)) if cache.exists() else []
    assert not [x for x in names if x.startswith(sweep.TMP_PREFIX)], names
    assert len(names) == n and all(x.endswith(".pt") for x in names), names
    canonicals = {sweep._key(c): c for c in (sweep._canonical(cfg, "") for cfg in sweep.expand_grid(GRID))}
    for name in names:
        sweep._decode((cache / name).read_bytes(), canonicals[name[:-3]])  # raises _Corrupt if not intact


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "calls").mkdir()
    return tmp_path / "calls", tmp_path / "cache"


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the grid run serially without a cache."""
    return run_grid(Experiment(tmp_path_factory.mktemp("serial-calls")), GRID)


@pytest.fixture(scope="module")
def pool():
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.fixture(scope="module")
def cluster():
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=40) as lc:
            with distributed.Client(lc) as client:
                yield lc, client


# ----------------------------------------------------------------------------------------------------------
# Executors give the serial results, through the shared cache
# ----------------------------------------------------------------------------------------------------------

def test_process_pool_gives_the_serial_results_and_fills_the_cache(pool, serial, folders):
    calls_dir, cache = folders
    fn = Experiment(calls_dir)
    assert_same(run_grid(fn, GRID, executor=pool), serial)  # no cache: every configuration computed
    assert len(calls(calls_dir)) == N
    out = run_grid(fn, GRID, cache_dir=cache, executor=pool)
    assert_same(out, serial)
    assert len(calls(calls_dir)) == 2 * N
    assert_cache_intact(cache, N)
    again = run_grid(fn, GRID, cache_dir=cache, executor=pool)  # all hits, read in the parent
    assert_same(again, serial)
    assert len(calls(calls_dir)) == 2 * N
    assert_same(run_grid(fn, GRID, cache_dir=cache), serial)  # the serial path reads the workers' files


def test_the_parent_submits_only_the_misses(folders, serial):
    calls_dir, cache = folders
    run_grid(Experiment(calls_dir), sweep.expand_grid(GRID)[:2], cache_dir=cache)  # two done serially

    class Recording(cf.ThreadPoolExecutor):
        submitted: list[dict] = []

        def submit(self, f, *args, **kwargs):
            self.submitted.append(args[1])
            return super().submit(f, *args, **kwargs)

    with Recording(max_workers=2) as ex:
        out = run_grid(Experiment(calls_dir), GRID, cache_dir=cache, executor=ex)
    assert Recording.submitted == sweep.expand_grid(GRID)[2:]
    assert_same(out, serial)


def test_a_corrupt_cache_file_is_recomputed_on_the_executor(folders, serial):
    calls_dir, cache = folders
    run_grid(Experiment(calls_dir), GRID, cache_dir=cache)
    victim = cache / f"{sweep.config_key({'m': 3, 'seed': 1})}.pt"
    victim.write_bytes(victim.read_bytes()[:50])  # truncated
    with cf.ThreadPoolExecutor(max_workers=2) as ex, pytest.warns(CorruptCacheWarning, match="truncated"):
        out = run_grid(Experiment(calls_dir), GRID, cache_dir=cache, executor=ex)
    assert_same(out, serial)
    assert calls(calls_dir).count("3-1") == 2 and len(calls(calls_dir)) == N + 1
    assert_cache_intact(cache, N)


def test_dask_local_cluster_gives_the_serial_results(cluster, serial, folders):
    _, client = cluster
    calls_dir, cache = folders
    out = run_grid(Experiment(calls_dir), GRID, cache_dir=cache, executor=client.get_executor())
    assert_same(out, serial)
    assert len(calls(calls_dir)) == N
    assert_cache_intact(cache, N)


def test_a_dask_worker_killed_mid_task_loses_nothing(cluster, serial, folders, monkeypatch):
    lc, _ = cluster
    calls_dir, cache = folders
    host_port = lc.scheduler_address.removeprefix("tcp://")
    monkeypatch.setenv(sweep.ENGINE_ENV, f"dask://{host_port}")
    monkeypatch.setattr(sweep, "_EXECUTORS", {})
    executor = sweep.default_executor()  # a second client, connected through $LMCNB_ENGINE
    try:
        assert sweep.default_executor() is executor
        fn = Experiment(calls_dir, kill=(3, 0))
        with warnings.catch_warnings():
            warnings.simplefilter("error", CorruptCacheWarning)
            out = run_grid(fn, GRID, cache_dir=cache, executor=executor)
        assert (calls_dir.parent / "killed").exists(), "the worker was not killed: the test proves nothing"
        assert_same(out, serial)
        made = calls(calls_dir)
        assert made.count("3-0") == 2 and len(made) == N + 1, made  # the killed task ran again, once
        assert_cache_intact(cache, N)
        run_grid(fn, GRID, cache_dir=cache, executor=executor)  # rerun: all cache hits
        assert len(calls(calls_dir)) == N + 1
        executor._client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    finally:
        executor._client.close()


# ----------------------------------------------------------------------------------------------------------
# Failures, interruptions, bad input
# ----------------------------------------------------------------------------------------------------------

def test_a_failure_is_raised_after_the_others_finished_and_a_rerun_computes_only_it(pool, serial, folders):
    calls_dir, cache = folders
    with pytest.raises(ValueError, match="seed 1 fails") as info:
        run_grid(Experiment(calls_dir, fail=(1,)), GRID, cache_dir=cache, executor=pool)
    (note,) = info.value.__notes__
    assert "configuration #1 {'m': 2, 'seed': 1}" in note  # the first failure in grid order
    # how many tasks were still queued when the failure was seen depends on timing; the counts add up, #0 (handed
    # to a worker with #1) always finishes, and "after the others finished" means no started task is still in
    # flight when the error is raised: every call that began (one file each) has finished or failed
    m = re.search(r"of the 6 submitted tasks (\d) finished, (\d) were cancelled and (\d) failed", note)
    finished, cancelled, failed = map(int, m.groups())
    assert finished + cancelled + failed == N and failed in (1, 2) and finished >= 1
    assert len(calls(calls_dir)) == finished + failed
    if failed == 2:
        assert "also #4 {'m': 3, 'seed': 1} (ValueError: seed 1 fails)" in note
    assert_cache_intact(cache, finished)
    made = calls(calls_dir)
    out = run_grid(Experiment(calls_dir), GRID, cache_dir=cache, executor=pool)
    assert_same(out, serial)
    assert len(calls(calls_dir)) == len(made) + N - finished  # only what was not cached


class Manual:
    """An executor that runs only the first task at once (synchronously) and leaves the others pending."""

    def __init__(self):
        self.futures: list[cf.Future] = []

    def submit(self, f, *args):
        future = cf.Future()
        if not self.futures:
            try:
                future.set_result(f(*args))
            except Exception as err:
                future.set_exception(err)
        self.futures.append(future)
        return future


def fails_first(i: int) -> int:
    if i == 0:
        raise RuntimeError("first fails")
    return i


def test_tasks_not_started_are_cancelled_after_a_failure():
    ex = Manual()
    with pytest.raises(RuntimeError, match="first fails") as info:
        run_grid(fails_first, [{"i": 0}, {"i": 1}, {"i": 2}], executor=ex)
    assert "of the 3 submitted tasks 0 finished, 2 were cancelled and 1 failed" in info.value.__notes__[0]
    assert [f.cancelled() for f in ex.futures] == [False, True, True]


class ResultOnly:
    """A submitit-like executor: its futures have ``result()`` only (no ``cancel``, not concurrent.futures)."""

    def submit(self, f, *args):
        return type("Job", (), {"result": lambda _self: f(*args)})()


def test_futures_with_only_result_are_enough(folders, serial):
    calls_dir, cache = folders
    assert_same(run_grid(Experiment(calls_dir), GRID, cache_dir=cache, executor=ResultOnly()), serial)
    assert_cache_intact(cache, N)
    with pytest.raises(ValueError, match="seed 2 fails") as info:
        run_grid(Experiment(calls_dir, fail=(2,)), [{"m": 9, "seed": 2}, {"m": 9, "seed": 0}],
                 executor=ResultOnly())
    assert "2 submitted tasks 1 finished, 0 were cancelled and 1 failed" in info.value.__notes__[0]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_serial_run_resumes_losslessly(folders, serial, interrupt):
    calls_dir, cache = folders

    class Interrupted(Experiment):
        def __call__(self, m: int, seed: int) -> dict:
            if (m, seed) == (3, 0):
                raise interrupt("stopped")
            return super().__call__(m, seed)

    with pytest.raises(interrupt):
        run_grid(Interrupted(calls_dir), GRID, cache_dir=cache)
    assert calls(calls_dir) == ["2-0", "2-1", "2-2"]
    assert_cache_intact(cache, 3)
    out = run_grid(Experiment(calls_dir), GRID, cache_dir=cache)
    assert calls(calls_dir) == ["2-0", "2-1", "2-2", "3-0", "3-1", "3-2"]
    assert_same(out, serial)


def test_an_unpicklable_function_or_a_non_executor_is_refused(tmp_path):
    class Locked:
        def __init__(self):
            self.lock = threading.Lock()

        def __call__(self, x):
            return x

    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match="fn 'Locked' cannot be sent to the executor's workers.*lock"):
            run_grid(Locked(), {"x": [1]}, executor=ex)
        assert run_grid(Locked(), {"x": [1]}) == [({"x": 1}, 1)]  # serially it is fine
        # all cache hits: nothing is pickled or submitted
        run_grid(lambda x: x, {"x": [1]}, cache_dir=tmp_path)
        assert run_grid(Locked(), {"x": [1]}, cache_dir=tmp_path, executor=ex) == [({"x": 1}, 1)]
    with pytest.raises(TypeError, match="executor must have a submit"):
        run_grid(lambda x: x, {"x": [1]}, executor="dask")


def test_pickling_falls_back_to_pickle_without_cloudpickle(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import cloudpickle -> ImportError
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        with pytest.raises(TypeError, match="pickle .install cloudpickle"):
            run_grid(lambda x: x, {"x": [1]}, executor=ex)
        fn = Experiment(Path(os.devnull).parent)  # a module-level class pickles by reference
        assert run_grid(fn, {"m": [2], "seed": [5]}, executor=ex)[0][1]["m"] == 2


# ----------------------------------------------------------------------------------------------------------
# The engine of headless runs
# ----------------------------------------------------------------------------------------------------------

def test_parse_engine():
    assert sweep.parse_engine("serial") == sweep.Engine("serial")
    assert sweep.parse_engine("  ") == sweep.Engine("serial")
    assert sweep.parse_engine("processes:3") == sweep.Engine("processes", workers=3)
    assert sweep.parse_engine("dask://10.0.0.1:8786") == sweep.Engine("dask", address="tcp://10.0.0.1:8786")
    assert sweep.parse_engine("dask://node-7.cluster:9000").address == "tcp://node-7.cluster:9000"
    assert sweep.parse_engine("dask://[::1]:8786").address == "tcp://[::1]:8786"
    for bad, why in [("processes:0", "N >= 1"), ("processes", "unknown engine"), ("processes:x", "unknown"),
                     ("dask://host", "unknown engine"), ("dask://h:0", "not in 1..65535"),
                     ("dask://h:70000", "not in 1..65535"), ("ray", "expected serial, processes:N")]:
        with pytest.raises(ValueError, match=why):
            sweep.parse_engine(bad)
    with pytest.raises(TypeError, match="must be a str"):
        sweep.parse_engine(4)


def test_default_executor_reads_the_environment(monkeypatch):
    monkeypatch.setattr(sweep, "_EXECUTORS", {})
    monkeypatch.delenv(sweep.ENGINE_ENV, raising=False)
    assert sweep.default_executor() is None
    monkeypatch.setenv(sweep.ENGINE_ENV, "serial")
    assert sweep.default_executor() is None
    monkeypatch.setenv(sweep.ENGINE_ENV, "processes:3")
    ex = sweep.default_executor()
    try:
        assert isinstance(ex, cf.ProcessPoolExecutor) and ex._max_workers == 3
        assert sweep.default_executor() is ex
    finally:
        ex.shutdown()
    monkeypatch.setenv(sweep.ENGINE_ENV, "procs:2")
    with pytest.raises(ValueError, match=r"\$LMCNB_ENGINE: unknown engine 'procs:2'"):
        sweep.default_executor()
    monkeypatch.setenv(sweep.ENGINE_ENV, "dask://127.0.0.1:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match="needs Dask distributed: pip install distributed"):
        sweep.default_executor()


def test_run_chapters_passes_the_engine_to_the_kernels(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import run_chapters
    finally:
        sys.path.remove(str(ROOT / "tools"))
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb_path = tmp_path / "book" / "01_x.ipynb"
    nb_path.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), nb_path)
    seen = []
    monkeypatch.setattr(run_chapters, "execute", lambda nb, **kw: seen.append(kw["env"]) or (0.0, 1))
    monkeypatch.setenv(sweep.ENGINE_ENV, "processes:9")
    out = tmp_path / "out"
    out.mkdir()
    run_chapters.run_one(nb_path, out, out / "cache", "paper", -1, engine="dask://h:1")
    run_chapters.run_one(nb_path, out, out / "cache", "paper", -1)
    assert [env[sweep.ENGINE_ENV] for env in seen] == ["dask://h:1", "processes:9"]  # given, else inherited
    assert run_chapters.main(["--engine", "mpi:4", "--out", str(tmp_path / "runs"), str(nb_path)]) == 2
    assert "run_chapters: --engine: unknown engine 'mpi:4'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and len(seen) == 2  # refused before anything ran
    assert run_chapters.main(["--engine", "processes:2", "--out", str(tmp_path / "runs"), str(nb_path)]) == 0
    assert seen[-1][sweep.ENGINE_ENV] == "processes:2"


def test_import_lmcnb_does_not_import_an_engine():
    """Dask, distributed and cloudpickle are imported inside the functions that need them, never at import."""
    import ast

    tree = ast.parse((ROOT / "lmcnb" / "infra" / "sweep.py").read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top & {"dask", "distributed", "cloudpickle", "submitit", "ray"}, top
