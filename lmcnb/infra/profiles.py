"""Profiles (``quick`` on CPU, ``paper`` on CUDA, opt-in ``full`` and ``smoke``), device choice, seeding and thread
pinning.

A chapter's first code cell calls :func:`setup` once; every later cell picks its sizes with
:func:`choose` (``choose(quick=..., paper=..., smoke=...)``) so the same cells run at CPU size in CI and at paper
size on a GPU. ``LMCNB_PROFILE=quick|paper|full|smoke`` overrides the automatic choice; any other value is an error.

``smoke`` is never chosen automatically either: it runs the ``paper`` profile's code paths (every branch a chapter
takes when ``S.quick`` is False, and the paper-only cells: :func:`require` ``("paper")`` lets it through) at toy
sizes, the ``smoke=`` value every :func:`choose` call must give, so that ``make smoke`` (``tools/run_chapters.py
--profile smoke --toy-data``, in CI) executes every cell of every chapter on CPU in minutes. Its numbers mean
nothing: :mod:`lmcnb.infra.checks` records its verdicts without enforcing them. Progress bars (:func:`progress`)
are shown as in ``paper`` (the same code path; the runner keeps them out of its own output).

``full`` is never chosen automatically: it is the ``paper`` profile with the papers' own, full sizes where a
chapter's ``paper`` size is cut to fit about one GPU-hour (e.g. Table 1 of Ito et al.: VGG-11 ×16 and
ResNet-20 ×32 for 200 epochs, days of GPU time). A cell states the full size with ``choose(..., full=...)``;
without it ``full`` takes the ``paper`` value, and paper-only cells (:func:`require` ``("paper")``) run in it.
"""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from . import runlog

