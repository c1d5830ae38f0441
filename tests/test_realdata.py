"""Tests of lmcnb.realdata (chapter 7's four barrier views and MLP sweep) and of the BatchNorm-renormalised merge
used for the CNNs: with re-estimated statistics, the merged network at λ = 0 and λ = 1 is exactly the endpoint."""
from __future__ import annotations

import pytest
import torch

from lmcnb import barrier, data, matching, merge, models, realdata, renorm, train
from lmcnb import permutation as perm


def tiny_data():
    return data.gaussian_mixture(200, 100, 100, d=6, num_classes=3, separation=3.0, seed=0)


def trained_pair(ds, width=16):
    cfg = train.TrainConfig(epochs=3, batch_size=32, lr=0.05)
    inits = train.init_mlps((6, width, 3), 2, [0, 1])
    (a, b), _ = train.train_mlps(inits, ds.train.x, ds.train.y, cfg, seeds=[0, 1])
    return a, b


def views(a, b, ds, **kwargs):
    return realdata.barrier_views(merge.Pair(a, b), torch.linspace(0, 1, 5), merge.Empirical(ds.train.x, ds.train.y),
                                  data_for_matching=ds.val.x, calibration_split=(ds.val.x, ds.val.y), **kwargs)


def test_views_of_a_permuted_copy():
    ds = tiny_data()
    a, _ = trained_pair(ds)
    planted = perm.random_perms(perm.spec_for(a).sizes(a.state_dict()), torch.Generator().manual_seed(1))
    pa = perm.permute_model(a, planted)
    v = views(a, pa, ds)
    assert tuple(v) == realdata.VIEWS[:3] + realdata.VIEWS[3:]
    assert v["weight matching"] == pytest.approx(0, abs=1e-6)
    assert v["activation matching"] == pytest.approx(0, abs=1e-6)
    assert v["no permutation"] > 1e-3, "a random permutation creates a naive barrier"
    assert v["calibrated no permutation"] >= 0
    same = views(a, a, ds)
    assert all(x == pytest.approx(0, abs=1e-7) for x in same.values())


def test_views_are_the_merge_pipeline_and_take_repairs_and_a_seed():
    ds = tiny_data()
    a, b = trained_pair(ds)
    v = views(a, b, ds)
    lam, ev = torch.linspace(0, 1, 5), merge.Empirical(ds.train.x, ds.train.y)
    cal = merge.CalibrateTemperature((ds.val.x, ds.val.y))
    naive = merge.merge(merge.Pair(a, b), lam, ev, repairs=[cal])
    assert v["no permutation"] == naive.barrier() and v["calibrated no permutation"] == naive.barrier(
        metric="calibrated_loss")
    wm = merge.merge(merge.Pair(a, b), lam, ev, align=matching.WeightMatching(seed=0))
    assert v["weight matching"] == wm.barrier()
    am = merge.merge(merge.Pair(a, b), lam, ev, align=matching.ActivationMatching(), data=ds.val.x)
    assert v["activation matching"] == am.barrier()
    # repairs reach every path (a BatchNorm reset on an MLP is refused), the seed reaches weight matching
    with pytest.raises(ValueError, match="BatchNorm"):
        views(a, b, ds, repairs=[merge.ResetBatchNorm(ds.train.x)])
    seeded = merge.merge(merge.Pair(a, b), lam, ev, align=matching.WeightMatching(seed=5))
    assert views(a, b, ds, seed=5)["weight matching"] == seeded.barrier()


def _mlp_spec(**kwargs):
    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=0.05)
    base = dict(depths=[1, 2], widths=[4, 8], weight_decays=[0.0, 1e-3], config=cfg,
                lambdas=torch.linspace(0, 1, 3), n_eval=100)
    return realdata.MLPSweep(**{**base, **kwargs})


@pytest.mark.filterwarnings("ignore:temperature hit the bound")  # 1-epoch toy networks: T at its bound is fine
def test_mlp_width_sweep_rows_and_cache(tmp_path):
    ds = tiny_data()
    spec = _mlp_spec()
    rows = realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path))
    assert len(rows) == 2 * 2 * 2
    assert [(r["depth"], r["width"], r["weight_decay"]) for r in rows][:4] == [
        (1, 4, 0.0), (1, 4, 1e-3), (1, 8, 0.0), (1, 8, 1e-3)]
    assert all(set(realdata.VIEWS) <= set(r) and r["no permutation"] >= 0 for r in rows)
    assert len(list(tmp_path.glob("*.pt"))) == 2, "one cache file per depth"
    assert realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path)) == rows, "cached rows come back"
    assert realdata.width_sweep(ds, spec) == rows, "no cache: the same rows, recomputed"
    assert realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(None)) == rows, "a spec without a directory"
    assert len(list(tmp_path.glob("*.pt"))) == 2
    realdata.width_sweep(ds, _mlp_spec(depths=[1]), cache=realdata.CacheSpec(tmp_path, namespace="other"))
    assert len(list(tmp_path.glob("*.pt"))) == 3, "the namespace is part of the key"
    two = realdata.width_sweep(ds, _mlp_spec(depths=[1], widths=[4], weight_decays=[0.0], n_pairs=2))
    assert [r["pair"] for r in two] == [0, 1]


