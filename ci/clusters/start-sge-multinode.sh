#!/usr/bin/env bash
# Grid Engine across three nodes: one sge_execd inside each node namespace of the
# three-node Slurm (start-slurm-multinode.sh: node1..node3, eth0 = 198.18.0.N,
# ib0 = 198.19.0.N, /tmp and PIDs shared), all registered with the qmaster of the
# single-node Grid Engine (start-sge.sh, host `vm`). Both must be running; this script
# only adds to them:
#
#   * admin + exec hosts node1..node3 (host configuration: execd_params
#     ENABLE_ADDGRP_KILL=TRUE, so a deleted job's ranks die too), host group @mnhosts
#   * cluster queue mn.q on @mnhosts only (4 slots per node, load_thresholds NONE, a
#     per-node tmpdir /var/tmp/sge-mn/nodeN: with a shared /tmp the per-job
#     $TMPDIR of every node would be the same directory, and `qrsh -inherit` then fails
#     with "qrsh_starter: cannot write pid file /tmp/...")
#   * PE mpi ($round_robin, control_slaves TRUE, job_is_first_task FALSE), in mn.q only
#
# all.q, @allhosts and PE smp (host vm) are not touched, so single-node jobs stay on vm;
# jobs for the nodes ask for the queue and the PE:
#
#   bash ci/clusters/start-sge-multinode.sh
#   export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
#   qsub -sync y -q mn.q -pe mpi 6 job.sh    # $PE_HOSTFILE: node1..3 with 2 slots each;
#                                            # MPICH hydra's mpiexec starts ranks on all three
#   bash ci/clusters/stop-sge-multinode.sh   # execds (by PID), queue, PE, host group, hosts
#
# Each execd runs in the node's network namespace (nsenter --net) with its own UTS
# (hostname nodeN) and mount namespace, where a hosts file in which the head's hostname
# is its eth0-network address is bind-mounted over /etc/hosts (the qmaster is `vm`,
# 127.0.0.1 on the head). The execd daemonizes; its PID is found by its network namespace
# (not trusted to SGE_EXECD_PIDFILE) and kept in /run/sge-mn/execd-nodeN.pid.
# Idempotent: healthy execds are kept (an execd in a stale namespace is restarted), the
# queue, PE, host group and host configurations are re-applied on every start. Smoke
# test: a 3-slot job whose $PE_HOSTFILE must list the three nodes and which
# `qrsh -inherit`s hostname on each.
#
# Env knobs: SGE_MN_SLOTS (slots of mn.q per node, default 4),
#            SGE_MN_TIMEOUT (seconds to wait for each step, default 60),
#            MN_NODES, MN_NAME, MN_ETH_NET (must match start-slurm-multinode.sh: 3, node, 198.18.0)
set -euo pipefail
LOG_TAG=start-sge-mn
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SLOTS=${SGE_MN_SLOTS:-4}
TIMEOUT=${SGE_MN_TIMEOUT:-60}
NODES=${MN_NODES:-3}
NAME=${MN_NAME:-node}
ETH_NET=${MN_ETH_NET:-198.18.0}
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
H=$(hostname)
RUN=/run/sge-mn                  # pid files, node hosts file, execd stdio
TMPBASE=/var/tmp/sge-mn          # per-node queue tmpdir
SPOOL=/var/spool/gridengine/execd
QUEUE=mn.q PE=mpi HGRP=@mnhosts
die() {
  log "ERROR: $*"
  for f in "$SPOOL"/"$NAME"*/messages "$RUN"/execd-*.stdio; do
    [ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 10 "$f" >&2; }
  done
  exit 1
}
fail() { log "ERROR: $*"; exit 1; }   # one line, for what is missing before anything starts
[ "$(id -u)" = 0 ] || fail "must run as root"
[[ "$NODES" =~ ^[0-9]+$ ]] && [ "$NODES" -ge 1 ] || fail "MN_NODES must be a positive number"
[[ "$SLOTS" =~ ^[0-9]+$ ]] && [ "$SLOTS" -ge 1 ] || fail "SGE_MN_SLOTS must be a positive number"
NODE_NAMES=$(seq 1 "$NODES" | sed "s/^/$NAME/" | tr '\n' ' ')
NODE_LIST=$(echo "$NODE_NAMES" | sed 's/ *$//; s/ /,/g')

# --- 1. prerequisites: the single-node SGE and the node networks --------------------
command -v qconf >/dev/null && timeout 10 qconf -sh >/dev/null 2>&1 ||
  fail "the single-node Grid Engine is not running (start it first: bash ci/clusters/start-sge.sh)"
for i in $(seq 1 "$NODES"); do
  [ -e "/run/netns/$NAME$i" ] && ip -n "$NAME$i" -4 -o addr show dev eth0 2>/dev/null | grep -q " $ETH_NET.$i/" ||
    fail "node network $NAME$i ($ETH_NET.$i) is not up (start it first: bash ci/clusters/start-slurm-multinode.sh)"
  getent hosts "$NAME$i" | grep -q "^$ETH_NET.$i " ||
    fail "$NAME$i does not resolve to $ETH_NET.$i on this host (the /etc/hosts block of start-slurm-multinode.sh)"
