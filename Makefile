# The two quickstart commands: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
DNSWATCH = $(PYTHON) -m watcher.cli

.PHONY: install demo test lint example bench

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

demo: install
	$(DNSWATCH) scan --metrics-file examples/demo-cluster.om.gz --format text

lint:
	$(PYTHON) -m ruff check watcher tests benchmarks
	$(PYTHON) -m ruff format --check watcher tests benchmarks
	$(PYTHON) -m mypy

test: install
	bash scripts/install-test-deps.sh
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

# Regenerate the bundled example and the documented defaults (tests fail when they are stale).
example:
	$(DNSWATCH) simulate --demo --hours 5 -o examples/demo-cluster.om.gz
	$(DNSWATCH) config > examples/config.yaml

bench: install
	bash scripts/install-test-deps.sh
	$(PYTHON) benchmarks/bench_scan.py
