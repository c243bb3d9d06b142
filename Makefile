# Quickstart: `make demo` runs the whole study on the embedded dataset; `make test` runs the tests.
# Both create .venv and install what they need from the package registries (nothing else is downloaded).
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[pipeline,test,search]'
	touch $@

.PHONY: install demo test test-fast test-slurm bench clean
install: $(VENV)/.installed

demo: install
	snakemake --cores all

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf results .snakemake

test-slurm: install
	$(PY) -m pytest -q -m slurm
