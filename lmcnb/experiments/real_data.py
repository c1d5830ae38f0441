"""Chapter 7's experiments: the barrier of real-data networks under five views, with chapter 6's protocol.

For one pair of trained networks ``(θ_a, θ_b)`` the *views* are paths from ``θ_a`` to an aligned ``π(θ_b)``:

- ``identity``: the identity permutation, ``(1−λ) θ_a + λ θ_b`` (b merged with no permutation applied);
- ``weight matching`` (Ainsworth et al. 2023) and ``activation matching`` (Ainsworth et al.; Jordan et al.;
  the OT view of Ferbach et al. 2024 coincides with it for equal widths and uniform measures): the path to
  ``π(θ_b)`` for the matcher's permutation ``π``;
- ``calibrated identity`` and ``calibrated weight matching`` (Ito et al. 2026): the same two paths with the
  softmax temperature ``T(λ)`` fitted per λ on a held-out split (:class:`lmcnb.merge.CalibrateTemperature`);
  their loss is the calibrated NLL, their accuracy that of the uncalibrated path (a temperature does not move
  the argmax).

Every view is measured with chapter 6's barrier definitions (:data:`BARRIERS`): the *midpoint* barrier
``B_mid = f(θ_½) − ½ (f(θ_0) + f(θ_1))`` and the *sup* barrier ``B_sup = max_λ [f(θ_λ) − ((1−λ) f(θ_0) + λ
f(θ_1))]`` of the loss and of the accuracy (signs such that a drop of accuracy is a positive barrier), on a
test split that neither training, matching nor calibration has seen.

:func:`barrier_views` computes the five for one :class:`lmcnb.merge.Pair`; :func:`lewc_diagnostics` adds Ito et
al.'s layer diagnostics at λ = ½ for MLP pairs (:mod:`lmcnb.papers.lewc`); :func:`width_sweep` runs one sweep
spec, :class:`MLPSweep` (MLP pairs over depths, widths and weight decays, all models of one depth in one batched
run, :func:`lmcnb.train.train_mlps`) or :class:`CNNSweep` (VGG11 / ResNet20 pairs over width multipliers, BatchNorm
statistics re-estimated per λ in batches, optionally trained with random crop and flip), and returns one row per
pair and view, cached per configuration when a :class:`CacheSpec` is given (:func:`lmcnb.infra.sweep.run_grid`).
The CNNs are built and trained by chapter 6's :func:`lmcnb.experiments.cnn_merges.train_seeded` (seeded
construction, crop-and-flip augmentation).

The paper profile's CIFAR-10 cell runs chapter 6's recipe (:class:`lmcnb.experiments.cnn_merges.ConvSweep`:
``CONV_PAPER``, a width trend that fits the GPU-hour; ``CONV_FULL``, Table 1's size) under the five views:
:func:`conv_sweeps` turns a ``ConvSweep`` into one :class:`CNNSweep` per architecture, :func:`conv_width_sweep`
runs them, :func:`table1_views` prints the rows beside Table 1. :meth:`MLPSweep.flops`, :meth:`CNNSweep.flops`
and :meth:`CNNSweep.steps` size a sweep (the chapter's GPU-minute estimate).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch import nn
from torch.nn import functional as F

from .. import barrier, matching, merge, train
from ..infra import sweep
from ..models import MLP
from . import cnn_merges
from ..papers import lewc
from .._validate import RenamedKeys, check_int, check_real

__all__ = ["VIEWS", "BARRIERS", "LEWC_DIAGNOSTICS", "CNN_ARCHS", "barrier_views", "lewc_diagnostics", "MLPSweep",
           "CNNSweep", "CacheSpec", "width_sweep", "mlp_width_sweep", "cnn_width_sweep", "pad_images", "make_cnn",
           "conv_sweeps", "conv_width_sweep", "table1_views"]

VIEWS = ("identity", "weight matching", "activation matching", "calibrated identity", "calibrated weight matching")
#: The aligned path behind each view (a calibrated view is its base path with ``T(λ)`` fitted per λ).
BASE_VIEW = {"identity": "identity", "weight matching": "weight matching",
             "activation matching": "activation matching", "calibrated identity": "identity",
             "calibrated weight matching": "weight matching"}
#: The four barriers of every view: ``"<metric> <kind>"`` (chapter 6's definitions, the test split).
BARRIERS = ("loss midpoint", "loss sup", "accuracy midpoint", "accuracy sup")
#: :func:`lewc_diagnostics`' keys.
LEWC_DIAGNOSTICS = ("logit_scale", "lewc_cos_out", "weak_additivity", "ro_ratio", "commutativity")
CNN_ARCHS = ("vgg11", "resnet20")
#: Cache namespaces of the two sweeps (part of every cache key; change one when its computation changes).
MLP_NAMESPACE, CNN_NAMESPACE = "ch07-mlp-v2", "ch07-cnn-v2"
_KIND = {"midpoint": "midpoint", "sup": "linear"}


def _view_barriers(curve: barrier.InterpolationCurve, calibrated: bool) -> dict[str, float]:
    out = {}
    for name in BARRIERS:
        metric, kind = name.split()
        m = "calibrated_loss" if calibrated and metric == "loss" else metric
        out[name] = float(curve.barrier(_KIND[kind], m))
    return out


def _views(pair: merge.Pair, lambdas: object, evaluator: merge.Empirical, data_for_matching: torch.Tensor,
           calibration_split: tuple[torch.Tensor, torch.Tensor], repairs: Sequence[Any], seed: int
           ) -> tuple[dict[str, dict[str, float]], dict[str, merge.Pair]]:
    lam = barrier.check_lambdas(lambdas)
    if not bool((lam == 0.5).any()):
        raise ValueError("lambdas must contain 0.5 (the midpoint barrier)")
    matchers = {"identity": matching.IdentityMatching(), "weight matching": matching.WeightMatching(seed=seed),
                "activation matching": matching.ActivationMatching()}
    res = merge.compare(pair, matchers, lam, evaluator, data=data_for_matching,
                        repairs=[merge.CalibrateTemperature(calibration_split), *repairs])
    out = {view: _view_barriers(res.outcomes[BASE_VIEW[view]].curve, view.startswith("calibrated"))
           for view in VIEWS}
    return out, {name: o.pair for name, o in res.outcomes.items()}


def _takes_a_pair(fn):
    """``fn(pair, …)`` behind a guard: the old form ``fn(model_a, model_b, x, y, lambdas, …)`` (anything but a
    :class:`lmcnb.merge.Pair` first) raises a TypeError naming the new call; the signature stays ``fn``'s."""
    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        pair = args[0] if args else kwargs.get("pair")
        if not isinstance(pair, merge.Pair):
            raise TypeError(f"{fn.__name__} takes a merge.Pair and an evaluator: {fn.__name__}(merge.Pair(model_a, "
                            "model_b), lambdas, merge.Empirical(x, y), data_for_matching=…, calibration_split=…)")
        return fn(*args, **kwargs)
    return guarded


