# The two set-up commands of the README:
#   make run   -> serve config.example.yaml (embedded SQLite queue, log sink, no secrets)
#   make test  -> install, then the test suite, ruff and mypy --strict
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
LINTED = notirouter plugins tests $(wildcard bench)
# The chat services' own renderers (Node.js), for the conformance tests.
RENDERERS = tests/renderers

.PHONY: run test lint renderers bench clean

$(BIN)/notirouter: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("notirouter needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/notirouter tests/example_plugin/pyproject.toml tests/example_plugin/notirouter_jsonl/__init__.py
	$(BIN)/pip install --quiet -e '.[test,postgres]' ./tests/example_plugin
	touch $@

run: $(BIN)/notirouter
	$(BIN)/notirouter serve -c config.example.yaml

lint: $(VENV)/.test-deps
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy notirouter plugins

# npm ci from the committed lock, again only when the lock changes. Without npm the renderer
# tests skip with a printed reason (and fail in CI, which has Node.js).
$(RENDERERS)/node_modules/.installed: $(RENDERERS)/package.json $(RENDERERS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(RENDERERS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "note: npm not found: the service renderer tests (tests/renderers) will be skipped"; \
	fi

renderers: $(RENDERERS)/node_modules/.installed

test: lint renderers
	$(BIN)/pytest -q -n 3 --dist loadfile

# notirouter against its references in one run (README "Benchmark"): make bench, make bench
# QUICK=1 (a few hundred events, the smoke test's path), make bench ARGS='--only sqlite,seed'.
$(VENV)/.bench-deps: $(VENV)/.test-deps
	$(BIN)/pip install --quiet -e '.[test,postgres,bench]'
	touch $@

bench: $(VENV)/.bench-deps
	$(BIN)/python bench/compare.py $(if $(QUICK),--quick) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info var $(RENDERERS)/node_modules
