# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install demo dev test test-reliability test-browser test-topology check-defs lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,sandbox,webserver]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	@ln -sf ../dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/retry-pipelines demo

# The Dagster UI at http://127.0.0.1:3000 on the demo's data when there is some (it says which).
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/retry-pipelines dev

# Everything but the heavy reliability runs and the browser tests; PostgreSQL tests use
# RETRY_PIPELINES_TEST_PG_URL or a throwaway server from local binaries, and are skipped (with a
# message) when neither exists.
test: install
	$(BIN)/python -m pytest -m "not reliability and not browser and not topology" $(PYTEST_ARGS)

# The Dagster UI in Debian's Chromium (/usr/bin/chromium: `apt-get install -y chromium`) after
# the demo; screenshots and logs in .ci-results/browser/. Skipped, saying so, without Chromium.
test-browser: install
	$(BIN)/python -m pytest -m browser retry_pipelines_tests/browser $(PYTEST_ARGS)

# Dagster's production topology on PostgreSQL (gRPC code server, daemon, webserver as processes)
# draining a backlog with a run worker and the daemon killed on the way: about 10 minutes.
test-topology: install
	$(BIN)/python -m pytest -m topology retry_pipelines_tests/topology $(PYTEST_ARGS)

# Exit code 5 (nothing collected) is accepted only here, while the marker may select nothing.
test-reliability: install
	$(BIN)/python -m pytest -m reliability $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "no reliability tests selected"; rc=0; fi; exit $$rc

check-defs: install
	cd /tmp && env -i PATH="$(CURDIR)/$(BIN):/usr/bin:/bin" HOME=/tmp \
		$(CURDIR)/$(BIN)/dagster definitions validate -w $(CURDIR)/workspace.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m benchmarks.claims
	$(BIN)/python -m benchmarks.submit
	$(BIN)/python -m benchmarks.reports
	$(BIN)/python -m benchmarks.chaos
	$(BIN)/python -m benchmarks.drain

clean:
	rm -rf .retry_pipelines .dagster_home
