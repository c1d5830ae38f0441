"""The chapters' sweep pipelines go through lmcnb.sweep.run_grid (issue 18, item 4): at toy sizes, a cached run
equals the uncached one, a second run is all cache hits, an executor changes nothing, the runner's settings
($LMCNB_CACHE_DIR, $LMCNB_ENGINE) are the defaults, and a run killed mid-sweep (SIGKILL, as a Colab disconnect)
resumes losslessly, computing only the missing configurations."""
from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from lmcnb import sweep
from lmcnb import teacher_student as ts
from lmcnb.infra import runlog
from lmcnb.papers.teacher_student import experiment

REPO = Path(__file__).resolve().parents[1]

# a toy model: four padded width groups ([2], [20], [50], [120]), a few hundred GD steps each
TOY = ts.TeacherStudent(d=4, M=2, steps=300, tol=1e-6, n_lambdas=5)
WIDTHS = [2, 20, 50, 120]
MANIFOLD = ts.TeacherStudent(d=4, M=2, n_lambdas=5)


def assert_tables_equal(t1: ts.BarrierTable, t2: ts.BarrierTable) -> None:
    """Every field of two barrier tables (and of their solutions) equal, bit for bit."""
    for f in fields(ts.BarrierTable):
        a, b = getattr(t1, f.name), getattr(t2, f.name)
        if f.name == "solutions":
            assert (a is None) == (b is None)
            if a is not None:
                assert_solutions_equal(a, b)
        elif isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.device == b.device and torch.equal(a, b), f.name
        else:
            assert a == b, f.name


def assert_solutions_equal(s1: ts.Solutions, s2: ts.Solutions) -> None:
    for f in fields(ts.Solutions):
        a, b = getattr(s1, f.name), getattr(s2, f.name)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), f.name
        elif f.name in ("W", "a"):
            assert len(a) == len(b) and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b)), f.name
        else:
            assert a == b, f.name


def sweep_records(log: Path, namespace: str) -> list[tuple[int, int, int, bool, str]]:
    return [(r["configs"], r["hits"], r["misses"], r["cache"], r["engine"]) for r in runlog.read(log)
            if r["kind"] == "sweep" and r["namespace"] == namespace]


@pytest.fixture
def no_runner(monkeypatch):
    """Neither the runner's cache nor its engine, whatever the calling environment says."""
    monkeypatch.delenv(sweep.CACHE_ENV, raising=False)
    monkeypatch.delenv(sweep.ENGINE_ENV, raising=False)


@pytest.fixture(scope="module")
def reference() -> ts.BarrierTable:
    """The toy barrier sweep as it was computed before run_grid: pair_table(train(widths, seeds))."""
    return TOY.pair_table(TOY.train(WIDTHS, [3, 4, 5, 6]))


# ---------------------------------------------------------------------------------------------------------------
# TeacherStudent.barrier_sweep (chapters 2 and 3)
# ---------------------------------------------------------------------------------------------------------------

def test_barrier_sweep_is_the_batched_training_and_pair_table_bit_for_bit(reference, no_runner):
    tab = TOY.barrier_sweep(WIDTHS, 2, first_seed=3)
    assert_tables_equal(tab, reference)
    # the order of the widths is the caller's, not the groups' (the table is width-major in that order)
    rev = TOY.barrier_sweep(WIDTHS[::-1], 2, first_seed=3)
    assert rev.widths == tuple(w for w in WIDTHS[::-1] for _ in range(2))
    assert torch.equal(rev.perm, torch.cat([reference.values("perm", w) for w in WIDTHS[::-1]]))
    # negative control: other seeds give another table
    other = TOY.barrier_sweep(WIDTHS, 2, first_seed=0)
    assert not torch.equal(other.identity, reference.identity)


def test_barrier_sweep_cached_equals_uncached_and_the_rerun_is_all_hits(reference, tmp_path, monkeypatch, no_runner):
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    cache = tmp_path / "cache"
    first = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=cache)
    assert_tables_equal(first, reference)
    assert len(list(cache.glob("*.pt"))) == 4  # one file per padded width group

    def boom(*args, **kwargs):
        raise AssertionError("a cache hit must not recompute")

    monkeypatch.setattr(experiment, "_barrier_group", boom)
    again = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=cache)
    assert_tables_equal(again, reference)
    # no cache: computed (and here it fails, proving cache_dir=None bypasses the files)
    with pytest.raises(AssertionError, match="must not recompute"):
        TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=None)
    # another model (any field) is another key: computed, not read from the other model's files
    with pytest.raises(AssertionError, match="must not recompute"):
        ts.TeacherStudent(d=4, M=2, steps=301, tol=1e-6, n_lambdas=5).barrier_sweep(
            WIDTHS, 2, first_seed=3, cache_dir=cache)
    ns = experiment.BARRIER_SWEEP_NAMESPACE
    assert sweep_records(log, ns)[:2] == [(4, 0, 4, True, "serial"), (4, 4, 0, True, "serial")]


def test_barrier_sweep_on_an_executor_gives_the_same_table(reference, tmp_path, monkeypatch, no_runner):
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        tab = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, executor=ex, cache_dir=tmp_path / "cache")
    assert_tables_equal(tab, reference)
    assert sweep_records(log, experiment.BARRIER_SWEEP_NAMESPACE) == [(4, 0, 4, True, "ThreadPoolExecutor")]
    # the unit of work is module level and picklable (what a process or Dask worker receives)
    fn = pickle.loads(pickle.dumps(experiment._barrier_group))
    assert fn is experiment._barrier_group


