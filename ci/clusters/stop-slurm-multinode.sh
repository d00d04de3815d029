#!/usr/bin/env bash
# Stop the multi-node Slurm started by start-slurm-multinode.sh and remove what it built:
# cancels jobs, stops slurmd/slurmctld by the PIDs in their pid files, kills any process
# still living in one of the node network namespaces (only processes started inside
# those namespaces can be there), deletes the namespaces, veths, bridges and the
# /etc/hosts block. munged is stopped only if the single-node cluster (start-slurm.sh)
# is not running.
#
#   bash ci/clusters/stop-slurm-multinode.sh              # stop + remove networks
#   bash ci/clusters/stop-slurm-multinode.sh --keep-munge # leave munged running
#   bash ci/clusters/stop-slurm-multinode.sh --purge      # also wipe controller/slurmd state and logs
#
# Env knobs (must match the start script if changed there):
#   MN_NAME=node  MN_CONF_DIR=/etc/slurm-mn
set -euo pipefail   # every step below is best effort: failures are caught with || true
KEEP_MUNGE=0 PURGE=0
for a in "$@"; do
  case "$a" in --keep-munge) KEEP_MUNGE=1 ;; --purge) PURGE=1 ;; *) echo "unknown arg $a" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "[stop-slurm-mn] must run as root" >&2; exit 1; }
NAME=${MN_NAME:-node}
CONF=${MN_CONF_DIR:-/etc/slurm-mn}/slurm.conf
RUN=/run/slurm-mn
LOGDIR=/var/log/slurm-mn
SPOOL=/var/spool/slurm-mn
HOSTS_BEGIN="# >>> slurm-multinode >>>"
HOSTS_END="# <<< slurm-multinode <<<"
export SLURM_CONF=$CONF
LOG_TAG=stop-slurm-mn
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"


# node list: what the start script recorded, plus any leftover namespace with our prefix
NODE_LIST=$( { cat "$RUN/nodes" 2>/dev/null || true; ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NAME[0-9]+\$" || true; } | sort -u)

# 1. cancel jobs while the daemons are still up
if [ -f "$CONF" ] && pid_ok=$(cat "$RUN/slurmctld.pid" 2>/dev/null) && kill -0 "$pid_ok" 2>/dev/null &&
   timeout 5 squeue -h >/dev/null 2>&1; then
  jobs=$(timeout 5 squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 40); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break; sleep 0.25; done
  fi
fi

# 2. slurmds, then everything left in the node namespaces (job steps, stray tasks)
# slurmd and slurmctld together: each slurmd needs ~2 s to shut down, in parallel that is 2 s total
PIDFILES=("$RUN/slurmctld.pid")
for n in $NODE_LIST; do PIDFILES+=("$RUN/slurmd-$n.pid"); done
stop_pids "${PIDFILES[@]}"
for n in $NODE_LIST; do
  [ -e "/run/netns/$n" ] || continue
  pids=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ' || true)
  if [ -n "${pids// /}" ]; then
    log "killing leftover processes in $n: $pids"
    kill $pids 2>/dev/null || true
    for _ in $(seq 1 20); do [ -z "$(ip netns pids "$n" 2>/dev/null || true)" ] && break; sleep 0.25; done
    pids=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${pids// /}" ]; then kill -9 $pids 2>/dev/null || true; fi
  fi
done

# 3. munged is shared with the single-node cluster: stop it only if neither
#    slurmctld is alive any more (this one is gone by now)
[ "$KEEP_MUNGE" = 1 ] || stop_munge_if_unused
rm -f "$RUN/munged.ours"   # marker of older versions of the start script

# 4. network: veths, namespaces, bridges
for n in $NODE_LIST; do
  i=${n#"$NAME"}
  ip link del "mnv${i}e" 2>/dev/null || true
  ip link del "mnv${i}i" 2>/dev/null || true
  ip netns del "$n" 2>/dev/null || true
done
for br in $(cat "$RUN/bridges" 2>/dev/null || echo mnbr-eth mnbr-ib); do
  if ip link show "$br" >/dev/null 2>&1; then ip link del "$br" || log "could not delete bridge $br"; fi
done

# 5. /etc/hosts block (rewritten in place)
if grep -qx "$HOSTS_BEGIN" /etc/hosts; then
  tmp=$(mktemp)
  sed "/^$HOSTS_BEGIN\$/,/^$HOSTS_END\$/d" /etc/hosts > "$tmp" && cat "$tmp" > /etc/hosts || log "could not edit /etc/hosts"
  rm -f "$tmp"
fi
rm -f "$RUN/nodes" "$RUN/bridges" "$RUN/hosts.nodes"
if [ "$PURGE" = 1 ]; then rm -rf "${SPOOL:?}" "${LOGDIR:?}"; fi

# 6. report anything that survived
left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NAME[0-9]+\$" | tr '\n' ' ' || true)
if [ -n "${left// /}" ]; then log "WARNING: namespaces still present: $left"; exit 1; fi
log "stopped"
