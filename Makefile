# lmcnb: the executable book on linear mode connectivity modulo permutation.
#
#   make book      create .venv (if needed), build the HTML book into _build/html (stored outputs, no execution)
#   make test      pytest over tests/ and nbval over every chapter in book/ (the CI command; strict where the
#                  host can reproduce the stored outputs, else lax: see tools/repro.py; NBVAL=strict|lax forces)
#   make outputs   re-execute every chapter in the quick profile, store the outputs, regenerate the status page
#                  (book/status.md and each chapter's at-a-glance box), then check them with nbval
#   make paper     run chapters headless in the paper profile into OUT (default runs/paper), never into book/
#   make smoke     every cell of every chapter at the smoke profile's toy sizes, offline on toy data (SMOKE_OUT)
#   make data      download + checksum the paper profile's datasets into LMCNB_DATA_DIR (~/.cache/lmcnb/data)
#   make bench     run the benchmarks (performance tables)
#   make mutation  mutation testing of the toolkit modules with mutmut (MODULES=..., about 10 min on 2 cores)
#   make clean     remove build outputs and caches;  make distclean  also removes .venv
#
# Variables: PYTHON (interpreter that creates .venv, default python3), VENV (default .venv),
# CHAPTERS (notebooks for `make outputs`, default all of book/*.ipynb), JOBS (parallel chapters/workers, default 2),
# VERIFY=0 (skip the nbval check after `make outputs`), BENCH (script for `make bench`), NBVAL (auto, strict, lax),
# PROFILE and OUT for `make paper` (default paper and runs/<profile>; the sweep cache is OUT/cache), ENGINE for
# `make paper` (where sweeps run: serial, processes:N or dask://HOST:PORT; default serial), DRY_RUN=1 (`make paper`
# prints each chapter's GPU budget and the total, runs nothing),
# MODULES for `make mutation` (default every module of tools/mutation.py).

