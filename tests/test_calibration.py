"""Tests of lmcnb.calibration: the fitted temperature against a fine grid, perturbations and scipy's bounded
scalar minimiser; recovery of a planted temperature; accuracy invariance; ECE against a direct loop and a
closed-form case; input validation."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from torch.nn import functional as F

from lmcnb.calibration import calibrated_nll, expected_calibration_error, fit_temperature, fit_temperatures

SETTINGS = settings(max_examples=10)  # example budget (cost); the profile decides the rest


def _logits(seed: int, n: int, c: int, scale: float, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(n, c)`` = scale × (true scores + noise) with labels drawn from softmax(true scores)."""
    g = torch.Generator().manual_seed(seed)
    s = 2 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(s, 1), 1, generator=g).squeeze(1)
    return scale * (s + noise * torch.randn(n, c, generator=g, dtype=torch.float64)), y


def _nll(z: torch.Tensor, y: torch.Tensor, t: float) -> float:
    return float(F.cross_entropy(z / t, y))


def _nll_grid(z: torch.Tensor, y: torch.Tensor, temps: np.ndarray) -> np.ndarray:
    """NLL at every temperature of ``temps (G,)`` by direct log-sum-exp: ``(G,)``."""
    scaled = z[None] / torch.from_numpy(temps)[:, None, None]
    picked = scaled[:, torch.arange(len(y)), y]
    return (torch.logsumexp(scaled, 2) - picked).mean(1).numpy()


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(0.05, 20.0), c=st.integers(2, 8))
def test_fitted_temperature_minimises_nll(seed, scale, c):
    z, y = _logits(seed, 300, c, scale)
    t = fit_temperature(z, y)
    best = _nll(z, y, t)
    assert best <= _nll(z, y, t * (1 + 1e-3)) and best <= _nll(z, y, t * (1 - 1e-3))
    assert best <= _nll_grid(z, y, np.geomspace(t / 4, t * 4, 801)).min() + 1e-12
    ref = minimize_scalar(lambda u: _nll(z, y, math.exp(u)), bounds=(math.log(t) - 3, math.log(t) + 3),
                          method="bounded", options={"xatol": 1e-10})
    assert math.log(t) == pytest.approx(ref.x, abs=1e-4)


@pytest.mark.parametrize("t_true", [0.25, 1.0, 4.0])
def test_planted_temperature_is_recovered_with_many_samples(t_true):
    # labels ~ softmax(s); the model reports logits t_true · s, so softmax(logits / t_true) is the true law and
    # the population NLL is minimised at t_true. The MLE's relative standard error is ~1/sqrt(n·I) ≈ 1% here.
    z, y = _logits(0, 20_000, 10, t_true, noise=0.0)
    assert fit_temperature(z, y) == pytest.approx(t_true, rel=0.03)


def test_vectorised_fit_equals_one_fit_per_row():
    z, y = _logits(1, 500, 5, 1.0)
    stack = torch.stack([z * 0.3, z, z * 7.0, z + torch.linspace(0, 1, 5, dtype=torch.float64)])
    batched = fit_temperatures(stack, y)
    for k in range(stack.shape[0]):
        assert float(batched[k]) == pytest.approx(fit_temperature(stack[k], y), rel=1e-10)
    assert float(batched[0]) == pytest.approx(float(batched[1]) * 0.3, rel=1e-8)  # T scales with the logits


@SETTINGS
@given(seed=st.integers(0, 10_000), log_t=st.floats(-4.0, 4.0))
def test_temperature_scaling_keeps_the_argmax(seed, log_t):
    z, y = _logits(seed, 200, 6, 3.0)
    for t in (math.exp(log_t), fit_temperature(z, y)):
        assert torch.equal(torch.softmax(z / t, 1).argmax(1), z.argmax(1))


def test_calibrated_nll_equals_cross_entropy_and_batched_form():
    z, y = _logits(2, 100, 4, 2.0)
    for t in (0.5, 1.0, 3.0):
        assert float(calibrated_nll(z, y, t)) == pytest.approx(_nll(z, y, t), rel=1e-12)
    temps = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    batched = calibrated_nll(torch.stack([z, 2 * z, z]), y, temps)
    expected = [_nll(z, y, 0.5), _nll(2 * z, y, 1.0), _nll(z, y, 3.0)]
    np.testing.assert_allclose(batched.numpy(), expected, rtol=1e-12)


