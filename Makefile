# The two quickstart commands: `make demo` and `make test`. Both install what they need into a
# project virtualenv (.venv): never into the system interpreter, so a stock Debian/Ubuntu
# python3 (PEP 668, "externally-managed-environment") works as well as any Python >= 3.11.
PY ?= python3
VENV ?= .venv
PYTHON = $(VENV)/bin/python
DNSWATCH = $(PYTHON) -m watcher.cli
STAMP = $(VENV)/.installed

.PHONY: install demo test lint generate proto bench bench-rules bench-scale train-flow-model lab

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "dnswatch: need Python >= 3.11 as '$(PY)' (make PY=/path/to/python3.11 ...)" >&2; exit 1; }
	@[ -x $(PYTHON) ] || $(PY) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "dnswatch: '$(PY) -m venv' failed: on Debian/Ubuntu run 'sudo apt install python3-venv', then retry" >&2; exit 1; }
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "dnswatch: .venv has no pip (a half-made venv): removed it; on Debian/Ubuntu run 'sudo apt install python3-venv', then retry" >&2; exit 1; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: install
	$(DNSWATCH) scan --metrics-file examples/demo-cluster.om.gz --format text

lint: install
	$(PYTHON) -m ruff check watcher tests benchmarks rules dashboards k8s
	$(PYTHON) -m ruff format --check watcher tests benchmarks rules dashboards k8s
	$(PYTHON) -m mypy

test: install
	bash scripts/install-test-deps.sh
	$(PYTHON) scripts/install_helm.py $(VENV)/bin
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

# Regenerate every generated file; tests fail when one is stale.
generate: install
	$(DNSWATCH) simulate --demo --hours 5 -o examples/demo-cluster.om.gz
	$(DNSWATCH) config > examples/config.yaml
	$(PYTHON) -c 'import sys; from watcher.config import reference_markdown as r; sys.stdout.write(r())' > docs/configuration.md
	$(PYTHON) rules/build.py
	$(PYTHON) dashboards/build.py
	$(PYTHON) k8s/build.py

# The Relay source's messages from their .proto (docs/flow-logs.md); tests check it is fresh.
proto: install
	cd watcher/sources/relay && $(abspath $(PYTHON)) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. observer.proto

# Rebuild the flow model from the project's own data (docs/flow-model.md).
train-flow-model: install
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[train]'
	$(PYTHON) scripts/train_flow_model.py

bench: install
	bash scripts/install-test-deps.sh
	$(PYTHON) benchmarks/bench_scan.py
	$(PYTHON) benchmarks/bench_flows.py

# What the shipped rules cost a Prometheus at 100k and 1M Hubble DNS series (docs/performance.md).
bench-rules: install
	bash scripts/install-test-deps.sh
	$(PYTHON) benchmarks/bench_rules.py --sizes 100000,1000000

bench-scale: install
	bash scripts/install-test-deps.sh
	$(PYTHON) benchmarks/bench_scale.py --sizes 30000,100000

# Real tunnelling tools in network namespaces (root): print what each path finds (tests/lab).
# `make lab SAVE=1` replaces the saved capture the fast tests read.
lab: install
	bash scripts/install-test-deps.sh
	$(PYTHON) -m tests.lab $(if $(SAVE),--save)
