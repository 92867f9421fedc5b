# Every target is documented by its `## ` comment; `make` alone lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
INSTALLED := $(VENV)/.installed
COMPOSE_BIN := $(VENV)/lib/python3.11/site-packages/compose/docker-compose

# `make up TRAINERS=3`, `make up MODE=local`; ports via STACK_*_PORT variables.
TRAINERS ?=
MODE ?= auto
export STACK_TRAINERS := $(TRAINERS)
ifeq ($(strip $(TRAINERS)),)
unexport STACK_TRAINERS
endif

.PHONY: help
help: ## Show this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; the platform needs Python 3.11 (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

.PHONY: install
install: $(INSTALLED) ## Create .venv with everything, the local stack's binaries included

.PHONY: lock
lock: $(INSTALLED) ## Re-resolve requirements*.lock from pyproject.toml
	UV=$(BIN)/uv deploy/lock.sh

.PHONY: contracts
contracts: $(INSTALLED) ## Export JSON Schema and AsyncAPI of every message to contracts/schemas
	$(BIN)/python -m contracts.schema write

.PHONY: up
up: $(INSTALLED) ## Start the stack (compose if a Docker engine answers, else local); TRAINERS=N
	@MODE=$(MODE) TRAINERS=$(TRAINERS) COMPOSE=$(COMPOSE_BIN) deploy/stack.sh up

.PHONY: down
down: $(INSTALLED) ## Stop the stack and every process it started
	@MODE=$(MODE) COMPOSE=$(COMPOSE_BIN) deploy/stack.sh down

.PHONY: status
status: $(INSTALLED) ## Show each component of the stack and whether it is healthy
	@MODE=$(MODE) COMPOSE=$(COMPOSE_BIN) deploy/stack.sh status

.PHONY: logs
logs: $(INSTALLED) ## Show the end of every log (P=mlflow for one, FOLLOW=1 to follow)
	@MODE=$(MODE) COMPOSE=$(COMPOSE_BIN) P=$(P) FOLLOW=$(FOLLOW) deploy/stack.sh logs

.PHONY: start-services
start-services: up ## Alias of up

.PHONY: stop-services
stop-services: down ## Alias of down

STRATEGY ?= margin
# Extra options for the flow commands, e.g. ARGS="--rounds 3 --iterations 100".
ARGS ?=

.PHONY: run-both
run-both: up ## Run the baseline and active learning (entropy, margin, least-confident), compared
	@MODE=$(MODE) deploy/stack.sh cli run-both $(ARGS)

.PHONY: run-baseline
run-baseline: up ## Run the full-data baseline flow
	@MODE=$(MODE) deploy/stack.sh cli run-baseline $(ARGS)

.PHONY: run-al
run-al: up ## Run one active-learning flow (STRATEGY=margin by default)
	@MODE=$(MODE) deploy/stack.sh cli run-al --strategy $(STRATEGY) $(ARGS)

.PHONY: run-al-entropy
run-al-entropy: ## Run active learning with entropy sampling
	@$(MAKE) --no-print-directory run-al STRATEGY=entropy

.PHONY: run-al-margin
run-al-margin: ## Run active learning with margin sampling
	@$(MAKE) --no-print-directory run-al STRATEGY=margin

.PHONY: run-al-confident
run-al-confident: ## Run active learning with least-confident sampling
	@$(MAKE) --no-print-directory run-al STRATEGY=least_confident

.PHONY: benchmark
benchmark: up ## Run strategies x 5 seeds (random included) and compare them
	@MODE=$(MODE) deploy/stack.sh cli benchmark $(ARGS)

.PHONY: bench
bench: $(INSTALLED) ## Run the benchmarks under benchmarks/ (20-25 min) and rewrite their tables
	$(BIN)/python -m benchmarks

.PHONY: mlflow-ui
mlflow-ui: ## Print the MLflow UI address
	@echo "MLflow UI: http://127.0.0.1:$${STACK_MLFLOW_PORT:-$${MLFLOW_PORT:-5000}}"

.PHONY: prefect-server
prefect-server: ## Print the Prefect UI address (the server runs with the stack)
	@echo "Prefect UI: http://127.0.0.1:$${STACK_PREFECT_PORT:-$${PREFECT_PORT:-4200}}"

.PHONY: test
test: $(INSTALLED) ## Run every test this machine can run (starts and stops its own stack)
	$(BIN)/pytest

.PHONY: lint
lint: $(INSTALLED) ## Check format, lint, types, Dockerfiles and the compose file (changes nothing)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m contracts.schema check
	$(BIN)/hadolint deploy/docker/*.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(COMPOSE_BIN) --env-file .env.example -f docker-compose.yml config --quiet

.PHONY: format
format: $(INSTALLED) ## Rewrite files with ruff format and ruff's safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: clean
clean: ## Stop the local stack and delete its state (.state) and caches
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m deploy.local down || true; fi
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache .hypothesis
