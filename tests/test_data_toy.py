"""The toy data root of the smoke profile (:mod:`lmcnb._data_toy`) and ``$LMCNB_OFFLINE``: the real loaders read
the toy files (real MNIST IDX and CIFAR-10 python-batch formats, torchvision's layout); offline, a missing file
fails at once naming ``make data`` and nothing touches the network."""
from __future__ import annotations

import gzip
import struct
import tarfile

import numpy as np
import pytest
import torch

from lmcnb import _data_files as F
from lmcnb import _data_toy as T
from lmcnb import data as D


def test_real_loaders_read_the_toy_root(tmp_path, monkeypatch):
    monkeypatch.setenv(F.DATA_DIR_ENV, str(tmp_path / "toy"))
    monkeypatch.setenv(F.OFFLINE_ENV, "1")
    root = T.write_toy_root(tmp_path / "toy", n_train=60, n_test=20, seed=1)
    assert root == (tmp_path / "toy").absolute() and (root / T.TOY_MARKER).is_file()
    for spec in (s for d in F.PAPER_DATASETS for s in F.FILES[d]):
        assert (root / spec.path).is_file(), spec.path  # exactly the files and layout the manifest names
    raw = gzip.decompress((root / "MNIST/raw/train-images-idx3-ubyte.gz").read_bytes())
    assert struct.unpack(">HBB3I", raw[:16]) == (0, 0x08, 3, 60, 28, 28)  # the IDX header, by the spec
    with tarfile.open(root / "cifar-10-python.tar.gz", "r:gz") as tar:
        names = set(tar.getnames())
    assert {f"cifar-10-batches-py/{b}" for b in ("data_batch_1", "data_batch_5", "test_batch")} <= names
    m = D.mnist(download=True, n_val=10)  # offline + present files: read, no download attempted
    assert (len(m.train), len(m.val), len(m.test)) == (50, 10, 20) and m.train.x.shape[1] == 784
    c = D.cifar10(download=True, n_val=10)
    assert (len(c.train), len(c.val), len(c.test)) == (50, 10, 20) and c.train.x.shape[1:] == (3, 32, 32)
    assert set(torch.cat([m.train.y, m.val.y]).tolist()) == set(range(10))
    assert F.check(root=root), "toy files are not the official ones: --check must say so"
    again = T.write_toy_root(root, n_train=60, n_test=20, seed=1)  # a toy root may be rewritten, same bytes
    assert again == root and torch.equal(D.mnist(n_val=10).train.x, m.train.x)
    other = T.write_toy_root(tmp_path / "toy2", n_train=60, n_test=20, seed=2)
    assert not torch.equal(D.mnist(other, n_val=10).train.x, m.train.x), "the seed changes the pixels"


def test_toy_root_never_overwrites_real_data_and_checks_sizes(tmp_path):
    real = tmp_path / "real" / "MNIST" / "raw"
    real.mkdir(parents=True)
    (real / "train-images-idx3-ubyte.gz").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="not a toy root"):
        T.write_toy_root(tmp_path / "real")
    assert (real / "train-images-idx3-ubyte.gz").read_bytes() == b"real"
    for bad in (5, 0, 2.5, True):
        with pytest.raises(ValueError, match="n_train"):
            T.write_toy_root(tmp_path / "x", n_train=bad)
    with pytest.raises(ValueError, match="n_test"):
        T.write_toy_root(tmp_path / "x", n_test=3)


def test_offline_missing_file_fails_at_once_naming_make_data(tmp_path, monkeypatch):
    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise OSError("no network in the tests")

    monkeypatch.setattr(F.urllib.request, "urlopen", no_network)
    monkeypatch.setenv(F.OFFLINE_ENV, "1")
    for loader, name in ((D.mnist, "train-images-idx3-ubyte.gz"), (D.cifar10, "cifar-10-python.tar.gz")):
        with pytest.raises(FileNotFoundError) as info:
            loader(tmp_path / "empty", download=True)
        message = str(info.value)
        for needle in (name, "make data", "LMCNB_OFFLINE=1", str(tmp_path / "empty")):
            assert needle in message, (needle, message)
    with pytest.raises(FileNotFoundError, match="LMCNB_OFFLINE=1"):
        F.fetch(["mnist"], tmp_path / "empty")  # make data itself refuses offline
    assert calls == [], "offline: the network must not be tried"
    monkeypatch.setenv(F.OFFLINE_ENV, "0")
    assert not F.offline()
    with pytest.raises(RuntimeError, match="download=True failed"):  # online: the download is tried (and fails)
        D.mnist(tmp_path / "empty", download=True)
    assert calls, "the negative control: online, the download is attempted"
    monkeypatch.setenv(F.OFFLINE_ENV, "yes")
    with pytest.raises(ValueError, match="LMCNB_OFFLINE must be 1"):
        F.offline()
