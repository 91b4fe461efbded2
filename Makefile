# The two commands: `make run` (the local system) and `make test` (everything CI runs).
SHELL := /bin/bash
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
HELM := $(TOOLS)/bin/helm
STRIMZI := $(TOOLS)/strimzi/node_modules/.package-lock.json.installed
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: run test lint types schemas publish-schemas bench-checkins bench-rollup bench-drift bench-connectors bench-notifier bench soak readout-preview screenshots chart clean

# uv itself comes from PyPI into a private venv, pinned, so a fresh machine needs only Python 3.11+.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python 3.11
	touch $@

# Helm (pinned in the script) renders the chart in the deploy tests; built from its Go module.
$(HELM): deploy/tools/helm.sh
	bash deploy/tools/helm.sh

# Strimzi's CRD schemas (an npm package, pinned in its lockfile) validate the chart's KafkaTopic resources.
$(STRIMZI): deploy/tools/strimzi/package-lock.json deploy/tools/strimzi/validate.mjs
	bash deploy/tools/strimzi/install.sh

run: .venv/.synced
	bash deploy/local/run.sh

lint: .venv/.synced
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

types: .venv/.synced
	$(UV) run --locked mypy
	for tests in services/*/tests audit/tests cli/tests; do $(UV) run --locked mypy $$tests/*.py || exit 1; done

test: lint types $(HELM) $(STRIMZI)
	$(UV) run --locked python -m okr_contracts.schemas check
	$(UV) run --locked python -m okr_contracts.deploy check
	$(UV) run --locked python -m okr_runtime.asyncapi check
	$(UV) run --locked python -m okr_checkins.openapi check
	$(UV) run --locked python -m okr_rollup.openapi check
	$(UV) run --locked python -m okr_drift.openapi check
	$(UV) run --locked python -m okr_connectors.openapi check
	$(UV) run --locked pytest

schemas: .venv/.synced
	$(UV) run --locked python -m okr_contracts.schemas write
	$(UV) run --locked python -m okr_contracts.deploy write
	$(UV) run --locked python -m okr_runtime.asyncapi write
	$(UV) run --locked python -m okr_checkins.openapi write
	$(UV) run --locked python -m okr_rollup.openapi write
	$(UV) run --locked python -m okr_drift.openapi write
	$(UV) run --locked python -m okr_connectors.openapi write

publish-schemas: schemas
	$(UV) run --locked python -m okr_contracts.schemas publish

bench-checkins: .venv/.synced ; $(UV) run --locked python bench/checkins/run.py
bench-rollup: .venv/.synced ; $(UV) run --locked python bench/rollup/run.py
bench-drift: .venv/.synced ; $(UV) run --locked python bench/drift/run.py
bench-connectors: .venv/.synced ; $(UV) run --locked python bench/connectors/run.py
bench-notifier: .venv/.synced ; $(UV) run --locked python bench/notifier/run.py
bench: .venv/.synced ; $(UV) run --locked python bench/run_all.py
soak: .venv/.synced ; $(UV) run --locked python bench/load/run.py --json .local/bench/soak.json $(if $(MINUTES),--minutes $(MINUTES))

# The executive readout for a sample portfolio, as HTML, text and a PNG screenshot (headless Chromium, installed if missing).
readout-preview: .venv/.synced
	bash deploy/local/chromium.sh ensure
	$(UV) run --locked python -m okr_notifier.preview .local/readout

# Screenshots of every web page (docs/screenshots/), taken by the browser tests against a running local system.
screenshots: .venv/.synced
	bash deploy/local/chromium.sh ensure
	$(UV) run --locked pytest tests/browser -q --screenshots docs/screenshots

# The chart rendered with its defaults, for a look (the deploy tests render and validate every variant).
chart: $(HELM)
	$(HELM) lint deploy/helm/okrstream
	$(HELM) template okrstream deploy/helm/okrstream --namespace okrstream --kube-version 1.35.0

clean:
	-bash deploy/local/kafka.sh stop
	-bash deploy/local/postgres.sh stop
	rm -rf .venv .local .pytest_cache .mypy_cache .ruff_cache
