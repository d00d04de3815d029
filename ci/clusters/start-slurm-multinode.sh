#!/usr/bin/env bash
# Bring up a real MULTI-NODE Slurm cluster (Debian bookworm slurm-wlm 22.05 + munge) on
# ONE Linux machine, as root, without systemd, using Linux namespaces:
#
#   * every compute node nodeN is a network namespace + its own UTS namespace
#     (`hostname` prints nodeN) + its own mount namespace (a sysfs of its netns, and its
#     own /etc/hosts in which the head's hostname is the head's cluster address). The
#     filesystem (also /tmp and /dev/shm) and the PID namespace are shared with the host,
#     like a cluster's shared filesystem.
#   * two bridges in the root namespace play the cluster networks; inside every node
#     the interfaces are literally called eth0 ("ethernet", Slurm traffic) and ib0
#     ("fast" network). The root namespace is the head/login node, with an address on
#     both bridges; slurmctld runs there, one slurmd per node runs inside the node.
#   * nothing is routed off the machine: no default route inside the nodes, no NAT,
#     no forwarding; only 198.18.0.0/15 (benchmarking range) addresses are used.
#
#   bash ci/clusters/start-slurm-multinode.sh  # install (if needed), build nodes, start daemons, smoke-test
#   export SLURM_CONF=/etc/slurm-mn/slurm.conf   # then sinfo/srun/sbatch talk to this cluster
#   bash ci/clusters/stop-slurm-multinode.sh   # stop daemons (by PID), remove namespaces/bridges/hosts lines
#
# Idempotent: a healthy running cluster is left alone; a changed slurm.conf restarts the
# daemons; a broken node network is rebuilt. It does not collide with the single-node
# cluster of start-slurm.sh (own config dir, ports, state, logs, pid files); both can run
# at once and share munged.
#
# Env knobs:
#   MN_NODES=3             number of compute nodes (node1..nodeN), 1..200
#   MN_CPUS=4              CPUs each node advertises (oversubscribes the real cores; allowed
#                          by SlurmdParameters=config_overrides)
#   MN_MEM_MB=<auto>       RealMemory per node in MiB (default: 90% of MemTotal / MN_NODES)
#   MN_NAME=node           node name prefix
#   MN_ETH_NET=198.18.0    /24 of the eth0 network (node i = .i, head = .254)
#   MN_IB_NET=198.19.0     /24 of the ib0 network  (node i = .i, head = .254)
#   MN_IB_MTU=1500         MTU of the ib0 network (e.g. 65520 to look like IPoIB)
#   MN_CONF_DIR=/etc/slurm-mn   where slurm.conf goes (clients need SLURM_CONF=$MN_CONF_DIR/slurm.conf)
#   MN_CTLD_PORT=6827      slurmctld port (single-node cluster uses 6817)
#   MN_SLURMD_PORT=6818    slurmd port (one per node namespace, so no clash)
#   MN_MPI=1               also install openmpi-bin + libpmix-dev (srun --mpi=pmix); 0 to skip
#   MN_MPI_DEFAULT=none    MpiDefault (none | pmi2 | pmix)
#   MN_TIMEOUT=60          seconds to wait for nodes to become usable
#   MN_PRIVATE_SYS=1       give each node a sysfs of its own netns (/sys/class/net = lo eth0 ib0);
#                          0 = nodes see the host's /sys/class/net
#   MN_NODE_HOSTS=1        nodes see /etc/hosts with the head's hostname -> $MN_ETH_NET.254 (as on a
#                          real cluster); 0 = nodes share the head's /etc/hosts (head name -> 127.0.0.1 here)
set -eEuo pipefail

NODES=${MN_NODES:-3}
CPUS=${MN_CPUS:-4}
NAME=${MN_NAME:-node}
ETH_NET=${MN_ETH_NET:-198.18.0}
IB_NET=${MN_IB_NET:-198.19.0}
IB_MTU=${MN_IB_MTU:-1500}
CONF_DIR=${MN_CONF_DIR:-/etc/slurm-mn}
CTLD_PORT=${MN_CTLD_PORT:-6827}
SLURMD_PORT=${MN_SLURMD_PORT:-6818}
WANT_MPI=${MN_MPI:-1}
MPI_DEFAULT=${MN_MPI_DEFAULT:-none}
TIMEOUT=${MN_TIMEOUT:-60}
PRIVATE_SYS=${MN_PRIVATE_SYS:-1}
NODE_HOSTS_ON=${MN_NODE_HOSTS:-1}

