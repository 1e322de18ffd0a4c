# The two commands a newcomer needs: `make up` runs the platform, `make test` runs the tests.
VENV ?= .venv
PRODCAT = $(VENV)/bin/prodcat

.PHONY: bootstrap up demo down status logs test test-unit mutation lint format compose-check bench \
	clean

bootstrap:
	@bash scripts/bootstrap.sh

up: bootstrap
	$(PRODCAT) stack up

# Quick start: the first prepare_data run loads the whole development file, and ml_pipeline
# trains on it straight away (PRODCAT_DATA__CATCH_UP; applies to services this starts).
demo: bootstrap
	PRODCAT_DATA__CATCH_UP=true $(PRODCAT) stack up

down:
	$(PRODCAT) stack down

status:
	$(PRODCAT) stack status

logs:
	$(PRODCAT) stack logs $(SERVICE)

test: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-unit: bootstrap
	$(VENV)/bin/pytest tests/unit tests/dags tests/api

# Mutation score of the core decisions (gate, aliases, row checks, ids, retraining decision,
# serving input); not part of `make test`. Niced: it keeps both cores busy for a while.
mutation: bootstrap
	PRODCAT_DATA__RAW_DIR=$(abspath $(or $(PRODCAT_DATA__RAW_DIR),../shared/data/rakuten)) \
		nice -n 10 $(VENV)/bin/python scripts/mutation.py

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

compose-check:
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

bench: bootstrap
	$(VENV)/bin/python benchmarks/stack_up.py

clean: down
	rm -rf .state mutants
