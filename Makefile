# listgate — `make run` starts everything on the embedded default, `make test` runs the suite.
# `make install` is the idempotent step both use: it creates .venv when missing and
# reinstalls only when pyproject.toml changed (a stamp file remembers the last install).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.listgate-installed
PYTEST_ARGS ?=

.PHONY: help install run test lint-imports bench bench-quick soak clean distclean

help:
	@echo "make run          install if needed, then start listgate (SMTP 127.0.0.1:2525, web http://127.0.0.1:8080)"
	@echo "make test         install if needed, then check the import contracts and run the whole test suite"
	@echo "make install      create .venv and install listgate with its test dependencies (idempotent)"
	@echo "make bench        run the benchmark (bench-quick: a short run; soak: a long run)"
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

soak: install
	$(need_bench)
	$(BIN)/python -m bench --soak

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis test-artifacts bench/out
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
