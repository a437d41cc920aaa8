# Make a .venv, install the CPU build of torch first (a plain `torch` requirement would pull a
# multi-GB CUDA build), then this project in editable mode with its dev extra.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: venv run test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: venv  ## the main job: tune the optimizer zoo on a local Ray
	$(VENV)/bin/raytune-opt run examples/quickstart.yaml

test: venv  ## the test suite
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check raytune_opt tests benchmarks examples
	$(VENV)/bin/ruff format --check raytune_opt tests benchmarks examples

bench: venv
	$(PY) benchmarks/optim_step.py

clean:
	rm -rf $(VENV)
