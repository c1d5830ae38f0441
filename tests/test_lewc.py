"""Tests of lmcnb.lewc: the Theorem 5.3 construction (exact LEWC in float64, each hypothesis needed), the layer
report against lmcnb.diagnostics, the exponential-ensemble identities, the RO/commutativity incompatibility bound,
the weight-decay factor against a simulated un-driven weight (momentum included), and the flatness control's norms."""
from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from lmcnb import diagnostics as D
from lmcnb import lewc, train
from lmcnb.models import MLP

from _helpers import gen, randn

SETTINGS = settings(max_examples=15)  # example budget (cost); the profile decides the rest
F64 = torch.float64
ARCH = (7, 12, 10, 9, 4)


def _pair(seed: int = 0, bias: bool = False, arch=ARCH) -> list[MLP]:
    init = "linear_default" if bias else "kaiming_normal"
    return train.init_mlps(arch, 2, [seed, seed + 1], bias=bias, init=init, dtype=F64)


def _x(n: int = 64, d: int = ARCH[0], seed: int = 5) -> torch.Tensor:
    return randn(n, d, seed=seed)


@SETTINGS
@given(seed=st.integers(0, 1000), lam=st.floats(0, 1))
def test_disjoint_pair_keeps_functions_and_satisfies_lewc_exactly(seed, lam):
    nets = _pair(seed)
    a, b = lewc.disjoint_pair(*nets)
    x = _x()
    assert a.widths == (7, 24, 20, 18, 4)
    torch.testing.assert_close(a(x), nets[0](x), rtol=0, atol=1e-12)
    torch.testing.assert_close(b(x), nets[1](x), rtol=0, atol=1e-12)
    assert max(lewc.lewc_error(a, b, x, lam)) < 1e-12
    m = lewc.merge(a, b, lam)
    s, w = lewc.ensemble_weights(lam, a.depth)
    with torch.no_grad():  # the output is the exponentially weighted ensemble s·[w f_a + (1 − w) f_b]
        torch.testing.assert_close(m(x), s * (w * a(x) + (1 - w) * b(x)), rtol=1e-12, atol=1e-12)


def test_disjoint_pair_of_different_widths_and_the_sufficient_conditions():
    nets = [_pair(0)[0], _pair(3, arch=(7, 5, 6, 3, 4))[1]]
    a, b = lewc.disjoint_pair(*nets)
    assert a.widths == b.widths == (7, 17, 16, 12, 4)
    for row in lewc.connectivity_report(a, b, _x(), lam=0.3):
        assert row.lewc_error < 1e-12 and row.lewc_cosine == pytest.approx(1.0, abs=1e-12)
        if row.weak_additivity is not None:
            assert row.weak_additivity == pytest.approx(1.0, abs=1e-12)
        if row.layer >= 2:
            assert row.reciprocal_orthogonality == 0.0
            assert row.commutativity == pytest.approx(1.0, abs=1e-12)  # notes V4
        if row.layer >= 2:  # LLFC's mixing ratio (0.7, 0.3) is wrong away from λ = ½
            assert row.llfc_cosine < 1 - 1e-6


@pytest.mark.parametrize("knob", ["bias", "overlap", "sign_conflicts"])
def test_each_hypothesis_is_needed(knob):
    """Notes V3: breaking one hypothesis makes the LEWC error order one (and the mechanism says where)."""
    x = _x(200)
    if knob == "bias":
        a, b = lewc.disjoint_pair(*_pair(1, bias=True))
    else:
        a, b = lewc.disjoint_pair(*_pair(1), **{knob: 4})
    err = lewc.lewc_error(a, b, x, 0.5)
    if knob == "bias":  # layer 1 is still exact (linear in θ), layers ≥ 2 are not
        assert err[0] < 1e-12 and min(err[1:]) > 1e-2
    elif knob == "overlap":  # RO fails from layer 2 on
        assert max(err[1:]) > 1e-1
        rep = lewc.connectivity_report(a, b, x)
        assert min(r.reciprocal_orthogonality for r in rep[1:]) > 1e-2
    else:  # opposite signs in layer 1: weak additivity fails there
        assert err[0] > 1e-2
        assert lewc.connectivity_report(a, b, x)[0].weak_additivity < 0.999
    # the unbroken construction on the same nets is exact
    assert max(lewc.lewc_error(*lewc.disjoint_pair(*_pair(1)), x, 0.5)) < 1e-12


