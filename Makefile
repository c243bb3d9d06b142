# Quickstart: `make demo` runs the whole study on the embedded dataset; `make test` runs the tests.
# Both create .venv and install what they need from the package registries (nothing else is downloaded).
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

$(VENV)/.installed: pyproject.toml
	@echo "nasflow: creating $(VENV) and installing PyTorch, Snakemake, DVC and the rest from the package registries"
	@echo "nasflow: (~6 GB with torch's CUDA libraries; a few minutes; pip lists each package as it goes)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -e '.[pipeline,test,search]' 2>&1 | grep --line-buffered -E '^(Collecting|Successfully|ERROR|error)' || true
	$(PY) -c 'import nasflow, torch, snakemake, dvc' || { echo "nasflow: install failed (rerun without the filter: $(PY) -m pip install -e '.[pipeline,test,search]')"; exit 1; }
	@echo "nasflow: installed into $(VENV)"
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
