# The two commands a fresh clone needs: `make train` (the main job) and `make test`.
PYTHON ?= python3

.PHONY: install train test bench

install:
	$(PYTHON) -m pip install --quiet -e '.[dev]'

train: install
	flavor-ml train

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) bench/bench_pipeline.py
