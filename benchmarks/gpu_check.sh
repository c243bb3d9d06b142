#!/usr/bin/env bash
# Run benchmarks/gpu_check.py from the repository root (see its docstring): `bash benchmarks/gpu_check.sh` on a
# GPU machine; `bash benchmarks/gpu_check.sh --device cpu --smoke --threads 1` for a CPU run at tiny sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
exec "$PY" benchmarks/gpu_check.py "$@"
