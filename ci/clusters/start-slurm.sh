#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster (Debian bookworm slurm-wlm 22.05 + munge)
# as root, without systemd. Idempotent: a running, healthy cluster is left alone; a
# changed slurm.conf restarts the daemons.
#
#   bash ci/clusters/start-slurm.sh   # install (if needed), start munged/slurmctld/slurmd, smoke-test
#   bash ci/clusters/stop-slurm.sh    # stop them again (by PID)
#
# Clients need nothing special: /etc/slurm/slurm.conf is Slurm's default config path
# (do NOT export SLURM_CONF=/etc/slurm-mn/... when you mean this cluster).
#
# Env knobs:
#   SLURM_CI_CPUS=16           CPUs advertised for the node (oversubscribes the real cores;
#                              srun -n N needs N <= this, otherwise it waits forever)
#   SLURM_CI_MPI=1             also install openmpi-bin + libpmix-dev so `srun --mpi=pmix` works
#   SLURM_CI_MPI_DEFAULT=none  MpiDefault in slurm.conf (none | pmix | pmi2)
#   SLURM_CI_TIMEOUT=60        seconds to wait for the node to become usable
#   SLURM_CI_GPUS=8            GPUs the node advertises as gres, backed by stand-in device
#                              files (character devices like /dev/null, outside /dev): sbatch
#                              --gpus-per-task/--gpus-per-node are checked and granted, and
#                              no real device exists
set -euo pipefail
LOG_TAG=start-slurm
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CPUS=${SLURM_CI_CPUS:-16}
GPUS=${SLURM_CI_GPUS:-8}
WANT_MPI=${SLURM_CI_MPI:-1}
MPI_DEFAULT=${SLURM_CI_MPI_DEFAULT:-none}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}
CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
H=$(hostname -s)
unset SLURM_CONF   # our own client calls below must reach this cluster

die() {
  log "ERROR: $*"
  for f in "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" /var/log/munge/munged.log; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root"

# --- 1. install ---------------------------------------------------------------
PKGS=("${SLURM_PKGS[@]}")
[ "$WANT_MPI" = 1 ] && PKGS+=("${MPI_PKGS[@]}")
HAD_PMIX=0
dpkg-query -W -f='${Status}' libpmix-dev 2>/dev/null | grep -q "install ok installed" && HAD_PMIX=1
ensure_packages "${PKGS[@]}" || die "package installation failed"
FORCE_RESTART=0
# the pmix plugin of a slurmd started before libpmix-dev existed stays broken: restart it
if [ "$WANT_MPI" = 1 ] && [ "$HAD_PMIX" = 0 ] && pid_alive /run/slurmd.pid; then FORCE_RESTART=1; fi

# --- 2. munge (shared with the multi-node cluster) ----------------------------------
ensure_munge || die "munge"

# --- 3. slurm.conf ---------------------------------------------------------------
MEM=$(awk '/^MemTotal:/{printf "%d", $2/1024*0.9}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
NEW=$(mktemp)
cat > "$NEW" <<EOF
# Written by ci/clusters/start-slurm.sh: single-node CI cluster, no cgroups, no accounting.
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# advertise CPUs=$CPUS even though the machine has fewer cores; don't drain the node for it
SlurmdParameters=config_overrides
MpiDefault=$MPI_DEFAULT
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
NodeName=$H NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# stand-in GPU device files: Slurm wants a character device per GPU; these are /dev/null's
# (1:3), kept out of /dev so that nothing takes them for real GPUs
GPU_DIR=/var/lib/slurm-ci-gpus
mkdir -p "$GPU_DIR"
for ((i = 0; i < GPUS; i++)); do
  [ -c "$GPU_DIR/gpu$i" ] || mknod -m 666 "$GPU_DIR/gpu$i" c 1 3
done
GRES_NEW=$(mktemp)
echo "NodeName=$H Name=gpu File=$GPU_DIR/gpu[0-$((GPUS - 1))]" > "$GRES_NEW"
if ! cmp -s "$GRES_NEW" /etc/slurm/gres.conf; then
  install -m 644 "$GRES_NEW" /etc/slurm/gres.conf
  [ -f "$CONF" ] && FORCE_RESTART=1
fi
rm -f "$GRES_NEW"
if ! cmp -s "$NEW" "$CONF"; then
  log "writing $CONF"
  if [ -f "$CONF" ]; then FORCE_RESTART=1; fi
  install -m 644 "$NEW" "$CONF"
fi
rm -f "$NEW"
if [ "$FORCE_RESTART" = 1 ]; then
  log "configuration changed: restarting slurm daemons"
  stop_pids /run/slurmd.pid /run/slurmctld.pid
fi

# --- 4. daemons (they daemonize and write their pid files themselves) ----------------
if ! pid_alive /run/slurmctld.pid; then
  log "starting slurmctld"
  setsid /usr/sbin/slurmctld -f "$CONF" </dev/null >/dev/null 2>&1 || die "slurmctld failed to start"
fi
if ! pid_alive /run/slurmd.pid; then
  log "starting slurmd"
  setsid /usr/sbin/slurmd -f "$CONF" </dev/null >/dev/null 2>&1 || die "slurmd failed to start"
fi

# --- 5. wait until the node is usable, then smoke-test ---------------------------------
deadline=$((SECONDS + TIMEOUT))
while :; do
  st=$(sinfo -h -n "$H" -o %t 2>/dev/null | head -n1 || true)
  case "$st" in
    idle | mix | alloc) break ;;
    drain* | drng | down* | fail*) scontrol update NodeName="$H" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  [ $SECONDS -ge $deadline ] && die "node $H not usable after ${TIMEOUT}s (state: '${st:-no answer from slurmctld}')"
  sleep 0.5
done
out=$(cd /tmp && timeout "$TIMEOUT" srun -K -N1 -n1 --immediate="$TIMEOUT" true 2>&1) ||
  die "smoke test 'srun -n1 true' failed: $out"
log "Slurm is up: node $H, $CPUS CPUs, partition debug, conf $CONF (took ${SECONDS}s)"