def test_sweep_specs_and_cache_spec_are_validated():
    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=0.05)
    for kwargs, error, match in [(dict(widths=[]), ValueError, "widths"), (dict(depths=[0]), ValueError, "depths"),
                                 (dict(depths=[1.5]), TypeError, "depths"),
                                 (dict(weight_decays=[-1.0]), ValueError, "weight_decays"),
                                 (dict(config="fast"), TypeError, "TrainConfig"),
                                 (dict(lambdas=[0.0, 0.5]), ValueError, "endpoints"),
                                 (dict(n_pairs=0), ValueError, "n_pairs"), (dict(n_eval=0), ValueError, "n_eval")]:
        with pytest.raises(error, match=match):
            _mlp_spec(**kwargs)
    spec = _mlp_spec(depths=(2,), lambdas=torch.linspace(0, 1, 3))
    assert spec.depths == (2,) and spec.lambdas == (0.0, 0.5, 1.0) and hash(spec) == hash(_mlp_spec(depths=[2]))
    cnn = dict(arch="vgg11", multipliers=[0.5], config=cfg, lambdas=[0.0, 1.0], n_eval=10, n_bn=10)
    assert realdata.CNNSweep(**cnn).multipliers == (0.5,)
    for kwargs, error, match in [(dict(arch="vgg16"), ValueError, "arch"), (dict(multipliers=[]), ValueError, "multi"),
                                 (dict(multipliers=[0.0]), ValueError, "multipliers"),
                                 (dict(config=None), TypeError, "TrainConfig"),
                                 (dict(lambdas=[0.5, 1.0]), ValueError, "endpoints"),
                                 (dict(n_eval=0), ValueError, "n_eval"), (dict(n_bn=0), ValueError, "n_bn"),
                                 (dict(n_pairs=0), ValueError, "n_pairs"),
                                 (dict(batch_size=0), ValueError, "batch_size")]:
        with pytest.raises(error, match=match):
            realdata.CNNSweep(**{**cnn, **kwargs})
    with pytest.raises(TypeError, match="path"):
        realdata.CacheSpec(3)
    with pytest.raises(ValueError, match="namespace"):
        realdata.CacheSpec("d", namespace="")
    ds = tiny_data()
    with pytest.raises(TypeError, match="MLPSweep or realdata.CNNSweep"):
        realdata.width_sweep(ds, {"depths": [1]})
    with pytest.raises(TypeError, match="CacheSpec"):
        realdata.width_sweep(ds, spec, cache="dir")
    with pytest.raises(ValueError, match="image inputs"):
        realdata.width_sweep(ds, realdata.CNNSweep(**cnn))
    # the old verbs fail naming the new one
    with pytest.raises(TypeError, match=r"width_sweep\(data, realdata.MLPSweep"):
        realdata.mlp_width_sweep(ds, [1], [4], [0.0], cfg, [0.0, 1.0])
    with pytest.raises(TypeError, match=r"width_sweep\(data, realdata.CNNSweep"):
        realdata.cnn_width_sweep("vgg11", ds, [0.5], cfg, [0.0, 1.0], n_eval=10, n_bn=10)


def test_pad_images():
    x = torch.ones(2, 1, 28, 28)
    y = realdata.pad_images(x)
    assert y.shape == (2, 1, 32, 32) and y[:, :, 2:30, 2:30].eq(1).all() and y.sum() == x.sum()
    with pytest.raises(ValueError):
        realdata.pad_images(torch.ones(2, 784))
    with pytest.raises(ValueError):
        realdata.pad_images(x, 31)


# --- BatchNorm: the renormalised merge is a no-op at the endpoints ------------------------------------------------

def bn_models(kind: str, seed: int):
    torch.manual_seed(seed)
    net = (models.ResNet20(0.25, num_classes=4) if kind == "resnet"
           else models.VGG11(0.125, num_classes=4, in_channels=1))
    with torch.no_grad():  # non-trivial affine parameters and running statistics (as after training)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net.eval()


@pytest.mark.parametrize("kind", ["resnet", "vgg"])
def test_renormalised_merge_is_a_no_op_at_the_endpoints(kind):
    channels = 3 if kind == "resnet" else 1
    g = torch.Generator().manual_seed(0)
    x_bn = torch.randn(64, channels, 32, 32, generator=g)
    x, y = torch.randn(32, channels, 32, 32, generator=g), torch.randint(0, 4, (32,), generator=g)
    a = renorm.reset_bn(bn_models(kind, 0), x_bn, batch_size=32)
    b = renorm.reset_bn(bn_models(kind, 1), x_bn, batch_size=32)
    curve = merge.merge(merge.Pair(a, b), [0.0, 0.5, 1.0], merge.Empirical(x, y),
                        repairs=[merge.ResetBatchNorm(x_bn, batch_size=32)])
    for lam, end in ((0.0, a), (1.0, b)):
        ref = barrier.evaluate(end, x, y)
        assert curve.at(lam) == pytest.approx(ref.loss, rel=1e-5, abs=1e-6)
        assert curve.at(lam, "accuracy") == ref.accuracy
    # the test can fail: endpoints whose statistics were not re-estimated on these inputs are changed by the reset
    raw = bn_models(kind, 0)
    curve = merge.merge(merge.Pair(raw, b), [0.0, 1.0], merge.Empirical(x, y),
                        repairs=[merge.ResetBatchNorm(x_bn, batch_size=32)])
    assert abs(curve.at(0.0) - barrier.evaluate(raw, x, y).loss) > 1e-4  # >> the tolerance above
