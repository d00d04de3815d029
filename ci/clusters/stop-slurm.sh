#!/usr/bin/env bash
# Stop the single-node Slurm started by start-slurm.sh. Kills only the daemons named in
# their pid files (job steps go away through scancel first).
#   bash ci/clusters/stop-slurm.sh              # cancel jobs, stop slurmd + slurmctld, and
#                                               # munged unless the multi-node cluster still runs
#   bash ci/clusters/stop-slurm.sh --keep-munge # never stop munged
#   bash ci/clusters/stop-slurm.sh --purge      # also wipe controller/slurmd state (job ids restart at 1)
set -euo pipefail   # every step is best effort: failures are caught with || true
LOG_TAG=stop-slurm
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KEEP_MUNGE=0 PURGE=0
for a in "$@"; do
  case "$a" in --keep-munge) KEEP_MUNGE=1 ;; --purge) PURGE=1 ;; *) echo "unknown arg $a" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
unset SLURM_CONF   # talk to the single-node cluster (/etc/slurm/slurm.conf)

# 1. cancel leftover jobs while the daemons are still up
if pid_alive /run/slurmctld.pid && command -v squeue >/dev/null && timeout 5 squeue -h >/dev/null 2>&1; then
  jobs=$(timeout 5 squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 40); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break; sleep 0.25; done
  fi
fi
# 2. daemons, by pid file
stop_pids /run/slurmd.pid /run/slurmctld.pid
# 3. munged is shared with the multi-node cluster: only stop it when nobody needs it
[ "$KEEP_MUNGE" = 1 ] || stop_munge_if_unused
if [ "$PURGE" = 1 ]; then rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*; fi
log "stopped"
