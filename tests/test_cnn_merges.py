"""Chapter 6's paper cell at toy size: Table 1's sweep (cnn_merges.ConvSweep, table1_row/_sweep/_frame), its cost
estimate (forward_flops, gpu_hours), augmentation (RandomCropFlip) and seeded construction (seeded_model)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lmcnb import data, models
from lmcnb.experiments import cnn_merges

# random labels: the fitted temperatures of the toy merges may hit their bound
pytestmark = pytest.mark.filterwarnings("ignore:temperature hit the bound")

TOY = cnn_merges.ConvSweep(multipliers=(("VGG-11", 1 / 16), ("ResNet-20", 0.25)), epochs=1, weight_decays=(3e-3,),
                     batch=16, bn_images=32)


def _toy_data(seed: int = 0) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> SimpleNamespace:
        return SimpleNamespace(x=torch.randn(n, 3, 32, 32, generator=g), y=torch.randint(0, 10, (n,), generator=g))

    return SimpleNamespace(train=split(48), val=split(16), test=split(16))


def test_forward_flops_counts_conv_and_linear_layers() -> None:
    net = lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    assert cnn_merges.forward_flops(net, (3, 8, 8)) == 2 * (4 * 8 * 8) * (3 * 9) + 2 * 10 * 256
    h = 96
    mlp = lambda: models.MLP(784, (h, h, h), 10, bias=False)
    assert cnn_merges.forward_flops(mlp, (784,)) == 2 * (784 * h + 2 * h * h + h * 10)
    v1 = cnn_merges.forward_flops(lambda: models.VGG11(width_multiplier=1), (3, 32, 32))
    v16 = cnn_merges.forward_flops(lambda: models.VGG11(width_multiplier=16), (3, 32, 32))  # meta: no memory
    assert 0.3e9 < v1 < 0.31e9 and 250 < v16 / v1 < 256  # ≈ m² (first layer and classifier grow like m)
    with pytest.raises(TypeError, match="make must be a callable"):
        cnn_merges.forward_flops(models.VGG11(width_multiplier=0.25), (3, 32, 32))


def test_gpu_hours() -> None:
    assert cnn_merges.SUSTAINED_TFLOPS == 15.0  # the budget model's A100/H100-class GPU
    assert cnn_merges.gpu_hours(15e12 * 3600) == pytest.approx(1.0)
    assert cnn_merges.gpu_hours(15e12 * 3600, tflops=30) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cnn_merges.gpu_hours(-1.0)


def test_conv_sweep_flops_formula_and_every_argument() -> None:
    s = cnn_merges.ConvSweep(multipliers=(("ResNet-20", 1.0),), epochs=3, weight_decays=(3e-3, 1e-4), bn_images=100)
    fwd = cnn_merges.forward_flops(lambda: models.ResNet20(width_multiplier=1.0), (3, 32, 32))
    expected = 2 * (2 * 3 * fwd * 1000 * 3 + 2 * 11 * fwd * (100 + 500))  # two weight decays
    assert s.flops(1000, 500, 11) == pytest.approx(expected)
    base = s.flops(1000, 500, 11)
    assert s.flops(2000, 500, 11) > base and s.flops(1000, 900, 11) > base
    assert s.flops(1000, 500, 21) > base and s.flops(1000, 500, 11, n_matchers=1) < base


def test_paper_scale_fits_and_full_scale_is_table_1() -> None:
    paper = cnn_merges.gpu_hours(cnn_merges.CONV_PAPER.flops(45_000, 15_000, 11))
    full = cnn_merges.gpu_hours(cnn_merges.CONV_FULL.flops(45_000, 15_000, 11))
    assert paper <= 0.3  # the chapter's paper profile: FLOPs alone of the CIFAR-10 cell, at 15 TFLOP/s
    assert full > 48  # Table 1's size: days
    assert set(cnn_merges.CONV_FULL.multipliers) == {("VGG-11", 16.0), ("ResNet-20", 32.0)}
    assert cnn_merges.CONV_FULL.epochs == 200 and cnn_merges.CONV_FULL.weight_decays == (3e-3, 1e-4)


def test_smoke_size_is_the_paper_recipe_at_toy_size() -> None:
    """CONV_SMOKE (the smoke profile's CIFAR-10 cells): both architectures, the paper's recipe apart from sizes."""
    smoke, paper = cnn_merges.CONV_SMOKE, cnn_merges.CONV_PAPER
    assert {a for a, _ in smoke.multipliers} == {a for a, _ in paper.multipliers} == {"VGG-11", "ResNet-20"}
    assert (smoke.weight_decays, smoke.seeds, smoke.lr, smoke.warmup, smoke.augment) == \
        (paper.weight_decays, paper.seeds, paper.lr, paper.warmup, paper.augment)
    assert smoke.config(3e-3).schedule == paper.config(3e-3).schedule == "warmup_cosine"
    # a toy root's 600 training images: over a thousand times fewer FLOPs than the paper cell on CIFAR-10
    assert smoke.flops(600, 5400, 11) * 1000 < paper.flops(45_000, 15_000, 11)


def test_conv_sweep_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'VGG-16'"):
        cnn_merges.ConvSweep(multipliers=(("VGG-16", 1.0),), epochs=1)
    with pytest.raises(ValueError, match="at least one"):
        cnn_merges.ConvSweep(multipliers=(), epochs=1)
    with pytest.raises(ValueError, match="two different seeds"):
        cnn_merges.ConvSweep(multipliers=(("VGG-11", 1.0),), epochs=1, seeds=(3, 3))
    with pytest.raises(ValueError, match="epochs"):
        cnn_merges.ConvSweep(multipliers=(("VGG-11", 1.0),), epochs=0)
    with pytest.raises(TypeError, match="augment"):
        cnn_merges.ConvSweep(multipliers=(("VGG-11", 1.0),), epochs=1, augment=1)
    assert TOY.config(1e-4).weight_decay == 1e-4 and TOY.config(1e-4).schedule == "warmup_cosine"
    assert TOY.grid() == [dict(arch="VGG-11", multiplier=1 / 16, weight_decay=3e-3),
                          dict(arch="ResNet-20", multiplier=0.25, weight_decay=3e-3)]


def test_random_crop_flip_is_a_seeded_crop_and_flip_in_train_mode_only() -> None:
    x = torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    aug = cnn_merges.RandomCropFlip(nn.Identity(), seed=3, pad=2)
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    out = aug(x)
    padded = nn.functional.pad(x, (2,) * 4)
    for i in range(6):  # brute force: some offset of the (possibly flipped) padded image
        cands = [img[:, dy:dy + 5, dx:dx + 5] for img in (padded[i], padded[i].flip(2))
                 for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) for c in cands)
    assert torch.equal(cnn_merges.RandomCropFlip(nn.Identity(), seed=3, pad=2).train()(x), out)  # seeded
    assert not torch.equal(cnn_merges.RandomCropFlip(nn.Identity(), seed=4, pad=2).train()(x), out)
    flips = cnn_merges.RandomCropFlip(nn.Identity(), seed=3, pad=0).train()(x)  # pad 0: flips only
    assert all(torch.equal(flips[i], x[i]) or torch.equal(flips[i], x[i].flip(2)) for i in range(6))
    with pytest.raises(ValueError, match="image batches"):
        aug(torch.randn(3, 4))


def test_seeded_model_is_reproducible_and_leaves_the_global_rng() -> None:
    make = lambda: models.ResNet20(width_multiplier=0.25)
    state = torch.random.get_rng_state()
    a, b, c = cnn_merges.seeded_model(make, 1), cnn_merges.seeded_model(make, 1), cnn_merges.seeded_model(make, 2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_seeded_model_in_two_threads_at_once_is_the_serial_model() -> None:
    """Two constructions overlapping in time (thread b seeds the global RNG while thread a sleeps between two
    draws) give each thread the model of its own seed, as in a serial run; without the lock thread a's second
    draw would come from seed 1's stream."""
    import threading
    import time

    started = threading.Event()

    def make() -> nn.Module:
        net = nn.Linear(3, 3)
        started.set()
        time.sleep(0.05)  # releases the GIL: the other thread runs now unless the lock holds it
        with torch.no_grad():
            net.bias.copy_(torch.randn(3))
        return net

    serial = [cnn_merges.seeded_model(make, s) for s in (0, 1)]
    out: dict[int, nn.Module] = {}

    def build(seed: int) -> None:
        out[seed] = cnn_merges.seeded_model(make, seed)

    started.clear()
    a = threading.Thread(target=build, args=(0,))
    a.start()
    started.wait()
    b = threading.Thread(target=build, args=(1,))
    b.start()
    a.join(), b.join()
    for seed, ref in enumerate(serial):
        assert all(torch.equal(out[seed].state_dict()[k], v) for k, v in ref.state_dict().items()), seed


def test_sweep_tasks_in_a_thread_pool_give_the_serial_rows() -> None:
    """The CNN sweep's tasks (one per (multiplier, pair): seeded construction, training, merging) on a
    ThreadPoolExecutor of 2 workers give bit-identical rows to the serial run."""
    import concurrent.futures as cf

    from lmcnb import realdata
    from lmcnb.train import TrainConfig

    g = torch.Generator().manual_seed(0)
    splits = [data.Split(torch.randn(n, 1, 16, 16, generator=g), torch.arange(n) % 3) for n in (24, 12, 12)]
    ds = data.Dataset(*splits, num_classes=3, input_shape=(1, 16, 16), name="toy-images")
    spec = realdata.CNNSweep("resnet20", [0.25, 0.5], TrainConfig(epochs=1, batch_size=8, lr=0.05, momentum=0.9),
                             [0.0, 0.5, 1.0], n_eval=12, n_bn=16, n_pairs=2, batch_size=8)
    serial = realdata.width_sweep(ds, spec)
    with cf.ThreadPoolExecutor(2) as pool:
        threaded = realdata.width_sweep(ds, spec, executor=pool)
    assert threaded == serial


def test_table1_row_at_toy_size_is_seeded_and_uses_its_arguments() -> None:
    ds, lam = _toy_data(), torch.linspace(0, 1, 3)
    row = cnn_merges.table1_row(TOY, "VGG-11", 1 / 16, 3e-3, ds, lam)
    assert set(row) == {"acc a", "acc b", "identity acc", "identity cal loss", "weight matching acc",
                        "weight matching cal loss"}
    assert all(math.isfinite(v) for v in row.values())
    assert cnn_merges.table1_row(TOY, "VGG-11", 1 / 16, 3e-3, ds, lam) == row  # seeded: construction and training
    assert cnn_merges.table1_row(TOY, "VGG-11", 1 / 16, 1e-1, ds, lam) != row  # weight decay
    assert cnn_merges.table1_row(TOY, "VGG-11", 1 / 8, 3e-3, ds, lam) != row  # multiplier
    from dataclasses import replace
    assert cnn_merges.table1_row(replace(TOY, augment=False), "VGG-11", 1 / 16, 3e-3, ds, lam) != row
    assert cnn_merges.table1_row(replace(TOY, seeds=(5, 6)), "VGG-11", 1 / 16, 3e-3, ds, lam) != row
    assert cnn_merges.table1_row(replace(TOY, bn_images=16), "VGG-11", 1 / 16, 3e-3, ds, lam) != row
    with pytest.raises(ValueError, match="unknown architecture"):
        cnn_merges.table1_row(TOY, "VGG-16", 1.0, 3e-3, ds, lam)
    with pytest.raises(TypeError, match="train, val and test"):
        cnn_merges.table1_row(TOY, "VGG-11", 1 / 16, 3e-3, SimpleNamespace(train=ds.train), lam)


def test_table1_sweep_caches_and_frame_prints_table_1_beside_ours(tmp_path) -> None:
    ds, lam = _toy_data(), torch.linspace(0, 1, 3)
    rows = cnn_merges.table1_sweep(TOY, ds, lam, cache_dir=str(tmp_path))
    assert [(r["arch"], r["multiplier"]) for r in rows] == [("VGG-11", 1 / 16), ("ResNet-20", 0.25)]
    assert len(list(tmp_path.glob("*.pt"))) == 2
    assert cnn_merges.table1_sweep(TOY, ds, lam, cache_dir=str(tmp_path)) == rows  # from the cache
    frame = cnn_merges.table1_frame(rows)
    assert len(frame) == 4
    vgg = frame.loc[("VGG-11", 1 / 16, 3e-3, "weight matching")]
    assert vgg["Table 1 acc"] == 0.07 and vgg["Table 1 loss"] == 0.177
    assert vgg["acc barrier"] == rows[0]["weight matching acc"]
    res = frame.loc[("ResNet-20", 0.25, 3e-3, "identity")]
    assert (res["Table 1 acc"], res["Table 1 loss"]) == cnn_merges.TABLE1["ResNet-20 x32", "identity"]


def test_train_seeded_builds_under_the_seed_augments_and_unwraps() -> None:
    ds = _toy_data()
    cfg = TOY.config(3e-3)
    make = lambda: models.VGG11(width_multiplier=1 / 16)
    net = cnn_merges.train_seeded(make, 0, ds.train.x, ds.train.y, cfg, augment=True)
    assert isinstance(net, models.VGG11) and not net.training  # the network itself, eval mode, no wrapper
    again = cnn_merges.train_seeded(make, 0, ds.train.x, ds.train.y, cfg, augment=True)
    same = lambda a, b: all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert same(net, again)  # seeded construction, data order and augmentation
    plain = cnn_merges.train_seeded(make, 0, ds.train.x, ds.train.y, cfg, augment=False)
    assert not same(net, plain)  # the augmentation is used
    assert not same(net, cnn_merges.train_seeded(make, 1, ds.train.x, ds.train.y, cfg, augment=True))
    # without augmentation it is seeded_model + train_classifier, step for step
    from lmcnb.train import train_classifier
    ref, _ = train_classifier(cnn_merges.seeded_model(make, 0), ds.train.x, ds.train.y, cfg, seed=0)
    assert same(plain, ref)
    with pytest.raises(TypeError, match="augment must be a bool"):
        cnn_merges.train_seeded(make, 0, ds.train.x, ds.train.y, cfg, augment="yes")
