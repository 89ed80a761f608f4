# The two commands of the README: `make run` and `make test`. Both are idempotent.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PATIENTS ?= 200

.PHONY: install run test lint bench lock

# The locked, hashed runtime dependencies first (the image installs the same file), then the
# project itself with its test tools.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	@bash tools/system-packages.sh
	@echo "==> Creating $(VENV) and installing the locked dependencies (requirements.lock): about a minute"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	@echo "==> Installing Sijill and its test tools"
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)
	@echo "==> Installed"

install: $(STAMP)

# The demo serves with the built-in token issuer on: `sijill token --user doctor` prints a token.
run: install
	@echo "==> Migrating the database, loading reference tables and $(DEMO_PATIENTS) demo patients"
	$(BIN)/sijill db upgrade
	$(BIN)/sijill reference load-sample
	$(BIN)/sijill demo --patients $(DEMO_PATIENTS)
	SIJILL_DEV_ISSUER_ENABLED=true $(BIN)/sijill serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# After changing dependencies in pyproject.toml: regenerate the lock (pip-tools).
lock: install
	$(BIN)/pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --output-file requirements.lock pyproject.toml

bench: install
	$(BIN)/sijill bench
