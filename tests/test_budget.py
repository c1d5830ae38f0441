"""The budget model (``lmcnb.infra.budget``) and the chapters' workloads (``lmcnb.experiments.paper_budgets``):
the arithmetic of every formula on fixed numbers (the timing is replaced by a stated value), FLOP counts against
closed forms, and every argument of a workload changing its cost."""
from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lmcnb import train
from lmcnb.experiments import cnn_merges
from lmcnb.experiments import paper_budgets as pb
from lmcnb.infra import budget

ROOT = Path(__file__).resolve().parents[1]

META = torch.device("meta")
CPU = torch.device("cpu")
GPU = budget.GPU("test", sustained_tflops=10.0, launch_us=5.0)


def test_gpu_step_seconds_is_the_stated_formula():
    # scaled: 0.02 s x (1e12 / 1e10) x 2e10 FLOP/s / 1e13 FLOP/s = 0.004 s; floor 100 ops x 5 us = 0.0005 s
    est, low = budget.gpu_step_seconds(0.02, 1e10, 1e12, 2e10, 100, GPU)
    assert est == low == pytest.approx(0.1)  # scaled 0.004 s is below the FLOP bound 1e12 / 1e13 = 0.1 s
    est, low = budget.gpu_step_seconds(0.02, 1e10, 1e11, 2e12, 100, GPU)  # scaled 0.04 s above F/S = 0.01 s
    assert est == pytest.approx(0.04) and low == pytest.approx(0.01)
    est, low = budget.gpu_step_seconds(0.02, 1e10, 1e12, 2e12, 100, GPU)  # a CPU at 2 TFLOP/s: 0.4 s
    assert est == pytest.approx(0.4) and low == pytest.approx(0.1)
    est, low = budget.gpu_step_seconds(1e-4, 1e6, 1e6, 1e10, 1000, GPU)  # launch-bound: 1000 x 5 us
    assert est == pytest.approx(5e-3) and low == pytest.approx(5e-3)
    slower = budget.GPU("slow", sustained_tflops=5.0, launch_us=5.0)
    assert budget.gpu_step_seconds(0.02, 1e10, 1e12, 2e12, 100, slower)[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="cpu_step_s"):
        budget.gpu_step_seconds(0.0, 1e10, 1e12, 2e10, 1, GPU)
    with pytest.raises(ValueError, match="flops_paper"):
        budget.gpu_step_seconds(0.1, 1e10, -1.0, 2e10, 1, GPU)


def _fixed_time(monkeypatch, seconds: float) -> None:
    monkeypatch.setattr(budget, "time_step", lambda step, repeats=3, warmup=1: seconds)


def test_estimate_scales_the_measured_time_by_flops(monkeypatch):
    _fixed_time(monkeypatch, 0.01)
    make = pb.mlp_training(lambda h: (20, h, 3), models=2, batch=16)
    w = budget.Workload("mlp", make, paper_size=64, reduced_size=16, count=100)
    e = budget.estimate(w, GPU, cpu_flops=1e9)
    f16, f64 = budget.count_flops(make(16, CPU)), budget.count_flops(make(64, META))
    assert (e.flops_reduced, e.flops_paper) == (f16, f64) and f64 > f16 > 0
    assert e.cpu_s == pytest.approx(100 * 0.01 * f64 / f16)
    scaled = 0.01 * f64 / f16 * 1e9 / 1e13
    assert e.gpu_s == pytest.approx(100 * max(scaled, f64 / 1e13, e.ops * 5e-6))
    assert e.gpu_floor_s == pytest.approx(100 * max(f64 / 1e13, e.ops * 5e-6))
    t4 = budget.estimate_from(e, budget.GPU("slow", sustained_tflops=1e-6, launch_us=5.0))
    assert t4.gpu_s == pytest.approx(100 * 0.01 * f64 / f16 * 1e9 / 1e6) and t4.cpu_s == e.cpu_s
    assert budget.as_dict(e)["gpu"] == {"name": "test", "sustained_tflops": 10.0, "launch_us": 5.0}
    # a closed-form FLOP count replaces the meta-device count
    closed = budget.Workload("mlp", make, 64, 16, 100, flops=lambda s: 10.0 * s)
    assert budget.estimate(closed, GPU, cpu_flops=1e9).cpu_s == pytest.approx(100 * 0.01 * 4)


