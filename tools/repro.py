"""The project's one reproducibility environment (``tools/repro.env``) and the test mode a host can run.

Stored notebook outputs are compared bit for bit by strict nbval. That holds only where every library that picks
its kernels by CPU picks the same ones (PyTorch's ATen, oneDNN, MKL, OpenBLAS, numpy) and every thread count is
fixed, so ``tools/repro.env`` pins them to the x86-64 AVX2 baseline, and MKL to its vendor-neutral COMPATIBLE
branch (on AMD, MKL ignores its Intel ISA branches). This module is the only reader of that file:

- the Makefile builds ``RUN_ENV`` from ``python tools/repro.py env`` (standard library only: it runs before the
  virtual environment exists), and ``make test`` asks ``python tools/repro.py mode`` which mode this host gets;
- ``tools/refresh_outputs.py`` and ``tools/run_chapters.py`` call :func:`apply`.

Modes of ``make test``:

``strict``
    x86-64 with AVX2 and FMA, and the pinned builds of torch, numpy and scipy: every chapter must reproduce its
    stored outputs exactly (``--nbval``), under the pins.
``lax``
    anywhere else (ARM / Apple silicon, an x86 CPU without AVX2, another torch build): every chapter still runs
    with all its verification asserts, but stored outputs are not compared (``--nbval-lax``); the CPU pins are
    left out (they name x86 kernels). Forced with ``make test NBVAL=lax``; refused under CI (``CI=true``).

Usage: ``python tools/repro.py env [--lax]`` prints the arguments for ``env(1)``;
``python tools/repro.py mode [auto|strict|lax]`` prints the mode on stdout and one line saying why on stderr.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

ENV_FILE = Path(__file__).with_name("repro.env")
REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
#: Variables that name x86 kernels: applied in strict mode only.
ISA_PINS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")
#: The variable that tells ``lmcnb.setup`` to verify the pinned environment inside each chapter's kernel.
MODE_VAR = "LMCNB_REPRO"
MODES = ("strict", "lax")
#: The platform the stored outputs were produced on (besides the pins in ``repro.env``).
REFERENCE_CPU_FLAGS = ("avx2", "fma")
REFERENCE_MACHINES = ("x86_64", "amd64")
REFERENCE_TORCH_BUILD = "cpu"  # the local version tag of the pinned torch wheel (torch==X+cpu)
PINNED_PACKAGES = ("torch", "numpy", "scipy")

_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def load(path: Path = ENV_FILE) -> tuple[dict[str, str], tuple[str, ...]]:
    """``(sets, unsets)`` from ``repro.env``: variables to set (in file order) and variables to remove.

    Raises ``ValueError`` naming the line for anything that is not ``NAME=value`` or ``unset NAME``."""
    sets: dict[str, str] = {}
    unsets: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("unset "):
            name = line[len("unset "):].strip()
            if not _NAME.fullmatch(name):
                raise ValueError(f"{path.name}:{number}: bad variable name in {raw!r}")
            unsets.append(name)
            continue
        name, sep, value = line.partition("=")
        if not sep or not _NAME.fullmatch(name) or not value or re.search(r"[\s'\"$`\\]", value):
            raise ValueError(f"{path.name}:{number}: expected NAME=value (no spaces or quotes) or 'unset NAME', "
                             f"got {raw!r}")
        if name in sets:
            raise ValueError(f"{path.name}:{number}: {name} is set twice")
        sets[name] = value
    both = set(sets) & set(unsets)
    if both:
        raise ValueError(f"{path.name}: {sorted(both)} both set and unset")
    return sets, tuple(unsets)


def pins(mode: str = "strict", path: Path = ENV_FILE) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ``(sets, unsets)`` of ``mode``: strict is the whole file; lax drops :data:`ISA_PINS` and sets
    ``LMCNB_REPRO=lax`` (threads, profile and hash seed stay pinned)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    sets, unsets = load(path)
    missing = [name for name in (*ISA_PINS, MODE_VAR) if name not in sets]
    if missing:
        raise ValueError(f"{path.name} does not set {missing}")
    if mode == "lax":
        sets = {k: v for k, v in sets.items() if k not in ISA_PINS}
        sets[MODE_VAR] = "lax"
    return sets, unsets


def apply(environ: Mapping[str, str], mode: str = "strict") -> dict[str, str]:
    """A copy of ``environ`` with the pinned environment of ``mode`` applied (unsets removed, pins set)."""
    sets, unsets = pins(mode)
    env = {k: v for k, v in environ.items() if k not in unsets}
    env.update(sets)
    return env


def env_args(mode: str = "strict") -> list[str]:
    """The arguments that make ``env(1)`` apply the pinned environment: ``-u NAME`` ... then ``NAME=value`` ..."""
    sets, unsets = pins(mode)
    return [a for name in unsets for a in ("-u", name)] + [f"{k}={v}" for k, v in sets.items()]


def _cpuinfo(key: str, text: str | None = None) -> str | None:
    """The first ``key : value`` of ``text`` (default: ``/proc/cpuinfo``; None if absent or unreadable)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def host_fingerprint(cpuinfo: str | None = None) -> str:
    """One line naming this machine's CPU: vendor, model name, family/model, widest vector extension, CPU count
    (``AuthenticAMD AMD EPYC (family 25, model 17), x86_64/avx512, 2 CPUs``); ``cpuinfo`` replaces
    ``/proc/cpuinfo`` (for tests). Which kernels a library picks depends on the vendor too (MKL dispatches Intel
    and other CPUs differently), so a test log names it."""
    vendor, name = _cpuinfo("vendor_id", cpuinfo), _cpuinfo("model name", cpuinfo)
    family, model = _cpuinfo("cpu family", cpuinfo), _cpuinfo("model", cpuinfo)
    cpu = " ".join(x for x in (vendor, name) if x) or "unknown CPU"
    if family is not None and model is not None:
        cpu += f" (family {family}, model {model})"
    return f"{cpu}, {host_description()}, {os.cpu_count()} CPUs"


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
        if m and m.group(1).lower() in PINNED_PACKAGES:
            found[m.group(1).lower()] = m.group(2)
    return found


