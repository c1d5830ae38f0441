"""Tests of lmcnb.realdata (chapter 7's four barrier views and MLP sweep) and of the BatchNorm-renormalised merge
used for the CNNs: with re-estimated statistics, the merged network at λ = 0 and λ = 1 is exactly the endpoint."""
from __future__ import annotations

import pytest
import torch

from lmcnb import barrier, data, models, realdata, renorm, train
from lmcnb import permutation as perm


def tiny_data():
    return data.gaussian_mixture(200, 100, 100, d=6, num_classes=3, separation=3.0, seed=0)


def trained_pair(ds, width=16):
    cfg = train.TrainConfig(epochs=3, batch_size=32, lr=0.05)
    inits = train.init_mlps((6, width, 3), 2, [0, 1])
    (a, b), _ = train.train_mlps(inits, ds.train.x, ds.train.y, cfg, seeds=[0, 1])
    return a, b


def views(a, b, ds):
    return realdata.barrier_views(a, b, ds.train.x, ds.train.y, torch.linspace(0, 1, 5),
                                  data_for_matching=ds.val.x, calibration_split=(ds.val.x, ds.val.y))


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


@pytest.mark.filterwarnings("ignore:temperature hit the bound")  # 1-epoch toy networks: T at its bound is fine
def test_mlp_width_sweep_rows_and_cache(tmp_path):
    ds = tiny_data()
    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=0.05)
    kwargs = dict(depths=[1, 2], widths=[4, 8], weight_decays=[0.0, 1e-3], config=cfg,
                  lambdas=torch.linspace(0, 1, 3), n_eval=100, cache_dir=tmp_path)
    rows = realdata.mlp_width_sweep(ds, **kwargs)
    assert len(rows) == 2 * 2 * 2
    assert [(r["depth"], r["width"], r["weight_decay"]) for r in rows][:4] == [
        (1, 4, 0.0), (1, 4, 1e-3), (1, 8, 0.0), (1, 8, 1e-3)]
    assert all(set(realdata.VIEWS) <= set(r) and r["no permutation"] >= 0 for r in rows)
    assert len(list(tmp_path.glob("*.pt"))) == 2, "one cache file per depth"
    assert realdata.mlp_width_sweep(ds, **kwargs) == rows, "cached rows come back unchanged"
    with pytest.raises(ValueError, match="widths"):
        realdata.mlp_width_sweep(ds, **{**kwargs, "widths": []})


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
    curve = barrier.evaluate_path(a, a.state_dict(), b.state_dict(), [0.0, 0.5, 1.0], x, y, bn="reset",
                                  bn_inputs=x_bn, bn_batch_size=32)
    for lam, end in ((0, a), (-1, b)):
        ref = barrier.evaluate(end, x, y)
        assert curve.losses[lam].item() == pytest.approx(ref.loss, rel=1e-5, abs=1e-6)
        assert curve.accuracies[lam].item() == ref.accuracy
    # the test can fail: endpoints whose statistics were not re-estimated on these inputs are changed by the reset
    raw = bn_models(kind, 0)
    curve = barrier.evaluate_path(raw, raw.state_dict(), b.state_dict(), [0.0, 1.0], x, y, bn="reset",
                                  bn_inputs=x_bn, bn_batch_size=32)
    assert abs(curve.losses[0].item() - barrier.evaluate(raw, x, y).loss) > 1e-4  # >> the tolerance above
