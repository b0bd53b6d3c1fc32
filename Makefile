# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
# Real data for development and CI lies beside the project when present (see data/README.md).
export SKINART_DATA ?= $(if $(wildcard $(SHARED_DATA)/PROVENANCE.md),$(SHARED_DATA),)

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test,lite,ray,onnx,certify]'
	touch $@

demo: install
	$(BIN)/skinart run recipes/quickstart.yaml --out runs/quickstart --executor ray

# --durations=15: the 15 slowest tests in every run's output (CI's included); `-m "not slow"` leaves out what trains end to end.
# Two pytest-xdist workers, a module to each (its module-scoped fixtures built once), the end-to-end modules first
# (conftest.py orders them; --no-loadscope-reorder keeps that order): on 2 cores the suite takes 0.6 of its time on one.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

clean:
	rm -rf runs
