# The two commands of the README: `make run` and `make test`. Both are idempotent.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PATIENTS ?= 200

.PHONY: install run test bench

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The demo serves with the built-in token issuer on: `sijill token --user doctor` prints a token.
run: install
	$(BIN)/sijill db upgrade
	$(BIN)/sijill reference load-sample
	$(BIN)/sijill demo --patients $(DEMO_PATIENTS)
	SIJILL_DEV_ISSUER_ENABLED=true $(BIN)/sijill serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/sijill bench
