"""Chapter 7's experiments: the barrier of real-data networks under the four views of the three papers.

For one pair of trained networks ``(θ_a, θ_b)`` the *views* are the linear loss barrier (see
:mod:`lmcnb.barrier`) of

- ``no permutation``: the naive path ``(1−λ) θ_a + λ θ_b``;
- ``weight matching`` (Ainsworth et al. 2023) and ``activation matching`` (Ainsworth et al.; Jordan et al.;
  the OT view of Ferbach et al. 2024 coincides with it for equal widths and uniform measures): the path to
  ``π(θ_b)`` for the matcher's permutation ``π``;
- ``calibrated no permutation`` (Ito et al. 2026): the naive path with the softmax temperature ``T(λ)`` fitted
  per λ on a held-out split, the barrier of the calibrated NLL (``metric="calibrated_loss"``).

:func:`barrier_views` computes the four for one pair; :func:`mlp_width_sweep` trains MLP pairs over depths,
widths and weight decays (all models of one depth in one batched run, :func:`lmcnb.train.train_mlps`) and
returns one row per (depth, width, weight decay, pair), cached per configuration when a cache directory is given
(:func:`lmcnb.sweep.run_grid`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .. import barrier, matching, train
from ..infra import sweep
from .._validate import check_int

VIEWS = ("no permutation", "weight matching", "activation matching", "calibrated no permutation")


def barrier_views(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor, y: torch.Tensor, lambdas: object, *,
                  data_for_matching: torch.Tensor, calibration_split: tuple[torch.Tensor, torch.Tensor],
                  seed: int = 0, **path_kwargs: Any) -> dict[str, float]:
    """The four views' linear loss barriers between ``model_a`` and ``model_b`` (see the module docstring).

    Args:
        x: ``(n, *)`` evaluation inputs, y: ``(n,)`` int64 labels (cross-entropy).
        lambdas: ``(K,)`` grid with 0 and 1.
        data_for_matching: ``(n_m, *)`` held-out inputs for activation matching (not the evaluation set).
        calibration_split: held-out ``(x_cal, y_cal)`` on which the temperature ``T(λ)`` is fitted.
        seed: weight matching's seed (visiting order).
        path_kwargs: passed to :func:`lmcnb.barrier.evaluate_path` (e.g. ``bn="reset", bn_inputs=x_train``).

    Returns ``{view: barrier}`` with the keys of :data:`VIEWS`.
    """
    matchers = {"no permutation": matching.IdentityMatching(), "weight matching": matching.WeightMatching(seed=seed),
                "activation matching": matching.ActivationMatching()}
    res = barrier.barrier_modulo_permutation(model_a, model_b, matchers, x, y, lambdas,
                                             data_for_matching=data_for_matching,
                                             calibration_split=calibration_split, **path_kwargs)
    out = {name: float(o.barrier) for name, o in res.outcomes.items()}
    out["calibrated no permutation"] = float(res.outcomes["no permutation"].curve.barrier(metric="calibrated_loss"))
    return out


def mlp_width_sweep(data, depths: Sequence[int], widths: Sequence[int], weight_decays: Sequence[float],
                    config: train.TrainConfig, lambdas: torch.Tensor, *, n_pairs: int = 1, n_eval: int = 2000,
                    cache_dir=None, namespace: str = "ch07-mlp-v1", progress: bool = False) -> list[dict]:
    """Train ``n_pairs`` pairs of MLPs ``784 → width^depth → 10`` for every depth, width and weight decay on
    ``data.train`` and return one row per pair: ``depth, width, weight_decay, pair``, the four views' barriers
    (:func:`barrier_views`, on the first ``n_eval`` training inputs; matching on ``data.val.x``; temperatures on
    the validation split), and the endpoints' mean ``train_loss`` and ``test_accuracy``.

    One batched training run per depth (all widths, weight decays and seeds; seeds ``0 … 2·n_pairs−1``, pair
    ``p`` is seeds ``2p, 2p+1``). With ``cache_dir`` each depth's rows are cached (namespace ``namespace``).
    """
    for name, values in (("depths", depths), ("widths", widths), ("weight_decays", weight_decays)):
        if not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    check_int("n_pairs", n_pairs, 1)
    check_int("n_eval", n_eval, 1)
    lam = [float(v) for v in torch.as_tensor(lambdas).tolist()]
    grid = [{"depth": int(d), "widths": [int(w) for w in widths], "weight_decays": [float(v) for v in weight_decays],
             "config": repr(config), "lambdas": lam, "n_pairs": n_pairs, "n_eval": n_eval} for d in depths]

    def one_depth(depth, widths, weight_decays, config, lambdas, n_pairs, n_eval):
        return _one_depth(data, depth, widths, weight_decays, cfg, torch.tensor(lambdas), n_pairs, n_eval)

    cfg = config
    rows = []
    for _, result in sweep.run_grid(one_depth, grid, cache_dir=cache_dir, namespace=namespace, progress=progress):
        rows.extend(result)
    return rows


def _one_depth(data, depth: int, widths: Sequence[int], weight_decays: Sequence[float], config: train.TrainConfig,
               lambdas: torch.Tensor, n_pairs: int, n_eval: int) -> list[dict]:
    device = data.train.x.device
    d_in, n_cls = data.train.x[0].numel(), int(data.train.y.max()) + 1
    jobs = [(w, wd, s) for w in widths for wd in weight_decays for s in range(2 * n_pairs)]
    archs = [(d_in,) + (w,) * depth + (n_cls,) for w, _, _ in jobs]
    seeds = [s for _, _, s in jobs]
    inits = [train.init_mlps(a, 1, [s], device=device)[0] for a, s in zip(archs, seeds)]
    nets, _ = train.train_mlps(inits, data.train.x, data.train.y, config, seeds=seeds, pad=len(widths) > 1,
                               weight_decays=[wd for _, wd, _ in jobs])
    x_eval, y_eval = data.train.x[:n_eval], data.train.y[:n_eval]
    rows = []
    for i in range(0, len(jobs), 2):
        (w, wd, s), a, b = jobs[i], nets[i], nets[i + 1]
        views = barrier_views(a, b, x_eval, y_eval, lambdas, data_for_matching=data.val.x,
                              calibration_split=(data.val.x, data.val.y))
        ends = [barrier.evaluate(m, data.train.x, data.train.y) for m in (a, b)]
        tests = [barrier.evaluate(m, data.test.x, data.test.y) for m in (a, b)]
        rows.append({"depth": depth, "width": w, "weight_decay": wd, "pair": s // 2, **views,
                     "train_loss": sum(e.loss for e in ends) / 2,
                     "test_accuracy": sum(e.accuracy for e in tests) / 2})
    return rows


def pad_images(x: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Zero-pad square images ``(n, c, h, h)`` symmetrically to ``(n, c, size, size)`` (MNIST 28 → 32 for VGG)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"x must be square images (n, c, h, h), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    extra = check_int("size", size, 1) - x.shape[2]
    if extra < 0 or extra % 2:
        raise ValueError(f"cannot pad {x.shape[2]}x{x.shape[2]} images symmetrically to {size}x{size}")
    return F.pad(x, (extra // 2,) * 4)


CNN_ARCHS = ("vgg11", "resnet20")


def make_cnn(arch: str, width_multiplier: float, in_channels: int, num_classes: int, seed: int) -> nn.Module:
    """A freshly initialised ``VGG11`` (with BatchNorm) or ``ResNet20`` seeded by ``seed`` (torch's global RNG is
    saved and restored, so the draw depends on ``seed`` only)."""
    from .. import models

    if arch not in CNN_ARCHS:
        raise ValueError(f"arch must be one of {CNN_ARCHS}, got {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_int("seed", seed, 0))
        if arch == "vgg11":
            return models.VGG11(width_multiplier, num_classes, in_channels, batchnorm=True)
        return models.ResNet20(width_multiplier, num_classes, in_channels, norm=True)


def cnn_width_sweep(arch: str, data, multipliers: Sequence[float], config: train.TrainConfig,
                    lambdas: torch.Tensor, *, n_eval: int, n_bn: int, n_pairs: int = 1, batch_size: int = 1000,
                    cache_dir=None, namespace: str = "ch07-cnn-v1", progress: bool = False) -> list[dict]:
    """Train ``n_pairs`` pairs of ``arch`` (``"vgg11"`` or ``"resnet20"``) per width multiplier on
    ``data.train`` (images ``(n, c, h, h)``, zero-padded to 32×32 when smaller) with
    :func:`lmcnb.train.train_classifier`, and return one row per pair: ``arch, multiplier, pair``, the four views
    (:func:`barrier_views` with BatchNorm statistics re-estimated per λ on the first ``n_bn`` training images,
    ``bn="reset"``; evaluation on the first ``n_eval`` training images), and the endpoints' mean ``train_loss``
    and ``test_accuracy``. Evaluation and BatchNorm re-estimation run in batches of ``batch_size`` (GPU
    memory). With ``cache_dir`` each (multiplier, pair) is cached.
    """
    if not isinstance(multipliers, Sequence) or len(multipliers) == 0:
        raise ValueError(f"multipliers must be a non-empty sequence, got {multipliers!r}")
    if arch not in CNN_ARCHS:
        raise ValueError(f"arch must be one of {CNN_ARCHS}, got {arch!r}")
    check_int("n_eval", n_eval, 1)
    check_int("n_bn", n_bn, 1)
    check_int("n_pairs", n_pairs, 1)
    check_int("batch_size", batch_size, 1)
    if data.train.x.dim() != 4:
        raise ValueError(f"{arch} needs image inputs (n, c, h, w), got {tuple(data.train.x.shape)}")
    lam = [float(v) for v in torch.as_tensor(lambdas).tolist()]
    splits = {name: (_to32(s.x), s.y) for name, s in (("train", data.train), ("val", data.val), ("test", data.test))}
    grid = [{"arch": arch, "multiplier": float(m), "pair": p, "config": repr(config), "lambdas": lam,
             "n_eval": n_eval, "n_bn": n_bn, "data": f"{data.name}:{len(data.train)}"}
            for m in multipliers for p in range(n_pairs)]

    def one_pair(arch, multiplier, pair, config, lambdas, n_eval, n_bn, data):
        return _cnn_pair(arch, multiplier, pair, splits, cfg, torch.tensor(lambdas), n_eval, n_bn, batch_size)

    cfg = config
    return [r for _, r in sweep.run_grid(one_pair, grid, cache_dir=cache_dir, namespace=namespace,
                                         progress=progress)]


def _to32(x: torch.Tensor) -> torch.Tensor:
    return pad_images(x, 32) if x.shape[-1] < 32 else x


def _cnn_pair(arch: str, multiplier: float, pair: int, splits: dict, config: train.TrainConfig,
              lambdas: torch.Tensor, n_eval: int, n_bn: int, batch_size: int) -> dict:
    (x, y), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    n_cls = int(y.max()) + 1
    nets = []
    for seed in (2 * pair, 2 * pair + 1):
        init = make_cnn(arch, multiplier, x.shape[1], n_cls, seed).to(x.device)
        nets.append(train.train_classifier(init, x, y, config, seed=seed)[0])
    a, b = nets
    views = barrier_views(a, b, x[:n_eval], y[:n_eval], lambdas, data_for_matching=x_val,
                          calibration_split=(x_val, y_val), bn="reset", bn_inputs=x[:n_bn],
                          bn_batch_size=batch_size, batch_size=batch_size)
    ends = [barrier.evaluate(m, x, y, batch_size=batch_size) for m in nets]
    tests = [barrier.evaluate(m, x_test, y_test, batch_size=batch_size) for m in nets]
    return {"arch": arch, "multiplier": multiplier, "pair": pair, **views,
            "train_loss": sum(e.loss for e in ends) / 2, "test_accuracy": sum(e.accuracy for e in tests) / 2}