def test_sign_conflicts_leave_model_b_unchanged():
    nets = _pair(2)
    _, b = lewc.disjoint_pair(*nets, sign_conflicts=5)
    torch.testing.assert_close(b(_x()), nets[1](_x()), rtol=0, atol=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), out=st.integers(1, 8), inp=st.integers(1, 8), n=st.integers(1, 20))
def test_reciprocal_orthogonality_and_commutativity_cannot_both_be_small(seed, out, inp, n):
    """Derived: if z̃^a ⊙ z̃^b ≥ 0 entrywise (exact weak additivity), commutativity residual + √2·max RO ratio ≥ 1."""
    g = gen(seed)
    W_a, W_b = torch.randn(out, inp, generator=g, dtype=F64), torch.randn(out, inp, generator=g, dtype=F64)
    Z_a, Z_b = torch.rand(n, inp, generator=g, dtype=F64), torch.rand(n, inp, generator=g, dtype=F64)
    # force sign agreement of the pre-activations Z W^T by flipping the rows (units) where they disagree
    pa, pb = Z_a @ W_a.T, Z_b @ W_b.T
    if bool(((pa * pb) < 0).any()):
        W_b = torch.where(((pa * pb) < 0).any(0)[:, None], torch.zeros_like(W_b), W_b)
        pb = Z_b @ W_b.T
    if float(torch.linalg.norm(pa + pb)) == 0.0 or float(torch.linalg.norm(pb)) == 0.0:
        return
    ro = D.reciprocal_orthogonality(W_a, W_b, Z_a, Z_b)
    c = D.commutativity_residual(W_a, W_b, Z_a, Z_b)
    assert c + math.sqrt(2) * max(ro.b_on_a, ro.a_on_b) >= 1 - 1e-12


def test_connectivity_report_matches_diagnostics():
    a, b = _pair(4)
    x = _x(50)
    rep = lewc.connectivity_report(a, b, x, lam=0.5)
    assert [r.layer for r in rep] == [1, 2, 3, 4]
    pa, pb = lewc.preactivations(a, x), lewc.preactivations(b, x)
    with torch.no_grad():
        fa, fb = a.features(x), b.features(x)
        fm = lewc.merge(a, b, 0.5).features(x)
    for ell, r in enumerate(rep, start=1):
        i = ell - 1
        assert r.lewc_cosine == pytest.approx(
            D.layer_cosine(fm[i], fa[i], fb[i], D.lewc_weights(0.5, ell), zero="match").mean, rel=1e-12)
        assert r.lewc_cosine == pytest.approx(r.llfc_cosine, rel=1e-12)  # λ = ½: same direction
        target = 0.5 ** ell * (fa[i] + fb[i])
        assert r.lewc_error == pytest.approx(float((fm[i] - target).norm() / target.norm()), rel=1e-12)
    torch.testing.assert_close(F.relu(pa[0]), fa[0])
    assert rep[-1].weak_additivity is None and rep[0].reciprocal_orthogonality is None
    assert rep[1].relative_rank == pytest.approx(float(D.relative_rank(a.layers[1].weight.detach(), "entropy")))
    assert rep[0].relative_rank is None and rep[-1].relative_rank is None


@SETTINGS
@given(lam=st.floats(0, 1), depth=st.integers(1, 8))
def test_ensemble_weights(lam, depth):
    s, w = lewc.ensemble_weights(lam, depth)
    assert s == pytest.approx((1 - lam) ** depth + lam ** depth)
    assert s * w == pytest.approx((1 - lam) ** depth) and s * (1 - w) == pytest.approx(lam ** depth, abs=1e-12)
    assert lewc.ensemble_weights(0.5, depth) == pytest.approx((2.0 ** (1 - depth), 0.5))


