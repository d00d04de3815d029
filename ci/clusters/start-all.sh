#!/usr/bin/env bash
# Install (if needed) and start every CI batch system, as root, on Debian 12:
#   1. single-node Slurm      (start-slurm.sh,           conf /etc/slurm/slurm.conf)
#   2. three-node Slurm       (start-slurm-multinode.sh, conf /etc/slurm-mn/slurm.conf)
#   3. single-node Grid Engine (start-sge.sh,            SGE_ROOT=/var/lib/gridengine)
#   4. Grid Engine on the three nodes (start-sge-multinode.sh: execds in node1..3 of 2.,
#      reporting to the qmaster of 3.; queue mn.q, PE mpi; needs 2. and 3. running)
# They coexist (own ports, pid files, state dirs; the two Slurms share one munged).
# All packages are installed first in ONE apt-get update + install, so a fresh machine
# only needs the Debian package mirror. Prints how long each step took; exits non-zero
# naming the step that failed. Idempotent: running clusters are checked and left alone.
#
#   sudo bash ci/clusters/start-all.sh
#
# Env knobs: CI_CLUSTERS="slurm slurm-multinode sge sge-multinode" (subset/order to start),
# plus the knobs of the individual scripts (SLURM_CI_*, MN_*, SGE_CI_*, SGE_MN_*).
set -euo pipefail
LOG_TAG=start-all
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || { log "ERROR: must run as root"; exit 1; }
CLUSTERS=${CI_CLUSTERS:-slurm slurm-multinode sge sge-multinode}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
T_ALL=$(now)

# 1. packages for everything requested, one apt-get update
PKGS=()
for c in $CLUSTERS; do
  case "$c" in
    slurm) PKGS+=("${SLURM_PKGS[@]}"); [ "${SLURM_CI_MPI:-1}" = 1 ] && PKGS+=("${MPI_PKGS[@]}") ;;
    slurm-multinode) PKGS+=("${SLURM_PKGS[@]}" "${MN_EXTRA_PKGS[@]}"); [ "${MN_MPI:-1}" = 1 ] && PKGS+=("${MPI_PKGS[@]}") ;;
    sge) PKGS+=("${SGE_PKGS[@]}") ;;
    sge-multinode) PKGS+=("${SGE_PKGS[@]}" "${MN_EXTRA_PKGS[@]}") ;;
    *) log "ERROR: unknown cluster '$c' in CI_CLUSTERS (slurm | slurm-multinode | sge | sge-multinode)"; exit 2 ;;
  esac
done
t=$(now)
ensure_packages "${PKGS[@]}" || { log "ERROR: installing packages failed (is a Debian mirror reachable?)"; exit 1; }
log "packages ready: $(since "$t") s"

# 2. clusters, in order; stop at the first failure with a clear message
for c in $CLUSTERS; do
  t=$(now)
  if ! bash "$HERE/start-$c.sh"; then
    log "ERROR: start-$c.sh failed after $(since "$t") s (its log tail is above); the clusters started before it are still running"
    exit 1
  fi
  log "$c started: $(since "$t") s"
done
log "all clusters up in $(since "$T_ALL") s: $CLUSTERS"
