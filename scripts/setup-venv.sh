#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment at $VENV (default .venv) with the
# extras given as arguments, e.g. `bash scripts/setup-venv.sh mpich,test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${1:-mpich}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