def test_cpu_side_work_scales_by_its_exponent(monkeypatch):
    _fixed_time(monkeypatch, 0.5)
    make = pb.mlp_matching(lambda h: (6, h, 3))
    e = budget.estimate(budget.Workload("wm", make, 64, 16, 3, on_gpu=False, exponent=2.0), GPU, cpu_flops=1e9)
    assert e.cpu_s == e.gpu_s == e.gpu_floor_s == pytest.approx(3 * 0.5 * 16.0) and not e.on_gpu
    e3 = budget.estimate(budget.Workload("wm", make, 64, 16, 3, on_gpu=False), GPU, cpu_flops=1e9)
    assert e3.gpu_s == pytest.approx(3 * 0.5 * 64.0)
    assert budget.estimate_from(e3, budget.COLAB_T4).gpu_s == e3.gpu_s
    minutes, floor = budget.total_minutes([e, e3])
    assert minutes == pytest.approx((24 + 96) / 60) and floor == pytest.approx(minutes)
    text = budget.table([e, e3])
    assert "wm (CPU)" in text and text.splitlines()[-1].startswith("total (test)")


def test_flop_counts_match_the_closed_forms():
    widths, bs, models = (784, 512, 512, 512, 10), 500, 2
    counted = budget.count_flops(pb.mlp_training(lambda h: (784, h, h, h, 10), models, bs)(512, META))
    # train.flops_per_step's 3 x forward, less the input gradient of the first layer (the data needs none)
    stacked = train.StackedMLP([widths] * models)
    assert counted == train.flops_per_step(stacked, bs) - models * 2 * bs * 784 * 512 * 2 // 2
    forward = budget.count_flops(pb.mlp_forward(lambda h: (784, h, 10), 1000)(64, META))
    assert forward == 2 * 1000 * (784 * 64 + 64 * 10)
    vgg = budget.count_flops(pb.conv_forward("VGG-11", 4, train_mode=False)(1.0, META))
    assert vgg == pytest.approx(4 * cnn_merges.forward_flops(lambda: pb._conv_model("VGG-11", 1.0), (3, 32, 32)),
                                rel=1e-3)
    step = budget.count_flops(pb.conv_training("ResNet-20", 4)(1.0, META))
    fwd = cnn_merges.forward_flops(lambda: pb._conv_model("ResNet-20", 1.0), (3, 32, 32))
    assert 2.5 * 4 * fwd < step < 3.05 * 4 * fwd  # forward + weight and input gradients (none for the images)


def test_quadratic_flops_interpolates_the_gd_step_exactly():
    make = pb.ts_gd(8, 4, models=3, steps_per_call=2)
    flops = pb.quadratic_flops(make)
    for m in (8, 16, 32, 48):
        assert flops(m) == pytest.approx(budget.count_flops(make(m, CPU)), rel=1e-9)
    with pytest.raises(ValueError, match="three different"):
        pb.quadratic_flops(make, sizes=(8, 8, 16))


