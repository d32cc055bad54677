# The two commands of the README: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install demo test test-all test-lmms-eval bench

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

# lmms-eval pulls torchvision and a CUDA build of torch (about 7 GB), so it gets an environment of its own,
# with the torch its torchvision needs; the tests marked lmms_eval run lmms-eval there and compare it with
# `tokendynamics eval`.
LMMS_ENV ?= .lmms-eval-env
test-lmms-eval: install
	test -x $(LMMS_ENV)/bin/python || $(PYTHON) -m venv $(LMMS_ENV)
	$(LMMS_ENV)/bin/pip install -q "lmms-eval>=0.7.3,<0.8" -c constraints/lmms-eval.txt
	$(LMMS_ENV)/bin/pip install -q --no-deps -e .  # keeps the torch that lmms-eval's torchvision was built for
	LMMS_EVAL_PYTHON=$(LMMS_ENV)/bin/python $(PYTHON) -m pytest -q -m lmms_eval

bench: install
	$(PYTHON) -m pip install -q -e ".[bench]"
	$(PYTHON) benchmarks/bench_hashing.py
	$(PYTHON) benchmarks/bench_dynamics.py
	$(PYTHON) benchmarks/bench_reducers.py
