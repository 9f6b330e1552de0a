# Two commands set everything up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_ENV := set -a && . .data/run.env && set +a
TEST_ENV := set -a && . .data/test.env && set +a

.PHONY: install lock run stop status logs test test-deploy test-scale bench clean-data

# Every install takes its versions from constraints.txt (see `make lock`).
$(STAMP): pyproject.toml constraints.txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Re-resolve pyproject.toml's dependencies in a clean venv and pin them in constraints.txt.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q '.[dev]'
	{ sed -n '1,3p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude avatarchat | grep -v '^-e'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

## Start the whole stack (Postgres, RabbitMQ, six services) and seed a demo chatbot.
run: install
	$(PY) -m scripts.infra ensure --profile run
	$(RUN_ENV) && $(PY) -m scripts.stack up

stop:
	$(RUN_ENV) && $(PY) -m scripts.stack down

status:
	$(RUN_ENV) && $(PY) -m scripts.stack status

logs:
	tail -n 50 -F var/log/*.log

## Unit, integration (real Postgres and RabbitMQ) and end-to-end tests (real supervisord).
test: install
	$(PY) -m scripts.infra ensure --profile test
	$(PY) -m scripts.frontend build
	$(PY) -m scripts.frontend ensure-browser
	$(TEST_ENV) && $(PY) -m pytest $(PYTEST_ARGS)

## The production shape for real: builds the Dockerfile's images (local stand-ins for the base
## images), starts docker-compose.prod.yml and tests it through a proxy like Coolify's.
## Installs Docker from Debian and starts dockerd when needed (docs/deploy.md).
test-deploy: install
	$(PY) -m scripts.frontend ensure-browser
	$(PY) -m scripts.deploy_test $(PYTEST_ARGS)

## Scaled out for real: docker-compose.scale.yml (two of each program, nginx balancing two
## gateways, a three-node RabbitMQ cluster with quorum queues), with broker nodes, a gateway and
## program containers killed under traffic (docs/scaling.md). Reuses test-deploy's image caches.
test-scale: install
	$(PY) -m scripts.scale_test $(PYTEST_ARGS)

## Benchmarks against the running processes; writes docs/benchmarks.md.
bench: install
	$(PY) -m scripts.infra ensure --profile test
	$(PY) -m scripts.frontend build
	$(TEST_ENV) && $(PY) -m scripts.bench
