"""Readers of the on-disk formats of the image datasets, numpy and the standard library only (no torchvision).

- IDX (MNIST, Fashion-MNIST): two zero bytes, a type code, the number of dimensions ``k``, ``k`` big-endian uint32
  sizes, the big-endian data; gzip-compressed or not. :func:`read_idx`.
- CIFAR-10 python batches: a pickled dict with ``b"data"`` uint8 ``(N, 3072)`` (R, G, B planes of 32×32, row-major)
  and ``b"labels"``. :func:`read_cifar10_batch`, with an unpickler that accepts numpy arrays only.

Both raise ``ValueError`` naming the file for a corrupt, truncated or foreign file. :mod:`lmcnb.data` builds the
datasets on them (its ``read_idx`` and ``read_cifar10_batch`` are these functions).
"""
from __future__ import annotations

import codecs
import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_idx", "read_cifar10_batch"]

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _check_path(name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {type(value).__name__}")
    return Path(value).expanduser()


def read_idx(path: str | os.PathLike) -> Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or not (detected from the content).

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions ``k``, ``k`` big-endian uint32 sizes, then the big-endian data.

    Returns:
        Tensor of shape ``(size_1, …, size_k)`` with the matching dtype. Raises ``ValueError`` on a malformed or
        truncated file.
    """
    path = _check_path("path", path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt or truncated gzip file ({type(exc).__name__}: {exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says {shape} of {dtype} ({expected} bytes), file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(data.astype(dtype.newbyteorder("="), copy=True))


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (dicts, lists, bytes and numpy arrays) and refuses any other global, so a
    tampered file cannot run code."""

    # _codecs.encode(text, "latin1") is how protocol-2 pickles written by Python 3 store an array's raw bytes
    _ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode,
                ("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
                ("numpy._core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0]}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing the global {module}.{name}: a CIFAR-10 batch holds only "
                                         "dicts, lists, bytes and numpy arrays")
        return self._ALLOWED[module, name]


def read_cifar10_batch(source: str | os.PathLike | bytes, name: str | None = None) -> tuple[Tensor, Tensor]:
    """Read one CIFAR-10 python batch (``data_batch_1`` … ``data_batch_5``, ``test_batch``).

    The file is a pickled dict with ``b"data"``: a uint8 array ``(N, 3072)``, each row the 1024 red, then green,
    then blue pixels of a 32×32 image in row-major order, and ``b"labels"``: ``N`` ints in ``0..9``. Only numpy
    arrays are unpickled (any other global is refused).

    Args:
        source: the file's path, or its bytes (e.g. read from ``cifar-10-python.tar.gz``).
        name: what error messages call it (default: the path, or ``"CIFAR-10 batch"`` for bytes).

    Returns:
        ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``. Raises ``ValueError`` for a corrupt, truncated or
        foreign file.
    """
    if isinstance(source, (bytes, bytearray)):
        raw, name = bytes(source), name or "CIFAR-10 batch"
    else:
        path = _check_path("source", source)
        raw, name = path.read_bytes(), name or str(path)
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{name}: not a readable CIFAR-10 python batch, corrupt or truncated "
                         f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{name}: a CIFAR-10 batch is a dict with b'data' and b'labels', got "
                         f"{type(batch).__name__} {sorted(batch) if isinstance(batch, dict) else ''}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{name}: b'data' must be a uint8 array (N, 3072), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu" or (labels.size and (
            int(labels.min()) < 0 or int(labels.max()) > 9)):
        raise ValueError(f"{name}: b'labels' must be {data.shape[0]} ints in 0..9, got {labels.dtype} "
                         f"{labels.shape}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))
