"""The one data root and the dataset files the paper profile reads: where they live, their checksums, downloading.

Standard library only (no torch, no numpy), so ``tools/fetch_data.py`` (``make data``) runs with any Python 3 on
the machine that stages the data. The readers of these files are in :mod:`lmcnb.data` (``mnist``, ``cifar10``).

- :func:`data_dir` is the data root of every full-dataset loader: ``$LMCNB_DATA_DIR`` if set, else
  :data:`DEFAULT_DATA_DIR` (``~/.cache/lmcnb/data``).
- :data:`FILES` lists, per dataset, every file with its path under the root (torchvision's layout, so a folder that
  torchvision filled works as is: ``MNIST/raw/*.gz``, ``cifar-10-python.tar.gz``), its official URLs, its size and
  its MD5 (the ones torchvision lists) and SHA-256.
- :func:`fetch` downloads what is missing or wrong, verifies size, MD5 and SHA-256 while streaming, and writes each
  file atomically (a temporary file in the same folder, renamed only once verified). :func:`check` only verifies
  (no network). :func:`missing_file_error` is the one message a loader gives for an absent file: it names the file,
  the folder and the exact command to run where.
- :data:`OFFLINE_ENV`: with ``LMCNB_OFFLINE=1`` nothing is downloaded (:func:`offline`): a missing file fails at
  once with that message (``make data``) instead of trying the network, also under ``download=True`` (the smoke
  profile in CI, a GPU machine without internet). :mod:`lmcnb._data_toy` writes a toy data root in the real
  formats for such runs.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "OFFLINE_ENV", "offline", "DataFile", "FILES", "PAPER_DATASETS", "ChecksumError", "data_dir",
           "verify", "check", "fetch", "missing_file_error"]

#: The environment variable naming the data root.
DATA_DIR_ENV = "LMCNB_DATA_DIR"
#: ``LMCNB_OFFLINE=1``: never download; a missing file is an error naming ``make data`` (``0`` or unset: downloads
#: are allowed where a caller asks for them).
OFFLINE_ENV = "LMCNB_OFFLINE"
#: The data root when ``$LMCNB_DATA_DIR`` is unset or empty.
DEFAULT_DATA_DIR = "~/.cache/lmcnb/data"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        dataset: ``"mnist"`` or ``"cifar10"``.
        path: POSIX path relative to the data root, e.g. ``"MNIST/raw/train-images-idx3-ubyte.gz"``.
        urls: download URLs, tried in order (mirrors).
        size: size in bytes.
        md5, sha256: hex digests of the file (both are verified).
    """

    dataset: str
    path: str
    urls: tuple[str, ...]
    size: int
    md5: str
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


def _mnist_file(name: str, size: int, md5: str, sha256: str) -> DataFile:
    return DataFile("mnist", f"MNIST/raw/{name}", tuple(m + name for m in _MNIST_MIRRORS), size, md5, sha256)


