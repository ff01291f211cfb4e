# One command to set up and run the tests, one to set up and run the main job.
# TORCH: pip takes the CPU build where one lies on disk (these dev machines) and PyPI's CUDA build on a
# Linux machine with an NVIDIA GPU. Override to pick another, e.g. make test TORCH="torch==2.13.0+cpu".
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: test demo lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

demo: $(VENV)/.installed
	$(BIN)/livedenoise demo --headless