@_takes_a_pair
def barrier_views(pair: merge.Pair, lambdas: object, evaluator: merge.Empirical, *,
                  data_for_matching: torch.Tensor, calibration_split: tuple[torch.Tensor, torch.Tensor],
                  repairs: Sequence[Any] = (), seed: int = 0) -> dict[str, dict[str, float]]:
    """The five views' barriers between ``pair.model_a`` and ``pair.model_b`` (module docstring).

    Args:
        pair: the two trained endpoints.
        lambdas: ``(K,)`` grid with 0, ½ and 1.
        evaluator: the evaluation split and settings, e.g. ``merge.Empirical(x_test (n, *), y_test (n,) int64)``
            (cross-entropy).
        data_for_matching: ``(n_m, *)`` held-out inputs for activation matching (not the evaluation set).
        calibration_split: held-out ``(x_cal, y_cal)`` on which the temperature ``T(λ)`` of the calibrated
            views is fitted (the :class:`lmcnb.merge.CalibrateTemperature` repair).
        repairs: further repairs of every path, e.g. ``[merge.ResetBatchNorm(x_train, batch_size)]`` for
            BatchNorm networks.
        seed: weight matching's seed (visiting order).

    Returns ``{view: {barrier: value}}`` with the views of :data:`VIEWS` and the barriers of :data:`BARRIERS`
    (the old view names ``no permutation`` / ``calibrated no permutation`` fail naming ``identity`` / ``calibrated
    identity``). The old form ``barrier_views(model_a, model_b, x, y, lambdas, …)`` raises a TypeError
    naming this one.
    """
    return RenamedKeys(_views(pair, lambdas, evaluator, data_for_matching, calibration_split, repairs, seed)[0],
                       {"no permutation": "identity", "calibrated no permutation": "calibrated identity"})


