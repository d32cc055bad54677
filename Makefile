# The two commands of the README: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install demo test test-all bench

install:
	@# torch first, pinned to a release our range admits, so that no newer (multi-GB) build is pulled in
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0"
	$(PIP) install -q -e ".[test]"

demo: install
	tokendynamics demo

test: install
	$(PYTHON) -m pytest -q

test-all: install  # slow and GPU tests too (GPU tests skip themselves without CUDA)
	$(PYTHON) -m pytest -q -m ""

bench: install
	$(PYTHON) -m pip install -q -e ".[bench]"
	$(PYTHON) benchmarks/bench_hashing.py
	$(PYTHON) benchmarks/bench_dynamics.py
	$(PYTHON) benchmarks/bench_reducers.py
