"""Tests of lmcnb._validate, the shared argument validators: accepted types and returned values, bool rejected
where numbers are expected, NaN/inf, inclusive and open bounds, and the exact error messages (other modules'
tests match fragments of them)."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from lmcnb._validate import check_bool, check_choice, check_generator, check_int, check_real, check_tensor


# ----------------------------------------------------------------------------------------------- check_int
@pytest.mark.parametrize("value", [0, 7, np.int64(7), np.int32(-2), np.uint8(3), 10 ** 30])
def test_check_int_accepts_python_and_numpy_integers_and_returns_int(value):
    out = check_int("n", value)
    assert type(out) is int and out == int(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, np.float64(2.0), "3", None, Fraction(4, 1),
                                   torch.tensor(3)])
def test_check_int_rejects_non_integers_and_bools(value):
    with pytest.raises(TypeError, match=rf"^n must be an int, got {type(value).__name__}$"):
        check_int("n", value)


def test_check_int_minimum_is_inclusive():
    assert check_int("n", 1, 1) == 1
    assert check_int("seed", 0, 0) == 0
    assert check_int("n", -5) == -5  # no minimum
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        check_int("n", 0, 1)
    with pytest.raises(ValueError, match=r"^k must be >= 2, got 1$"):
        check_int("k", np.int64(1), 2)


def test_check_int_allow_none():
    assert check_int("batch_size", None, 1, allow_none=True) is None
    assert check_int("batch_size", 4, 1, allow_none=True) == 4
    with pytest.raises(TypeError, match=r"^batch_size must be an int or None, got float$"):
        check_int("batch_size", 4.0, 1, allow_none=True)
    with pytest.raises(TypeError, match=r"^batch_size must be an int or None, got bool$"):
        check_int("batch_size", True, 1, allow_none=True)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        check_int("batch_size", 0, 1, allow_none=True)
    with pytest.raises(TypeError, match=r"^n must be an int, got NoneType$"):
        check_int("n", None, 1)


# ----------------------------------------------------------------------------------------------- check_real
@pytest.mark.parametrize("value", [0, 3, -2.5, np.float64(0.25), np.float32(1.5), np.int64(4), Fraction(1, 4)])
def test_check_real_accepts_real_numbers_and_returns_float(value):
    out = check_real("x", value)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1.0", None, 1 + 0j, torch.tensor(1.0), np.array(1.0)])
def test_check_real_rejects_non_reals_and_bools(value):
    with pytest.raises(TypeError, match=rf"^x must be a real number, got {type(value).__name__}$"):
        check_real("x", value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")])
def test_check_real_rejects_nan_and_inf_even_without_bounds(value):
    with pytest.raises(ValueError, match=r"^x must be finite, got "):
        check_real("x", value)
    with pytest.raises(ValueError, match=r"^x must be finite and in \[0, 1\], got "):
        check_real("x", value, 0, 1)


def test_check_real_closed_bounds():
    assert check_real("lam", 0, 0, 1) == 0.0 and check_real("lam", 1, 0, 1) == 1.0
    with pytest.raises(ValueError, match=r"^lam must be finite and in \[0, 1\], got 1.5$"):
        check_real("lam", 1.5, 0, 1)
    with pytest.raises(ValueError, match=r"^lam must be finite and in \[0\.0, 1\.0\], got -0.1$"):
        check_real("lam", -0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^noise must be finite and >= 0\.0, got -1$"):
        check_real("noise", -1, 0.0)
    with pytest.raises(ValueError, match=r"^t must be finite and <= 2, got 3$"):
        check_real("t", 3, high=2)
    assert check_real("t", -1e300, high=2) == -1e300


def test_check_real_open_bounds():
    with pytest.raises(ValueError, match=r"^temperature must be finite and > 0, got 0$"):
        check_real("temperature", 0, 0, low_open=True)
    assert check_real("temperature", 1e-300, 0, low_open=True) == 1e-300
    with pytest.raises(ValueError, match=r"^energy must be finite and in \(0\.0, 1\.0\], got 0\.0$"):
        check_real("energy", 0.0, 0.0, 1.0, low_open=True)
    assert check_real("energy", 1.0, 0.0, 1.0, low_open=True) == 1.0
    with pytest.raises(ValueError, match=r"^tol must be finite and in \[0, 0\.5\), got 0\.5$"):
        check_real("tol", 0.5, 0, 0.5, high_open=True)
    with pytest.raises(ValueError, match=r"^t must be finite and < 2, got 2$"):
        check_real("t", 2, high=2, high_open=True)


# ----------------------------------------------------------------------------------------------- check_bool
def test_check_bool_accepts_only_bool():
    assert check_bool("flag", True) is True and check_bool("flag", False) is False
    for value in (0, 1, np.bool_(True), "True", None, torch.tensor(True)):
        with pytest.raises(TypeError, match=rf"^flag must be a bool, got {type(value).__name__}$"):
            check_bool("flag", value)


# ----------------------------------------------------------------------------------------------- check_choice
def test_check_choice():
    choices = ("mean", "median")
    out = check_choice("center", np.str_("median"), choices)
    assert out == "median" and type(out) is str
    for value in ("mode", "Mean", None, 1, ["mean"], np.array(["mean"])):
        with pytest.raises(ValueError, match="^" + re.escape(f"center must be one of {choices}, got {value!r}") + "$"):
            check_choice("center", value, choices)


# ----------------------------------------------------------------------------------------------- check_generator
def test_check_generator():
    g = torch.Generator().manual_seed(0)
    assert check_generator("generator", g) is g
    for value in (None, 0, np.random.default_rng(0)):
        with pytest.raises(TypeError, match=rf"^generator must be a torch\.Generator, got {type(value).__name__}$"):
            check_generator("generator", value)


# ----------------------------------------------------------------------------------------------- import cost
def test_validate_imports_nothing_heavy():
    code = ("import sys, lmcnb._validate; "
            "print(any(m in sys.modules for m in ('ot', 'torchvision', 'mlxtend', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_check_tensor() -> None:
    x = torch.zeros(2, 3, dtype=torch.float64)
    assert check_tensor("x", x, ndim=(2, 3), dtype=torch.float64) is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        check_tensor("x", [[0.0]])
    with pytest.raises(TypeError, match=r"x must be float64 \(why\), got torch.float32"):
        check_tensor("x", x.float(), dtype=torch.float64, why=" (why)")
    with pytest.raises(TypeError, match="real floating dtype"):
        check_tensor("x", torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must have 1 or 3 dimension\(s\) \(1-D or 3-D\)"):
        check_tensor("x", x, ndim=(1, 3))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        check_tensor("x", x, min_ndim=3)
    with pytest.raises(ValueError, match="non-empty"):
        check_tensor("x", torch.zeros(0, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        check_tensor("x", torch.tensor([1.0, float("inf")]))


def test_moved_keywords_names_every_moved_keyword_and_the_hint():
    from lmcnb._validate import moved_keywords

    @moved_keywords({"steps": "GD(steps=…)", "tol": "GD(tol=…)"}, hint="see the docs")
    def run(x, *, a=0):
        """doc"""
        return x + a

    assert run(1, a=2) == 3 and run.__name__ == "run" and run.__doc__ == "doc"
    with pytest.raises(TypeError, match=r"^run\(\) no longer takes `steps=`: it moved to `GD\(steps=…\)` \(see the docs\)$"):
        run(1, steps=3)
    with pytest.raises(TypeError, match=r"no longer takes `steps=`, `tol=`: `steps=` moved to `GD\(steps=…\)`; "
                                        r"`tol=` moved to `GD\(tol=…\)` \(see the docs\)"):
        run(1, steps=3, tol=1)

    @moved_keywords({"old": "new"})
    def bare(**kw):
        return kw

    with pytest.raises(TypeError, match=r"it moved to `new`$"):
        bare(old=1)
    assert bare(other=1) == {"other": 1}


def test_renamed_keys_name_the_new_key_and_stay_a_dict():
    from lmcnb._validate import RenamedKeys

    d = RenamedKeys({"euclidean": [1.0]}, {"naive": "euclidean"})
    assert d == {"euclidean": [1.0]} and isinstance(d, dict) and d["euclidean"] == [1.0]
    with pytest.raises(KeyError, match="'naive' was renamed 'euclidean'"):
        d["naive"]
    with pytest.raises(KeyError, match="other") as err:
        d["other"]
    assert "renamed" not in str(err.value)
    assert d.get("naive") is None and "naive" not in d  # get/in are a dict's
