"""Helpers shared by the test files: seeded generators, inputs and models.

Plain functions rather than pytest fixtures, because hypothesis ``@given`` tests call them with drawn seeds and
cannot take function-scoped fixtures. Import them as ``from _helpers import gen, randn, mlp`` (pytest puts
``tests/`` on ``sys.path``: the folder has no ``__init__.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from lmcnb.models import MLP

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Standard normal tensor of ``shape`` drawn from ``gen(seed)``."""
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def mlp(seed: int, widths: tuple[int, Sequence[int], int], *, dtype: torch.dtype = F64, bias: bool = True) -> MLP:
    """``MLP(d, hidden, c)`` for ``widths = (d, hidden, c)`` with PyTorch's default initialisation under
    ``torch.manual_seed(seed)``, in eval mode."""
    d, hidden, c = widths
    torch.manual_seed(seed)
    return MLP(d, list(hidden), c, dtype=dtype, bias=bias).eval()
