# One command per job; CI (.ci/run) calls the same targets.
#   make test [PYTEST_ARGS='-k foo -x']   make lint   make fmt   make bench   make demo
#   make hardening (docs/hardening.md)    make fuzz [FUZZ_SECONDS=600]
#   make clean (build artefacts)          make distclean (also the venv)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-installs only when pyproject.toml is newer than this stamp.
STAMP := $(VENV)/.sessionstore-dev-installed
PYTEST_ARGS ?=
LINT_PATHS := sessionstore tests benchmarks hardening fuzz

.PHONY: install test lint fmt bench demo hardening fuzz clean distclean

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

# Races and faults under load on private servers (~3 min); writes docs/hardening.md.
hardening: $(STAMP)
	$(PY) -m hardening --out docs/hardening.md

# A bounded fuzzing pass of the token gate and refresh parser (FUZZ_SECONDS, default 60).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	mkdir -p fuzz/corpus fuzz/crashes
	$(PY) fuzz/fuzz_tokens.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=fuzz/crashes/ fuzz/corpus

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