def test_logit_scale_ratio():
    g = gen(0)
    fa, fb = torch.randn(20, 3, generator=g, dtype=F64), torch.randn(20, 3, generator=g, dtype=F64)
    assert lewc.logit_scale_ratio(0.125 * (fa + fb) / 2, fa, fb) == pytest.approx(0.125, rel=1e-12)
    with pytest.raises(ValueError):
        lewc.logit_scale_ratio(fa, fa, -fa)
    with pytest.raises(ValueError):
        lewc.logit_scale_ratio(fa[:3], fa, fb)


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.8])
def test_mixing_coefficients_are_the_lewc_weights_on_the_construction(lam):
    a, b = lewc.disjoint_pair(*_pair(2))
    rows = lewc.mixing_coefficients(a, b, _x(), lam)
    assert [r.layer for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r.coef_a == pytest.approx((1 - lam) ** r.layer, abs=1e-10)
        assert r.coef_b == pytest.approx(lam ** r.layer, abs=1e-10)
        assert r.residual < 1e-10


def test_mixing_coefficients_are_a_least_squares_fit():
    a, b = _pair(4)
    x, lam = _x(), 0.25
    rows = lewc.mixing_coefficients(a, b, x, lam)
    fa, fb = (lewc._outputs(lewc.preactivations(m, x)) for m in (a, b))
    fm = lewc._outputs(lewc.preactivations(lewc.merge(a, b, lam), x))
    for r, m, u, v in zip(rows, fm, fa, fb):
        res = m - r.coef_a * u - r.coef_b * v  # normal equations: the residual is orthogonal to both regressors
        assert abs(float((res * u).sum())) < 1e-9 * float(u.norm() * res.norm() + 1)
        assert abs(float((res * v).sum())) < 1e-9 * float(v.norm() * res.norm() + 1)
        assert r.residual == pytest.approx(float(res.norm() / m.norm()), rel=1e-9)
    # lambda moves the coefficients: towards model b as lambda grows
    assert lewc.mixing_coefficients(a, b, x, 0.75)[0].coef_b > rows[0].coef_b


def test_mixing_coefficients_reject_unidentifiable_pairs():
    a, _ = _pair(1)
    with pytest.raises(ValueError):
        lewc.mixing_coefficients(a, copy.deepcopy(a), _x(), 0.25)
    with pytest.raises(ValueError):
        lewc.mixing_coefficients(*_pair(1), _x(), 0.0)


def test_lewc_signature_on_the_construction_and_on_unrelated_networks():
    nets = _pair(2)
    a, b = lewc.disjoint_pair(*nets)
    x, cal = _x(), (_x(seed=9), torch.arange(64) % 4)
    sig = lewc.lewc_signature(a, b, x, cal)
    assert sig["coef_a_error"] < 1e-9 and sig["mixing_residual"] < 1e-9
    assert sig["norm_slope"] == pytest.approx(-1.0, abs=1e-9)
    assert sig["beta_ratio"] == pytest.approx(2.0 ** (a.depth - 1), rel=1e-6)
    assert sig["coef_b"] == pytest.approx([0.25 ** k for k in range(1, 5)], abs=1e-9)
    at_third = lewc.lewc_signature(a, b, x, cal, lam=1 / 3)  # lam moves the fitted coefficients
    assert at_third["coef_a"][0] == pytest.approx(2 / 3, abs=1e-9) and at_third["coef_a_error"] < 1e-9
    other = lewc.lewc_signature(*nets, x, cal)  # two unrelated random networks are not LEWC
    assert other["coef_a_error"] > 0.05 and other["mixing_residual"] > 0.05
    with pytest.raises(ValueError):
        lewc.lewc_signature(a, b, x, cal, lam=0.5)
    with pytest.raises(TypeError):
        lewc.lewc_signature(a, b, x, [cal[0], cal[1]])


def _undriven_weight(cfg: train.TrainConfig, n: int, wd: float) -> float:
    """Direct simulation: one parameter with zero loss gradient under torch.optim.SGD and the schedule."""
    w = torch.nn.Parameter(torch.ones((), dtype=F64))
    opt = torch.optim.SGD([w], lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd, nesterov=cfg.nesterov)
    T = cfg.total_steps(n)
    for t in range(T):
        opt.param_groups[0]["lr"] = cfg.lr_at(t, T)
        opt.zero_grad()
        (0.0 * w).backward()
        opt.step()
    return float(w.detach())


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.9, False, 0.03), (0.9, True, 0.03), (0.5, False, 0.1),
                                                    (0.0, False, 0.05), (0.9, False, 0.5)])
