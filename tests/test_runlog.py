"""The run log (``lmcnb.infra.runlog``): records are written atomically only when ``$LMCNB_RUNLOG_DIR`` is set,
read back oldest first, and summarised per chapter; :func:`lmcnb.setup` files its device."""
from __future__ import annotations

import json

import pytest
import torch

from lmcnb import profiles
from lmcnb.infra import runlog


def test_nothing_is_written_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(runlog.ENV, raising=False)
    assert runlog.log("sweep", hits=1) is None
    monkeypatch.setenv(runlog.ENV, " ")
    assert runlog.log("sweep", hits=1) is None
    assert runlog.read(tmp_path / "absent") == []


def test_records_round_trip_in_order_and_summarise(monkeypatch, tmp_path):
    monkeypatch.setenv(runlog.ENV, str(tmp_path / "log"))
    paths = [runlog.log("setup", device="cpu", device_name="CPU"),
             runlog.log("sweep", configs=3, hits=1, misses=2),
             runlog.log("setup", device="cuda:0", device_name="NVIDIA H100"),
             runlog.log("sweep", configs=4, hits=4, misses=0)]
    assert len(set(paths)) == 4 and all(p.parent == tmp_path / "log" for p in paths)
    (tmp_path / "log" / ".tmp-partial.json").write_text("{")  # a killed writer's leftover is never read
    records = runlog.read(tmp_path / "log")
    assert [r["kind"] for r in records] == ["setup", "sweep", "setup", "sweep"]
    assert runlog.summarise(records) == {"device": "cuda:0", "device_name": "NVIDIA H100", "sweeps": 2,
                                         "configs": 7, "cache_hits": 5, "cache_misses": 2}
    assert runlog.summarise([]) == {"device": None, "device_name": None, "sweeps": 0, "configs": 0,
                                    "cache_hits": 0, "cache_misses": 0}


def test_bad_input_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv(runlog.ENV, str(tmp_path))
    with pytest.raises(ValueError, match="unknown run-log kind"):
        runlog.log("other")
    with pytest.raises(TypeError):
        runlog.log("sweep", value=object())
    with pytest.raises(ValueError):
        runlog.log("sweep", value=float("nan"))
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        runlog.read(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"kind": "mystery"}))
    with pytest.raises(ValueError, match="no known kind"):
        runlog.read(tmp_path)


def test_setup_files_its_device(monkeypatch, tmp_path):
    monkeypatch.setenv(runlog.ENV, str(tmp_path))
    before, threads = profiles._current, torch.get_num_threads()
    try:
        profiles.setup(profile="quick", threads=threads, verbose=False)
    finally:
        profiles._current = before
        torch.set_num_threads(threads)
    (record,) = runlog.read(tmp_path)
    assert record["kind"] == "setup" and record["device"] == str(profiles.default_device())
    assert record["device_name"] == profiles.device_name(profiles.default_device())
    assert record["profile"] == "quick" and record["threads"] == threads
