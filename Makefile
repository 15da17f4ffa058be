# One command per job; CI (.ci/run) calls the same targets.
#   make test [PYTEST_ARGS='-k foo -x']   make lint   make fmt   make bench   make demo
#   make clean (build artefacts)          make distclean (also the venv)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-installs only when pyproject.toml is newer than this stamp.
STAMP := $(VENV)/.sessionstore-dev-installed
PYTEST_ARGS ?=
LINT_PATHS := sessionstore tests benchmarks

.PHONY: install test lint fmt bench demo clean distclean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy --strict $(LINT_PATHS)

fmt: $(STAMP)
	$(PY) -m ruff check --select I --fix $(LINT_PATHS)
	$(PY) -m ruff format $(LINT_PATHS)

bench: $(STAMP)
	$(PY) -m benchmarks

demo: $(STAMP)
	$(PY) -m sessionstore demo

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