def test_decay_factor_matches_a_simulated_undriven_weight(momentum, nesterov, wd):
    cfg = train.TrainConfig(epochs=3, batch_size=10, lr=0.1, momentum=momentum, nesterov=nesterov,
                            schedule="cosine", weight_decay=wd)
    assert lewc.decay_factor(cfg, 95) == pytest.approx(_undriven_weight(cfg, 95, wd), rel=1e-9, abs=1e-15)


def test_decay_factor_momentum_multiplies_the_exponent():
    # 900 cosine steps at peak lr 0.05 and wd 3e-2 (the old chapter 6 recipe): 0.51 without momentum, ~1e-3 with
    cfg = train.TrainConfig(epochs=30, batch_size=100, lr=0.05, momentum=0.9, schedule="cosine",
                            weight_decay=0.03)
    T = cfg.total_steps(3000)
    product = math.prod(1 - cfg.lr_at(t, T) * 0.03 for t in range(T))
    exact = lewc.decay_factor(cfg, 3000)
    assert lewc.decay_factor(replace(cfg, momentum=0.0), 3000) == pytest.approx(product, rel=1e-12)
    assert product == pytest.approx(0.51, abs=0.01)
    assert 1e-4 < exact < 3e-3
    # lr * wd = 1.5e-3 is not << (1 - sqrt(0.9))^2 = 2.6e-3: the exponential form is only the right order here
    assert math.log(exact) == pytest.approx(math.log(lewc.decay_factor(cfg, 3000, approx=True)), rel=0.15)
    assert math.log(exact) == pytest.approx(10 * math.log(product), rel=0.15)
    slow = replace(cfg, lr=0.005, epochs=300)  # lr * wd = 1.5e-4 << 2.6e-3: the approximation is accurate
    assert math.log(lewc.decay_factor(slow, 3000)) == pytest.approx(
        math.log(lewc.decay_factor(slow, 3000, approx=True)), rel=0.02)
    assert lewc.decay_factor(cfg, 3000, weight_decay=0.0) == 1.0
    assert lewc.decay_factor(cfg, 3000, weight_decay=0.0, approx=True) == 1.0
    assert lewc.decay_factor(cfg, 3000, weight_decay=0.01) > exact
    # under-damped (lr * wd > (1 - sqrt(mu))^2): the exact factor oscillates, the approximation does not
    fast = replace(cfg, lr=0.5, epochs=1)
    assert lewc.decay_factor(fast, 300, weight_decay=1.0) < 0 < lewc.decay_factor(fast, 300, 1.0, approx=True)
    with pytest.raises(ValueError):
        lewc.decay_factor(cfg, 95, weight_decay=80.0)
    with pytest.raises(TypeError):
        lewc.decay_factor(cfg, 95, approx=1)


def test_random_direction_has_the_prescribed_norms():
    a, b = _pair(6)
    for scale in (0.5, 1.0):
        r = lewc.random_direction(a, b, scale, gen(1))
        for (k, ta), tb, tr in zip(a.state_dict().items(), b.state_dict().values(), r.state_dict().values()):
            assert float((tr - ta).norm()) == pytest.approx(scale * float((tb - ta).norm()), rel=1e-12)
    r1 = lewc.random_direction(a, b, 1.0, gen(1))
    r2 = lewc.random_direction(a, b, 1.0, gen(2))
    assert not torch.equal(r1.layers[0].weight, r2.layers[0].weight)


