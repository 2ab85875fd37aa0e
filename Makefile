# `make run` and `make test` bootstrap .venv themselves (Python 3.11+, no other setup).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run demo test bench worker api migrate clean

$(STAMP): pyproject.toml
	@echo "==> Installing Dealflow into $(VENV) (once; about 2 minutes): FastAPI, the Temporal SDK and the"
	@echo "    Temporal CLI (dev server + Web UI), SQLAlchemy, XGBoost, the provider SDKs and the test tools."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)
	@echo "==> Installed. Next: make run starts everything, make test runs the suite."

run: $(STAMP)            ## Temporal dev server + database + worker + API (Ctrl-C stops all)
	$(BIN)/dealflow up $(ARGS)

demo: $(STAMP)           ## same, with a seeded demo book
	$(BIN)/dealflow up --demo $(ARGS)

test: $(STAMP)           ## the whole suite (Postgres when DEALFLOW_TEST_DATABASE_URL is set)
	PYTHONUNBUFFERED=1 $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)          ## throughput benchmark, prints JSON
	$(BIN)/python bench/throughput.py $(ARGS)

worker: $(STAMP)
	$(BIN)/dealflow worker

api: $(STAMP)
	$(BIN)/dealflow api

migrate: $(STAMP)
	$(BIN)/dealflow migrate

clean:
	rm -rf $(VENV) .dealflow