def lewc_diagnostics(pair: merge.Pair, x: torch.Tensor) -> dict[str, float]:
    """Ito et al.'s LEWC diagnostics of an MLP pair at λ = ½ on inputs ``x (n, h_0)`` (:mod:`lmcnb.papers.lewc`).

    Returns (keys :data:`LEWC_DIAGNOSTICS`): ``logit_scale`` = ``‖f_L(θ_½)‖ / ‖½(f_L^a + f_L^b)‖``
    (:func:`lmcnb.papers.lewc.logit_scale_ratio`; LEWC: ``2^{1−L}``, LLFC with ``c = 1``: 1), ``lewc_cos_out``
    (cosine of the merged logits with LEWC's prediction), ``weak_additivity`` (layer-1 cosine; compare with the
    chance level of chapter 6), ``ro_ratio`` and ``commutativity`` (means over layers ``ℓ ≥ 2`` of the
    reciprocal-orthogonality ratio, LEWC's sufficient condition, and of Zhou et al.'s commutativity residual,
    LLFC's; they exclude each other, chapter 6).
    """
    if not isinstance(pair, merge.Pair):
        raise TypeError(f"pair must be a merge.Pair, got {type(pair).__name__}")
    a, b = pair.model_a, pair.model_b
    if not isinstance(a, MLP):
        raise TypeError(f"lewc_diagnostics needs lmcnb.models.MLP endpoints, got {type(a).__name__}")
    rep = lewc.connectivity_report(a, b, x)
    with torch.no_grad():
        scale = lewc.logit_scale_ratio(lewc.merge(a, b, 0.5)(x), a(x), b(x))
    return dict(logit_scale=float(scale), lewc_cos_out=float(rep[-1].lewc_cosine),
                weak_additivity=float(rep[0].weak_additivity),
                ro_ratio=float(sum(r.reciprocal_orthogonality for r in rep[1:]) / (len(rep) - 1)),
                commutativity=float(sum(r.commutativity for r in rep[1:]) / (len(rep) - 1)))


def _rows(coords: dict, views: dict[str, dict[str, float]], diagnostics: dict[str, dict[str, float]] | None,
          ends: dict[str, float]) -> list[dict]:
    """One row per view: the pair's coordinates, ``view``, its barriers, its path's diagnostics, the endpoints."""
    rows = []
    for v in VIEWS:
        diag = {} if diagnostics is None else diagnostics[BASE_VIEW[v]]
        rows.append({**coords, "view": v, **views[v], **diag, **ends})
    return rows


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
    """The λ grid as floats (validated by :func:`lmcnb.barrier.check_lambdas`, with ½ for the midpoint
    barrier), as the cache keys store it."""
    barrier.check_lambdas(lambdas)
    grid = tuple(float(v) for v in torch.as_tensor(lambdas).tolist())
    if 0.5 not in grid:
        raise ValueError(f"lambdas must contain 0.5 (the midpoint barrier), got {grid}")
    return grid


def _check_config(config: object) -> None:
    if not isinstance(config, train.TrainConfig):
        raise TypeError(f"config must be a train.TrainConfig, got {type(config).__name__}")


