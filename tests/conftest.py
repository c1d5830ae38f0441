"""Shared test fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test runs single-threaded (two xdist workers share two cores; tiny float64 kernels are much faster
    on one thread than on two), and the previous setting is restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

