"""Chapter 1's width sweep: the identity and weight-matched loss barriers of pairs of MLPs at several widths.

:func:`width_barriers` trains ``n_pairs`` pairs of MLPs ``in → width × depth → classes`` at every width and returns
the median over pairs of their train-loss barriers without permutation and after weight matching. Every width is
one configuration of :func:`lmcnb.infra.sweep.run_grid` (:func:`width_pairs`), keyed by the data's content, the
training recipe and the λ grid, so a paper run (``make paper``) resumes width by width.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validate import check_bool, check_int
from ..infra import sweep as _sweep

__all__ = ["WIDTH_NAMESPACE", "width_barriers", "width_pairs"]

#: Key namespace of :func:`width_barriers`'s sweep cache; change the version whenever :func:`width_pairs` changes.
WIDTH_NAMESPACE = "ch01-width-barriers-v1"


def width_pairs(x: torch.Tensor, y: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, config: Any,
                lambdas: torch.Tensor, width: int, depth: int, n_pairs: int,
                device: torch.device | str | None = None) -> list[tuple[float, float]]:
    """One width: train the MLPs ``(in, width × depth, classes)`` of seeds ``0, …, 2 n_pairs − 1`` in one batch
    (:func:`lmcnb.train.init_mlps` on ``device``, :func:`lmcnb.train.train_mlps` on ``x (n, in)``, ``y (n,)`` under
    ``config``) and return, for the pairs ``(0, 1), (2, 3), …``, ``(identity barrier, weight-matched barrier)`` of
    the loss on ``(x_eval, y_eval)`` along ``lambdas`` (:func:`lmcnb.merge.compare` with
    ``IdentityMatching()`` and ``WeightMatching(seed=0)``), as floats."""
    from .. import matching, merge, train

    width, depth, n_pairs = check_int("width", width, 1), check_int("depth", depth, 1), check_int("n_pairs", n_pairs, 1)
    arch = (x[0].numel(), *([width] * depth), int(y.max()) + 1)
    seeds = list(range(2 * n_pairs))
    inits = train.init_mlps(arch, len(seeds), seeds, device=device)
    nets, _ = train.train_mlps(inits, x, y, config, seeds=seeds)
    out = []
    for a, b in zip(nets[::2], nets[1::2]):
        matchers = {"identity": matching.IdentityMatching(), "matched": matching.WeightMatching(seed=0)}
        got = merge.compare(merge.Pair(a, b), matchers, lambdas, merge.Empirical(x_eval, y_eval)).outcomes
        out.append((float(got["identity"].barrier), float(got["matched"].barrier)))
    return out


def _width_unit(x: torch.Tensor, y: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, config: Any,
                lambdas: torch.Tensor, device: torch.device | str | None, /, *, width: int, depth: int,
                n_pairs: int, **content: Any) -> list[tuple[float, float]]:
    """:func:`width_pairs` as a sweep configuration: the tensors and the recipe are bound (a ``functools.partial``
    of this module-level function, picklable), ``content`` (their digests) only names the result."""
    return width_pairs(x, y, x_eval, y_eval, config, lambdas, width, depth, n_pairs, device)


def width_barriers(x: torch.Tensor, y: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, config: Any,
                   lambdas: torch.Tensor, widths: Sequence[int], depth: int, n_pairs: int, *,
                   device: torch.device | str | None = None,
                   cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER,
                   progress: bool = True) -> np.ndarray:
    """Median over ``n_pairs`` pairs of ``(identity, weight-matched)`` barriers at every width (:func:`width_pairs`).

    Args:
        x, y: training inputs ``(n, in)`` and labels ``(n,)``. x_eval, y_eval: where the barriers are measured.
        config: the :class:`lmcnb.train.TrainConfig`. lambdas: the path grid ``(K,)``.
        widths: hidden widths. depth: hidden layers. n_pairs: pairs per width. device: where the MLPs live.
        cache_dir, executor: every width is one configuration of :func:`lmcnb.infra.sweep.run_grid`
            (:data:`WIDTH_NAMESPACE`; the key holds the width, depth, pairs, ``config``'s fields and the
            digests of the data and of ``lambdas``), so an interrupted run resumes with the missing widths.
            Both default to the headless runner's settings (:data:`lmcnb.infra.sweep.RUNNER`:
            ``$LMCNB_CACHE_DIR`` and ``$LMCNB_ENGINE``, set by ``make paper``, unset in CI and the quick
            profile); None: no cache / here.
        progress: a progress bar over the widths in the paper profile (never in quick).

    Returns:
        ``(len(widths), 2)`` float64 array: column 0 the identity barrier, column 1 the weight-matched one.
    """
    for name, t in (("x", x), ("y", y), ("x_eval", x_eval), ("y_eval", y_eval), ("lambdas", lambdas)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) == 0:
        raise TypeError(f"widths must be a non-empty sequence of ints, got {type(widths).__name__}")
    ws = [check_int(f"widths[{i}]", w, 1) for i, w in enumerate(widths)]
    depth, n_pairs = check_int("depth", depth, 1), check_int("n_pairs", n_pairs, 1)
    check_bool("progress", progress)
    digest = _sweep.tensor_digest
    content = {"data": [digest(x), digest(y)], "evaluation": [digest(x_eval), digest(y_eval)],
               "config": _sweep.dataclass_key(config), "lambdas": digest(lambdas)}
    grid = [{"width": w, "depth": depth, "n_pairs": n_pairs, **content} for w in ws]
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    fn = functools.partial(_width_unit, x, y, x_eval, y_eval, config, lambdas, device)
    rows = _sweep.run_grid(fn, grid, cache_dir=cache_dir, namespace=WIDTH_NAMESPACE, progress=progress,
                           executor=executor)
    return np.array([np.median(np.array(pairs), axis=0) for _, pairs in rows])
