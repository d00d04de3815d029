#!/usr/bin/env bash
# Stop every CI batch system started by start-all.sh: first the Grid Engine nodes
# (stop-sge-multinode.sh needs the qmaster to remove its queue and hosts, and must find
# its execds before their namespaces go), then Grid Engine (in the background), multi-node
# Slurm (removes its namespaces, bridges, /etc/hosts block), single-node Slurm
# (and then munged, which nobody needs any more). Prints how long each took. Tries all
# of them even if one fails; exits non-zero if any failed.
#
#   sudo bash ci/clusters/stop-all.sh [--purge]   # --purge: also wipe job/state spools
#
# Env knobs: CI_CLUSTERS (same as start-all.sh; stopped in reverse order, sge-multinode first).
set -euo pipefail
LOG_TAG=stop-all
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || { log "ERROR: must run as root"; exit 1; }
CLUSTERS=${CI_CLUSTERS:-slurm slurm-multinode sge sge-multinode}
REVERSED=$(echo "$CLUSTERS" | tr ' ' '\n' | grep -v '^$' | tac | tr '\n' ' ')

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
T_ALL=$(now)
FAILED=()
stop_one() {  # stop_one <cluster> [args]
  local c=$1 t; shift; t=$(now)
  if bash "$HERE/stop-$c.sh" "$@"; then log "$c stopped: $(since "$t") s"
  else log "ERROR: stop-$c.sh failed after $(since "$t") s"; return 1; fi
}
# The Grid Engine nodes first, on their own: they need the qmaster (sge) and live in the
# namespaces of slurm-multinode. A failure is recorded; the others are stopped anyway.
if [[ " $REVERSED " == *" sge-multinode "* ]]; then stop_one sge-multinode "$@" || FAILED+=(sge-multinode); fi
# Grid Engine's qmaster needs 7-11 s for its controlled shutdown and shares nothing with
# Slurm, so it is stopped in the background while the Slurms stop one after the other
# (sequentially: each stops munged only if the other slurmctld is gone).
SGE_JOB=
if [[ " $REVERSED " == *" sge "* ]]; then stop_one sge "$@" & SGE_JOB=$!; fi
for c in $REVERSED; do
  [ "$c" = sge ] || [ "$c" = sge-multinode ] && continue
  stop_one "$c" "$@" || FAILED+=("$c")
done
if [ -n "$SGE_JOB" ]; then wait "$SGE_JOB" || FAILED+=(sge); fi
if [ ${#FAILED[@]} -gt 0 ]; then log "ERROR: could not cleanly stop: ${FAILED[*]}"; exit 1; fi
log "all clusters stopped in $(since "$T_ALL") s"
