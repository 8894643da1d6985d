# make run   - the whole system: dashboard/API on 127.0.0.1:$(PORT), notifier, workers S0-S2
# make test  - the full test suite, on PostgreSQL and on SQLite
PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/pizzaq_ci
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install run test test-postgres test-sqlite bench

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "pizzaq needs Python 3.12 or newer; set PYTHON=/path/to/python3.12")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[site,test]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	PIZZAQ_WEB_PORT=$(PORT) $(BIN)/python manage.py demosetup
	PIZZAQ_WEB_PORT=$(PORT) exec $(BIN)/honcho start -f Procfile

test: test-postgres test-sqlite

# Each run keeps its temporary files (worker logs) in its own folder, so runs side by side
# never clean up each other's. CONN_MAX_AGE=0: connections held open by worker threads
# would keep the test database from being dropped.
test-postgres: install
	mkdir -p .pytest-tmp
	CONN_MAX_AGE=0 DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest --basetemp=.pytest-tmp/postgres $(PYTEST_ARGS)

test-sqlite: install
	mkdir -p .pytest-tmp
	env -u DATABASE_URL $(BIN)/pytest --basetemp=.pytest-tmp/sqlite $(PYTEST_ARGS)

# The benchmark suite: pizzaq and its peers side by side (bench/README.md, about 20 minutes).
bench: install
	PYTHON=$(PYTHON) bench/setup_peers.sh
	bench/.venv-peers/bin/python -m bench.run all $(BENCH_ARGS)
