# lmcnb: the executable book on linear mode connectivity modulo permutation.
#
#   make book      create .venv (if needed), build the HTML book into _build/html (stored outputs, no execution)
#   make test      pytest over tests/ and strict nbval over every chapter in book/ (the CI command)
#   make outputs   re-execute every chapter in the quick profile, store the outputs, then check them with nbval
#   make paper     run chapters headless in the paper profile into OUT (default runs/paper), never into book/
#   make bench     run the benchmarks (performance tables)
#   make clean     remove build outputs and caches;  make distclean  also removes .venv
#
# Variables: PYTHON (interpreter that creates .venv, default python3), VENV (default .venv),
# CHAPTERS (notebooks for `make outputs`, default all of book/*.ipynb), JOBS (parallel chapters/workers, default 2),
# VERIFY=0 (skip the nbval check after `make outputs`), BENCH (script for `make bench`),
# PROFILE and OUT for `make paper` (default paper and runs/<profile>; the sweep cache is OUT/cache).

PYTHON ?= python3
VENV ?= .venv
JOBS ?= 2
VERIFY ?= 1
BENCH ?= benchmarks/bench_core.py
CHAPTERS ?= $(sort $(wildcard book/*.ipynb))
PROFILE ?= paper
OUT ?= runs/$(PROFILE)
# The scoreboard renders book/_checks/*.jsonl: `make outputs` refreshes it after any chapter and verifies it too.
SCOREBOARD := $(wildcard book/08_scoreboard.ipynb)

BIN := $(VENV)/bin
VPY := $(BIN)/python
STAMP := $(VENV)/.lmcnb-requirements.stamp

# The environment every check and every stored output is produced in. MPLBACKEND is removed on purpose:
# a non-inline backend drops the figures from the outputs and breaks nbval.
RUN_ENV := env -u MPLBACKEND -u LMCNB_CACHE_DIR -u LMCNB_RESULTS_DIR LMCNB_PROFILE=quick OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=600

.DEFAULT_GOAL := help
.PHONY: help venv book test outputs paper bench clean distclean

help:
	@sed -n '3,8p' Makefile | sed 's/^# *//'

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

test: $(STAMP)
	$(RUN_ENV) $(VPY) -m pytest tests book $(NBVAL) -n $(JOBS) --dist loadscope

# --- maintenance -------------------------------------------------------------------------------------------------

outputs: $(STAMP)
	$(RUN_ENV) $(VPY) tools/refresh_outputs.py --jobs $(JOBS) $(CHAPTERS)
ifeq ($(VERIFY),1)
	$(RUN_ENV) $(VPY) -m pytest $(NBVAL) -n $(JOBS) --dist loadscope $(sort $(CHAPTERS) $(SCOREBOARD)) \
		tests/test_scoreboard.py::test_stored_checks_equal_stored_records \
		tests/test_scoreboard.py::test_every_record_file_has_a_chapter
endif

# Headless runs at paper scale (GPU machines, Colab): executed notebooks, figures and check records go to OUT;
# rerunning the same command resumes from the sweep cache in OUT/cache. See README, "Paper-scale runs".
paper: $(STAMP)
	env -u MPLBACKEND PYTHONHASHSEED=0 $(VPY) tools/run_chapters.py --profile $(PROFILE) --out $(OUT) $(CHAPTERS)

bench: $(STAMP)
	@test -f $(BENCH) || { echo "error: $(BENCH) does not exist (yet)"; exit 1; }
	env -u MPLBACKEND PYTHONHASHSEED=0 $(VPY) $(BENCH)

clean:
	rm -rf _build .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