def test_barrier_sweep_on_spawned_processes_gives_the_same_table(reference, tmp_path, no_runner):
    import multiprocessing

    with cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        tab = TOY.barrier_sweep(WIDTHS[:2], 2, first_seed=3, executor=ex)
    assert_tables_equal(tab, TOY.pair_table(TOY.train(WIDTHS[:2], [3, 4, 5, 6])))


def test_barrier_sweep_defaults_to_the_runners_cache_and_engine(reference, tmp_path, monkeypatch, no_runner):
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    monkeypatch.setenv(sweep.CACHE_ENV, str(tmp_path / "runner-cache"))
    tab = TOY.barrier_sweep(WIDTHS[:2], 2, first_seed=3)
    assert len(list((tmp_path / "runner-cache").glob("*.pt"))) == 2
    assert_tables_equal(tab, TOY.pair_table(TOY.train(WIDTHS[:2], [3, 4, 5, 6])))
    TOY.barrier_sweep(WIDTHS[:2], 2, first_seed=3, cache_dir=None)  # explicit None: no cache whatever the env
    assert sweep_records(log, experiment.BARRIER_SWEEP_NAMESPACE) == [(2, 0, 2, True, "serial"),
                                                                       (2, 0, 2, False, "serial")]
    bad = "processes:0"
    monkeypatch.setenv(sweep.ENGINE_ENV, bad)
    with pytest.raises(ValueError, match="LMCNB_ENGINE"):  # the engine is read from the environment ...
        TOY.barrier_sweep([2], 1)
    TOY.barrier_sweep([2], 1, executor=None)  # ... unless one is given


def test_sweep_runner_settings_resolves_only_the_sentinel(tmp_path, monkeypatch, no_runner):
    assert sweep.runner_settings() == (None, None)
    monkeypatch.setenv(sweep.CACHE_ENV, str(tmp_path))
    assert sweep.runner_settings() == (tmp_path, None)
    assert sweep.runner_settings(None, None) == (None, None)
    assert sweep.runner_settings("elsewhere") == ("elsewhere", None)
    assert repr(sweep.RUNNER) == "sweep.RUNNER" and pickle.loads(pickle.dumps(sweep.RUNNER)) is sweep.RUNNER


def test_barrier_sweep_progress_bar_in_paper_only(tmp_path, capfd, monkeypatch, no_runner):
    pytest.importorskip("tqdm")
    from lmcnb import profiles

    before = profiles._current
    try:
        profiles.setup(profile="paper", threads=torch.get_num_threads(), verbose=False)
        capfd.readouterr()
        TOY.barrier_sweep([2], 1)
        assert experiment.BARRIER_SWEEP_NAMESPACE in capfd.readouterr().err
        TOY.barrier_sweep([2], 1, progress=False)
        assert capfd.readouterr().err == ""
        with pytest.raises(TypeError, match="progress"):
            TOY.barrier_sweep([2], 1, progress="yes")
    finally:
        profiles._current = before


# ---------------------------------------------------------------------------------------------------------------
# TeacherStudent.manifold_sweep (chapters 2 and 3)
# ---------------------------------------------------------------------------------------------------------------

def test_manifold_sweep_cached_equals_uncached_and_the_rerun_is_all_hits(tmp_path, monkeypatch, no_runner):
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    kw = dict(dead_prob=0.3, split="dirichlet", seed=2)
    plain = MANIFOLD.manifold_sweep([2, 3, 6], 3, **kw)
    cached = MANIFOLD.manifold_sweep([2, 3, 6], 3, **kw, cache_dir=tmp_path / "c")
    assert_tables_equal(cached, plain)
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        hit = MANIFOLD.manifold_sweep([2, 3, 6], 3, **kw, cache_dir=tmp_path / "c", executor=ex)
    assert_tables_equal(hit, plain)
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        assert_tables_equal(MANIFOLD.manifold_sweep([2, 3, 6], 3, **kw, executor=ex), plain)
    ns = experiment.MANIFOLD_SWEEP_NAMESPACE
    assert sweep_records(log, ns) == [(3, 0, 3, False, "serial"), (3, 0, 3, True, "serial"),
                                      (3, 3, 0, True, "ThreadPoolExecutor"), (3, 0, 3, False, "ThreadPoolExecutor")]
    # every argument is in the key: another dead_prob is computed afresh and differs
    other = MANIFOLD.manifold_sweep([2, 3, 6], 3, dead_prob=0.0, split="dirichlet", seed=2, cache_dir=tmp_path / "c")
    assert sweep_records(log, ns)[-1] == (3, 0, 3, True, "serial")
    assert not torch.equal(other.perm, plain.perm)
    with pytest.raises(ValueError, match="output='fixed'"):
        ts.TeacherStudent(d=4, M=2, output="trained").manifold_sweep([3], 1, cache_dir=tmp_path / "c")


# ---------------------------------------------------------------------------------------------------------------
# Interrupted mid-sweep (SIGKILL, as a Colab disconnect), then resumed
# ---------------------------------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from lmcnb import teacher_student as ts
    from lmcnb.papers.teacher_student import experiment

    real, calls = experiment._barrier_group, []

    def slow_second(*args, **kwargs):  # the second group computes, then hangs until the parent kills us
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            time.sleep(600)
        return out

    experiment._barrier_group = slow_second
    model = ts.TeacherStudent(d=4, M=2, steps=300, tol=1e-6, n_lambdas=5)
    model.barrier_sweep([2, 20, 50, 120], 2, first_seed=3, cache_dir=sys.argv[1])
    print("finished")