done
mkdir -p "$RUN"

# The nodes must resolve the qmaster's name ($H, act_qmaster) to the head's eth0-network
# address. start-slurm-multinode.sh writes such a hosts file (unless MN_NODE_HOSTS=0);
# otherwise derive one the same way: /etc/hosts without $H on 127.x lines, plus .254 $H.
NODE_HOSTS=/run/slurm-mn/hosts.nodes
if ! awk -v ip="$ETH_NET.254" -v h="$H" '$1 == ip { for (i = 2; i <= NF; i++) if ($i == h) f = 1 } END { exit !f }' \
     "$NODE_HOSTS" 2>/dev/null; then
  NODE_HOSTS=$RUN/hosts.nodes
  write_node_hosts "$NODE_HOSTS" "$ETH_NET" "$H"
fi

qc() {  # qc <qconf args...>: quiet unless it fails
  local out; out=$(qconf "$@" 2>&1) || die "qconf $* failed: $out"
}
wait_for() {  # wait_for <what> <command...>
  local what=$1; shift; local i
  for ((i = 0; i < TIMEOUT * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what not ready after ${TIMEOUT}s"
}

EDIT=$(mktemp -d)
trap 'rm -rf "$EDIT"' EXIT

# --- 2. admin hosts (an execd on an admin host registers itself as exec host), and a
# host configuration for each node (before its execd starts): ENABLE_ADDGRP_KILL=TRUE
# kills every process that carries the job's additional group id when a job ends or is
# deleted. Without it a qdel'd multi-node job leaves its ranks running: hydra starts them
# in sessions of their own, out of the reach of the shepherd's process-group kill.
for n in $NODE_NAMES; do
  qconf -sh 2>/dev/null | grep -qx "$n" || qc -ah "$n"
  mkdir -p "$EDIT/conf"; printf 'execd_params ENABLE_ADDGRP_KILL=TRUE\n' > "$EDIT/conf/$n"
  if qconf -sconf "$n" >/dev/null 2>&1; then qc -Mconf "$EDIT/conf/$n"; else qc -Aconf "$EDIT/conf/$n"; fi
done

# --- 3. one execd per node ------------------------------------------------------------
netns_ino() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }
# execd_pids <node>: sge_execd daemons in the node's network namespace (the PID namespace
# is shared, so they are ordinary PIDs here); children that an execd forks are skipped
execd_pids() {
  local want p exe; want="net:[$(netns_ino "$1")]"
  for p in $(ip netns pids "$1" 2>/dev/null); do
    exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
    [ "$exe" = /usr/lib/gridengine/sge_execd ] || continue
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$want" ] || continue
    [ "$(readlink "/proc/$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)/exe" 2>/dev/null)" = /usr/lib/gridengine/sge_execd ] && continue
    echo "$p"
  done
}
is_execd() { [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = /usr/lib/gridengine/sge_execd ]; }
STARTED=() BOOTS=()
for n in $NODE_NAMES; do
  pf=$RUN/execd-$n.pid
  if pid_alive "$pf" && is_execd "$(cat "$pf")"; then
    [ "$(readlink "/proc/$(cat "$pf")/ns/net")" = "net:[$(netns_ino "$n")]" ] && continue
    log "execd of $n is in a stale namespace: restarting it"
    stop_pids "$pf"
  fi
  rm -f "$pf"
  pid=$(execd_pids "$n" | head -n 1)
  if [ -n "$pid" ]; then echo "$pid" > "$pf"; continue; fi   # started before, pid file lost
  install -d -o sgeadmin -g sgeadmin -m 755 "$SPOOL"
  log "starting sge_execd on $n"
  # a clean environment: the execd's variables reach every job it starts. In parallel:
  # sge_execd returns only once its daemon runs (~1 s each)
  setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" \
    nsenter --net="/run/netns/$n" unshare --uts --mount --propagation slave -- \
    sh -c 'hostname "$1" && mount --bind "$2" /etc/hosts && exec /usr/sbin/sge_execd' execd_boot "$n" "$NODE_HOSTS" \
    </dev/null >>"$RUN/execd-$n.stdio" 2>&1 &
  STARTED+=("$n") BOOTS+=($!)
done
for i in "${!BOOTS[@]}"; do
  wait "${BOOTS[$i]}" || die "sge_execd on ${STARTED[$i]} failed to start (see $RUN/execd-${STARTED[$i]}.stdio)"
done
for n in "${STARTED[@]}"; do
  pid=
  for _ in $(seq 1 $((TIMEOUT * 4))); do
    pid=$(execd_pids "$n" | head -n 1); [ -n "$pid" ] && break; sleep 0.25
  done
  [ -n "$pid" ] || die "no sge_execd running in $n after ${TIMEOUT}s"
  echo "$pid" > "$RUN/execd-$n.pid"
