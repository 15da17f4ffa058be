# One command per job; CI (.ci/run) calls the same targets.
#   make test [PYTEST_ARGS='-k foo -x'] [PYTEST_XDIST=0|3|auto]   make lint   make fmt
#   make bench   make demo
#   make bench-http (end-to-end req/s against each framework's usual auth library; installs wrk)
#   make hardening (docs/hardening.md)    make fuzz [FUZZ_SECONDS=600]
#   make compat (core suite on the lowest and newest allowed redis-py, hiredis, PyJWT, msgspec;
#                the Django suites on the lowest Django and DRF: make compat-django)
#   make clean (build artefacts)          make distclean (also the venv)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-installs only when pyproject.toml is newer than this stamp.
STAMP := $(VENV)/.sessionstore-dev-installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` and `make compat` (the tests mostly wait on servers and
# subprocesses); PYTEST_XDIST=0 runs in one process without xdist. Tests go to the workers
# one at a time, a few modules whole (tests/conftest.py, ONE_WORKER).
PYTEST_XDIST ?= 3
XDIST_ARGS = $(if $(filter 0,$(PYTEST_XDIST)),-p no:xdist,-n $(PYTEST_XDIST))
LINT_PATHS := sessionstore tests benchmarks hardening fuzz

.PHONY: install test compat compat-lowest compat-newest compat-django lint fmt bench bench-http demo \
	hardening fuzz clean distclean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

# The dependency ranges of pyproject.toml, at both ends: .venv-lowest pinned by
# .ci/lowest.txt, and the dev venv upgraded to the newest allowed; the core suite on each.
COMPAT_TESTS ?= tests/test_store.py tests/test_connect.py tests/test_durability.py \
	tests/test_loops.py tests/test_compat.py tests/test_pool_busy.py
COMPAT_SHOW = python -m pip list --disable-pip-version-check 2>/dev/null \
	| grep -iE '^(redis|hiredis|pyjwt|msgspec) '
compat: compat-lowest compat-newest compat-django

compat-lowest:
	$(PYTHON) -m venv .venv-lowest
	.venv-lowest/bin/python -m pip install --quiet --disable-pip-version-check \
		-c .ci/lowest.txt -e '.[test]'
	.venv-lowest/bin/$(COMPAT_SHOW)
	.venv-lowest/bin/python -m pytest -q -p no:cacheprovider $(XDIST_ARGS) $(COMPAT_TESTS)

compat-newest: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade \
		--upgrade-strategy eager -e '.[test]'
	$(VENV)/bin/$(COMPAT_SHOW)
	$(PY) -m pytest -q -p no:cacheprovider $(XDIST_ARGS) $(COMPAT_TESTS)

# The django extra's lower ends (Django 4.2, DRF 3.14; the dev venv has the newest).
DJANGO_TESTS ?= tests/test_django.py tests/test_django_sessions.py tests/test_django_gunicorn.py
compat-django:
	$(PYTHON) -m venv .venv-django-lowest
	.venv-django-lowest/bin/python -m pip install --quiet --disable-pip-version-check \
		-e '.[test]' 'django==4.2.*' 'djangorestframework==3.14.*'
	.venv-django-lowest/bin/python -m pip list --disable-pip-version-check 2>/dev/null \
		| grep -iE '^(django|djangorestframework) '
	.venv-django-lowest/bin/python -m pytest -q -p no:cacheprovider $(XDIST_ARGS) $(DJANGO_TESTS)

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy --strict $(LINT_PATHS)

fmt: $(STAMP)
	$(PY) -m ruff check --select I --fix $(LINT_PATHS)
	$(PY) -m ruff format $(LINT_PATHS)

bench: $(STAMP)
	$(PY) -m benchmarks

# End-to-end: uvicorn/gunicorn servers under Debian's wrk (~5 min; BENCH_HTTP_ARGS='--rounds 5').
BENCH_HTTP_ARGS ?=
bench-http: $(STAMP)
	command -v wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m benchmarks.http $(BENCH_HTTP_ARGS)

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
	rm -rf $(VENV) .venv-lowest .venv-django-lowest
