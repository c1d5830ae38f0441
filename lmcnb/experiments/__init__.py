"""Experiment pipelines: the sweeps a chapter runs, named for what they compute.

Belongs here: a pipeline that composes the toolkit and the papers' models into one chapter's tables —
``mlp_widths`` (chapter 1's identity and weight-matched barriers of MLP pairs across widths), ``width_rates`` (barrier vs width: i.i.d. neurons vs teacher–student), ``lr_sparsity`` (learning rate,
sharpness and the sparsity transition), ``ot_rates`` (empirical Wasserstein rates and matched dimensions),
``real_data`` (real-data barriers under five views: identity, weight / activation matching, calibrated identity and calibrated weight matching). ``double_descent`` (statistics of a barrier-vs-width curve: the interior-peak bootstrap, the split of pairs
into exact zeros and the rest), ``cnn_merges`` (Ito et al.'s Table 1 on CIFAR-10: CNN merges across width
multipliers, sized by their FLOPs), ``paper_budgets`` (the paper profiles of chapters 1, 2, 4 and 6 as workloads
of the budget model :mod:`lmcnb.infra.budget`, read by ``tools/estimate_budget.py``). The top
layer: nothing in ``lmcnb`` imports it.
"""