CONF=$CONF_DIR/slurm.conf
RUN=/run/slurm-mn            # pid files + state of this script
LOGDIR=/var/log/slurm-mn
SPOOL=/var/spool/slurm-mn
BR_ETH=mnbr-eth              # bridge names (max 15 chars)
BR_IB=mnbr-ib
HOSTS_BEGIN="# >>> slurm-multinode >>>"
HOSTS_END="# <<< slurm-multinode <<<"
H=$(hostname -s)
export SLURM_CONF=$CONF

LOG_TAG=start-slurm-mn
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
die() {
  log "ERROR: $*"
  local f
  for f in "$LOGDIR/slurmctld.log" "$LOGDIR"/slurmd-*.log /var/log/munge/munged.log; do
    [ -f "$f" ] && { echo "--- tail -n 20 $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR
[ "$(id -u)" = 0 ] || die "must run as root"
[[ "$NODES" =~ ^[0-9]+$ ]] && [ "$NODES" -ge 1 ] && [ "$NODES" -le 200 ] || die "MN_NODES must be 1..200"
stop_pid() { stop_pids "$@"; }   # from common.sh

# --- 1. install -------------------------------------------------------------------
PKGS=("${SLURM_PKGS[@]}" "${MN_EXTRA_PKGS[@]}")
[ "$WANT_MPI" = 1 ] && PKGS+=("${MPI_PKGS[@]}")
ensure_packages "${PKGS[@]}" || die "package installation failed"
mkdir -p "$RUN" "$LOGDIR" "$SPOOL/ctld" "$CONF_DIR"

# --- 2. networks: two bridges on the head, one netns per node --------------------
# refuse to run if the ranges are already used by something that is not ours
for net in "$ETH_NET" "$IB_NET"; do
  other=$(ip -o -4 addr show | awk -v n="$net." '$4 ~ "^"n {print $2}' | grep -vx -e "$BR_ETH" -e "$BR_IB" || true)
  [ -z "$other" ] || die "$net.0/24 is already used on interface(s): $other"
done
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 ] || log "note: ip_forward=1 on this host; the node networks get no default route, so nothing leaves the machine"
# with br_netfilter loaded (e.g. by Docker) bridged node-to-node packets go through the
# iptables FORWARD chain; a DROP policy there silently cuts the nodes off from each other
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ] &&
   command -v iptables >/dev/null && iptables -S FORWARD 2>/dev/null | grep -q -e '^-P FORWARD DROP' -e '^-A FORWARD'; then
  log "warning: bridge-nf-call-iptables=1 and FORWARD rules present: node-to-node traffic passes 'iptables -S FORWARD'"
fi

ensure_bridge() {  # ensure_bridge <name> <cidr> <mtu>
  ip link show "$1" >/dev/null 2>&1 || ip link add "$1" type bridge || die "cannot create bridge $1"
  ip link set "$1" mtu "$3" 2>/dev/null || true
  ip -4 addr show dev "$1" | grep -q " ${2%/*}/" || ip addr add "$2" dev "$1"
  ip link set "$1" up
}
ensure_bridge "$BR_ETH" "$ETH_NET.254/24" 1500
ensure_bridge "$BR_IB" "$IB_NET.254/24" "$IB_MTU"

node_net_ok() {  # node_net_ok <i>
  local n=$NAME$1
  [ -e "/run/netns/$n" ] || return 1
  ip -n "$n" -4 -o addr show dev eth0 2>/dev/null | grep -q " $ETH_NET.$1/24" || return 1
  ip -n "$n" -4 -o addr show dev ib0 2>/dev/null | grep -q " $IB_NET.$1/24" || return 1
  ip -n "$n" link show dev eth0 2>/dev/null | grep -q 'state UP' || return 1
  ip link show "mnv${1}e" 2>/dev/null | grep -q "master $BR_ETH" || return 1
  ip link show "mnv${1}i" 2>/dev/null | grep -q "master $BR_IB" || return 1
}
kill_ns_procs() {  # kill every process that lives in the node's network namespace (ours)
  local n=$1 pids
  [ -e "/run/netns/$n" ] || return 0
  pids=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')
  [ -z "${pids// /}" ] && return 0
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 20); do [ -z "$(ip netns pids "$n" 2>/dev/null)" ] && return 0; sleep 0.25; done
  pids=$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')
  [ -n "${pids// /}" ] && kill -9 $pids 2>/dev/null || true
}
build_node_net() {  # build_node_net <i>
  local i=$1 n=$NAME$1
  kill_ns_procs "$n"
  ip link del "mnv${i}e" 2>/dev/null || true
  ip link del "mnv${i}i" 2>/dev/null || true
  ip netns del "$n" 2>/dev/null || true
  ip netns add "$n" || die "ip netns add $n failed"
  # host end stays in the root namespace on the bridge, node end is created as eth0/ib0 inside
  ip link add "mnv${i}e" type veth peer name eth0 netns "$n" || die "veth for $n eth0"
  ip link add "mnv${i}i" mtu "$IB_MTU" type veth peer name ib0 mtu "$IB_MTU" netns "$n" || die "veth for $n ib0"
  ip link set "mnv${i}e" master "$BR_ETH" up
  ip link set "mnv${i}i" master "$BR_IB" up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "$ETH_NET.$i/24" dev eth0
  ip -n "$n" addr add "$IB_NET.$i/24" dev ib0
  ip -n "$n" link set eth0 up
  ip -n "$n" link set ib0 up
}
for i in $(seq 1 "$NODES"); do
  if ! node_net_ok "$i"; then
    log "building network namespace $NAME$i ($ETH_NET.$i eth0, $IB_NET.$i ib0)"
    stop_pid "$RUN/slurmd-$NAME$i.pid"
    build_node_net "$i"
  fi
