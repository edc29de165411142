# Xiaopu — `make run` starts the platform, `make test` runs every test. Both bootstrap the venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/services/catalog:$(CURDIR)/services/shop:$(CURDIR)/services/share:$(CURDIR)/services/orders:$(CURDIR)/services/payouts:$(CURDIR)/services/identity:$(CURDIR)/services/messages:$(CURDIR)/services/gateway

SERVICES := catalog shop share orders payouts messages
# The type gate: shared/ and each service's rules, command handlers and reads — the modules or
# packages that exist (services/<svc>/<svc>/{domain.py,handlers/,handlers.py,queries.py,queries/}).
MYPY_TARGETS := shared $(foreach s,$(SERVICES),$(wildcard $(addprefix services/$(s)/$(s)/,\
	domain.py handlers handlers.py queries.py queries)))

.PHONY: run test test-unit test-integration test-e2e fuzz test-sqlite venv lint migrate demo bench dlq check clean

# runtime pins (requirements.txt) plus the gates and test tools (requirements-dev.txt includes it)
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) scripts/platform.py

# The gates (.ci/run runs them before the tests): lint, format, types. Config in pyproject.toml.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(MYPY_TARGETS)

migrate: venv
	$(PY) -m shared.migrations upgrade

# The whole suite against the real RabbitMQ and PostgreSQL, then the integration tier on SQLite.
test: venv
	$(PY) scripts/check_services.py
	$(PY) -m pytest
	XIAOPU_TEST_DB=sqlite $(PY) -m pytest -m "integration and not postgres_only" -q

test-unit: venv
	$(PY) -m pytest -m unit

test-integration: venv
	$(PY) -m pytest -m integration

test-e2e: venv
	$(PY) -m pytest -m e2e

# the bounded schemathesis run alone (XIAOPU_FUZZ_EXAMPLES examples per operation and mode)
fuzz: venv
	$(PY) -m pytest tests/e2e/test_api_fuzz.py

demo: venv
	$(PY) scripts/demo.py

bench: venv
	$(PY) benchmarks/run_all.py

dlq: venv
	$(PY) -m shared.dlq list

# The platform's invariants (stock, accruals, books, share stats, parked events) read from every
# service's database and the broker, with the same environment the services run with.
check: venv
	$(PY) -m shared.invariants

clean:
	rm -rf var .pytest_cache
