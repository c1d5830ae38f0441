"""The one reproducibility environment (``tools/repro.env``): one definition for the Makefile and both tools, the
host check that picks strict or lax nbval, the check inside each chapter's kernel, and the stored outputs' origin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import refresh_outputs  # noqa: E402
import repro  # noqa: E402
import run_chapters  # noqa: E402

REFERENCE = {"flags": {"avx2", "fma", "sse4_2"}, "machine": "x86_64",
             "versions": {"torch": "2.13.0+cpu", "numpy": "2.4.6", "scipy": "1.17.1"}}
SETS, UNSETS = repro.pins("strict")
JUNK = {"MPLBACKEND": "Agg", "LMCNB_CACHE_DIR": "/cache", "LMCNB_CHECKS_DIR": "/checks", "OMP_NUM_THREADS": "16",
        "ATEN_CPU_CAPABILITY": "avx512", "HOME_LIKE": "kept"}


#: Variables through which an enclosing `make test NBVAL=lax` would reach the `make` these tests run.
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "NBVAL")


def pinned_part(env: dict[str, str]) -> dict[str, str | None]:
    """The values ``env`` gives every variable the pinned environment sets or removes (None: absent)."""
    return {name: env.get(name) for name in (*SETS, *UNSETS)}


# --- one definition ----------------------------------------------------------------------------------------------

def test_the_file_pins_every_cpu_dispatching_library_to_avx2_and_one_thread():
    # MKL: COMPATIBLE, its one branch that is the same on Intel and AMD (it ignores MKL_CBWR=AVX2 on AMD)
    assert {k: SETS[k] for k in repro.ISA_PINS} == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                                    "MKL_CBWR": "COMPATIBLE", "OPENBLAS_CORETYPE": "Haswell",
                                                    "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR"}
    assert all(SETS[k] == "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    assert SETS["LMCNB_PROFILE"] == "quick" and SETS["LMCNB_REPRO"] == "strict" and SETS["PYTHONHASHSEED"] == "0"
    assert "MPLBACKEND" in UNSETS and "LMCNB_CACHE_DIR" in UNSETS


def test_makefile_and_both_tools_give_the_same_environment():
    """``make``'s RUN_ENV (what `make test` and `make outputs` run under), refresh_outputs' kernels and
    run_chapters' quick-profile kernels see the same value of every pinned variable, whatever the caller set."""
    environ = {**{k: v for k, v in os.environ.items() if k not in MAKE_VARS}, **JUNK}
    made = subprocess.run(["make", "-s", "--no-print-directory", "print-run-env"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, check=True).stdout
    make_env = dict(line.split("=", 1) for line in made.splitlines() if "=" in line)
    expected = pinned_part(repro.apply(environ))
    assert pinned_part(make_env) == expected
    assert expected["ATEN_CPU_CAPABILITY"] == "avx2" and expected["MPLBACKEND"] is None
    old = dict(os.environ)
    try:
        os.environ.update(JUNK)
        # refresh_outputs then points its kernels' records at a fresh folder of its own
        assert pinned_part(refresh_outputs.kernel_env(Path("/tmp/results"))) == {
            **expected, "LMCNB_RESULTS_DIR": "/tmp/results"}
        if not repro.host_problems():
            assert pinned_part(run_chapters.kernel_env("quick")) == expected
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_lax_environment_keeps_threads_but_drops_the_x86_pins():
    env = repro.apply(JUNK, "lax")
    assert not any(k in env for k in repro.ISA_PINS if k not in JUNK) and env["ATEN_CPU_CAPABILITY"] == "avx512"
    assert env["OMP_NUM_THREADS"] == "1" and env["LMCNB_REPRO"] == "lax" and "MPLBACKEND" not in env
    args = repro.env_args("lax")
    assert "-u" in args and not any(a.startswith("ATEN_CPU_CAPABILITY=") for a in args)
    with pytest.raises(ValueError, match="unknown mode"):
        repro.pins("loose")


@pytest.mark.parametrize("line, message", [
    ("ATEN_CPU_CAPABILITY avx2", "expected NAME=value"),
    ("ATEN_CPU_CAPABILITY=", "expected NAME=value"),
    ("X='a b'", "expected NAME=value"),
    ("lower=1", "expected NAME=value"),
    ("unset bad-name", "bad variable name"),
    ("OMP_NUM_THREADS=2", "set twice"),
    ("unset OMP_NUM_THREADS", "both set and unset"),
])
def test_a_bad_line_is_an_error_naming_it(tmp_path, line, message):
    path = tmp_path / "repro.env"
    path.write_text("# comment\nOMP_NUM_THREADS=1\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        repro.load(path)


def test_a_file_without_the_cpu_pins_is_refused(tmp_path):
    path = tmp_path / "repro.env"
    path.write_text("OMP_NUM_THREADS=1\nLMCNB_REPRO=strict\n")
    with pytest.raises(ValueError, match="does not set.*ATEN_CPU_CAPABILITY"):
        repro.pins("strict", path)


# --- which mode a host gets --------------------------------------------------------------------------------------

def test_the_reference_platform_has_no_problem():
    assert repro.host_problems(**REFERENCE) == []


@pytest.mark.parametrize("change, problem", [
    ({"machine": "aarch64"}, "not x86-64"),
    ({"machine": "arm64", "flags": None}, "not x86-64"),
    ({"flags": {"sse4_2", "avx"}}, "lacks avx2/fma"),
    ({"flags": {"avx2"}}, "lacks fma"),
    ({"versions": {**REFERENCE["versions"], "torch": "2.13.0"}}, "torch is 2.13.0, not 2.13.0+cpu"),
    ({"versions": {**REFERENCE["versions"], "torch": "2.12.1+cpu"}}, "torch is 2.12.1"),
    ({"versions": {**REFERENCE["versions"], "numpy": "2.3.0"}}, "numpy is 2.3.0"),
    ({"versions": {"torch": "2.13.0+cpu", "numpy": "2.4.6"}}, "scipy is not installed"),
])
def test_a_host_that_cannot_reproduce_is_told_why(change, problem):
    problems = repro.host_problems(**{**REFERENCE, **change})
    assert any(problem in p for p in problems), problems


def test_mode_is_strict_on_the_reference_and_lax_elsewhere_but_never_lax_in_ci():
    assert repro.decide("auto", [], ci=True)[0] == "strict"
    assert repro.decide("strict", [], ci=False)[0] == "strict"
    mode, message = repro.decide("auto", ["the CPU is aarch64, not x86-64"], ci=False)
    assert mode == "lax"
    assert message.startswith("make test: outputs were produced on x86-64/AVX2")
    assert "without comparing stored outputs" in message and "aarch64" in message
    assert repro.decide("lax", [], ci=False)[0] == "lax"  # forced: make test NBVAL=lax
    with pytest.raises(SystemExit, match="CI must compare stored outputs.*aarch64"):
        repro.decide("auto", ["the CPU is aarch64, not x86-64"], ci=True)
    with pytest.raises(SystemExit, match="CI must compare stored outputs.*NBVAL=lax"):
        repro.decide("lax", [], ci=True)
    with pytest.raises(SystemExit, match="strict mode cannot reproduce.*lacks avx2"):
        repro.decide("strict", ["the CPU lacks avx2"], ci=False)
    with pytest.raises(SystemExit, match="auto, strict or lax"):
        repro.decide("loose", [], ci=False)


def test_make_test_runs_the_mode_it_decides():
    """The recipe runs strict nbval under RUN_ENV or lax nbval under LAX_ENV (dry run of both branches)."""
    clean = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}  # not the NBVAL of an enclosing make
    recipe = subprocess.run(["make", "-n", "--no-print-directory", "test"], cwd=ROOT, capture_output=True,
                            text=True, check=True, env=clean).stdout
    strict_env = " ".join(repro.env_args("strict"))
    lax_env = " ".join(repro.env_args("lax"))
    assert "tools/repro.py mode auto" in recipe
    assert f"{strict_env} " in recipe and f"{lax_env} " in recipe
    assert recipe.count("--nbval-lax") == 2 and recipe.count("--nbval ") == 2


# --- inside the chapters' kernels --------------------------------------------------------------------------------

def kernel(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a chapter's set-up line in a fresh interpreter with exactly ``env`` (as a notebook kernel gets it)."""
    code = "import lmcnb; lmcnb.setup(seed=0)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*SETS, *UNSETS)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.mark.skipif(bool(repro.host_problems()), reason="needs a host that can run the pinned environment")
def test_setup_line_names_the_kernels_torch_runs_in_the_pinned_environment():
    out = kernel(repro.apply(base_env()))
    assert out.returncode == 0, out.stderr
    assert "cpu=AVX2 repro=strict" in out.stdout and "threads=1" in out.stdout and "host" not in out.stdout


@pytest.mark.parametrize("var", ["ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OPENBLAS_CORETYPE",
                                 "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"])
def test_a_kernel_without_a_pin_fails_naming_the_variable(var):
    env = repro.apply(base_env())
    del env[var]
    out = kernel(env)
    assert out.returncode != 0
    assert "LMCNB_REPRO=strict" in out.stderr and f"{var} is not set" in out.stderr


def test_a_kernel_with_another_isa_fails_naming_the_variable():
    """The pin decides in both directions: a kernel forced to AVX-512 or to the scalar kernels is refused."""
    for value, runs in (("avx512", None), ("default", "DEFAULT")):
        env = {**repro.apply(base_env()), "ATEN_CPU_CAPABILITY": value}
        out = kernel(env)
        assert out.returncode != 0 and f"ATEN_CPU_CAPABILITY is '{value}', not 'avx2'" in out.stderr
        if runs:
            assert f"torch runs {runs} kernels" in out.stderr
    env = {**repro.apply(base_env()), "OPENBLAS_CORETYPE": "Sandybridge"}
    out = kernel(env)
    assert out.returncode != 0 and "OPENBLAS_CORETYPE is 'Sandybridge'" in out.stderr


def test_numpy_dispatching_a_disabled_feature_is_a_problem(monkeypatch):
    """The numpy pin must take effect: a feature it turns off that numpy still dispatches (the variable was set
    after numpy was imported) is named; features numpy reports off are fine."""
    from lmcnb.infra import profiles

    env = repro.apply(base_env())
    monkeypatch.setattr(profiles, "_numpy_features", lambda: {"X86_V3": True, "X86_V4": False})
    assert not any("numpy dispatches" in p for p in profiles.reproducibility_problems(env))
    monkeypatch.setattr(profiles, "_numpy_features", lambda: {"X86_V3": True, "X86_V4": True})
    problems = profiles.reproducibility_problems(env)
    assert any("numpy dispatches ['X86_V4']" in p and "NPY_DISABLE_CPU_FEATURES" in p for p in problems)


def test_a_kernel_outside_strict_mode_is_not_checked():
    env = repro.apply(base_env(), "lax")
    del env["OMP_NUM_THREADS"]
    out = kernel(env)
    assert out.returncode == 0, out.stderr
    assert "repro=lax" in out.stdout and "(host " in out.stdout  # outside the pins the host explains a mismatch


@pytest.mark.skipif(bool(repro.host_problems()), reason="needs a host that can run the pinned environment")
def test_thread_counts_do_not_depend_on_the_host_cores():
    """A 16-core laptop runs the chapters with the same single thread as the 2-core CI machine: torch, MKL
    (through torch) and OpenBLAS each use one thread under the pins, whatever ``os.cpu_count()`` says."""
    code = ("import os; os.cpu_count = lambda: 16\n"
            "import lmcnb, torch, numpy, threadpoolctl\n"
            "S = lmcnb.setup(seed=0, verbose=False)\n"
            "blas = sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'})\n"
            "print(S.threads, torch.get_num_threads(), blas)")
    out = subprocess.run([sys.executable, "-c", code], env=repro.apply(base_env()), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "1 1 [1]"


# --- the stored outputs ------------------------------------------------------------------------------------------

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_outputs_were_produced_in_the_pinned_environment(path):
    """Each chapter's stored set-up line says which kernels produced its outputs: the pinned ones."""
    nb = nbformat.read(path, as_version=4)
    lines = [o.get("text", "") for c in nb.cells if c.cell_type == "code" and "lmcnb.setup(" in c.source
             for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    line = next((ln for text in lines for ln in text.splitlines() if ln.startswith("lmcnb: profile=")), None)
    assert line is not None, f"{path.name}: no stored set-up line"
    want = [f"profile={SETS['LMCNB_PROFILE']}", f"threads={SETS['OMP_NUM_THREADS']}",
            f"cpu={SETS['ATEN_CPU_CAPABILITY'].upper()} ", f"repro={SETS['LMCNB_REPRO']}"]
    missing = [w for w in want if w not in line]
    assert not missing, (f"{path.name}: stored outputs were not produced in the pinned environment "
                         f"(set-up line {line!r} lacks {missing}); refresh them with `make outputs`")


def test_the_host_fingerprint_names_vendor_model_and_family():
    intel = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
             "model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\nflags\t\t: fpu avx2\n")
    line = repro.host_fingerprint(intel)
    assert line.startswith("GenuineIntel Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (family 6, model 143), ")
    assert line.endswith(f", {repro.host_description()}, {os.cpu_count()} CPUs")
    assert repro.host_fingerprint("").startswith("unknown CPU, ")
    assert repro.host_fingerprint("vendor_id : AuthenticAMD\n").startswith("AuthenticAMD, ")