def test_minimiser_at_a_bound_warns_and_flat_nll_gives_one():
    y = torch.arange(6) % 3
    separable = 4.0 * F.one_hot(y, 3).double()
    with pytest.warns(RuntimeWarning, match="bound 0.01"):
        assert fit_temperature(separable, y, bounds=(0.01, 100.0)) == pytest.approx(0.01, rel=1e-12)
    with pytest.warns(RuntimeWarning, match="bound 100"):
        assert fit_temperature(-separable, y, bounds=(0.01, 100.0)) == pytest.approx(100.0, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_temperature(torch.ones(6, 3, dtype=torch.float64), y) == 1.0


def _ece_loop(z: torch.Tensor, y: torch.Tensor, n_bins: int) -> float:
    p = torch.softmax(z, 1).numpy()
    conf, pred, lab = p.max(1), p.argmax(1), y.numpy()
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        idx = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if idx:
            total += len(idx) / len(conf) * abs(np.mean(pred[idx] == lab[idx]) - np.mean(conf[idx]))
    return total


def test_ece_closed_form_loop_and_improvement_by_temperature_scaling():
    # confidence 0.9 everywhere, accuracy 0.6: ECE = 0.3.
    z = torch.tensor([[math.log(9.0), 0.0]] * 10, dtype=torch.float64)
    y = torch.tensor([0] * 6 + [1] * 4)
    assert expected_calibration_error(z, y) == pytest.approx(0.3, abs=1e-12)
    z, y = _logits(3, 2000, 10, 3.0, noise=0.0)
    for n_bins in (1, 10, 15):
        assert expected_calibration_error(z, y, n_bins) == pytest.approx(_ece_loop(z, y, n_bins), abs=1e-12)
    t = fit_temperature(z, y)
    assert expected_calibration_error(z / t, y) < 0.5 * expected_calibration_error(z, y)


def test_bad_input_is_rejected():
    z, y = _logits(4, 20, 3, 1.0)
    with pytest.raises(TypeError, match="int64"):
        fit_temperature(z, y.double())
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(z, y[:-1])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        fit_temperature(z, torch.full((20,), 3))
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(torch.full_like(z, math.nan), y)
    with pytest.raises(ValueError, match="C >= 2"):
        fit_temperature(z[:, :1], torch.zeros(20, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        fit_temperature(z[:0], y[:0])
    with pytest.raises(TypeError, match="floating"):
        fit_temperature(y[:, None].expand(20, 3), y)
    with pytest.raises(ValueError, match="T_min < T_max"):
        fit_temperature(z, y, bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="> 0"):
        calibrated_nll(z, y, 0.0)
    with pytest.raises(ValueError, match=r"\(K, n, C\)"):
        fit_temperatures(z, y)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(z, y, 0)


# --- every argument and message (killing the mutants of `make mutation`) -----------------------------------------

@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])
def test_newton_converges_in_a_few_iterations_and_max_iter_caps_it(scale):
    """Safeguarded Newton converges quadratically: 12 iterations suffice where bisection of the bracket
    [log 1e-3, log 1e3] to tol = 1e-12 needs ~44; a cap of 2 raises, naming max_iter and tol."""
    z, y = _logits(1, 200, 5, scale)
    t = fit_temperature(z, y)
    assert fit_temperature(z, y, max_iter=12) == pytest.approx(t, rel=1e-10)
    grid = np.exp(np.linspace(np.log(t) - 1e-4, np.log(t) + 1e-4, 201))
    assert abs(grid[np.argmin(_nll_grid(z, y, grid))] / t - 1) < 2e-6  # the minimiser, independently
    with pytest.raises(RuntimeError, match=r"^temperature fit did not converge in 2 iterations \(tol=1e-12\)$"):
        fit_temperature(z, y, max_iter=2)


def test_tolerance_is_on_log_t():
    z, y = _logits(1, 200, 5, 3.0)
    tight = fit_temperature(z, y)
    loose = fit_temperature(z, y, tol=0.5, max_iter=5)  # stops early: within 0.5 in log T, not at 1e-12
    assert 0 < abs(math.log(loose / tight)) <= 0.5
    with pytest.raises(RuntimeError, match="did not converge in 5 iterations"):
        fit_temperature(z, y, max_iter=5)


def test_bound_warning_names_the_rows():
    y = torch.arange(6) % 3
    separable = 4.0 * F.one_hot(y, 3).double()
    z = torch.stack([torch.ones(6, 3, dtype=torch.float64), separable, -separable])
    with pytest.warns(RuntimeWarning) as record:
        t = fit_temperatures(z, y, bounds=(0.01, 100.0))
    assert t.tolist() == pytest.approx([1.0, 0.01, 100.0], rel=1e-12)
    assert [str(w.message) for w in record] == [
        "temperature hit the bound 0.01 for rows [1]: NLL still falls as T decreases (separable data?); "
        "fit on a held-out split or widen bounds",
        "temperature hit the bound 100.0 for rows [2]: NLL still falls as T increases; fit on a held-out split "
        "or widen bounds"]


def _probability_rows(conf: list[float], c: int = 5) -> torch.Tensor:
    """Logits whose softmax is ``[conf_i, (1 − conf_i)/(c − 1), …]``: confidence ``conf_i`` on class 0."""
    p = torch.tensor([[q] + [(1 - q) / (c - 1)] * (c - 1) for q in conf], dtype=torch.float64)
    return p.log()


def test_ece_bins_by_hand():
    """Four bins (0, ¼], (¼, ½], (½, ¾], (¾, 1]; per bin the signed gaps acc − conf are summed before |·|.
    bin 0: 0.22 wrong → −0.22; bin 1: 0.30 right, 0.45 wrong → +0.25; bin 2: 0.60 wrong, 0.70 right → −0.30;
    bin 3: 0.80 right, 0.90 wrong → −0.70. ECE = (0.22 + 0.25 + 0.30 + 0.70) / 7."""
    z = _probability_rows([0.22, 0.30, 0.45, 0.60, 0.70, 0.80, 0.90])
    y = torch.tensor([1, 0, 1, 1, 0, 0, 1])
    assert expected_calibration_error(z, y, 4) == pytest.approx(1.47 / 7, abs=1e-12)
    assert expected_calibration_error(z, y, 1) == pytest.approx(abs(3 - sum([.22, .3, .45, .6, .7, .8, .9])) / 7,
                                                                abs=1e-12)


def test_ece_default_is_fifteen_bins_and_emits_no_warning():
    z, y = _logits(3, 2000, 10, 3.0, noise=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = expected_calibration_error(z, y)
    assert default == pytest.approx(_ece_loop(z, y, 15), abs=1e-12)
    assert abs(_ece_loop(z, y, 15) - _ece_loop(z, y, 16)) > 1e-6  # the check above can tell 15 from 16


def test_error_messages_name_the_argument():
    z, y = _logits(4, 20, 3, 1.0)
    for bad in ((1.0, 2.0, 3.0), (1.0,), 5.0):
        with pytest.raises(TypeError, match=r"^bounds must be a pair \(T_min, T_max\), got "):
            fit_temperature(z, y, bounds=bad)
    for bad in ((0.0, 1.0), (-1.0, 1.0)):
        with pytest.raises(ValueError, match=r"^temperature must be finite and > 0, got "):
            fit_temperature(z, y, bounds=bad)
    with pytest.raises(ValueError, match=r"^temperature must be finite and > 0, got -1.0$"):
        calibrated_nll(z, y, -1.0)
    zk = torch.stack([z, 2 * z])
    for bad in (torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"^temperature must be a floating \(2,\) tensor for \(K, n, C\) "
                                             rf"logits, got {bad.dtype} \({bad.shape[0]},\)$"):
            calibrated_nll(zk, y, bad)
    for bad in ([1.0, 0.0], [1.0, -2.0], [1.0, math.inf]):
        with pytest.raises(ValueError, match=r"^temperatures must be finite and > 0$"):
            calibrated_nll(zk, y, torch.tensor(bad, dtype=torch.float64))
    for bad in (True, 2.0, 0):
        with pytest.raises(ValueError, match=r"^n_bins must be a positive int, got "):
            expected_calibration_error(z, y, bad)
