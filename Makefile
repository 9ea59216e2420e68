# One entry point for the common tasks. `make demo` and `make test` are the README's commands.
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install deps services demo test test-unit test-integration lint format bench up down clean

install:            ## install Unsilo and its test/dev tools into the current Python
	$(PYTHON) -m pip install -q -e '.[test,dev]'

services: install   ## fetch the Kafka broker and the schema registry from Maven Central
	unsilo install

demo: services      ## run the demo: broker, registry, a legacy SQLite shop, connector, read model
	unsilo demo

test: services      ## all tiers; the tests start a broker and a registry themselves
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)

test-unit:          ## the unit tier only (no I/O, seconds)
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: services
	$(PYTHON) -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

lint:               ## ruff and mypy (strict on hub, connectors, projections)
	ruff check .
	ruff format --check .
	mypy

format:
	ruff format .
	ruff check --fix .

bench: services     ## foundation benchmark; writes benchmarks/results/foundation.json
	$(PYTHON) -m benchmarks.foundation

up:
	unsilo up

down:
	unsilo down