done
for n in $NODE_NAMES; do wait_for "exec host $n" sh -c "qconf -sel | grep -qx '$n'"; done

# --- 4. host group, PE, queue (re-applied on every start) -------------------------
printf 'group_name %s\nhostlist %s\n' "$HGRP" "$NODE_NAMES" > "$EDIT/hgrp"
if qconf -shgrp "$HGRP" >/dev/null 2>&1; then qc -Mhgrp "$EDIT/hgrp"; else qc -Ahgrp "$EDIT/hgrp"; fi
cat > "$EDIT/pe" <<EOF
pe_name            $PE
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$round_robin
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
if qconf -sp "$PE" >/dev/null 2>&1; then qc -Mp "$EDIT/pe"; else qc -Ap "$EDIT/pe"; fi
# queue: qconf's own template (dumped via a fake $EDITOR), patched; one tmpdir per node
TMPDIRS=/tmp
for n in $NODE_NAMES; do
  install -d -m 1777 "$TMPBASE/$n"
  TMPDIRS="$TMPDIRS,[$n=$TMPBASE/$n]"
done
printf '#!/bin/sh\ncp "$1" %s/q.tmpl\n' "$EDIT" > "$EDIT/dump.sh"; chmod +x "$EDIT/dump.sh"
if qconf -sq "$QUEUE" >/dev/null 2>&1; then qconf -sq "$QUEUE" > "$EDIT/q.tmpl"; else EDITOR="$EDIT/dump.sh" qconf -aq "$QUEUE" >/dev/null 2>&1 || true; fi
[ -s "$EDIT/q.tmpl" ] || die "could not obtain a queue template"
# a queue file's attributes may continue over lines ending in '\': join them first
sed -e ':a' -e '/\\$/{N;s/\\\n *//;ba' -e '}' "$EDIT/q.tmpl" |
  sed -e "s/^qname .*/qname $QUEUE/" -e "s/^hostlist .*/hostlist $HGRP/" -e "s/^slots .*/slots $SLOTS/" \
    -e "s/^pe_list .*/pe_list $PE/" -e 's/^load_thresholds .*/load_thresholds NONE/' \
    -e 's#^shell .*#shell /bin/bash#' -e "s#^tmpdir .*#tmpdir $TMPDIRS#" > "$EDIT/q"
if qconf -sq "$QUEUE" >/dev/null 2>&1; then qc -Mq "$EDIT/q"; else qc -Aq "$EDIT/q"; fi

# --- 5. wait for the queue instances, then smoke-test -------------------------------
queue_ok() {  # queue_ok <node>: instance exists, host reports load (not -NA-), no state flag (au, E, d, ...)
  local line; line=$(qstat -f -q "$QUEUE@$1" 2>/dev/null | grep "^$QUEUE@") || return 1
  echo "$line" | grep -q -- '-NA-' && return 1
  [ "$(echo "$line" | awk '{print NF}')" -le 5 ]   # a 6th column means a state flag
}
for n in $NODE_NAMES; do
  qmod -c "$QUEUE@$n" >/dev/null 2>&1 || true   # clear a leftover error state
  wait_for "queue instance $QUEUE@$n" queue_ok "$n"
done
SMOKE=$(mktemp -d)
cat > "$SMOKE/job.sh" <<'EOF'
#!/bin/bash
awk '{print $1}' "$PE_HOSTFILE" | sort | tr '\n' ' '; echo
{ for h in $(awk '{print $1}' "$PE_HOSTFILE"); do qrsh -inherit "$h" hostname & done; wait; } | sort | tr '\n' ' '; echo
EOF
want="$(echo "$NODE_NAMES" | tr ' ' '\n' | grep -v '^$' | sort | tr '\n' ' ')"
if ! (cd "$SMOKE" && timeout "$TIMEOUT" qsub -sync y -cwd -j y -o smoke.out -N sge-mn-smoke \
      -q "$QUEUE" -pe "$PE" "$NODES" job.sh >/dev/null 2>&1) ||
   [ "$(cat "$SMOKE/smoke.out" 2>/dev/null)" != "$(printf '%s\n%s' "$want" "$want")" ]; then
  out=$(tr '\n' ';' < "$SMOKE/smoke.out" 2>/dev/null || true)
  rm -rf "$SMOKE"
  die "smoke job (-q $QUEUE -pe $PE $NODES: \$PE_HOSTFILE + qrsh -inherit hostname) failed within ${TIMEOUT}s; output: ${out:-none}, wanted: $want"
fi
rm -rf "$SMOKE"
log "SGE multi-node is up: exec hosts $NODE_LIST, queue $QUEUE ($SLOTS slots each), PE $PE (\$round_robin), took ${SECONDS}s"
log "use: export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL; qsub -q $QUEUE -pe $PE N job.sh"
