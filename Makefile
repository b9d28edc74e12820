# The two set-up commands of the README: `make run` and `make test`.
# Both install everything the project needs from its own files into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/callsift serve

lint: $(STAMP)
	$(BIN)/ruff check classifier training api tests bench
	$(BIN)/ruff format --check classifier training api tests bench
	$(BIN)/mypy

# The browser tests drive Debian's chromium (tests/web); install it from the distribution.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromium:
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# The numba kernels are compiled and cached once before the test workers start
# (tests/conftest.py), so the parallel workers load a finished cache.
test: lint /usr/bin/chromium
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
