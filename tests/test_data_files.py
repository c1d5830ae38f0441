"""Data without the internet: the full MNIST / CIFAR-10 loaders on small files in the *real on-disk formats* that
these tests write (MNIST's IDX files, gzip and raw; CIFAR-10's python batches, extracted or inside the tar.gz), the
one data root ``$LMCNB_DATA_DIR``, the checksummed atomic downloader behind ``make data`` (``tools/fetch_data.py``)
tested on ``file://`` URLs and a failing opener (never the network), and the offline error messages.

These replace the former tests of the torchvision paths (a faked torchvision module): test_mnist_through_fake_
torchvision -> test_mnist_reads_real_idx_files; test_cifar10_through_fake_torchvision -> test_cifar10_reads_real_
python_batches; test_full_datasets_without_torchvision -> test_loaders_need_no_torchvision;
test_download_failure_explains_offline_options -> test_download_failure_explains_offline_staging;
test_missing_local_copy_without_download -> test_mnist_missing_file_names_file_folder_and_command.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lmcnb import _data_files as F
from lmcnb import data as D

REPO = Path(__file__).resolve().parents[1]
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


# ------------------------------------------------------------------------------------------- real-format writers
def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from its specification: 0x0000, type code 0x08 (uint8), ndim, big-endian sizes, data."""
    assert array.dtype == np.uint8
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20, compress: bool = True,
                ) -> dict[str, np.ndarray]:
    """Tiny MNIST in torchvision's layout ``root/MNIST/raw``; pixel (0, 0) of train image i is i (an id)."""
    rng = np.random.default_rng(7)
    arrays = {STEMS[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              STEMS[1]: (np.arange(n_train) % 10).astype(np.uint8),
              STEMS[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              STEMS[3]: ((np.arange(n_test) * 3) % 10).astype(np.uint8)}
    arrays[STEMS[0]][:, 0, 0] = np.arange(n_train)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        blob = idx_bytes(array)
        (raw / (stem + ".gz" if compress else stem)).write_bytes(gzip.compress(blob) if compress else blob)
    return arrays


def cifar_batch_bytes(data: np.ndarray, labels: list[int], py2_numpy: bool = False) -> bytes:
    """A CIFAR-10 python batch as distributed: a protocol-2 pickle of a dict with bytes keys. ``py2_numpy`` names
    the array constructor ``numpy.core.multiarray`` as the official (Python 2) files do."""
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    blob = pickle.dumps(batch, protocol=2)
    if py2_numpy:
        blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        assert b"cnumpy.core.multiarray\n_reconstruct" in blob
    return blob


def cifar_arrays(n_per_batch: int = 6, n_test: int = 10) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Six batches; row i of the training set (batches in order) has data[i, 0] == i (red pixel (0, 0))."""
    rng = np.random.default_rng(3)
    out, start = {}, 0
    for name in BATCHES:
        n = n_test if name == "test_batch" else n_per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        if name != "test_batch":
            data[:, 0] = np.arange(start, start + n)
            start += n
        out[name] = (data, [int(v) for v in (np.arange(n) + start) % 10])
    return out


def write_cifar(root: Path, layout: str, py2_numpy: bool = True) -> dict[str, tuple[np.ndarray, list[int]]]:
    arrays = cifar_arrays()
    blobs = {name: cifar_batch_bytes(d, lab, py2_numpy) for name, (d, lab) in arrays.items()}
    blobs["batches.meta"] = pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2)
    if layout == "folder":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name, blob in blobs.items():
            (folder / name).write_bytes(blob)
    else:
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return arrays


def spec_for(dataset: str, path: str, content: bytes, urls: tuple[str, ...]) -> F.DataFile:
    return F.DataFile(dataset, path, urls, len(content), hashlib.md5(content).hexdigest(),
                      hashlib.sha256(content).hexdigest())


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv(F.DATA_DIR_ENV, raising=False)


# --------------------------------------------------------------------------------------------------- data root
def test_data_dir_is_the_env_variable_else_the_documented_default(monkeypatch, tmp_path):
    monkeypatch.delenv("LMCNB_DATA_DIR", raising=False)
    assert D.data_dir() == Path("~/.cache/lmcnb/data").expanduser() == Path(D.DEFAULT_DATA_DIR).expanduser()
    monkeypatch.setenv("LMCNB_DATA_DIR", "")
    assert D.data_dir() == Path("~/.cache/lmcnb/data").expanduser()
    monkeypatch.setenv("LMCNB_DATA_DIR", str(tmp_path / "d"))
    assert D.data_dir() == tmp_path / "d"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMCNB_DATA_DIR", "rel")
    assert D.data_dir() == tmp_path / "rel" and D.data_dir().is_absolute()
    assert D.data_dir is F.data_dir and D.DATA_DIR_ENV == "LMCNB_DATA_DIR"


def test_loaders_read_the_data_root_when_root_is_none(monkeypatch, tmp_path):
    write_mnist(tmp_path / "root")
    write_cifar(tmp_path / "root", "archive")
    monkeypatch.setenv("LMCNB_DATA_DIR", str(tmp_path / "root"))
    assert torch.equal(D.mnist(n_val=10).test.x, D.mnist(tmp_path / "root", n_val=10).test.x)
    assert torch.equal(D.cifar10(n_val=10).test.x, D.cifar10(tmp_path / "root", n_val=10).test.x)
    monkeypatch.setenv("LMCNB_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="empty"):
        D.mnist(n_val=10)


# ------------------------------------------------------------------------------------------------------ MNIST
@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_real_idx_files(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress=compress)
    raw = D.mnist(tmp_path, n_val=10, seed=0, normalize=False, flatten=False)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (30, 10, 20) and raw.input_shape == (1, 28, 28)
    assert torch.equal(raw.test.x, torch.from_numpy(arrays[STEMS[2]]).float().div(255).unsqueeze(1))
    assert torch.equal(raw.test.y, torch.from_numpy(arrays[STEMS[3]]).long())
    ids = [np.rint(s.x[:, 0, 0, 0].numpy() * 255).astype(int) for s in (raw.train, raw.val)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(40))  # train and val partition the 40 images
    for split, i in zip((raw.train, raw.val), ids):
        assert torch.equal(split.x.squeeze(1), torch.from_numpy(arrays[STEMS[0]][i]).float().div(255))
        assert np.array_equal(split.y.numpy(), i % 10)
    assert torch.equal(torch.bincount(raw.val.y, minlength=10), torch.ones(10, dtype=torch.int64))

    ds = D.mnist(tmp_path, n_val=10, seed=0)
    assert ds.mean == (0.1307,) and ds.std == (0.3081,) and ds.input_shape == (784,) and ds.name == "mnist"
    expected = torch.from_numpy(arrays[STEMS[2]]).double().reshape(20, -1) / 255
    assert torch.allclose(ds.test.x.double(), (expected - 0.1307) / 0.3081, atol=1e-6)
    assert torch.equal(D.mnist(tmp_path, n_val=10, seed=0).val.x, ds.val.x)
    assert not torch.equal(D.mnist(tmp_path, n_val=10, seed=1).val.x, ds.val.x)
    assert len(D.mnist(tmp_path, n_val=20).val) == 20


def test_mnist_bad_arguments(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match="n_val"):
        D.mnist(tmp_path, n_val=0)
    with pytest.raises(ValueError, match="n_val"):
        D.mnist(tmp_path, n_val=40)
    with pytest.raises(TypeError, match="download"):
        D.mnist(tmp_path, download="yes")
    with pytest.raises(TypeError, match="root"):
        D.mnist(3)
    with pytest.raises(TypeError, match="seed"):
        D.mnist(tmp_path, seed=1.5)


def test_mnist_missing_file_names_file_folder_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCNB_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        D.mnist()
    message = str(info.value)
    for needle in ("train-images-idx3-ubyte.gz", str(tmp_path / "MNIST" / "raw"), "make data",
                   "on a machine with internet", "then copy <dir> to this machine's $LMCNB_DATA_DIR "
                   f"({tmp_path})", "tools/fetch_data.py --check", "download=True", "mnist_subset",
                   "fashion_mnist"):
        assert needle in message, needle
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    elsewhere = tmp_path / "elsewhere"
    write_mnist(elsewhere)
    (elsewhere / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=f"t10k-labels-idx1-ubyte.gz is missing.*copy <dir> to {elsewhere} "
                                                "on this machine"):
        D.mnist(elsewhere)


@pytest.mark.parametrize("damage, error, match", [
    ("truncate_gz", ValueError, "corrupt or truncated gzip"),
    ("truncate_raw", ValueError, "bytes"),
    ("magic", ValueError, "not an IDX file"),
    ("labels_range", ValueError, "outside 0..9"),
    ("count", RuntimeError, "expected 40 integer labels"),
    ("size", ValueError, "28×28"),
])
def test_mnist_rejects_corrupt_files(tmp_path, damage, error, match):
    compress = damage != "truncate_raw"
    write_mnist(tmp_path, compress=compress)
    raw = tmp_path / "MNIST" / "raw"
    images = raw / (STEMS[0] + (".gz" if compress else ""))
    labels = raw / (STEMS[1] + ".gz")
    if damage in ("truncate_gz", "truncate_raw"):
        images.write_bytes(images.read_bytes()[:-7])
    elif damage == "magic":
        images.write_bytes(gzip.compress(b"\x08\x03" + gzip.decompress(images.read_bytes())[2:]))
    elif damage == "labels_range":
        labels.write_bytes(gzip.compress(idx_bytes(np.full(40, 10, dtype=np.uint8))))
    elif damage == "count":
        labels.write_bytes(gzip.compress(idx_bytes(np.zeros(39, dtype=np.uint8))))
    else:
        images.write_bytes(gzip.compress(idx_bytes(np.zeros((40, 27, 27), dtype=np.uint8))))
    with pytest.raises(error, match=match):
        D.mnist(tmp_path, n_val=10)


# --------------------------------------------------------------------------------------------------- CIFAR-10
@pytest.mark.parametrize("layout", ["folder", "archive"])
def test_cifar10_reads_real_python_batches(tmp_path, layout):
    arrays = write_cifar(tmp_path, layout)
    raw = D.cifar10(tmp_path, n_val=10, seed=0, normalize=False)
    assert (len(raw.train), len(raw.val), len(raw.test)) == (20, 10, 10) and raw.input_shape == (3, 32, 32)
    data, labels = arrays["test_batch"]
    for i in range(10):  # the layout read from the format's definition: plane c, row r, column k at c*1024+r*32+k
        for c, r, k in ((0, 0, 0), (1, 2, 3), (2, 31, 30), (0, 17, 5)):
            assert raw.test.x[i, c, r, k] == float(data[i, c * 1024 + r * 32 + k]) / 255
    assert torch.equal(raw.test.x, torch.from_numpy(data).float().div(255).reshape(10, 3, 32, 32))
    assert raw.test.y.tolist() == labels
    train_data = np.concatenate([arrays[b][0] for b in BATCHES[:5]])
    train_labels = sum((arrays[b][1] for b in BATCHES[:5]), [])
    ids = [np.rint(s.x[:, 0, 0, 0].numpy() * 255).astype(int) for s in (raw.train, raw.val)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(30))
    for split, i in zip((raw.train, raw.val), ids):
        assert torch.equal(split.x.reshape(len(i), -1), torch.from_numpy(train_data[i]).float().div(255))
        assert split.y.tolist() == [train_labels[j] for j in i]

    ds = D.cifar10(tmp_path, n_val=10, seed=0)
    assert ds.mean == D.CIFAR10_MEAN and ds.std == D.CIFAR10_STD and ds.name == "cifar10"
    for c, (m, s) in enumerate(zip(D.CIFAR10_MEAN, D.CIFAR10_STD)):
        assert torch.allclose(ds.test.x[:, c].double(), (raw.test.x[:, c].double() - m) / s, atol=1e-6)
    flat = D.cifar10(tmp_path, n_val=10, flatten=True, normalize=False)
    assert flat.input_shape == (3072,) and torch.equal(flat.test.x, raw.test.x.reshape(10, -1))
    assert not torch.equal(D.cifar10(tmp_path, n_val=10, seed=1).val.x, ds.val.x)


def test_cifar10_prefers_a_complete_extracted_folder(tmp_path):
    write_cifar(tmp_path, "archive")
    (tmp_path / "cifar-10-batches-py").mkdir()
    data = np.zeros((10, 3072), dtype=np.uint8)
    for name in BATCHES:  # an extracted folder whose images are all zero
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(cifar_batch_bytes(data, list(range(10))))
    assert float(D.cifar10(tmp_path, n_val=10, normalize=False).test.x.abs().sum()) == 0
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()  # incomplete: the archive is read instead
    assert float(D.cifar10(tmp_path, n_val=10, normalize=False).test.x.abs().sum()) > 0


def test_cifar10_missing_file_names_file_folder_and_command(tmp_path, no_data_env):
    with pytest.raises(FileNotFoundError) as info:
        D.cifar10(tmp_path)
    message = str(info.value)
    for needle in ("cifar-10-python.tar.gz", str(tmp_path), "make data", "copy <dir> to", "cifar-10-batches-py",
                   "mnist_subset"):
        assert needle in message, needle


def test_read_cifar10_batch_python2_and_python3_pickles(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for py2 in (True, False):
        images, labels = D.read_cifar10_batch(cifar_batch_bytes(data, [3, 9], py2_numpy=py2))
        assert images.dtype == torch.uint8 and images.shape == (2, 3, 32, 32)
        assert int(images[1, 2, 4, 5]) == int(data[1, 2048 + 4 * 32 + 5]) and labels.tolist() == [3, 9]
    path = tmp_path / "b"
    path.write_bytes(cifar_batch_bytes(data, [0, 1]))
    assert torch.equal(D.read_cifar10_batch(path)[0], images)
    with pytest.raises(TypeError, match="source"):
        D.read_cifar10_batch(3)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("blob, match", [
    (pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2), "refusing the global"),
    (cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0, 1])[:-20], "corrupt or truncated"),
    (b"not a pickle", "corrupt or truncated"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2), "b'labels'"),
    (pickle.dumps([1, 2], protocol=2), "dict"),
    (cifar_batch_bytes(np.zeros((2, 3071), np.uint8), [0, 1]), r"\(N, 3072\)"),
    (cifar_batch_bytes(np.zeros((2, 3072), np.float32), [0, 1]), "uint8"),
    (cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0, 10]), r"0\.\.9"),
    (cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0]), "2 ints"),
])
def test_read_cifar10_batch_rejects_foreign_and_corrupt_files(tmp_path, blob, match):
    with pytest.raises(ValueError, match=f"^my batch: .*{match}"):
        D.read_cifar10_batch(blob, "my batch")
    (tmp_path / "data_batch_9").write_bytes(blob)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'data_batch_9'}: .*{match}"):
        D.read_cifar10_batch(tmp_path / "data_batch_9")


@pytest.mark.parametrize("damage", ["truncate", "member"])
def test_cifar10_rejects_an_incomplete_archive(tmp_path, damage):
    write_cifar(tmp_path, "archive")
    archive = tmp_path / "cifar-10-python.tar.gz"
    if damage == "truncate":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    else:
        with tarfile.open(archive, "w:gz") as tar:  # only the first batch
            blob = cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0, 1])
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="not a complete CIFAR-10 archive.*fetch_data.py --check"):
        D.cifar10(tmp_path, n_val=1)


def test_loaders_need_no_torchvision(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any import of it now fails
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    write_mnist(tmp_path)
    write_cifar(tmp_path, "archive")
    assert len(D.mnist(tmp_path, n_val=10).test) == 20 and len(D.cifar10(tmp_path, n_val=10).test) == 10


# ------------------------------------------------------------------------------------- checksums and fetching
def test_stored_manifest_is_complete():
    assert F.PAPER_DATASETS == ("mnist", "cifar10") and set(F.FILES) == {"mnist", "cifar10"}
    assert [s.path for s in F.FILES["mnist"]] == [f"MNIST/raw/{stem}.gz" for stem in STEMS]
    assert [s.path for s in F.FILES["cifar10"]] == ["cifar-10-python.tar.gz"]
    for spec in (s for specs in F.FILES.values() for s in specs):
        assert len(spec.md5) == 32 and len(spec.sha256) == 64 and int(spec.md5 + spec.sha256, 16) >= 0
        assert spec.size > 0 and spec.urls and all(u.startswith(("https://", "http://")) for u in spec.urls)
        assert all(u.endswith("/" + spec.name) for u in spec.urls)
    assert F.FILES["mnist"][0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"  # the MD5 torchvision lists
    assert F.FILES["cifar10"][0].md5 == "c58f30108f718f92721af3b95e74349a"


@pytest.fixture
def local_files(tmp_path, monkeypatch):
    """FILES replaced by two small files served from ``file://`` URLs, with their true checksums."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {"mnist": b"first file " * 1000, "cifar10": bytes(range(256)) * 40}
    specs = {}
    for dataset, content in contents.items():
        (src / f"{dataset}.bin").write_bytes(content)
        specs[dataset] = (spec_for(dataset, f"{dataset}/sub/{dataset}.bin", content,
                                   ((src / f"{dataset}.bin").as_uri(),)),)
    monkeypatch.setattr(F, "FILES", specs)
    return tmp_path / "root", src, contents


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def test_fetch_downloads_verifies_and_then_stays_offline(local_files):
    root, _, contents = local_files
    lines: list[str] = []
    paths = F.fetch(("mnist", "cifar10"), root, log=lines.append)
    assert paths == [root / "mnist/sub/mnist.bin", root / "cifar10/sub/cifar10.bin"]
    assert [p.read_bytes() for p in paths] == [contents["mnist"], contents["cifar10"]]
    assert all("downloaded, checksums ok" in line for line in lines) and not _leftovers(root)
    assert F.check(("mnist", "cifar10"), root) == []

    def offline(url, timeout):
        raise AssertionError("no download may happen when the files are right")

    lines.clear()
    assert F.fetch(("mnist",), root, opener=offline, log=lines.append) == paths[:1]
    assert lines == [f"mnist: {paths[0]}: ok (already there)"]


def test_fetch_tries_the_next_mirror_after_a_wrong_file_and_replaces_a_wrong_file(local_files, monkeypatch):
    root, src, contents = local_files
    (src / "bad.bin").write_bytes(contents["mnist"][:-1] + b"X")  # same size, other bytes
    spec = F.FILES["mnist"][0]
    monkeypatch.setattr(F, "FILES", {"mnist": (F.DataFile("mnist", spec.path, ((src / "bad.bin").as_uri(),)
                                                          + spec.urls, spec.size, spec.md5, spec.sha256),)})
    target = root / spec.path
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a wrong old file")
    lines: list[str] = []
    F.fetch(("mnist",), root, log=lines.append)
    assert target.read_bytes() == contents["mnist"] and "replaced a wrong file" in lines[0]
    assert not _leftovers(root)


def test_fetch_failure_leaves_no_file_and_names_every_url(local_files, monkeypatch):
    root, src, contents = local_files
    (src / "short.bin").write_bytes(contents["mnist"][:100])
    spec = F.FILES["mnist"][0]
    urls = ((src / "short.bin").as_uri(), (src / "absent.bin").as_uri())
    monkeypatch.setattr(F, "FILES", {"mnist": (F.DataFile("mnist", spec.path, urls, spec.size, spec.md5,
                                                          spec.sha256),)})
    with pytest.raises(RuntimeError) as info:
        F.fetch(("mnist",), root)
    message = str(info.value)
    assert all(url in message for url in urls) and "size is 100" in message and "mnist/sub/mnist.bin" in message
    assert not (root / spec.path).exists() and not _leftovers(root)


def test_interrupted_download_is_never_renamed_onto_the_target(local_files):
    root, _, contents = local_files

    class Broken:
        def __init__(self):
            self.calls = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("connection reset mid-file")
            return contents["mnist"][:10]

    with pytest.raises(RuntimeError, match="connection reset mid-file"):
        F.fetch(("mnist",), root, opener=lambda url, timeout: Broken())
    assert not (root / "mnist/sub/mnist.bin").exists() and not _leftovers(root)


@pytest.mark.parametrize("field", ["size", "md5", "sha256"])
def test_verify_checks_size_md5_and_sha256(tmp_path, field):
    content = b"abc" * 10
    spec = spec_for("mnist", "f.bin", content, ("file:///nowhere/f.bin",))
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    F.verify(path, spec)
    wrong = {"size": {"size": 31}, "md5": {"md5": "0" * 32}, "sha256": {"sha256": "0" * 64}}[field]
    label = {"size": "size", "md5": "MD5", "sha256": "SHA-256"}[field]
    with pytest.raises(F.ChecksumError, match=f"{label} is .*expected"):
        F.verify(path, F.DataFile(**{**spec.__dict__, **wrong}))
    with pytest.raises(FileNotFoundError):
        F.verify(tmp_path / "absent", spec)
    with pytest.raises(TypeError, match="spec"):
        F.verify(path, "spec")


def test_check_reports_missing_and_wrong_files_without_network(local_files, monkeypatch):
    root, _, _ = local_files
    assert F.check(("mnist", "cifar10"), root) == [f"missing: {root / 'mnist/sub/mnist.bin'}",
                                                   f"missing: {root / 'cifar10/sub/cifar10.bin'}"]
    F.fetch(("mnist", "cifar10"), root)
    (root / "cifar10/sub/cifar10.bin").write_bytes(b"x")
    problems = F.check(("mnist", "cifar10"), root)
    assert len(problems) == 1 and problems[0].startswith("wrong:") and "size is 1" in problems[0]
    assert F.check(("mnist",), root) == []
    monkeypatch.setenv("LMCNB_DATA_DIR", str(root))
    assert F.check(("mnist",)) == []  # root=None is the data root
    with pytest.raises(ValueError, match="non-empty selection"):
        F.check(("imagenet",), root)
    with pytest.raises(ValueError, match="non-empty selection"):
        F.check((), root)
    with pytest.raises(TypeError, match="sequence of dataset names"):
        F.check("mnist", root)
    with pytest.raises(TypeError, match="root"):
        F.check(("mnist",), 5)
    with pytest.raises(TypeError, match="opener"):
        F.fetch(("mnist",), root, opener="urlopen")


def test_loader_download_fetches_checksummed_files(tmp_path, monkeypatch):
    """download=True: the loader fetches the missing MNIST files (here file:// URLs) with their checksums."""
    arrays = write_mnist(tmp_path / "src")
    src = tmp_path / "src" / "MNIST" / "raw"
    specs = tuple(spec_for("mnist", s.path, (src / s.name).read_bytes(), ((src / s.name).as_uri(),))
                  for s in F.FILES["mnist"])
    monkeypatch.setattr(F, "FILES", {**F.FILES, "mnist": specs})
    with pytest.raises(FileNotFoundError, match="make data"):
        D.mnist(tmp_path / "root", n_val=10)  # download=False never fetches
    ds = D.mnist(tmp_path / "root", download=True, n_val=10, normalize=False)
    assert torch.equal(ds.test.y, torch.from_numpy(arrays[STEMS[3]]).long())
    assert F.check(("mnist",), tmp_path / "root") == []


def test_cifar10_download_fetches_the_checksummed_archive(tmp_path, monkeypatch):
    arrays = write_cifar(tmp_path / "src", "archive")
    archive = tmp_path / "src" / "cifar-10-python.tar.gz"
    spec = spec_for("cifar10", "cifar-10-python.tar.gz", archive.read_bytes(), (archive.as_uri(),))
    monkeypatch.setattr(F, "FILES", {**F.FILES, "cifar10": (spec,)})
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        D.cifar10(tmp_path / "root", n_val=10)
    ds = D.cifar10(tmp_path / "root", download=True, n_val=10, normalize=False)
    assert ds.test.y.tolist() == arrays["test_batch"][1]
    assert F.check(("cifar10",), tmp_path / "root") == []


def test_download_failure_explains_offline_staging(tmp_path, monkeypatch):
    spec = F.FILES["mnist"][0]
    monkeypatch.setattr(F, "FILES", {**F.FILES, "mnist": (F.DataFile(
        "mnist", spec.path, ((tmp_path / "no-network").as_uri(),), spec.size, spec.md5, spec.sha256),)})
    with pytest.raises(RuntimeError) as info:
        D.mnist(tmp_path / "root", download=True)
    message = str(info.value)
    for needle in ("download=True failed", "no-network", "train-images-idx3-ubyte.gz", "make data",
                   "copy <dir> to", "mnist_subset", "apt-get install dataset-fashion-mnist"):
        assert needle in message, needle
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not (tmp_path / "root" / spec.path).exists()


# ----------------------------------------------------------------------------------- tools/fetch_data.py, make
def _fetch_data(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The script as `make data` runs it, with torch and numpy made unimportable (standard library only)."""
    code = ("import runpy, sys; sys.modules.update(torch=None, numpy=None); "
            f"sys.argv = ['fetch_data.py', *{list(args)!r}]; "
            "runpy.run_path('tools/fetch_data.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_fetch_data_check_is_offline_and_standard_library_only(tmp_path):
    out = _fetch_data("--check", "--dir", str(tmp_path))
    assert out.returncode == 1, out.stderr
    assert f"missing: {tmp_path / 'MNIST/raw/train-images-idx3-ubyte.gz'}" in out.stderr
    assert f"missing: {tmp_path / 'cifar-10-python.tar.gz'}" in out.stderr
    assert "make data LMCNB_DATA_DIR=" in out.stderr
    only = _fetch_data("--check", "--dataset", "cifar10", env={"LMCNB_DATA_DIR": str(tmp_path)})
    assert only.returncode == 1 and "MNIST" not in only.stderr and "cifar-10-python.tar.gz" in only.stderr


def test_fetch_data_main_fetches_and_checks(local_files, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import fetch_data
    finally:
        sys.path.remove(str(REPO / "tools"))
    root, src, _ = local_files
    assert fetch_data.main(["--dir", str(root), "--check"]) == 1
    assert "missing" in capsys.readouterr().err
    assert fetch_data.main(["--dir", str(root)]) == 0
    assert "checksums verified" in capsys.readouterr().out
    assert fetch_data.main(["--dir", str(root), "--check"]) == 0
    (src / "mnist.bin").unlink()
    (root / "mnist/sub/mnist.bin").unlink()
    assert fetch_data.main(["--dir", str(root), "--dataset", "mnist"]) == 1
    assert "could not download" in capsys.readouterr().err


def test_make_data_and_readme_document_the_data_root():
    makefile = (REPO / "Makefile").read_text()
    assert "\ndata:\n\t$(PYTHON) tools/fetch_data.py" in makefile and "make data" in makefile.split("\n\n")[0]
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Data"):]
    section = section[: section.index("\n## ", 1)]
    for needle in ("LMCNB_DATA_DIR", "~/.cache/lmcnb/data", "make data", "--check", "MD5", "SHA-256", "copy"):
        assert needle in section, needle
