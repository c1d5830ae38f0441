"""Tests of the finite-sample pieces of lmcnb.rates (chapter 3): the stable SGD step constant, the barriers of the
training loss, and the finite-sample sweep that measures both losses on the same SGD solutions."""
from __future__ import annotations

import pytest
import torch

from lmcnb import rates
from lmcnb import teacher_student as ts
from lmcnb.data import Split, teacher_student_data

F64 = torch.float64


def test_sgd_step_constant_is_c_over_one_plus_d_over_b():
    assert rates.sgd_step_constant(2.0, 32, 64) == pytest.approx(2.0 / 1.5)
    assert rates.sgd_step_constant(2.0, 8, 64) == pytest.approx(2.0 / 1.125)
    # every argument changes the result
    assert rates.sgd_step_constant(1.0, 32, 64) == pytest.approx(0.5 * rates.sgd_step_constant(2.0, 32, 64))
    assert rates.sgd_step_constant(2.0, 4, 64) > rates.sgd_step_constant(2.0, 32, 64)
    assert rates.sgd_step_constant(2.0, 32, 256) > rates.sgd_step_constant(2.0, 32, 64)
    for bad in (dict(c=0.0, d=4, batch_size=4), dict(c=1.0, d=0, batch_size=4), dict(c=1.0, d=4, batch_size=0)):
        with pytest.raises(ValueError):
            rates.sgd_step_constant(**bad)


def _data(d: int, n: int, seed: int = 0) -> Split:
    return teacher_student_data(ts.orthonormal_teacher(d, 2), n, torch.Generator().manual_seed(seed))


def _empirical(W: torch.Tensor, s: Split) -> torch.Tensor:
    return ((torch.relu(s.x @ W.mT).sum(-1) - s.y) ** 2).mean(-1)


def test_training_barriers_are_the_linear_barrier_of_the_training_loss():
    g = torch.Generator().manual_seed(1)
    T = ts.orthonormal_teacher(3, 2)
    Wm = torch.stack([T[0] * 0.5, T[0] * 0.5, T[1] * 0.3, T[1] * 0.7, torch.zeros(3, dtype=F64)])  # a minimum
    Wm = torch.stack([Wm, Wm.flip(0)])
    W1 = Wm + 0.05 * torch.randn(2, 5, 3, generator=g, dtype=F64)
    W2 = Wm.flip(1) + 0.05 * torch.randn(2, 5, 3, generator=g, dtype=F64)
    data, lam = _data(3, 200), torch.linspace(0, 1, 11, dtype=F64)
    perm = torch.stack([torch.randperm(5, generator=g) for _ in range(2)])
    out = rates.training_barriers(W1, W2, {"p": perm}, data, lam)
    assert torch.allclose(out["ends"], torch.stack([_empirical(W1, data), _empirical(W2, data)], 1))
    for name, B in (("identity", W2), ("p", torch.stack([W2[i][perm[i]] for i in range(2)]))):
        curve = torch.stack([_empirical((1 - t) * W1 + t * B, data) for t in lam], 1)  # (P, L)
        base = (1 - lam) * curve[:, :1] + lam * curve[:, -1:]
        assert torch.allclose(out[name], (curve - base).amax(1))
    assert float(out["identity"].min()) > 1e-3
    # a permuted copy of a minimum: the identity path has a barrier, the inverse permutation none
    perm = torch.stack([torch.tensor([2, 0, 4, 1, 3]), torch.tensor([4, 3, 2, 1, 0])])
    Wp = torch.stack([Wm[i][perm[i]] for i in range(2)])
    inv = perm.argsort(1)
    same = rates.training_barriers(Wm, Wp, {"inverse": inv}, data, lam)
    assert float(same["inverse"].abs().max()) < 1e-12 and float(same["identity"].min()) > 1e-3
    # the samples matter
    other = rates.training_barriers(W1, W2, {"p": perm}, _data(3, 200, seed=5), lam)
    assert not torch.allclose(other["identity"], out["identity"])
    with pytest.raises(TypeError, match="Split"):
        rates.training_barriers(W1, W2, {}, (data.x, data.y), lam)
    with pytest.raises(ValueError, match="from 0 to 1"):
        rates.training_barriers(W1, W2, {}, data, lam[1:])
    with pytest.raises(ValueError, match=r"perms\['p'\]"):
        rates.training_barriers(W1, W2, {"p": perm[:1]}, data, lam)
    with pytest.raises(ValueError, match="samples must have"):
        rates.training_barriers(W1, W2, {}, _data(4, 10), lam)


def test_finite_sample_sweep_measures_both_losses_on_the_same_solutions():
    cfg = ts.TeacherStudent(d=4, M=2)
    zero = rates.finite_sample_sweep(cfg, [4, 6], 1, ts.SGD(batch_size=8, epochs=0), n_samples=64)
    plain = rates.sgd_barrier_sweep(cfg, [4, 6], 1, ts.SGD(batch_size=8, epochs=0), n_samples=64)
    # no training: the same initialisations, so the population tables agree exactly
    assert zero.population.widths == plain.widths == (4, 6)
    assert torch.equal(zero.population.perm, plain.perm) and torch.equal(zero.population.loss_a, plain.loss_a)
    # the training table's ends are the training losses of the initialisations
    data = teacher_student_data(cfg.teacher(), 64, torch.Generator().manual_seed(0))
    W0 = cfg.init(4, 0)[0]
    assert float(zero.training.loss_a[0]) == pytest.approx(float(_empirical(W0, data)), rel=1e-10)
    # trained: SGD reaches small training loss, and the padded batch leaves the narrow students' extra rows at 0
    sch = ts.SGD(c=rates.sgd_step_constant(2.0, 4, 32), batch_size=32, epochs=80, tol=1e-10)
    fs = rates.finite_sample_sweep(cfg, [4, 8], 2, sch, n_samples=512)
    end = torch.maximum(fs.training.loss_a, fs.training.loss_b)
    assert float(end.max()) < 1e-6
    assert bool((fs.training.perm <= fs.training.identity + 1e-15).all())
    wide = torch.tensor([w == 8 for w in fs.training.widths])
    assert float(fs.training.perm[wide].max()) < 0.05 * float(fs.training.identity[wide].min())
    # many samples: the training barrier approaches the population barrier
    assert torch.allclose(fs.training.identity, fs.population.identity, rtol=0.3)
    # the data seed changes the training set
    other = rates.finite_sample_sweep(cfg, [4, 8], 2, sch, n_samples=512, data_seed=3)
    assert not torch.equal(other.training.perm, fs.training.perm)
    with pytest.raises(ValueError, match="output='fixed'"):
        rates.finite_sample_sweep(ts.TeacherStudent(d=4, M=2, output="trained"), [4], 1,
                                  ts.SGD(batch_size=8, epochs=1), n_samples=64)