#: Every file the paper profile reads, per dataset (official URLs; MD5 as listed by torchvision).
FILES: dict[str, tuple[DataFile, ...]] = {
    "mnist": (
        _mnist_file("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        _mnist_file("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        _mnist_file("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        _mnist_file("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    "cifar10": (
        DataFile("cifar10", "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                 170498071, "c58f30108f718f92721af3b95e74349a",
                 "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    ),
}
#: The datasets the paper profile needs (what ``make data`` fetches).
PAPER_DATASETS = ("mnist", "cifar10")


class ChecksumError(ValueError):
    """A file's size or digest differs from the one stored in :data:`FILES`."""


def data_dir() -> Path:
    """The data root: ``$LMCNB_DATA_DIR`` (``~`` expanded) if set and non-empty, else ``~/.cache/lmcnb/data``;
    an absolute path (a relative ``$LMCNB_DATA_DIR`` is taken relative to the current directory)."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value or DEFAULT_DATA_DIR).expanduser().absolute()


def offline() -> bool:
    """Whether ``$LMCNB_OFFLINE`` forbids downloads (``1``); unset, empty or ``0``: allowed. Any other value raises
    ``ValueError`` (a typo must not silently allow the network)."""
    value = os.environ.get(OFFLINE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"${OFFLINE_ENV} must be 1 (no downloads) or 0/unset, got {value!r}")
    return value == "1"


def _check_root(root: object) -> Path:
    if root is None:
        return data_dir()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike path (or None for the data root), got "
                        f"{type(root).__name__}")
    return Path(root).expanduser().absolute()


def _check_datasets(datasets: object) -> tuple[str, ...]:
    if isinstance(datasets, str) or not isinstance(datasets, Iterable):
        raise TypeError(f"datasets must be a sequence of dataset names, got {datasets!r}")
    names = tuple(datasets)
    unknown = [d for d in names if d not in FILES]
    if unknown or not names:
        raise ValueError(f"datasets must be a non-empty selection of {sorted(FILES)}, got {list(names)}")
    return names


def _digests(stream: Callable[[int], bytes]) -> tuple[int, str, str]:
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    for block in iter(lambda: stream(_CHUNK), b""):
        md5.update(block)
        sha.update(block)
        size += len(block)
    return size, md5.hexdigest(), sha.hexdigest()


def _compare(spec: DataFile, where: object, size: int, md5: str, sha256: str) -> None:
    for label, got, expected in (("size", size, spec.size), ("MD5", md5, spec.md5), ("SHA-256", sha256, spec.sha256)):
        if got != expected:
            raise ChecksumError(f"{where}: {label} is {got}, expected {expected} for {spec.dataset} file {spec.path}; "
                                "the file is corrupt, truncated or not the official one")


def verify(path: str | os.PathLike, spec: DataFile) -> None:
    """Raise :class:`ChecksumError` unless the file at ``path`` has ``spec``'s size, MD5 and SHA-256
    (``FileNotFoundError`` if it is absent)."""
    if not isinstance(spec, DataFile):
        raise TypeError(f"spec must be a DataFile, got {type(spec).__name__}")
    path = Path(path)
    with path.open("rb") as f:
        _compare(spec, path, *_digests(f.read))


def check(datasets: Sequence[str] = PAPER_DATASETS, root: str | os.PathLike | None = None) -> list[str]:
    """Verify the files of ``datasets`` under ``root`` (default :func:`data_dir`) without network.

    Returns:
        One line per problem (a missing file, or a size/checksum mismatch); empty when every file is right.
    """
    names, root = _check_datasets(datasets), _check_root(root)
    problems = []
    for spec in (s for d in names for s in FILES[d]):
        path = root / spec.path
        if not path.is_file():
            problems.append(f"missing: {path}")
            continue
        try:
            verify(path, spec)
        except ChecksumError as exc:
            problems.append(f"wrong: {exc}")
    return problems


def _download(spec: DataFile, target: Path, opener: Callable[..., object]) -> None:
    """Stream each URL of ``spec`` into a temporary file beside ``target``; rename it once verified."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, opener(url, timeout=_TIMEOUT_S) as response:
                def read(n: int) -> bytes:
                    block = response.read(n)
                    out.write(block)
                    return block

                digests = _digests(read)
                out.flush()
                os.fsync(out.fileno())
            _compare(spec, url, *digests)
            os.replace(tmp, target)
            return
        except (OSError, ChecksumError) as exc:  # urllib's URLError and HTTPError are OSErrors
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"could not download {spec.dataset} file {spec.path} into {target.parent}:\n  "
                       + "\n  ".join(errors))


def fetch(datasets: Sequence[str] = PAPER_DATASETS, root: str | os.PathLike | None = None,
          opener: Callable[..., object] | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Download every file of ``datasets`` that is missing or wrong under ``root`` (default :func:`data_dir`).

    A file already present with the right checksums is kept (no network). Each download is verified (size, MD5,
    SHA-256) while it streams into a temporary file in the target folder, which is renamed onto the target only
    once verified, so an interrupted or corrupt download never leaves a file at the target path; a wrong file is
    tried at the next mirror. ``opener(url, timeout=...)`` returns a readable context manager
    (default ``urllib.request.urlopen``, which also reads ``file://`` URLs); ``log`` receives one line per file.

    Returns:
        The paths of all the files of ``datasets``. Raises ``RuntimeError`` naming every URL's error when a file
        cannot be obtained.
    """
    names, root = _check_datasets(datasets), _check_root(root)
    opener = urllib.request.urlopen if opener is None else opener
    if not callable(opener):
        raise TypeError(f"opener must be callable like urllib.request.urlopen, got {type(opener).__name__}")
    paths = []
    for spec in (s for d in names for s in FILES[d]):
        path = root / spec.path
        try:
            verify(path, spec)
            status = "ok (already there)"
        except FileNotFoundError:
            if offline():
                raise missing_file_error(spec, root, offline=True) from None
            _download(spec, path, opener)
            status = "downloaded, checksums ok"
        except ChecksumError as exc:
            if offline():
                raise
            _download(spec, path, opener)
            status = f"replaced a wrong file ({exc}), checksums ok"
        if log is not None:
            log(f"{spec.dataset}: {path}: {status}")
        paths.append(path)
    return paths


def missing_file_error(spec: DataFile, root: str | os.PathLike, alternatives: str = "",
                       offline: bool = False) -> FileNotFoundError:
    """The error for a dataset file absent from ``root``: it names the file, the folder and the command to run
    (``offline``: ``$LMCNB_OFFLINE=1`` is why nothing was downloaded)."""
    root = Path(root).expanduser().absolute()
    path = root / spec.path
    where = f"this machine's ${DATA_DIR_ENV} ({root})" if root == data_dir() else f"{root} on this machine"
    return FileNotFoundError(
        f"{spec.dataset} file {spec.name} is missing: expected {path} (folder {path.parent}, data root {root}). "
        f"Run `make data LMCNB_DATA_DIR=<dir>` (or `python3 tools/fetch_data.py --dir <dir>`) on a machine with "
        f"internet, then copy <dir> to {where}; `python3 tools/fetch_data.py --check --dir {root}` then verifies "
        "the copy offline. "
        + (f"${OFFLINE_ENV}=1 is set, so nothing was downloaded (unset it to let download=True fetch the file)."
           if offline else "With internet on this machine, call again with download=True instead.")
        + (f" {alternatives}" if alternatives else ""))
