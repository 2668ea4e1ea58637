# gridshift — set-up, demo, tests. Every target creates the venv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test protos lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridshift demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

protos: $(STAMP)
	$(BIN)/python -m gridshift.protogen

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/solver.py

clean:
	rm -rf $(VENV) build *.egg-info
