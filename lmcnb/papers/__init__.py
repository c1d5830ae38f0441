"""The papers' models: each paper's mathematical object, built on the toolkit.

Belongs here: a model defined by one of the three papers, with its closed forms and its engines —
``teacher_student`` (Zhan, Li & Wu: two-layer ReLU teacher–student, population loss, GD/SGD, the minimum
manifold, pair barriers), ``meanfield`` (Ferbach et al.: mean-field two-layer networks, OT alignment),
``lewc`` (Ito et al.: layerwise exponentially weighted connectivity, Theorem 5.3). Imports the toolkit and
``lmcnb.infra``, never ``lmcnb.experiments``. Not here: generic LMC machinery (that is the toolkit) and sweeps
that only one chapter runs (those are experiments).
"""
