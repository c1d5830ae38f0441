"""Tests of lmcnb.realdata (chapter 7's five barrier views with chapter 6's barrier definitions, the LEWC
diagnostics and the MLP / CNN sweeps) and of the BatchNorm-renormalised merge used for the CNNs: with re-estimated
statistics, the merged network at λ = 0 and λ = 1 is exactly the endpoint."""
from __future__ import annotations

import pytest
import torch

from lmcnb import barrier, data, lewc, matching, merge, models, realdata, renorm, train
from lmcnb import permutation as perm

LAM = torch.linspace(0, 1, 5)  # contains 0.5 (the midpoint barrier)


def tiny_data():
    return data.gaussian_mixture(200, 100, 100, d=6, num_classes=3, separation=3.0, seed=0)


def trained_pair(ds, width=16):
    cfg = train.TrainConfig(epochs=3, batch_size=32, lr=0.05)
    inits = train.init_mlps((6, width, 3), 2, [0, 1])
    (a, b), _ = train.train_mlps(inits, ds.train.x, ds.train.y, cfg, seeds=[0, 1])
    return a, b


def views(a, b, ds, lambdas=LAM, **kwargs):
    kwargs = {"data_for_matching": ds.val.x, "calibration_split": (ds.val.x, ds.val.y), **kwargs}
    return realdata.barrier_views(merge.Pair(a, b), lambdas, merge.Empirical(ds.test.x, ds.test.y), **kwargs)


def test_views_of_a_permuted_copy():
    ds = tiny_data()
    a, _ = trained_pair(ds)
    planted = perm.random_perms(perm.spec_for(a).sizes(a.state_dict()), torch.Generator().manual_seed(1))
    pa = perm.permute_model(a, planted)
    v = views(a, pa, ds)
    assert tuple(v) == realdata.VIEWS == ("identity", "weight matching", "activation matching",
                                          "calibrated identity", "calibrated weight matching")
    assert all(tuple(b) == realdata.BARRIERS for b in v.values())
    for view in ("weight matching", "activation matching"):
        assert all(x == pytest.approx(0, abs=1e-6) for x in v[view].values()), view
    assert v["identity"]["loss sup"] > 1e-3, "a random permutation creates an identity barrier"
    assert v["identity"]["loss sup"] >= v["identity"]["loss midpoint"]
    assert v["calibrated identity"]["loss sup"] >= 0
    same = views(a, a, ds)
    assert all(x == pytest.approx(0, abs=1e-7) for b in same.values() for x in b.values())


def test_views_are_the_merge_pipeline_with_chapter_6s_barriers_and_take_repairs_and_a_seed():
    ds = tiny_data()
    a, b = trained_pair(ds)
    v = views(a, b, ds)
    ev = merge.Empirical(ds.test.x, ds.test.y)
    cal = merge.CalibrateTemperature((ds.val.x, ds.val.y))
    paths = {"identity": merge.merge(merge.Pair(a, b), LAM, ev, repairs=[cal]),
             "weight matching": merge.merge(merge.Pair(a, b), LAM, ev, align=matching.WeightMatching(seed=0),
                                            repairs=[cal]),
             "activation matching": merge.merge(merge.Pair(a, b), LAM, ev, align=matching.ActivationMatching(),
                                                data=ds.val.x)}
    for view, curve in paths.items():
        assert v[view] == {"loss midpoint": curve.barrier("midpoint"), "loss sup": curve.barrier("linear"),
                           "accuracy midpoint": curve.barrier("midpoint", "accuracy"),
                           "accuracy sup": curve.barrier("linear", "accuracy")}, view
    for view, base in (("calibrated identity", "identity"), ("calibrated weight matching", "weight matching")):
        c = paths[base]
        assert v[view]["loss midpoint"] == c.barrier("midpoint", "calibrated_loss")
        assert v[view]["loss sup"] == c.barrier("linear", "calibrated_loss")
        assert v[view]["accuracy sup"] == v[base]["accuracy sup"], "a temperature does not move the argmax"
    assert v["calibrated identity"]["loss sup"] != v["identity"]["loss sup"]
    # the evaluator decides the split: the training split gives other barriers
    on_train = realdata.barrier_views(merge.Pair(a, b), LAM, merge.Empirical(ds.train.x, ds.train.y),
                                      data_for_matching=ds.val.x, calibration_split=(ds.val.x, ds.val.y))
    assert on_train["identity"]["loss sup"] != v["identity"]["loss sup"]
    # the calibration split reaches the calibrated views only
    other = views(a, b, ds, calibration_split=(ds.train.x, ds.train.y))
    assert other["identity"] == v["identity"] and other["calibrated identity"] != v["calibrated identity"]
    # matching data reach activation matching only
    moved = realdata.barrier_views(merge.Pair(a, b), LAM, ev, data_for_matching=ds.train.x[:50],
                                   calibration_split=(ds.val.x, ds.val.y))
    assert moved["identity"] == v["identity"] and moved["activation matching"] != v["activation matching"]
    # repairs reach every path (a BatchNorm reset on an MLP is refused), the seed reaches weight matching
    with pytest.raises(ValueError, match="BatchNorm"):
        views(a, b, ds, repairs=[merge.ResetBatchNorm(ds.train.x)])
    seeded = merge.merge(merge.Pair(a, b), LAM, ev, align=matching.WeightMatching(seed=5))
    assert views(a, b, ds, seed=5)["weight matching"]["loss sup"] == seeded.barrier()
    # the grid: without 0.5 there is no midpoint barrier; a finer grid changes the sup barrier only
    with pytest.raises(ValueError, match="0.5"):
        views(a, b, ds, lambdas=torch.tensor([0.0, 0.3, 1.0]))
    fine = views(a, b, ds, lambdas=torch.linspace(0, 1, 21))
    assert fine["identity"]["loss midpoint"] == pytest.approx(v["identity"]["loss midpoint"], rel=1e-5)
    assert fine["identity"]["loss sup"] >= v["identity"]["loss sup"] - 1e-6


