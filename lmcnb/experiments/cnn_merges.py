"""Ito et al.'s Table 1 on CIFAR-10 as a sweep: CNN merges across width multipliers, sized by their FLOPs.

Chapter 6's paper profile (Ito, Yamada, Chijiwa, Kumagai, ICLR 2026): VGG-11 and ResNet-20 pairs trained from two
seeds, merged with the identity permutation and after weight matching, BatchNorm statistics reset in batches and
the softmax temperature calibrated on the validation split; midpoint barriers of the test loss and accuracy,
printed beside the paper's :data:`TABLE1`.

- :class:`ConvSweep` — one configuration object (multipliers, epochs, weight decays, seeds, batch, learning rate,
  warm-up, BatchNorm images, augmentation) with :meth:`~ConvSweep.grid`, :meth:`~ConvSweep.config` and
  :meth:`~ConvSweep.flops`; :data:`CONV_PAPER` (a width trend that fits the chapter's GPU-hour) and
  :data:`CONV_FULL` (Table 1's own size, the opt-in ``full`` profile), :data:`CONV_SMOKE` (a toy size: the
  ``smoke`` profile runs the paper cells' code at it on a CPU).
- :func:`train_seeded` (one network of a pair: seeded construction, crop-and-flip augmentation
  :class:`RandomCropFlip`; chapter 7's CNN sweeps train with it too), :func:`table1_row` (one network, one
  weight decay: train the seeded pair, merge, measure), :func:`table1_sweep` (every row through
  :func:`lmcnb.infra.sweep.run_grid`, so a paper run resumes from its cache), :func:`table1_frame` (ours beside
  the paper's).
- :func:`forward_flops` (counted on the meta device: no memory) and :func:`gpu_hours` size a sweep.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from .._validate import check_int, check_real
from ..infra.budget import A100_CLASS
from ..merge import Pair
from ..merge import merge as merge_pipeline
from ..train import TrainConfig

__all__ = ["TABLE1", "SUSTAINED_TFLOPS", "CONV_ARCHS", "forward_flops", "gpu_hours", "ConvSweep", "CONV_PAPER",
           "CONV_FULL", "CONV_SMOKE", "GLOBAL_RNG_LOCK", "RandomCropFlip", "seeded_model", "train_seeded",
           "table1_row", "table1_sweep", "table1_frame"]

#: Ito et al. 2026, Table 1 (notes §3, [S]): midpoint (λ = ½) barriers of the identity path and after weight
#: matching, test split; accuracy barriers as fractions (0.519 % → 0.00519), loss barriers presumably after
#: temperature calibration [?]. Keys ``(network, matcher)``; values ``(accuracy barrier, loss barrier)``.
TABLE1: dict[tuple[str, str], tuple[float, float]] = {
    ("MLP x16", "identity"): (0.00519, 0.013), ("MLP x16", "weight matching"): (-0.00027, -0.003),
    ("VGG-11 x16", "identity"): (0.01308, 0.066), ("VGG-11 x16", "weight matching"): (0.07000, 0.177),
    ("ResNet-20 x32", "identity"): (0.02694, 0.087), ("ResNet-20 x32", "weight matching"): (0.05135, 0.173),
}
#: Sustained throughput assumed by :func:`gpu_hours`, in TFLOP/s: the budget model's A100/H100-class GPU
#: (:data:`lmcnb.infra.budget.A100_CLASS`, 15 TFLOP/s float32), so a FLOP count and the model's lower bound agree.
SUSTAINED_TFLOPS = A100_CLASS.sustained_tflops
#: The CIFAR-10 architectures of Table 1, by the names :data:`TABLE1` uses (width multiplier → model).
CONV_ARCHS: dict[str, Callable[[float], torch.nn.Module]] = {}


def _conv_archs() -> dict[str, Callable[[float], torch.nn.Module]]:
    from ..models import VGG11, ResNet20

    if not CONV_ARCHS:
        CONV_ARCHS.update({"VGG-11": lambda m: VGG11(width_multiplier=m),
                           "ResNet-20": lambda m: ResNet20(width_multiplier=m)})
    return CONV_ARCHS


def forward_flops(make: Callable[[], torch.nn.Module], input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of one input ``input_shape`` (e.g. ``(3, 32, 32)``) through the ``Conv2d`` and
    ``Linear`` layers of ``make()``: 2 per multiply-add (``2 · out.numel() · C_in/groups · k_h · k_w``;
    ``2 · out · in`` for a linear layer); BatchNorm, ReLU, pooling and biases are not counted.

    The model is built and run on the ``meta`` device (shapes only: no memory, no weights), so VGG-11 ×16
    (2.4 B parameters, ≈ 77 GFLOPs per image) costs nothing to count.
    """
    if not callable(make) or isinstance(make, torch.nn.Module):
        raise TypeError(f"make must be a callable returning an nn.Module (e.g. lambda: VGG11(16)), not "
                        f"{type(make).__name__}: the model is built on the meta device")
    shape = tuple(check_int("input_shape entry", s, 1) for s in input_shape)
    with torch.device("meta"):
        model = make()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"make() must return an nn.Module, got {type(model).__name__}")
    total = [0]

    def hook(module: torch.nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Conv2d):
            total[0] += 2 * out.numel() * module.weight[0].numel()
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.empty(1, *shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def gpu_hours(flops: float, tflops: float = SUSTAINED_TFLOPS) -> float:
    """``flops`` at ``tflops`` TFLOP/s sustained, in hours (the book's paper-profile estimates)."""
    return check_real("flops", flops, 0.0) / (check_real("tflops", tflops, 1e-9) * 1e12) / 3600.0


@dataclass(frozen=True)
class ConvSweep:
    """The CIFAR-10 rows of Table 1 as a sweep: every ``(architecture, multiplier)`` of ``multipliers`` × every
    weight decay, one seed pair each, trained with SGD (momentum 0.9, warm-up + cosine, random crop and flip),
    merged on the identity path and after weight matching, BatchNorm re-estimated on ``bn_images`` training
    images in batches of ``batch`` and the temperature fitted on the held-out split.

    :data:`CONV_PAPER` is a trend over small multipliers that fits the chapter's GPU-hour; :data:`CONV_FULL` is
    Table 1's own size (VGG-11 ×16, ResNet-20 ×32, 200 epochs: days of GPU time), the ``full`` profile's.

    Fields:
        multipliers: ``((architecture, multiplier), ...)``; architectures are keys of :data:`CONV_ARCHS`.
        epochs: training epochs per network. weight_decays: coupled L2 weight decays (paper: 3e-3 and 1e-4).
        seeds: the pair's two seeds (initialisation and data order; model ``k`` of the pair is built under
            ``seeds[k]``, so construction is seeded too). batch: training, BatchNorm-reset and evaluation batch.
        lr, warmup: peak learning rate and warm-up fraction of ``schedule="warmup_cosine"``.
        bn_images: training images that re-estimate every merged model's BatchNorm statistics.
        augment: random crop (4-pixel zero padding) and horizontal flip during training.
    """

    multipliers: tuple[tuple[str, float], ...]
    epochs: int
    weight_decays: tuple[float, ...] = (3e-3, 1e-4)
    seeds: tuple[int, int] = (0, 1)
    batch: int = 128
    lr: float = 0.1
    warmup: float = 0.025
    bn_images: int = 10_000
    augment: bool = True

    def __post_init__(self) -> None:
        archs = _conv_archs()
        if not self.multipliers:
            raise ValueError("ConvSweep multipliers must name at least one (architecture, multiplier)")
        for item in self.multipliers:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"ConvSweep multipliers must be (architecture, multiplier) pairs, got {item!r}")
            if item[0] not in archs:
                raise ValueError(f"unknown architecture {item[0]!r} in ConvSweep multipliers; known: {list(archs)}")
            check_real("ConvSweep multiplier", item[1], 1e-9)
        check_int("ConvSweep epochs", self.epochs, 1)
        if not self.weight_decays:
            raise ValueError("ConvSweep weight_decays must not be empty")
        for wd in self.weight_decays:
            check_real("ConvSweep weight decay", wd, 0.0)
        if len(self.seeds) != 2 or self.seeds[0] == self.seeds[1]:
            raise ValueError(f"ConvSweep seeds must be two different seeds, got {self.seeds!r}")
        for s in self.seeds:
            check_int("ConvSweep seed", s, 0)
        check_int("ConvSweep batch", self.batch, 1)
        check_real("ConvSweep lr", self.lr, 1e-12)
        check_real("ConvSweep warmup", self.warmup, 0.0, 1.0)
        check_int("ConvSweep bn_images", self.bn_images, 1)
        if not isinstance(self.augment, bool):
            raise TypeError(f"ConvSweep augment must be a bool, got {type(self.augment).__name__}")

    def grid(self) -> list[dict[str, Any]]:
        """The sweep's configurations, ``{"arch", "multiplier", "weight_decay"}`` (JSON-safe: cache keys)."""
        return [dict(arch=a, multiplier=float(m), weight_decay=float(wd))
                for a, m in self.multipliers for wd in self.weight_decays]

    def config(self, weight_decay: float) -> TrainConfig:
        """The training recipe at ``weight_decay``."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch, lr=self.lr, momentum=0.9,
                           weight_decay=check_real("weight_decay", weight_decay, 0.0), schedule="warmup_cosine",
                           warmup=self.warmup)

    def flops(self, n_train: int, n_eval: int, n_lambdas: int, n_matchers: int = 2) -> float:
        """The sweep's FLOPs: per configuration, two networks trained (``3 × forward`` per image, ``n_train``
        images, ``epochs``) and, per matcher, ``n_lambdas`` merged models that each see ``bn_images`` (BatchNorm
        reset) plus ``n_eval`` images (test and calibration splits) forward; weight matching itself (CPU
        assignments) is not counted. Forward FLOPs from :func:`forward_flops`."""
        n_train, n_eval = check_int("n_train", n_train, 1), check_int("n_eval", n_eval, 0)
        n_lambdas, n_matchers = check_int("n_lambdas", n_lambdas, 1), check_int("n_matchers", n_matchers, 1)
        archs, total = _conv_archs(), 0.0
        for cfg in self.grid():
            fwd = forward_flops(lambda: archs[cfg["arch"]](cfg["multiplier"]), (3, 32, 32))
            total += 2 * 3.0 * fwd * n_train * self.epochs
            total += n_matchers * n_lambdas * fwd * (self.bn_images + n_eval)
        return total


#: The paper profile of chapters 6 and 7: VGG-11 and ResNet-20 at ×½, 1, 2, 10 epochs, Table 1's weight decay
#: 3e-3 only (a width trend sized by the budget model, :func:`lmcnb.experiments.paper_budgets.chapter06` and
#: ``chapter07``, to fit each chapter's GPU-hour with its other cells; the earlier VGG-11 ×4 and ResNet-20 ×4, 8
#: alone were about 8 hours in that model, and the ablation weight decay 1e-4 doubles the cell: it stays in
#: :data:`CONV_FULL`).
CONV_PAPER = ConvSweep(multipliers=(("VGG-11", 0.5), ("VGG-11", 1.0), ("VGG-11", 2.0), ("ResNet-20", 0.5),
                                    ("ResNet-20", 1.0), ("ResNet-20", 2.0)), epochs=10, weight_decays=(3e-3,))
#: Table 1's own size (the ``full`` profile): VGG-11 ×16 and ResNet-20 ×32, 200 epochs, batch 128.
CONV_FULL = ConvSweep(multipliers=(("VGG-11", 16.0), ("ResNet-20", 32.0)), epochs=200)
#: The ``smoke`` profile's toy size of the same cells (chapters 6 and 7): both architectures at a tiny multiplier
#: (VGG-11 ×1/16, ResNet-20 ×1/8), one epoch, batch 64, BatchNorm re-estimated on 64 images; the paper recipe
#: otherwise (augmentation, warm-up + cosine, Table 1's weight decay 3e-3). Seconds on a CPU; its numbers mean
#: nothing.
CONV_SMOKE = ConvSweep(multipliers=(("VGG-11", 1 / 16), ("ResNet-20", 1 / 8)), epochs=1, weight_decays=(3e-3,),
                       batch=64, bn_images=64)


class RandomCropFlip(torch.nn.Module):
    """``net`` with CIFAR augmentation in train mode: each image of a batch ``(n, C, H, W)`` is zero-padded by
    ``pad`` pixels, cropped back to ``H × W`` at a random offset and flipped horizontally with probability ½;
    in eval mode the input passes unchanged. The draws come from a generator seeded with ``seed`` (created on
    the input's device at the first batch), so training is reproducible; ``net`` is the trained model."""

    def __init__(self, net: torch.nn.Module, seed: int, pad: int = 4) -> None:
        super().__init__()
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
        self.net = net
        self.seed = check_int("seed", seed, 0)
        self.pad = check_int("pad", pad, 0)
        self._gen: torch.Generator | None = None

    def __deepcopy__(self, memo: dict) -> RandomCropFlip:
        import copy

        out = RandomCropFlip(copy.deepcopy(self.net, memo), self.seed, self.pad)
        out.train(self.training)
        return out

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The augmented batch ``(n, C, H, W)`` (new tensor; ``x`` is not modified)."""
        if x.dim() != 4:
            raise ValueError(f"RandomCropFlip needs image batches (n, C, H, W), got shape {tuple(x.shape)}")
        if self._gen is None or self._gen.device != x.device:
            self._gen = torch.Generator(device=x.device).manual_seed(self.seed)
        n, _, h, w = x.shape
        flip = torch.rand(n, generator=self._gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.pad == 0:
            return x
        padded = F.pad(x, (self.pad,) * 4)
        dy, dx = torch.randint(0, 2 * self.pad + 1, (2, n), generator=self._gen, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        idx = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[idx, chans, rows, cols]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.augment(x) if self.training else x)


#: Held while a model is built under torch's global RNG (:func:`seeded_model`). That RNG is one per process and
#: shared by its threads, so two sweep tasks building their networks at once in a thread pool (or in a Dask
#: worker's threads) would interleave their draws; under the lock each construction runs alone, seeded, exactly as
#: in a serial run. Library code never draws from the global RNG otherwise (explicit generators), so nothing else
#: can interleave. Re-entrant: ``make`` may itself call :func:`seeded_model`.
GLOBAL_RNG_LOCK = threading.RLock()


def seeded_model(make: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """``make()`` built under ``torch.manual_seed(seed)`` (its initialisation is reproducible); the global RNG
    state is restored afterwards. Thread-safe: the construction holds :data:`GLOBAL_RNG_LOCK`, so the model
    depends on ``seed`` only, whichever executor (serial, threads, processes, Dask) runs the task."""
    seed = check_int("seed", seed, 0)
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"make() must return an nn.Module, got {type(model).__name__}")
    return model


def train_seeded(make: Callable[[], torch.nn.Module], seed: int, x: torch.Tensor, y: torch.Tensor,
                 config: TrainConfig, *, augment: bool, device: torch.device | str | None = None) -> torch.nn.Module:
    """One network of a pair, as chapters 6 and 7 train their CNNs: ``make()`` built under ``seed``
    (:func:`seeded_model`), moved to ``device`` (None: where it was built), trained on ``x (n, C, H, W)``, ``y (n,)``
    with ``config`` and data order ``seed`` (:func:`lmcnb.train.train_classifier`), with random crop and flip
    (:class:`RandomCropFlip` seeded by ``seed``) when ``augment``; returns the trained network itself (no
    augmentation wrapper), in eval mode."""
    from ..train import train_classifier

    if not isinstance(augment, bool):
        raise TypeError(f"augment must be a bool, got {type(augment).__name__}")
    net = seeded_model(make, seed)
    if device is not None:
        net = net.to(device)
    trained, _ = train_classifier(RandomCropFlip(net, seed) if augment else net, x, y, config, seed=seed)
    return trained.net if augment else trained


def table1_row(sweep: ConvSweep, arch: str, multiplier: float, weight_decay: float, dataset: Any,
               lambdas: object, *, device: torch.device | str | None = None) -> dict[str, float]:
    """One configuration of ``sweep``: train the seed pair of ``arch`` × ``multiplier`` at ``weight_decay`` on
    ``dataset.train`` (augmented if ``sweep.augment``), merge it on the identity path and after weight matching,
    and return the midpoint barriers on ``dataset.test``: ``{"identity acc", "identity cal loss", "weight
    matching acc", "weight matching cal loss"}`` plus the endpoints' test accuracy ``"acc a"``, ``"acc b"``.

    Every merged model's BatchNorm statistics are re-estimated on the first ``sweep.bn_images`` training images
    in batches of ``sweep.batch`` (:class:`lmcnb.merge.ResetBatchNorm`), and its temperature is fitted on
    ``dataset.val`` (:class:`lmcnb.merge.CalibrateTemperature`); evaluation runs in batches of ``sweep.batch``.
    ``dataset``: an :class:`lmcnb.data.Dataset` of ``(n, 3, H, W)`` images (e.g. ``data.cifar10()``)."""
    from .. import matching
    from ..merge import CalibrateTemperature, Empirical, ResetBatchNorm, evaluate

    if not isinstance(sweep, ConvSweep):
        raise TypeError(f"sweep must be a cnn_merges.ConvSweep, got {type(sweep).__name__}")
    if arch not in _conv_archs():
        raise ValueError(f"unknown architecture {arch!r}; known: {list(_conv_archs())}")
    make = _conv_archs()[arch]
    multiplier = check_real("multiplier", multiplier, 1e-9)
    for split in ("train", "val", "test"):
        if not hasattr(dataset, split):
            raise TypeError(f"dataset must have train, val and test splits (an lmcnb.data.Dataset); no {split!r}")
    x, y = dataset.train.x, dataset.train.y
    nets = [train_seeded(lambda: make(multiplier), s, x, y, sweep.config(weight_decay), augment=sweep.augment,
                         device=device) for s in sweep.seeds]
    test = Empirical(dataset.test.x, dataset.test.y, batch_size=sweep.batch)
    repairs = [ResetBatchNorm(x[:sweep.bn_images], batch_size=sweep.batch), CalibrateTemperature(dataset.val)]
    row = {f"acc {k}": float(evaluate(n, dataset.test.x, dataset.test.y, batch_size=sweep.batch).accuracy)
           for k, n in zip("ab", nets)}
    for name, matcher in {"identity": matching.IdentityMatching(),
                          "weight matching": matching.WeightMatching(seed=0)}.items():
        curve = merge_pipeline(Pair(*nets), lambdas, test, align=matcher, repairs=repairs)
        row[f"{name} acc"] = float(curve.barrier("midpoint", "accuracy"))
        row[f"{name} cal loss"] = float(curve.barrier("midpoint", "calibrated_loss"))
    return row


def table1_sweep(sweep: ConvSweep, dataset: Any, lambdas: object, *, device: torch.device | str | None = None,
                 cache_dir: str | None = None, executor: Any = None) -> list[dict[str, Any]]:
    """Every configuration of ``sweep`` through :func:`lmcnb.sweep.run_grid` (each result cached as soon as it
    is computed when ``cache_dir`` is given, so an interrupted paper run resumes): rows of the configuration
    and its :func:`table1_row`, in grid order. ``executor``: where the configurations run (None: here, one
    after another; e.g. :func:`lmcnb.infra.sweep.default_executor` for ``make paper ENGINE=…``)."""
    from ..infra import sweep as sweep_runner

    if not isinstance(sweep, ConvSweep):
        raise TypeError(f"sweep must be a cnn_merges.ConvSweep, got {type(sweep).__name__}")
    lam = [float(v) for v in torch.as_tensor(lambdas).flatten()]
    recipe = {k: v for k, v in sweep.__dict__.items() if k != "multipliers"}
    results = sweep_runner.run_grid(
        lambda arch, multiplier, weight_decay: table1_row(sweep, arch, multiplier, weight_decay, dataset, lam,
                                                          device=device),
        sweep.grid(), cache_dir=cache_dir, namespace=f"ch06-table1-v1 {recipe} lambdas={lam}", progress=True,
        executor=executor)
    return [{**cfg, **res} for cfg, res in results]


def table1_frame(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows of :func:`table1_sweep` as a table beside :data:`TABLE1`: one line per architecture,
    multiplier, weight decay and matcher, with our midpoint accuracy and calibrated-loss barriers and Table 1's
    numbers for that architecture and matcher (Table 1 gives only VGG-11 ×16, ResNet-20 ×32, weight decay
    3e-3 [?]: the paper columns repeat its value on every line of that architecture, as the target of the
    trend)."""
    import pandas as pd

    out = []
    for r in rows:
        paper_net = {"VGG-11": "VGG-11 x16", "ResNet-20": "ResNet-20 x32"}.get(r["arch"])
        for name in ("identity", "weight matching"):
            paper = TABLE1.get((paper_net, name), (math.nan, math.nan))
            out.append({"arch": r["arch"], "multiplier": r["multiplier"], "weight decay": r["weight_decay"],
                        "matcher": name, "acc barrier": r[f"{name} acc"],
                        "cal. loss barrier": r[f"{name} cal loss"], "Table 1 acc": paper[0],
                        "Table 1 loss": paper[1]})
    return pd.DataFrame(out).set_index(["arch", "multiplier", "weight decay", "matcher"])
