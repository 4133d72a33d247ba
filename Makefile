# optsweep — developer targets. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/datasets

.DEFAULT_GOAL := help
.PHONY: help install test soak lint format bench quickstart clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## create .venv, install optsweep with pinned dependencies, and chromium/postgresql when absent
	./scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,postgres]'

test:  ## run the test suite (no network; a few minutes on 2 cores)
	$(BIN)/pytest -q

soak:  ## long fault runs: workers killed, stalled, PostgreSQL restarted (tests marked soak)
	$(BIN)/pytest -q -s -m soak

lint:  ## ruff check and format check
	$(BIN)/ruff check optsweep tests bench examples
	$(BIN)/ruff format --check optsweep tests bench examples

format:  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix optsweep tests bench examples
	$(BIN)/ruff format optsweep tests bench examples

bench:  ## print throughput (optsweep vs the conventional loop, a plain in-memory loop, the torch.func ensemble, Keras fit), an MLP step against the machine's limits, the study's writes batched vs Optuna's calls, command-line start-up and the quickstart's wall time and peak memory, your own model and optimizer step figures; DATA=path to datasets
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/throughput.py --data-dir $(DATA) --sweep configs/adam.yaml
	$(BIN)/python bench/headroom.py
	$(BIN)/python bench/study_writes.py
	$(BIN)/python bench/user_model.py
	$(BIN)/python bench/optimizers.py

quickstart:  ## run configs/quickstart.yaml on the bundled mnist-mini data
	$(BIN)/optsweep run configs/quickstart.yaml

clean:  ## remove caches (keeps .venv and results/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
