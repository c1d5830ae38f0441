"""Tests of lmcnb.sweep: grid expansion against itertools, call counting for cache hits, resuming after an
interrupted run, corrupted/truncated cache files, config validation and atomic writes."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import profiles, sweep
from lmcnb.sweep import CorruptCacheWarning, config_key, expand_grid, run_grid

SETTINGS = settings(max_examples=30)  # example budget (cost); the profile decides the rest


class Counter:
    """An experiment that records its calls and returns a mix of tensors and plain values."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[dict] = []
        self.fail_at = fail_at

    def __call__(self, m: int, seed: int) -> dict:
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("interrupted")
        self.calls.append({"m": m, "seed": seed})
        g = torch.Generator().manual_seed(seed)
        return {"w": torch.randn(m, generator=g), "m": m, "pair": (seed, 0.5), "tag": None}


def assert_same(r1: dict, r2: dict) -> None:
    assert torch.equal(r1["w"], r2["w"]) and r1["w"].dtype == r2["w"].dtype
    assert (r1["m"], tuple(r1["pair"]), r1["tag"]) == (r2["m"], tuple(r2["pair"]), r2["tag"])


GRID = {"m": [2, 3], "seed": [0, 1, 2]}


def cache_files(path) -> list[str]:
    return sorted(os.listdir(path))


def test_expand_grid_is_the_cartesian_product_in_order():
    expected = [{"m": m, "seed": s} for m, s in itertools.product([2, 3], [0, 1, 2])]
    assert expand_grid(GRID) == expected
    configs = [{"a": 1}, {"a": 2, "b": "x"}]
    assert expand_grid(configs) == configs
    assert expand_grid([]) == []


def test_without_cache_every_configuration_is_computed_every_time(tmp_path):
    fn = Counter()
    out1, out2 = run_grid(fn, GRID), run_grid(fn, GRID)
    assert [c for c, _ in out1] == expand_grid(GRID)
    assert len(fn.calls) == 12
    for (_, r1), (_, r2) in zip(out1, out2):
        assert_same(r1, r2)


def test_cache_hit_returns_the_same_result_without_calling_fn(tmp_path):
    fn = Counter()
    first = run_grid(fn, GRID, cache_dir=tmp_path, namespace="t-v1")
    assert len(fn.calls) == 6 and len(cache_files(tmp_path)) == 6
    fn2 = Counter()
    second = run_grid(fn2, GRID, cache_dir=tmp_path, namespace="t-v1")
    assert fn2.calls == []
    for (c1, r1), (c2, r2) in zip(first, second):
        assert c1 == c2
        assert_same(r1, r2)
    fn3 = Counter()  # another namespace is another cache
    run_grid(fn3, GRID, cache_dir=tmp_path, namespace="t-v2")
    assert len(fn3.calls) == 6 and len(cache_files(tmp_path)) == 12


def test_interrupted_run_resumes_with_the_remaining_configurations(tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):
        run_grid(Counter(fail_at=2), GRID, cache_dir=tmp_path)
    assert len(cache_files(tmp_path)) == 2
    fn = Counter()
    out = run_grid(fn, GRID, cache_dir=tmp_path)
    assert fn.calls == expand_grid(GRID)[2:]
    assert [c for c, _ in out] == expand_grid(GRID)


def corrupt(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        flipped = bytearray(data)
        flipped[-40] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif how == "header":
        path.write_bytes(data[:10])
    else:
        path.write_bytes(b"garbage that is not a cache file" * 4)


@pytest.mark.parametrize("how", ["truncate", "flip", "header", "garbage"])
def test_corrupt_cache_file_is_detected_and_recomputed(tmp_path, how):
    grid = [{"m": 4, "seed": 7}]
    (_, original), = run_grid(Counter(), grid, cache_dir=tmp_path)
    path = tmp_path / f"{config_key(grid[0])}.pt"
    corrupt(path, how)
    fn = Counter()
    with pytest.warns(CorruptCacheWarning, match="recomputing"):
        (_, again), = run_grid(fn, grid, cache_dir=tmp_path)
    assert len(fn.calls) == 1
    assert_same(original, again)
    fn2 = Counter()  # the file was repaired
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_grid(fn2, grid, cache_dir=tmp_path)
    assert fn2.calls == []


def test_file_of_another_configuration_is_rejected(tmp_path):
    a, b = {"m": 2, "seed": 0}, {"m": 2, "seed": 1}
    run_grid(Counter(), [a], cache_dir=tmp_path)
    os.replace(tmp_path / f"{config_key(a)}.pt", tmp_path / f"{config_key(b)}.pt")
    fn = Counter()
    with pytest.warns(CorruptCacheWarning, match="another configuration"):
        (_, result), = run_grid(fn, [b], cache_dir=tmp_path)
    assert fn.calls == [b]
    assert torch.equal(result["w"], torch.randn(2, generator=torch.Generator().manual_seed(1)))


def test_config_key_is_sha256_of_canonical_json():
    config = {"b": [1, 2.5], "a": {"y": True, "x": None}}
    canonical = json.dumps({"config": config, "namespace": "ns"}, sort_keys=True, separators=(",", ":"))
    assert config_key(config, "ns") == hashlib.sha256(canonical.encode()).hexdigest()[:32]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8)


