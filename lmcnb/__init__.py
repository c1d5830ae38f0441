"""lmcnb: linear mode connectivity (LMC) modulo permutation, the tested toolkit behind the lmcnb book.

One concept per module (import them explicitly, e.g. ``from lmcnb import matching``):

- :mod:`lmcnb.profiles`     quick/paper profiles, device, seeding and thread pinning (``lmcnb.setup``)
- :mod:`lmcnb.models`       two-layer teacher/student, MLP, VGG-11, ResNet-20
- :mod:`lmcnb.permutation`  permutation specs as data, apply/compose/invert, equivalence guard
- :mod:`lmcnb.matching`     weight, activation, OT, covariance-weighted and functional matching
- :mod:`lmcnb.transport`    optimal transport and Wasserstein distances (POT, Hungarian fast path)
- :mod:`lmcnb.barrier`      interpolation curves, named barrier definitions, barrier modulo permutation
- :mod:`lmcnb.calibration`  softmax temperature calibration (per interpolation point)
- :mod:`lmcnb.renorm`       BatchNorm statistics reset after merging (its own step, REPAIR-style)
- :mod:`lmcnb.train`        batched training of many small networks, classifier training
- :mod:`lmcnb.teacher_student`  closed-form population loss (arc-cosine kernel), GD/SGD, minimum manifold
- :mod:`lmcnb.rates`        width rates: i.i.d. neurons (OT rate) vs teacher-student barriers
- :mod:`lmcnb.stability`    learning rate, sharpness and sparsity (linear-stability prediction of c*)
- :mod:`lmcnb.meanfield`    mean-field two-layer networks, OT alignment, interpolation errors
- :mod:`lmcnb.lewc`         layerwise exponentially weighted connectivity (Ito et al.), Theorem 5.3 construction
- :mod:`lmcnb.realdata`     real-data barriers under the four views (no / weight / activation matching, calibrated)
- :mod:`lmcnb.data`         teacher-student data, offline MNIST subset, MNIST/CIFAR-10 downloads
- :mod:`lmcnb.diagnostics`  live neurons, sharpness, approximate dimension, LEWC/LLFC diagnostics
- :mod:`lmcnb.fit`          log-log slopes with bootstrap confidence intervals
- :mod:`lmcnb.sweep`        grids of configurations with an atomic on-disk cache
- :mod:`lmcnb.checks`       verification records printed by the chapters' assert cells
- :mod:`lmcnb.plotting`     the book's seaborn theme and standard figures

Submodules are imported lazily, so ``import lmcnb`` imports neither POT nor torchvision.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "profiles", "models", "permutation", "matching", "transport", "barrier", "calibration", "train",
    "teacher_student", "data", "diagnostics", "fit", "sweep", "checks", "plotting", "renorm",
    "rates", "stability", "meanfield", "lewc", "realdata",
}

__all__ = sorted(_SUBMODULES | {"setup", "__version__"})


def setup(*args: Any, **kwargs: Any):
    """Seed everything, pin threads, choose device and profile; see :func:`lmcnb.profiles.setup`."""
    from .profiles import setup as _setup

    return _setup(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lmcnb' has no attribute {name!r}")
