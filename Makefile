# listgate — `make run` starts everything on the embedded default, `make test` runs the suite.
# Both create .venv when missing and install from the hash-checked lock files in requirements/
# (generated from pyproject.toml's ranges by `make lock`): `make run` only what running needs
# (requirements/run.txt), `make test` and `make install` the test tools too (requirements/test.txt).
# Each reinstalls only when its lock or pyproject.toml changed (stamp files remember); pip says
# only errors (-qq): a first run prints a few lines, not one per package.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
RUN_LOCK := requirements/run.txt
TEST_LOCK := requirements/test.txt
TOOLS_LOCK := requirements/tools.txt
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
TOOLS := .tools
PYTEST_ARGS ?=
# The project itself, once its locked dependencies (and build tools) are in: nothing unchecked is fetched.
INSTALL_PROJECT := PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
COMPILE := $(TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: help install install-run run test lint lint-imports lock audit bench bench-quick soak soak-reliability clean distclean

help:
	@echo "make run          install if needed, then start listgate (SMTP 127.0.0.1:2525, web http://127.0.0.1:8080)"
	@echo "make test         install if needed, run the guardrails (make lint), then the whole suite with branch coverage"
	@echo "                  in TEST_WORKERS=4 processes (serially: make test PYTEST_ARGS=-n0)"
	@echo "make lint         ruff (lint and format), mypy and the import contracts"
	@echo "make install      create .venv and install listgate with its test dependencies (idempotent)"
	@echo "make lock         regenerate requirements/*.txt (hashes) from pyproject.toml's ranges"
	@echo "make audit        check the locked packages for known vulnerabilities (says so when it cannot)"
	@echo "make bench        run the benchmark (bench-quick: a short run; soak: a long run)"
	@echo "make soak-reliability  long fault/fuzz/security runs, writes docs/reliability.md (part of make soak)"
	@echo "make clean        remove caches and build output (keeps .venv and your data in ./var)"
	@echo "make distclean    clean, and remove .venv too"

install: $(TEST_STAMP)

install-run: $(RUN_STAMP)

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: python3.11 not found (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: $(PYTHON) is older than Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: cannot create $(VENV) (Debian: apt-get install python3-venv)" >&2; exit 1; }

$(RUN_STAMP): pyproject.toml $(RUN_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -qq --require-hashes -r $(RUN_LOCK)
	$(INSTALL_PROJECT)
	@touch $@

# The test lock pins the run lock's versions plus the test tools: it satisfies `make run` too.
$(TEST_STAMP): pyproject.toml $(TEST_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -qq --require-hashes -r $(TEST_LOCK)
	$(INSTALL_PROJECT)
	@touch $@ $(RUN_STAMP)

run: install-run
	$(BIN)/listgate up

$(TOOLS)/.installed: $(TOOLS_LOCK)
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -qq --require-hashes -r $(TOOLS_LOCK)
	@touch $@

lock: $(TOOLS)/.installed
	$(COMPILE) -o $(RUN_LOCK) pyproject.toml requirements/build.in
	$(COMPILE) --extra test -c $(RUN_LOCK) -o $(TEST_LOCK) pyproject.toml requirements/build.in
	$(COMPILE) -o $(TOOLS_LOCK) requirements/build.in requirements/tools.in

audit: $(TOOLS)/.installed
	$(TOOLS)/bin/python scripts/audit.py $(TEST_LOCK) $(TOOLS_LOCK)  # test.txt holds run.txt's pins

lint-imports: install
	$(BIN)/lint-imports

# The guardrails, over the whole tree with nothing exempted (README "Development").
lint: install lint-imports
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/mypy

# Coverage of the code the suite runs in its own process (servers the tests start as
# subprocesses are not measured); the floor is in pyproject.toml's [tool.coverage.report].
# The corpus loops and the longest model searches trace only their first mails or examples and
# run the rest with the tracer paused (tests/support/tracer.py): under it they cost twice the CPU.
# The 25 slowest tests are listed at the end (the suite has to stay well under 20 minutes).
# The tests run in TEST_WORKERS processes (pytest-xdist), each with its own PostgreSQL, Redis and
# Chromium: most of the suite waits (servers starting, mail arriving), so more processes than
# cores pay. Serially: `make test PYTEST_ARGS=-n0` (a later -n wins).
# Tests marked long(seconds) are handed out first, dealt evenly to the processes
# (tests/support/longfirst.py): the run does not end waiting on one long test handed out late.
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: each of the suite's Python
# processes (the xdist workers, the services and commands the tests start) would otherwise
# compile the project again, and pytest rewrite every test module's assertions again.
TEST_WORKERS ?= 4
test: install lint
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --cov --cov-report=term --durations=25 $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

# The model-based tests' long search (SOAK=1: tests/support/searches.py), then the long benchmark.
soak: soak-reliability
	SOAK=1 $(BIN)/python -m pytest --timeout 3600 $(PYTEST_ARGS) tests/unit/listgate/test_moderation_state.py \
		tests/integration/test_subscription_model.py tests/integration/test_thread_roots_model.py \
		"tests/unit/listgate/test_threads.py::test_the_forest_does_not_depend_on_arrival_order" \
		"tests/integration/test_threading_postgres.py::test_the_forest_does_not_depend_on_arrival_order_on_postgresql"
	$(BIN)/python -m bench --soak

# The long versions of the fault, fuzz and security tests (SOAK=1), the atheris fuzzer, and
# docs/reliability.md from their figures (written even when a test fails, then the target fails).
ATHERIS_RUNS ?= 10000
soak-reliability: install
	$(BIN)/python -m pip install --quiet -e '.[test,soak]'
	@mkdir -p test-artifacts && rm -f test-artifacts/reliability.jsonl
	@rc=0; \
	SOAK=1 LISTGATE_RELIABILITY_OUT=$(CURDIR)/test-artifacts/reliability.jsonl $(BIN)/python -m pytest -m soak \
		--timeout 3600 $(PYTEST_ARGS) tests/faults tests/integration || rc=1; \
	SOAK=1 LISTGATE_RELIABILITY_OUT=$(CURDIR)/test-artifacts/reliability.jsonl $(BIN)/python -m pytest --timeout 3600 $(PYTEST_ARGS) \
		"tests/integration/test_worker_delivery.py::test_sigkill_mid_fanout_then_restart_loses_no_copy" || rc=1; \
	if $(BIN)/python -m tests.fuzz.atheris_ingest -atheris_runs=$(ATHERIS_RUNS) -artifact_prefix=test-artifacts/ >test-artifacts/atheris.log 2>&1; \
	then at="$(ATHERIS_RUNS) runs, no crash"; else at="CRASHED, see test-artifacts/atheris.log"; rc=1; fi; \
	$(BIN)/python -m tests.faults.report test-artifacts/reliability.jsonl docs/reliability.md "$$at" || rc=1; \
	echo "make soak-reliability: docs/reliability.md written"; exit $$rc

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis test-artifacts bench/out .mypy_cache .ruff_cache .coverage .coverage.*
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(TOOLS)
