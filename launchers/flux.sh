#!/bin/bash
# Dask inside one Flux allocation with dask-batch (flux batch, or inside flux alloc).
# Rank 0 runs the scheduler, rank 1 runs your script as the client (a plain Client() in it
# connects), every other task is a worker. The job's exit code is your script's.
#
#   flux batch launchers/flux.sh analysis.py --year 2024
#   flux batch -N 2 -n 16 -t 2h launchers/flux.sh analysis.py
#
# flux: -N 1
# flux: -n 6
# flux: -t 60m
# flux: --job-name=dask-batch
# flux: --output=dask-batch-{{id}}.out
# 2 minutes before the time limit Flux sends SIGUSR2: the client gets
# dask_batch.AllocationEnding, workers retire, every rank ends within
# batch.lifecycle.signal-grace. SIGUSR2 is one of batch.lifecycle.signals (SIGTERM, SIGUSR2).
# The signal goes to the batch job; the `flux run` below asks for it as well, for the tasks.
# flux: --signal=SIGUSR2@120s

# ---------------------------------------------------------------- edit here
# The Python that has dask-batch installed (a virtual environment, a conda env, a module).
PYTHON=${PYTHON:-$HOME/venvs/dask/bin/python}
DASK_BATCH=${DASK_BATCH:-$(dirname "$PYTHON")/dask-batch}
# Tasks: the whole allocation (FLUX_JOB_SIZE is not set in the batch script itself).
NTASKS=${NTASKS:-$(flux resource list -s up -no {ncores})}
# Ranks find each other by FLUX_TASK_RANK / FLUX_JOB_SIZE; with mpi4py and Flux's pmi plugin
# they use MPI. Without MPI they meet through a scheduler file in this (shared) directory.
# A dead worker rank: by default Flux ends the job 30 s after its first task exits;
# "-o exit-timeout=none" (below) lets the others finish (the client's own exit still ends the
# job: dask-batch stops every rank then).
# Optional settings (see docs/configuration.md), e.g.:
# export DASK_BATCH__INTERFACE=hsn0
# ---------------------------------------------------------------- end of settings

set -u
if [ $# -lt 1 ]; then
  echo "usage: flux batch $0 SCRIPT.py [ARGS...]" >&2
  exit 2
fi
exec flux run -n "$NTASKS" -o exit-timeout=none --signal=SIGUSR2@120s "$DASK_BATCH" run "$@"
