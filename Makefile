# Two commands for users: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.oodbench-installed
DEMO := --configfile demo/config.yaml --replace-workflow-config
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint bench test-slurm clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(SNAKEMAKE) $(DEMO) --cores all --resources gpu=1
	$(SNAKEMAKE) $(DEMO) --cores 1 --report results/report.html
	@echo
	@echo "Figures: $(CURDIR)/results/figures/"
	@ls results/figures
	@echo "Report:  $(CURDIR)/results/report.html"
	@echo "Metrics: $(CURDIR)/results/metrics.csv"

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/snakefmt --check .
	$(SNAKEMAKE) --lint --cores 1

# The SLURM profile against a real single-node scheduler (root + Debian apt; docs/cluster.md).
# The cluster is torn down whether the start, the test or nothing fails.
test-slurm: $(STAMP)
	bash -c 'trap ci/slurm_down.sh EXIT; ci/slurm_up.sh && OODBENCH_SLURM_TEST=1 timeout -k 30 1200 $(PY) -m pytest -q -p no:cacheprovider workflow_tests/test_slurm.py'

bench: $(STAMP)
	$(PY) scripts/bench_predict.py

clean-demo:
	rm -rf results data/demo_clean data/demo_corrupted data/demo_frames logs benchmarks
