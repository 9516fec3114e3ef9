# Every target runs inside the workspace environment through `uv run --frozen`.
# `make help` is the manual.

MODEL ?=
EXP ?=
ARGS ?=
CKPT ?=
GPUS ?=
NODES ?= 1
SWEEP ?=
DDP ?=
TESTS ?= tests

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen --all-packages
PYTEST := $(RUN) pytest -p no:cacheprovider

.DEFAULT_GOAL := help
.PHONY: help setup lock train eval sample sweep sweep-local slurm bench test test-full lint format clean

help: ## List targets and variables
	@echo "Usage: make <target> [MODEL=<package>] [EXP=<experiment>] [ARGS=\"k=v ...\"] [CKPT=path] [GPUS=N] [NODES=M] [SWEEP=file]"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Models: $$(ls packages | tr '\n' ' ')"
	@echo "Without EXP, train runs experiments/<MODEL>/quickstart.yaml (built-in data, CPU minutes)."

setup: ## Install uv if missing, then sync the whole workspace from uv.lock
	@command -v uv >/dev/null 2>&1 || $(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --all-packages --frozen --quiet

lock: ## Re-resolve uv.lock after editing a pyproject.toml
	$(UV) lock

train: setup ## Train MODEL (EXP, ARGS; CKPT resumes; GPUS=N [NODES=M] runs DDP)
	@$(RUN) python tools/run.py train --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" --gpus "$(GPUS)" --nodes "$(NODES)" -- $(ARGS)

eval: setup ## Evaluate CKPT of MODEL: metrics.json (model + baseline) and samples
	@$(RUN) python tools/run.py eval --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" -- $(ARGS)

sample: setup ## Sample from CKPT of MODEL (package-specific ARGS, e.g. text=...)
	@$(RUN) python tools/run.py sample --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" -- $(ARGS)

sweep: setup ## Create the W&B sweep SWEEP and start agents on GPUS="0 1 ..." (DDP=1: one DDP agent)
	@$(RUN) python tools/sweep.py wandb "$(SWEEP)" --gpus "$(GPUS)" $(if $(DDP),--ddp,)

sweep-local: setup ## Run SWEEP offline (grid or run_cap random trials) and write results tables
	@$(RUN) python tools/sweep.py local "$(SWEEP)"

slurm: setup ## Write an sbatch script for MODEL on GPUS per node x NODES (prints its path)
	@$(RUN) python tools/slurm.py --model "$(MODEL)" --exp "$(EXP)" --gpus "$(GPUS)" --nodes "$(NODES)" -- $(ARGS)

bench: setup ## Benchmark MODEL; writes bench/<MODEL>.json with machine peak GFLOP/s
	@$(RUN) python tools/bench.py --model "$(MODEL)" -- $(ARGS)

test: setup ## Run the test suite (no slow/gpu tests): the CI command
	@$(PYTEST) -m "not slow and not gpu" -q $(TESTS)

test-full: setup ## Run every test including slow ones (gpu tests only with a GPU)
	@$(PYTEST) -q $$(nvidia-smi >/dev/null 2>&1 || echo '-m "not gpu"') $(TESTS)

lint: setup ## Ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

format: setup ## Ruff autofix and format
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

clean: ## Remove caches and build outputs (keeps runs/ and data/)
	rm -rf .pytest_cache .ruff_cache dist build bench sweeps
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
