# Pigeonhole: every entry point a user or CI needs. Each target sets up what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATASETS ?= ../shared/datasets
export ORT_DISABLE_TELEMETRY := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv demo up test soak lint format model synth synth-cli layers lock bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,local,dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with everything (runtime, training, local, dev)

demo: $(STAMP)  ## the main job: classify a stream of events end to end on a local AWS emulator
	$(BIN)/pigeonhole local demo

up: $(STAMP)  ## keep the local emulator and poller running; prints the endpoint to send events to
	$(BIN)/pigeonhole local up

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check functions infra tests
	$(BIN)/ruff format --check functions infra tests
	$(BIN)/mypy
	MYPYPATH=tests/infra $(BIN)/mypy infra/pigeonhole_infra infra/app.py layers/build_runtime_layer.py tests/infra

format: $(STAMP)
	$(BIN)/ruff format functions infra tests
	$(BIN)/ruff check --fix functions infra tests

test: lint infra/node_modules  ## lint, then every test (unit, functional, end to end, model, infra)
	$(BIN)/pytest

soak: $(STAMP)  ## long reliability runs: 100,000 events under faults (10 % and 30 %) and 100,000 in one warm process
	mkdir -p .local
	PIGEONHOLE_HYPOTHESIS_PROFILE=soak $(BIN)/pytest tests/unit/test_properties.py -q
	$(BIN)/pigeonhole reliability faults --events 100000 --rate 0.1 --rate 0.3 --report .local/soak-faults.json
	$(BIN)/pigeonhole reliability load --events 100000 --checkpoint-every 10000 --no-tracemalloc --report .local/soak-load.json
	$(BIN)/pigeonhole reliability load --events 20000 --checkpoint-every 5000 --tracemalloc --report .local/soak-load-traced.json

model: $(STAMP)  ## rebuild the default BANKING77 model package into layers/model
	$(BIN)/pigeonhole model build --data $(DATASETS)/banking77/train.csv --eval-data $(DATASETS)/banking77/test.csv \
		--text-column text --label-column category --name banking77-intents --version 1.0.0 --out layers/model

# cdk.json requires an on-call endpoint; these offline checks synthesize a sandbox stack that says
# explicitly it pages nobody. For a real one: make synth SYNTH_CONTEXT=pigeonhole:oncall_email=you@example.org
SYNTH_CONTEXT ?= pigeonhole:oncall=none

synth: $(STAMP)  ## synthesize the CDK app offline (cdk-nag runs) into infra/cdk.out (a sandbox: oncall=none)
	$(BIN)/python infra/app.py -c $(SYNTH_CONTEXT)

synth-cli: $(STAMP) infra/node_modules  ## the same synthesis through the CDK CLI (npx cdk synth)
	cd infra && AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true npx cdk synth --no-notices -c $(SYNTH_CONTEXT)

layers: $(STAMP)  ## build (or reuse from build/) the runtime layer for x86_64 and arm64
	$(BIN)/python layers/build_runtime_layer.py

lock: $(STAMP)  ## re-resolve the runtime layer's hashed lock (layers/runtime/requirements.txt) from requirements.in
	$(BIN)/python layers/build_runtime_layer.py --lock

infra/node_modules: infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	touch infra/node_modules

bench: $(STAMP)  ## side-by-side benchmarks (latency, cold start, size, counted AWS requests, $ per million) -> docs/benchmarks.md + .json
	$(BIN)/pigeonhole bench

clean:
	rm -rf $(VENV) infra/cdk.out infra/node_modules build .mypy_cache .ruff_cache .pytest_cache