@dataclass(frozen=True)
class MLPSweep:
    """An MLP width sweep: ``n_pairs`` pairs of MLPs ``d → width^depth → C`` for every depth, width and weight
    decay, trained with ``config``; barriers on the grid ``lambdas`` (stored as a tuple of floats, with 0, ½ and
    1), evaluated on the first ``n_eval`` test inputs. Pair ``p`` is seeds ``first_seed + 2p``, ``first_seed +
    2p + 1`` (calibrate on other seeds than the ones shown). Sequences must be non-empty; depths, widths ≥ 1;
    weight decays ≥ 0."""

    depths: Sequence[int]
    widths: Sequence[int]
    weight_decays: Sequence[float]
    config: train.TrainConfig
    lambdas: Any
    n_pairs: int = 1
    n_eval: int = 2000
    first_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", _ints("depths", self.depths, 1))
        object.__setattr__(self, "widths", _ints("widths", self.widths, 1))
        object.__setattr__(self, "weight_decays", _reals("weight_decays", self.weight_decays, 0.0, False))
        _check_config(self.config)
        object.__setattr__(self, "lambdas", _grid_lambdas(self.lambdas))
        check_int("n_pairs", self.n_pairs, 1)
        check_int("n_eval", self.n_eval, 1)
        check_int("first_seed", self.first_seed, 0)

    def flops(self, n_train: int, n_val: int, in_features: int = 784, classes: int = 10) -> float:
        """The sweep's matmul FLOPs (2 per multiply-add; biases, ReLU and the loss not counted) on ``n_train``
        training and ``n_val`` validation inputs of ``in_features`` with ``classes`` classes.

        Training: per depth, every network is computed at the padded (largest) width, as the batched run does
        (:func:`lmcnb.train.train_mlps`), ``3 × forward`` per input per epoch. Measuring, per pair at its own
        width: 3 paths × ``K`` λ × (``n_val`` calibration + ``n_eval`` test) forwards, activation matching's
        2 × ``n_val``, the LEWC diagnostics' 4 forwards of ``n_eval`` per path, the endpoints' 2 × (``n_train`` +
        ``n_eval``). Weight matching's assignments (CPU) are not counted."""
        n_train, n_val = check_int("n_train", n_train, 1), check_int("n_val", n_val, 1)
        d, c = check_int("in_features", in_features, 1), check_int("classes", classes, 1)
        epochs = self.config.epochs if self.config.epochs is not None else (
            self.config.steps * self.config.batch_size / n_train)
        per_width = len(self.weight_decays) * self.n_pairs
        k, total = len(self.lambdas), 0.0
        for depth in self.depths:
            def fwd(w: int) -> float:
                return 2.0 * (d * w + (depth - 1) * w * w + w * c)
            total += 2 * per_width * len(self.widths) * 3 * fwd(max(self.widths)) * n_train * epochs
            per_pair = (3 * k * (n_val + self.n_eval) + 2 * n_val + 3 * 4 * self.n_eval
                        + 2 * (n_train + self.n_eval))
            total += sum(per_width * per_pair * fwd(w) for w in self.widths)
        return total