def host_description() -> str:
    """One phrase for this machine: architecture and its widest x86 vector extension, if any."""
    machine = platform.machine() or "unknown"
    flags = _cpu_flags()
    if machine.lower() not in REFERENCE_MACHINES or flags is None:
        return machine
    widest = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    return f"{machine}/{widest}"


def host_problems(flags: set[str] | None = None, machine: str | None = None,
                  versions: Mapping[str, str] | None = None) -> list[str]:
    """Why this host cannot reproduce the stored outputs bit for bit (empty: it can). Arguments override what is
    detected (for tests): CPU ``flags``, ``machine`` (``platform.machine()``), installed package ``versions``."""
    machine = platform.machine() if machine is None else machine
    problems = []
    if machine.lower() not in REFERENCE_MACHINES:
        problems.append(f"the CPU is {machine or 'unknown'}, not x86-64")
    else:
        flags = _cpu_flags() if flags is None else flags
        if flags is None:
            problems.append("the CPU's features cannot be read (no /proc/cpuinfo)")
        else:
            lacking = [f for f in REFERENCE_CPU_FLAGS if f not in flags]
            if lacking:
                problems.append(f"the CPU lacks {'/'.join(lacking)}")
    pinned = _pinned_versions()
    if versions is None:
        versions = {}
        for name in PINNED_PACKAGES:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
    for name in PINNED_PACKAGES:
        want = pinned.get(name)
        have = versions.get(name, "not installed")
        if name == "torch" and want is not None:
            want = f"{want}+{REFERENCE_TORCH_BUILD}"
        if want is not None and have != want:
            problems.append(f"{name} is {have}, not {want}")
    return problems


def decide(wanted: str = "auto", problems: list[str] | None = None, ci: bool | None = None) -> tuple[str, str]:
    """``(mode, message)`` for ``make test``: ``wanted`` is ``auto``, ``strict`` or ``lax``.

    Raises ``SystemExit`` with a message when the wanted mode cannot be had: strict on a host that cannot
    reproduce, or lax (forced or detected) under CI."""
    if wanted not in ("auto", *MODES):
        raise SystemExit(f"repro: NBVAL must be auto, strict or lax, got {wanted!r}")
    problems = host_problems() if problems is None else problems
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes") if ci is None else ci
    reference = "x86-64/AVX2 with " + ", ".join(f"{n}=={v}" for n, v in sorted(_pinned_versions().items()))
    if wanted == "lax" or (wanted == "auto" and problems):
        if ci:
            why = "; ".join(problems) if problems else "NBVAL=lax was asked for"
            raise SystemExit(f"repro: CI must compare stored outputs (strict nbval), but {why}")
        why = "; ".join(problems) if problems else "NBVAL=lax was asked for"
        return "lax", (f"make test: outputs were produced on {reference}; this machine is {host_description()} "
                       f"({why}): running every chapter and its verification asserts, without comparing "
                       f"stored outputs (nbval-lax)")
    if problems:
        raise SystemExit("repro: strict mode cannot reproduce the stored outputs here: " + "; ".join(problems)
                         + " (use NBVAL=lax)")
    return "strict", (f"make test: strict mode: this machine ({host_description()}) runs the pinned "
                      f"environment of tools/repro.env, so every stored output must reproduce exactly")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_env = sub.add_parser("env", help="print the env(1) arguments of the pinned environment")
    p_env.add_argument("--lax", action="store_true", help="the lax mode's environment (no CPU pins)")
    p_mode = sub.add_parser("mode", help="print the nbval mode this host gets (strict or lax)")
    p_mode.add_argument("wanted", nargs="?", default="auto", help="auto (default), strict or lax")
    args = parser.parse_args(argv)
    if args.command == "env":
        print(" ".join(env_args("lax" if args.lax else "strict")))
        return 0
    mode, message = decide(args.wanted)
    print(message, file=sys.stderr, flush=True)
    print(mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
