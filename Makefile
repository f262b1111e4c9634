# The two commands a fresh clone needs: `make train` (the main job) and `make test`.
# Everything runs in the project environment .venv, built from uv.lock; nothing is installed
# globally. uv comes from PATH, or is installed with pip into .tools/ on first use.
PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/uv/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
# The 15 slowest tests are printed after every run.
PYTEST := $(BIN)/python -m pytest --durations=15

.PHONY: install train test test-fast check lock bench clean

install: $(VENV)/.synced

# Re-synced only when the lock or the project metadata changed. Bytecode is compiled at install:
# where PYTHONDONTWRITEBYTECODE is set (this machine, CI, the image) Python never caches it, and
# every process would compile MLflow, Prefect and the rest from source again (2.5x the CPU of
# importing a flow, for every command, test process and flow run).
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --locked --all-extras --quiet --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q flavor_ml flows deployments
	@touch $@

$(CURDIR)/.tools/uv/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(CURDIR)/.tools/uv uv

train: install
	$(BIN)/flavor-ml train

# Everything: checks, then every test (servers included).
# Three xdist workers on two cores: much of the suite waits on servers it starts, and a third
# worker fills those waits (measured on one machine: 741 s with two workers, 1.74 cores busy;
# 543-688 s with three, 1.97 cores busy; 655 s and a missed latency bound with four). Whole
# modules each (module fixtures start their servers once), the longest first
# (tests/support/scheduling.py).
test: install check
	$(PYTEST) -n 3 --dist loadfile --no-loadscope-reorder

# The inner loop: no servers, no flow runs, small corpora.
test-fast: install
	$(PYTEST) -m "not slow"

# pyproject.toml and uv.lock agree; lint and format; types; imports run one way; declared = imported
# dependencies. Each tool's configuration is in pyproject.toml.
check: install | $(UV)
	$(UV) lock --check --quiet
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

# After editing dependencies in pyproject.toml: `make lock`, then commit uv.lock.
lock: | $(UV)
	$(UV) lock

bench: install
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) .tools
