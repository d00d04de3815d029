#!/bin/bash
# Dask on a plain list of hosts with MPICH's mpiexec (hydra), no batch system.
# Rank 0 runs the scheduler, rank 1 runs your script as the client (a plain Client() in it
# connects), every other rank is a worker. The exit code is your script's.
#
#   HOSTS=node1:4,node2:4,node3:4 bash launchers/mpirun-hosts.sh analysis.py --year 2024
#   HOSTFILE=hosts.txt NRANKS=16 bash launchers/mpirun-hosts.sh analysis.py
#
# Hosts must be reachable with ssh without a password and see the same paths (PYTHON,
# the script, the working directory). Ctrl-C (SIGINT) or SIGTERM to this script ends the job:
# the client gets dask_batch.AllocationEnding on SIGTERM, as at a walltime.

# ---------------------------------------------------------------- edit here
# The Python that has dask-batch installed (a virtual environment, a conda env, a module).
PYTHON=${PYTHON:-$HOME/venvs/dask/bin/python}
DASK_BATCH=${DASK_BATCH:-$(dirname "$PYTHON")/dask-batch}
# MPICH's hydra: the `mpich` wheel puts it next to PYTHON. (Open MPI's mpirun takes
# "--host node1:4,node2:4" or "--hostfile F" with "node1 slots=4" lines instead.)
MPIEXEC=${MPIEXEC:-$(dirname "$PYTHON")/mpiexec}
# Hosts: HOSTS (host:ranks,...) or HOSTFILE (one "host:ranks" per line).
HOSTS=${HOSTS:-localhost:4}
HOSTFILE=${HOSTFILE:-}
# Ranks in all (1 scheduler + 1 client + workers); default: the sum of the host counts.
NRANKS=${NRANKS:-}
# Extra mpiexec flags, e.g. "-iface ib0" or "-launcher rsh".
MPIEXEC_FLAGS=${MPIEXEC_FLAGS:-}
# A dead worker rank: hydra ends every rank when one is killed, with or without
# -disable-auto-cleanup (measured with the mpich wheel's hydra 5.0.2); no flag keeps the job
# going. A worker process killed inside its rank (e.g. out of memory) survives under a nanny,
# which restarts it:
# export DASK_BATCH__WORKER__NANNY=true
# Optional settings (see docs/configuration.md), e.g.:
# export DASK_BATCH__INTERFACE=ib0
# ---------------------------------------------------------------- end of settings

set -u
if [ $# -lt 1 ]; then
  echo "usage: HOSTS=h1:4,h2:4 bash $0 SCRIPT.py [ARGS...]" >&2
  exit 2
fi
if [ -n "$HOSTFILE" ]; then
  where=(-f "$HOSTFILE")
  list=$(tr '\n' ',' < "$HOSTFILE")
else
  where=(-hosts "$HOSTS")
  list=$HOSTS
fi
if [ -z "$NRANKS" ]; then
  NRANKS=0
  for h in ${list//,/ }; do
    n=${h##*:}; [ "$n" = "$h" ] && n=1
    NRANKS=$((NRANKS + n))
  done
fi
# shellcheck disable=SC2086  # MPIEXEC_FLAGS is a list of words
exec "$MPIEXEC" $MPIEXEC_FLAGS "${where[@]}" -n "$NRANKS" "$DASK_BATCH" run "$@"