def test_every_workload_argument_changes_the_cost():
    def f(make, size=16, device=META):
        return budget.count_flops(make(size, device))

    base = f(pb.mlp_training(lambda h: (10, h, 3), 2, 8))
    assert f(pb.mlp_training(lambda h: (10, h, 3), 3, 8)) > base          # models
    assert f(pb.mlp_training(lambda h: (10, h, 3), 2, 9)) > base          # batch
    assert f(pb.mlp_training(lambda h: (10, h, 3), 2, 8), size=17) > base  # size
    plain = pb.mlp_training(lambda h: (10, h, 3), 2, 8)(16, CPU)
    ops = budget.count_ops(plain)
    assert budget.count_ops(pb.mlp_training(lambda h: (10, h, 3), 2, 8, momentum=0.0)(16, CPU)) != ops
    assert budget.count_ops(pb.mlp_training(lambda h: (10, h, 3), 2, 8, weight_decay=0.1)(16, CPU)) != ops
    assert budget.count_ops(pb.mlp_training(lambda h: (10, h, 3), 2, 8, bias=False)(16, CPU)) != ops
    assert budget.count_ops(pb.mlp_training(lambda h: (10, h, 3), 2, 8, loss="mse")(16, CPU)) != ops
    assert f(pb.conv_training("VGG-11", 2), 0.25) != f(pb.conv_training("ResNet-20", 2), 0.25)
    assert f(pb.conv_training("VGG-11", 3), 0.25) > f(pb.conv_training("VGG-11", 2), 0.25)
    ev, bn = pb.conv_forward("ResNet-20", 2, train_mode=False), pb.conv_forward("ResNet-20", 2, train_mode=True)
    assert budget.count_ops(ev(0.25, CPU)) != budget.count_ops(bn(0.25, CPU))
    gd = pb.ts_gd(8, 4, 2, 2)
    assert budget.count_flops(pb.ts_gd(8, 4, 3, 2)(8, CPU)) > budget.count_flops(gd(8, CPU))
    assert budget.count_flops(pb.ts_gd(9, 4, 2, 2)(8, CPU)) > budget.count_flops(gd(8, CPU))
    assert budget.count_flops(pb.ts_gd(8, 5, 2, 2)(8, CPU)) > budget.count_flops(gd(8, CPU))
    assert budget.count_flops(pb.ts_gd(8, 4, 2, 3)(8, CPU)) > budget.count_flops(gd(8, CPU))
    assert budget.count_ops(pb.ts_gd(8, 4, 2, 2, train_output=True)(8, CPU)) > budget.count_ops(gd(8, CPU))
    wm = pb.mlp_matching(lambda h: (6, h, 3))(8, CPU)().perms
    assert all(len(p) == 8 for p in wm.values())
    act = pb.mlp_matching(lambda h: (6, h, 3), "activation", 50)(8, CPU)().perms
    assert set(act) == set(wm)
    with pytest.raises(ValueError, match="unknown matcher"):
        pb.mlp_matching(lambda h: (6, h, 3), "nope")
    with pytest.raises(ValueError, match="unknown architecture"):
        pb.conv_training("LeNet", 2)(1.0, META)
    paths = pb.ts_barrier_paths(8, 4)
    assert budget.count_flops(paths(6, CPU)) > budget.count_flops(paths(5, CPU))                # size
    assert budget.count_flops(pb.ts_barrier_paths(9, 4)(6, CPU)) > budget.count_flops(paths(6, CPU))  # d
    assert budget.count_flops(pb.ts_barrier_paths(8, 5)(6, CPU)) > budget.count_flops(paths(6, CPU))  # M
    flops = pb.quadratic_flops(paths)
    assert flops(48) == pytest.approx(budget.count_flops(paths(48, CPU)), rel=1e-9)  # quadratic in m
    wp, fp = pb.ts_match_assignments(8, 4)(6, CPU)()
    assert sorted(wp.tolist()) == sorted(fp.tolist()) == list(range(6))
    # the pair is two sampled minima (m >= M): every row a nonnegative multiple of a teacher direction, R = 0,
    # and the functional matching it times is optimal (no worse than the weight matching's pairing)
    from lmcnb.papers.teacher_student import pairs, population_loss
    cfg, W1, W2 = pb._ts_pair(8, 4, 6, CPU)
    assert float(population_loss(torch.stack([W1, W2]), cfg.teacher()).abs().max()) < 1e-12
    assert int((W1 != 0).sum(1).max()) == 1
    C = pairs.functional_cost(W1, W2)
    assert float(C[torch.arange(6), fp].sum()) <= float(C[torch.arange(6), wp].sum()) + 1e-15
    assert pb.ts_match_assignments(8, 3)(6, CPU)()[0].shape == (6,)
    # the costs it solves are the ones ts_match_costs builds (functional, weight matching's squared distances),
    # on the device it is given; their FLOPs (the Gram products) are quadratic in m and grow with d
    Cf, Cw = pb.ts_match_costs(8, 4)(6, CPU)()
    assert torch.allclose(Cf, C) and torch.allclose(Cw, torch.cdist(W1, W2) ** 2)
    from lmcnb import assignment
    assert torch.equal(fp, assignment.solve(Cf)) and torch.equal(wp, assignment.solve(Cw))
    costs = pb.ts_match_costs(8, 4)
    assert pb.quadratic_flops(costs)(48) == pytest.approx(budget.count_flops(costs(48, CPU)), rel=1e-9)
    assert budget.count_flops(pb.ts_match_costs(9, 4)(16, CPU)) > budget.count_flops(costs(16, CPU))
    # augmentation: the crop-and-flip gather runs in the step (more operators, the same FLOPs)
    plain_conv = pb.conv_training("ResNet-20", 2)(0.25, CPU)
    augmented = pb.conv_training("ResNet-20", 2, augment=True)(0.25, CPU)
    assert budget.count_ops(augmented) > budget.count_ops(plain_conv)
    assert budget.count_flops(augmented) == budget.count_flops(plain_conv)
    cwm = pb.conv_matching("ResNet-20")(0.25, CPU)().perms
    cam = pb.conv_matching("ResNet-20", "activation", 4)(0.25, CPU)().perms
    assert set(cwm) == set(cam) and any(not torch.equal(cwm[k], cam[k]) for k in cwm)
    vgg = pb.conv_matching("VGG-11")(1 / 16, CPU)().perms
    assert set(vgg) != set(cwm) and max(len(p) for p in vgg.values()) == 32
    one = pb.conv_matching("VGG-11", in_channels=1)(1 / 16, CPU)().perms  # other first-layer weights
    assert set(one) == set(vgg) and any(not torch.equal(one[k], vgg[k]) for k in vgg)
    with pytest.raises(ValueError, match="unknown matcher"):
        pb.conv_matching("VGG-11", "ot")
    with pytest.raises(ValueError, match="unknown architecture"):
        pb.conv_matching("LeNet")


