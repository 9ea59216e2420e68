# One entry point for the common tasks. `make demo` and `make test` are the README's commands.
PYTHON ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install deps services demo test test-unit test-integration lint format bench bench-quick bench-foundation up down clean

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

bench: services     ## Unsilo vs Debezium (~25 min on 2 cores); writes benchmarks/results/versus_debezium.{json,md}
	$(PYTHON) -m benchmarks.versus_debezium --rerun-unsilo-only $(BENCH_ARGS)

bench-quick: services  ## the same, 50,000 rows and 20 s per rate (~15 min)
	$(PYTHON) -m benchmarks.versus_debezium --quick $(BENCH_ARGS)

bench-foundation: services  ## cold `unsilo up` and SQLite snapshot; writes benchmarks/results/foundation.json
	$(PYTHON) -m benchmarks.foundation

up:
	unsilo up

down:
	unsilo down
