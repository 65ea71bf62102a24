# Three commands for a fresh machine: `make lab`, `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
KERNEL := $(VENV)/share/jupyter/kernels/pedgm/kernel.json
# PyTorch only backs MONAI's metric cross-checks in the tests; the CPU build (a local wheel on CI machines).
# Elsewhere e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH ?= torch==2.13.0
LAB_PORT ?= 8888
# Jupyter refuses to start as root ("Running as root is not recommended") unless told; containers run as root.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
export PEDGM_DATA_MIRROR ?= $(abspath ../shared/pedgm-data)

.PHONY: venv kernel lab demo demo-cv segment-demo test test-fast fuzz bench clean

$(BIN)/pedgm: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run with PYTHON=/path/to/python3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(KERNEL): $(BIN)/pedgm
	$(BIN)/python -m ipykernel install --sys-prefix --name pedgm --display-name "pedgm (.venv)"

$(VENV)/.crosscheck: $(BIN)/pedgm
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev,crosscheck]'
	@touch $@

venv: $(BIN)/pedgm

kernel: $(KERNEL)

lab: venv $(KERNEL)
	@echo "JupyterLab on notebooks/: run 01 -> 05 in order (each 'Run All'); outputs go to outputs/notebooks/"
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.port=$(LAB_PORT) --LabApp.news_url=None $(LAB_ROOT_FLAG) \
		--MappingKernelManager.default_kernel_name=pedgm $(LAB_ARGS)

demo: venv
	$(BIN)/pedgm run --params parameters/demo.yaml

demo-cv: venv
	$(BIN)/pedgm run --params parameters/demo_cv.yaml

test: venv $(KERNEL) $(VENV)/.crosscheck
	$(BIN)/python -m pytest -q --durations=25
	$(BIN)/python -m pytest -q --nbval tests/golden --nbval-sanitize-with tests/golden/sanitize.cfg

# The edit-test loop: no test marked slow (the network on real scans, training, notebooks) or browser.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# Generated hostile input (tests/inputs/test_fuzz.py): the long Hypothesis profile, thousands of random cases.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/inputs/test_fuzz.py --hypothesis-show-statistics

segment-demo: venv
	$(BIN)/python -m pedgm_kit.demo

bench: venv
	$(BIN)/python benchmarks/bench_segment.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache
