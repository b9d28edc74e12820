# The two set-up commands of the README: `make run` and `make test`.
# Both install exactly the versions in requirements.lock (with their hashes) into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# pip-compile, run from a throwaway environment by `make lock`.
PIP_COMPILE_FLAGS := --quiet --generate-hashes --allow-unsafe --all-build-deps --extra dev \
	--strip-extras --no-emit-index-url --no-emit-find-links --output-file $(LOCK)

.PHONY: run demo screenshots test test-fast coverage lint checks install lock lock-upgrade _compile test-latest clean

# The lock's packages only (pip refuses any package or file whose hash is not in it),
# then callsift itself, built with the locked setuptools; then every numba kernel is
# compiled into its on-disk cache once, so no server or test compiles against a clock.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) .ci/check_lock.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/callsift warm-up
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/callsift serve

# The service on a simulated Kendari-like centre: three weeks replayed through its API,
# then live calls; prints the console's address and a key per role (docs/api.md#demo).
# Starts over each time (only ever the folder it made itself, runs/demo-serve).
demo: $(STAMP)
	$(BIN)/callsift demo --serve --reset

# The README's screenshots from the demo (bench/screenshots.py; a few minutes).
screenshots: $(STAMP) /usr/bin/chromium
	$(BIN)/python bench/screenshots.py

# After a change of the dependencies in pyproject.toml: resolves what changed and keeps
# every other pin. `make lock-upgrade` moves every pin to the newest allowed release.
lock:
	$(MAKE) --no-print-directory _compile COMPILE_EXTRA=

lock-upgrade:
	$(MAKE) --no-print-directory _compile COMPILE_EXTRA=--upgrade

_compile:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet pip-tools
	$(VENV)-lock/bin/pip-compile $(COMPILE_EXTRA) $(PIP_COMPILE_FLAGS) pyproject.toml
	$(PYTHON) .ci/check_lock.py --write
	rm -rf $(VENV)-lock

# ruff, mypy, the layers and the suite with the tools of $(BIN) (the lock's, or test-latest's).
# The suite runs in two passes: the fast layer with line coverage of the three packages
# ([tool.coverage] in pyproject.toml), then the slow, PostgreSQL and browser tests without
# it (tracing costs them 30-55% more time and they mostly drive servers in subprocesses,
# which coverage does not see). Both passes always run; `make coverage` covers the whole
# suite. The marks: tests/conftest.py.
FAST := not slow and not postgres and not browser
COVERAGE := --cov=classifier --cov=training --cov=api --cov-report=term:skip-covered
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile
checks:
	$(BIN)/ruff check callsift.py classifier training api tests bench
	$(BIN)/ruff format --check callsift.py classifier training api tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	rc=0; \
	$(PYTEST) -m "$(FAST)" $(COVERAGE) || rc=$$?; \
	$(PYTEST) -m "not ($(FAST))" --durations=15 || rc=$$?; \
	exit $$rc

# The fast layer alone (under a minute on two free cores).
test-fast: $(STAMP)
	$(PYTEST) -m "$(FAST)"

# The whole suite with line coverage (slower than make test).
coverage: $(STAMP) /usr/bin/chromium
	$(PYTEST) $(COVERAGE)

# lint-imports: the layers of the design ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check callsift.py classifier training api tests bench
	$(BIN)/ruff format --check callsift.py classifier training api tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser tests drive Debian's chromium (tests/web); install it from the distribution.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromium:
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

test: $(STAMP) /usr/bin/chromium
	$(MAKE) --no-print-directory checks

# Drift found on purpose: the newest releases pyproject.toml allows, in a throwaway
# environment, through the same checks. Run it before `make lock-upgrade` (monthly).
test-latest: /usr/bin/chromium
	set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(PYTHON) -m venv "$$d"; \
	"$$d/bin/python" -m pip install --quiet --upgrade pip; \
	"$$d/bin/python" -m pip install --quiet -e ".[dev]"; \
	"$$d/bin/callsift" warm-up; \
	"$$d/bin/python" -m pip freeze --exclude-editable > "$$d/versions.txt"; \
	echo "newest allowed versions (differences from $(LOCK)):"; \
	grep -vxFf <(grep -oE '^[A-Za-z0-9_.-]+==[^ ;]+' $(LOCK) | tr A-Z_ a-z-) \
		<(tr A-Z_ a-z- < "$$d/versions.txt") || true; \
	$(MAKE) --no-print-directory checks BIN="$$d/bin"

clean:
	rm -rf $(VENV) $(VENV)-lock runs .pytest_cache .mypy_cache .ruff_cache
