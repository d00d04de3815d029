# shellcheck shell=bash
# Helpers shared by the ci/clusters scripts. Sourced, never run directly.
# Callers set LOG_TAG before sourcing (used as the log prefix).

LOG_TAG=${LOG_TAG:-clusters}
log() { echo "[$LOG_TAG +${SECONDS}s] $*" >&2; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# stop_pids <pidfile>...: SIGTERM all at once (slurmd needs ~2 s to exit, so in
# parallel), wait up to 10 s, SIGKILL survivors; removes the pid files.
stop_pids() {
  local f pid pids=() alive
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then pids+=("$pid"); fi
    rm -f "$f"
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  for _ in $(seq 1 40); do
    alive=0
    for pid in "${pids[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
    [ "$alive" = 0 ] && return 0
    sleep 0.25
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM, sending SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
  done
  return 0
}

# Debconf answers for the gridengine packages, so their postinst creates the cell
# "default" with this host as master instead of asking (or skipping the setup).
preseed_gridengine() {
  local p h; h=$(hostname)
  for p in gridengine-common gridengine-master gridengine-client gridengine-exec; do
    printf '%s shared/gridengineconfig boolean true\n%s shared/gridenginecell string default\n%s shared/gridenginemaster string %s\n' \
      "$p" "$p" "$p" "$h"
  done | debconf-set-selections
}

# ensure_packages <pkg>...: install the missing ones. Runs `apt-get update` at most
# once per process tree (CI_CLUSTERS_APT_UPDATED=1 is exported afterwards; start-all.sh
# installs everything in one go so the per-cluster scripts find nothing missing).
# Returns 1 on failure.
ensure_packages() {
  local p missing=() policy_added=0 rc=0
  for p in "$@"; do
    [[ " ${missing[*]} " == *" $p "* ]] && continue   # listed twice
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  [[ " ${missing[*]} " == *" gridengine-"* ]] && preseed_gridengine
  # policy-rc.d exit 101 keeps maintainer scripts from starting daemons (no systemd
  # here, and we start them ourselves, by PID). Only removed again if we added it.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_added=1
  fi
  if [ "${CI_CLUSTERS_APT_UPDATED:-0}" != 1 ]; then
    apt-get update -qq -o DPkg::Lock::Timeout=300 || rc=$?
    export CI_CLUSTERS_APT_UPDATED=1
  fi
  if [ "$rc" = 0 ]; then
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  fi
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || { log "ERROR: apt-get failed (rc=$rc) installing: ${missing[*]}"; return 1; }
}

# Package sets (start-all.sh installs their union at once).
SLURM_PKGS=(slurmctld slurmd slurm-client munge)
MPI_PKGS=(openmpi-bin libpmix-dev)          # srun --mpi=pmix with Debian's Open MPI
MN_EXTRA_PKGS=(iproute2 util-linux)         # ip netns, nsenter, unshare
SGE_PKGS=(gridengine-master gridengine-exec gridengine-client)

# One munged serves both Slurm clusters (its socket is a file, so it also works from
# inside the multi-node namespaces). ensure_munge starts it if `munge | unmunge` fails.
ensure_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  log "starting munged"
  stop_pids /run/munge/munged.pid
  setsid runuser -u munge -- /usr/sbin/munged --force </dev/null >/dev/null 2>&1 || { log "ERROR: munged failed to start"; return 1; }
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.25; done
  log "ERROR: munge does not work"; return 1
}

# Stop munged unless one of the two Slurm controllers is still alive (then it is needed).
# Pid files: single-node /run/slurmctld.pid, multi-node /run/slurm-mn/slurmctld.pid.
stop_munge_if_unused() {
  local pf
  for pf in /run/slurmctld.pid /run/slurm-mn/slurmctld.pid; do
    if pid_alive "$pf"; then log "leaving munged running ($pf is alive and needs it)"; return 0; fi
  done
  stop_pids /run/munge/munged.pid
}

# write_node_hosts FILE ETH_NET HOST: FILE = /etc/hosts as the namespaced nodes must see it:
# HOST (the head, 127.x in its own /etc/hosts as on many login nodes) at ETH_NET.254. Written
# in place, only when it changes: running nodes bind-mount it.
write_node_hosts() {
  local file=$1 net=$2 host=$3 tmp
  tmp=$(mktemp)
  awk -v h="$host" '$1 ~ /^127\./ { out = $1; for (i = 2; i <= NF; i++) if ($i != h && index($i, h ".") != 1) out = out " " $i
                                    if (out == $1) next; $0 = out } { print }' /etc/hosts > "$tmp"
  echo "$net.254 $host" >> "$tmp"
  cmp -s "$tmp" "$file" || cat "$tmp" > "$file"
  rm -f "$tmp"
}
