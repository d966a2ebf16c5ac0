# Maintainers' commands. `make test` and `make demo` set up .venv themselves (python3 and git suffice).
SHELL := bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_WORKERS ?= auto

.PHONY: setup wheel release check test test-under-load lint format demo snapshots lock settings-docs fuzz bench clean

# Every distribution of the maintainers' environment comes from requirements-dev.lock, with hashes.
$(VENV)/.installed: pyproject.toml requirements-dev.lock nexus-ai-platform/pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PYTHON) -m pip install --quiet --no-deps -e .
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e nexus-ai-platform
	touch $@

# setup also builds the platform wheel (dist/), which rendered services install where no index has it
setup: $(VENV)/.installed
	$(PYTHON) -m devtools.wheel

# The nexus-ai-platform wheel, reproducibly into dist/ (the same commit gives the same bytes)
wheel: $(VENV)/.installed
	$(PYTHON) -m devtools.wheel

# Cut release vVERSION (docs/updating.md, "Releases"), in a clean checkout after `make setup`: checks that the
# release names its version, builds the wheel, dates the CHANGELOG section, commits, tags; pushes nothing.
release:
	$(PYTHON) -m devtools.release $(VERSION)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# ruff fix and format: this repository, and the template's plain Python files (with a service's settings)
format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(PYTHON) -m devtools.format_template

# The inner loop (about a minute): lint, types, the platform library's tests in process, one render.
check: lint
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow and (platform or check)" $(PYTEST_ARGS)

# Everything, what CI runs (tests/README.md lists the tiers)
test: lint
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# make test RUNS times in a row (default 5; over an hour) on a fresh clone of HEAD while a CPU burner
# keeps every core busy; stops at the first failure. Needs only python3, git and PyPI for the clone's .venv.
RUNS ?= 5
test-under-load:
	python3 -m devtools.under_load --runs $(RUNS) --pytest-args "$(PYTEST_ARGS)"

# Render a service with default answers into .demo/ and serve it on http://127.0.0.1:9000
demo: setup
	$(PYTHON) -m devtools.demo

# Refresh tests/snapshots/ after an intended template change; review the diff before committing.
snapshots: setup
	$(PYTHON) -m tests.snapshots

# Refresh requirements-dev.lock and template/requirements.lock.jinja after changing a pin (needs PyPI).
lock: setup
	$(PYTHON) -m tests.locks

# Rewrite the generated settings documentation (.env.example, README, docs tables) from the descriptions in
# nexus_platform's PlatformSettings; see docs/settings.md.
settings-docs: setup
	$(PYTHON) -m tests.settings_docs

# The benchmarks (about 30 minutes; need wrk): the service against its peers, the wrapper's proxy path and the
# gateway against LiteLLM's proxy; results in bench/results/, BENCH_ARGS=--update-docs to publish
bench: setup
	$(PYTHON) -m bench $(BENCH_ARGS)
	$(PYTHON) -m bench.proxy $(BENCH_ARGS)
	$(PYTHON) -m bench.gateway $(BENCH_ARGS)

# A long property-based fuzz run (make test runs a bounded one); FUZZ_ARGS go to schemathesis run.
fuzz: setup
	$(PYTHON) -m devtools.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache .mypy_cache dist
