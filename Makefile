# TumorScreen: `make run` starts the product, `make test` runs the whole suite. Both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8050

.PHONY: run test lint screenshots install install-dev browser services migrate clean help

help:
	@echo "make run   - install, migrate, prepare a first model if none, start web (:$(PORT)) and worker"
	@echo "make test  - install runtime+test requirements, chromium, check PostgreSQL/Redis, lint, run all tests"
	@echo "make lint  - ruff (pyflakes, pycodestyle, bugbear; ruff.toml) over the whole tree"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

migrate: install
	$(BIN)/alembic upgrade head

run: install
	PORT=$(PORT) bash scripts/run_local.sh

browser:
	@bash scripts/ensure_chromium.sh

services:
	@bash scripts/ensure_services.sh

lint: install-dev
	$(BIN)/ruff check .

test: install-dev browser services lint
	$(BIN)/python -m pytest

# The README's pictures: the browser tests, writing into docs/screenshots.
screenshots: install-dev browser services
	TUMORSCREEN_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -m browser

clean:
	rm -rf var .pytest_cache
