"""Two-layer ReLU teacher–student model of Zhan, Li, Wu (AISTATS 2025) in closed form, on plain float64 tensors.

The model is the reconstruction of ``shared/research/seed000-zhan-li-wu.md`` (§1.2, from Lin–Li–Wu 2024):

- inputs ``x ~ N(0, I_d)`` (``inputs="gaussian"``) or ``x ~ Unif(S^{d−1})`` (``inputs="sphere"``);
- teacher ``f*(x) = Σ_{j≤M} a*_j σ(w*_j·x)``, rows ``w*_j`` of ``T ∈ R^{M×d}``, ``a* = 1`` by default;
- student ``f(x; W, a) = s Σ_{i≤m} a_i σ(w_i·x)``, rows ``w_i`` of ``W ∈ R^{m×d}``; the seed model has fixed
  ``a = 1`` and ``s = 1`` (no ``1/m``), σ = ReLU;
- population loss ``R(W) = E_x[(f(x; W) − f*(x))²]`` (no ½).

With the arc-cosine kernel ``K(u, v) = E_g[σ(u·g)σ(v·g)] = (|u||v| sin φ + (π − φ) u·v) / (2π)`` (``φ`` the
angle between ``u`` and ``v``, ``g ~ N(0, I_d)``) the loss is the quadratic form

    R = s² aᵀ K(W, W) a − 2 s aᵀ K(W, T) a* + a*ᵀ K(T, T) a*,

divided by ``d`` for sphere inputs (ReLU is positively homogeneous: ``E_gauss = d · E_sphere``). Its gradient is
``∇_{w_i} R = 2 a_i [s² Σ_k a_k ∇_u K(w_i, w_k) − s Σ_j a*_j ∇_u K(w_i, w*_j)]`` with
``∇_u K(u, v) = ((π − φ) v + |v| sin φ · u/|u|) / (2π)``. An exactly zero row gets gradient 0 (PyTorch's
``relu'(0) = 0``), so **dead neurons stay dead** under GD and SGD, and a model padded with zero rows is exactly the
narrower model: one batch can hold students of different widths (:meth:`GD.run`, ``widths=``).

Groups of functions, one module each:

- ``kernel``, kernel and loss: :func:`arccos_kernel`, :func:`population_loss`, :func:`population_grad`; the problem
  as one value, :class:`Population` (teacher ``T``, ``a*``, output scale, inputs);
- ``initialisation``, set-up: :func:`orthonormal_teacher`, :func:`small_init`, :func:`small_output_init`, :func:`pad_rows`;
- training, batched over models, each a small frozen schedule with one verb ``run``: ``gd``,
  :class:`GD` (``GD(c=…, steps=…).run(Population(T), W0)``, exact population GD, step ``η = c/m``; function form
  :func:`gd_population`); ``sgd``, :class:`SGD` (``SGD(batch_size=…, epochs=…).run(samples, W0, generator=…)``,
  minibatch SGD on an :class:`lmcnb.data.Split`; function form :func:`sgd_samples`);
- ``manifold``, the global-minimum manifold ``𝓜`` (notes §1.2) and the exact LMC criterion (notes §2.4):
  :func:`sample_minimum`, :func:`neuron_types`, :func:`hall_lmc_criterion`;
- ``pairs``, one pair of solutions: :func:`functional_cost`, :func:`functional_match` (by neuron type first,
  :func:`match_by_type`, when Hall's condition allows it; :func:`pair_costs`), :func:`interpolation_loss`,
  :func:`barrier_linear` (``θ_λ = (1 − λ) W_1 + λ W_2``);
- ``kernel`` also, stability: :func:`sharpness_population` (top Hessian eigenvalue, notes T3);
- ``experiment``, **the formal model of chapters 2–4** as one configuration: :class:`TeacherStudent` (``d, M, output, init_scale,
  c, steps, tol, …``) with :meth:`~TeacherStudent.train` (seeds × widths, batched) → :class:`Solutions`,
  :meth:`~TeacherStudent.barrier_sweep` / :meth:`~TeacherStudent.manifold_sweep` → :class:`BarrierTable`; one
  pair: :func:`weight_match`, :func:`pair_barriers` → :class:`PairBarriers`, the one result type of a pair's
  barriers (identity, weight matching, functional matching, the barrier modulo permutation = their minimum, and
  optionally the Hall criterion).
- ``views``, the model on the merge pipeline (:mod:`lmcnb.merge`): the tensors ``(W, a, s)`` are the canonical
  form and a :class:`~lmcnb.models.TwoLayerNet` is a view of them (:func:`to_module`, :func:`from_module`,
  :func:`to_modules`, :func:`from_modules`; exact round trips); the evaluator :class:`PopulationLoss` (``T, inputs``)
  gives the closed-form population loss ``R(θ_λ)`` along the path (:func:`interpolation_loss`), and
  :class:`PairMatching` (``"weight"``, ``"functional"``) the matchers of :func:`pair_barriers`, so
  ``merge.compare(Pair(to_module(W1, a1), to_module(W2, a2)), matchers, lambdas, PopulationLoss(T))`` is
  :func:`pair_barriers` on the one pipeline.

Everything is float64: a float32 argument raises ``TypeError`` (barriers of 1e-8 are below float32 noise).
Randomness comes only from an explicit ``torch.Generator``.
"""
from __future__ import annotations

from ._inputs import F64, INPUTS, SPLITS, TWO_PI
from .kernel import Population, arccos_kernel, population_grad, population_loss, sharpness_population
from .initialisation import orthonormal_teacher, pad_rows, small_init, small_output_init
from .gd import GD, GDResult, gd_population
from .sgd import SGD, SGDResult, sgd_samples
from .manifold import hall_lmc_criterion, neuron_types, sample_minimum
from .pairs import (BARRIER_KINDS, EXACT_PAIR_TOL, OUTPUTS, FunctionalMatching, PairBarriers, barrier_linear,
                    functional_cost, functional_match, interpolation_loss, match_by_type, pair_barriers, pair_costs,
                    weight_match)
from .experiment import BarrierTable, Solutions, TeacherStudent
from .views import (MATCH_KINDS, PairMatching, PopulationLoss, StudentTensors, from_module, from_modules, to_module,
                    to_modules)

__all__ = [
    "arccos_kernel", "population_loss", "population_grad", "Population",
    "orthonormal_teacher", "small_init", "small_output_init", "pad_rows",
    "GD", "GDResult", "gd_population", "SGD", "SGDResult", "sgd_samples",
    "sample_minimum", "neuron_types", "hall_lmc_criterion",
    "functional_cost", "functional_match", "match_by_type", "pair_costs", "EXACT_PAIR_TOL", "interpolation_loss",
    "barrier_linear", "FunctionalMatching",
    "sharpness_population",
    "weight_match", "PairBarriers", "pair_barriers",
    "TeacherStudent", "Solutions", "BarrierTable", "OUTPUTS", "BARRIER_KINDS",
    "StudentTensors", "to_module", "from_module", "to_modules", "from_modules", "PopulationLoss", "PairMatching",
    "MATCH_KINDS",
]
