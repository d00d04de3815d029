#!/usr/bin/env bash
# Create (or reuse) the UCX virtual environment at $UCX_VENV (default .venv-ucx): dask-batch
# with the [ucx,mpich] extras plus numpy. distributed-ucxx-cu12 pins dask (0.52 pins
# dask==2026.7.1 through rapids-dask-dependency), which can conflict with the main .venv, so
# UCX lives in its own venv. Idempotent: a second run is a quick no-op pip install (~4 s).
#   bash scripts/setup-ucx-venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
UCX_VENV=${UCX_VENV:-.venv-ucx}
PY=${PYTHON:-python3}
# the dask release distributed-ucxx-cu12 0.52 was built against; DASK_PIN= to drop the pin
DASK_PIN=${DASK_PIN-2026.7.1}
if [ ! -x "$UCX_VENV/bin/python" ]; then
  "$PY" -m venv "$UCX_VENV"
  "$UCX_VENV/bin/python" -m pip install -q --upgrade pip
fi
pins=()
if [ -n "$DASK_PIN" ]; then
  pins=("dask==$DASK_PIN" "distributed==$DASK_PIN")
fi
"$UCX_VENV/bin/python" -m pip install -q -e ".[ucx,mpich]" numpy "${pins[@]}"
"$UCX_VENV/bin/python" -c "import distributed_ucxx, libucx, mpi4py, numpy, dask_batch" || {
  echo "setup-ucx-venv.sh: $UCX_VENV cannot import distributed_ucxx" >&2
  exit 1
}