@dataclass(frozen=True)
class CNNSweep:
    """A CNN width sweep: ``n_pairs`` pairs of ``arch`` (``"vgg11"`` or ``"resnet20"``) per width multiplier
    (> 0), trained with ``config``; barriers on ``lambdas`` (a tuple of floats with 0, ½ and 1) evaluated on the
    first ``n_eval`` test images, BatchNorm statistics re-estimated per λ on the first ``n_bn`` training images;
    evaluation and re-estimation in batches of ``batch_size`` (GPU memory). Pair ``p`` is seeds ``first_seed +
    2p``, ``first_seed + 2p + 1`` (construction and data order, :func:`lmcnb.experiments.cnn_merges.train_seeded`);
    ``augment``: random crop (4-pixel zero padding) and horizontal flip during training
    (:class:`lmcnb.experiments.cnn_merges.RandomCropFlip`, seeded by the network's seed)."""

    arch: str
    multipliers: Sequence[float]
    config: train.TrainConfig
    lambdas: Any
    n_eval: int
    n_bn: int
    n_pairs: int = 1
    batch_size: int = 1000
    first_seed: int = 0
    augment: bool = False

    def __post_init__(self) -> None:
        if self.arch not in CNN_ARCHS:
            raise ValueError(f"arch must be one of {CNN_ARCHS}, got {self.arch!r}")
        object.__setattr__(self, "multipliers", _reals("multipliers", self.multipliers, 0.0, True))
        _check_config(self.config)
        object.__setattr__(self, "lambdas", _grid_lambdas(self.lambdas))
        for name in ("n_eval", "n_bn", "n_pairs", "batch_size"):
            check_int(name, getattr(self, name), 1)
        check_int("first_seed", self.first_seed, 0)
        if not isinstance(self.augment, bool):
            raise TypeError(f"CNNSweep augment must be a bool, got {type(self.augment).__name__}")

    def _make(self, multiplier: float, in_channels: int, classes: int) -> nn.Module:
        return _build_cnn(self.arch, multiplier, in_channels, classes)

    def steps(self, n_train: int) -> int:
        """Training steps of the whole sweep (every network of every pair and multiplier) on ``n_train``
        images: the count a per-step overhead multiplies."""
        per_net = self.config.total_steps(check_int("n_train", n_train, 1))
        return 2 * self.n_pairs * len(self.multipliers) * per_net

    def flops(self, n_train: int, n_val: int, image: Sequence[int] = (3, 32, 32), classes: int = 10) -> float:
        """The sweep's convolution and linear FLOPs (:func:`lmcnb.experiments.cnn_merges.forward_flops`, counted on
        the meta device) on ``n_train`` training and ``n_val`` validation images of shape ``image``: per pair, two
        networks trained (``3 × forward`` per image per epoch); 3 paths × ``K`` λ × (``n_bn`` BatchNorm-reset +
        ``n_val`` calibration + ``n_eval`` test) forwards; activation matching's 2 × ``n_val``; the endpoints'
        2 × (``n_train`` + ``n_eval``). Weight matching's assignments (CPU) are not counted."""
        n_train, n_val = check_int("n_train", n_train, 1), check_int("n_val", n_val, 1)
        shape = tuple(check_int("image entry", v, 1) for v in image)
        classes = check_int("classes", classes, 1)
        epochs = self.config.total_steps(n_train) * self.config.batch_size / n_train
        k, total = len(self.lambdas), 0.0
        for m in self.multipliers:
            fwd = cnn_merges.forward_flops(lambda: self._make(m, shape[0], classes), shape)
            per_pair = (2 * 3 * epochs * n_train + 3 * k * (self.n_bn + n_val + self.n_eval) + 2 * n_val
                        + 2 * (n_train + self.n_eval))
            total += self.n_pairs * per_pair * fwd
        return total


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
                progress: bool = False, executor: Any = None) -> list[dict]:
    """Train and measure every pair of ``spec`` on ``data`` (``.train``, ``.val``, ``.test`` splits) and return
    one row per pair and view: the pair's coordinates, ``seeds`` ``(s_a, s_b)``, ``view`` (:data:`VIEWS`), the
    view's four barriers on the test split (:data:`BARRIERS`, :func:`barrier_views`; matching on ``data.val.x``,
    temperatures on the validation split) and the endpoints' mean ``train_loss`` and ``test_accuracy``.

    - :class:`MLPSweep`: coordinates ``depth, width, weight_decay, pair``, and the LEWC diagnostics of the view's
      path (:func:`lewc_diagnostics` on the test inputs; a calibrated view shares its base path's); one batched
      training run per depth (all widths, weight decays and seeds; pair ``p`` is seeds ``first_seed + 2p,
      first_seed + 2p + 1``); one cache entry per depth.
    - :class:`CNNSweep`: coordinates ``arch, multiplier, pair``; images ``(n, c, h, h)`` zero-padded to 32×32
      when smaller, trained with :func:`lmcnb.train.train_classifier`, BatchNorm reset per λ on training images
      (:class:`lmcnb.merge.ResetBatchNorm`, in batches of ``spec.batch_size``); one cache entry per
      (multiplier, pair).

    ``cache``: None (default) computes everything; a :class:`CacheSpec` with a directory caches every entry. ``progress``: a
    progress bar in the paper profile (:func:`lmcnb.infra.sweep.run_grid`). ``executor``: where the entries run
    (None: here, one after another; any ``concurrent.futures``-style executor, e.g.
    ``lmcnb.infra.sweep.default_executor()`` for ``make paper ENGINE=…``): the rows are the same; each task carries
    ``data`` with it (cloudpickle), so on a cluster give the workers a shared cache directory.
    """
    if cache is not None and not isinstance(cache, CacheSpec):
        raise TypeError(f"cache must be a realdata.CacheSpec or None, got {type(cache).__name__}")
    if isinstance(spec, MLPSweep):
        return _mlp_sweep(data, spec, cache, progress, executor)
    if isinstance(spec, CNNSweep):
        return _cnn_sweep(data, spec, cache, progress, executor)
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