done
# nodes of an earlier, larger cluster
if [ -f "$RUN/nodes" ]; then
  for n in $(cat "$RUN/nodes"); do
    i=${n#"$NAME"}
    if [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -gt "$NODES" ]; then
      log "removing surplus node $n"
      stop_pid "$RUN/slurmd-$n.pid"; kill_ns_procs "$n"
      ip link del "mnv${i}e" 2>/dev/null || true; ip link del "mnv${i}i" 2>/dev/null || true
      ip netns del "$n" 2>/dev/null || true
    fi
  done
fi
seq 1 "$NODES" | sed "s/^/$NAME/" > "$RUN/nodes"
echo "$BR_ETH $BR_IB" > "$RUN/bridges"

# /etc/hosts: one marked block, rewritten in place (keeps the inode, e.g. for bind mounts)
HOSTS_NEW=$(mktemp)
sed "/^$HOSTS_BEGIN\$/,/^$HOSTS_END\$/d" /etc/hosts > "$HOSTS_NEW"
{
  echo "$HOSTS_BEGIN"
  echo "$ETH_NET.254 ${NAME}head"
  echo "$IB_NET.254 ${NAME}head-ib"
  for i in $(seq 1 "$NODES"); do echo "$ETH_NET.$i $NAME$i"; echo "$IB_NET.$i $NAME$i-ib"; done
  echo "$HOSTS_END"
} >> "$HOSTS_NEW"
cmp -s "$HOSTS_NEW" /etc/hosts || cat "$HOSTS_NEW" > /etc/hosts
rm -f "$HOSTS_NEW"
# The nodes get their own copy of /etc/hosts (bind-mounted in their mount namespace) in which
# the head's hostname ($H) means its eth0-network address, as on a real cluster; on the head
# itself $H keeps the host's mapping (here 127.0.0.1, a classic trap for schedulers).
NODE_HOSTS=-
if [ "$NODE_HOSTS_ON" = 1 ]; then
  NODE_HOSTS=$RUN/hosts.nodes
  write_node_hosts "$NODE_HOSTS" "$ETH_NET" "$H"
fi

# --- 3. munge: one munged for both Slurm clusters (its socket is a file, reachable
# from every netns); the stop scripts stop it only when neither slurmctld needs it
ensure_munge || die "munge"

# --- 4. slurm.conf ------------------------------------------------------------------
MEM=${MN_MEM_MB:-$(awk -v k="$NODES" '/^MemTotal:/{printf "%d", $2/1024*0.9/k}' /proc/meminfo)}
NEW=$(mktemp)
{
cat <<EOF
# Written by ci/clusters/start-slurm-multinode.sh: $NODES namespace "nodes" on one machine.
ClusterName=mn
SlurmctldHost=$H($ETH_NET.254)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/%n
# per-node TmpFS: /tmp is shared by all nodes here, and the pmix plugin puts
# spmix_appdir_<uid>_<job>.<step> under TmpFS, which collides across nodes ("File exists")
TmpFS=$SPOOL/%n/tmp
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=$MPI_DEFAULT
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
EOF
for i in $(seq 1 "$NODES"); do
  echo "NodeName=$NAME$i NodeAddr=$ETH_NET.$i NodeHostname=$NAME$i CPUs=$CPUS RealMemory=$MEM State=UNKNOWN"
done
echo "PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$NEW"
FORCE_RESTART=0
if ! cmp -s "$NEW" "$CONF"; then
  log "writing $CONF"
  [ -f "$CONF" ] && FORCE_RESTART=1
  install -m 644 "$NEW" "$CONF"
fi
rm -f "$NEW"
if [ "$FORCE_RESTART" = 1 ]; then
  log "configuration changed: restarting slurm daemons"
  stop_pid "$RUN/slurmctld.pid" "$RUN"/slurmd-*.pid   # in parallel: slurmd needs ~2 s to exit
fi

# --- 5. daemons -----------------------------------------------------------------------
if ! pid_alive "$RUN/slurmctld.pid"; then
  log "starting slurmctld"
  setsid /usr/sbin/slurmctld -f "$CONF" </dev/null >>"$LOGDIR/slurmctld.stdio" 2>&1 || die "slurmctld failed to start"
fi
netns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }
# runs inside the node's namespaces: node_boot <node> <private_sys 0|1> <hosts file|-> <command...>
NODE_BOOT='n=$1 psys=$2 hosts=$3; shift 3
hostname "$n" || exit 1
if [ "$hosts" != - ]; then
  mount --bind "$hosts" /etc/hosts || echo "node_boot: could not bind $hosts over /etc/hosts on $n" >&2
fi
if [ "$psys" = 1 ]; then
  hold=$(mktemp -d "/run/slurm-mn/sys-hold.$n.XXXXXX") &&
    mount --rbind /sys/fs/cgroup "$hold" && umount -l /sys && mount -t sysfs sysfs /sys &&
    mount --move "$hold" /sys/fs/cgroup ||
    echo "node_boot: could not give $n its own /sys; /sys/class/net shows the host" >&2
  rmdir "$hold" 2>/dev/null
fi
exec "$@"'
for i in $(seq 1 "$NODES"); do
  n=$NAME$i pf=$RUN/slurmd-$NAME$i.pid
  if pid_alive "$pf"; then   # a slurmd from before must sit in the current namespace
    [ "$(readlink "/proc/$(cat "$pf")/ns/net")" = "net:[$(netns_inode "$n")]" ] && continue
    log "slurmd of $n is in a stale namespace: restarting it"; stop_pid "$pf"
  fi
  mkdir -p "$SPOOL/$n/tmp"
  log "starting slurmd on $n"
  # nsenter --net: the node's network namespace. Not `ip netns exec`: that remounts /sys,
  # which hides /sys/fs/cgroup, and slurmd 22.05 then dies with "Unable to initialize
  # cgroup plugin" even with proctrack/linuxproc + task/none. Instead NODE_BOOT (above)
  # gets its own UTS (hostname) and mount namespace, mounts a sysfs of the node's netns
  # (so /sys/class/net lists eth0/ib0) and moves the host's cgroup mounts on top of it.
  # slurmd daemonizes and writes $pf itself.
  setsid nsenter --net="/run/netns/$n" unshare --uts --mount --propagation slave -- \
    sh -c "$NODE_BOOT" node_boot "$n" "$PRIVATE_SYS" "$NODE_HOSTS" /usr/sbin/slurmd -f "$CONF" -N "$n" \
    </dev/null >>"$LOGDIR/slurmd-$n.stdio" 2>&1 || die "slurmd on $n failed to start (see $LOGDIR/slurmd-$n.stdio)"
done

# --- 6. wait until every node is idle, then smoke-test ----------------------------
deadline=$((SECONDS + TIMEOUT))
while :; do
  states=$(sinfo -h -N -p batch -o '%N %t' 2>/dev/null || true)
  ready=$(echo "$states" | awk '$2=="idle"||$2=="mix"||$2=="alloc"' | wc -l)
  [ "$ready" -eq "$NODES" ] && break
  for n in $(echo "$states" | awk '$2 ~ /^(drain|drng|down|fail)/ {print $1}'); do
    scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
  done
  [ $SECONDS -ge $deadline ] && die "not all $NODES nodes usable after ${TIMEOUT}s; sinfo: $(echo "$states" | tr '\n' ';')"
  sleep 0.5
done
out=$(cd /tmp && timeout "$TIMEOUT" srun -K -N "$NODES" -n "$NODES" --immediate="$TIMEOUT" hostname 2>&1) ||
  die "smoke test 'srun -N $NODES hostname' failed: $out"
[ "$(echo "$out" | sort | tr '\n' ' ')" = "$(seq 1 "$NODES" | sed "s/^/$NAME/" | sort | tr '\n' ' ')" ] ||
  die "smoke test: unexpected hostnames: $out"
log "Slurm multi-node is up: $NODES nodes (${NAME}1..$NAME$NODES, $CPUS CPUs, ${MEM} MiB each), partition batch, took ${SECONDS}s"
log "use: export SLURM_CONF=$CONF"
