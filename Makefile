# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench worker migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	# Only for the Compose Specification's JSON schema it ships (tests/test_compose.py); its own
	# dependencies would clash with ours and are not needed to read one file.
	$(BIN)/python -m pip install --quiet --no-deps docker-compose==1.29.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python starter.py demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/templates.py

migrate: $(STAMP)
	$(BIN)/alembic upgrade head

worker: $(STAMP)
	$(BIN)/python worker.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
