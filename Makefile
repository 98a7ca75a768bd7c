# The two set-up commands of the README:
#   make run   -> serve config.example.yaml (embedded SQLite queue, log sink, no secrets)
#   make test  -> install, then the test suite, ruff and mypy --strict
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
LINTED = notirouter plugins tests $(wildcard bench)

.PHONY: run test lint bench clean

$(BIN)/notirouter: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("notirouter needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/notirouter tests/example_plugin/pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,postgres]' ./tests/example_plugin
	touch $@

run: $(BIN)/notirouter
	$(BIN)/notirouter serve -c config.example.yaml

lint: $(VENV)/.test-deps
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy notirouter plugins

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.test-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info var
