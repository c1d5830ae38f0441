"""Shared test set-up: single-threaded torch, repeatable property tests, and ``tools/`` importable (the tests
import ``nblint`` and ``refresh_outputs`` as modules). Helpers the tests share are plain functions
in ``tests/_helpers.py`` (hypothesis ``@given`` tests cannot take function-scoped fixtures)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from lmcnb import profiles

# Under `make test` in strict mode the test process itself must run in the pinned environment (tools/repro.env);
# each chapter's kernel checks the same in its set-up cell.
profiles.check_reproducibility()

# Property tests draw the same examples on every run, so CI cannot turn red on an example nobody has seen;
# `pytest --hypothesis-profile=explore` searches with fresh random examples instead.
settings.register_profile("repeatable", derandomize=True, deadline=None, database=None)
# derandomize=False explicitly: under CI=true hypothesis derandomises its default profile, which a profile inherits
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=200)
settings.load_profile("repeatable")

TOOLS = str(Path(__file__).resolve().parents[1] / "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test runs single-threaded (two xdist workers share two cores; tiny float64 kernels are much faster
    on one thread than on two), and the previous setting is restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# The environment the session started in (the pinned one under `make test`). Libraries may change os.environ in
# the test process — dask's Nanny and dask.multiprocessing set PYTHONHASHSEED=6640 for their workers, from threads
# that can outlive a test — and a chapter's kernel, started later in the same xdist worker, inherits the process
# environment, whose pins its set-up cell checks (LMCNB_REPRO=strict). So every item, test or notebook cell, starts
# from the session's environment.
_SESSION_ENVIRON = dict(os.environ)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if dict(os.environ) != _SESSION_ENVIRON:
        os.environ.clear()
        os.environ.update(_SESSION_ENVIRON)


def pytest_terminal_summary(terminalreporter):
    """Name the CPU next to the summary (the part of a CI log that is kept): stored outputs are compared bit for
    bit, and which kernels MKL, oneDNN and OpenBLAS pick depends on the CPU's vendor and model."""
    import repro

    terminalreporter.write_line(f"host: {repro.host_fingerprint()}")
