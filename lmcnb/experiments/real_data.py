"""Chapter 7's experiments: the barrier of real-data networks under the four views of the three papers.

For one pair of trained networks ``(θ_a, θ_b)`` the *views* are the linear loss barrier (see
:mod:`lmcnb.barrier`) of

- ``no permutation``: the naive path ``(1−λ) θ_a + λ θ_b``;
- ``weight matching`` (Ainsworth et al. 2023) and ``activation matching`` (Ainsworth et al.; Jordan et al.;
  the OT view of Ferbach et al. 2024 coincides with it for equal widths and uniform measures): the path to
  ``π(θ_b)`` for the matcher's permutation ``π``;
- ``calibrated no permutation`` (Ito et al. 2026): the naive path with the softmax temperature ``T(λ)`` fitted
  per λ on a held-out split, the barrier of the calibrated NLL (``metric="calibrated_loss"``).

:func:`barrier_views` computes the four for one :class:`lmcnb.merge.Pair`; :func:`width_sweep` runs one sweep
spec, :class:`MLPSweep` (MLP pairs over depths, widths and weight decays, all models of one depth in one batched
run, :func:`lmcnb.train.train_mlps`) or :class:`CNNSweep` (VGG11 / ResNet20 pairs over width multipliers, BatchNorm
statistics re-estimated per λ), and returns one row per pair, cached per configuration when a :class:`CacheSpec`
is given (:func:`lmcnb.infra.sweep.run_grid`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch import nn
from torch.nn import functional as F

from .. import barrier, matching, merge, train
from ..infra import sweep
from .._validate import check_int, check_real

__all__ = ["VIEWS", "CNN_ARCHS", "barrier_views", "MLPSweep", "CNNSweep", "CacheSpec", "width_sweep",
           "mlp_width_sweep", "cnn_width_sweep", "pad_images", "make_cnn"]

VIEWS = ("no permutation", "weight matching", "activation matching", "calibrated no permutation")
CNN_ARCHS = ("vgg11", "resnet20")
#: Cache namespaces of the two sweeps (part of every cache key; change one when its computation changes).
MLP_NAMESPACE, CNN_NAMESPACE = "ch07-mlp-v1", "ch07-cnn-v1"


def barrier_views(pair: merge.Pair, lambdas: object, evaluator: merge.Empirical, *,
                  data_for_matching: torch.Tensor, calibration_split: tuple[torch.Tensor, torch.Tensor],
                  repairs: Sequence[Any] = (), seed: int = 0) -> dict[str, float]:
    """The four views' linear loss barriers between ``pair.model_a`` and ``pair.model_b`` (module docstring).

    Args:
        pair: the two trained endpoints.
        lambdas: ``(K,)`` grid with 0 and 1.
        evaluator: the evaluation split and settings, e.g. ``merge.Empirical(x (n, *), y (n,) int64)``
            (cross-entropy).
        data_for_matching: ``(n_m, *)`` held-out inputs for activation matching (not the evaluation set).
        calibration_split: held-out ``(x_cal, y_cal)`` on which the temperature ``T(λ)`` is fitted (the
            :class:`lmcnb.merge.CalibrateTemperature` repair of the fourth view).
        repairs: further repairs of every path, e.g. ``[merge.ResetBatchNorm(x_train)]`` for BatchNorm networks.
        seed: weight matching's seed (visiting order).

    Returns ``{view: barrier}`` with the keys of :data:`VIEWS`.
    """
    matchers = {"no permutation": matching.IdentityMatching(), "weight matching": matching.WeightMatching(seed=seed),
                "activation matching": matching.ActivationMatching()}
    res = merge.compare(pair, matchers, lambdas, evaluator, data=data_for_matching,
                        repairs=[merge.CalibrateTemperature(calibration_split), *repairs])
    out = {name: float(o.barrier) for name, o in res.outcomes.items()}
    out["calibrated no permutation"] = float(res.outcomes["no permutation"].curve.barrier(metric="calibrated_loss"))
    return out


# ----------------------------------------------------------------------------------------------- sweep specs
def _ints(name: str, values: object, minimum: int) -> tuple[int, ...]:
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(values))


def _reals(name: str, values: object, low: float, low_open: bool) -> tuple[float, ...]:
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    return tuple(check_real(f"{name}[{i}]", v, low, low_open=low_open) for i, v in enumerate(values))


def _grid_lambdas(lambdas: object) -> tuple[float, ...]:
    """The λ grid as floats (validated by :func:`lmcnb.barrier.check_lambdas`), as the cache keys store it."""
    barrier.check_lambdas(lambdas)
    return tuple(float(v) for v in torch.as_tensor(lambdas).tolist())


def _check_config(config: object) -> None:
    if not isinstance(config, train.TrainConfig):
        raise TypeError(f"config must be a train.TrainConfig, got {type(config).__name__}")


@dataclass(frozen=True)
class MLPSweep:
    """An MLP width sweep: ``n_pairs`` pairs of MLPs ``d → width^depth → C`` for every depth, width and weight
    decay, trained with ``config``; barriers on the grid ``lambdas`` (stored as a tuple of floats), evaluated on
    the first ``n_eval`` training inputs. Sequences must be non-empty; depths, widths ≥ 1; weight decays ≥ 0."""

    depths: Sequence[int]
    widths: Sequence[int]
    weight_decays: Sequence[float]
    config: train.TrainConfig
    lambdas: Any
    n_pairs: int = 1
    n_eval: int = 2000

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", _ints("depths", self.depths, 1))
        object.__setattr__(self, "widths", _ints("widths", self.widths, 1))
        object.__setattr__(self, "weight_decays", _reals("weight_decays", self.weight_decays, 0.0, False))
        _check_config(self.config)
        object.__setattr__(self, "lambdas", _grid_lambdas(self.lambdas))
        check_int("n_pairs", self.n_pairs, 1)
        check_int("n_eval", self.n_eval, 1)


@dataclass(frozen=True)
class CNNSweep:
    """A CNN width sweep: ``n_pairs`` pairs of ``arch`` (``"vgg11"`` or ``"resnet20"``) per width multiplier
    (> 0), trained with ``config``; barriers on ``lambdas`` (a tuple of floats) evaluated on the first ``n_eval``
    training images, BatchNorm statistics re-estimated per λ on the first ``n_bn``; evaluation and re-estimation
    in batches of ``batch_size`` (GPU memory)."""

    arch: str
    multipliers: Sequence[float]
    config: train.TrainConfig
    lambdas: Any
    n_eval: int
    n_bn: int
    n_pairs: int = 1
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.arch not in CNN_ARCHS:
            raise ValueError(f"arch must be one of {CNN_ARCHS}, got {self.arch!r}")
        object.__setattr__(self, "multipliers", _reals("multipliers", self.multipliers, 0.0, True))
        _check_config(self.config)
        object.__setattr__(self, "lambdas", _grid_lambdas(self.lambdas))
        for name in ("n_eval", "n_bn", "n_pairs", "batch_size"):
            check_int(name, getattr(self, name), 1)


@dataclass(frozen=True)
class CacheSpec:
    """Where a sweep caches its rows: ``directory`` (created if needed; None: no cache, as
    :func:`lmcnb.infra.sweep.default_cache_dir` returns unless ``$LMCNB_CACHE_DIR`` is set) and the key
    ``namespace`` (None: the sweep's own, :data:`MLP_NAMESPACE` or :data:`CNN_NAMESPACE`)."""

    directory: str | os.PathLike[str] | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        if self.directory is not None and not isinstance(self.directory, (str, os.PathLike)):
            raise TypeError(f"CacheSpec directory must be a path or None, got {type(self.directory).__name__}")
        if self.namespace is not None and (not isinstance(self.namespace, str) or not self.namespace):
            raise ValueError(f"CacheSpec namespace must be a non-empty str or None, got {self.namespace!r}")


def width_sweep(data, spec: MLPSweep | CNNSweep, *, cache: CacheSpec | None = None,
                progress: bool = False) -> list[dict]:
    """Train and measure every pair of ``spec`` on ``data`` (``.train``, ``.val``, ``.test`` splits) and return
    one row per pair: the pair's coordinates, the four views' barriers (:func:`barrier_views`; matching on
    ``data.val.x``, temperatures on the validation split) and the endpoints' mean ``train_loss`` and
    ``test_accuracy``.

    - :class:`MLPSweep`: rows ``depth, width, weight_decay, pair``; one batched training run per depth (all
      widths, weight decays and seeds; seeds ``0 … 2·n_pairs−1``, pair ``p`` is seeds ``2p, 2p+1``); one cache
      entry per depth.
    - :class:`CNNSweep`: rows ``arch, multiplier, pair``; images ``(n, c, h, h)`` zero-padded to 32×32 when
      smaller, trained with :func:`lmcnb.train.train_classifier`; one cache entry per (multiplier, pair).

    ``cache``: None (default) computes everything; a :class:`CacheSpec` with a directory caches every entry. ``progress``: a
    progress bar in the paper profile (:func:`lmcnb.infra.sweep.run_grid`).
    """
    if cache is not None and not isinstance(cache, CacheSpec):
        raise TypeError(f"cache must be a realdata.CacheSpec or None, got {type(cache).__name__}")
    if isinstance(spec, MLPSweep):
        return _mlp_sweep(data, spec, cache, progress)
    if isinstance(spec, CNNSweep):
        return _cnn_sweep(data, spec, cache, progress)
    raise TypeError(f"spec must be a realdata.MLPSweep or realdata.CNNSweep, got {type(spec).__name__}")


def mlp_width_sweep(*args: Any, **kwargs: Any) -> NoReturn:
    """Moved: ``width_sweep(data, MLPSweep(depths, widths, weight_decays, config, lambdas, n_pairs=…, n_eval=…),
    cache=CacheSpec(cache_dir, namespace), progress=…)``."""
    raise TypeError("realdata.mlp_width_sweep is now realdata.width_sweep(data, realdata.MLPSweep(depths, widths, "
                    "weight_decays, config, lambdas, n_pairs=…, n_eval=…), cache=realdata.CacheSpec(cache_dir), "
                    "progress=…)")


def cnn_width_sweep(*args: Any, **kwargs: Any) -> NoReturn:
    """Moved: ``width_sweep(data, CNNSweep(arch, multipliers, config, lambdas, n_eval, n_bn, n_pairs=…,
    batch_size=…), cache=CacheSpec(cache_dir, namespace), progress=…)``."""
    raise TypeError("realdata.cnn_width_sweep is now realdata.width_sweep(data, realdata.CNNSweep(arch, "
                    "multipliers, config, lambdas, n_eval=…, n_bn=…, n_pairs=…, batch_size=…), "
                    "cache=realdata.CacheSpec(cache_dir), progress=…)")


def _run(fn, grid: list[dict], cache: CacheSpec | None, default_namespace: str, progress: bool) -> list:
    directory = None if cache is None else cache.directory
    namespace = default_namespace if cache is None or cache.namespace is None else cache.namespace
    return [r for _, r in sweep.run_grid(fn, grid, cache_dir=directory, namespace=namespace, progress=progress)]


# ----------------------------------------------------------------------------------------------- MLPs
def _mlp_sweep(data, spec: MLPSweep, cache: CacheSpec | None, progress: bool) -> list[dict]:
    lam = list(spec.lambdas)
    grid = [{"depth": d, "widths": list(spec.widths), "weight_decays": list(spec.weight_decays),
             "config": repr(spec.config), "lambdas": lam, "n_pairs": spec.n_pairs, "n_eval": spec.n_eval}
            for d in spec.depths]

    def one_depth(depth, widths, weight_decays, config, lambdas, n_pairs, n_eval):
        return _one_depth(data, depth, widths, weight_decays, spec.config, torch.tensor(lambdas), n_pairs, n_eval)

    return [row for rows in _run(one_depth, grid, cache, MLP_NAMESPACE, progress) for row in rows]


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
    evaluator = merge.Empirical(data.train.x[:n_eval], data.train.y[:n_eval])
    rows = []
    for i in range(0, len(jobs), 2):
        (w, wd, s), a, b = jobs[i], nets[i], nets[i + 1]
        views = barrier_views(merge.Pair(a, b), lambdas, evaluator, data_for_matching=data.val.x,
                              calibration_split=(data.val.x, data.val.y))
        ends = [merge.evaluate(m, data.train.x, data.train.y) for m in (a, b)]
        tests = [merge.evaluate(m, data.test.x, data.test.y) for m in (a, b)]
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


def _cnn_sweep(data, spec: CNNSweep, cache: CacheSpec | None, progress: bool) -> list[dict]:
    if data.train.x.dim() != 4:
        raise ValueError(f"{spec.arch} needs image inputs (n, c, h, w), got {tuple(data.train.x.shape)}")
    lam = list(spec.lambdas)
    splits = {name: (_to32(s.x), s.y) for name, s in (("train", data.train), ("val", data.val), ("test", data.test))}
    grid = [{"arch": spec.arch, "multiplier": m, "pair": p, "config": repr(spec.config), "lambdas": lam,
             "n_eval": spec.n_eval, "n_bn": spec.n_bn, "data": f"{data.name}:{len(data.train)}"}
            for m in spec.multipliers for p in range(spec.n_pairs)]

    def one_pair(arch, multiplier, pair, config, lambdas, n_eval, n_bn, data):
        return _cnn_pair(arch, multiplier, pair, splits, spec.config, torch.tensor(lambdas), n_eval, n_bn,
                         spec.batch_size)

    return _run(one_pair, grid, cache, CNN_NAMESPACE, progress)


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
    views = barrier_views(merge.Pair(*nets), lambdas, merge.Empirical(x[:n_eval], y[:n_eval], batch_size=batch_size),
                          data_for_matching=x_val, calibration_split=(x_val, y_val),
                          repairs=[merge.ResetBatchNorm(x[:n_bn], batch_size)])
    ends = [merge.evaluate(m, x, y, batch_size=batch_size) for m in nets]
    tests = [merge.evaluate(m, x_test, y_test, batch_size=batch_size) for m in nets]
    return {"arch": arch, "multiplier": multiplier, "pair": pair, **views,
            "train_loss": sum(e.loss for e in ends) / 2, "test_accuracy": sum(e.accuracy for e in tests) / 2}
