# The two quickstart commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
DNSWATCH = $(PYTHON) -m watcher.cli

.PHONY: install demo test lint generate bench

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

demo: install
	$(DNSWATCH) scan --metrics-file examples/demo-cluster.om.gz --format text

lint:
	$(PYTHON) -m ruff check watcher tests benchmarks rules dashboards k8s
	$(PYTHON) -m ruff format --check watcher tests benchmarks rules dashboards k8s
	$(PYTHON) -m mypy

test: install
	bash scripts/install-test-deps.sh
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

# Regenerate every generated file; tests fail when one is stale.
generate:
	$(DNSWATCH) simulate --demo --hours 5 -o examples/demo-cluster.om.gz
	$(DNSWATCH) config > examples/config.yaml
	$(PYTHON) rules/build.py
	$(PYTHON) dashboards/build.py
	$(PYTHON) k8s/build.py

bench: install
	bash scripts/install-test-deps.sh
	$(PYTHON) benchmarks/bench_scan.py