def test_lewc_diagnostics_on_an_exact_lewc_pair_and_on_a_copy():
    free = train.init_mlps((6, 8, 8, 3), 2, [0, 1], bias=False, init="kaiming_normal", dtype=torch.float64)
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = realdata.lewc_diagnostics(merge.Pair(*lewc.disjoint_pair(*free)), x)
    assert tuple(exact) == realdata.LEWC_DIAGNOSTICS
    assert exact["logit_scale"] == pytest.approx(2.0 ** (1 - 3), rel=1e-9), "LEWC: logits shrink by 2^(1-L)"
    assert exact["lewc_cos_out"] == pytest.approx(1, abs=1e-9) and exact["weak_additivity"] == pytest.approx(1)
    assert exact["ro_ratio"] == 0 and exact["commutativity"] == pytest.approx(1, abs=1e-12)
    same = realdata.lewc_diagnostics(merge.Pair(free[0], free[0]), x)  # the control: a copy is LLFC with c = 1
    assert same["logit_scale"] == pytest.approx(1) and same["ro_ratio"] == pytest.approx(1)
    assert same["commutativity"] == pytest.approx(0, abs=1e-12)
    other_x = realdata.lewc_diagnostics(merge.Pair(*free), x[:32])
    assert other_x != realdata.lewc_diagnostics(merge.Pair(*free), x), "the inputs matter"
    with pytest.raises(TypeError, match="merge.Pair"):
        realdata.lewc_diagnostics(free, x)
    vgg = models.VGG11(0.125, num_classes=3, in_channels=1)
    with pytest.raises(TypeError, match="MLP"):
        realdata.lewc_diagnostics(merge.Pair(vgg, vgg), torch.randn(2, 1, 32, 32))


def _mlp_spec(**kwargs):
    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=0.05)
    base = dict(depths=[1, 2], widths=[4, 8], weight_decays=[0.0, 1e-3], config=cfg,
                lambdas=torch.linspace(0, 1, 3), n_eval=100)
    return realdata.MLPSweep(**{**base, **kwargs})


def _rows_of(rows, view):
    return [r for r in rows if r["view"] == view]


@pytest.mark.filterwarnings("ignore:temperature hit the bound")  # 1-epoch toy networks: T at its bound is fine
def test_mlp_width_sweep_rows_and_cache(tmp_path):
    ds = tiny_data()
    spec = _mlp_spec()
    rows = realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path))
    assert len(rows) == 2 * 2 * 2 * len(realdata.VIEWS)
    ident = _rows_of(rows, "identity")
    assert [(r["depth"], r["width"], r["weight_decay"]) for r in ident][:4] == [
        (1, 4, 0.0), (1, 4, 1e-3), (1, 8, 0.0), (1, 8, 1e-3)]
    assert [r["view"] for r in rows[:5]] == list(realdata.VIEWS)
    assert all(set(realdata.BARRIERS) | set(realdata.LEWC_DIAGNOSTICS) <= set(r) for r in rows)
    assert all(r["loss sup"] >= r["loss midpoint"] - 1e-6 and r["seeds"] == (2 * r["pair"], 2 * r["pair"] + 1)
               for r in rows)
    # a calibrated view shares its base path's diagnostics; identity's are lewc_diagnostics of the trained pair
    for r0, r3 in zip(ident, _rows_of(rows, "calibrated identity")):
        assert {k: r0[k] for k in realdata.LEWC_DIAGNOSTICS} == {k: r3[k] for k in realdata.LEWC_DIAGNOSTICS}
    assert len(list(tmp_path.glob("*.pt"))) == 2, "one cache file per depth"
    assert realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path)) == rows, "cached rows come back"
    assert realdata.width_sweep(ds, spec) == rows, "no cache: the same rows, recomputed"
    assert realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(None)) == rows, "a spec without a directory"
    assert len(list(tmp_path.glob("*.pt"))) == 2
    realdata.width_sweep(ds, _mlp_spec(depths=[1]), cache=realdata.CacheSpec(tmp_path, namespace="other"))
    assert len(list(tmp_path.glob("*.pt"))) == 3, "the namespace is part of the key"
    two = _rows_of(realdata.width_sweep(ds, _mlp_spec(depths=[1], widths=[4], weight_decays=[0.0], n_pairs=2)),
                   "identity")
    assert [r["pair"] for r in two] == [0, 1] and two[1]["seeds"] == (2, 3)
    # first_seed moves the pairs to other seeds (calibration on seeds that are not shown)
    moved = _rows_of(realdata.width_sweep(ds, _mlp_spec(depths=[1], widths=[4], weight_decays=[0.0],
                                                         first_seed=2)), "identity")
    assert moved[0]["pair"] == 0 and moved[0]["seeds"] == (2, 3)
    assert moved[0]["loss sup"] == two[1]["loss sup"], "pair 0 from seed 2 is pair 1 from seed 0"
    # n_eval: the barriers are measured on the first n_eval test inputs
    fewer = _rows_of(realdata.width_sweep(ds, _mlp_spec(depths=[1], widths=[4], weight_decays=[0.0], n_eval=30)),
                     "identity")
    assert fewer[0]["loss sup"] != two[0]["loss sup"]


def test_sweep_specs_and_cache_spec_are_validated():
    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=0.05)
    for kwargs, error, match in [(dict(widths=[]), ValueError, "widths"), (dict(depths=[0]), ValueError, "depths"),
                                 (dict(depths=[1.5]), TypeError, "depths"),
                                 (dict(weight_decays=[-1.0]), ValueError, "weight_decays"),
                                 (dict(config="fast"), TypeError, "TrainConfig"),
                                 (dict(lambdas=[0.0, 0.5]), ValueError, "endpoints"),
                                 (dict(lambdas=[0.0, 0.4, 1.0]), ValueError, "0.5"),
                                 (dict(n_pairs=0), ValueError, "n_pairs"), (dict(n_eval=0), ValueError, "n_eval"),
                                 (dict(first_seed=-1), ValueError, "first_seed")]:
        with pytest.raises(error, match=match):
            _mlp_spec(**kwargs)
    spec = _mlp_spec(depths=(2,), lambdas=torch.linspace(0, 1, 3))
    assert spec.depths == (2,) and spec.lambdas == (0.0, 0.5, 1.0) and hash(spec) == hash(_mlp_spec(depths=[2]))
    cnn = dict(arch="vgg11", multipliers=[0.5], config=cfg, lambdas=[0.0, 0.5, 1.0], n_eval=10, n_bn=10)
    assert realdata.CNNSweep(**cnn).multipliers == (0.5,)
    for kwargs, error, match in [(dict(arch="vgg16"), ValueError, "arch"), (dict(multipliers=[]), ValueError, "multi"),
                                 (dict(multipliers=[0.0]), ValueError, "multipliers"),
                                 (dict(config=None), TypeError, "TrainConfig"),
                                 (dict(lambdas=[0.5, 1.0]), ValueError, "endpoints"),
                                 (dict(n_eval=0), ValueError, "n_eval"), (dict(n_bn=0), ValueError, "n_bn"),
                                 (dict(n_pairs=0), ValueError, "n_pairs"),
                                 (dict(lambdas=[0.0, 1.0]), ValueError, "0.5"),
                                 (dict(first_seed=-2), ValueError, "first_seed"),
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


@pytest.mark.filterwarnings("ignore:temperature hit the bound")
def test_cnn_width_sweep_rows_seeds_and_batches(tmp_path):
    g = torch.Generator().manual_seed(0)
    train_, val, test = (data.Split(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 3)
                         for n in (48, 24, 24))
    img = data.Dataset(train_, val, test, num_classes=3, input_shape=(1, 28, 28), name="tiny-images")
    cfg = train.TrainConfig(epochs=1, batch_size=16, lr=0.05)
    spec = dict(arch="vgg11", multipliers=[0.0625], config=cfg, lambdas=[0.0, 0.5, 1.0], n_eval=16, n_bn=32,
                batch_size=8)
    rows = realdata.width_sweep(img, realdata.CNNSweep(**spec), cache=realdata.CacheSpec(tmp_path))
    assert [r["view"] for r in rows] == list(realdata.VIEWS)
    assert all(r["arch"] == "vgg11" and r["seeds"] == (0, 1) and set(realdata.BARRIERS) <= set(r) for r in rows)
    assert not set(realdata.LEWC_DIAGNOSTICS) & set(rows[0]), "no LEWC diagnostics for CNNs"
    def barriers(rs):
        return [r[b] for r in rs for b in realdata.BARRIERS]

    moved = realdata.width_sweep(img, realdata.CNNSweep(**spec, first_seed=3))
    assert moved[0]["seeds"] == (3, 4) and barriers(moved) != barriers(rows)
    # the BatchNorm reset runs in batches of batch_size (its statistics average per-batch variances, so another
    # batch size gives other barriers); n_eval and n_bn choose how many test / training images are used
    for field, value in (("batch_size", 32), ("n_eval", 8), ("n_bn", 8)):
        assert barriers(realdata.width_sweep(img, realdata.CNNSweep(**{**spec, field: value}))) != barriers(rows), \
            field


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


def test_width_sweep_runs_on_an_executor_with_the_same_rows(tmp_path):
    """``executor=``: the sweep's entries run as tasks of a ``concurrent.futures`` executor (here a spawn process
    pool, as ``make paper ENGINE=processes:2`` gives), with the same rows as the serial run, and they fill the
    shared cache (a serial rerun is all hits)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    ds = tiny_data()
    spec = _mlp_spec(depths=[1, 2], widths=[4], weight_decays=[0.0])
    serial = realdata.width_sweep(ds, spec)
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        rows = realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path), executor=pool)
    assert rows == serial
    assert len(list(tmp_path.glob("*.pt"))) == 2, "each task wrote its own cache entry"
    calls = []

    class Refusing:
        def submit(self, *a, **k):
            calls.append(a)
            raise AssertionError("a cache hit must not be submitted")

    assert realdata.width_sweep(ds, spec, cache=realdata.CacheSpec(tmp_path), executor=Refusing()) == rows
    assert not calls


def test_barrier_views_old_form_and_old_view_names_name_the_new_ones():
    ds = tiny_data()
    a, b = trained_pair(ds)
    with pytest.raises(TypeError, match=r"barrier_views takes a merge.Pair.*barrier_views\(merge.Pair\(model_a"):
        realdata.barrier_views(a, b, ds.test.x, ds.test.y, LAM)
    got = views(a, b, ds)
    with pytest.raises(KeyError, match="'no permutation' was renamed 'identity'"):
        got["no permutation"]
    with pytest.raises(KeyError, match="'calibrated no permutation' was renamed 'calibrated identity'"):
        got["calibrated no permutation"]
    assert set(got) == set(realdata.VIEWS)



# --- chapter 7's paper profile: chapter 6's CIFAR-10 recipe under the five views ----------------------------------

def _toy_cifar():
    g = torch.Generator().manual_seed(0)
    train_, val, test = (data.Split(torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10)
                         for n in (48, 20, 20))
    return data.Dataset(train_, val, test, num_classes=10, input_shape=(3, 32, 32), name="toy-cifar")


def _toy_conv(**changes):
    """The paper cell's recipe (cnn_merges.CONV_PAPER) at toy size: only the sizes change."""
    from dataclasses import replace

    from lmcnb.experiments import cnn_merges

    return replace(cnn_merges.CONV_PAPER, **{"multipliers": (("VGG-11", 1 / 16), ("ResNet-20", 0.25)), "epochs": 1,
                                             "batch": 16, "bn_images": 32, **changes})


def test_conv_sweeps_carry_chapter_6s_recipe_paper_and_full():
    from lmcnb.experiments import cnn_merges

    vgg, res = realdata.conv_sweeps(cnn_merges.CONV_PAPER, weight_decay=3e-3, lambdas=LAM, n_eval=5000, n_pairs=2)
    assert (vgg.arch, vgg.multipliers, res.arch, res.multipliers) == ("vgg11", (0.5, 1.0, 2.0), "resnet20",
                                                                      (0.5, 1.0, 2.0))
    for s in (vgg, res):
        assert s.config == cnn_merges.CONV_PAPER.config(3e-3) and s.config.schedule == "warmup_cosine"
        assert (s.augment, s.n_bn, s.batch_size, s.n_pairs, s.n_eval, s.first_seed) == (True, 10_000, 128, 2,
                                                                                         5000, 0)
    full = realdata.conv_sweeps(cnn_merges.CONV_FULL, weight_decay=3e-3, lambdas=LAM, n_eval=5000, n_pairs=2)
    assert [(s.arch, s.multipliers, s.config.epochs) for s in full] == [("vgg11", (16.0,), 200),
                                                                       ("resnet20", (32.0,), 200)]
    other = realdata.conv_sweeps(_toy_conv(seeds=(4, 5), augment=False), weight_decay=1e-4, lambdas=LAM, n_eval=8,
                                 n_pairs=1)
    assert other[0].first_seed == 4 and not other[0].augment and other[0].config.weight_decay == 1e-4
    with pytest.raises(ValueError, match="consecutive"):
        realdata.conv_sweeps(_toy_conv(seeds=(0, 2)), weight_decay=3e-3, lambdas=LAM, n_eval=8, n_pairs=1)
    with pytest.raises(TypeError, match="ConvSweep"):
        realdata.conv_sweeps(vgg, weight_decay=3e-3, lambdas=LAM, n_eval=8, n_pairs=1)
    with pytest.raises(TypeError, match="augment must be a bool"):
        realdata.CNNSweep("vgg11", [1.0], vgg.config, LAM, n_eval=8, n_bn=8, augment=1)


@pytest.mark.filterwarnings("ignore:temperature hit the bound")
def test_paper_cell_at_toy_size_augments_resets_batchnorm_in_batches_and_resumes(tmp_path):
    """The paper profile's CIFAR-10 cell at toy size: the functions it calls with its arguments (chapter 6's
    recipe CONV_PAPER, weight decay 3e-3, two pairs, the cache, an executor); only the sizes are smaller."""
    import concurrent.futures as cf

    from lmcnb.experiments import cnn_merges

    ds, conv, lam = _toy_cifar(), _toy_conv(), [0.0, 0.5, 1.0]
    kw = dict(weight_decay=3e-3, lambdas=lam, n_eval=16, n_pairs=2)
    # two worker threads: seeded construction holds cnn_merges.GLOBAL_RNG_LOCK (torch's global RNG is shared by
    # threads), so the rows are those of a serial run (checked below against serial runs of the VGG pairs)
    with cf.ThreadPoolExecutor(2) as pool:
        rows = realdata.conv_width_sweep(ds, conv, **kw, cache=realdata.CacheSpec(tmp_path), executor=pool)
    assert [(r["arch"], r["pair"], r["seeds"]) for r in rows[::5]] == [
        ("vgg11", 0, (0, 1)), ("vgg11", 1, (2, 3)), ("resnet20", 0, (0, 1)), ("resnet20", 1, (2, 3))]
    assert [r["view"] for r in rows[:5]] == list(realdata.VIEWS)
    assert len(list(tmp_path.glob("*.pt"))) == 4, "one cache entry per (multiplier, pair)"

    class Refusing:
        def submit(self, *a, **k):
            raise AssertionError("a cache hit must not be submitted")

    assert realdata.conv_width_sweep(ds, conv, **kw, cache=realdata.CacheSpec(tmp_path), executor=Refusing()) == rows

    def barriers(rs):
        return [r[b] for r in rs for b in realdata.BARRIERS]

    # the executor changes where, not what; every argument is used: augmentation, the BatchNorm images, the
    # weight decay (the BatchNorm reset's batch: test_cnn_width_sweep_rows_seeds_and_batches); one VGG pair each
    one = dict(kw, n_pairs=1)
    vgg = (("VGG-11", 1 / 16),)
    serial = realdata.conv_width_sweep(ds, _toy_conv(multipliers=vgg), **one)
    assert barriers(serial) == barriers(rows[:5])
    for changed, kwargs in ((_toy_conv(multipliers=vgg, augment=False), one),
                            (_toy_conv(multipliers=vgg, bn_images=16), one),
                            (_toy_conv(multipliers=vgg), {**one, "weight_decay": 0.5})):
        assert barriers(realdata.conv_width_sweep(ds, changed, **kwargs)) != barriers(serial)
    table = realdata.table1_views(rows)
    import pandas as pd
    assert table.equals(realdata.table1_views(pd.DataFrame(rows)))
    assert len(table) == 2 * len(realdata.VIEWS)
    vgg_wm = table.loc[("vgg11", 1 / 16, "calibrated weight matching")]
    assert (vgg_wm["Table 1 acc"], vgg_wm["Table 1 loss"]) == cnn_merges.TABLE1["VGG-11 x16", "weight matching"]
    res_id = table.loc[("resnet20", 0.25, "identity")]
    assert (res_id["Table 1 acc"], res_id["Table 1 loss"]) == cnn_merges.TABLE1["ResNet-20 x32", "identity"]
    assert table.loc[("vgg11", 1 / 16, "activation matching"), ["Table 1 acc"]].isna().all()
    pairs = [r["accuracy midpoint"] for r in rows if r["arch"] == "vgg11" and r["view"] == "identity"]
    assert table.loc[("vgg11", 1 / 16, "identity"), "accuracy midpoint"] == pytest.approx(sum(pairs) / 2)
    with pytest.raises(ValueError, match="at least one row"):
        realdata.table1_views([])
    with pytest.raises(ValueError, match="at least one row"):
        realdata.table1_views(pd.DataFrame())


def test_sweep_flops_and_steps_size_the_paper_profile():
    from lmcnb.experiments import cnn_merges

    cfg = train.TrainConfig(epochs=3, batch_size=100, lr=0.1)
    s = realdata.CNNSweep("resnet20", [1.0], cfg, LAM, n_eval=500, n_bn=200, n_pairs=2)
    fwd = cnn_merges.forward_flops(lambda: models.ResNet20(1.0), (3, 32, 32))
    per_pair = 2 * 3 * 3 * 1000 + 3 * 5 * (200 + 300 + 500) + 2 * 300 + 2 * (1000 + 500)
    assert s.flops(1000, 300) == pytest.approx(2 * per_pair * fwd)
    assert s.steps(1000) == 2 * 2 * 3 * 10  # two pairs of networks, 3 epochs of 10 steps
    base = s.flops(1000, 300)
    from dataclasses import replace
    for changed in (replace(s, multipliers=[2.0]), replace(s, n_pairs=1), replace(s, n_eval=100),
                    replace(s, n_bn=1000), replace(s, lambdas=torch.linspace(0, 1, 11)),
                    replace(s, config=replace(cfg, epochs=6)), replace(s, arch="vgg11")):
        assert changed.flops(1000, 300) != base
    assert s.flops(2000, 300) > base and s.flops(1000, 600) > base
    assert s.flops(1000, 300, image=(3, 16, 16)) < base and s.flops(1000, 300, classes=100) > base
    m = realdata.MLPSweep([2], [8, 16], [0.0], cfg, LAM, n_pairs=1, n_eval=50)
    fw = lambda w: 2 * (20 * w + w * w + w * 3)
    train_part = 2 * 2 * 3 * fw(16) * 1000 * 3  # both widths trained at the padded width 16
    measure = sum((3 * 5 * (40 + 50) + 2 * 40 + 12 * 50 + 2 * (1000 + 50)) * fw(w) for w in (8, 16))
    assert m.flops(1000, 40, in_features=20, classes=3) == pytest.approx(train_part + measure)
    # the paper profile's CIFAR-10 cell: about a quarter GPU-hour by FLOPs alone (15 TFLOP/s); Table 1's size is days
    hours = lambda conv: cnn_merges.gpu_hours(sum(
        sp.flops(45_000, 5000) for sp in realdata.conv_sweeps(conv, weight_decay=3e-3, lambdas=torch.linspace(0, 1, 11),
                                                            n_eval=5000, n_pairs=2)))
    assert hours(cnn_merges.CONV_PAPER) < 0.3 and hours(cnn_merges.CONV_FULL) > 48