def _run(fn, grid: list[dict], cache: CacheSpec | None, default_namespace: str, progress: bool,
         executor: Any = None) -> list:
    directory = None if cache is None else cache.directory
    namespace = default_namespace if cache is None or cache.namespace is None else cache.namespace
    return [r for _, r in sweep.run_grid(fn, grid, cache_dir=directory, namespace=namespace, progress=progress,
                                         executor=executor)]


# ----------------------------------------------------------------------------------------------- MLPs
def _mlp_sweep(data, spec: MLPSweep, cache: CacheSpec | None, progress: bool, executor: Any = None) -> list[dict]:
    lam = list(spec.lambdas)
    grid = [{"depth": d, "widths": list(spec.widths), "weight_decays": list(spec.weight_decays),
             "config": repr(spec.config), "lambdas": lam, "n_pairs": spec.n_pairs, "n_eval": spec.n_eval,
             "first_seed": spec.first_seed, "dataset": f"{data.name}:{len(data.train)}"}
            for d in spec.depths]

    def one_depth(depth, widths, weight_decays, config, lambdas, n_pairs, n_eval, first_seed, dataset):
        return _one_depth(data, depth, widths, weight_decays, spec.config, torch.tensor(lambdas), n_pairs, n_eval,
                          first_seed)

    return [row for rows in _run(one_depth, grid, cache, MLP_NAMESPACE, progress, executor) for row in rows]


