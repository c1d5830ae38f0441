"""lmcnb: linear mode connectivity (LMC) modulo permutation, the tested toolkit behind the lmcnb book.

The folders show the layers; a layer imports only the layers below it (``tests/test_layers.py`` enforces it):

1. :mod:`lmcnb.infra` — book infrastructure, no models: ``profiles`` (quick/paper profiles, device, seeding,
   ``lmcnb.setup``), ``checks`` (verification records), ``plotting`` (theme and standard figures), ``sweep``
   (grids with an atomic on-disk cache).
2. the toolkit, at the top level (one concept per module; ``from lmcnb import matching``):

   - :mod:`lmcnb.models`       two-layer teacher/student, MLP, VGG-11, ResNet-20 (and their architecture sites)
   - :mod:`lmcnb.permutation`  permutation specs as data, apply/compose/invert, equivalence guard, and each
                               architecture's activation sites and dense layers (what the matchers read)
   - :mod:`lmcnb.assignment`   every exact linear assignment and every plan-to-permutation reading
   - :mod:`lmcnb.matching`     weight, activation, OT and covariance-weighted matching (one ``Matcher`` interface;
                               activation and OT matching live in ``_matching_activation`` / ``_matching_ot``)
   - :mod:`lmcnb.transport`    optimal transport and Wasserstein distances (POT, Hungarian fast path)
   - :mod:`lmcnb.barrier`      interpolation curves, named barriers, the one baseline formula and λ-grid rule
   - :mod:`lmcnb.merge`        the merge pipeline: pair → align → path → repairs → evaluator → curve
   - :mod:`lmcnb.calibration`  softmax temperature calibration (per interpolation point)
   - :mod:`lmcnb.renorm`       BatchNorm statistics reset after merging (its own step, REPAIR-style)
   - :mod:`lmcnb.train`        batched training of many small networks, classifier training
   - :mod:`lmcnb.data`         teacher-student data, offline MNIST subset, MNIST/CIFAR-10 downloads
   - :mod:`lmcnb.diagnostics`  live neurons, sharpness, approximate dimension, LEWC/LLFC diagnostics
   - :mod:`lmcnb.fit`          log-log slopes with bootstrap confidence intervals

3. :mod:`lmcnb.papers` — the papers' models: ``teacher_student`` (Zhan et al.), ``meanfield`` (Ferbach et al.),
   ``lewc`` (Ito et al.).
4. :mod:`lmcnb.experiments` — one-chapter pipelines: ``width_rates``, ``lr_sparsity``, ``ot_rates``,
   ``real_data``, ``double_descent``, ``cnn_merges``; ``paper_budgets`` (the chapters' paper profiles as
   workloads of :mod:`lmcnb.infra.budget`).

The flat names of earlier versions (``lmcnb.profiles``, ``lmcnb.teacher_student``, ``lmcnb.rates``, …) are aliases:
``import lmcnb.teacher_student`` gives the very module object ``lmcnb.papers.teacher_student`` (one object, so
state such as the current profile is shared). Submodules are imported lazily, so ``import lmcnb`` imports neither
POT nor torchvision.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"

#: The toolkit: the top-level modules (tests/test_profiles.py checks each is listed here and documented above).
_SUBMODULES = {
    "models", "permutation", "assignment", "matching", "transport", "barrier", "merge", "calibration", "renorm",
    "train", "data", "diagnostics", "fit",
}
_LAYERS = {"infra", "papers", "experiments"}
#: Old flat module name -> its home in the layered package (the old name stays an alias of the same object).
MOVED = {
    "profiles": "lmcnb.infra.profiles",
    "checks": "lmcnb.infra.checks",
    "plotting": "lmcnb.infra.plotting",
    "sweep": "lmcnb.infra.sweep",
    "teacher_student": "lmcnb.papers.teacher_student",
    "meanfield": "lmcnb.papers.meanfield",
    "lewc": "lmcnb.papers.lewc",
    "rates": "lmcnb.experiments.width_rates",
    "stability": "lmcnb.experiments.lr_sparsity",
    "realdata": "lmcnb.experiments.real_data",
}

__all__ = sorted(_SUBMODULES | _LAYERS | set(MOVED) | {"setup", "__version__"})


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``lmcnb.<old name>`` to the already-importable new module object (no copy)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        head, _, tail = fullname.partition(".")
        if head != __name__ or tail not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name.partition(".")[2]])
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # module_from_spec overwrote __spec__ with the alias spec: give the module back its own
        module.__spec__ = self._own_spec


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())


def setup(*args: Any, **kwargs: Any):
    """Seed everything, pin threads, choose device and profile; see :func:`lmcnb.infra.profiles.setup`."""
    from .infra.profiles import setup as _setup

    return _setup(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _LAYERS or name in MOVED:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lmcnb' has no attribute {name!r}")