PROFILES = ("quick", "paper", "full", "smoke")
#: Profiles that run the paper-only cells and the paper code paths (``full`` is ``paper`` at the papers' full
#: sizes, ``smoke`` is ``paper`` at toy sizes).
PAPER_PROFILES = ("paper", "full", "smoke")
ENV_VAR = "LMCNB_PROFILE"
QUICK_THREADS = 2
#: ``LMCNB_REPRO=strict`` (set by ``make test`` / ``make outputs`` from ``tools/repro.env``) makes :func:`setup`
#: verify that the kernel really runs in the pinned reproducibility environment that file defines.
REPRO_VAR = "LMCNB_REPRO"
T = TypeVar("T")


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` chose: ``profile`` name, torch ``device``, ``seed`` and CPU ``threads``."""

    profile: str
    device: torch.device
    seed: int
    threads: int

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    @property
    def smoke(self) -> bool:
        """The ``smoke`` profile: paper code paths at toy sizes (numbers meaningless, verdicts not enforced)."""
        return self.profile == "smoke"

    def __str__(self) -> str:
        name = device_name(self.device)
        repro = os.environ.get(REPRO_VAR) or "off"
        # Under the verified pins the host does not matter (and stored outputs must not depend on it); elsewhere
        # it explains why a run differs from the stored outputs.
        host = "" if repro == "strict" else f" (host {host_cpu()})"
        return (f"lmcnb: profile={self.profile} device={self.device} ({name}) seed={self.seed} "
                f"threads={self.threads} cpu={cpu_capability()}{host} repro={repro} torch={torch.__version__}")


_current: Setup | None = None


def device_name(device: torch.device) -> str:
    """The GPU's name (``torch.cuda.get_device_name``) for a CUDA device, else ``"CPU"``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def cpu_capability() -> str:
    """The vectorised CPU kernels torch actually uses (``AVX2``, ``AVX512``, ``DEFAULT``, ``SVE256``, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def host_cpu() -> str:
    """This machine's architecture and, on x86-64, its widest vector extension (``x86_64/avx512``)."""
    import platform

    machine = platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((ln.split(":", 1)[1].split() for ln in fh if ln.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is None or machine.lower() not in ("x86_64", "amd64"):
        return machine
    return f"{machine}/" + ("avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no-avx2")


def _openblas_architectures() -> list[str] | None:
    """The kernel families OpenBLAS libraries loaded in this process use, or None without ``threadpoolctl``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    import numpy.linalg  # noqa: F401  (loads numpy's OpenBLAS)

    return sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})


def _numpy_features() -> dict[str, bool]:
    """numpy's CPU features as its dispatcher sees them (a feature named in ``NPY_DISABLE_CPU_FEATURES`` reads
    False); empty where numpy does not expose them."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return {}
    return dict(__cpu_features__)


def _repro_tool() -> Any:
    """``tools/repro.py`` of the checkout this package is imported from (the one reader of ``tools/repro.env``)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "repro.py"
    if not path.is_file():
        raise RuntimeError(f"{REPRO_VAR}=strict needs the repository's tools/repro.py ({path} does not exist): "
                           "the pinned environment is defined only in a checkout of the book")
    spec = importlib.util.spec_from_file_location("lmcnb_repro_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reproducibility_problems(environ: dict[str, str] | None = None) -> list[str]:
    """What keeps this process from the pinned reproducibility environment of ``tools/repro.env`` (empty: it is
    in force); each problem names its variable.

    Checks every pinned variable's value, and that the pins took effect:
    torch runs the CPU kernels ``ATEN_CPU_CAPABILITY`` names, OpenBLAS the ``OPENBLAS_CORETYPE`` ones, numpy
    dispatches none of the features ``NPY_DISABLE_CPU_FEATURES`` names, and torch uses ``OMP_NUM_THREADS``
    threads."""
    env = dict(os.environ) if environ is None else environ
    sets, _ = _repro_tool().pins("strict")  # the removed variables are the launching tool's business
    problems = [f"{name} is {env[name]!r}, not {value!r}" if name in env else f"{name} is not set (pinned to "
                f"{value!r})" for name, value in sets.items() if env.get(name) != value]
    wanted = sets.get("ATEN_CPU_CAPABILITY")
    if wanted and cpu_capability().lower() != wanted.lower():
        problems.append(f"torch runs {cpu_capability()} kernels, not ATEN_CPU_CAPABILITY={wanted} (the variable "
                        f"must be set before torch is imported)")
    core = sets.get("OPENBLAS_CORETYPE")
    archs = _openblas_architectures()
    if core and archs is not None and any(a.lower() != core.lower() for a in archs):
        problems.append(f"OpenBLAS runs {archs} kernels, not OPENBLAS_CORETYPE={core}")
    disabled = sets.get("NPY_DISABLE_CPU_FEATURES", "")
    running = _numpy_features()
    on = [f for f in disabled.replace(",", " ").split() if running.get(f)]
    if on:
        problems.append(f"numpy dispatches {on}, which NPY_DISABLE_CPU_FEATURES={disabled} turns off (the variable "
                        f"must be set before numpy is imported)")
    threads = sets.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and torch.get_num_threads() != int(threads):
        problems.append(f"torch uses {torch.get_num_threads()} threads, not OMP_NUM_THREADS={threads}")
    return problems


def check_reproducibility() -> None:
    """With ``LMCNB_REPRO=strict``, raise ``RuntimeError`` listing every way the pinned environment is not in
    force (a chapter kernel that silently ran AVX-512 kernels would store or compare other outputs)."""
    if os.environ.get(REPRO_VAR, "") != "strict":
        return
    problems = reproducibility_problems()
    if problems:
        raise RuntimeError(f"{REPRO_VAR}=strict, but this kernel is not in the pinned reproducibility environment "
                           "of tools/repro.env: " + "; ".join(problems) + ". Run it through `make test` or "
                           "`make outputs`, which set that environment.")


def validate_profile(name: str) -> str:
    """Return ``name`` if it is a known profile, else raise ``ValueError`` naming the choices."""
    if not isinstance(name, str):
        raise TypeError(f"profile must be a string, got {type(name).__name__}")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES} (env var {ENV_VAR})")
    return name


def get_profile() -> str:
    """The active profile: ``$LMCNB_PROFILE`` if set, else ``paper`` when CUDA is available, else ``quick``
    (``full`` and ``smoke`` only when asked for)."""
    env = os.environ.get(ENV_VAR)
    if env is not None and env != "":
        return validate_profile(env.strip())
    return "paper" if torch.cuda.is_available() else "quick"


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


def _quick_threads() -> int:
    """``$OMP_NUM_THREADS`` when set (``make test`` and ``make outputs`` set 1: two nbval workers on two cores),
    else 2 (the CI machine's cores)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return QUICK_THREADS


def setup(seed: int = 0, profile: str | None = None, threads: int | None = None,
          deterministic: bool = True, verbose: bool = True) -> Setup:
    """Seed everything, pin torch's CPU threads, pick the device and the profile; print one line.

    The line names the CPU kernels torch runs (``cpu=AVX2``) and whether the pinned reproducibility environment
    is verified (``repro=strict``: :func:`check_reproducibility` raised otherwise); outside it (``repro=lax`` or
    ``off``) also the host's own CPU (``host x86_64/avx512``), so a reader whose outputs differ from the stored
    ones can see why. Under ``make paper`` (``$LMCNB_RUNLOG_DIR`` set) the choice is also filed in the run log
    (:mod:`lmcnb.infra.runlog`), whence the runner's summary names the device.

    Args:
        seed: seed for ``random``, NumPy and torch.
        profile: ``"quick"``, ``"paper"``, ``"full"`` or ``"smoke"``; default :func:`get_profile`.
        threads: torch intra-op threads; default in the quick and smoke profiles ``$OMP_NUM_THREADS`` or 2 (the
            CI machine has 2 cores), torch's own default in the paper and full profiles.
        deterministic: use deterministic cuDNN/cuBLAS algorithms on CUDA.
        verbose: print the one-line summary (chapters tag that cell ``nbval-ignore-output``).
    """
    global _current
    prof = validate_profile(profile) if profile is not None else get_profile()
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads is None:
        threads = _quick_threads() if prof in ("quick", "smoke") else torch.get_num_threads()
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(threads)
    check_reproducibility()
    seed_everything(seed)
    device = default_device()
    if device.type == "cuda" and deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    _current = Setup(profile=prof, device=device, seed=int(seed), threads=threads)
    runlog.log("setup", profile=prof, device=str(device), device_name=device_name(device), threads=threads)
    if verbose:
        print(_current)
        if "google.colab" in sys.modules and device.type != "cuda":
            print("No GPU: in Colab choose Runtime > Change runtime type > GPU for the paper profile.")
    return _current


def current() -> Setup:
    """The last :func:`setup` result; without one, the environment's profile and device (nothing is seeded)."""
    if _current is not None:
        return _current
    return Setup(profile=get_profile(), device=default_device(), seed=0, threads=torch.get_num_threads())


_UNSET: Any = object()


def _caller() -> str:
    """``file:line`` of the code that called :func:`choose` (a notebook cell's is ``<ipython-input-…>`` or the
    kernel's cell file), for error messages."""
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def choose(quick: T, paper: T, profile: str | None = None, *, smoke: T = _UNSET, full: T = _UNSET) -> T:
    """Pick the value for the active profile (or ``profile``): ``choose(quick=64, paper=4096, smoke=8)``.

    ``full`` is the papers' own size for the opt-in ``full`` profile; without it ``full`` takes ``paper``:
    ``choose(quick=(1,), paper=(1, 2, 4), smoke=(1,), full=(16,))``. ``smoke`` is the toy size of the ``smoke``
    profile (the paper code path at a size that runs in seconds on CPU); it has no default: in the smoke profile
    a call without it raises ``ValueError`` naming the call (``tools/nblint.py`` requires it in every chapter)."""
    prof = validate_profile(profile) if profile is not None else (current().profile)
    if prof == "quick":
        return quick
    if prof == "smoke":
        if smoke is _UNSET:
            raise ValueError(f"choose(quick={_short(quick)}, paper={_short(paper)}) at {_caller()} has no smoke= "
                             "value: the smoke profile runs the paper code path at toy sizes, so every choose() "
                             "call states one (choose(quick=..., paper=..., smoke=...))")
        return smoke
    return full if prof == "full" and full is not _UNSET else paper


def require(profile: str) -> None:
    """Stop a paper-only cell outside its profile: raise ``RuntimeError`` unless the active profile is ``profile``
    (``require("paper")`` also lets ``full`` and ``smoke`` through: the paper profile at full and at toy size).

    Paper-only cells are tagged ``skip-execution`` and ``nbval-skip``, so the book build and CI never run them; a
    reader who runs a chapter top to bottom in Jupyter ignores tags, and this guard keeps such a cell from starting
    hours of CPU work or a download in the quick profile.
    """
    wanted = validate_profile(profile)
    active = current().profile
    if active != wanted and not (wanted == "paper" and active in PAPER_PROFILES):
        raise RuntimeError(f"this cell runs in the {wanted!r} profile only (active profile: {active!r}); set "
                           f"LMCNB_PROFILE={wanted} before starting the kernel (a CUDA GPU selects 'paper'), or run "
                           f"the chapter headless with `make paper`")


def progress(iterable: Any, **kwargs: Any) -> Any:
    """Wrap ``iterable`` in a tqdm progress bar in the paper, full and smoke profiles only (never in quick: stderr
    breaks nbval)."""
    if current().profile not in PAPER_PROFILES:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        return iterable
    try:  # a widget bar in Jupyter / Colab; without ipywidgets tqdm.auto would warn and fall back to text anyway
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        pass
    return tqdm(iterable, **kwargs)
