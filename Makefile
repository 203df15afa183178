# makemore-lab. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_DATA ?= ../shared/data/names.txt
ARGS ?=
SLURM_DIR ?= /tmp/makemore-lab-slurm
ABLATION_DIR := outputs/ablation/$(shell date +%Y-%m-%d_%H-%M-%S)
LECTURE_ROWS := original,fix_softmax,fix_tanh_saturation,kaiming,batchnorm
# SEEDS=N runs the lecture's seed (conf/config.yaml's) and the N-1 after it, for every row
SEEDS ?= 1
LECTURE_SEED := 2147483647
SEED_SWEEP := $(if $(filter-out 1,$(SEEDS)),'seed=range($(LECTURE_SEED),$(shell echo $$(($(LECTURE_SEED) + $(SEEDS)))))')

.PHONY: help install data train sweep ablation table bench bench-startup bench-seeds bench-sweep bench-slurm bench-gpu test test-all test-slurm slurm-up slurm-down screenshot lint format tensorboard clean
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement could pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with torch (CPU) and the project

data:  ## copy names.txt from $(SHARED_DATA) if it is there (else the first run downloads it)
	@if [ ! -f data/names.txt ] && [ -f $(SHARED_DATA) ]; then cp $(SHARED_DATA) data/names.txt; fi

train: install data  ## train the default experiment (extra overrides: make train ARGS="init.gain=1")
	$(PY) train.py $(ARGS)

sweep: install data  ## the headline sweep: BatchNorm on/off x gain 1, 5/3
	$(PY) train.py -m model.batchnorm=true,false init.gain=1,5/3 $(ARGS)

ablation: install data  ## the lecture's 5-row loss table at full length (200k steps each, stacked), beside its numbers; SEEDS=5: 5 seeds per row
	$(PY) train.py -m experiment=$(LECTURE_ROWS) $(SEED_SWEEP) hydra/launcher=stacked hydra.sweep.dir=$(ABLATION_DIR) $(ARGS); \
	status=$$?; $(VENV)/bin/makemore-table $(ABLATION_DIR) --reference --baseline previous; exit $$status

table: install  ## the ablation table and plots of a sweep: make table SWEEP=outputs/multiruns/<timestamp>
	$(VENV)/bin/makemore-table $(SWEEP) --reference

bench: install data  ## steps/s against the lecture's own loop: default, no dynamics callback, compiled (minutes)
	$(PY) -m benchmarks.bench $(ARGS)

bench-startup: install data  ## seconds before training: --help, a refused value, a 3,000-step job's first step
	$(PY) -m benchmarks.startup $(ARGS)

bench-seeds: install data  ## make ablation with 5 seeds against 1 seed, and the table's time (ARGS="--out DIR" keeps them)
	$(PY) -m benchmarks.seeds $(ARGS)

bench-sweep: install data  ## the stacked launcher against the basic one, 16-job memory (ARGS="--ablation": + the 5 rows)
	$(PY) -m benchmarks.sweep $(ARGS)

bench-slurm: install data  ## a 16-job seed grid on SLURM: one stacked task against a task per job (a one-node SLURM if SLURM_CONF is unset)
	$(PY) -m benchmarks.slurm $(ARGS)

bench-gpu: install data  ## on a CUDA machine: the GPU test, then job-steps/s of 1, 16, 64 stacked jobs (benchmarks/gpu.sh)
	PY=$(PY) bash benchmarks/gpu.sh

test: install data  ## the test suite (what CI runs), on two workers (pytest-xdist)
	$(PY) -m pytest -n 2 --dist loadgroup

test-all: install data  ## the test suite plus the slow end-to-end runs and the TensorBoard browser test
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slurm"

test-slurm: install data  ## the sweeps on a one-node SLURM started here (needs Debian's slurm-wlm and munge)
	$(PY) -m pytest -m slurm

slurm-up:  ## start a one-node SLURM under $(SLURM_DIR) and print the SLURM_CONF line to export
	@scripts/slurm_local.sh up $(SLURM_DIR)

slurm-down:  ## stop the one-node SLURM of slurm-up
	@scripts/slurm_local.sh down $(SLURM_DIR)

screenshot: install data  ## retake docs/tensorboard.png and docs/tensorboard_hparams.png with the browser test (needs chromium)
	MAKEMORE_LAB_SCREENSHOT=docs/tensorboard.png MAKEMORE_LAB_HPARAMS_SCREENSHOT=docs/tensorboard_hparams.png \
		$(PY) -m pytest -m slow tests/test_tensorboard_browser.py

lint: install  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install  ## ruff: fix what it can and format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

tensorboard: install  ## browse all runs on http://localhost:6006
	$(VENV)/bin/tensorboard --logdir outputs --host 127.0.0.1 --port 6006

clean:  ## remove caches and build files (keeps outputs/ and .venv)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
