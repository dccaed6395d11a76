# The two commands: `make run` (Untrace on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint install install-dev migrate clean bench-proxy

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip

$(VENV)/.installed: $(PY) requirements.txt
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The official openai npm client, driven by the proxy tests.
tests/node/node_modules/.installed: tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# The TypeScript SDK's compiler and the openai npm client its tests wrap.
sdks/typescript/node_modules/.installed: sdks/typescript/package.json sdks/typescript/package-lock.json
	npm ci --prefix sdks/typescript --no-audit --no-fund
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) -m untrace.devstack

lint: install-dev
	$(VENV)/bin/ruff check .

test: install-dev tests/node/node_modules/.installed sdks/typescript/node_modules/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

migrate: install
	$(PY) manage.py migrate

# The proxy against the provider directly (local PostgreSQL and Redis); PEER=litellm adds LiteLLM's proxy.
bench-proxy: install
	$(VENV)/bin/python bench/bench_proxy.py $(if $(PEER),--peer $(PEER),)

clean:
	rm -rf var/broker var/prometheus var/celerybeat-schedule