""")


def test_a_killed_barrier_sweep_resumes_losslessly(reference, tmp_path, monkeypatch, no_runner):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(sweep.CACHE_ENV, None)
    env.pop(sweep.ENGINE_ENV, None)
    env.pop(runlog.ENV, None)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(cache)], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not list(cache.glob("*.pt")):
            assert child.poll() is None, child.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no cache file within 240 s"
            time.sleep(0.05)
        time.sleep(0.5)  # well into the second group (which hangs after computing, before its file is written)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL and b"finished" not in out
    files = list(cache.glob("*.pt"))
    assert len(files) == 1, "killed mid-sweep: exactly the first group is stored"

    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    computed = []
    real = experiment._barrier_group

    def counting(model, widths, seeds, **kwargs):
        computed.append(list(widths))
        return real(model, widths, seeds, **kwargs)

    monkeypatch.setattr(experiment, "_barrier_group", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sweep.CorruptCacheWarning)  # no corrupt or torn file is ever read
        resumed = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=cache)
    assert_tables_equal(resumed, reference)  # equal to an uninterrupted run
    assert computed == [[20], [50], [120]], "the rerun computes only the missing groups"
    assert sweep_records(log, experiment.BARRIER_SWEEP_NAMESPACE) == [(4, 1, 3, True, "serial")]
    assert len(list(cache.glob("*.pt"))) == 4
    computed.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sweep.CorruptCacheWarning)
        assert_tables_equal(TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=cache), reference)
    assert computed == []


# ---------------------------------------------------------------------------------------------------------------
# Chapter 3's SGD sweeps and chapter 4's learning-rate sweeps: one configuration per call
# ---------------------------------------------------------------------------------------------------------------

def assert_dataclasses_equal(a, b) -> None:
    assert type(a) is type(b)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.device == y.device and torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)), \
                f.name
        elif isinstance(x, ts.BarrierTable):
            assert_tables_equal(x, y)
        else:
            assert x == y, f.name


def cached_twice(call, tmp_path, monkeypatch, namespace: str, *, fresh, direct: bool = False):
    """``call(cache_dir=..., executor=...)`` uncached, cached (a miss), cached again (a hit, on a thread pool) and
    after ``fresh`` changes the call's content (a miss): the four results, checking the run log's records
    (``direct``: the uncached call bypasses run_grid, so it files none)."""
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    cache = tmp_path / "cache"
    plain = call(cache_dir=None, executor=None)
    cached = call(cache_dir=cache, executor=None)
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        hit = call(cache_dir=cache, executor=ex)
    other = fresh(cache_dir=cache, executor=None)
    expected = [(1, 0, 1, False, "serial"), (1, 0, 1, True, "serial"), (1, 1, 0, True, "ThreadPoolExecutor"),
                (1, 0, 1, True, "serial")]
    assert sweep_records(log, namespace) == (expected[1:] if direct else expected)
    return plain, cached, hit, other


@pytest.mark.parametrize("train_output", [False, True])
def test_gd_lr_sweep_cached_equals_uncached_and_the_rerun_is_a_hit(tmp_path, monkeypatch, no_runner, train_output):
    from lmcnb import stability as st

    T = ts.orthonormal_teacher(4, 2)
    gd = ts.GD(steps=200, tol=0.0, train_output=train_output)
    plain, cached, hit, other = cached_twice(
        lambda **kw: st.gd_lr_sweep(T, 6, [1.0, 2.0], [3, 5], gd, **kw), tmp_path, monkeypatch,
        st.LR_SWEEP_NAMESPACE,
        fresh=lambda **kw: st.gd_lr_sweep(T, 6, [1.0, 2.0], [3, 5], gd, init_scale=0.2, **kw))
    assert_dataclasses_equal(cached, plain)
    assert_dataclasses_equal(hit, plain)
    assert (plain.a is not None) == train_output
    assert not torch.equal(other.W, plain.W)  # init_scale is in the key
    # the teacher's content is in the key: a rotated teacher is computed afresh
    log = tmp_path / "log"
    st.gd_lr_sweep(T.flip(0), 6, [1.0, 2.0], [3, 5], gd, cache_dir=tmp_path / "cache")
    assert sweep_records(log, st.LR_SWEEP_NAMESPACE)[-1][1:3] == (0, 1)


def test_sgd_lr_sweep_cached_equals_uncached_and_the_samples_are_in_the_key(tmp_path, monkeypatch, no_runner):
    from lmcnb import stability as st
    from lmcnb.data import teacher_student_data

    T = ts.orthonormal_teacher(4, 2)
    samples = teacher_student_data(T, 64, torch.Generator().manual_seed(5))
    moved = teacher_student_data(T, 64, torch.Generator().manual_seed(6))
    schedule = ts.SGD(batch_size=8, epochs=3, tol=1e-10)
    plain, cached, hit, other = cached_twice(
        lambda **kw: st.sgd_lr_sweep(T, 5, [0.5, 1.0], [2, 3], samples, schedule, data_seed=7, **kw), tmp_path,
        monkeypatch, st.LR_SWEEP_NAMESPACE,
        fresh=lambda **kw: st.sgd_lr_sweep(T, 5, [0.5, 1.0], [2, 3], moved, schedule, data_seed=7, **kw))
    assert_dataclasses_equal(cached, plain)
    assert_dataclasses_equal(hit, plain)
    assert not torch.equal(other.W, plain.W)


def test_mlp_lr_sweep_cached_equals_uncached_and_the_rerun_is_a_hit(tmp_path, monkeypatch, no_runner):
    from lmcnb import stability as st
    from lmcnb import train
    from lmcnb.data import Split

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()
    tr, ev = Split(x, y), Split(x[:32], y[:32])
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.0)
    lam = torch.linspace(0, 1, 5)
    plain, cached, hit, other = cached_twice(
        lambda **kw: st.mlp_lr_sweep(tr, 8, [0.05, 0.5], 1, cfg, ev, lam, **kw), tmp_path, monkeypatch,
        st.LR_SWEEP_NAMESPACE,
        fresh=lambda **kw: st.mlp_lr_sweep(tr, 8, [0.05, 0.5], 1, train.TrainConfig(
            epochs=2, batch_size=16, lr=0.1, momentum=0.5), ev, lam, **kw))  # the config is in the key
    assert_dataclasses_equal(cached, plain)
    assert_dataclasses_equal(hit, plain)
    assert not torch.equal(other.identity, plain.identity)


@pytest.mark.parametrize("name", ["sgd_barrier_sweep", "finite_sample_sweep"])
def test_sgd_sweeps_of_chapter3_cached_equal_uncached(tmp_path, monkeypatch, no_runner, name):
    from lmcnb import rates

    fn = getattr(rates, name)
    cfg = ts.TeacherStudent(d=4, M=2, n_lambdas=5)
    sch = ts.SGD(c=0.5, batch_size=8, epochs=2)
    plain, cached, hit, other = cached_twice(
        lambda **kw: fn(cfg, [4, 6], 1, sch, n_samples=32, **kw), tmp_path, monkeypatch, rates.SGD_SWEEP_NAMESPACE,
        fresh=lambda **kw: fn(cfg, [4, 6], 1, sch, n_samples=32, data_seed=1, **kw))
    if name == "sgd_barrier_sweep":
        assert_tables_equal(cached, plain)
        assert_tables_equal(hit, plain)
        assert not torch.equal(other.perm, plain.perm)
    else:
        assert_dataclasses_equal(cached, plain)
        assert_dataclasses_equal(hit, plain)
        assert not torch.equal(other.training.perm, plain.training.perm)


# ---------------------------------------------------------------------------------------------------------------
# Chapter 1's width sweep: one configuration per width
# ---------------------------------------------------------------------------------------------------------------

def test_chapter1_width_barriers_cached_equal_uncached_and_reruns_are_hits(tmp_path, monkeypatch, no_runner):
    import numpy as np

    from lmcnb import matching, merge, train
    from lmcnb.experiments import mlp_widths

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    xe, ye = x[:48], y[:48]
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, momentum=0.9)
    lam = torch.linspace(0, 1, 5)
    args = (x, y, xe, ye, cfg, lam, [4, 8, 12], 2, 2)

    # the notebook's former loop, written out: the reference
    def old(width):
        seeds = [0, 1, 2, 3]
        nets, _ = train.train_mlps(train.init_mlps((6, width, width, 3), 4, seeds), x, y, cfg, seeds=seeds)
        out = []
        for a, b in zip(nets[::2], nets[1::2]):
            got = merge.compare(merge.Pair(a, b), {"identity": matching.IdentityMatching(),
                                                   "matched": matching.WeightMatching(seed=0)},
                                lam, merge.Empirical(xe, ye)).outcomes
            out.append((got["identity"].barrier, got["matched"].barrier))
        return np.median(np.array(out), axis=0)

    reference = np.array([old(w) for w in [4, 8, 12]])
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    plain = mlp_widths.width_barriers(*args)
    assert plain.shape == (3, 2) and np.array_equal(plain, reference)
    cached = mlp_widths.width_barriers(*args, cache_dir=tmp_path / "c")
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        hit = mlp_widths.width_barriers(*args, cache_dir=tmp_path / "c", executor=ex)
    assert np.array_equal(cached, reference) and np.array_equal(hit, reference)
    # the data's content is in the key: other labels are computed afresh and differ
    other = mlp_widths.width_barriers(x, 2 - y, xe, 2 - ye, *args[4:], cache_dir=tmp_path / "c")
    assert not np.array_equal(other, reference)
    assert sweep_records(log, mlp_widths.WIDTH_NAMESPACE) == [
        (3, 0, 3, False, "serial"), (3, 0, 3, True, "serial"), (3, 3, 0, True, "ThreadPoolExecutor"),
        (3, 0, 3, True, "serial")]
    with pytest.raises(TypeError, match="widths"):
        mlp_widths.width_barriers(x, y, xe, ye, cfg, lam, 4, 2, 2)


def test_tensor_digest_and_dataclass_key_are_content_keys():
    from lmcnb import train

    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    d = sweep.tensor_digest(t)
    assert d.startswith("float64[2, 3]:") and d == sweep.tensor_digest(t.clone())
    assert d == sweep.tensor_digest(t.T.contiguous().T)  # layout does not matter, content does
    assert d != sweep.tensor_digest(t.reshape(3, 2))  # shape
    assert d != sweep.tensor_digest(t.float())  # dtype
    bumped = t.clone()
    bumped[1, 2] += 1e-12
    assert d != sweep.tensor_digest(bumped)  # any entry
    with pytest.raises(TypeError, match="torch.Tensor"):
        sweep.tensor_digest([1.0])
    key = sweep.dataclass_key(train.TrainConfig(epochs=2, lr=0.1))
    assert key["type"] == "TrainConfig" and key["lr"] == 0.1 and key["epochs"] == 2
    assert key != sweep.dataclass_key(train.TrainConfig(epochs=2, lr=0.2))
    assert sweep.config_key({"k": key}) == sweep.config_key({"k": sweep.dataclass_key(train.TrainConfig(epochs=2,
                                                                                                       lr=0.1))})
    gd = sweep.dataclass_key(ts.GD(c=torch.tensor([1.0, 2.0], dtype=torch.float64), steps=3))
    assert gd["c"] == sweep.tensor_digest(torch.tensor([1.0, 2.0], dtype=torch.float64)) and gd["steps"] == 3
    assert sweep.dataclass_key("plain") == "'plain'"


# ---------------------------------------------------------------------------------------------------------------
# Chapter 5a's SGD pair trajectories: one configuration per call, the generator's state carried through
# ---------------------------------------------------------------------------------------------------------------

def test_sgd_pair_trajectory_cached_equals_uncached_and_leaves_the_generator_in_the_same_state(
        tmp_path, monkeypatch, no_runner):
    import numpy as np

    from lmcnb import meanfield
    from lmcnb.experiments import ot_rates

    def setup():
        g = torch.Generator().manual_seed(0)
        teacher = meanfield.tanh_teacher(2, [1.0, -0.5], g)
        x = torch.randn(64, 2, generator=g, dtype=torch.float64)
        theta = meanfield.init_neurons((2, 2), 8, 2, g, b_std=0.5)
        return g, teacher, x, theta

    def run(**kw):
        g, teacher, x, theta = setup()
        traj = ot_rates.sgd_pair_trajectory(theta, teacher, x, 40, 0.5, 8, g, 2, **kw)
        return traj, torch.randn(3, generator=g)  # what the caller draws next

    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    (plain, after), (cached, after_c) = run(cache_dir=None), run(cache_dir=tmp_path / "c")
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        hit, after_h = run(cache_dir=tmp_path / "c", executor=ex)
    # the reference: the computation itself on the caller's generator (no run_grid round trip)
    g, teacher, x, theta = setup()
    ref = ot_rates._sgd_pair_trajectory(theta, teacher, x, 40, 0.5, 8, g, 2, "tanh")
    ref_after = torch.randn(3, generator=g)
    for got, nxt in ((plain, after), (cached, after_c), (hit, after_h)):
        for f in fields(ref):
            a, b = getattr(got, f.name), getattr(ref, f.name)
            assert a.dtype == b.dtype and np.array_equal(a, b), f.name
        assert torch.equal(nxt, ref_after), "the generator must end where the SGD left it, cache hit or not"
    assert sweep_records(log, ot_rates.TRAJECTORY_NAMESPACE) == [
        (1, 0, 1, False, "serial"), (1, 0, 1, True, "serial"), (1, 1, 0, True, "ThreadPoolExecutor")]
    # the generator's state is in the key: a different state is computed afresh and differs
    g, teacher, x, theta = setup()
    torch.randn(1, generator=g)
    moved = ot_rates.sgd_pair_trajectory(theta, teacher, x, 40, 0.5, 8, g, 2, cache_dir=tmp_path / "c")
    assert sweep_records(log, ot_rates.TRAJECTORY_NAMESPACE)[-1] == (1, 0, 1, True, "serial")
    assert not np.array_equal(moved.w2, ref.w2)
    # a plain callable cannot be keyed: computed here (runner default), refused with an explicit cache
    g, teacher, x, theta = setup()
    plain_fn = ot_rates.sgd_pair_trajectory(theta, lambda z: teacher(z), x, 40, 0.5, 8, g, 2)
    assert np.array_equal(plain_fn.w2, ref.w2)
    with pytest.raises(TypeError, match="dataclass target"):
        ot_rates.sgd_pair_trajectory(theta, lambda z: teacher(z), x, 40, 0.5, 8, g, 2, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("which", ["gaussian", "uniform", "subspace", "subsample"])
def test_wasserstein_tables_cached_equal_uncached(tmp_path, monkeypatch, no_runner, which):
    import numpy as np

    from lmcnb.experiments import ot_rates

    samplers = {"gaussian": ot_rates.gaussian_sampler(3), "uniform": ot_rates.uniform_sampler(3),
                "subspace": ot_rates.subspace_sampler(4, 2, 0.1)}
    cloud = torch.randn(40, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def call(seed=0, **kw):
        if which == "subsample":
            return ot_rates.subsample_wasserstein(cloud, [4, 8], 3, seed=seed, **kw)
        return ot_rates.two_sample_wasserstein(samplers[which], [4, 8], 3, seed=seed, **kw)

    # the computation itself (no run_grid round trip) is the reference
    ref = (ot_rates._subsample_wasserstein(cloud, [4, 8], 3, 2.0, 0) if which == "subsample" else
           ot_rates._two_sample_wasserstein(samplers[which], [4, 8], 3, 2.0, 0))
    plain, cached, hit, other = cached_twice(lambda **kw: call(**kw), tmp_path, monkeypatch,
                                             ot_rates.WASSERSTEIN_NAMESPACE, fresh=lambda **kw: call(seed=1, **kw))
    for got in (plain, cached, hit):
        assert got.dtype == np.float64 and got.shape == (2, 3) and np.array_equal(got, ref)
    assert not np.array_equal(other, ref)


def test_samplers_are_keyed_by_their_fields_and_plain_callables_are_not_cached(tmp_path, no_runner):
    import numpy as np

    from lmcnb.experiments import ot_rates

    assert sweep.dataclass_key(ot_rates.gaussian_sampler(3)) != sweep.dataclass_key(ot_rates.gaussian_sampler(3, 2.0))
    assert sweep.dataclass_key(ot_rates.subspace_sampler(4, 2, 0.1)) != \
        sweep.dataclass_key(ot_rates.subspace_sampler(4, 2, 0.1, seed=1))  # another frame U
    s = ot_rates.gaussian_sampler(3)
    ref = ot_rates.two_sample_wasserstein(s, [4], 2, cache_dir=None)
    assert np.array_equal(ot_rates.two_sample_wasserstein(lambda m, g: s(m, g), [4], 2), ref)  # computed here
    with pytest.raises(TypeError, match="dataclass sampler"):
        ot_rates.two_sample_wasserstein(lambda m, g: s(m, g), [4], 2, cache_dir=tmp_path)
    assert pickle.loads(pickle.dumps(ot_rates.subspace_sampler(4, 2, 0.1))).U.shape == (4, 2)


def test_chapter5b_training_cached_equals_train_mlps_and_the_rerun_is_a_hit(tmp_path, monkeypatch, no_runner):
    from lmcnb import train
    from lmcnb.experiments import ot_rates

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    y = (x[:, 0] > 0).long()
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.9)
    seeds = [0, 1, 2, 3]
    lrs = [0.01, 0.01, 0.1, 0.1]

    def inits():
        return train.init_mlps((5, 6, 6, 2), 4, seeds, init="lecun_normal")

    ref, ref_hist = train.train_mlps(inits(), x, y, cfg, seeds=seeds, lrs=lrs)

    def call(rates=lrs, **kw):
        return ot_rates.train_mlps_resumable(inits(), x, y, cfg, seeds=seeds, lrs=rates, **kw)

    rng = torch.get_rng_state()
    plain, cached, hit, other = cached_twice(call, tmp_path, monkeypatch, ot_rates.TRAINING_NAMESPACE,
                                             fresh=lambda **kw: call(rates=[0.02, 0.02, 0.1, 0.1], **kw))
    assert torch.equal(torch.get_rng_state(), rng), "rebuilding the networks must not draw from the global RNG"
    for nets, hist in (plain, cached, hit):
        assert len(nets) == 4 and torch.equal(hist.loss, ref_hist.loss) and torch.equal(hist.lr, ref_hist.lr)
        for a, b in zip(nets, ref):
            assert a.widths == b.widths and a.training == b.training
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(other[0][0].state_dict()["layers.0.weight"], ref[0].state_dict()["layers.0.weight"])
    with pytest.raises(TypeError, match="MLP"):
        ot_rates.train_mlps_resumable([], x, y, cfg, seeds=[])


def test_barrier_sweep_on_a_dask_local_cluster_of_processes(reference, tmp_path, monkeypatch, no_runner):
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=40) as lc, distributed.Client(lc) as client:
            ex = client.get_executor()
            tab = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=tmp_path / "cache", executor=ex)
            again = TOY.barrier_sweep(WIDTHS, 2, first_seed=3, cache_dir=tmp_path / "cache", executor=ex)
    assert_tables_equal(tab, reference)
    assert_tables_equal(again, reference)
    records = sweep_records(log, experiment.BARRIER_SWEEP_NAMESPACE)
    assert [r[:4] for r in records] == [(4, 0, 4, True), (4, 4, 0, True)]


@pytest.mark.parametrize("match_data", [False, True])
def test_chapter5b_init_pair_errors_equal_the_loop_and_cache(tmp_path, monkeypatch, no_runner, match_data):
    import numpy as np

    from lmcnb import matching, train
    from lmcnb.experiments import ot_rates

    matchers = {"OT": matching.OTMatching(), "identity": matching.IdentityMatching()}
    depth = 2 if match_data else 1
    ref = []  # the notebook's former loop
    for m in [4, 8]:
        row = []
        for s in range(2):
            a, b = train.init_mlps((2, *([m] * depth), 1), 2, [50 + 2 * s, 51 + 2 * s], bias=False,
                                   init="kaiming_normal", dtype=torch.float64)
            g = torch.Generator().manual_seed(s)
            x = torch.randn(30, 2, generator=g, dtype=torch.float64)
            xm = torch.randn(30, 2, generator=g, dtype=torch.float64)
            row.append({k: ot_rates.layerwise_errors(a, matching.align(a, b, mt, xm if match_data else None)[0], x)
                        for k, mt in matchers.items()})
        ref.append(row)

    def call(seed_base=50, **kw):
        return ot_rates.init_pair_errors(2, depth, [4, 8], 2, matchers, n_x=30, seed_base=seed_base,
                                         match_data=match_data, **kw)

    log = tmp_path / "log"
    monkeypatch.setenv(runlog.ENV, str(log))
    outs = [call(), call(cache_dir=tmp_path / "c"), call(cache_dir=tmp_path / "c")]
    for out in outs:
        for row, ref_row in zip(out, ref, strict=True):
            for lays, ref_lays in zip(row, ref_row, strict=True):
                for k in matchers:
                    for f in fields(ref_lays[k]):
                        got, want = getattr(lays[k], f.name), getattr(ref_lays[k], f.name)
                        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), f.name
    other = call(seed_base=60, cache_dir=tmp_path / "c")
    assert not np.array_equal(other[0][0]["OT"].error, ref[0][0]["OT"].error)
    assert sweep_records(log, ot_rates.INIT_ERRORS_NAMESPACE) == [
        (2, 0, 2, False, "serial"), (2, 0, 2, True, "serial"), (2, 2, 0, True, "serial"), (2, 0, 2, True, "serial")]
    with pytest.raises(TypeError, match="matchers"):
        ot_rates.init_pair_errors(2, 1, [4], 1, {}, n_x=4, seed_base=0)


def test_chapter5b_matcher_barriers_cached_equal_direct(tmp_path, monkeypatch, no_runner):
    import numpy as np

    from lmcnb import matching, merge, train
    from lmcnb.data import Split
    from lmcnb.experiments import ot_rates

    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    tr, val, te = Split(x[:40], y[:40]), Split(x[40:60], y[40:60]), Split(x[60:], y[60:])
    nets, _ = train.train_mlps(train.init_mlps((5, 8, 8, 3), 2, [0, 1]), tr.x, tr.y,
                               train.TrainConfig(epochs=2, batch_size=8, lr=0.05), seeds=[0, 1])
    m3 = {"identity": matching.IdentityMatching(), "Euclidean WM": matching.OTMatching(),
          "Σ-weighted WM": matching.CovarianceWeightedMatching(), "activation matching": matching.ActivationMatching()}
    lam = torch.linspace(0, 1, 3)

    def call(lambdas=lam, **kw):
        return ot_rates.matcher_barriers(merge.Pair(*nets), m3, te, data=tr.x, lambdas=lambdas, calibration=val, **kw)

    def same(r1, r2):
        assert r1.keys() == r2.keys()
        for k in r1:
            assert type(r1[k]) is type(r2[k]) and np.array_equal(r1[k], r2[k]), k

    ref = ot_rates._matcher_barriers(merge.Pair(*nets), m3, te, tr.x, lam, val, dict(ot_rates.FIG2_SPACES))
    plain, cached, hit, other = cached_twice(call, tmp_path, monkeypatch, ot_rates.MATCHER_BARRIERS_NAMESPACE,
                                             fresh=lambda **kw: call(lambdas=torch.linspace(0, 1, 5), **kw),
                                             direct=True)
    for r in (plain, cached, hit):
        same(r, ref)
    same(call(), ref)  # runner default without the runner: computed here directly
    assert other.keys() == ref.keys()


def test_the_per_width_pipelines_show_a_progress_bar_in_paper_only_and_take_an_executor(tmp_path, capfd, no_runner):
    pytest.importorskip("tqdm")
    import numpy as np

    from lmcnb import matching, profiles, train
    from lmcnb.experiments import mlp_widths, ot_rates

    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    cfg = train.TrainConfig(epochs=1, batch_size=8, lr=0.05)
    lam = torch.linspace(0, 1, 3)
    calls = {
        experiment.MANIFOLD_SWEEP_NAMESPACE: lambda **kw: MANIFOLD.manifold_sweep([2, 3], 1, **kw).perm,
        mlp_widths.WIDTH_NAMESPACE: lambda **kw: mlp_widths.width_barriers(x, y, x, y, cfg, lam, [2, 4], 1, 1, **kw),
        ot_rates.INIT_ERRORS_NAMESPACE: lambda **kw: np.stack([
            r["OT"].error for row in ot_rates.init_pair_errors(2, 1, [4, 8], 1, {"OT": matching.OTMatching()},
                                                                 n_x=8, seed_base=0, **kw) for r in row]),
    }
    before = profiles._current
    try:
        profiles.setup(profile="paper", threads=torch.get_num_threads(), verbose=False)
        capfd.readouterr()
        for namespace, call in calls.items():
            ref = call()
            assert namespace in capfd.readouterr().err, namespace
            quiet = call(progress=False)
            assert capfd.readouterr().err == "", namespace
            with cf.ThreadPoolExecutor(max_workers=2) as ex:
                remote = call(progress=False, executor=ex)
            for got in (quiet, remote):
                assert np.array_equal(np.asarray(got), np.asarray(ref)), namespace
            with pytest.raises(TypeError, match="progress"):
                call(progress="yes")
    finally:
        profiles._current = before


# ---------------------------------------------------------------------------------------------------------------
# A chapter run by the headless runner (make paper), killed mid-sweep, rerun: the chapter's own call, without any
# cache argument, resumes from the runner's cache ($LMCNB_CACHE_DIR, read through sweep.RUNNER)
# ---------------------------------------------------------------------------------------------------------------

CHAPTER_CELLS = [
    "import os, time\nimport lmcnb\nfrom lmcnb import teacher_student as ts\n"
    "from lmcnb.papers.teacher_student import experiment\nS = lmcnb.setup(seed=0)",
    # instrumentation of the interrupted run only: the second group hangs after computing, before its file exists
    "if os.environ.get('HANG_SECOND') == '1':\n"
    "    real, done = experiment._barrier_group, []\n"
    "    def hang(*a, **k):\n"
    "        out = real(*a, **k)\n"
    "        done.append(1)\n"
    "        if len(done) == 2:\n"
    "            time.sleep(600)\n"
    "        return out\n"
    "    experiment._barrier_group = hang\n"
    "else:\n"
    "    real = experiment._barrier_group\n"
    "    def count(model, widths, seeds, **k):\n"
    "        with open(os.environ['COUNTER_FILE'], 'a') as fh:\n"
    "            fh.write(f'{widths}\\n')\n"
    "        return real(model, widths, seeds, **k)\n"
    "    experiment._barrier_group = count",
    "model = ts.TeacherStudent(d=4, M=2, steps=300, tol=1e-6, n_lambdas=5)\n"
    "tab = model.barrier_sweep([2, 20, 50, 120], 2, first_seed=3)  # no cache argument: the runner's\n"
    "print(tab.perm.tolist(), tab.identity.tolist())",
]


def test_a_chapter_killed_mid_sweep_under_the_runner_resumes_losslessly(reference, tmp_path):
    import json

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    book = tmp_path / "book"
    book.mkdir()
    nb = new_notebook(cells=[new_code_cell(c) for c in CHAPTER_CELLS],
                      metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    nbformat.write(nb, book / "02_tiny.ipynb")
    out, cache, counter = tmp_path / "out", tmp_path / "cache", tmp_path / "computed.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", sweep.CACHE_ENV, sweep.ENGINE_ENV)}
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), COUNTER_FILE=str(counter),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO / "tools" / "run_chapters.py"), "--profile", "quick", "--out", str(out),
           "--cache", str(cache), str(book / "02_tiny.ipynb")]
    runner = subprocess.Popen(cmd, env={**env, "HANG_SECOND": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(cache.glob("*.pt")):
            assert runner.poll() is None, "the runner ended before the first cache file"
            assert time.monotonic() < deadline, "no cache file within 300 s"
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(runner.pid, signal.SIGKILL)  # the runner and its kernel: a lost Colab runtime
        runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert len(list(cache.glob("*.pt"))) == 1
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert counter.read_text().split("\n")[:-1] == ["[20]", "[50]", "[120]"], "only the missing groups computed"
    entry = json.loads((out / "summary.json").read_text())["02_tiny"]
    assert (entry["sweeps"], entry["cache_hits"], entry["cache_misses"]) == (1, 1, 3)
    assert len(list(cache.glob("*.pt"))) == 4 and not list(cache.glob(".tmp-*"))
    # an uninterrupted run of the same chapter in the same (pinned) kernel environment, with its own cache
    whole = subprocess.run([*cmd[:4], "--out", str(tmp_path / "whole"), "--cache", str(tmp_path / "cache2"),
                            cmd[-1]], env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    def printed(folder: Path) -> str:
        return "".join(nbformat.read(folder / "02_tiny.ipynb", as_version=4).cells[2].outputs[0]["text"])

    assert printed(out) == printed(tmp_path / "whole"), "the resumed chapter equals an uninterrupted run"
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["02_tiny"]["cache_misses"] == 4
    # the kernel's environment is pinned (tools/repro.env), this process's is not: equal up to float rounding
    perm = [float(v) for v in printed(out).split("]")[0].strip("[").split(",")]
    assert torch.allclose(torch.tensor(perm, dtype=torch.float64), reference.perm, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# A real chapter in the smoke profile (make smoke: toy data root, offline), killed mid-chapter while its
# run_grid sweep is part-way, rerun: the same records as an uninterrupted run, the stored configuration a hit
# ---------------------------------------------------------------------------------------------------------------

def test_a_smoke_run_killed_mid_chapter_resumes_losslessly(tmp_path):
    """Chapter 7's first half (its MNIST MLP sweep, cell-08, two run_grid configurations at the smoke sizes, and
    the checks on it) under ``run_chapters.py --profile smoke --toy-data``: SIGKILL of the runner and its kernel
    once the first configuration is stored, rerun with the same cache: exactly one hit and one miss, and the
    records and printed tables equal an uninterrupted run's (another cache). About 60 s on one core."""
    import json

    import nbformat

    chapter = REPO / "book" / "07_real_data_deeper.ipynb"
    nb = nbformat.read(chapter, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    nb.cells = nb.cells[:ids.index("cell-13c") + 1]  # through the MLP half's last check; the CNN cells dropped
    assert "cell-08" in [c.get("id") for c in nb.cells]
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(nb, book / chapter.name)  # the same stem: checks.chapter() in the chapter must match it
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLBACKEND", sweep.CACHE_ENV, sweep.ENGINE_ENV, runlog.ENV, "LMCNB_PROFILE")}
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               PYTHONHASHSEED="0")

    def cmd(out: Path, cache: Path) -> list[str]:
        return [sys.executable, str(REPO / "tools" / "run_chapters.py"), "--profile", "smoke", "--toy-data",
                "--out", str(out), "--cache", str(cache), str(book / chapter.name)]

    def results(out: Path) -> tuple[str, list[str]]:
        """The chapter's records (JSON lines) and each cell's printed stdout (progress bars go to stderr)."""
        ran = nbformat.read(out / chapter.name, as_version=4)
        printed = ["".join(o.get("text", "") for o in c.outputs if o.get("name") == "stdout")
                   for c in ran.cells if c.cell_type == "code"]
        return (out / "checks" / f"{chapter.stem}.jsonl").read_text(), printed

    whole = subprocess.run(cmd(tmp_path / "whole", tmp_path / "cache-whole"), env=env, capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())[chapter.stem]["cache_misses"] == 2

    out, cache = tmp_path / "out", tmp_path / "cache"
    runner = subprocess.Popen(cmd(out, cache), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(cache.glob("*.pt")):
            assert runner.poll() is None, "the runner ended before the sweep stored its first configuration"
            assert time.monotonic() < deadline, "no cache file within 300 s"
            time.sleep(0.05)
        os.killpg(runner.pid, signal.SIGKILL)  # mid-chapter: the second configuration is being computed
        runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert len(list(cache.glob("*.pt"))) == 1, "killed part-way: one of the two configurations stored"
    assert not (out / "checks" / f"{chapter.stem}.jsonl").exists(), "killed before the chapter's checks"

    again = subprocess.run(cmd(out, cache), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    entry = json.loads((out / "summary.json").read_text())[chapter.stem]
    assert (entry["sweeps"], entry["cache_hits"], entry["cache_misses"]) == (1, 1, 1)
    assert entry["ok"] and entry["executed_cell_ids"] == [c.get("id") for c in nb.cells if c.cell_type == "code"]
    assert len(list(cache.glob("*.pt"))) == 2 and not list(cache.glob(".tmp-*"))
    records, printed = results(out)
    assert records.count("\n") >= 8
    assert (records, printed) == results(tmp_path / "whole"), "the resumed chapter equals an uninterrupted run"