def _one_depth(data, depth: int, widths: Sequence[int], weight_decays: Sequence[float], config: train.TrainConfig,
               lambdas: torch.Tensor, n_pairs: int, n_eval: int, first_seed: int) -> list[dict]:
    device = data.train.x.device
    d_in, n_cls = data.train.x[0].numel(), int(data.train.y.max()) + 1
    jobs = [(w, wd, first_seed + s) for w in widths for wd in weight_decays for s in range(2 * n_pairs)]
    archs = [(d_in,) + (w,) * depth + (n_cls,) for w, _, _ in jobs]
    seeds = [s for _, _, s in jobs]
    inits = [train.init_mlps(a, 1, [s], device=device)[0] for a, s in zip(archs, seeds)]
    nets, _ = train.train_mlps(inits, data.train.x, data.train.y, config, seeds=seeds, pad=len(widths) > 1,
                               weight_decays=[wd for _, wd, _ in jobs])
    x_test, y_test = data.test.x[:n_eval], data.test.y[:n_eval]
    evaluator = merge.Empirical(x_test, y_test)
    rows = []
    for i in range(0, len(jobs), 2):
        (w, wd, s), a, b = jobs[i], nets[i], nets[i + 1]
        views, aligned = _views(merge.Pair(a, b), lambdas, evaluator, data.val.x, (data.val.x, data.val.y), (), 0)
        diagnostics = {name: lewc_diagnostics(p, x_test) for name, p in aligned.items()}
        ends = [merge.evaluate(m, data.train.x, data.train.y) for m in (a, b)]
        tests = [merge.evaluate(m, x_test, y_test) for m in (a, b)]
        coords = {"depth": depth, "width": w, "weight_decay": wd, "pair": (s - first_seed) // 2, "seeds": (s, s + 1)}
        rows += _rows(coords, views, diagnostics, {"train_loss": sum(e.loss for e in ends) / 2,
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
    if arch not in CNN_ARCHS:
        raise ValueError(f"arch must be one of {CNN_ARCHS}, got {arch!r}")
    return cnn_merges.seeded_model(lambda: _build_cnn(arch, width_multiplier, in_channels, num_classes),
                                   check_int("seed", seed, 0))


def _build_cnn(arch: str, width_multiplier: float, in_channels: int, num_classes: int) -> nn.Module:
    from .. import models

    if arch == "vgg11":
        return models.VGG11(width_multiplier, num_classes, in_channels, batchnorm=True)
    return models.ResNet20(width_multiplier, num_classes, in_channels, norm=True)


def _cnn_sweep(data, spec: CNNSweep, cache: CacheSpec | None, progress: bool, executor: Any = None) -> list[dict]:
    if data.train.x.dim() != 4:
        raise ValueError(f"{spec.arch} needs image inputs (n, c, h, w), got {tuple(data.train.x.shape)}")
    lam = list(spec.lambdas)
    splits = {name: (_to32(s.x), s.y) for name, s in (("train", data.train), ("val", data.val), ("test", data.test))}
    grid = [{"arch": spec.arch, "multiplier": m, "pair": p, "config": repr(spec.config), "lambdas": lam,
             "n_eval": spec.n_eval, "n_bn": spec.n_bn, "first_seed": spec.first_seed,
             "data": f"{data.name}:{len(data.train)}", **({"augment": True} if spec.augment else {})}
            for m in spec.multipliers for p in range(spec.n_pairs)]

    def one_pair(arch, multiplier, pair, config, lambdas, n_eval, n_bn, first_seed, data, augment=False):
        return _cnn_pair(spec, multiplier, pair, splits, torch.tensor(lambdas))

    return [row for rows in _run(one_pair, grid, cache, CNN_NAMESPACE, progress, executor) for row in rows]


def _to32(x: torch.Tensor) -> torch.Tensor:
    return pad_images(x, 32) if x.shape[-1] < 32 else x


def _cnn_pair(spec: CNNSweep, multiplier: float, pair: int, splits: dict, lambdas: torch.Tensor) -> list[dict]:
    (x, y), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    x_test, y_test = x_test[:spec.n_eval], y_test[:spec.n_eval]
    n_cls, batch_size, arch = int(y.max()) + 1, spec.batch_size, spec.arch
    seeds = (spec.first_seed + 2 * pair, spec.first_seed + 2 * pair + 1)
    nets = [cnn_merges.train_seeded(lambda: spec._make(multiplier, x.shape[1], n_cls), seed, x, y, spec.config,
                                    augment=spec.augment, device=x.device) for seed in seeds]
    views = barrier_views(merge.Pair(*nets), lambdas, merge.Empirical(x_test, y_test, batch_size=batch_size),
                          data_for_matching=x_val, calibration_split=(x_val, y_val),
                          repairs=[merge.ResetBatchNorm(x[:spec.n_bn], batch_size)])
    ends = [merge.evaluate(m, x, y, batch_size=batch_size) for m in nets]
    tests = [merge.evaluate(m, x_test, y_test, batch_size=batch_size) for m in nets]
    return _rows({"arch": arch, "multiplier": multiplier, "pair": pair, "seeds": seeds}, views, None,
                 {"train_loss": sum(e.loss for e in ends) / 2, "test_accuracy": sum(e.accuracy for e in tests) / 2})


# ----------------------------------------------------------------------------------------------- chapter 6's recipe
#: :class:`lmcnb.experiments.cnn_merges.ConvSweep`'s architecture names → :data:`CNN_ARCHS`.
CONV_ARCH_NAMES = {"VGG-11": "vgg11", "ResNet-20": "resnet20"}


def conv_sweeps(conv: cnn_merges.ConvSweep, *, weight_decay: float, lambdas: object, n_eval: int,
                n_pairs: int) -> tuple[CNNSweep, ...]:
    """Chapter 6's CIFAR-10 recipe ``conv`` (:data:`lmcnb.experiments.cnn_merges.CONV_PAPER` or ``CONV_FULL``) as
    this chapter's sweeps: one :class:`CNNSweep` per architecture of ``conv.multipliers`` (in order of first
    appearance) with its multipliers, ``conv.config(weight_decay)`` (SGD, momentum 0.9, warm-up + cosine,
    ``conv.epochs``, batch ``conv.batch``), BatchNorm reset on ``conv.bn_images`` training images in batches of
    ``conv.batch``, ``conv.augment`` (crop and flip), ``n_pairs`` seed pairs from ``conv.seeds[0]`` (which must
    be ``conv.seeds[1] − 1``), barriers on ``lambdas`` over the first ``n_eval`` test images."""
    if not isinstance(conv, cnn_merges.ConvSweep):
        raise TypeError(f"conv must be a cnn_merges.ConvSweep, got {type(conv).__name__}")
    if conv.seeds[1] != conv.seeds[0] + 1:
        raise ValueError(f"conv.seeds must be consecutive (pair p is seeds s + 2p, s + 2p + 1), got {conv.seeds}")
    config = conv.config(weight_decay)
    archs: dict[str, list[float]] = {}
    for name, m in conv.multipliers:
        archs.setdefault(CONV_ARCH_NAMES[name], []).append(float(m))
    return tuple(CNNSweep(arch, mults, config, lambdas, n_eval=n_eval, n_bn=conv.bn_images, n_pairs=n_pairs,
                          batch_size=conv.batch, first_seed=conv.seeds[0], augment=conv.augment)
                 for arch, mults in archs.items())


def conv_width_sweep(data, conv: cnn_merges.ConvSweep, *, weight_decay: float, lambdas: object, n_eval: int,
                     n_pairs: int, cache: CacheSpec | None = None, progress: bool = False,
                     executor: Any = None) -> list[dict]:
    """The rows of :func:`width_sweep` for every sweep of :func:`conv_sweeps` (the paper profile's CIFAR-10
    cell): ``data`` an :class:`lmcnb.data.Dataset` of ``(n, 3, 32, 32)`` images (``data.cifar10()``); ``cache``,
    ``progress`` and ``executor`` as in :func:`width_sweep` (every (multiplier, pair) one cached task)."""
    return [row for spec in conv_sweeps(conv, weight_decay=weight_decay, lambdas=lambdas, n_eval=n_eval,
                                        n_pairs=n_pairs)
            for row in width_sweep(data, spec, cache=cache, progress=progress, executor=executor)]


#: The view whose Table 1 row (:data:`lmcnb.experiments.cnn_merges.TABLE1`, keyed by matcher) is printed beside it.
TABLE1_MATCHER = {"identity": "identity", "calibrated identity": "identity", "weight matching": "weight matching",
                  "calibrated weight matching": "weight matching"}


def table1_views(rows: Sequence[dict] | Any) -> Any:
    """Rows of :func:`conv_width_sweep` (a list of dicts or their DataFrame) as a table: per architecture,
    multiplier and view, the median over pairs of the midpoint accuracy and loss barriers (test split; the
    calibrated views' loss is calibrated), the endpoints' test accuracy, and Table 1's accuracy and loss barriers
    for the architecture's Table 1 row (VGG-11 ×16, ResNet-20 ×32; the identity views beside Table 1's identity
    row, the weight-matched ones beside its weight-matching row, NaN for activation matching): the target the
    trend over multipliers approaches."""
    import pandas as pd

    frame = rows.reset_index(drop=True) if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise ValueError("table1_views needs at least one row (of conv_width_sweep)")
    cols = ["accuracy midpoint", "loss midpoint", "test_accuracy"]
    out = frame.groupby(["arch", "multiplier", "view"], sort=False)[cols].median().reset_index()
    paper_net = {"vgg11": "VGG-11 x16", "resnet20": "ResNet-20 x32"}
    paper = [cnn_merges.TABLE1.get((paper_net.get(a), TABLE1_MATCHER.get(v)), (float("nan"), float("nan")))
             for a, v in zip(out["arch"], out["view"])]
    out["Table 1 acc"] = [p[0] for p in paper]
    out["Table 1 loss"] = [p[1] for p in paper]
    return out.set_index(["arch", "multiplier", "view"])
