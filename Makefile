# Two commands for a fresh clone: `make lab` (the lessons in JupyterLab) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
LINT_PATHS := rollback_lessons tests notebooks benchmarks

.PHONY: lab test lint format bench clean notebooks soak

# The venv's packages are installed by uv (from PyPI, put in the venv by its pip): it
# downloads them at once and resolves in Rust; pip fetched them one by one. On a fresh
# machine (2 cores, no cache, load 10 from other sessions, s44): pip 12 s for itself and
# 320 s (52 CPU s) for '.[test]', uv 14 s to install and 35 s (7 CPU s) for the same
# versions. Where uv cannot be installed (no wheel for the platform), pip does it all.
# Bytecode compiled at install, as pip does by default and uv does only when asked: without
# it every process of the first make test compiled the libraries it imported from source:
# the four xdist workers at once as they collected (49 -> 22 CPU s for the four, s45), then
# kernels, servers and crash trials. Compiling all of site-packages is about 40 CPU s, once.
INSTALL = if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install -q --compile-bytecode \
	    --python $(BIN)/python $(1); \
	  else $(BIN)/python -m pip install -q $(1); fi

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "rollback-lessons needs Python 3.11 or newer; run: make PYTHON=python3.12 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv || echo "uv could not be installed: pip installs the rest"
	$(call INSTALL,--upgrade pip)

$(VENV)/.lab: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e '.[lab]')
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e '.[test]')
	touch $@ $(VENV)/.lab

# JupyterLab reads these settings from the venv: no "Get Jupyter news?" pop-up over a lesson.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

$(LAB_SETTINGS): | $(VENV)/.lab
	mkdir -p $(dir $@)
	printf '%s\n' '{"@jupyterlab/apputils-extension:notification":' \
	  '{"fetchNews": "false", "checkForUpdates": false}}' > $@

# Started as `rollback-lessons lab` starts it (rollback_lessons/lab/launch.py): on 127.0.0.1,
# the kernel's websocket without Nagle's algorithm; here on the repository's own lessons.
lab: $(VENV)/.lab $(LAB_SETTINGS)
	$(BIN)/rollback-lessons lab notebooks --port $(PORT)

# one shell line: make lint runs it, and make test beside pytest (not as a make of its own,
# which `make -n test` would run: a line naming $(MAKE) is run even then)
LINT = $(BIN)/ruff check $(LINT_PATHS) && $(BIN)/ruff format --check $(LINT_PATHS) && \
	$(BIN)/mypy rollback_lessons

lint: $(VENV)/.test
	$(LINT)

format: $(VENV)/.test
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

# Camunda Modeler's lint rules for the BPMN test, on Node (skipped, with a message, without npm).
NODE_MODULES := tests/node/node_modules/.package-lock.json

$(NODE_MODULES): tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the BPMN lint test will be skipped"; fi

# On every core and two more (WORKERS=1 for one process): most of the time of the browser
# halves and the Temporal tests is waiting (on Chromium and JupyterLab, on the server's
# timers): in one process the tests took about 600 s of wall time for 330 s of CPU (s37,
# Chromium's renderers included), so three workers on two cores left a core idle much of
# the run and could not end before 600 / 3 = 200 s; four can end at 150 s. `--dist
# loadfile` is the switch for the scheduler in the root conftest.py
# (pytest_xdist_make_scheduler), which takes loadfile's place: not a whole file to a worker,
# as xdist's loadfile alone does, but each test on its own, except a notebook, a module with
# its own servers (its TOGETHER) and each half of the browser tests, each one unit on one
# worker; the longest units first. The 20 slowest tests are printed at the end, and the 15
# files that used the most CPU (conftest.py), then one line: the wall time of all of make
# test and the CPU time (user+sys) pytest used. make test runs a representative part of the
# costliest checks; make soak runs them all (SOAK=1). Of the costliest sweeps (every single
# fault on Step Functions and on Temporal, Temporal's travel faults, the layout of every
# picture) it runs a third, a different third each run: the header's TEST_SLICE=N says
# which (make test TEST_SLICE=N runs that part again).
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 2 )))
XDIST = $(if $(filter 1,$(WORKERS)),-p no:xdist,-n $(WORKERS) --dist loadfile)
NBVAL = --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# what pytest runs (make test TESTS=tests/test_saga.py: one file, lint beside it as ever)
TESTS ?= tests notebooks
# one test in PARTS of each file, a different part each run (the root conftest.py): make
# test's three minutes on two cores. Every test with PARTS=1 (or TEST_PARTS=1, the name
# pytest's header gives), or where TESTS is given; a PARTS or TEST_PARTS in the environment
# (one exported from a header, or make test's own, for the makes its tests run) counts only
# where TESTS is not given.
ifneq ($(origin PARTS),command line)
PARTS := $(if $(filter command line,$(origin TEST_PARTS)),$(TEST_PARTS),$(if \
	$(filter command line environment,$(origin TESTS)),1,$(or $(PARTS),$(TEST_PARTS),4)))
