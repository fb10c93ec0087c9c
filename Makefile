# listgate — `make run` starts everything on the embedded default, `make test` runs the suite.
# `make install` is the idempotent step both use: it creates .venv when missing and
# reinstalls only when pyproject.toml changed (a stamp file remembers the last install).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.listgate-installed
PYTEST_ARGS ?=

.PHONY: help install run test lint-imports bench bench-quick soak soak-reliability clean distclean

help:
	@echo "make run          install if needed, then start listgate (SMTP 127.0.0.1:2525, web http://127.0.0.1:8080)"
	@echo "make test         install if needed, then check the import contracts and run the whole test suite"
	@echo "make install      create .venv and install listgate with its test dependencies (idempotent)"
	@echo "make bench        run the benchmark (bench-quick: a short run; soak: a long run)"
	@echo "make soak-reliability  long fault/fuzz/security runs, writes docs/reliability.md (part of make soak)"
	@echo "make clean        remove caches and build output (keeps .venv and your data in ./var)"
	@echo "make distclean    clean, and remove .venv too"

install: $(STAMP)

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: python3.11 not found (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: $(PYTHON) is older than Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: cannot create $(VENV) (Debian: apt-get install python3-venv)" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

run: install
	$(BIN)/listgate up

lint-imports: install
	$(BIN)/lint-imports

test: install lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

define need_bench
	@test -d bench || { echo "make $@: bench/ is missing — the benchmark has not been written yet" >&2; exit 1; }
endef

bench: install
	$(need_bench)
	$(BIN)/python -m bench

bench-quick: install
	$(need_bench)
	$(BIN)/python -m bench --quick

soak: soak-reliability
	$(need_bench)
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
	SOAK=1 $(BIN)/python -m pytest --timeout 3600 $(PYTEST_ARGS) \
		"tests/integration/test_worker_delivery.py::test_sigkill_mid_fanout_then_restart_sends_each_copy_once" || rc=1; \
	if $(BIN)/python -m tests.fuzz.atheris_ingest -atheris_runs=$(ATHERIS_RUNS) -artifact_prefix=test-artifacts/ >test-artifacts/atheris.log 2>&1; \
	then at="$(ATHERIS_RUNS) runs, no crash"; else at="CRASHED, see test-artifacts/atheris.log"; rc=1; fi; \
	$(BIN)/python -m tests.faults.report test-artifacts/reliability.jsonl docs/reliability.md "$$at" || rc=1; \
	echo "make soak-reliability: docs/reliability.md written"; exit $$rc

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis test-artifacts bench/out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
