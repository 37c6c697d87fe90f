# Two commands for a new machine:  `make demo` (set up and run)  and  `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# one stamp per extra installed: `make demo` needs only the service's, `make test` the development tools too
SERVICE := $(VENV)/.installed-service
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint bench system-deps clean

define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(1)]"
endef

$(SERVICE): pyproject.toml
	$(call install,service)
	touch $@

# the dev extra includes the service extra, so it stamps both
$(DEV): pyproject.toml
	$(call install,dev)
	touch $@ $(SERVICE)

demo: $(SERVICE)
	$(BIN)/ocrgan demo

system-deps:
	./scripts/system-deps.sh

# the suite runs in a network namespace of its own where only loopback is up
test: $(DEV) system-deps
	$(BIN)/ruff check .
	./scripts/loopback-only.sh $(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check .

bench: $(DEV)
	$(BIN)/python benchmarks/model_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