endif
START := $(shell date +%s)
# the CPU time (user+sys, seconds) of what a shell has run, from its `times` written to a
# file by that shell itself (a pipe or $(...) would ask a fresh subshell): the last line,
# its children's
CPU_SECONDS = awk 'END { split($$1, u, /[ms]/); split($$2, s, /[ms]/); \
	printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'

# Bytecode written (an environment's PYTHONDONTWRITEBYTECODE emptied for make test and make
# soak; __pycache__ is git-ignored): otherwise every process of a run compiles the package
# from source again (the crash trials, CLI runs, kernels: dozens of them) and every worker
# rewrites every test module's asserts again (about 2.5 CPU s each, every run). On a fresh
# clone (no __pycache__), test_crash, test_choreo_crash and test_cli: 10.9 -> 8.0 CPU s.
test soak: export PYTHONDONTWRITEBYTECODE :=

# make lint runs beside pytest, not before it: niced, it takes the CPU pytest leaves idle
# (its workers wait on servers and browsers), so its 1-2 minutes (mypy without a cache, as
# on a fresh clone) no longer come first. Its output is kept in a file and printed after
# pytest's; make test fails if either fails. pytest's own CPU time is counted in a subshell
# of its own (lint's is not in it), under tests/reap.py: the processes that end after their
# parents (Chromium's renderers: about 50 CPU s, which the per-file list cannot see) are
# reaped there and counted, not by init. A background job ignores Ctrl-C: the trap stops
# it and the linter it runs.
test: $(VENV)/.test $(NODE_MODULES)
	@echo "make lint (beside pytest, niced; its output follows pytest's)"
	@nice -n 10 sh -xc '$(LINT)' >$(VENV)/.lint.log 2>&1 & lint=$$!; \
	  trap 'pkill -P $$lint 2>/dev/null; kill $$lint 2>/dev/null; exit 130' INT TERM; \
	  echo "TEST_PARTS=$(PARTS) $(BIN)/python -m pytest $(XDIST) --durations=20 $(NBVAL) $(TESTS)"; \
	  ( TEST_PARTS=$(PARTS) $(BIN)/python tests/reap.py $(BIN)/python -m pytest $(XDIST) --durations=20 $(NBVAL) $(TESTS); \
	    status=$$?; times >$(VENV)/.times; exit $$status ); status=$$?; \
	  cpu=$$($(CPU_SECONDS) $(VENV)/.times); \
	  wait $$lint; lint_status=$$?; \
	  echo "-- make lint (run beside pytest) --"; cat $(VENV)/.lint.log; \
	  [ $$lint_status -eq 0 ] || echo "make lint failed (exit $$lint_status)"; \
	  echo "make test: $$(( $$(date +%s) - $(START) )) s in all (lint and mypy beside pytest);" \
	    "pytest used $$cpu s of CPU (user+sys) on $(WORKERS) workers"; \
	  [ $$status -eq 0 ] && [ $$lint_status -eq 0 ]

bench: $(VENV)/.test
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

notebooks: $(VENV)/.test
	$(BIN)/python tests/notebook_tools.py notebooks/*.ipynb

# The long run: every test and lesson, with all of the costliest checks (SOAK=1: every
# picture under every fault and policy, 16 timed clicks per panel, every event clicked to
# each end of a panel, ten times the examples of the property tests, tests/conftest.py), 300 crash trials (the saga's and the choreography's); then the fault harness, fencing
# and SIGINT trials at length, in one process.
SOAK_ALONE = tests/test_fault_harness.py tests/test_fencing.py tests/test_interrupts.py tests/test_attacks.py

soak: $(VENV)/.test $(NODE_MODULES)
	SOAK=1 SOAK_TRIALS=300 $(BIN)/python -m pytest $(XDIST) --durations=20 $(NBVAL) \
	  tests notebooks $(SOAK_ALONE:%=--ignore=%) -q
	SOAK=1 HARNESS_STEPS=12 FENCING_EXAMPLES=500 SIGINT_TRIALS=40 $(BIN)/python -m pytest -q \
	  $(SOAK_ALONE)
