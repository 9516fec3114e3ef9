# Every target runs inside the workspace environment through `uv run --frozen`.
# `make help` is the manual.

MODEL ?=
EXP ?=
ARGS ?=
CKPT ?=
RESUME ?=
SEEDS ?=
GPUS ?=
NODES ?= 1
SWEEP ?=
SRC ?=
OUT ?= imported.ckpt
DDP ?=
CHECK ?=
DRY_RUN ?=
STRICT ?=
TESTS ?= tests

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen --all-packages
PYTEST := $(RUN) pytest -p no:cacheprovider
CHECK_FLAG = $(if $(CHECK),--check,)
# empty when nvidia-smi works; evaluated only by the recipes that use it
NO_GPU = $(shell nvidia-smi >/dev/null 2>&1 || echo 1)

.DEFAULT_GOAL := help
.PHONY: help setup lock train eval sample import sweep sweep-local slurm bench bench-report gpu-check test test-full lint format clean

help: ## List targets and variables
	@echo "Usage: make <target> [MODEL=<package>] [EXP=<experiment>] [ARGS=\"k=v ...\"] [CKPT=path] [GPUS=N] [NODES=M] [SWEEP=file] [CHECK=1]"
	@echo "CHECK=1 (train, eval, sample, sweep, sweep-local, slurm, bench): compose and validate, run nothing."
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

train: setup ## Train MODEL (EXP, ARGS; CKPT= or RESUME=<run dir|latest> resumes; GPUS=N [NODES=M] runs DDP)
	@$(RUN) python tools/run.py train --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" --resume "$(RESUME)" --gpus "$(GPUS)" --nodes "$(NODES)" $(CHECK_FLAG) -- $(ARGS)

eval: setup ## Evaluate CKPT of MODEL: metrics.json (model + baseline) and samples; SEEDS=N: mean and ci95
	@$(RUN) python tools/run.py eval --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" --seeds "$(SEEDS)" $(CHECK_FLAG) -- $(ARGS)

sample: setup ## Sample from CKPT of MODEL (package-specific ARGS, e.g. text=...)
	@$(RUN) python tools/run.py sample --model "$(MODEL)" --exp "$(EXP)" --ckpt "$(CKPT)" $(CHECK_FLAG) -- $(ARGS)

import: setup ## Convert upstream weights SRC of MODEL into a package checkpoint OUT (default imported.ckpt; ARGS: importer flags)
	@test -n "$(MODEL)" -a -n "$(SRC)" || { echo "usage: make import MODEL=<package> SRC=<upstream checkpoint or run dir> [OUT=imported.ckpt] [ARGS=...]" >&2; exit 2; }
	@test -d "packages/$(MODEL)" || { echo "MODEL=$(MODEL) is not a package; use one of: $$(ls packages | tr '\n' ' ')" >&2; exit 2; }
	@$(RUN) $(MODEL)-import "$(SRC)" -o "$(OUT)" $(ARGS)

sweep: setup ## Create the W&B sweep SWEEP and start agents on GPUS="0 1 ..." (DDP=1: one DDP agent)
	@$(RUN) python tools/sweep.py wandb "$(SWEEP)" --gpus "$(GPUS)" --seeds "$(SEEDS)" $(if $(DDP),--ddp,) $(CHECK_FLAG) -- $(ARGS)

sweep-local: setup ## Run SWEEP offline (grid or run_cap random trials; ARGS fixed in every trial; SEEDS=N per trial)
	@$(RUN) python tools/sweep.py local "$(SWEEP)" --seeds "$(SEEDS)" $(CHECK_FLAG) -- $(ARGS)

slurm: setup ## Write an sbatch script for MODEL on GPUS per node x NODES (prints its path)
	@$(RUN) python tools/slurm.py --model "$(MODEL)" --exp "$(EXP)" --gpus "$(GPUS)" --nodes "$(NODES)" $(CHECK_FLAG) -- $(ARGS)

bench: setup ## Benchmark MODEL -> bench/<MODEL>.json (contended rows re-run; STRICT=1 fails on any left)
	@$(RUN) python tools/bench.py --model "$(MODEL)" $(if $(STRICT),--strict,) $(CHECK_FLAG) -- $(ARGS)

bench-report: setup ## Write docs/benchmarks.md from the last bench/<package>.json of every package
	@$(RUN) python tools/bench.py --report

gpu-check: setup ## Prove every package on this machine's GPUs -> gpu_check/gpu_check.json (DRY_RUN=1: no GPU)
	@$(RUN) python tools/gpu_check.py $(if $(DRY_RUN),--dry-run,)

test: setup ## Run the test suite (no slow/gpu tests): the CI command
	@$(PYTEST) -m "not slow and not gpu" -q $(TESTS)

test-full: setup ## Run every test including slow ones (gpu tests only with a GPU)
	@$(PYTEST) -q $(if $(NO_GPU),-m "not gpu",) $(TESTS)

lint: setup ## Ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

format: setup ## Ruff autofix and format
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

clean: ## Remove caches and build outputs (keeps runs/ and data/)
	rm -rf .pytest_cache .ruff_cache dist build bench sweeps gpu_check
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
