# Two commands for a new machine:  `make demo` (set up and run)  and  `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ocrgan demo

system-deps:
	./scripts/system-deps.sh

# the suite runs in a network namespace of its own where only loopback is up
test: $(STAMP) system-deps
	$(BIN)/ruff check .
	./scripts/loopback-only.sh $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/model_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
