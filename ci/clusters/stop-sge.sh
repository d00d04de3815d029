#!/usr/bin/env bash
# Stop the single-node SGE started by start-sge.sh: delete jobs, ask the daemons to
# shut down (qconf -ke/-km), then make sure the PIDs from their pid files are gone.
#   bash ci/clusters/stop-sge.sh          # stop daemons (config is kept)
#   bash ci/clusters/stop-sge.sh --purge  # also remove spooled jobs
set -euo pipefail   # every step is best effort: failures are caught with || true
LOG_TAG=stop-sge
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
H=$(hostname)
EXECD_PID=/run/gridengine/execd.pid
QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid
if command -v qconf >/dev/null && timeout 5 qconf -sh >/dev/null 2>&1; then
  timeout 10 qdel -f -u '*' >/dev/null 2>&1 || true
  timeout 10 qconf -ke "$H" >/dev/null 2>&1 || true
fi
# execd first (it needs the qmaster to report to), then the qmaster
for pf in "$EXECD_PID" "$QMASTER_PID"; do
  if [ "$pf" = "$QMASTER_PID" ] && pid_alive "$pf"; then timeout 10 qconf -km >/dev/null 2>&1 || true; fi
  pid_alive "$pf" || { rm -f "$pf"; continue; }
  pid=$(cat "$pf")
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  stop_pids "$pf"   # still alive after 10 s: SIGTERM, then SIGKILL
done
if [ "${1:-}" = --purge ]; then
  rm -rf /var/spool/gridengine/execd/*/jobs/* /var/spool/gridengine/execd/*/active_jobs/* \
         /var/spool/gridengine/qmaster/job_scripts/*
fi
log "stopped"
