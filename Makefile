# `make demo` and `make test` each bootstrap .venv idempotently on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned: the CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# cuda: numba-cuda's simulator runs the GPU kernel in the tests, and its compiler builds it for a GPU
	$(BIN)/python -m pip install -q -e ".[dev,dask,onnx,cuda,root,hepmc,tune]"
	touch $(STAMP)

demo: venv
	$(BIN)/fastshower demo --out demo-output

test: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-slow: venv
	$(BIN)/python -m pytest -q -m slow --timeout 1800

bench: venv
	$(BIN)/python benchmarks/bench_mc.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
