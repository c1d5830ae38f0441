"""Profiles, set-up, verification records and the package's import hygiene."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmcnb import checks, profiles


@pytest.fixture(autouse=True)
def _no_repro_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests change threads and profiles on purpose; tests/test_repro.py tests the pinned environment."""
    monkeypatch.delenv(profiles.REPRO_VAR, raising=False)


def test_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMCNB_PROFILE", "paper")
    assert profiles.get_profile() == "paper"
    monkeypatch.setenv("LMCNB_PROFILE", "quick")
    assert profiles.get_profile() == "quick"
    monkeypatch.delenv("LMCNB_PROFILE")
    assert profiles.get_profile() == ("paper" if torch.cuda.is_available() else "quick")


def test_unknown_profile_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMCNB_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profiles.get_profile()
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.setup(profile="huge", verbose=False)
    monkeypatch.delenv("LMCNB_PROFILE")
    with pytest.raises(TypeError, match="seed must be an int"):
        profiles.setup(seed=1.5, verbose=False)


def test_setup_seeds_and_pins(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    old = torch.get_num_threads()
    try:
        s = profiles.setup(seed=7, profile="quick")
        assert "profile=quick" in capsys.readouterr().out
        assert s.threads == 2 and torch.get_num_threads() == 2
        a = (torch.rand(3), np.random.rand(3))
        profiles.setup(seed=7, profile="quick", verbose=False)
        b = (torch.rand(3), np.random.rand(3))
        assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert profiles.choose(quick=1, paper=2) == 1
        assert profiles.choose(quick=1, paper=2, profile="paper") == 2
        assert list(profiles.progress(range(3))) == [0, 1, 2]
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert profiles.setup(profile="quick", verbose=False).threads == 1
    finally:
        torch.set_num_threads(old)


def test_check_records_and_json(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("LMCNB_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(checks, "_CHAPTER", [])
    checks.chapter("ch3")
    ev = checks.Evidence(n=(4, "widths"), why={"control": "test"})
    r = checks.record("slope", -0.8123, "<= -0.5", np.bool_(True), source="Zhan 2025", status="confirmed",
                      evidence=ev.replace(paper=("-0.5", "abstract"), threshold=-0.5))
    assert str(r) == "slope: measured -0.812 vs predicted <= -0.5: PASS"
    assert capsys.readouterr().out.strip() == str(r)
    line = json.loads((tmp_path / "ch3.jsonl").read_text().strip())
    assert line["passed"] is True and line["measured"] == "-0.812"
    monkeypatch.setenv("LMCNB_CHECKS_ENFORCE", "0")
    bad = checks.record("zero", 1e-3, "< 1e-8", False, source="x", status="derived", evidence=ev)
    assert "FAIL" in str(bad) and checks.results()[-1] == bad
    with pytest.raises(ValueError, match="status"):
        checks.record("x", 1, 1, True, source="x", status="guess")
    with pytest.raises(TypeError, match="passed must be a bool"):
        checks.record("x", 1, 1, 1, source="x", status="derived")


def test_fmt_rounds() -> None:
    assert checks.fmt(0.123456) == "0.123"
    assert checks.fmt(torch.tensor(2.0e-9)) == "2e-09"
    assert checks.fmt((1, 0.55555)) == "(1, 0.556)"
    assert checks.fmt(float("nan")) == "nan"


def test_import_is_light() -> None:
    """``import lmcnb`` (and its light modules) must not import POT or torchvision."""
    code = ("import sys, lmcnb, lmcnb.models, lmcnb.permutation, lmcnb.profiles, lmcnb.checks; "
            "print(sorted(m for m in ('ot', 'torchvision', 'mlxtend') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_submodule_access() -> None:
    import lmcnb

    assert lmcnb.permutation.PermutationSpec is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lmcnb.nope  # noqa: B018


def test_every_public_module_is_a_lazy_submodule_and_documented() -> None:
    """A new module must be listed in ``lmcnb._SUBMODULES`` and in the package docstring (the module index)."""
    import pathlib

    import lmcnb

    public = {p.stem for p in pathlib.Path(lmcnb.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    assert public == set(lmcnb._SUBMODULES)
    missing = sorted(name for name in public if f":mod:`lmcnb.{name}`" not in lmcnb.__doc__)
    assert not missing, f"not in lmcnb's module index: {missing}"


def test_full_profile_is_opt_in_and_paper_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    """``full``: only when asked for; ``choose`` gives its own value or the paper one; paper-only cells run."""
    monkeypatch.delenv("LMCNB_PROFILE", raising=False)
    assert profiles.get_profile() != "full"  # never automatic, with or without CUDA
    monkeypatch.setenv("LMCNB_PROFILE", "full")
    assert profiles.get_profile() == "full"
    assert profiles.choose(quick=1, paper=2, full=3, profile="full") == 3
    assert profiles.choose(quick=1, paper=2, profile="full") == 2  # no full size: the paper one
    assert profiles.choose(quick=1, paper=2, full=3, profile="paper") == 2
    assert profiles.choose(quick=1, paper=2, full=3, profile="quick") == 1
    assert profiles.choose(quick=1, paper=2, full=None, profile="full") is None  # None is a value
    old = torch.get_num_threads()
    try:
        s = profiles.setup(seed=0, verbose=False)
        assert s.profile == "full" and not s.quick
        assert profiles.choose(quick=1, paper=2, full=3) == 3  # the active profile
        profiles.require("paper")  # a paper-only cell runs at full size
        profiles.require("full")
        with pytest.raises(RuntimeError, match="'quick' profile only"):
            profiles.require("quick")
        profiles.setup(seed=0, profile="paper", verbose=False)
        with pytest.raises(RuntimeError, match="'full' profile only .*LMCNB_PROFILE=full"):
            profiles.require("full")
    finally:
        torch.set_num_threads(old)
        profiles.setup(seed=0, profile="quick", verbose=False)


def test_require_stops_a_cell_outside_its_profile() -> None:
    profiles.setup(seed=0, profile="quick", verbose=False)
    profiles.require("quick")
    with pytest.raises(RuntimeError, match="'paper' profile only .*LMCNB_PROFILE=paper"):
        profiles.require("paper")
    with pytest.raises(ValueError):
        profiles.require("fast")


def test_smoke_profile_takes_paper_paths_at_toy_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``smoke``: opt-in; ``choose`` needs its ``smoke=`` value (an error naming the call without one); paper-only
    cells run; threads as in quick; check verdicts recorded, never enforced."""
    monkeypatch.delenv("LMCNB_PROFILE", raising=False)
    assert profiles.get_profile() != "smoke"
    monkeypatch.setenv("LMCNB_PROFILE", "smoke")
    assert profiles.get_profile() == "smoke"
    assert profiles.choose(quick=1, paper=2, smoke=3, profile="smoke") == 3
    assert profiles.choose(quick=1, paper=2, smoke=3, full=4, profile="smoke") == 3
    for other, value in (("quick", 1), ("paper", 2), ("full", 4)):
        assert profiles.choose(quick=1, paper=2, smoke=3, full=4, profile=other) == value
    assert profiles.choose(quick=1, paper=2, smoke=None, profile="smoke") is None  # None is a value
    with pytest.raises(ValueError, match=r"choose\(quick=1, paper=2\) at .*test_profiles.py:\d+ has no smoke="):
        profiles.choose(quick=1, paper=2, profile="smoke")
    assert profiles.choose(quick=1, paper=2, profile="paper") == 2  # smoke= is needed in smoke only
    old = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        s = profiles.setup(seed=0, verbose=False)
        assert s.profile == "smoke" and s.smoke and not s.quick and s.threads == 1
        profiles.require("paper")  # the paper-only cells execute in smoke
        with pytest.raises(RuntimeError, match="'quick' profile only"):
            profiles.require("quick")
        assert not checks.enforcing()
        failed = checks.record("smoke never enforces", 1, "<= 0", False, source="t", status="derived",
                               evidence=checks.Evidence(threshold=0, n=(1, "run"),
                                                        control=("c", 2, True)))
        assert failed.verdict == "FAIL" and failed.profile == "smoke" and failed.defect
        profiles.setup(seed=0, profile="quick", verbose=False)
        assert checks.enforcing()
        with pytest.raises(RuntimeError, match="'paper' profile only"):
            profiles.require("paper")
    finally:
        torch.set_num_threads(old)
        profiles.setup(seed=0, profile="quick", verbose=False)
