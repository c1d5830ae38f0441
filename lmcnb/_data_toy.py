"""A toy data root in the real on-disk formats, for the ``smoke`` profile without the internet (CI).

:func:`write_toy_root` writes, under one folder that ``$LMCNB_DATA_DIR`` can point at, exactly the files
:data:`lmcnb._data_files.FILES` names, in the layout and formats the real loaders (:func:`lmcnb.data.mnist`,
:func:`lmcnb.data.cifar10`) read:

- ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``: gzip-compressed IDX files (two zero bytes, type
  code ``0x08``, the number of dimensions, big-endian uint32 sizes, the uint8 data);
- ``cifar-10-python.tar.gz``: a gzip tar holding ``cifar-10-batches-py/data_batch_1`` … ``data_batch_5``,
  ``test_batch`` (protocol-2 pickles of dicts with ``b"data"`` uint8 ``(N, 3072)``, ``b"labels"``,
  ``b"filenames"``, ``b"batch_label"``) and ``batches.meta``;
- ``TOY_DATA.txt``: what the folder is (so it is never mistaken for the real datasets).

The images are random, with a class-dependent bright patch so that a network can learn something in a few steps;
the sizes default to just above what the loaders' default validation split (``n_val=5000``) needs. The files'
sizes and digests are *not* the official ones: ``tools/fetch_data.py --check`` reports them as wrong, and
:func:`lmcnb._data_files.fetch` would replace them (which ``$LMCNB_OFFLINE=1`` forbids). The loaders do not verify
digests of files that are present, so they read the toy files as they would the real ones. Numpy and the standard
library only.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from ._data_files import FILES

__all__ = ["write_toy_root", "TOY_MARKER"]

#: The file that marks a toy data root.
TOY_MARKER = "TOY_DATA.txt"
_CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def _idx(array: np.ndarray) -> bytes:
    """An IDX file of a uint8 array: ``0x0000``, type ``0x08``, ndim, big-endian sizes, the data."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...], labels: np.ndarray) -> np.ndarray:
    """``n`` uint8 images of ``shape`` (C, H, W): noise in 0..127 plus a bright 4×4 patch at a place set by the
    label (learnable, not trivially separable at one pixel)."""
    images = rng.integers(0, 128, (n, *shape), dtype=np.uint8)
    h, w = shape[-2:]
    for c in range(10):
        rows = labels == c
        r, q = 2 + (c // 5) * (h // 2), 2 + (c % 5) * ((w - 6) // 5)
        images[rows, ..., r:r + 4, q:q + 4] = 255
    return images


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = np.arange(n) % 10  # every class present, balanced
    return rng.permutation(labels).astype(np.uint8)


def _check_size(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def write_toy_root(root: str | os.PathLike, n_train: int = 5600, n_test: int = 400, seed: int = 0) -> Path:
    """Write a toy MNIST and CIFAR-10 into ``root`` (created) in the real on-disk formats; return ``root``.

    Args:
        root: the folder (``$LMCNB_DATA_DIR`` of the smoke run).
        n_train: training images of each dataset (CIFAR-10: split over the five batches, which must each get at
            least one); default 5600, above the loaders' default ``n_val=5000``.
        n_test: test images of each dataset.
        seed: seed of the random pixels and label order.

    Returns:
        ``root`` as an absolute path. Raises ``ValueError`` for sizes below 10 (every class once) and
        ``FileExistsError`` if ``root`` holds real dataset files (no :data:`TOY_MARKER`): never overwrite real data.
    """
    n_train, n_test = _check_size("n_train", n_train, 10), _check_size("n_test", n_test, 10)
    seed = _check_size("seed", seed, 0)
    root = Path(root).expanduser().absolute()
    existing = [s.path for d in FILES.values() for s in d if (root / s.path).exists()]
    if existing and not (root / TOY_MARKER).is_file():
        raise FileExistsError(f"{root} already holds dataset files ({', '.join(existing)}) and is not a toy root; "
                              "write the toy data into another folder")
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = _labels(rng, n)
        images = _images(rng, n, (28, 28), labels)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            (raw / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(_idx(array), compresslevel=1, mtime=0))
    per_batch = np.array_split(np.arange(n_train), 5)
    if min(len(b) for b in per_batch) < 1:
        raise ValueError(f"n_train={n_train} leaves a CIFAR-10 batch empty")
    blobs = {}
    for name, n in zip(_CIFAR_BATCHES, [len(b) for b in per_batch] + [n_test]):
        labels = _labels(rng, n)
        data = _images(rng, n, (3, 32, 32), labels).reshape(n, 3072)
        batch = {b"batch_label": f"toy {name}".encode(), b"labels": [int(v) for v in labels], b"data": data,
                 b"filenames": [b"toy_%05d.png" % i for i in range(n)]}
        blobs[name] = pickle.dumps(batch, protocol=2)
    blobs["batches.meta"] = pickle.dumps({b"label_names": [b"class_%d" % i for i in range(10)],
                                          b"num_cases_per_batch": len(per_batch[0]), b"num_vis": 3072}, protocol=2)
    archive = root / FILES["cifar10"][0].path
    tmp = archive.with_name(archive.name + ".part")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=1, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, archive)
    (root / TOY_MARKER).write_text(
        f"Toy data root written by lmcnb._data_toy.write_toy_root(n_train={n_train}, n_test={n_test}, "
        f"seed={seed}): random images in the real MNIST (IDX) and CIFAR-10 (python batches) formats, for the "
        "smoke profile. Not the real datasets; their checksums differ from the official ones.\n", encoding="utf-8")
    return root