def reversed_dict(value):
    if isinstance(value, dict):
        return {k: reversed_dict(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_dict(v) for v in value]
    return value


@SETTINGS
@given(config=st.dictionaries(st.text(max_size=4), json_values, max_size=4))
def test_config_key_is_stable_across_orderings_and_round_trips(config):
    key = config_key(config)
    assert config_key(reversed_dict(config)) == key
    assert config_key(json.loads(json.dumps(config))) == key
    assert config_key(config, namespace="v2") != key


def test_different_configurations_have_different_keys():
    configs = [{"m": 1}, {"m": 2}, {"m": 1.0}, {"m": True}, {"m": "1"}, {"m": [1]}, {"n": 1}, {"m": 1, "n": 1},
               {"m": None}, {}]
    keys = {config_key(c) for c in configs}
    assert len(keys) == len(configs)
    assert config_key({"m": (1, 2)}) == config_key({"m": [1, 2]})


def test_invalid_configurations_and_grids_raise(tmp_path):
    fn = Counter()
    with pytest.raises(TypeError, match=r"config\['m'\] has type object"):
        run_grid(fn, [{"m": object(), "seed": 0}])
    with pytest.raises(TypeError, match="Tensor"):
        run_grid(fn, {"m": [torch.tensor(1)], "seed": [0]})
    with pytest.raises(TypeError, match="non-string key"):
        config_key({"m": {1: 2}})
    with pytest.raises(ValueError, match="JSON"):
        run_grid(fn, [{"m": 2, "seed": float("nan")}])
    assert fn.calls == []  # everything is validated before anything runs
    with pytest.raises(TypeError, match="list of values"):
        run_grid(fn, {"m": 2, "seed": [0]})
    with pytest.raises(ValueError, match="empty"):
        run_grid(fn, {"m": [], "seed": [0]})
    with pytest.raises(TypeError, match="grid must be"):
        run_grid(fn, "m=2")
    with pytest.raises(TypeError, match=r"grid\[1\]"):
        run_grid(fn, [{"m": 2, "seed": 0}, 3])
    with pytest.raises(TypeError, match="fn must be callable"):
        run_grid(None, GRID)
    with pytest.raises(TypeError, match="namespace"):
        run_grid(fn, GRID, namespace=1)
    with pytest.raises(TypeError, match="progress"):
        run_grid(fn, GRID, progress="yes")


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    run_grid(Counter(), GRID, cache_dir=tmp_path)
    names = cache_files(tmp_path)
    assert len(names) == 6 and all(n.endswith(".pt") and not n.startswith(".") for n in names)
    # A result torch.load(weights_only=True) refuses is rejected before anything is written.
    with pytest.raises(TypeError, match="cannot be cached"):
        run_grid(lambda m: object(), [{"m": 99}], cache_dir=tmp_path)
    assert cache_files(tmp_path) == names
    # A failure at the rename leaves neither a partial final file nor the temporary file.

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(sweep.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        run_grid(Counter(), [{"m": 5, "seed": 0}], cache_dir=tmp_path)
    assert cache_files(tmp_path) == names


def test_progress_goes_through_profiles_progress(monkeypatch):
    seen = []

    def spy(iterable, **kwargs):
        seen.append(kwargs)
        return iterable

    monkeypatch.setattr(profiles, "progress", spy)
    run_grid(Counter(), GRID, progress=False)
    assert seen == []
    out = run_grid(Counter(), GRID)  # on by default: profiles.progress decides (a bar in paper/full only)
    assert len(out) == 6 and seen == [{"total": 6, "desc": "grid"}]
    run_grid(Counter(), GRID, namespace="ch01-v1")
    assert seen[-1] == {"total": 6, "desc": "ch01-v1"}


@pytest.fixture
def active_profile():
    """Set the active profile for one test, then restore the previous one."""
    before = profiles._current

    def use(name: str) -> None:
        profiles.setup(profile=name, threads=torch.get_num_threads(), verbose=False)

    yield use
    profiles._current = before


def test_the_progress_bar_shows_in_paper_only_and_counts_cache_hits(tmp_path, capfd, active_profile):
    pytest.importorskip("tqdm")  # pinned in requirements.txt; the bar is optional for a bare `pip install lmcnb`
    active_profile("quick")
    run_grid(Counter(), GRID, cache_dir=tmp_path)
    quick = capfd.readouterr()
    assert quick.out == "" and quick.err == "", "the quick profile must print nothing (nbval compares outputs)"
    active_profile("paper")
    run_grid(Counter(), GRID, cache_dir=tmp_path, namespace="fresh")
    first = capfd.readouterr()
    assert first.out == "" and "fresh" in first.err and "6/6" in first.err and "computed=6" in first.err
    run_grid(Counter(), GRID, cache_dir=tmp_path, namespace="fresh")
    second = capfd.readouterr().err
    assert "6/6" in second and "cached=6" in second and "computed=0" in second
    run_grid(Counter(), GRID, cache_dir=tmp_path, progress=False)
    assert capfd.readouterr().err == ""


def test_every_call_files_its_hits_and_misses_in_the_run_log(tmp_path, monkeypatch):
    from lmcnb.infra import runlog

    monkeypatch.setenv(runlog.ENV, str(tmp_path / "log"))
    cache = tmp_path / "cache"
    run_grid(Counter(), GRID, cache_dir=cache, namespace="a")
    run_grid(Counter(), GRID, cache_dir=cache, namespace="a")  # the rerun: all hits
    run_grid(Counter(), {"m": [2], "seed": [0, 9]}, cache_dir=cache, namespace="a")  # one hit, one miss
    run_grid(Counter(), GRID)  # no cache: everything computed
    with pytest.raises(RuntimeError, match="interrupted"):
        run_grid(Counter(fail_at=2), GRID, cache_dir=tmp_path / "other")
    records = runlog.read(tmp_path / "log")
    got = [(r["configs"], r["hits"], r["misses"], r["cache"], r["completed"]) for r in records]
    assert got == [(6, 0, 6, True, True), (6, 6, 0, True, True), (2, 1, 1, True, True),
                   (6, 0, 6, False, True), (6, 0, 2, True, False)]
    assert {r["engine"] for r in records} == {"serial"} and records[0]["namespace"] == "a"
    summary = runlog.summarise(records)
    assert (summary["sweeps"], summary["configs"], summary["cache_hits"], summary["cache_misses"]) == (5, 26, 7, 15)
    monkeypatch.delenv(runlog.ENV)
    run_grid(Counter(), GRID, cache_dir=cache)
    assert len(runlog.read(tmp_path / "log")) == 5  # without the variable nothing is written


def test_executor_runs_count_parent_and_worker_hits(tmp_path, monkeypatch):
    import concurrent.futures as cf

    from lmcnb.infra import runlog

    monkeypatch.setenv(runlog.ENV, str(tmp_path / "log"))
    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        run_grid(Counter(), GRID, cache_dir=tmp_path / "cache", executor=ex)
        run_grid(Counter(), GRID, cache_dir=tmp_path / "cache", executor=ex)
    # A worker that finds its configuration cached (another worker finished it) counts a hit.
    assert sweep._remote_one(sweep._pickle_fn(Counter()), {"m": 2, "seed": 0},
                             sweep._canonical({"m": 2, "seed": 0}, ""), str(tmp_path / "cache"))[1] is True
    got = [(r["hits"], r["misses"], r["engine"]) for r in runlog.read(tmp_path / "log")]
    assert got == [(0, 6, "ThreadPoolExecutor"), (6, 0, "ThreadPoolExecutor")]