def test_iid_w2_is_one_exact_two_sample_distance_in_its_dimension():
    from lmcnb.experiments import ot_rates

    w = pb.iid_w2(3)(16, CPU)()
    ref = ot_rates.two_sample_wasserstein(ot_rates.gaussian_sampler(3), [16], 1, p=2, seed=0, cache_dir=None,
                                          executor=None)
    assert np.allclose(w, ref) and w.shape == (1, 1)
    assert not np.allclose(pb.iid_w2(8)(16, CPU)(), w)      # p
    assert not np.allclose(pb.iid_w2(3)(32, CPU)(), w)      # size


def test_the_chapters_list_their_paper_workloads():
    assert set(pb.CHAPTERS) == {"01_lmc_and_permutations", "02_double_descent", "03_width_rate",
                                "04_learning_rate_sparsity", "06_lewc", "07_real_data_deeper"}
    ch1 = pb.chapter01()
    assert sum(w.count for w in ch1 if w.name.startswith("train main pair")) == 50 * math.ceil(55_000 / 500)
    assert [w.paper_size for w in ch1 if w.name.startswith("width sweep: train")] == [32, 64, 128, 256, 1024,
                                                                                       2048]
    assert all(w.reduced_size <= w.paper_size for ch in pb.CHAPTERS.values() for w in ch())
    ch2 = pb.chapter02()
    assert not any("paper-only" in w.name or "d=32" in w.name for w in ch2)  # the large-model grid is `full`
    paths = [w for w in ch2 if w.name.startswith("barrier paths manifold")]
    assert [w.paper_size for w in paths][-1] == 4096 and all(w.on_gpu and w.count == 64 for w in paths)
    assigns = [w for w in ch2 if w.name.startswith("assignments")]
    costs = [w for w in ch2 if w.name.startswith("matching costs")]
    assert len(assigns) == len(costs) == 9 + 10 + 12 + 15  # core, tail, trained outputs, manifold widths
    assert all(not w.on_gpu and w.exponent is None for w in assigns) and all(w.on_gpu for w in costs)
    trained = [(w.paper_size, w.count) for w in ch2 if w.name.startswith("GD trained output")]
    assert trained == [(16, 2 * 80_000 // 10), (64, 2 * 80_000 // 10), (256, 2 * 300_000 // 10)]  # 2 inits
    assert [w.name.split(" (")[1] for w in ch2 if w.name.startswith("GD trained output")] == [
        "2 inits x 256 students)", "2 inits x 64 students)", "2 inits x 64 students)"]
    ch3 = pb.chapter03()  # the notebook's paper sizes
    gd3 = [w for w in ch3 if w.name.startswith("GD d=")]
    assert {w.name.split(" (")[0] for w in gd3} == {"GD d=4", "GD d=8", "GD d=32"}
    assert max(w.paper_size for w in gd3) == 2048 and {w.count for w in gd3} == {4000}
    assert max(w.paper_size for w in ch3 if "sampled minima" in w.name) == 4096
    iid = [w for w in ch3 if w.name.startswith("i.i.d.")]
    assert len(iid) == 5 * 6 and all(not w.on_gpu and w.count == 16 for w in iid)
    assert len([w for w in ch3 if w.name.startswith("SGD d=")]) == 5 * 6
    ch6 = pb.chapter06()  # the notebook's paper sizes: 1x-8x of the 512-unit MLP, 50 epochs, CONV_PAPER
    assert [w.paper_size for w in ch6 if w.name.startswith("MLP sweep: train")] == [512, 1024, 2048, 4096]
    assert {w.count for w in ch6 if w.name.startswith("MLP sweep: train")} == {50 * math.ceil(55_000 / 500)}
    wm6 = [(w.paper_size, w.reduced_size, w.exponent, w.count) for w in ch6 if not w.on_gpu and "MLP" in w.name
           or w.name.startswith("permutation cell") and not w.on_gpu]
    assert wm6 == [(4096, pb.WM_REDUCED, pb.WM_EXPONENT, 3)]
    assert len([w for w in ch6 if w.name.startswith("CIFAR-10") and ": train" in w.name]) == len(
        cnn_merges.CONV_PAPER.multipliers)
    ch7 = pb.chapter07()
    assert sum(w.count for w in ch7 if w.name.startswith("MLP sweep depth") and ": train" in w.name) == 3 * 3300
    assert {w.count for w in ch7 if w.name.startswith("CIFAR-10") and ": train" in w.name} == {2 * 10 * 352}
    assert all(w.reduced_size == w.paper_size for w in ch7 if not w.on_gpu)  # matchings timed at paper size
    assert sum(w.count for w in ch7 if w.name.startswith("MNIST") and ": train" in w.name) == 4 * 2 * 100 * 16


def test_bad_input_fails_clearly():
    make = pb.mlp_forward(lambda h: (4, h, 2), 8)
    with pytest.raises(ValueError, match="reduced_size"):
        budget.Workload("w", make, paper_size=8, reduced_size=16, count=1)
    with pytest.raises(ValueError, match="count"):
        budget.Workload("w", make, paper_size=8, reduced_size=4, count=-1)
    with pytest.raises(ValueError, match="paper_size"):
        budget.Workload("w", make, paper_size=0, reduced_size=4, count=1)
    with pytest.raises(TypeError, match="make"):
        budget.Workload("w", None, paper_size=8, reduced_size=4, count=1)
    with pytest.raises(ValueError, match="sustained_tflops"):
        budget.GPU("x", 0.0, 1.0)
    with pytest.raises(TypeError, match="Workload"):
        budget.estimate("w")
    with pytest.raises(ValueError, match="repeats"):
        budget.time_step(lambda: None, repeats=0)
    assert budget.time_step(lambda: None, repeats=2, warmup=0) >= 0.0
    assert budget.cpu_matmul_flops(n=64, repeats=2) > 0


def test_a_measured_exponent_is_the_local_growth_clamped_to_one_and_three(monkeypatch):
    monkeypatch.setattr(budget, "time_step", lambda step, repeats=3, warmup=1: step())
    for power, k in [(2.0, 2.0), (0.5, 1.0), (4.0, 3.0)]:
        w = budget.Workload("cpu", lambda size, device, p=power: (lambda: 1e-3 * size**p), 64, 16, 2,
                            on_gpu=False, exponent=None)
        e = budget.estimate(w, GPU, cpu_flops=1e9)
        assert e.exponent == pytest.approx(k)
        assert e.cpu_s == pytest.approx(2 * 1e-3 * 16**power * 4.0**k)
    same = budget.Workload("cpu", lambda size, device: (lambda: 0.25), 16, 16, 2, on_gpu=False, exponent=None)
    assert budget.estimate(same, GPU, cpu_flops=1e9).cpu_s == pytest.approx(0.5)  # no scaling, nothing to measure
    assert budget.local_exponent(1.0, 4.0) == pytest.approx(2.0)
    assert budget.local_exponent(1.0, 1.0) == 1.0 and budget.local_exponent(1.0, 100.0) == 3.0
    with pytest.raises(ValueError, match="timings"):
        budget.local_exponent(0.0, 1.0)


def test_the_split_matching_workload_names_its_new_home():
    with pytest.raises(AttributeError, match="ts_match_costs .* ts_match_assignments"):
        pb.ts_barrier_matchings  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pb.nope  # noqa: B018


def test_chapter02_trained_output_caps_are_the_notebooks():
    """The budget's step caps are the ones chapter 2's trained-output cell passes in the paper profile."""
    nb = json.loads((ROOT / "book" / "02_double_descent.ipynb").read_text())
    src = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and "P_tr = dict(" in
                  "".join(c["source"]))
    found = re.search(r"caps=choose\(quick=\{[^}]*\}, paper=(\{[^}]*\})", src)
    assert found and ast.literal_eval(found.group(1)) == pb.TRAINED_OUTPUT_CAPS
