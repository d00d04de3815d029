#!/bin/bash
# Dask on a plain list of hosts with MPICH's mpiexec (hydra), no batch system.
# Rank 0 runs the scheduler, rank 1 runs your script as the client (a plain Client() in it
# connects), every other rank is a worker. The exit code is your script's.
#
#   HOSTS=node1:4,node2:4,node3:4 bash launchers/mpirun-hosts.sh analysis.py --year 2024
#   HOSTFILE=hosts.txt NRANKS=16 bash launchers/mpirun-hosts.sh analysis.py
#
# Hosts must be reachable with ssh without a password and see the same paths (PYTHON,
# the script, the working directory).

# ---------------------------------------------------------------- edit here
# The Python that has dask-batch installed (a virtual environment, a conda env, a module).
PYTHON=${PYTHON:-$HOME/venvs/dask/bin/python}
DASK_BATCH=${DASK_BATCH:-$(dirname "$PYTHON")/dask-batch}
# MPICH's hydra: the `mpich` wheel puts it next to PYTHON.
MPIEXEC=${MPIEXEC:-$(dirname "$PYTHON")/mpiexec}
# Hosts: HOSTS (host:ranks,...) or HOSTFILE (one "host:ranks" per line).
HOSTS=${HOSTS:-localhost:4}
HOSTFILE=${HOSTFILE:-}
# Ranks in all (1 scheduler + 1 client + workers); default: the sum of the host counts.
NRANKS=${NRANKS:-}
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
# -disable-auto-cleanup: by default hydra kills every rank when one dies; with it a dead
# worker rank is only a lost worker (the scheduler reruns its tasks on the others; dask-mpi
# #31). Hydra then tells the other ranks with SIGUSR1, so ignore SIGUSR1 (the disposition
# is inherited) and do not count it as a walltime signal.
trap '' USR1
export DASK_BATCH__LIFECYCLE__SIGNALS=${DASK_BATCH__LIFECYCLE__SIGNALS:-'["SIGTERM", "SIGUSR2"]'}
exec "$MPIEXEC" -disable-auto-cleanup "${where[@]}" -n "$NRANKS" "$DASK_BATCH" run "$@"
