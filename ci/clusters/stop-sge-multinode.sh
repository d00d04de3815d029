#!/usr/bin/env bash
# Stop the Grid Engine nodes added by start-sge-multinode.sh and remove everything it
# added, so that a later start is clean: deletes the jobs of queue mn.q / PE mpi (running
# or pending), stops the sge_execd of node1..node3 by PID (the PIDs from /run/sge-mn plus
# any sge_execd found in a node's network namespace, and every process below them:
# SIGTERM, wait 5 s, SIGKILL; also job processes that left that tree), removes queue
# mn.q, PE mpi, host group @mnhosts, the exec + admin hosts and their host
# configurations, then the per-node tmpdirs, execd spool dirs and /run/sge-mn. The
# single-node SGE (qmaster, host vm, all.q, PE smp) keeps running; without its qmaster
# only the processes and files are removed (the next start re-applies the configuration).
#
#   bash ci/clusters/stop-sge-multinode.sh           # (--purge, as stop-all.sh passes it, is
#                                                    # the same: nothing is kept anyway)
#
# Env knobs (must match the start script if changed there): MN_NODES=3  MN_NAME=node
# Exits 1 if an execd or a configuration object survived.
set -euo pipefail   # every step is best effort: failures are caught with || true
LOG_TAG=stop-sge-mn
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for a in "$@"; do case "$a" in --purge) ;; *) echo "unknown arg $a" >&2; exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
NODES=${MN_NODES:-3}
NAME=${MN_NAME:-node}
RUN=/run/sge-mn
TMPBASE=/var/tmp/sge-mn
SPOOL=/var/spool/gridengine/execd
QUEUE=mn.q PE=mpi HGRP=@mnhosts
EXECD=/usr/lib/gridengine/sge_execd

# nodes: the configured ones plus any that left a pid file, spool dir or tmpdir behind
NODE_NAMES=$( { seq 1 "$NODES" | sed "s/^/$NAME/"
  for f in "$RUN"/execd-*.pid; do [ -e "$f" ] && basename "$f" .pid | sed 's/^execd-//'; done
  for d in "$TMPBASE"/*; do [ -d "$d" ] && basename "$d"; done
  for d in "$SPOOL/$NAME"*; do [ -d "$d" ] && basename "$d"; done
} 2>/dev/null | grep -E "^$NAME[0-9]+\$" | sort -u | tr '\n' ' ')
QMASTER=0
command -v qconf >/dev/null && timeout 5 qconf -sh >/dev/null 2>&1 && QMASTER=1

# 1. jobs that run in mn.q or ask for it or for PE mpi (qstat -r: one job line, then
#    its requests); deleted while the execds can still kill them (qdel, and qdel -f for
#    what is still there after 5 s)
if [ "$QMASTER" = 1 ]; then
  jobs=$(timeout 10 qstat -u '*' -r 2>/dev/null | awk -v q="$QUEUE" -v pe="$PE" '
    $1 ~ /^[0-9]+$/ { id = $1; if (index($0, " " q "@")) hit[id] = 1; next }
    /Hard requested queues:/ && index($0, q) { hit[id] = 1 }
    /Requested PE:/ && $3 == pe { hit[id] = 1 }
    END { for (j in hit) print j }' | sort -u | tr '\n' ' ' || true)
  if [ -n "${jobs// /}" ]; then
    log "deleting jobs: $jobs"
    for force in "" -f; do
      # shellcheck disable=SC2086
      timeout 10 qdel $force $jobs >/dev/null 2>&1 || true
      for _ in $(seq 1 20); do
        left=$(timeout 5 qstat -u '*' 2>/dev/null | awk 'NR > 2 {print $1}' | tr '\n' ' ' || true)
        alive=0; for j in $jobs; do [[ " $left " == *" $j "* ]] && alive=1; done
        [ "$alive" = 0 ] && break 2; sleep 0.25
      done
    done
  fi
fi

# 2. execds by PID: the execd and every process below it (shepherds, job processes), and
#    every process in a node that carries an SGE additional group id (gid_range): job
#    processes that left the tree (hydra's ranks run in sessions of their own)
execd_pids() {  # sge_execd daemons in the node's network namespace (PIDs are shared)
  local p want
  [ -e "/run/netns/$1" ] || return 0
  want="net:[$(stat -L -c %i "/run/netns/$1")]"
  for p in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$EXECD" ] || continue
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$want" ] && echo "$p"
  done
}
descendants() {  # descendants <pid>...: the pids and all processes below them
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = split(roots, todo, " "); for (i = 1; i <= n; i++) { p = todo[i]; if (p == "" || seen[p]++) continue
            print p; m = split(kids[p], k, " "); for (j = 1; j <= m; j++) todo[++n] = k[j] } }'
}
GID_RANGE=65400-65500   # Debian's default, if the qmaster cannot be asked
if [ "$QMASTER" = 1 ]; then GID_RANGE=$(qconf -sconf global 2>/dev/null | awk '$1 == "gid_range" {print $2}'); fi
job_pids() {  # processes in the node's network namespace with a gid of GID_RANGE
  local p want
  [ -e "/run/netns/$1" ] && [ -n "$GID_RANGE" ] || return 0
  want="net:[$(stat -L -c %i "/run/netns/$1")]"
  for p in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$want" ] || continue
    awk -v r="$GID_RANGE" '/^Groups:/ { n = split(r, rs, ","); for (i = 2; i <= NF; i++) for (j = 1; j <= n; j++) {
        split(rs[j], b, "-"); if (b[2] == "") b[2] = b[1]; if ($i + 0 >= b[1] + 0 && $i + 0 <= b[2] + 0) f = 1 } }
      END { exit !f }' "/proc/$p/status" 2>/dev/null && echo "$p"
  done
}
PIDS=() TREE=() JOBS=()
for n in $NODE_NAMES; do
  pf=$RUN/execd-$n.pid
  if [ -f "$pf" ] && [ "$(readlink "/proc/$(cat "$pf")/exe" 2>/dev/null)" = "$EXECD" ]; then PIDS+=("$(cat "$pf")"); fi
  while read -r p; do [ -n "$p" ] && PIDS+=("$p"); done < <(execd_pids "$n")
  while read -r p; do [ -n "$p" ] && JOBS+=("$p"); done < <(job_pids "$n")
done
if [ ${#PIDS[@]} -gt 0 ] || [ ${#JOBS[@]} -gt 0 ]; then
  [ ${#PIDS[@]} -eq 0 ] || mapfile -t PIDS < <(printf '%s\n' "${PIDS[@]}" | sort -un)
  mapfile -t TREE < <(descendants "${PIDS[@]}" "${JOBS[@]}")
  [ ${#PIDS[@]} -eq 0 ] || log "stopping sge_execd on $(echo "$NODE_NAMES" | sed 's/ *$//; s/ /,/g') (pids ${PIDS[*]})"
  [ ${#JOBS[@]} -eq 0 ] || log "killing job processes left in the nodes: ${JOBS[*]}"
  # SIGTERM is sge_execd's own shutdown (~3 s; qconf -ke takes 1.5-2 s longer for the same)
  for p in "${TREE[@]}"; do kill "$p" 2>/dev/null || true; done
fi

# 3. configuration, while the execds shut down: queue (uses PE + host group), PE, host
#    group; the exec and admin hosts once the execds are gone (below)
FAILED=()
if [ "$QMASTER" = 1 ]; then
  if qconf -sq "$QUEUE" >/dev/null 2>&1; then qconf -dq "$QUEUE" >/dev/null 2>&1 || FAILED+=("queue $QUEUE"); fi
  if qconf -sp "$PE" >/dev/null 2>&1; then qconf -dp "$PE" >/dev/null 2>&1 || FAILED+=("PE $PE"); fi
  if qconf -shgrp "$HGRP" >/dev/null 2>&1; then qconf -dhgrp "$HGRP" >/dev/null 2>&1 || FAILED+=("host group $HGRP"); fi
else
  log "qmaster not reachable: queue $QUEUE, PE $PE, $HGRP and the node hosts stay configured (the next start re-applies them)"
fi
if [ ${#TREE[@]} -gt 0 ]; then
  for _ in $(seq 1 20); do
    alive=0; for p in "${TREE[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.25
  done
  for p in "${TREE[@]}"; do
    if kill -0 "$p" 2>/dev/null; then log "pid $p ignored SIGTERM, sending SIGKILL"; kill -9 "$p" 2>/dev/null || true; fi
  done
fi
if [ "$QMASTER" = 1 ]; then
  # one call for all hosts: qconf -de/-dh take a comma-separated list
  hosts=$(qconf -sel 2>/dev/null | grep -xE "$NAME[0-9]+" | paste -sd, || true)
  if [ -n "$hosts" ]; then qconf -de "$hosts" >/dev/null 2>&1 || FAILED+=("exec hosts $hosts"); fi
  hosts=$(qconf -sh 2>/dev/null | grep -xE "$NAME[0-9]+" | paste -sd, || true)
  if [ -n "$hosts" ]; then qconf -dh "$hosts" >/dev/null 2>&1 || FAILED+=("admin hosts $hosts"); fi
  for n in $NODE_NAMES; do
    if qconf -sconf "$n" >/dev/null 2>&1; then qconf -dconf "$n" >/dev/null 2>&1 || FAILED+=("host configuration $n"); fi
  done
fi

# 4. files: per-node tmpdirs, execd spool dirs, pid files and the node hosts file
for n in $NODE_NAMES; do rm -rf "${SPOOL:?}/$n"; done
rm -rf "${TMPBASE:?}" "${RUN:?}"

# 5. report anything that survived
left=()
for p in "${TREE[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
for n in $NODE_NAMES; do while read -r p; do [ -n "$p" ] && left+=("$p"); done < <(execd_pids "$n"); done
[ ${#left[@]} -eq 0 ] || FAILED+=("processes ${left[*]}")
if [ ${#FAILED[@]} -gt 0 ]; then log "ERROR: could not remove: ${FAILED[*]}"; exit 1; fi
log "stopped"