PYTHON ?= python3
VENV ?= .venv
JOBS ?= 2
VERIFY ?= 1
BENCH ?= benchmarks/bench_core.py
CHAPTERS ?= $(sort $(wildcard book/*.ipynb))
PROFILE ?= paper
NBVAL ?= auto
OUT ?= runs/$(PROFILE)
ENGINE ?=
DRY_RUN ?=
MODULES ?=
# The scoreboard renders book/_checks/*.jsonl: `make outputs` refreshes it after any chapter and verifies it too.
SCOREBOARD := $(wildcard book/08_scoreboard.ipynb)

BIN := $(VENV)/bin
VPY := $(BIN)/python
STAMP := $(VENV)/.lmcnb-requirements.stamp
MUTATION_STAMP := $(VENV)/.lmcnb-mutation.stamp

# The environment every check and every stored output is produced in, defined once in tools/repro.env (CPU kernels
# of torch, oneDNN, MKL and OpenBLAS pinned to AVX2, one thread, quick profile, fixed hash seed, MPLBACKEND removed:
# a non-inline backend drops the figures from the outputs). tools/repro.py reads it with the standard library only.
# LAX_ENV is the portable mode's: the same without the x86 CPU pins.
RUN_ENV := env $(shell $(PYTHON) tools/repro.py env)
LAX_ENV := env $(shell $(PYTHON) tools/repro.py env --lax)
NBVAL_OPTS := --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

.DEFAULT_GOAL := help
.PHONY: help venv book test outputs paper smoke data bench mutation clean distclean print-run-env

help:
	@sed -n '3,12p' Makefile | sed 's/^# *//'

# --- environment -------------------------------------------------------------------------------------------------

$(VPY):
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "error: the pinned stack in requirements.txt needs Python >= 3.11; got " + sys.version.split()[0] + " (use make PYTHON=python3.11 ...)")'
	$(PYTHON) -m venv $(VENV)

# Re-installs only when requirements.txt or pyproject.toml changed since the last successful install.
$(STAMP): requirements.txt pyproject.toml | $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(STAMP)

# --- the two set-up commands -------------------------------------------------------------------------------------

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo "The book is in $(CURDIR)/_build/html: open file://$(CURDIR)/_build/html/index.html in a browser."

# strict: every chapter must reproduce its stored outputs (--nbval) under RUN_ENV. lax (a host that cannot reproduce
# them bit for bit, or NBVAL=lax): every chapter still runs with its asserts, outputs are not compared; never in CI.
test: $(STAMP)
	@mode=$$($(VPY) tools/repro.py mode $(NBVAL)) || exit 1; \
	if [ "$$mode" = strict ]; then \
		echo "$(RUN_ENV) $(VPY) -m pytest tests book --nbval $(NBVAL_OPTS) -n $(JOBS) --dist loadscope"; \
		$(RUN_ENV) $(VPY) -m pytest tests book --nbval $(NBVAL_OPTS) -n $(JOBS) --dist loadscope; \
	else \
		echo "$(LAX_ENV) $(VPY) -m pytest tests book --nbval-lax $(NBVAL_OPTS) -n $(JOBS) --dist loadscope"; \
		$(LAX_ENV) $(VPY) -m pytest tests book --nbval-lax $(NBVAL_OPTS) -n $(JOBS) --dist loadscope; \
	fi

# The environment RUN_ENV gives a command, one NAME=value a line (tests/test_repro.py compares it with the tools').
print-run-env:
	@$(RUN_ENV) env

# --- maintenance -------------------------------------------------------------------------------------------------

outputs: $(STAMP)
	$(RUN_ENV) $(VPY) tools/refresh_outputs.py --jobs $(JOBS) $(CHAPTERS)
	$(VPY) tools/status_page.py
ifeq ($(VERIFY),1)
	$(RUN_ENV) $(VPY) -m pytest --nbval $(NBVAL_OPTS) -n $(JOBS) --dist loadscope $(sort $(CHAPTERS) $(SCOREBOARD)) \
		tests/test_scoreboard.py::test_stored_checks_equal_stored_records \
		tests/test_scoreboard.py::test_every_record_file_has_a_chapter
endif

# Headless runs at paper scale (GPU machines, Colab): executed notebooks, figures and check records go to OUT;
# rerunning the same command resumes from the sweep cache in OUT/cache. See README, "Paper-scale runs".
paper: $(STAMP)
	env -u MPLBACKEND PYTHONHASHSEED=0 $(VPY) tools/run_chapters.py --profile $(PROFILE) --out $(OUT) \
		$(if $(ENGINE),--engine $(ENGINE)) $(if $(DRY_RUN),--dry-run) $(CHAPTERS)

# The smoke profile: the paper profile's code paths (every cell, paper-only ones included) at the chapters'
# choose(..., smoke=...) toy sizes on CPU, reading a toy data root in the real MNIST/CIFAR-10 formats offline
# (LMCNB_OFFLINE=1); verdicts recorded, not enforced; the summary lists every executed cell. Output in SMOKE_OUT.
SMOKE_OUT ?= runs/smoke
smoke: $(STAMP)
	env -u MPLBACKEND PYTHONHASHSEED=0 OMP_NUM_THREADS=1 $(VPY) tools/run_chapters.py --profile smoke --toy-data \
		--out $(SMOKE_OUT) $(CHAPTERS)

# The datasets of the paper profile (full MNIST, CIFAR-10), checksummed, into the one data root: LMCNB_DATA_DIR
# (environment or `make data LMCNB_DATA_DIR=DIR`; default ~/.cache/lmcnb/data). Standard library only, no venv
# needed: stage an offline GPU machine by copying that folder. See README, "Data".
data:
	$(PYTHON) tools/fetch_data.py $(if $(LMCNB_DATA_DIR),--dir "$(LMCNB_DATA_DIR)")

bench: $(STAMP)
	@test -f $(BENCH) || { echo "error: $(BENCH) does not exist (yet)"; exit 1; }
	env -u MPLBACKEND PYTHONHASHSEED=0 $(VPY) $(BENCH)

# Mutation testing (not part of `make test`): each module of tools/mutation.py against its own unit test file, one
# worker, under nice, in the portable environment; scratch copies and verdicts in .mutation/ (git-ignored; a rerun
# re-tests only what changed). The tool is pinned in requirements-mutation.txt. See README, "Mutation testing".
$(MUTATION_STAMP): requirements-mutation.txt | $(STAMP)
	$(VPY) -m pip install --disable-pip-version-check -r requirements-mutation.txt
	@touch $@

mutation: $(MUTATION_STAMP)
	$(LAX_ENV) nice -n 19 $(VPY) tools/mutation.py --max-children 1 $(MODULES)

clean:
	rm -rf _build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
