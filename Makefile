# cxresearch: two commands for users (`make demo`, `make test`); see README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cxresearch-installed
DEMO_DIR ?= data/demo
DEMO_CUSTOMERS ?= 20000
DEMO_SEED ?= 20261122
# An action plan planted in wave 2 (half the branches), so the initiatives study can evaluate it.
DEMO_INTERVENTION ?= touchpoint=branch_visit,effect=0.5,treated_share=0.5
REPORTS ?= reports
WORKERS ?= 2

.PHONY: setup demo lint test test-durations test-fast bench bench-quick bench-recovery bench-validation lab clean

# Virtual environment + editable install + Jupyter kernel named `cxresearch`.
# Re-runs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cxresearch needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name cxresearch --display-name "Python (cxresearch)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/cxresearch simulate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --intervention $(DEMO_INTERVENTION) --out $(DEMO_DIR)
	$(BIN)/cxresearch validate $(DEMO_DIR)/dataset.yaml
	$(BIN)/cxresearch simulate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --comments en --out $(DEMO_DIR)_verbatims
	$(BIN)/cxresearch validate $(DEMO_DIR)_verbatims/dataset.yaml
	$(BIN)/cxresearch run params/*.yaml --out $(REPORTS) --workers $(WORKERS)

# Static checks (part of `make test`): ruff lint + format check on code and tests, mypy on the package.
lint: setup
	$(BIN)/ruff check cxresearch tests benchmarks
	$(BIN)/ruff format --check cxresearch tests benchmarks
	$(BIN)/mypy

# Tests run in parallel, one test file per worker (module fixtures such as a shared fit stay in one process).
TEST_WORKERS ?= auto
test: setup lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# Seconds per test file for the longest-first order of `make test` (tests/durations.json); the full suite again
test-durations: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=0 > .pytest-durations.log || (tail -20 .pytest-durations.log; exit 1)
	$(BIN)/python tests/durations.py < .pytest-durations.log

test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow"

bench: setup
	$(BIN)/python benchmarks/run.py

bench-quick: setup
	$(BIN)/python benchmarks/run.py --quick

# Initiative values fitted vs the simulator's truth over repeated data sets (issue 23): 1-5 scales, the
# saturating emotion form and mixed scales; about 150 s per replication on 2 cores
RECOVERY_R ?= 12
bench-recovery: setup
	$(BIN)/python benchmarks/initiatives_recovery.py --replications $(RECOVERY_R) --seeds 101 --workers $(WORKERS) --out benchmarks/out/recovery.json --markdown benchmarks/out/recovery.md
	$(BIN)/python benchmarks/initiatives_recovery.py --replications $(RECOVERY_R) --seeds 301 --emotion-form saturating --workers $(WORKERS) --out benchmarks/out/recovery_saturating.json --markdown benchmarks/out/recovery_saturating.md
	$(BIN)/python benchmarks/initiatives_recovery.py --replications $(RECOVERY_R) --seeds 201 --scales mixed --workers $(WORKERS) --out benchmarks/out/recovery_mixed.json --markdown benchmarks/out/recovery_mixed.md

# Held-out accuracy (issue 17): the driver model beside three baselines on Skytrax lounge / seat and simulated
# data (5-fold; about an hour on 2 cores), and the survival models beside Cox (about 2 minutes)
bench-validation: setup
	$(BIN)/python benchmarks/bench_validation.py --folds 5 --markdown benchmarks/out/validation.md
	$(BIN)/python benchmarks/survival_validation.py --out benchmarks/out/survival_validation.json

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(REPORTS) $(DEMO_DIR) $(DEMO_DIR)_verbatims .pytest_cache .pytest-durations.log