@pytest.mark.parametrize("call, error", [
    (lambda: lewc.disjoint_pair(_pair()[0], "b"), TypeError),
    (lambda: lewc.disjoint_pair(_pair()[0], _pair(bias=True)[1]), ValueError),
    (lambda: lewc.disjoint_pair(*_pair(), overlap=13), ValueError),
    (lambda: lewc.disjoint_pair(*_pair(), overlap=-1), ValueError),
    (lambda: lewc.disjoint_pair(*_pair(), sign_conflicts=12, overlap=1), ValueError),
    (lambda: lewc.disjoint_pair(MLP(3, [], 2, bias=False), MLP(3, [], 2, bias=False)), ValueError),
    (lambda: lewc.merge(*_pair(), 1.5), ValueError),
    (lambda: lewc.merge(_pair()[0], _pair(arch=(7, 5, 6, 3, 4))[0], 0.5), ValueError),
    (lambda: lewc.lewc_error(*_pair(), _x().float(), 0.5), TypeError),
    (lambda: lewc.lewc_error(*_pair(), _x(d=6), 0.5), ValueError),
    (lambda: lewc.connectivity_report(*_pair(), _x(), lam=-0.1), ValueError),
    (lambda: lewc.ensemble_weights(0.5, 0), ValueError),
    (lambda: lewc.decay_factor("config", 10), TypeError),
    (lambda: lewc.random_direction(*_pair(), scale=0.0), ValueError),
    (lambda: lewc.random_direction(*_pair(), generator=1), TypeError),
])
def test_bad_input_is_rejected(call, error):
    with pytest.raises(error):
        call()


def _classification_pair():
    a, b = _pair(6)
    x = _x(40)
    y = torch.arange(40) % ARCH[-1]
    return a, b, x, y


def test_measure_merge_is_the_pipeline_curve_and_the_report():
    """measure_merge = merge.merge's curve + connectivity_report + logit_scale_ratio; its summary reads the
    twelve numbers by λ (the midpoint temperature is T(½), not an index)."""
    from lmcnb import merge

    a, b, x, y = _classification_pair()
    lam = torch.linspace(0, 1, 5)
    ev, cal = merge.Empirical(x, y), [merge.CalibrateTemperature((x[:20], y[:20]))]
    m = lewc.measure_merge(a, b, lam, ev, x, repairs=cal)
    ref = merge.evaluate_path(a, a.state_dict(), b.state_dict(), lam, ev, repairs=cal)
    torch.testing.assert_close(m.curve.calibrated_losses, ref.calibrated_losses, rtol=0, atol=0)
    assert [r.layer for r in m.layers] == [r.layer for r in lewc.connectivity_report(a, b, x)]
    with torch.no_grad():
        assert m.logit_scale == lewc.logit_scale_ratio(lewc.merge(a, b, 0.5)(x), a(x), b(x))
    s = m.summary()
    assert list(s) == ["acc_a", "acc_mid", "acc_barrier", "raw_loss_barrier", "cal_loss_barrier", "T_mid",
                       "logit_scale", "wa_layer1", "lewc_cos_out", "lewc_cos_hidden", "ro_ratio", "rel_rank"]
    assert s["T_mid"] == ref.at(0.5, "temperature") and s["acc_mid"] == ref.midpoint("accuracy")
    assert s["raw_loss_barrier"] == pytest.approx(ref.midpoint() - sum(ref.endpoints()) / 2)
    assert s["rel_rank"] == pytest.approx((m.layers[1].relative_rank + m.layers[2].relative_rank) / 2)


def test_compare_matchers_rows_match_one_matcher_at_a_time():
    from lmcnb import matching, merge
    from lmcnb.permutation import permute_model

    a, b, x, y = _classification_pair()
    lam = torch.linspace(0, 1, 3)
    ev, cal = merge.Empirical(x, y), [merge.CalibrateTemperature((x[:20], y[:20]))]
    matchers = {"none": matching.IdentityMatching(), "random": matching.RandomMatching(seed=3)}
    rows = lewc.compare_matchers(a, b, matchers, lam, ev, x, repairs=cal)
    assert list(rows) == ["none", "random"]
    for name, matcher in matchers.items():
        bp = permute_model(b, matcher(a, b).perms)
        c = merge.evaluate_path(a, a.state_dict(), bp.state_dict(), lam, ev, repairs=cal)
        rep = lewc.connectivity_report(a, bp, x)
        assert rows[name]["acc_barrier"] == c.barrier("midpoint", "accuracy")
        assert rows[name]["cal_loss_barrier"] == c.barrier("midpoint", "calibrated_loss")
        assert rows[name]["commutativity"] == pytest.approx(sum(r.commutativity for r in rep[1:]) / 3)
        with torch.no_grad():
            assert rows[name]["logit_scale"] == lewc.logit_scale_ratio(lewc.merge(a, bp, 0.5)(x), a(x), bp(x))
    assert rows["none"]["ro_ratio"] != rows["random"]["ro_ratio"]


@pytest.mark.parametrize("lam", [0.5, 0.3])
def test_ensemble_comparison_on_the_construction_and_without_it(lam):
    """On the disjoint embedding the merged model is s·[w f_a + (1 − w) f_b] to rounding (independently
    recomputed here), the accuracies agree and CE(f/s) <= w CE_a + (1 − w) CE_b; the same networks without the
    embedding (chapter 6's negative control) have a gap of order one."""
    nets = _pair(4)
    x = _x(50)
    y = torch.arange(50) % ARCH[-1]
    a, b = lewc.disjoint_pair(*nets)
    c = lewc.ensemble_comparison(a, b, x, y, lam=lam)
    s, w = (1 - lam) ** 4 + lam ** 4, (1 - lam) ** 4 / ((1 - lam) ** 4 + lam ** 4)
    with torch.no_grad():
        fa, fb, fm = nets[0](x), nets[1](x), lewc.merge(a, b, lam)(x)
    ens = w * fa + (1 - w) * fb
    assert c.gap < 1e-12 and c.accuracy_merged == c.accuracy_ensemble
    assert c.accuracy_ensemble == pytest.approx(float((ens.argmax(1) == y).double().mean()))
    assert c.ce_a == pytest.approx(float(F.cross_entropy(fa, y)), rel=1e-12)
    assert c.ce_raw == pytest.approx(float(F.cross_entropy(fm, y)), rel=1e-12)
    assert c.ce_bound == pytest.approx(w * c.ce_a + (1 - w) * c.ce_b, rel=1e-12)
    assert c.ce_scaled <= c.ce_bound + 1e-12
    plain = lewc.ensemble_comparison(*nets, x, y, lam=lam)
    assert plain.gap > 0.1
    other = lewc.ensemble_comparison(*nets, x, y, lam=0.9)
    assert other.gap != pytest.approx(plain.gap) and other.ce_bound != pytest.approx(plain.ce_bound)
    y2 = (y + 1) % ARCH[-1]
    assert lewc.ensemble_comparison(a, b, x, y2, lam=lam).ce_a != pytest.approx(c.ce_a)
    assert lewc.ensemble_comparison(b, a, x, y, lam=lam).ce_a == pytest.approx(c.ce_b)  # model order
    assert lewc.ensemble_comparison(a, b, _x(50, seed=9), y, lam=lam).ce_a != pytest.approx(c.ce_a)  # x


@pytest.mark.parametrize("y", [torch.zeros(50), torch.zeros(49, dtype=torch.long), "labels"])
def test_ensemble_comparison_rejects_bad_labels(y):
    with pytest.raises(ValueError, match="y must"):
        lewc.ensemble_comparison(*_pair(), _x(50), y)


def test_ensemble_comparison_rejects_bad_inputs():
    with pytest.raises(TypeError):
        lewc.ensemble_comparison(*_pair(), _x(50).float(), torch.zeros(50, dtype=torch.long))
    with pytest.raises(ValueError):
        lewc.ensemble_comparison(*_pair(), _x(50), torch.zeros(50, dtype=torch.long), lam=1.5)


# --- width_fall: the one statistic behind chapter 6's and chapter 7's "falls with width" checks -----------------

def _pairs_table():
    import pandas as pd

    rows = []  # ro = depth-dependent level x width factor x pair spread
    for depth, level in ((1, 1.0), (2, 2.0)):
        for width, factor in ((16, 1.0), (64, 0.7), (128, 0.4)):
            for pair, spread in enumerate((0.9, 1.0, 1.3)):
                rows.append(dict(depth=depth, width=width, pair=pair, ro=level * factor * spread,
                                 wd="strong" if pair < 2 else "weak"))
    return pd.DataFrame(rows)


def test_width_fall_is_worst_pair_over_median_pair_in_the_worst_group():
    t = _pairs_table()
    # one group: worst pair at 128 (2 * 0.4 * 1.3) over the median pair at 16 (1 * 1 * 1.0, depth 1 and 2 pooled)
    pooled_median_16 = float(t[t.width == 16].ro.median())
    assert lewc.width_fall(t, "ro", first=16, last=128) == pytest.approx(2 * 0.4 * 1.3 / pooled_median_16)
    # per depth: both depths fall by 0.4 * 1.3 / 1.0 (the depth's level cancels)
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth"]) == pytest.approx(0.52)
    # every argument changes the result
    assert lewc.width_fall(t, "ro", first=16, last=64, by=["depth"]) == pytest.approx(0.7 * 1.3)
    assert lewc.width_fall(t, "ro", first=64, last=128, by=["depth"]) == pytest.approx(0.4 * 1.3 / 0.7)
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth"], wide="median") == pytest.approx(0.4)
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth"], narrow="min") == pytest.approx(
        0.4 * 1.3 / 0.9)
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth"], wide="mean", narrow="max") == pytest.approx(
        0.4 * (0.9 + 1.0 + 1.3) / 3 / 1.3)
    # grouping by a second column: the worst (depth, wd) group, here the strong two-pair groups (the weak ones,
    # one pair each, fall by exactly 0.4)
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth", "wd"]) == pytest.approx(0.4 * 1.0 / 0.95)
    renamed = t.rename(columns={"width": "multiplier"})
    assert lewc.width_fall(renamed, "ro", first=16, last=128, by=["depth"], width="multiplier") == pytest.approx(0.52)
    # the no-width-change control: worst over median at one width, >= 1 when pairs differ
    assert lewc.width_fall(t, "ro", first=16, last=16, by=["depth"]) == pytest.approx(1.3)
    # the same statistic as chapter 6's and chapter 7's former notebook functions, bit for bit
    own = t[t.wd == "strong"]
    ch6 = float(own[own.width == 128].ro.max() / own[own.width == 16].ro.median())
    assert lewc.width_fall(own, "ro", first=16, last=128) == ch6
    ro = t.set_index(["depth", "wd", "width", "pair"]).ro
    last = ro.xs(128, level="width").groupby("depth").max()
    ch7 = float((last / ro.xs(16, level="width").groupby("depth").median()).max())
    assert lewc.width_fall(t, "ro", first=16, last=128, by=["depth"]) == ch7


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(wide="worst"), ValueError, "wide must be one of"),
    (dict(narrow="p90"), ValueError, "narrow must be one of"),
    (dict(by=["layer"]), ValueError, r"no column\(s\) \['layer'\]"),
    (dict(by="depth"), TypeError, "sequence of column names"),
    (dict(last=4096), ValueError, "no pairs at width 4096"),
])
def test_width_fall_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        lewc.width_fall(_pairs_table(), "ro", **{"first": 16, "last": 128, **kwargs})


def test_width_fall_rejects_groups_missing_at_one_width_and_non_frames():
    t = _pairs_table()
    t = t[~((t.width == 128) & (t.depth == 2))]
    with pytest.raises(ValueError, match="groups"):
        lewc.width_fall(t, "ro", first=16, last=128, by=["depth"])
    with pytest.raises(TypeError, match="DataFrame"):
        lewc.width_fall(t.to_dict(), "ro", first=16, last=128)
    with pytest.raises(ValueError, match=r"no column\(s\) \['rho'\]"):
        lewc.width_fall(t, "rho", first=16, last=128)
