# Three commands for a fresh machine: `make lab`, `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# PyTorch only backs MONAI's metric cross-checks in the tests; the CPU build (a local wheel on CI machines).
# Elsewhere e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH ?= torch==2.13.0
export PEDGM_DATA_MIRROR ?= $(abspath ../shared/pedgm-data)

.PHONY: venv demo segment-demo test bench clean

$(BIN)/pedgm: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run with PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(VENV)/.crosscheck: $(BIN)/pedgm
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev,crosscheck]'
	@touch $@

venv: $(BIN)/pedgm

demo: venv
	$(BIN)/pedgm run --params parameters/demo.yaml

test: venv $(VENV)/.crosscheck
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --nbval tests/golden --nbval-sanitize-with tests/golden/sanitize.cfg

segment-demo: venv
	$(BIN)/python -m pedgm_kit.demo

bench: venv
	$(BIN)/python benchmarks/bench_segment.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache
