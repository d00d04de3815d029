#!/usr/bin/env bash
# The main job: a fresh virtual environment with the embedded MPICH wheel, then a Dask job
# on N ranks (rank 0 scheduler, rank 1 the client in examples/hello.py, the rest workers).
#   bash scripts/demo.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-6}
bash scripts/setup-venv.sh mpich
VENV=${VENV:-.venv}
exec "$VENV/bin/mpiexec" -n "$N" "$VENV/bin/python" examples/hello.py
