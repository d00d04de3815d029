#!/usr/bin/env bash
# Everything the tests need, then the tests: the virtual environment (MPICH wheel, test
# tools), and, as root, the real Slurm (one node and three nodes) and Grid Engine clusters
# of ci/clusters, stopped again at the end. Extra arguments go to pytest.
#   bash scripts/test.sh [-k pattern]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup-venv.sh mpich,test
bash scripts/setup-ucx-venv.sh  # .venv-ucx: distributed-ucxx pins another dask
started=0
if [ "$(id -u)" = 0 ] && [ "${DASK_BATCH_NO_CLUSTERS:-0}" != 1 ]; then
  bash ci/install-browser.sh  # headless Chromium for the JupyterLab tests
  bash ci/clusters/start-all.sh
  started=1
else
  echo "test.sh: not root: real Slurm and Grid Engine tests will skip" >&2
fi
stop() { [ "$started" = 1 ] && bash ci/clusters/stop-all.sh >/dev/null 2>&1 || true; }
trap stop EXIT
"$VENV/bin/ruff" check dask_batch tests mpi_tests benchmarks examples
"$VENV/bin/lint-imports" --no-cache  # the package's layers and no import circles (pyproject.toml)
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
